package queue

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Receipt identifies one lease: the message id and the attempt number it
// was leased with. Its text form is "id.attempt", e.g. "42.3".
type Receipt struct {
	ID      uint64
	Attempt uint16
}

func (r Receipt) String() string {
	return strconv.FormatUint(r.ID, 10) + "." + strconv.FormatUint(uint64(r.Attempt), 10)
}

// ParseReceipt parses "id.attempt".
func ParseReceipt(s string) (Receipt, error) {
	idText, attText, ok := strings.Cut(s, ".")
	id, err1 := strconv.ParseUint(idText, 10, 64)
	att, err2 := strconv.ParseUint(attText, 10, 16)
	if !ok || err1 != nil || err2 != nil || id == 0 || att == 0 {
		return Receipt{}, fmt.Errorf("%w: receipt %q (want id.attempt, e.g. 42.3)", ErrInvalid, s)
	}
	return Receipt{ID: id, Attempt: uint16(att)}, nil
}

// NewMessage is a message to enqueue.
type NewMessage struct {
	Body []byte
	// Delay before the message can be received; nil means the queue's
	// default delay.
	Delay *time.Duration
	// Attributes are small string pairs carried with the message (at most
	// MaxAttributes, MaxAttributeBytes in all).
	Attributes map[string]string

	origin *Origin // set by dead-letter moves (see moveDead)
}

// Message is a message as received, peeked or listed.
type Message struct {
	ID         uint64
	Receipt    Receipt // set by Receive only
	Attempts   int
	State      State
	EnqueuedAt time.Time
	Body       []byte
	Attributes map[string]string
}

// Counts are a queue's messages by state.
type Counts struct {
	Ready, Delayed, Leased, Dead, Total int
}

// Info describes a queue.
type Info struct {
	Name   string
	Config Config
	Counts Counts
	Bytes  int64 // message-log bytes on disk
	Stats  Stats
	// Err, in Broker.List, is why a queue did not open (ErrQueueDamaged);
	// the other fields are then zero.
	Err error
}

func countsOf(t *index.Table) Counts {
	c := Counts{
		Ready:   t.Count(index.StateReady),
		Delayed: t.Count(index.StateDelayed),
		Leased:  t.Count(index.StateLeased),
		Dead:    t.Count(index.StateDead),
	}
	c.Total = c.Ready + c.Delayed + c.Leased + c.Dead
	return c
}

// Stats are running totals since the queue was opened.
type Stats struct {
	Enqueued, Acked, Nacked, Expired, Dead, DeadLettered, Removed uint64
}

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
	// and syncMu one at a time the leader of an fsync round (see commit).
	commitMu      sync.Mutex
	syncMu        sync.Mutex
	window        commitWindow
	written       uint64 // seq written to the state log; under commitMu
	synced        uint64 // seq fsynced; under syncMu
	broken        atomic.Pointer[error]
	replacedBy    atomic.Pointer[Queue] // the queue reloaded from disk in q's place
	entryBuf      []byte
	spare         []index.Event
	sinceSnapshot int
	snapIndex     uint64     // state index of the current snapshot file
	snapMu        sync.Mutex // one snapshot at a time (maintenance, close)

	compaction compactor // the maintenance goroutine's alone

	readMu sync.Mutex // guards cursor
	cursor *log.Cursor

	stats struct {
		enqueued, acked, nacked, expired, dead, deadLettered, removed atomic.Uint64
	}
}

func (q *Queue) now() int64 { return q.b.opts.Now().UnixNano() }

// Name returns the queue's name.
func (q *Queue) Name() string { return q.name }

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
// closed: ErrQueueNotFound, for good).
func (q *Queue) lockOpen() error {
	q.mu.Lock()
	if p := q.broken.Load(); p != nil && (!q.closed || q.reloading) {
		q.mu.Unlock()
		return fmt.Errorf("%w: queue %s is reloading its state from disk after a failure; retry shortly: %w", ErrUnavailable, q.name, *p)
	}
	if q.closed {
		q.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrQueueNotFound, q.name)
	}
	return nil
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
	return nil
}

