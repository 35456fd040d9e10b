package queue

import (
	"container/list"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Queue is one named queue. Its methods are safe for concurrent use.
type Queue struct {
	b     *Broker
	name  string
	dir   string
	log   *log.Log
	state *index.StateLog

	mu       sync.Mutex
	cfg      Config
	t        *index.Table
	pending  []index.Event // applied to t, not yet written
	seq      uint64        // events applied so far, pending included
	inflight int           // messages being appended, counted against MaxLength
	// waiters are the long-poll receivers waiting for a message, oldest
	// first (*waiter). A message that becomes ready wakes one of them, not
	// all: with thousands parked, waking every one per enqueue made
	// enqueues quadratic.
	waiters list.List
	waiting atomic.Int32 // waiters.Len(), for Topic.Publish's look without mu
	closed  bool
	// reloading is set by Broker.reopen before it closes a broken q to
	// load it afresh: closed then means "being replaced", not "gone".
	reloading bool
	timer     *time.Timer
	timerAt   int64
	retained  uint64 // ids up to this were checked for retention
	// retainLeased are messages past retention that were leased when
	// retention reached them: it removes them once the lease is over.
	retainLeased []uint64

	// commitMu makes one caller at a time the writer of the state log,
	// and syncMu one at a time the leader of an fsync round (see
	// syncRound); callers that wait on a round wait on round.
	commitMu      sync.Mutex
	syncMu        sync.Mutex
	window        commitWindow
	soon          soonSync      // background fsync rounds (commitSoon)
	written       uint64        // seq written to the state log; under commitMu
	synced        atomic.Uint64 // seq fsynced; set under syncMu
	round         syncRoundState
	broken        atomic.Pointer[error]
	replacedBy    atomic.Pointer[Queue] // the queue reloaded from disk in q's place
	entryBuf      []byte
	spare         []index.Event
	sinceSnapshot int
	snapIndex     uint64     // state index of the current snapshot file
	snapMu        sync.Mutex // one snapshot at a time (maintenance, close)

	compaction compactor // the maintenance goroutine's alone

	// repairs counts the problems opening the queue found and logged
	// (torn tails cut, damaged ranges, entries or snapshots), for Open's
	// summary line.
	repairs int

	readMu sync.Mutex // guards cursor and oldest
	cursor *log.Cursor
	oldest struct { // the last enqueuedAt: its id and enqueue time (0: unreadable)
		id uint64
		at int64
	}

	stats struct {
		enqueued, acked, nacked, expired, dead, deadLettered, removed atomic.Uint64
	}

	// serial is the queue's number (Serial), as queue.json has it; 0
	// until it has one. Changed under b.mu and mu; read without either.
	serial atomic.Uint32
	// label is the name a protocol gave the queue at creation
	// (CreateLabeled), in queue.json; never changed.
	label string
	// attrs are the queue's attributes (SetAttributes), in queue.json;
	// under mu, replaced whole, never changed in place.
	attrs map[string]string

	// ordered is set, at open, for an ordered queue (ordered.go), and
	// never changes; what it points to is under mu.
	ordered *ordering

	// sub is set when q is a topic's subscription: its messages are the
	// topic's log (q.log, shared, the topic's to close and compact), read
	// into q.t as it goes (see subscription.go).
	sub *subscription
}

func (q *Queue) now() int64 { return q.b.opts.Now().UnixNano() }

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

// Label returns the label the queue was created with (CreateLabeled), or
// "".
func (q *Queue) Label() string { return q.label }

// live returns the queue q stands for now. A broken queue is reloaded
// from disk as a fresh *Queue; handles to the old one follow it, so a
// handle an embedding program keeps never goes stale.
func (q *Queue) live() *Queue {
	for next := q.replacedBy.Load(); next != nil; next = q.replacedBy.Load() {
		q = next
	}
	return q
}

// lockOpen locks q.mu for an operation and returns with it held, unless
// it fails (with mu released) because q is broken (a reload is due or
// under way: ErrUnavailable, retryable) or closed (deleted, or the broker
// closed: ErrQueueNotFound, or ErrSubscriptionNotFound, for good).
func (q *Queue) lockOpen() error {
	q.mu.Lock()
	if p := q.broken.Load(); p != nil && (!q.closed || q.reloading) {
		q.mu.Unlock()
		return fmt.Errorf("%w: queue %s is reloading its state from disk after a failure; retry shortly: %w", ErrUnavailable, q.name, *p)
	}
	if q.closed {
		q.mu.Unlock()
		return q.goneError()
	}
	return nil
}

// goneError is the error for a queue or subscription that is closed
// (deleted, or the broker closed): ErrQueueNotFound, or for a
// subscription ErrSubscriptionNotFound.
func (q *Queue) goneError() error {
	if q.sub != nil {
		return fmt.Errorf("%w: %s", ErrSubscriptionNotFound, q.name)
	}
	return fmt.Errorf("%w: %q", ErrQueueNotFound, q.name)
}

// applyLocked is the one door every state change goes through: it applies
// ev to the table and, only if that succeeded, queues the same ev for the
// state log, so what is logged is by construction what was done. Replay
// (replayTable) applies the logged events through the same Table.Apply.
// now matters only to a nack (delayed or not); the caller holds mu.
func (q *Queue) applyLocked(ev index.Event, now int64) error {
	if err := q.t.Apply(ev, now); err != nil {
		return err
	}
	q.pending = append(q.pending, ev)
	q.seq++
	if q.ordered != nil && q.ordered.changed(q.t, ev) {
		q.notifyLocked(1) // a group's next message may be received now
	}
	return nil
}

// Config returns the queue's configuration.
func (q *Queue) Config() Config {
	q = q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg
}

// fileLocked is what q's queue.json holds; the caller holds q.mu.
func (q *Queue) fileLocked() queueFile {
	return queueFile{Config: q.cfg, Serial: q.serial.Load(), Label: q.label, Attributes: q.attrs, Ordered: q.ordered != nil}
}

// Info returns the queue's config, counts and size.
func (q *Queue) Info() (Info, error) {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return Info{}, err
	}
	q.processDueLocked(q.now())
	c := countsOf(q.t)
	cfg := q.cfg
	oldestID, oldestReady := q.t.OldestReady() // under the lock that read the counts, so the two agree
	oldestOffset := q.t.Get(oldestID).Offset
	q.mu.Unlock()
	var bytes int64
	for _, s := range q.log.Segments() {
		bytes += s.Size
	}
	var oldest time.Time
	if oldestReady {
		oldest = q.enqueuedAt(oldestID, oldestOffset)
	}
	return Info{Name: q.name, Label: q.label, Serial: q.serial.Load(), Ordered: q.ordered != nil, Config: cfg, Counts: c, Bytes: bytes, OldestReady: oldest, Stats: q.statsNow()}, nil
}

