// Package beanstalk speaks beanstalkd's text protocol (protocol.txt of
// beanstalkd 1.12/1.13) over spool's queues: Server (spool serve
// --beanstalk-addr) maps tubes and jobs onto package queue, and never
// reaches below it; Reader and the Append functions read the commands a
// client sends and encode every reply, byte for byte as beanstalkd does.
//
// # Tubes and jobs
//
// A tube is a queue, made on first use (use, watch; every connection
// uses and watches "default"), with max_attempts 1000 because beanstalkd
// never buries a job on its own. A tube whose name is a queue name is
// that queue, so the HTTP API and a beanstalkd client share "emails";
// any other ("a/b", ".", a 200-byte name) is a queue named from the
// name's SHA-256 (QueueName) and labelled with it. A job is a message:
// its pri is the message's priority, its TTR the message's own
// visibility timeout, its delay the message's. Ready order is (pri,
// id). A job id is the queue's serial (queue.Queue.Serial) times 2^40
// plus the message's id, so ids are unique across tubes, stable across
// restarts and never reused in a tube; they are large numbers (the
// first queue's start at 2^40+1). bury is a fail (the job goes dead);
// kick and kick-job are redrives, or make delayed jobs ready.
//
// A reservation belongs to its connection: another connection's delete,
// release, bury or touch of it is NOT_FOUND, and when the connection
// closes its jobs go back to ready at once, in their places. A
// reservation whose TTR runs out is the queue's again (the lease ran
// out). reserve takes the lowest (pri, job id) over the watched tubes
// that are not paused; a waiting reserve sleeps on queue.NotifyReady
// (no polling), answers DEADLINE_SOON when a job of its connection has
// under a second of TTR left, and notices a client that hangs up while it
// waits.
//
// Durability is the queues': under --sync=always, INSERTED, DELETED,
// RELEASED, BURIED and KICKED are sent once the change is fsynced,
// concurrent connections sharing fsyncs (group commit). RESERVED is
// sent once the lease is written to the state log. The release of a
// closed connection's jobs is written at once and fsynced in the next
// commit.
//
// # Where spool differs from beanstalkd
//
// The differential test (difftest_test.go) runs the same scripts against
// Debian's beanstalkd and this server; these are the differences it
// allows, each by design:
//
//   - Tubes are durable queues: one is never dropped when it is unused
//     and empty, so list-tubes lists every queue (those made over HTTP
//     too), in creation order; stats-tube and pause-tube answer for
//     every queue; stats' current-tubes counts them.
//   - stats-job's timeouts, releases, buries and kicks are 0: spool keeps
//     no per-message counters beyond attempts (reserves). file is 0 (no
//     binlog files). delay is the put's: a release's delay is not kept.
//   - Buried jobs are peeked and kicked in id order, not bury order.
//   - A delay over 7 days or a TTR over 12 hours is BAD_FORMAT: spool's
//     queues bound both (queue.MaxDelay, queue.MaxVisibility).
//   - A job reserved 1000 times (its tube's max attempts) goes buried at
//     its next release or timeout.
//   - A pause-tube is the server's, as in beanstalkd: it ends with the
//     process.
//   - Over --beanstalk-max-connections a new connection gets
//     OUT_OF_MEMORY and is closed (beanstalkd has no such cap).
//   - stats reports GOOS and GOARCH as os and platform, spool's version
//     as version, and 0 for the binlog fields.
//
// # Reading commands
//
// A Reader wraps one connection. Next returns one Command at a time: a
// Verb and its arguments, and for put the job body. A malformed command
// comes back as an error wrapping one of ErrBadFormat, ErrUnknownCommand,
// ErrExpectedCRLF or ErrJobTooBig; the connection goes on with the next
// command, as in beanstalkd, and the server replies AppendError(err).
// io.EOF is a clean end between commands; io.ErrUnexpectedEOF an end
// inside one (beanstalkd closes such a connection without a reply).
//
// The Reader reproduces beanstalkd's byte-level behaviour (prot.c), which
// a reading of protocol.txt alone gets wrong in places:
//
//   - A line ends at "\r\n"; a lone "\n" is an ordinary byte. Only the
//     first '\r' of a 224-byte window counts: "stats\r\r\n" is not a line,
//     and gets no reply until the window fills. A window holding no line
//     end is thrown away, and so is every following one until a line
//     ends; then the reply is BAD_FORMAT. Windows are 224 bytes from where
//     the command (or the previous thrown-away window) began, so the
//     "\r\n" of a 225-byte line straddles two windows and is missed: the
//     line after it is swallowed into the BAD_FORMAT.
//   - Commands are matched by prefix, in beanstalkd's order: "quitx" is
//     quit; "reserved", "stats-job" (no space) and "peek-ready " are
//     BAD_FORMAT (a known command with trailing bytes); "put", "delete",
//     "use" without their space are UNKNOWN_COMMAND, so is "\r\n";
//     "pause-tubefoo 5" pauses tube foo.
//   - A NUL byte anywhere in a line is BAD_FORMAT.
//   - Numbers (ids, pri, delay, ttr, bytes, pause) are read_u64/read_u32:
//     any number of spaces (not tabs) before each, then decimal digits
//     only (no sign; leading zeros fine) fitting 64 or 32 bits; the last
//     argument must end the line (a trailing space is BAD_FORMAT).
//   - kick's bound is strtoul: leading tabs and other C white space, a
//     sign, trailing garbage are all accepted ("kick -1" is 2^64-1,
//     "kick 5abc" is 5), then truncated to 32 bits ("kick 4294967296"
//     kicks none); only no digits or a value over 2^64-1 is BAD_FORMAT.
//   - reserve-with-timeout is read as 1.13 reads it: spaces, then digits,
//     a value up to 2^31-1, anything after it ignored ("5x" is 5). 1.12
//     used strtol, taking "-1" as no timeout and "x" as 0; this package
//     answers those BAD_FORMAT, as 1.13 does.
//   - Tube names (use, watch, ignore, stats-tube: the whole rest of the
//     line) are 1 to 200 bytes of [A-Za-z0-9+/;.$_()-], not starting with
//     '-': ".", "..", "a/b" and "a-" are names, "use  a" (two spaces) and
//     "use a " are not.
//   - put: a body of exactly the maximum job size is accepted. A put over
//     it is JOB_TOO_BIG only after its <bytes> and two more bytes have
//     been read and thrown away, whatever they are; that check comes
//     before the one for bytes after <bytes>, so "put 0 0 1 70000x" also
//     swallows 70002 bytes. Any other malformed put line is BAD_FORMAT at
//     once and its body is read as the next command line. A body not
//     followed by "\r\n" is EXPECTED_CRLF, the two bytes read in its
//     place consumed.
//   - beanstalkd counts in cmd-put the puts that end in JOB_TOO_BIG,
//     EXPECTED_CRLF or BAD_FORMAT for trailing bytes, and in
//     cmd-pause-tube a pause-tube with a well-formed but invalid name
//     ("-x", over 200 bytes): for those Next returns the Verb with the
//     error. (It also spends a job id on an EXPECTED_CRLF put.)
//
// # Memory
//
// A Reader holds a 4 KiB bufio buffer and a 224-byte line, whatever the
// client sends: an over-long line and a too-big body are read through
// the buffer and dropped. A put's body is allocated per job, as its bytes
// arrive: 4 KiB first, doubling up to the announced size, never past it,
// so its capacity is at most the maximum job size and a client announcing
// a big body it never sends costs 4 KiB. Not a pool: the body is handed
// to the queue, which keeps it.
//
// # Replies
//
// The Append functions append one whole reply each, "\r\n" included:
// AppendInserted, AppendBuriedID, AppendReserved, AppendFound,
// AppendUsing, AppendWatching, AppendKickedCount, AppendWord (DELETED,
// RELEASED, BURIED, TOUCHED, KICKED, PAUSED) and AppendError for the error
// words. AppendJobStats, AppendTubeStats, AppendServerStats and
// AppendTubeList write the OK replies with beanstalkd's YAML: "---\n",
// then "key: value\n" lines in beanstalkd's key order (which is not
// protocol.txt's), or "- name\n" lines. String values are quoted as 1.13
// quotes them (tube, name, version, hostname, os, platform); 1.12 quoted
// only version. List entries are never quoted.
package beanstalk