// waiter is one long-poll receiver parked on a queue.
type waiter struct {
	ch   chan struct{} // buffered (1): notify never blocks
	elem *list.Element // in q.waiters; nil once notified
}

// notify wakes up to n waiters, oldest first: n messages became ready.
// The caller holds mu.
func (q *Queue) notify(n int) {
	for ; n > 0 && q.waiters.Len() > 0; n-- {
		w := q.waiters.Remove(q.waiters.Front()).(*waiter)
		w.elem = nil
		w.ch <- struct{}{}
	}
}

// park adds w to the waiters: at the back when it starts waiting, at the
// front when it was woken but found nothing (another receiver was
// faster), so it keeps its turn. The caller holds mu.
func (q *Queue) park(w *waiter, again bool) {
	if again {
		w.elem = q.waiters.PushFront(w)
	} else {
		w.elem = q.waiters.PushBack(w)
	}
}

// unpark takes a waiter that stops waiting off the list. If it had been
// woken already, the message it was woken for is someone else's now: wake
// the next waiter in its place, unless the caller is going to look for a
// message itself (keep).
func (q *Queue) unpark(w *waiter, keep bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if w.elem != nil {
		q.waiters.Remove(w.elem)
		w.elem = nil
		return
	}
	select {
	case <-w.ch:
		if !keep {
			q.notify(1)
		}
	default:
	}
}

// commit makes the events up to upTo written to the state log, and, if
// durable and the sync policy is always, fsynced.
//
// Writing and fsyncing are two locks: commitMu serializes writes, syncMu
// fsync rounds (lock order syncMu, commitMu, mu). A durable caller queues
// on syncMu; the round's leader writes every pending event under commitMu,
// then fsyncs without it, so receives (whose lease events are written
// before they return) and the next round's events never wait for an
// fsync. Callers queued behind a round usually find their events durable
// when it ends (group commit).
func (q *Queue) commit(upTo uint64, durable bool) error {
	if !durable || q.b.opts.Sync != log.SyncAlways {
		q.commitMu.Lock()
		defer q.commitMu.Unlock()
		return q.writeLocked(upTo)
	}
	q.window.enter()
	defer q.window.leave()
	return q.syncRound(upTo, true)
}

// syncRound writes and fsyncs the events up to upTo unless they are
// durable already: one fsync round, led by the caller (window says whether
// to wait for more callers first).
func (q *Queue) syncRound(upTo uint64, window bool) error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	if p := q.broken.Load(); p != nil {
		return *p
	}
	if q.synced >= upTo {
		return nil
	}
	if window {
		q.window.wait()
	}
	q.commitMu.Lock()
	err := q.writeLocked(upTo)
	seq := q.written
	var sync func() error
	if err == nil {
		sync, err = q.state.PrepareSync()
	}
	q.commitMu.Unlock()
	if err != nil {
		return err
	}
	took, err := q.syncState(sync, seq)
	if err != nil {
		return err
	}
	if window {
		q.window.synced(took)
	}
	q.synced = seq
	return nil
}

// writeLocked writes every pending event if those up to upTo are not
// written yet. The caller holds commitMu.
func (q *Queue) writeLocked(upTo uint64) error {
	if p := q.broken.Load(); p != nil {
		return *p
	}
	if q.written >= upTo {
		return nil
	}
	q.mu.Lock()
	events, seq := q.pending, q.seq
	q.pending = q.spare[:0]
	q.mu.Unlock()
	if len(events) > 0 {
		q.entryBuf = index.EncodeEntry(q.entryBuf[:0], events)
		if _, err := q.state.Append(q.entryBuf); err != nil {
			return q.retryLater(events, err)
		}
		q.sinceSnapshot += len(events)
	}
	q.spare = events[:0]
	q.written = seq
	return nil
}