// Enqueue appends msgs, all or nothing, and returns their ids. It returns
// once they are durable (under Sync=always). In an ordered queue a
// message whose DedupID is in the window is not appended: its id is the
// first one's (an enqueue of the key still under way is waited for).
func (q *Queue) Enqueue(msgs []NewMessage) ([]uint64, error) {
	q = q.live()
	if err := q.b.checkNewMessages(msgs); err != nil {
		return nil, err
	}
	if err := q.lockOpen(); err != nil {
		return nil, err
	}
	if q.ordered == nil {
		for i, m := range msgs {
			if m.Group != "" || m.DedupID != "" {
				q.mu.Unlock()
				return nil, fmt.Errorf("%w: message %d: a group or deduplication id is for ordered queues; %q is not one", ErrInvalid, i, q.name)
			}
		}
	}
	q.processDueLocked(q.now()) // what is due goes before these messages
	ids := make([]uint64, len(msgs))
	toAppend := msgs
	var dups *dedupBatch
	if q.ordered != nil {
		var err error
		if dups, err = q.dedupLocked(msgs, ids); err != nil {
			return nil, err
		}
		toAppend = dups.fresh
		if len(toAppend) == 0 {
			q.mu.Unlock()
			return ids, nil
		}
	}
	if max := q.cfg.MaxLength; max > 0 && q.t.Live()+q.inflight+len(toAppend) > max {
		n := q.t.Live() + q.inflight
		dups.settle(q, 0, 0)
		q.mu.Unlock()
		return nil, fmt.Errorf("%w: %q holds %d of at most %d messages and cannot take %d more", ErrQueueFull, q.name, n, max, len(toAppend))
	}
	q.inflight += len(toAppend)
	defaultDelay := q.cfg.Delay
	q.mu.Unlock()

	appendedAt := q.now()
	batch := newRecords(toAppend, defaultDelay, appendedAt)
	first, pos, err := q.log.Append(batch.recs)
	batch.release()

	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight -= len(toAppend)
	if err != nil {
		dups.settle(q, 0, 0)
		return nil, appendError("enqueue to", q.name, err)
	}
	ready := 0
	now := q.now()
	for i := range toAppend {
		id := first + uint64(i)
		readyAt := toAppend[i].readyAt(defaultDelay, appendedAt)
		q.t.InsertPriority(id, uint32(pos.Offset), toAppend[i].priority(), readyAt, now)
		if q.ordered != nil {
			q.ordered.add(q.t, id, toAppend[i].Group)
		}
		if readyAt <= now {
			ready++
		}
	}
	if dups != nil {
		dups.settle(q, first, appendedAt)
		dups.fill(ids, first)
	} else {
		for i := range ids {
			ids[i] = first + uint64(i)
		}
	}
	q.stats.enqueued.Add(uint64(len(toAppend)))
	q.notifyLocked(ready)
	q.armTimerLocked()
	return ids, nil
}

