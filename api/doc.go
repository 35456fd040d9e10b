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
// Layout: server.go holds Config, Server and the middleware (auth, error
// replies, metrics); routetable.go the routing table (each route's
// method, pattern, query parameters and purpose) with the query check
// and the 405 reply built from it; accesslog.go the access log and the
// refused-token warnings; keys.go the API keys (--keys: scopes, the
// keys file, the constant-time match) and routetable.go's permFor and
// permitted what each route needs of a key; handlers_queues.go, handlers_messages.go,
// handlers_receipts.go and handlers_topics.go the route handlers;
// types.go and types_topics.go the JSON shapes; encoding.go the JSON and
// query-parameter helpers, the API-worded JSON errors and the streamed
// message reply; metrics.go /metrics; version.go the build information
// (Build, ReadBuild); client.go, client_messages.go and client_topics.go
// the Client.
//
// Topics: a subscription's consumer routes (receive, ack, nack, extend,
// fail, messages, dead, redrive) are a queue's handlers, run on a
// consumer (the interface *queue.Queue and *queue.Subscription share),
// and a topic's publish routes are a queue's enqueue handlers, which
// call target.enqueue (Queue.Enqueue or Topic.Publish): one handler per
// route, whatever it is on. The routing table says of each route what
// its path names (scope) and what is looked up before anything else
// (look), so a missing topic or subscription is 404 first, as a missing
// queue is. Client mirrors it: Client.Queue and Client.Subscription
// return a Consumer, which holds the one implementation of each consumer
// call, and the Client methods that take a queue name (Receive, Ack, ...)
// are Client.Queue(name) and that call.
// serve.go assembles a running server (Service: broker, Server, metrics,
// listener), what spool serve and the bench run; listener.go holds its
// connection cap. handlers_backup.go streams the online backup. The
// dashboard (api/web, GET / and /ui/) and the SQS endpoint (api/sqs) sit
// in front of the router (withDashboard, withSQS).
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
// Open; the default cap is lowered to fit, with a warning. Open listens
// before it opens the data directory, so a busy port fails with nothing
// created or opened (the cap, which needs the queues' open-file count, is
// put on the listener after). Hooks a caller
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
//   - A query parameter a route does not take is refused (400, naming it
//     and the ones the route takes), as unknown JSON fields are: ?mx=10
//     would otherwise be a receive of one. A malformed query string is
//     refused too. A request to a missing queue is still 404 first.
//   - A wrong method on a known path is 405 with Allow (the router's)
//     and a message naming each call on that path ("to delete a queue,
//     POST /v1/queues/q/delete" for DELETE): a REST habit tries DELETE
//     and PUT first.
//   - JSON errors name the field in API terms and what it takes
//     ("visibility_timeout must be a string like "30s", not a number",
//     "messages[1].delay ...", an unknown field with the fields the body
//     takes), never Go's types. Anything after the body's value, even a
//     stray "}", is refused.
//   - JSON is written without HTML escaping (<, > and & as they are):
//     no reply is pasted into HTML, and "Bearer \u003ctoken\u003e"
//     helped no one.
//   - A full queue's 429 carries the queue's own words (how many it
//     holds, of how many, how many did not fit) and what to do about it.
//   - Create and update accept a dead-letter queue that does not exist
//     (it may be created next) but say so: "warnings" in the reply
//     (absent when empty) and a WARN line, since until it exists dead
//     messages stay in the queue.
//   - Message JSON has "ready_at" for a delayed message and "lease_ends"
//     for a leased one (RFC 3339, UTC), in peek and dead listings and in
//     receive replies too (a worker learns its deadline).
//   - /metrics has # HELP and # TYPE for every family. The TYPE of the
//     Go runtime and process families is the metrics library's (through
//     its process-wide metrics.ExposeMetadata); their help texts are
//     ours, as the library writes none. Where the library's names or
//     types fail promtool's lint they are mended: go_cgo_calls_count,
//     go_gc_forced_count and go_cpu_count become go_cgo_calls_total,
//     go_gc_forced_total and go_cpus, and the process_io_*_total
//     families are typed counter. The test runs promtool check metrics.
//   - spool_queue_oldest_ready_age_seconds is measured by the broker's
//     clock (Config.Now), so it agrees with enqueued_at.
//   - The access log is at DEBUG: one "api: request" line per request
//     with method, route pattern (never the raw path or query, so names
//     and ids stay out and the lines group by route), status, took and
//     queue. Bodies, headers and tokens are never logged. A refused
//     token is a WARN with the remote address, route and reason, at most
//     one a second (the next says how many were suppressed), so a
//     scanner cannot fill the disk with them. GET /healthz goes through
//     the same layer, so it is logged and counted like any route.
//   - The 503 that ends a long poll at shutdown is expected: logged at
//     DEBUG only.
//   - A subscription's start applies at its creation only. Given to one
//     that exists, it is not refused (a program may send the same create
//     on every start, as for a queue) but does not move it: the 200
//     reply's "warnings" says so and points at POST .../seek.
//   - Seek answers 200 {"id":"N"}: the id the subscription (every
//     subscription of the topic) moved to, the next it delivers. "to" is
//     required; earliest, latest, an id (from 1) or an RFC 3339 time.
//   - Topic and subscription JSON is flat like a queue's: TopicInfo has
//     retention, max_bytes, head_id, tail_id (strings, as every id),
//     bytes and subscriptions; SubscriptionInfo has its config, counts,
//     lag, skipped and next_id. A message published with a delay counts
//     as ready until the subscription reads it (queue.SubscriptionInfo).
//   - A subscription deleted under a request (a long poll) answers 404
//     subscription_not_found.
//   - /metrics: per topic spool_topic_bytes and
//     spool_topic_published_total; per subscription
//     spool_subscription_messages{topic,subscription,state},
//     spool_subscription_lag, spool_subscription_skipped_total and the
//     acked, nacked, expired, dead and dead_lettered totals, named
//     spool_subscription_*_total; spool_topics_unavailable.
package api
