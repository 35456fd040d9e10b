package index

import (
	"container/heap"
	"fmt"
	"math/bits"
)

// State is where a message is in its life.
type State uint8

// The states. StateNone is an id the table has not seen (never enqueued, or
// an enqueue still in flight); StateDone is an id that is gone (acked,
// purged, removed) and only waits for its chunk to be released.
const (
	StateNone State = iota
	StateReady
	StateDelayed
	StateLeased
	StateDead
	StateDone
	numStates
)

var stateNames = [...]string{"none", "ready", "delayed", "leased", "dead", "done"}

func (s State) String() string {
	if s < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Requeue says where a message enters the ready order: by id like a new
// message, or where a nack put it.
type Requeue uint8

// The requeue modes.
const (
	ByID  Requeue = 0
	Front Requeue = 1
	Back  Requeue = 2
)

// Entry is one message's state in 16 bytes; no body. The id is implicit in
// the entry's place in the table.
type Entry struct {
	// Time is, for a delayed message, when it becomes ready; for a leased
	// one, when the lease runs out (unix ns); for a requeued ready one, its
	// requeue sequence number (so stale heap items can be told apart); for
	// a dead one being moved to the dead-letter queue, the id there from
	// which its copy may stand (see MarkMoving), else 0.
	Time int64
	// Offset is the position of the message's frame in its log segment
	// (the log finds the segment from the id); it saves walking headers.
	Offset   uint32
	Attempts uint16
	State    State
	// Requeue is where the message goes when it is, or next becomes, ready.
	Requeue Requeue
}

const (
	chunkShift = 12
	chunkSize  = 1 << chunkShift
	chunkWords = chunkSize / 64
)

// chunk holds chunkSize consecutive ids. A chunk at the front whose every
// id is done is released, so an acked prefix costs no memory. An id not yet
// inserted (an enqueue in flight) keeps its chunk: released ids can never
// be inserted again, which is what makes replaying records safe.
type chunk struct {
	entries [chunkSize]Entry
	ready   [chunkWords]uint64 // bit set: ready, ordered by id
	nready  int
	done    int // entries in StateDone
}

// Table is one queue's message states, its ready order and its deadline
// heaps. It holds no bodies. It is not safe for concurrent use: the queue
// serializes access, and replays events through the same methods.
//
// Ready order: messages nacked to the front first, in nack order; then the
// rest by id, where a message nacked to the back sorts right after the id
// that was newest when it was nacked (so after everything already queued,
// before everything enqueued later).
type Table struct {
	base   uint64 // id of chunks[0].entries[0]; ≡ 1 mod chunkSize
	chunks []*chunk
	maxID  uint64 // highest id inserted
	floor  uint64 // every id up to it that was never inserted is done
	counts [numStates]int

	requeued requeueHeap // ready messages placed by a nack, not by id
	delays   deadlineHeap
	leases   deadlineHeap
	seq      int64 // orders requeued messages
	// redriven holds, for each live message that was redriven, its
	// attempts at the last redrive. Attempts never go back (so a receipt
	// is never handed out twice); the tries that count against max
	// attempts are those since. Redrives are rare: a map, not 2 more bytes
	// in every entry.
	redriven map[uint64]uint16
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{} }

// MaxID returns the highest id inserted.
func (t *Table) MaxID() uint64 { return t.maxID }

// Count returns how many messages are in state s.
func (t *Table) Count(s State) int { return t.counts[s] }

// Live returns how many messages are ready, delayed, leased or dead.
func (t *Table) Live() int {
	return t.counts[StateReady] + t.counts[StateDelayed] + t.counts[StateLeased] + t.counts[StateDead]
}

// FirstID returns the lowest id the table holds an entry for; every id
// below it is done.
func (t *Table) FirstID() uint64 { return max(t.base, 1) }

// Get returns the entry for id: StateNone if unknown, StateDone if gone.
func (t *Table) Get(id uint64) Entry {
	if e := t.entry(id); e != nil {
		return *e
	}
	if id < t.base {
		return Entry{State: StateDone}
	}
	return Entry{}
}

func (t *Table) entry(id uint64) *Entry {
	if id < t.base || id-t.base >= uint64(len(t.chunks))*chunkSize {
		return nil
	}
	i := id - t.base
	return &t.chunks[i>>chunkShift].entries[i&(chunkSize-1)]
}

func (t *Table) chunkOf(id uint64) (*chunk, uint64) {
	i := id - t.base
	return t.chunks[i>>chunkShift], i & (chunkSize - 1)
}

// Insert adds a new message, ready at once or delayed until readyAt. An id
// already known, or below the released prefix, is left alone and Insert
// reports false, so a replay may offer the same record twice.
func (t *Table) Insert(id uint64, offset uint32, readyAt, now int64) bool {
	if id == 0 || id < t.base || (len(t.chunks) == 0 && id <= t.floor) {
		return false // released, or up to the floor: known done
	}
	if len(t.chunks) == 0 {
		// Start where ids can still be missing, never at id itself: with
		// enqueues in flight, lower ids may arrive after this one. Ids up
		// to the floor are known done; past the released prefix, none is.
		t.base = chunkStart(max(t.base, t.floor+1))
	}
	for id-t.base >= uint64(len(t.chunks))*chunkSize {
		t.addChunk()
	}
	e := t.entry(id)
	if e.State != StateNone {
		return false
	}
	*e = Entry{Offset: offset}
	t.counts[StateNone]++ // balanced by the move out of StateNone below
	t.maxID = max(t.maxID, id)
	t.becomeReady(id, e, ByID, readyAt, now, 0)
	return true
}

// chunkStart returns the first id of the chunk holding id.
func chunkStart(id uint64) uint64 { return (id-1)&^(chunkSize-1) + 1 }

// addChunk appends a chunk; ids in it up to the floor are born done.
func (t *Table) addChunk() {
	c := new(chunk)
	first := t.base + uint64(len(t.chunks))*chunkSize
	for i := range c.entries {
		if first+uint64(i) <= t.floor {
			c.entries[i].State = StateDone
			c.done++
		}
	}
	t.counts[StateDone] += c.done
	t.chunks = append(t.chunks, c)
}

// SealHoles marks every id up to upTo that was never inserted as done. The
// queue calls it once the startup scan has inserted every record the log
// holds: an id missing then was compacted away (done) or lost to damage
// (reported by the log), and must not pin its chunk forever. Ids past the
// table's end up to upTo are born done when their chunk is added.
func (t *Table) SealHoles(upTo uint64) {
	t.floor = max(t.floor, upTo)
	t.finishHoles(upTo)
	t.release()
}

// FirstHole returns the lowest id past the released prefix that has not
// been inserted: a restart must scan the log from there.
func (t *Table) FirstHole() uint64 {
	for id := t.FirstID(); id <= t.maxID; id++ {
		if e := t.entry(id); e != nil && e.State == StateNone {
			return id
		}
	}
	return max(t.maxID, t.floor) + 1
}

func (t *Table) move(e *Entry, to State) {
	t.counts[e.State]--
	t.counts[to]++
	e.State = to
}

// becomeReady makes a message ready (or delayed until readyAt) at the
// place mode says; a message sent to the back goes after id after, or
// after the newest id if after is 0.
func (t *Table) becomeReady(id uint64, e *Entry, mode Requeue, readyAt, now int64, after uint64) {
	e.Requeue = mode
	if readyAt > now {
		t.move(e, StateDelayed)
		e.Time = readyAt
		heap.Push(&t.delays, deadline{at: readyAt, id: id})
		return
	}
	t.move(e, StateReady)
	switch mode {
	case ByID:
		e.Time = 0
		c, i := t.chunkOf(id)
		c.ready[i/64] |= 1 << (i % 64)
		c.nready++
	default:
		t.seq++
		e.Time = t.seq
		if after == 0 {
			after = t.maxID
		}
		if mode == Front {
			after = 0
		}
		heap.Push(&t.requeued, requeued{id: id, after: after, seq: t.seq})
	}
}

// leave takes a message out of its current state's structures. Heap items
// are not removed: they go stale and are dropped when they reach the top.
func (t *Table) leave(id uint64, e *Entry) {
	if e.State == StateReady && e.Requeue == ByID {
		c, i := t.chunkOf(id)
		c.ready[i/64] &^= 1 << (i % 64)
		c.nready--
	}
	e.Time = 0
}

// finish marks a message gone and releases chunks at the front that hold
// nothing live any more.
func (t *Table) finish(id uint64, e *Entry) {
	t.leave(id, e)
	t.move(e, StateDone)
	e.Requeue = ByID
	delete(t.redriven, id)
	c, _ := t.chunkOf(id)
	c.done++
	t.release()
}

func (t *Table) release() {
	n := 0
	for n < len(t.chunks) && t.chunks[n].done == chunkSize {
		n++
	}
	if n == 0 {
		return
	}
	t.counts[StateDone] -= n * chunkSize
	clear(t.chunks[:n])
	t.chunks = t.chunks[n:]
	t.base += uint64(n) * chunkSize
}

// NextReady returns the message a receive should lease next, or false
// when none is ready. It changes nothing visible.
func (t *Table) NextReady() (uint64, bool) {
	for t.requeued.Len() > 0 {
		top := t.requeued[0]
		e := t.entry(top.id)
		if e != nil && e.State == StateReady && e.Requeue != ByID && e.Time == top.seq {
			break
		}
		heap.Pop(&t.requeued)
	}
	byID, ok := t.firstByID()
	if t.requeued.Len() == 0 {
		return byID, ok
	}
	top := t.requeued[0]
	if ok && top.after != 0 && byID <= top.after {
		return byID, true
	}
	return top.id, true
}

func (t *Table) firstByID() (uint64, bool) {
	for ci, c := range t.chunks {
		if c.nready == 0 {
			continue
		}
		for w, word := range c.ready {
			if word != 0 {
				return t.base + uint64(ci)*chunkSize + uint64(w)*64 + uint64(bits.TrailingZeros64(word)), true
			}
		}
	}
	return 0, false
}

// Lease marks a ready message leased until deadline with the given
// attempt number.
func (t *Table) Lease(id uint64, attempt uint16, until int64) error {
	e, err := t.want(id, "lease", StateReady)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.move(e, StateLeased)
	e.Attempts, e.Time, e.Requeue = attempt, until, ByID
	heap.Push(&t.leases, deadline{at: until, id: id})
	return nil
}

// Extend moves a lease's deadline.
func (t *Table) Extend(id uint64, until int64) error {
	e, err := t.want(id, "extend", StateLeased)
	if err != nil {
		return err
	}
	e.Time = until
	heap.Push(&t.leases, deadline{at: until, id: id})
	return nil
}

// Ack finishes a leased message.
func (t *Table) Ack(id uint64) error {
	e, err := t.want(id, "ack", StateLeased)
	if err != nil {
		return err
	}
	t.finish(id, e)
	return nil
}

// Nack returns a leased message to ready at the front, or at the back
// after id after (the newest id when the nack happened, so a replay puts it
// where it was), or delayed until readyAt and then to the front or back.
func (t *Table) Nack(id uint64, front bool, after uint64, readyAt, now int64) error {
	e, err := t.want(id, "nack", StateLeased)
	if err != nil {
		return err
	}
	t.leave(id, e)
	mode := Back
	if front {
		mode = Front
	}
	t.becomeReady(id, e, mode, readyAt, now, after)
	return nil
}

// Expire returns a leased message whose lease ran out to ready, by id.
func (t *Table) Expire(id uint64) error {
	e, err := t.want(id, "expire", StateLeased)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.becomeReady(id, e, ByID, 0, 0, 0)
	return nil
}

// Dead marks a message dead: out of attempts, or failed by its consumer.
func (t *Table) Dead(id uint64) error {
	e, err := t.want(id, "kill", StateLeased, StateReady, StateDelayed)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.move(e, StateDead)
	e.Requeue = ByID
	return nil
}

// Redrive returns a dead message to ready, by id. Its attempts keep
// counting, but Tries starts again from zero.
func (t *Table) Redrive(id uint64) error {
	e, err := t.want(id, "redrive", StateDead)
	if err != nil {
		return err
	}
	if e.Attempts > 0 {
		if t.redriven == nil {
			t.redriven = map[uint64]uint16{}
		}
		t.redriven[id] = e.Attempts
	}
	t.becomeReady(id, e, ByID, 0, 0, 0)
	return nil
}

// MarkMoving records that a copy of the dead message id is about to be
// enqueued in the dead-letter queue, at an id ≥ from there: if the move is
// cut short (a crash between the copy and the removal here), the next one
// looks there before copying again, so no dead letter is ever doubled.
func (t *Table) MarkMoving(id, from uint64) error {
	e, err := t.want(id, "mark moving", StateDead)
	if err != nil {
		return err
	}
	e.Time = int64(from)
	return nil
}

// Moving returns what MarkMoving recorded for a dead message, or 0.
func (t *Table) Moving(id uint64) uint64 {
	if e := t.entry(id); e != nil && e.State == StateDead {
		return uint64(e.Time)
	}
	return 0
}

// Tries returns how many times a message was leased since it was enqueued
// or last redriven: what counts against max attempts.
func (t *Table) Tries(id uint64) int {
	return int(t.Get(id).Attempts) - int(t.redriven[id])
}

// Remove finishes a message in any live state without an ack (moved to a
// dead-letter queue, past retention).
func (t *Table) Remove(id uint64) error {
	e, err := t.want(id, "remove", StateReady, StateDelayed, StateLeased, StateDead)
	if err != nil {
		return err
	}
	t.finish(id, e)
	return nil
}

// finishHoles marks ids up to upTo that were never inserted as done.
func (t *Table) finishHoles(upTo uint64) {
	if len(t.chunks) == 0 {
		return
	}
	for id := t.base; id <= min(upTo, t.base+uint64(len(t.chunks))*chunkSize-1); id++ {
		if e := t.entry(id); e.State == StateNone {
			e.State = StateDone
			t.counts[StateDone]++
			c, _ := t.chunkOf(id)
			c.done++
		}
	}
}

// Purge finishes every message with an id up to upTo, including ids whose
// enqueue is still in flight (their Insert will find them done): a replay
// inserts every record before it applies the purge, and must agree.
func (t *Table) Purge(upTo uint64) {
	upTo = min(upTo, t.maxID) // ids past the newest are still to come
	t.finishHoles(upTo)
	for id := t.FirstID(); id <= min(upTo, t.maxID); id++ {
		if e := t.entry(id); e != nil && e.State != StateNone && e.State != StateDone {
			t.finish(id, e)
			if id < t.base {
				id = t.base - 1 // release moved past it; keep walking from the new base
			}
		}
	}
}

func (t *Table) want(id uint64, op string, states ...State) (*Entry, error) {
	e := t.entry(id)
	st := t.Get(id).State
	for _, s := range states {
		if st == s {
			return e, nil
		}
	}
	return nil, &TransitionError{Op: op, ID: id, State: st}
}

// TransitionError is returned for an operation the message's state does
// not allow. The queue checks receipts first, so live operations only see
// it through a bug; a replay sees it for events about ids that a crash
// left unknown, and skips them.
type TransitionError struct {
	Op    string
	ID    uint64
	State State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("index: cannot %s message %d in state %s", e.Op, e.ID, e.State)
}

// Apply replays one state event.
func (t *Table) Apply(ev Event, now int64) error {
	switch ev.Type {
	case EvLease:
		return t.Lease(ev.ID, ev.Attempt, ev.Time)
	case EvExtend:
		return t.Extend(ev.ID, ev.Time)
	case EvAck:
		return t.Ack(ev.ID)
	case EvNack:
		return t.Nack(ev.ID, ev.Front, ev.After, ev.Time, now)
	case EvExpire:
		return t.Expire(ev.ID)
	case EvDead:
		return t.Dead(ev.ID)
	case EvRedrive:
		return t.Redrive(ev.ID)
	case EvRemove:
		return t.Remove(ev.ID)
	case EvPurge:
		t.Purge(ev.ID)
		return nil
	case EvReady:
		return t.Ready(ev.ID, ev.After)
	case EvMoving:
		return t.MarkMoving(ev.ID, ev.After)
	}
	return fmt.Errorf("index: unknown event type %d", ev.Type)
}

// DueDelay returns the earliest delayed message whose time has come,
// without changing it: the caller applies EvReady (Ready), with the newest
// id, MaxID, as its After, so that a replay puts it where it went live.
func (t *Table) DueDelay(now int64) (uint64, bool) {
	for t.delays.Len() > 0 {
		top := t.delays[0]
		e := t.entry(top.id)
		if e == nil || e.State != StateDelayed || e.Time != top.at {
			heap.Pop(&t.delays)
			continue
		}
		if top.at > now {
			return 0, false
		}
		return top.id, true
	}
	return 0, false
}

// Ready makes a delayed message ready now, at the place its nack chose (by
// id, front, or after id after for the back). It replays what DueDelay
// did live, so a restart puts the message exactly where it was.
func (t *Table) Ready(id uint64, after uint64) error {
	e, err := t.want(id, "make ready", StateDelayed)
	if err != nil {
		return err
	}
	t.becomeReady(id, e, e.Requeue, 0, 0, after)
	return nil
}

// DueLease returns a leased message whose lease has run out, without
// changing it: the queue decides between Expire and Dead and logs it.
func (t *Table) DueLease(now int64) (uint64, bool) {
	for t.leases.Len() > 0 {
		top := t.leases[0]
		e := t.entry(top.id)
		if e == nil || e.State != StateLeased || e.Time != top.at {
			heap.Pop(&t.leases)
			continue
		}
		return top.id, top.at <= now
	}
	return 0, false
}

// NextDeadline returns the earliest time a delayed message becomes ready
// or a lease runs out, for the queue's single timer.
func (t *Table) NextDeadline() (int64, bool) {
	var at int64
	found := false
	for _, h := range []*deadlineHeap{&t.delays, &t.leases} {
		for h.Len() > 0 {
			top := (*h)[0]
			e := t.entry(top.id)
			if e != nil && (e.State == StateDelayed || e.State == StateLeased) && e.Time == top.at {
				if !found || top.at < at {
					at, found = top.at, true
				}
				break
			}
			heap.Pop(h)
		}
	}
	return at, found
}

// Scan calls fn for each message with id ≥ from in state s (any live
// state if s is StateNone), in id order, until fn returns false.
func (t *Table) Scan(from uint64, s State, fn func(id uint64, e Entry) bool) {
	for id := max(from, t.FirstID()); id <= t.maxID; id++ {
		e := t.entry(id)
		if e == nil {
			continue
		}
		if (s == StateNone && e.State != StateNone && e.State != StateDone) || (s != StateNone && e.State == s) {
			if !fn(id, *e) {
				return
			}
		}
	}
}

// SetOffset records a message's new frame offset after its segment was
// rewritten.
func (t *Table) SetOffset(id uint64, offset uint32) {
	if e := t.entry(id); e != nil {
		e.Offset = offset
	}
}

type deadline struct {
	at int64
	id uint64
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int { return len(h) }
func (h deadlineHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].id < h[j].id)
}
func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *deadlineHeap) Push(x any)   { *h = append(*h, x.(deadline)) }
func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// requeued is a ready message placed by a nack: front ones (after == 0)
// first in nack order, then back ones by the id they follow.
type requeued struct {
	id    uint64
	after uint64
	seq   int64
}

type requeueHeap []requeued

func (h requeueHeap) Len() int { return len(h) }
func (h requeueHeap) Less(i, j int) bool {
	if h[i].after != h[j].after {
		return h[i].after < h[j].after
	}
	return h[i].seq < h[j].seq
}
func (h requeueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *requeueHeap) Push(x any)   { *h = append(*h, x.(requeued)) }
func (h *requeueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