// checkNewMessages checks what Enqueue and Publish take: at least one
// message, each within the size, attribute and delay limits.
func (b *Broker) checkNewMessages(msgs []NewMessage) error {
	if len(msgs) == 0 {
		return fmt.Errorf("%w: no messages", ErrInvalid)
	}
	for i, m := range msgs {
		if len(m.Body) > b.opts.MaxMessageBytes {
			return fmt.Errorf("%w: message %d is %d bytes, limit %d", ErrTooLarge, i, len(m.Body), b.opts.MaxMessageBytes)
		}
		if err := checkAttributes(m.Attributes); err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if m.Delay != nil && (*m.Delay < 0 || *m.Delay > MaxDelay) {
			return fmt.Errorf("%w: message %d: delay %s must be between 0 and %s", ErrInvalid, i, *m.Delay, MaxDelay)
		}
		if m.VisibilityTimeout < 0 || m.VisibilityTimeout > MaxVisibility {
			return fmt.Errorf("%w: message %d: visibility_timeout %s must be between 0 and %s", ErrInvalid, i, m.VisibilityTimeout, MaxVisibility)
		}
		if len(m.Group) > MaxGroupBytes || len(m.DedupID) > MaxDedupBytes {
			return fmt.Errorf("%w: message %d: a group of %d bytes or a deduplication id of %d (at most %d and %d)", ErrInvalid, i, len(m.Group), len(m.DedupID), MaxGroupBytes, MaxDedupBytes)
		}
	}
	return nil
}

// recordBatch is the log records of one append and the metadata bytes
// they point into. Enqueue and Publish take one from batchPool and give
// it back once the log has copied the records into its frame, so a busy
// producer allocates neither per batch.
type recordBatch struct {
	recs  []log.Record
	metas []byte // every record's metadata, back to back: one buffer, not one each
}

var batchPool = sync.Pool{New: func() any { return new(recordBatch) }}

// Batches bigger than these go to the garbage collector, not back to the
// pool: one huge batch must not pin its buffers for good.
const (
	maxPooledRecords = 1024
	maxPooledMetas   = 64 << 10
)