// syncState runs sync (an fsync of the state log), which makes the events
// up to seq durable, and reports it to Options.OnStateSync. A failure
// breaks the queue: the kernel may have dropped the pages. The caller
// holds syncMu and sets synced.
func (q *Queue) syncState(sync func() error, seq uint64) (time.Duration, error) {
	start := time.Now()
	if err := sync(); err != nil {
		return 0, q.breakWith(err)
	}
	took := time.Since(start)
	if hook := q.b.opts.OnStateSync; hook != nil {
		hook(q.name, int(seq-q.synced), took)
	}
	return took, nil
}

// retryLater handles a failed state-log write (a full disk, typically)
// without taking the queue down: tidwall/wal cannot be trusted after a
// failed write, so the state log is reopened (cutting whatever part of the
// entry reached the file), and the events go back in front of the pending
// ones, to be written by the next commit. The caller gets the error (an
// ack on a full disk is a 507 that may or may not have happened, which is
// what an error promises). Only if the reopen fails is the queue broken.
// The caller holds commitMu.
func (q *Queue) retryLater(events []index.Event, cause error) error {
	err := fmt.Errorf("queue %s: state log: %w", q.name, cause)
	if cerr := q.state.Close(); cerr != nil {
		q.b.opts.Logger.Warn("queue: closing the state log after a failed write", "queue", q.name, "err", cerr)
	}
	st, _, oerr := q.openStateLog()
	if oerr != nil {
		return q.breakWith(errors.Join(cause, oerr))
	}
	q.state = st
	q.mu.Lock()
	q.pending = append(append(make([]index.Event, 0, len(events)+len(q.pending)), events...), q.pending...)
	q.mu.Unlock()
	q.spare = nil // events' backing array now lives on in pending
	return err
}

// breakWith marks the queue unusable: its in-memory state may hold changes
// the state log does not. Maintenance reloads it from disk.
func (q *Queue) breakWith(err error) error {
	err = fmt.Errorf("queue %s: state log: %w", q.name, err)
	q.broken.CompareAndSwap(nil, &err)
	q.b.opts.Logger.Error("queue: state log failed; the queue reloads its state", "queue", q.name, "err", err)
	return err
}

// Config returns the queue's configuration.
func (q *Queue) Config() Config {
	q = q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.cfg
}

func (q *Queue) update(u ConfigUpdate) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return fmt.Errorf("%w: %q", ErrQueueNotFound, q.name)
	}
	cfg, err := q.cfg.apply(u, q.name)
	if err != nil {
		return err
	}
	if cfg == q.cfg {
		return nil
	}
	if err := writeConfig(q.b.opts.FS, q.dir, cfg); err != nil {
		return err
	}
	q.cfg = cfg
	return nil
}

// Info returns the queue's config, counts and size.
func (q *Queue) Info() (Info, error) {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return Info{}, err
	}
	q.processDue(q.now())
	c := countsOf(q.t)
	cfg := q.cfg
	q.mu.Unlock()
	var bytes int64
	for _, s := range q.log.Segments() {
		bytes += s.Size
	}
	return Info{Name: q.name, Config: cfg, Counts: c, Bytes: bytes, Stats: Stats{
		Enqueued: q.stats.enqueued.Load(), Acked: q.stats.acked.Load(), Nacked: q.stats.nacked.Load(),
		Expired: q.stats.expired.Load(), Dead: q.stats.dead.Load(), DeadLettered: q.stats.deadLettered.Load(),
		Removed: q.stats.removed.Load(),
	}}, nil
}

