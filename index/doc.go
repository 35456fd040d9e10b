// Package index owns one queue's in-memory message states and the bytes
// that make them durable: the state table, the state-event codec,
// snapshots, and the state log. (What rides in each message-log record
// besides the body, the message metadata, is the queue's: queue/meta.go.)
//
// It holds no message bodies: those live in the message log (package log).
// The queue (package queue) serializes every call; nothing here is safe for
// concurrent use.
//
// # The state table
//
// A Table holds 16 bytes per message id (the id is implicit in the
// entry's place): a time (delay deadline, lease deadline, or a requeued
// message's sequence number), the offset of the message's frame in its
// log segment, the attempt count, one byte for the state and where the
// message goes when it is next ready, and one byte for its priority level
// (below). Get and Scan report it as an Entry, also 16 bytes, without the
// priority (Priority has it). Entries live in chunks of 4096 consecutive
// ids. A chunk at the front whose every id is done (acked, removed,
// purged, or a hole sealed by SealHoles) is released, so an acked prefix
// costs no memory; an id not yet inserted (an enqueue still in flight)
// keeps its chunk. Ids below FirstID are done and can never be inserted
// again.
//
// Ready order is by priority (uint32, 0 most urgent, DefaultPriority 1024
// for a message inserted without one); within one priority, messages
// nacked to the front first, in nack order; then the rest by id, where a
// message nacked to the back sorts right after the id that was newest when
// it was nacked. A nack keeps the message's priority unless it sets one
// (beanstalkd's release), as does death (bury may set one) and a redrive.
// Ready-by-id messages are a bitmap per chunk; nacked ones are a heap
// ordered by (priority, place). Delays and leases are deadline heaps, so
// the queue needs one timer (NextDeadline). Heap items are never removed
// in place: an item whose entry no longer matches it is stale and is
// dropped when it reaches the top.
//
// Every change after an enqueue is an Event, appended to the state log and
// replayed through Table.Apply on startup.
//
// # Priorities
//
// A table interns the distinct priorities of its live messages as levels,
// at most 255 at once; an entry holds its level in one byte. A level is
// freed when its last live message goes and reused by the next new
// priority, so priorities that move on (timestamps) do not use them up.
// Per level the table keeps its count of ready-by-id messages and a lower
// bound on their ids (where a search for its next one starts), and a list
// of the levels with ready messages sorted by priority; the next message
// is the head of the lowest such level or of the heap, whichever sorts
// first. Each chunk gets 255 two-byte counts of its ready-by-id messages
// per level (510 bytes, 0.125 B/msg) the first time a message of a level
// other than 0 is ready by id in it, so a search skips chunks without its
// level.
//
// Costs. One priority, whichever (not only 1024), takes level 0: no chunk
// counts, and the next message is the first bit of the bitmaps as before,
// so 16 B/msg and the same speed. A few priorities cost no bytes per
// message beyond the chunk counts, and a take walks the bitmap from its
// level's bound, skipping the bits of other levels (each about once per
// take of its own level). Past 255 distinct live priorities the rest go to
// an overflow level: their priority in a map (about 40 B/msg more) and,
// while ready by id, a heap item instead of a bit (32 B more and
// O(log n) a take), slower but ordered the same.
//
// # A subscription's table
//
// A topic's subscription (package queue) uses the same Table as a window
// over the topic's log: MaxID is its read position, ids past it are
// unread (in the topic, not in the table, so a backlog costs nothing),
// and ids are inserted as the subscription reads them. Seek restarts the
// window at an id (everything forgotten, attempts counting on from the
// highest ever leased, so no receipt is reused); Skip finishes every id up
// to one, read or not, and counts them (retention); NextReadyBefore says
// whether a ready message goes before the unread ones.
//
// # Encodings
//
// All fixed-width integers are little-endian. uvarint and varint are
// encoding/binary's unsigned varint and zigzag signed varint (at most 10
// bytes). All checksums are CRC-32C (Castagnoli). Decoders return errors
// wrapping ErrCorrupt for bytes that fail a checksum or do not parse.
//
// # State-log entry
//
// One state-log entry (EncodeEntry) is one group commit of state events:
//
//	Field    Type     Description
//	crc      uint32   CRC-32C of every byte after it (version and events)
//	version  uint8    entry format, 1 or 2; any other version is rejected.
//	                  EncodeEntry writes 1 unless an event sets a priority
//	                  or nacks in place,
//	                  so a queue that uses none stays readable by the build
//	                  before priorities
//	events   event... zero or more events back to back, to the end of the
//	                  entry
//
// # Event
//
//	Field    Type     Description
//	type     uint8    1 lease, 2 ack, 3 nack, 4 extend, 5 dead, 6 redrive,
//	                  7 remove, 8 purge, 9 expire, 10 ready, 11 moving,
//	                  12 seek, 13 skip; any other is rejected
//	id       uvarint  the message id, ≥ 1 (for purge and skip: every id up
//	                  to it; for seek: the first id read again)
//
// then, by type (other types have nothing more):
//
//	Field    Type     Description
//	lease:
//	attempt  uvarint  the lease's attempt number, 1..65535
//	deadline varint   when the lease runs out, unix ns
//	extend:
//	deadline varint   the lease's new deadline, unix ns
//	nack:
//	flags    uint8    bit 0: to the front; bit 1 (version 2): a new
//	                  priority follows; bit 2 (version 2): in place,
//	                  where its id puts it (beanstalkd's release), which
//	                  overrides bit 0 and after; other bits must be zero
//	ready-at varint   when the message becomes ready again, unix ns; 0 at once
//	after    uvarint  for a nack to the back, the newest id at the time:
//	                  the message goes after it, before later ids
//	priority uvarint  (bit 1) the message's new priority, ≤ 2^32-1
//	dead (version 2; in version 1 it has nothing more):
//	flags    uint8    bit 1: a new priority follows; other bits must be zero
//	priority uvarint  (bit 1) the message's new priority, ≤ 2^32-1
//	ready (a delay ran out):
//	after    uvarint  the newest id at the time, where a message nacked to
//	                  the back with a delay goes
//	moving (a dead message's copy is about to go to the dead-letter queue):
//	after    uvarint  the dead-letter queue's id from which the copy may
//	                  stand, 1..2^63-1 (kept in the dead entry's time)
//
// # Snapshot
//
// A snapshot (EncodeSnapshot) is the table at a state-log index:
//
//	Field        Type     Description
//	magic        [4]byte  "SPSN"
//	version      uint8    snapshot format, 3 (1 and 2 are still read: 1
//	                      ends after the redriven items, and before 3 every
//	                      message has DefaultPriority); any other is
//	                      rejected. EncodeSnapshot writes 2 when every live
//	                      message has DefaultPriority
//	reserved     [3]byte  zero
//	state index  uint64   state-log index of the last event the table
//	                      reflects; replay resumes after it
//	base         uint64   id of the first entry; ≡ 1 mod 4096 when n > 0
//	max id       uint64   highest id inserted; within the entries when n > 0
//	floor        uint64   every id up to it never inserted is done
//	requeue seq  int64    the last requeue sequence number handed out
//	priority     uvarint  (3) the common priority: the one most live
//	                      messages have (ties to the lowest), which their
//	                      entries do not repeat, so a single-priority
//	                      queue's snapshot does not grow per message
//	n            uvarint  number of entries, a multiple of 4096: ids base ..
//	                      base+n-1, the table's unreleased chunks
//	entries      entry... n entries, in id order
//	r            uvarint  number of requeued items
//	requeued     item...  r items
//	d            uvarint  number of redriven items
//	redriven     item...  d items, ids ascending
//	attempt floor uvarint (2) attempts every entry read since the last
//	                      seek starts at; ≤ max attempt
//	max attempt  uvarint  (2) highest attempt ever leased, ≤ 65535
//	                      (version 1: the highest an entry holds)
//	skipped      uvarint  (2) ids a skip finished that were not done
//	crc          uint32   CRC-32C of every byte before it
//
// Entry (1 byte for none and done):
//
//	Field        Type     Description
//	state        uint8    0 none (not inserted), 1 ready, 2 delayed,
//	                      3 leased, 4 dead, 5 done; 0 and 5 end the entry
//	offset       uvarint  frame offset in its log segment, ≤ 2^32-1
//	attempts     uvarint  attempts so far, ≤ 65535
//	requeue      uint8    0 by id, 1 front, 2 back; (3) plus 4 when the
//	                      message's priority is not the common one
//	priority     uvarint  (3, when requeue has 4 added) its priority, ≤ 2^32-1
//	time         varint   delayed: when it becomes ready (unix ns);
//	                      leased: lease deadline (unix ns); ready by a
//	                      nack: its requeue sequence number; ready by
//	                      id: 0; dead: 0
//
// Requeued item (one per ready message placed by a nack, in ready order;
// its priority is its entry's; the ready order of the rest is rebuilt from
// the entries, the deadline heaps from the delayed and leased entries):
//
//	Field        Type     Description
//	id           uvarint  the message id
//	after        uvarint  0 for a nack to the front, else the id it follows
//	seq          varint   its sequence number; equals its entry's time
//
// Redriven item (one per live message that was redriven: its attempts
// keep counting, and the tries that count against max attempts are those
// since the redrive):
//
//	Field        Type     Description
//	id           uvarint  the message id; a live entry
//	attempts     uvarint  its attempts at the last redrive, 1..65535
//
// # State log
//
// StateLog keeps one queue's entries in a github.com/tidwall/wal log, one
// entry per tidwall index (1, 2, ...), in segment files of about
// StateLogSegmentSize (256 KiB) named by their first index, 20 digits zero
// padded. tidwall frames each entry as
//
//	Field    Type     Description
//	length   uvarint  length of the entry that follows
//	entry    bytes    one state-log entry, with its own CRC
//
// tidwall has no checksums, refuses to open a torn tail and does not fsync
// directories, so StateLog adds:
//
//   - our CRC per entry (the state-log entry above);
//   - torn-tail repair before wal.Open: the newest segment is walked entry
//     by entry and cut (truncate, fsync) at the first entry that is short or
//     fails its CRC, reported as a StateLogRepair; only the newest segment
//     can be torn, since tidwall fsyncs a segment before starting the next;
//   - directory fsyncs: at the first Sync after open and after a write
//     that made tidwall start a segment file, and in TruncateFront.
//   - lazy opening: tidwall is opened only when an entry is written or
//     replayed, and closed again when the queue is idle (Release); the
//     last index is read from the newest segment, which the torn-tail
//     repair walks anyway.
//   - preallocation: up to 64 KiB of zeros past tidwall's writes in the
//     newest segment file, so that the fsyncs a group commit waits for
//     change no file length (statelog_prealloc.go). They are cut before
//     tidwall seals, rewrites or reopens the file; after a crash the
//     repair cuts an all-zero tail without reporting it (an entry never
//     starts with a zero length). No format change: older builds take
//     such a tail for a torn one and cut it too.
//
// Appends are not durable until Sync. Replay skips an entry that fails its
// CRC and reports it as damaged: losing a state event means a redelivery,
// never a lost message. TruncateFront drops the entries a snapshot covers.
package index