// newRecords returns the log records of msgs appended at now; a message
// without a delay of its own gets defaultDelay. The caller releases the
// batch once Append has returned.
func newRecords(msgs []NewMessage, defaultDelay time.Duration, now int64) *recordBatch {
	b := batchPool.Get().(*recordBatch)
	if cap(b.recs) < len(msgs) {
		b.recs = make([]log.Record, len(msgs))
	}
	b.recs = b.recs[:len(msgs)]
	metas := b.metas[:0]
	// One Meta, filled field by field: a composite literal a message is
	// built on the stack and then copied, and the copy's wide loads of
	// the narrow stores just made stall on every message.
	var meta Meta
	for i := range msgs {
		m := &msgs[i]
		meta.ReadyAt = m.readyAt(defaultDelay, now)
		meta.Attributes = m.Attributes
		meta.Origin = m.origin
		meta.Priority = m.Priority
		meta.VisibilityTimeout = m.VisibilityTimeout
		meta.Group, meta.DedupID = m.Group, m.DedupID
		start := len(metas)
		// Should this append grow the buffer, the records before keep
		// pointing into the old one, which still holds their bytes.
		metas = encodeMeta(metas, &meta)
		r := &b.recs[i]
		r.Time, r.Body = now, m.Body
		if len(metas) > start {
			r.Meta = metas[start:len(metas):len(metas)]
		}
	}
	b.metas = metas
	return b
}

// release gives b back to the pool, holding no bodies.
func (b *recordBatch) release() {
	if cap(b.recs) > maxPooledRecords || cap(b.metas) > maxPooledMetas {
		return
	}
	clear(b.recs)
	batchPool.Put(b)
}

// readyAt is when m, appended at now, may first be received (0: at
// once); without a delay of its own it gets defaultDelay.
func (m *NewMessage) readyAt(defaultDelay time.Duration, now int64) int64 {
	delay := defaultDelay
	if m.Delay != nil {
		delay = *m.Delay
	}
	if delay > 0 {
		return now + int64(delay)
	}
	return 0
}

func (m *NewMessage) priority() uint32 { return priorityOr(m.Priority) }

// priorityOr is *p, or DefaultPriority if p is nil.
func priorityOr(p *uint32) uint32 {
	if p == nil {
		return DefaultPriority
	}
	return *p
}

// appendError is the error of an append of messages to a queue or topic
// (what says "enqueue to" or "publish to" name) that failed.
func appendError(what, name string, err error) error {
	if errors.Is(err, log.ErrTooLarge) {
		// One batch is one frame of the log: MaxBatchBytes in all.
		return fmt.Errorf("%w: the batch does not fit one log frame (%d bytes of bodies and metadata at most): %w", ErrTooLarge, MaxBatchBytes, err)
	}
	return fmt.Errorf("%s %s: %w", what, name, err)
}

func checkAttributes(attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return fmt.Errorf("%w: %d attributes, at most %d", ErrInvalid, len(attrs), MaxAttributes)
	}
	n := 0
	for k, v := range attrs {
		n += len(k) + len(v)
	}
	if n > MaxAttributeBytes {
		return fmt.Errorf("%w: attributes take %d bytes, at most %d", ErrInvalid, n, MaxAttributeBytes)
	}
	return nil
}

// Purge removes every message the queue holds.
func (q *Queue) Purge() error {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.processDueLocked(q.now())
	if upTo := q.t.MaxID(); upTo > 0 {
		q.applyLocked(index.Event{Type: index.EvPurge, ID: upTo}, 0) // a purge cannot fail
	}
	seq := q.seq
	q.mu.Unlock()
	return q.commit(seq, true)
}

// close snapshots (if asked) and closes the queue's files. Long-poll
// receivers wake and get ErrQueueNotFound.
func (q *Queue) close(snapshot bool) error {
	var errs []error
	if snapshot && q.broken.Load() == nil {
		errs = append(errs, q.snapshot())
	}
	q.snapMu.Lock() // a maintenance snapshot may be writing its file
	defer q.snapMu.Unlock()
	q.syncMu.Lock() // an fsync round may be under way
	defer q.syncMu.Unlock()
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	if q.timer != nil {
		q.timer.Stop()
	}
	q.notifyLocked(q.waiters.Len()) // they find q closed (or replaced) and go on
	q.mu.Unlock()
	if q.sub == nil { // a subscription's log is its topic's
		errs = append(errs, q.log.Close())
	}
	return errors.Join(append(errs, q.state.Close())...)
}