// Enqueue appends msgs, all or nothing, and returns their ids. It returns
// once they are durable (under Sync=always).
func (q *Queue) Enqueue(msgs []NewMessage) ([]uint64, error) {
	q = q.live()
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: no messages", ErrInvalid)
	}
	for i, m := range msgs {
		if len(m.Body) > q.b.opts.MaxMessageBytes {
			return nil, fmt.Errorf("%w: message %d is %d bytes, limit %d", ErrTooLarge, i, len(m.Body), q.b.opts.MaxMessageBytes)
		}
		if err := checkAttributes(m.Attributes); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		if m.Delay != nil && (*m.Delay < 0 || *m.Delay > MaxDelay) {
			return nil, fmt.Errorf("%w: message %d: delay %s must be between 0 and %s", ErrInvalid, i, *m.Delay, MaxDelay)
		}
	}
	if err := q.lockOpen(); err != nil {
		return nil, err
	}
	q.processDue(q.now()) // what is due goes before these messages
	if max := q.cfg.MaxLength; max > 0 && q.t.Live()+q.inflight+len(msgs) > max {
		n := q.t.Live() + q.inflight
		q.mu.Unlock()
		return nil, fmt.Errorf("%w: %q holds %d of %d messages, %d more do not fit", ErrQueueFull, q.name, n, max, len(msgs))
	}
	q.inflight += len(msgs)
	defaultDelay := q.cfg.Delay
	q.mu.Unlock()

	now := q.now()
	recs := make([]log.Record, len(msgs))
	readyAt := make([]int64, len(msgs))
	for i, m := range msgs {
		delay := defaultDelay
		if m.Delay != nil {
			delay = *m.Delay
		}
		if delay > 0 {
			readyAt[i] = now + int64(delay)
		}
		recs[i] = log.Record{Time: now, Meta: EncodeMeta(nil, Meta{ReadyAt: readyAt[i], Attributes: m.Attributes, Origin: m.origin}), Body: m.Body}
	}
	first, pos, err := q.log.Append(recs)

	q.mu.Lock()
	defer q.mu.Unlock()
	q.inflight -= len(msgs)
	if errors.Is(err, log.ErrTooLarge) {
		// One batch is one frame of the log: MaxBatchBytes in all.
		return nil, fmt.Errorf("%w: the batch does not fit one log frame (%d bytes of bodies and metadata at most): %w", ErrTooLarge, MaxBatchBytes, err)
	}
	if err != nil {
		return nil, fmt.Errorf("enqueue to %s: %w", q.name, err)
	}
	ids := make([]uint64, len(msgs))
	ready := 0
	now = q.now()
	for i := range msgs {
		ids[i] = first + uint64(i)
		q.t.Insert(ids[i], uint32(pos.Offset), readyAt[i], now)
		if readyAt[i] <= now {
			ready++
		}
	}
	q.stats.enqueued.Add(uint64(len(msgs)))
	q.notify(ready)
	q.armTimer()
	return ids, nil
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

// ReceiveOptions tune Receive.
type ReceiveOptions struct {
	Max        int           // messages at most (default 1, at most MaxReceive)
	Wait       time.Duration // long poll: wait this long for a first message
	Visibility time.Duration // lease length; 0 means the queue's visibility timeout
}

// MaxBatchBytes bounds one Enqueue's bodies and metadata together: a batch
// is written as one frame of the log, so it is durable all or nothing.
const MaxBatchBytes = log.MaxFramePayload

// Receive limits.
const (
	MaxReceive = 1000
	MaxWait    = 20 * time.Minute
)

// Receive leases up to o.Max ready messages. With o.Wait it blocks until a
// message is ready, the wait is over (nil, nil) or ctx ends (ctx.Err()); a
// receiver that gives up leases nothing.
func (q *Queue) Receive(ctx context.Context, o ReceiveOptions) ([]Message, error) {
	var msgs []Message
	_, err := q.ReceiveEach(ctx, o, func(m Message) error {
		msgs = append(msgs, m)
		return nil
	})
	return msgs, err
}

