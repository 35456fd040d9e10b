// Package api serves spool's HTTP API and holds its Go client.
//
// Server translates HTTP to calls on a queue.Broker and nothing more: the
// routes of the design (GET only reads; every change is a POST; all under
// /v1), JSON bodies and errors, auth, limits and long polls. The one place
// queue errors meet HTTP status codes is the codes table in errors.go;
// Client maps the codes back, so errors.Is(err, queue.ErrStaleReceipt)
// works across the wire. Two more things have one owner each, shared by
// the server and Client: routes.go names every path (the router registers
// them; Client and package bench build their requests from them), and
// body.go holds the body codec, the rule between a message's bytes and
// its JSON "body" / "body_base64" fields, in both directions.
//
// Layout: server.go holds Config, Server, the routing table and the
// middleware (auth, error replies, metrics); handlers_queues.go,
// handlers_messages.go and handlers_receipts.go the route handlers;
// encoding.go the JSON and query-parameter helpers and the streamed
// message reply; client.go and client_messages.go the Client. serve.go
// assembles a running server (Service: broker, Server, metrics, listener),
// what spool serve and the bench run; listener.go holds its connection
// cap.
//
// Service is the only place a running server is put together, so a new
// listener (TLS, h2c) is added once for spool serve, spool bench and the
// tests alike. Its http.Server has every limit set: headers within 10 s,
// the whole request within 2 min, the reply within MaxWait + 1 min (a long
// poll must fit), idle keep-alives closed after 2 min, 64 KiB of headers.
// Close stops it in order: long polls are released with 503, requests in
// flight get 3 s to finish, connections still busy are cut and their
// handlers get 3 s more, and the queues are fsynced and closed last. An
// explicit connection cap that does not fit the open-file limit fails
// Open; the default cap is lowered to fit, with a warning. Hooks a caller
// sets in ServiceConfig.Queue run after the metrics have counted.
//
// Decisions the design left open:
//   - Ids are decimal strings in JSON (they are uint64; JSON numbers lose
//     precision past 2^53 in many clients).
//   - Enqueue answers 201 {"ids":[...]}; create answers 201, update 200,
//     both with the queue's info.
//   - JSON routes refuse unknown fields, trailing data, other content
//     types (415) and a query parameter given twice (400): a typo should
//     be an error, not a silent default.
//   - A receive whose client hangs up while waiting leases nothing; one
//     waiting when the server shuts down gets 503 shutting_down.
//   - A queue reloading its state after a disk error answers 503
//     unavailable with Retry-After: 1 (queue.ErrUnavailable): retry.
//   - 5xx replies carry a fixed message; the real error goes to the log.
//   - --max-disk compares the data directory's size, refreshed every
//     second, with the quota before each enqueue (507 past it).
package api
