// Package miniqueue serves miniqueue's HTTP protocol
// (github.com/tomarrell/miniqueue) over a queue.Broker, so that existing
// miniqueue clients work unchanged against spool. It is a thin
// translation onto package queue: a miniqueue topic is a spool queue, and
// every state change is a queue call (Enqueue, Receive, Ack, Nack,
// Extend); the package keeps no state of its own beyond one stream's
// message out.
//
// New(b, logger) returns an http.Handler for three routes (a
// net/http.ServeMux; any other method on them is 405, any other path 404):
//
//	POST   /publish/:topic     the body is one message; 201, no body
//	POST   /subscribe/:topic   a full-duplex stream of commands and messages
//	DELETE /:topic             purge the topic's messages; 200, no body
//
// It owns nothing else: no listener, no TLS, no auth, no metrics. The
// caller mounts it (spool's --miniqueue) and brings TLS or h2c. It works
// over HTTP/1.1 (the stream uses http.ResponseController's
// EnableFullDuplex) and HTTP/2, cleartext (h2c, prior knowledge) or over
// TLS; a wrapping ResponseWriter must implement Unwrap for the stream's
// deadlines and flushes to reach the connection.
//
// # Topics
//
// A topic is the spool queue of the same name, made on first use by
// publish or subscribe (never by DELETE) with MaxAttempts
// queue.MaxMaxAttempts (Config.MaxAttempts): miniqueue redelivers
// without limit, so a default of 5 would turn its backoff examples into
// dead letters. A queue that exists is used as it is, config untouched;
// messages past its max attempts go dead as in any spool queue. A name
// outside queue.ValidName is refused with 400 {"error":"invalid topic
// value"} (miniqueue's text) and nothing is created; miniqueue accepts
// any path segment, and the reversible encoding that gives such names a
// queue belongs to package queue and comes with the beanstalkd adapter.
//
// # Publish
//
// The body is read whole, up to Config.MaxMessageBytes (413 {"error":
// "message too large"} past it), and enqueued; 201 and an empty body once
// it is durable (under sync=always, fsynced), as miniqueue replies. An
// empty body is a message. Failures are {"error":"..."} with spool's
// status: 429 for a queue at its max length, 503 (Retry-After: 1) while
// the queue is unavailable or the broker closing, 507 for a full disk,
// 500 otherwise ("error publishing to broker", miniqueue's text). Queue
// error texts are logged, never sent.
//
// # Subscribe
//
// The request body is a sequence of JSON strings, each a command, read
// as miniqueue's json.Decoder reads them: separated by JSON whitespace or
// by nothing ("INIT""ACK"). The response is 200 (headers sent at once),
// then one JSON object per reply, each followed by "\n" and flushed, as
// miniqueue's json.Encoder writes them:
//
//	{"msg":"aGVsbG8=","dackCount":2}   a message: base64 body; dackCount
//	                                   and msg left out when 0 and empty
//	{"error":"..."}                    an error
//
// The commands (README "Commands"; http.go for what the README leaves
// out). A command's first word names it, in capitals; words after the
// ones it uses are ignored, as strings.Split does in miniqueue.
//
//	INIT     deliver a message (send it first; the stream sends nothing
//	         until then). With a message out: error "error getting next
//	         value for consumer", and the stream goes on.
//	ACK      the message is done: Ack. Then the next message is sent.
//	NACK     back to the front of the queue: Nack{Front}. Then the next
//	         message is sent (that same one, unless another subscriber
//	         waiting takes it first).
//	BACK     back to the back: Nack{}; it goes after every message
//	         published before the BACK.
//	DACK n   back to the front after n seconds: Nack{Front, Delay}.
//	         n ≤ 0 returns it at once (miniqueue's delay has passed by
//	         then); n over queue.MaxDelay (7 days) is MaxDelay.
//
// One message is out on a stream at a time, as miniqueue's consumer
// allows; the next one is sent as soon as the ACK, NACK, BACK or DACK
// before it is applied (see "Durability"). A subscriber waiting for a
// message is a long-poll Receive (woken by a publish, never polling).
//
// dackCount is the message's attempts before this delivery (Attempts −
// 1): how many times it was given back, by DACK, NACK, BACK, a
// disconnect or a lease that ran out. miniqueue counts DACKs alone; spool
// keeps no per-message counter a nack can change, and this count is
// durable and shared by every subscriber. A client that only DACKs (the
// exponential backoff example) sees miniqueue's values.
//
// Errors, and whether the stream goes on, follow miniqueue's
// subscribeHandler:
//
//	not a JSON string (object, number, bare word)  "error decoding command"; ends (null
//	                                                 too: miniqueue reads it as "")
//	first word not a command ("ack", "", "HELLO")  "unrecognised command received"; goes on
//	DACK without seconds                           "too few arguments provided to DACK"; ends
//	DACK seconds not an integer ("DACK  5")        "invalid DACK duration argument at position [1]"; ends
//	ACK/NACK/BACK/DACK with no message out         "error ACKing message" (NACKing, BACKing,
//	  or the queue call failing                      DACKing); ends
//	a receive failing (queue deleted, shutdown)    "error getting next value for consumer"; ends
//	a command over Config.MaxCommandBytes (4 KiB)  "command too long"; goes on (not in miniqueue)
//
// A bad command changes nothing: no queue call is made for it. When a
// stream ends, for whatever reason, the message out goes back to the
// front of the queue at once (Nack{Front}), as miniqueue NACKs it on a
// disconnect, so another subscriber gets it without waiting for a lease.
//
// The end of the request body (the client half-closing its side, as curl
// -d does, or miniqueue's echo example with its "INIT" "ACK" body) ends
// the stream once the commands sent are handled: they all apply, each
// delivery among them takes a message if one is ready but waits for none
// (nothing the client could still send would ACK it), and the message
// out at the end goes back. miniqueue, which does not look at the body
// while it waits for a message, would wait on until the client resets
// the stream; a stream that can never ACK is no use to wait on. A broken
// body or a cancelled request (a reset stream, a dropped connection)
// ends the wait at once; commands read before it still apply.
//
// # Durability
//
// A publish is answered (201) once it is durable: under sync=always,
// fsynced. An ACK, NACK, BACK or DACK has no reply in miniqueue's
// protocol, so there is nothing to hold back until its fsync: the stream
// applies it and writes it to the state log (queue.AckSoon, NackSoon),
// which starts the fsync, and sends the next message without waiting for
// it. Waiting would cost a subscriber a whole fsync per message (one
// subscriber: 2.2k messages/s instead of 20k on a 5k-fsync/s disk),
// while a subscriber that does not wait shares each fsync among its
// ACKs. What that risks is small and of the kind at-least-once allows:
// the process dying cannot undo a written ACK; only a power cut before
// its fsync ends (a background round, started within a millisecond of
// the ACK so that one fsync carries many) can, and the message is then
// delivered again. Nothing acknowledged to a publisher is ever at risk.
//
// # Leases
//
// miniqueue has no lease a client can see: a message stays with its
// subscriber until the subscriber answers or leaves. The stream receives
// with a Config.Lease (30 s) visibility and Extends it every Lease/3
// while the message is out and the stream open, so a slow worker keeps
// its message however long it takes, and a message whose server died
// holding it is delivered again a lease after the restart. A lease lost
// all the same (the stream stalled past it) makes the client's next
// command fail with its error payload, and the stream ends.
//
// # Resources
//
// Two goroutines per stream, whatever happens on it: the handler's, which
// makes every queue call and writes every reply, and one reading and
// parsing the body. Between them at most 16 parsed commands wait
// (pendingCommands); a client sending faster is held back by TCP's (or
// HTTP/2's) flow control. A command is kept only up to MaxCommandBytes:
// a longer string is read to its end without being kept. So a stream
// holds at most a 1 KiB read buffer, a 4 KiB command, the replies' buffer
// (one message) and the message out, whatever the client sends. No
// goroutine or timer per message: one renewal timer per stream. The
// server's read and write timeouts are lifted for the stream (a
// subscriber may wait for hours); each reply has its own write deadline
// (Config.WriteTimeout, 30 s), past which the client counts as gone.
//
// # Not served
//
// miniqueue's Redis protocol, and its Prometheus metrics (spool's own
// /metrics sees the queue calls). DELETE /:topic purges rather than
// removes the queue, so that connected subscribers go on; messages out
// on streams are purged too, and their ACK then fails.
package miniqueue