// ReceiveEach is Receive that hands each leased message to fn as its body
// is read, and returns how many it handed out: a caller streaming a reply
// holds one body at a time, not o.Max of them. If fn fails (the client
// went away), the messages not yet handed out stay leased until their
// lease runs out, and ReceiveEach returns fn's error.
func (q *Queue) ReceiveEach(ctx context.Context, o ReceiveOptions, fn func(Message) error) (int, error) {
	if o.Max == 0 {
		o.Max = 1
	}
	switch {
	case o.Max < 0 || o.Max > MaxReceive:
		return 0, fmt.Errorf("%w: max %d must be between 1 and %d", ErrInvalid, o.Max, MaxReceive)
	case o.Wait < 0 || o.Wait > MaxWait:
		return 0, fmt.Errorf("%w: wait %s must be between 0 and %s", ErrInvalid, o.Wait, MaxWait)
	case o.Visibility < 0 || o.Visibility > MaxVisibility:
		return 0, fmt.Errorf("%w: visibility %s must be between 0 and %s", ErrInvalid, o.Visibility, MaxVisibility)
	}
	var timer *time.Timer
	var w *waiter
	woken := false
	for {
		q = q.live() // follow a finished reload (see live)
		if err := q.lockOpen(); err != nil {
			return 0, err
		}
		now := q.now()
		q.processDue(now)
		vis := o.Visibility
		if vis == 0 {
			vis = q.cfg.VisibilityTimeout
		}
		var leased []leasedMsg
		for len(leased) < o.Max {
			id, ok := q.t.NextReady()
			if !ok {
				break
			}
			e := q.t.Get(id)
			if e.Attempts == math.MaxUint16 {
				q.kill(id) // no attempt number left for a receipt
				continue
			}
			attempt := e.Attempts + 1
			until := now + int64(vis)
			if err := q.applyLocked(index.Event{Type: index.EvLease, ID: id, Attempt: attempt, Time: until}, now); err != nil {
				q.mu.Unlock()
				return 0, fmt.Errorf("receive from %s: %w", q.name, err)
			}
			leased = append(leased, leasedMsg{id: id, attempt: attempt, offset: e.Offset})
		}
		if len(leased) > 0 {
			q.armTimer()
			if _, more := q.t.NextReady(); more {
				q.notify(1) // what this receive left is the next waiter's
			}
			seq := q.seq
			q.mu.Unlock()
			q.writeLeases(seq)
			return q.readLeased(leased, fn)
		}
		if o.Wait == 0 {
			q.mu.Unlock()
			return 0, nil
		}
		if w == nil {
			w = &waiter{ch: make(chan struct{}, 1)}
		}
		parkedOn := q
		q.park(w, woken)
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(o.Wait)
			defer timer.Stop()
		}
		select {
		case <-w.ch:
			woken = true
		case <-timer.C:
			parkedOn.unpark(w, true)
			o.Wait = 0 // one last look, then give up
		case <-ctx.Done():
			parkedOn.unpark(w, false)
			return 0, ctx.Err()
		}
	}
}

// writeLeases writes the events up to seq, the receive's leases among
// them, to the state log before their receipts leave, without an fsync:
// a process that dies (SIGKILL, a crash) then restarts knowing every
// attempt it handed out, so no receipt is ever issued twice. Only a power
// cut can lose them (up to the next fsync, at most a maintenance interval
// away): then a receipt may be issued again. A failed write leaves the
// events pending for the next commit; the receive still succeeds, since
// consumers must be able to drain a queue on a full disk.
func (q *Queue) writeLeases(seq uint64) {
	if err := q.commit(seq, false); err != nil {
		q.b.opts.Logger.Warn("queue: lease events not written yet; a crash before the next commit may reissue their receipts", "queue", q.name, "err", err)
	}
}

type leasedMsg struct {
	id      uint64
	attempt uint16
	offset  uint32
}

