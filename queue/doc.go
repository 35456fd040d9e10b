// Package queue owns spool's queue semantics: a Broker holds many named
// queues in one data directory; each Queue is a message log (package log)
// plus an in-memory table of message states (package index) kept durable
// by a state log and periodic snapshots.
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
// Ready order is FIFO by id, except that a message nacked to the front
// goes first, and a message nacked to the back goes after every message
// enqueued before the nack. After a restart, a nack to the back whose delay
// had not run out yet is placed by the newest id when its delay runs out.
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
//	DATA/queues/<name>/queue.json        config (version, checksum), replaced atomically
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
//	version  uint8    metadata format: 1, or 2 with an origin; any other
//	                  version is rejected
//	ready-at varint   when the message may first be received, unix ns;
//	                  0 at once
//	count    uvarint  number of attributes, ≤ MaxAttributes (64)
//	key len  uvarint  } count times: key length,
//	key      bytes    }   then the key,
//	val len  uvarint  }   value length,
//	value    bytes    }   then the value; all keys and values
//	                      together ≤ MaxAttributeBytes (16 KiB)
//	version 2 only (a copy a dead-letter move made):
//	queue len uvarint the origin queue's name length, 1..255
//	queue    bytes    the origin queue's name
//	origin   uvarint  the message's id there, ≥ 1
//
// The encoder writes keys in ascending byte order, so equal metadata
// encodes to equal bytes; the decoder rejects a duplicate key, attributes
// over the limits and any bytes after the last attribute (it does not
// insist on minimal varints or sorted keys). There is no checksum: the
// message log's frame checksum covers the metadata.
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
