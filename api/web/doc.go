// Package web is spool's dashboard: one page at / that shows the queues
// and topics with their counts, enqueue and ack rates, bytes on disk, a
// message browser (peek, dead letters), redrive, purge and delete behind
// a confirmation, and a send form. It is static files embedded in the
// binary (go:embed): no build step, no CDN, no framework, so it works
// offline and on a phone.
//
// The page uses only the public JSON API under /v1, with the token (or
// an API key's secret) it asks for when the server answers 401, kept in
// sessionStorage only (gone with the tab). Rates are the differences of
// the queues' counters (QueueInfo.Stats) between the page's polls, two
// seconds apart, in a ring of the last five minutes in the page's memory:
// nothing is stored on the server for them, and they start empty when
// the page is opened.
//
// The files are public (they hold no data); Handler serves them with a
// Content-Security-Policy that allows only this origin.
package web