// readLeased reads the bodies of freshly leased messages, one at a time,
// and hands each to fn. A message whose record cannot be read (damage the
// log reported) is failed rather than handed out broken, and left out.
func (q *Queue) readLeased(leased []leasedMsg, fn func(Message) error) (int, error) {
	n := 0
	for _, l := range leased {
		m, err := q.read(l.id, l.offset)
		if err != nil && !errors.Is(err, log.ErrCorrupt) && !errors.Is(err, log.ErrNotFound) {
			// Not damage: the file could not be read now (an idle queue's
			// segment reopened into a full file table, an I/O error). The
			// message is sound: its lease ends at once, as an expiry would.
			q.b.opts.Logger.Warn("queue: leased message could not be read now; returning it to the queue", "queue", q.name, "id", l.id, "err", err)
			q.mu.Lock()
			if e := q.t.Get(l.id); e.State == index.StateLeased && e.Attempts == l.attempt {
				if q.t.Tries(l.id) >= q.cfg.MaxAttempts {
					q.kill(l.id)
				} else if q.applyLocked(index.Event{Type: index.EvExpire, ID: l.id}, 0) == nil {
					q.stats.expired.Add(1)
					q.notify(1)
				}
			}
			q.mu.Unlock()
			continue
		}
		if err != nil {
			q.b.opts.Logger.Error("queue: leased message cannot be read; failing it", "queue", q.name, "id", l.id, "err", err)
			q.mu.Lock()
			if q.t.Get(l.id).State == index.StateLeased {
				q.kill(l.id)
			}
			q.mu.Unlock()
			continue
		}
		m.Receipt = Receipt{ID: l.id, Attempt: l.attempt}
		m.Attempts = int(l.attempt)
		m.State = index.StateLeased
		if err := fn(m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// read returns a copy of the message's record.
func (q *Queue) read(id uint64, offset uint32) (Message, error) {
	q.readMu.Lock()
	defer q.readMu.Unlock()
	rec, err := q.cursor.ReadAt(id, log.Position{Offset: int64(offset)})
	if err != nil {
		return Message{}, err
	}
	meta, err := DecodeMeta(rec.Meta)
	if err != nil {
		return Message{}, err
	}
	return Message{ID: id, EnqueuedAt: time.Unix(0, rec.Time), Body: slices.Clone(rec.Body), Attributes: meta.Attributes}, nil
}

// processDue applies what the clock says happened: delays run out, leases
// expire (or, out of attempts, the message goes dead). The caller holds mu.
func (q *Queue) processDue(now int64) {
	woke := 0
	for {
		id, ok := q.t.DueDelay(now)
		if !ok {
			break
		}
		// Logged so a replay makes it ready at the same point among the
		// other events, in the same place, whatever the clock says then.
		// DueDelay returned a delayed message: this cannot fail.
		q.applyLocked(index.Event{Type: index.EvReady, ID: id, After: q.t.MaxID()}, now)
		woke++
	}
	for {
		id, due := q.t.DueLease(now)
		if !due {
			break
		}
		if q.t.Tries(id) >= q.cfg.MaxAttempts {
			q.kill(id)
			continue
		}
		q.applyLocked(index.Event{Type: index.EvExpire, ID: id}, now) // DueLease returned a leased message: cannot fail
		q.stats.expired.Add(1)
		woke++
	}
	q.notify(woke)
}

// kill makes a message dead; maintenance moves it on to the dead-letter
// queue if one is configured. The caller holds mu.
func (q *Queue) kill(id uint64) {
	if q.applyLocked(index.Event{Type: index.EvDead, ID: id}, 0) == nil {
		q.stats.dead.Add(1)
	}
}

// armTimer makes the queue's one timer fire at the earliest deadline. The
// caller holds mu.
func (q *Queue) armTimer() {
	at, ok := q.t.NextDeadline()
	if !ok || (q.timerAt != 0 && q.timerAt <= at) {
		return
	}
	q.timerAt = at
	d := time.Duration(at - q.now())
	if q.timer == nil {
		q.timer = time.AfterFunc(max(d, 0), q.onTimer)
	} else {
		q.timer.Reset(max(d, 0))
	}
}

func (q *Queue) onTimer() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.timerAt = 0
	q.processDue(q.now())
	q.armTimer()
}

// receiptOp applies fn to each receipt that names a live lease, under one
// lock, and commits the events. errs[i] is receipt i's outcome.
func (q *Queue) receiptOp(receipts []Receipt, durable bool, fn func(r Receipt, now int64)) ([]error, error) {
	if len(receipts) == 0 {
		return nil, fmt.Errorf("%w: no receipts", ErrInvalid)
	}
	if err := q.lockOpen(); err != nil {
		return nil, err
	}
	now := q.now()
	q.processDue(now)
	errs := make([]error, len(receipts))
	for i, r := range receipts {
		if errs[i] = q.checkReceipt(r); errs[i] == nil {
			fn(r, now)
		}
	}
	seq := q.seq
	q.armTimer()
	q.mu.Unlock()
	if !durable {
		return errs, nil // written with the next durable commit, like leases
	}
	if err := q.commit(seq, true); err != nil {
		return nil, err
	}
	return errs, nil
}

// checkReceipt says whether r names a live lease. A receipt for a message
// that is finished (acked, purged, removed, dead-lettered) is stale, like
// one whose lease ran out: its lease is over, and the worker holding it
// learns that (409), not that the message never was (404). Only an id
// never enqueued, or an attempt not reached yet, is not found.
func (q *Queue) checkReceipt(r Receipt) error {
	if r.ID == 0 || r.Attempt == 0 {
		return fmt.Errorf("%w: receipt %s", ErrInvalid, r)
	}
	e := q.t.Get(r.ID)
	switch {
	case r.ID > q.t.MaxID() || e.State == index.StateNone:
		return fmt.Errorf("%w: %s has no message %d", ErrNotFound, q.name, r.ID)
	case e.State == index.StateDone:
		return fmt.Errorf("%w: %s (message %d is finished: acked, purged or removed)", ErrStaleReceipt, r, r.ID)
	case e.State == index.StateLeased && e.Attempts == r.Attempt:
		return nil
	case r.Attempt > e.Attempts:
		return fmt.Errorf("%w: message %d was never leased as attempt %d", ErrNotFound, r.ID, r.Attempt)
	}
	return fmt.Errorf("%w: %s (message %d is %s, attempt %d)", ErrStaleReceipt, r, r.ID, e.State, e.Attempts)
}

// Ack finishes leased messages. errs[i] is receipt i's outcome
// (ErrStaleReceipt, ErrNotFound); err is a failure of the whole call.
func (q *Queue) Ack(receipts []Receipt) (errs []error, err error) {
	q = q.live()
	return q.receiptOp(receipts, true, func(r Receipt, _ int64) {
		q.applyLocked(index.Event{Type: index.EvAck, ID: r.ID}, 0) // checkReceipt: a live lease
		q.stats.acked.Add(1)
	})
}

// NackOptions tune Nack.
type NackOptions struct {
	Front bool          // to the front of the queue instead of the back
	Delay time.Duration // ready again only after this
}

// Nack returns leased messages to the queue, or, for a lease that was the
// last allowed attempt, sends the message dead.
func (q *Queue) Nack(receipts []Receipt, o NackOptions) (errs []error, err error) {
	q = q.live()
	if o.Delay < 0 || o.Delay > MaxDelay {
		return nil, fmt.Errorf("%w: delay %s must be between 0 and %s", ErrInvalid, o.Delay, MaxDelay)
	}
	return q.receiptOp(receipts, true, func(r Receipt, now int64) {
		q.stats.nacked.Add(1)
		if q.t.Tries(r.ID) >= q.cfg.MaxAttempts {
			q.kill(r.ID)
			return
		}
		var readyAt int64
		if o.Delay > 0 {
			readyAt = now + int64(o.Delay)
		}
		q.applyLocked(index.Event{Type: index.EvNack, ID: r.ID, Front: o.Front, After: q.t.MaxID(), Time: readyAt}, now)
		if readyAt == 0 {
			q.notify(1)
		}
	})
}

// Extend moves leases' deadlines to now + visibility (the queue's
// visibility timeout if 0).
func (q *Queue) Extend(receipts []Receipt, visibility time.Duration) (errs []error, err error) {
	q = q.live()
	if visibility < 0 || visibility > MaxVisibility {
		return nil, fmt.Errorf("%w: visibility %s must be between 0 and %s", ErrInvalid, visibility, MaxVisibility)
	}
	return q.receiptOp(receipts, false, func(r Receipt, now int64) {
		vis := visibility
		if vis == 0 {
			vis = q.cfg.VisibilityTimeout
		}
		q.applyLocked(index.Event{Type: index.EvExtend, ID: r.ID, Time: now + int64(vis)}, now)
	})
}

// Fail sends leased messages straight to dead (or the dead-letter queue).
func (q *Queue) Fail(receipts []Receipt) (errs []error, err error) {
	q = q.live()
	return q.receiptOp(receipts, true, func(r Receipt, _ int64) { q.kill(r.ID) })
}

// Peek returns up to limit messages with id > after that are ready,
// delayed or leased, without leasing them.
func (q *Queue) Peek(after uint64, limit int) ([]Message, error) {
	return collect(func(fn func(Message) error) error { return q.PeekEach(after, limit, fn) })
}

// Dead returns up to limit dead messages with id > after.
func (q *Queue) Dead(after uint64, limit int) ([]Message, error) {
	return collect(func(fn func(Message) error) error { return q.DeadEach(after, limit, fn) })
}

// PeekEach is Peek that hands each message to fn as its body is read, so
// a caller streaming a reply holds one body at a time. An error of fn
// stops it and is returned.
func (q *Queue) PeekEach(after uint64, limit int, fn func(Message) error) error {
	return q.list(after, limit, func(s index.State) bool { return s != index.StateDead }, fn)
}

// DeadEach is Dead as PeekEach is Peek.
func (q *Queue) DeadEach(after uint64, limit int, fn func(Message) error) error {
	return q.list(after, limit, func(s index.State) bool { return s == index.StateDead }, fn)
}

func collect(each func(fn func(Message) error) error) ([]Message, error) {
	msgs := []Message{}
	err := each(func(m Message) error {
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// MaxList bounds Peek and Dead.
const MaxList = 1000

func (q *Queue) list(after uint64, limit int, want func(index.State) bool, fn func(Message) error) error {
	q = q.live()
	if limit <= 0 || limit > MaxList {
		return fmt.Errorf("%w: limit %d must be between 1 and %d", ErrInvalid, limit, MaxList)
	}
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.processDue(q.now())
	type found struct {
		id uint64
		e  index.Entry
	}
	var ids []found
	if after < math.MaxUint64 {
		q.t.Scan(after+1, index.StateNone, func(id uint64, e index.Entry) bool {
			if want(e.State) {
				ids = append(ids, found{id, e})
			}
			return len(ids) < limit
		})
	}
	q.mu.Unlock()
	for _, f := range ids {
		m, err := q.read(f.id, f.e.Offset)
		if err != nil {
			return fmt.Errorf("%s: message %d: %w", q.name, f.id, err)
		}
		m.Attempts, m.State = int(f.e.Attempts), f.e.State
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// Redrive returns up to limit dead messages (all if limit ≤ 0) to ready
// and reports how many. Each gets MaxAttempts more deliveries; its
// attempts keep counting, so no receipt is ever handed out twice.
func (q *Queue) Redrive(limit int) (int, error) {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return 0, err
	}
	q.processDue(q.now())
	var ids []uint64
	q.t.Scan(0, index.StateDead, func(id uint64, _ index.Entry) bool {
		ids = append(ids, id)
		return limit <= 0 || len(ids) < limit
	})
	for _, id := range ids {
		q.applyLocked(index.Event{Type: index.EvRedrive, ID: id}, 0) // Scan found it dead
	}
	q.notify(len(ids))
	seq := q.seq
	q.mu.Unlock()
	return len(ids), q.commit(seq, true)
}

// Purge removes every message the queue holds.
func (q *Queue) Purge() error {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.processDue(q.now())
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
	q.notify(q.waiters.Len()) // they find q closed (or replaced) and go on
	q.mu.Unlock()
	return errors.Join(append(errs, q.log.Close(), q.state.Close())...)
}
