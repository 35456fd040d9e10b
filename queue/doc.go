// Package queue owns spool's queue semantics: a Broker holds many named
// queues, and topics with subscriptions, in one data directory; each Queue
// is a message log (package log) plus an in-memory table of message states
// (package index) kept durable by a state log and periodic snapshots, and
// each subscription is a Queue reading its topic's shared log (# Topics).
//
// It is the embedded Go API: queue.Open(dir, queue.Options{}) returns a
// Broker usable without any server.
//
// # Semantics
//
// Delivery is at least once, with leases. Receive leases up to N ready
// messages for a visibility timeout and increments each one's attempts; a
// lease is identified by its Receipt (id, attempt). The consumer then
// acks it (done), nacks it (back to ready, at the front or the back of the
// queue, optionally after a delay), extends it, or fails it (dead at once).
// A lease that runs out returns the message to ready, in id order. A
// message is delivered at most MaxAttempts times: when a lease whose
// attempt equals MaxAttempts runs out or is nacked, the message goes dead,
// or moves to the queue's dead-letter queue (a new message there, same body
// and attributes) when one is configured and exists. Dead messages can be
// listed and redriven: back to ready with MaxAttempts more deliveries. A
// redriven message's attempts keep counting (attempt 6 after a redrive at
// 5), so a receipt is never handed out twice.
//
// Ready order is by priority (NewMessage.Priority: 0 first, default
// DefaultPriority, 1024), then FIFO by id, except that a message nacked
// to the front goes first among its priority, a message nacked to the
// back goes after every message enqueued before the nack, and one nacked
// in place (NackOptions.InPlace, beanstalkd's release) goes back where its
// id puts it. A nack or a fail may give a message a new priority
// (NackOptions.Priority, FailWithPriority); otherwise it keeps its own,
// through redrives and dead-letter moves too. After a restart, a nack to
// the back whose delay had not run out yet is placed by the newest id
// when its delay runs out. Priorities are a queue's: a topic delivers in
// publish order and refuses them.
//
// A lease lasts the receive's visibility if it gives one, else the
// message's own (NewMessage.VisibilityTimeout, beanstalkd's TTR), else
// the queue's visibility timeout. The table holds no lease lengths: a
// message with its own is leased for the queue's and extended to its own
// as soon as its record is read, the extend written to the state log
// before Receive hands the message out, as its lease was.
//
// Besides receipts, a message can be named by its id (jobs.go): Get,
// PeekReady, PeekDelayed, Remove (of one not leased), Kick (a dead or
// delayed one to ready), KickDelayed, LeaseID, LeaseReady and ReadyBelow, which
// beanstalkd's job commands need. Every queue has a Serial, a number
// unique in the data directory and kept in its queue.json, and may have
// a Label (CreateLabeled), a protocol's own name for it: a beanstalkd
// tube's job ids and tube names are made from them. A queue also keeps
// Attributes (attributes.go): small string pairs, set durably with
// SetAttributes, that a protocol adapter keeps with it (an SQS queue's
// tags); spool gives them no meaning.
//
// An ordered queue (CreateNew with CreateOptions.Ordered; SQS's FIFO
// queues) receives by group instead of by priority (ordered.go): a
// group's messages in id order, none while one of the group is leased by
// an earlier receive, and deduplicates enqueues by NewMessage.DedupID for
// DedupWindow, across restarts. The by-id leases (LeaseID, LeaseReady)
// do not look at groups: they are beanstalkd's, and its tubes are never
// ordered.
//
// # Durability
//
// With Sync=always (the default), Enqueue, Ack, Nack, Fail, Redrive,
// Purge, and config changes return only after their change is fsynced;
// concurrent calls share fsyncs (group commit) in both the message log and
// the state log. Receive does not wait for an fsync, but writes its lease
// events to the state log before it returns (writes go on while another
// caller's fsync runs), so a process crash (SIGKILL included) loses no
// lease: no receipt is ever handed out twice, and a message is never
// delivered more than MaxAttempts times (unless that write failed, on a
// full disk say: the receive still succeeds, and logs it). Maintenance fsyncs what receives
// wrote within a second; a power cut before that loses those leases, which
// means redeliveries (as at-least-once allows) that may reuse a lost
// lease's receipt. Extend's new deadline is written with the next commit or
// maintenance run: losing it only ends the lease at its old deadline.
//
// An ack that returned an error may or may not have happened; a message
// whose ack was not yet durable is never compacted away.
//
// A failed state-log write (a full disk) fails the call and is retried
// with the next one; the queue stays up. A failed fsync cannot be retried
// (the kernel may have dropped the pages): the calls committing then get
// that error (their outcome unknown, as for any failed call), and the
// queue reloads its state from disk in the next maintenance run (within a
// second). Until it has, calls return ErrUnavailable (HTTP 503
// unavailable, with Retry-After) having done nothing. A *Queue handle
// stays valid across a reload: it follows the reloaded queue.
//
// # On disk
//
//	DATA/queues/<name>/queue.json        config, serial, label, attributes (version, checksum), replaced atomically
//	DATA/queues/<name>/log/              message segments (package log)
//	DATA/queues/<name>/state/            state events (tidwall/wal, our CRC per entry)
//	DATA/queues/<name>/snapshot          table at a state-log index
//	DATA/queues/<name>/snapshot.prev     the one before, the fallback if snapshot is damaged
//
// Startup per queue: load the snapshot (or the previous one, or start
// empty), insert every log record past the table's first hole, then replay
// the state log after the snapshot's index. The state log is truncated to
// the previous snapshot's index, so one damaged snapshot never loses state.
// If both are damaged, the queue opens from whatever state log remains and
// says so: acked messages may be delivered again, none is lost.
//
// # Message metadata
//
// A message's Meta (meta.go) rides in its log record's metadata, which
// the log keeps as opaque bytes (EncodeMeta). Empty metadata (ready at once, no attributes) is zero
// bytes. Otherwise:
//
//	Field    Type     Description
//	version  uint8    metadata format: 1; 2 with an origin; 3 with a
//	                  flags byte (below); 4 for a priority alone (below);
//	                  any other version is rejected
//	version 4 only, and nothing else after it:
//	priority uvarint  the priority it was enqueued at, ≤ 2^32-1
//	versions 1-3:
//	ready-at varint   when the message may first be received, unix ns;
//	                  0 at once
//	count    uvarint  number of attributes, ≤ MaxAttributes (64)
//	key len  uvarint  } count times: key length,
//	key      bytes    }   then the key,
//	val len  uvarint  }   value length,
//	value    bytes    }   then the value; all keys and values
//	                      together ≤ MaxAttributeBytes (16 KiB)
//	version 3 only:
//	flags    uint8    bit 0: an origin follows; bit 1: a priority; bit 2:
//	                  a lease length; bit 3: a group; bit 4: a
//	                  deduplication key; at least one, no other bits
//	version 2, or version 3 with bit 0 (a copy a dead-letter move made):
//	queue len uvarint the origin queue's name length, 1..255
//	queue    bytes    the origin queue's name
//	origin   uvarint  the message's id there, ≥ 1
//	version 3 with bit 1:
//	priority uvarint  the priority it was enqueued at, ≤ 2^32-1
//	version 3 with bit 2:
//	lease    uvarint  its own lease length (visibility timeout), ns,
//	                  1..MaxVisibility
//	version 3 with bit 3 (a message of an ordered queue):
//	group len uvarint its group's length, 1..MaxGroupBytes (128)
//	group    bytes    its group
//	version 3 with bit 4:
//	dedup len uvarint its deduplication key's length, 1..MaxDedupBytes (512)
//	dedup    bytes    its deduplication key
//
// A message enqueued without a priority, lease length, origin, group or
// deduplication key gets the version 1 it had before these existed, so
// data written by this build opens in the one before unless it uses them.
// Version 4 replaces version 3 for a priority alone (2-6 bytes instead
// of 5-9): this build reads all four versions, and a build from before
// version 4 rejects such a record as damaged, so a data directory whose
// queues have priorities cannot go back to one.
//
// The encoder writes keys in ascending byte order, so equal metadata
// encodes to equal bytes; the decoder rejects a duplicate key, attributes
// over the limits and any bytes after the last attribute (it does not
// insist on minimal varints or sorted keys). There is no checksum: the
// message log's frame checksum covers the metadata.
//
// # Topics
//
// A Topic is one message log (the same format, written by Publish with a
// queue enqueue's limits and group commit) that many named Subscriptions
// read. A subscription is a Queue whose messages are the topic's: every
// queue operation works on it as on a queue (receive with long poll, ack,
// nack front/back/delayed, extend, fail, attempts, max attempts, dead
// letters kept or moved to a dead-letter queue, redrive, peek), with the
// same durability: under Sync=always a Publish returns once its messages
// are fsynced, and an ack, nack, fail, redrive or seek once its event is.
// Subscriptions deliver in id order (a message nacked to the back goes
// after every message published before the nack, read or not).
//
// Its table is a window over the topic (see subscription.go): ids up to
// its read position are in the table; past it, up to what the topic has
// published, they are unread, ready in id order and cost nothing, so a
// subscription's memory is its leased, nacked, delayed and out-of-order
// acked messages, never its backlog. Receive reads records in a few
// hundred at a time, read ahead without the lock; no event records a
// read: replay reads the records again wherever an event names an id past
// the read position. A subscription reads only what the topic has
// published (durably, under Sync=always), never a record whose publish
// could still be lost.
//
// Decisions where the design leaves room:
//
//   - Start (at creation only) and Seek take a Position: earliest (the
//     oldest the topic keeps), latest (the default: only what is published
//     from now on), an id (below the oldest kept: the oldest; past the
//     newest: from that id on), or a time (the first message published at
//     or after it). A topic's Seek resolves the position once, so every
//     subscription lands on the same id.
//   - A seek forgets the subscription's state: messages below its target
//     are done, those from it on unread; every lease held across it is a
//     stale receipt (a receipt for a message not read since is stale if
//     its attempt was reached before the seek, not found if not).
//     Attempts go on from the highest the subscription ever handed out,
//     so no receipt is reused; the tries that count against max attempts
//     start again, as after a redrive. After very many seeks (65535
//     attempts in all) messages go dead at once, as any out of attempts.
//   - Unread messages count as ready, one published with a delay too
//     until it is read (a delay is in the record, unread). Lag is ready,
//     delayed and leased: what it has not finished.
//   - Retention removes whole sealed segments, oldest first, never
//     rewriting one (a record's offset never changes): at once when every
//     subscription has finished it; by the topic's retention time (default
//     a week; 0: only when finished) or max bytes, finished or not. What a
//     subscription had not finished then is skipped, counted (Skipped,
//     kept across restarts), and its leases are stale. Each subscription's
//     skip is durable before the segment goes; one that did not open
//     keeps the topic from removing finished segments early.
//   - Under Sync=interval or none, a crash can lose publishes a
//     subscription had read: it then reads on from the topic's new end
//     (logged), missing the messages published again under those ids.
//
// On disk, beside the queues:
//
//	DATA/topics/<topic>/topic.json              config (version, checksum)
//	DATA/topics/<topic>/log/                    message segments (package log)
//	DATA/topics/<topic>/subscriptions/<sub>/sub.json   config and start id
//	DATA/topics/<topic>/subscriptions/<sub>/state/     its state events
//	DATA/topics/<topic>/subscriptions/<sub>/snapshot   (and snapshot.prev)
//
// A subscription's events are a queue's plus seek (12) and skip (13), and
// its snapshot keeps the highest attempt, the attempt floor and the
// skipped count (index.EncodeSnapshot, version 2).
//
// # Backup
//
// Broker.Backup streams a copy of the data directory as it stood at one
// moment, while the broker runs, and RestoreBackup writes it out as a
// data directory (backup.go has how the moment is taken).
//
// # Background work
//
// One goroutine per Broker runs maintenance: snapshots, retention, and
// compaction (removing sealed segments whose messages are all done,
// rewriting sealed segments with under half of their records live, within
// a byte budget per run that keeps up with the write rate, so the log
// stays within about twice the live data under churn). Each queue has
// one timer for its earliest delay or lease deadline; no message has a
// goroutine or timer of its own.
//
// Maintenance also gives back what a queue unused for Options.IdleTimeout
// (a minute) holds: its files, its log's committer goroutine, its buffers;
// the next use reopens them (see idle.go).
package queue
