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

// Entry is one message's state as Get and Scan report it, in 16 bytes; no
// body, and no priority (Table.Priority has it). The id is implicit in the
// entry's place in the table.
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

// slot is how the table stores an Entry, also in 16 bytes: State and
// Requeue share one byte, which frees one for the message's priority level
// (see levels.go). Entry stays the public view so that callers keep
// reading plain fields.
type slot struct {
	time     int64
	offset   uint32
	attempts uint16
	sr       uint8 // state in bits 0-2, requeue in bits 3-4
	level    uint8 // index into Table.levels, or levelOverflow
}

const stateBits = 3

func (s *slot) state() State     { return State(s.sr & (1<<stateBits - 1)) }
func (s *slot) requeue() Requeue { return Requeue(s.sr >> stateBits) }

func (s *slot) setState(st State) { s.sr = s.sr&^(1<<stateBits-1) | uint8(st) }

func (s *slot) setRequeue(r Requeue) { s.sr = s.sr&(1<<stateBits-1) | uint8(r)<<stateBits }

func (s *slot) entry() Entry {
	return Entry{Time: s.time, Offset: s.offset, Attempts: s.attempts, State: s.state(), Requeue: s.requeue()}
}

// readyByID reports whether the message sits in its chunk's ready bitmap.
func (s *slot) readyByID() bool { return s.state() == StateReady && s.requeue() == ByID }

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
	entries [chunkSize]slot
	ready   [chunkWords]uint64 // bit set: ready, ordered by id
	nready  int
	done    int // entries in StateDone
	// levelReady counts the ready-by-id entries of each priority level,
	// so a search for the next message of one level skips chunks without
	// any. Nil (as in every chunk of a single-priority queue) means every
	// ready-by-id entry here is at level 0.
	levelReady *[maxLevels]uint16
}

// Table is one queue's message states, its ready order and its deadline
// heaps. It holds no bodies. It is not safe for concurrent use: the queue
// serializes access, and replays events through the same methods.
//
// Ready order is by priority, lowest first; within one priority, messages
// nacked to the front first, in nack order; then the rest by id, where a
// message nacked to the back sorts right after the id that was newest when
// it was nacked (so after everything already queued, before everything
// enqueued later).
type Table struct {
	base   uint64 // id of chunks[0].entries[0]; ≡ 1 mod chunkSize
	chunks []*chunk
	maxID  uint64 // highest id inserted
	floor  uint64 // every id up to it that was never inserted is done
	counts [numStates]int

	// requeued holds the ready messages not in a chunk's bitmap: those
	// placed by a nack, and those ready by id at levelOverflow.
	requeued requeueHeap
	delays   deadlineHeap
	leases   deadlineHeap
	seq      int64 // orders requeued messages
	// redriven holds, for each live message that was redriven, its
	// attempts at the last redrive. Attempts never go back (so a receipt
	// is never handed out twice); the tries that count against max
	// attempts are those since. Redrives are rare: a map, not 2 more bytes
	// in every entry.
	redriven map[uint64]uint16

	priorities // the interned priority levels (levels.go)

	// A subscription's table (see Seek and Skip) also keeps these; a
	// queue's stay zero but for maxAttempt.
	//
	// maxAttempt is the highest attempt number ever leased, and
	// attemptFloor the attempts every entry inserted since the last seek
	// starts at (maxAttempt at that seek): attempts keep counting across
	// a seek, so no receipt is ever handed out twice, while the tries that
	// count against max attempts start again, as after a redrive.
	maxAttempt   uint16
	attemptFloor uint16
	// skipped counts the ids Skip finished that were not done yet:
	// messages retention took from under a subscription.
	skipped uint64
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{} }

// MaxID returns the highest id inserted (for a subscription, since its
// last seek).
func (t *Table) MaxID() uint64 { return t.maxID }

// ReadUpTo returns a subscription's read position: every id up to it was
// read into the table, or is done (below a seek, skipped, or a hole
// sealed because the log does not have it).
func (t *Table) ReadUpTo() uint64 { return max(t.maxID, t.floor) }

// MaxAttempt returns the highest attempt number ever leased.
func (t *Table) MaxAttempt() uint16 { return t.maxAttempt }

// AttemptFloor returns the attempts a message read since the last seek
// starts at.
func (t *Table) AttemptFloor() uint16 { return t.attemptFloor }

// Skipped returns how many ids Skip finished that were not done yet.
func (t *Table) Skipped() uint64 { return t.skipped }

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
		return e.entry()
	}
	if id < t.base || (id <= t.floor && id != 0) {
		return Entry{State: StateDone}
	}
	return Entry{}
}

// Priority returns a live message's priority (0 most urgent), and
// DefaultPriority for an id that is not live.
func (t *Table) Priority(id uint64) uint32 {
	if e := t.entry(id); e != nil && e.state() != StateNone && e.state() != StateDone {
		return t.priority(id, e)
	}
	return DefaultPriority
}

func (t *Table) entry(id uint64) *slot {
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

// Insert adds a new message at DefaultPriority: InsertPriority with 1024.
func (t *Table) Insert(id uint64, offset uint32, readyAt, now int64) bool {
	return t.InsertPriority(id, offset, DefaultPriority, readyAt, now)
}

// InsertPriority adds a new message with a priority (0 most urgent), ready
// at once or delayed until readyAt. An id already known, or below the
// released prefix, is left alone and InsertPriority reports false, so a
// replay may offer the same record twice.
func (t *Table) InsertPriority(id uint64, offset uint32, priority uint32, readyAt, now int64) bool {
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
	if e.state() != StateNone {
		return false
	}
	*e = slot{offset: offset, attempts: t.attemptFloor}
	t.ref(id, e, priority)
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
			c.entries[i].setState(StateDone)
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
		if e := t.entry(id); e != nil && e.state() == StateNone {
			return id
		}
	}
	return max(t.maxID, t.floor) + 1
}

func (t *Table) move(e *slot, to State) {
	t.counts[e.state()]--
	t.counts[to]++
	e.setState(to)
}

// becomeReady makes a message ready (or delayed until readyAt) at the
// place mode says; a message sent to the back goes after id after, or
// after the newest id if after is 0.
func (t *Table) becomeReady(id uint64, e *slot, mode Requeue, readyAt, now int64, after uint64) {
	e.setRequeue(mode)
	if readyAt > now {
		t.move(e, StateDelayed)
		e.time = readyAt
		heap.Push(&t.delays, deadline{at: readyAt, id: id})
		return
	}
	t.move(e, StateReady)
	switch {
	case mode == ByID && e.level != levelOverflow:
		e.time = 0
		c, i := t.chunkOf(id)
		c.ready[i/64] |= 1 << (i % 64)
		c.nready++
		t.addReadyByID(id, c, e.level)
	case mode == ByID:
		// Its level's bitmap would mix priorities: it waits in the heap,
		// placed as by id (see requeued).
		e.time = 0
		heap.Push(&t.requeued, requeued{id: id, after: id, pri: t.overflow[id]})
	default:
		t.seq++
		e.time = t.seq
		if after == 0 {
			after = t.maxID
		}
		if mode == Front {
			after = 0
		}
		heap.Push(&t.requeued, requeued{id: id, after: after, seq: t.seq, pri: t.priority(id, e)})
	}
}

// leave takes a message out of its current state's structures. Heap items
// are not removed: they go stale and are dropped when they reach the top.
func (t *Table) leave(id uint64, e *slot) {
	if e.readyByID() && e.level != levelOverflow {
		c, i := t.chunkOf(id)
		c.ready[i/64] &^= 1 << (i % 64)
		c.nready--
		t.removeReadyByID(c, e.level)
	}
	e.time = 0
}

// finish marks a message gone and releases chunks at the front that hold
// nothing live any more.
func (t *Table) finish(id uint64, e *slot) {
	t.leave(id, e)
	t.unref(id, e)
	t.move(e, StateDone)
	e.setRequeue(ByID)
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

// live reports whether a requeued item still stands for its message: a
// message nacked again, leased or reprioritized since leaves its old items
// behind, to be dropped when they reach the top.
func (t *Table) live(r requeued) bool {
	e := t.entry(r.id)
	if e == nil || e.state() != StateReady {
		return false
	}
	if r.seq == 0 { // ready by id at levelOverflow
		return e.requeue() == ByID && e.level == levelOverflow && t.overflow[r.id] == r.pri
	}
	return e.requeue() != ByID && e.time == r.seq
}

// NextReady returns the message a receive should lease next, or false
// when none is ready. It changes nothing visible.
func (t *Table) NextReady() (uint64, bool) {
	for t.requeued.Len() > 0 && !t.live(t.requeued[0]) {
		heap.Pop(&t.requeued)
	}
	queued := t.requeued.Len() > 0
	if len(t.readyLevels) == 0 {
		if !queued {
			return 0, false
		}
		return t.requeued[0].id, true
	}
	lv := t.readyLevels[0]
	pri := t.levels[lv].pri
	if queued && t.requeued[0].pri < pri {
		return t.requeued[0].id, true
	}
	byID := t.firstByID(lv)
	if !queued || t.requeued[0].pri > pri {
		return byID, true
	}
	top := t.requeued[0] // the same priority: today's order within it
	if top.after != 0 && byID <= top.after {
		return byID, true
	}
	return top.id, true
}

// OldestReady returns the lowest id among the ready messages, by id or
// requeued, whatever their priority: the one enqueued first, for a
// queue's "how far behind" gauge (an urgent message does not make the
// backlog younger). It walks the ready bitmaps' chunk counts and the
// requeued heap, never every entry, so a metrics scrape stays cheap behind
// a million dead or leased messages.
func (t *Table) OldestReady() (uint64, bool) {
	id, ok := t.anyReadyByID()
	for _, r := range t.requeued {
		if (!ok || r.id < id) && t.live(r) {
			id, ok = r.id, true
		}
	}
	return id, ok
}

// anyReadyByID returns the lowest id in the ready bitmaps, of any level.
func (t *Table) anyReadyByID() (uint64, bool) {
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

// Scan calls fn for each message with id ≥ from in state s (any live
// state if s is StateNone), in id order, until fn returns false.
func (t *Table) Scan(from uint64, s State, fn func(id uint64, e Entry) bool) {
	for id := max(from, t.FirstID()); id <= t.maxID; id++ {
		e := t.entry(id)
		if e == nil {
			continue
		}
		if st := e.state(); (s == StateNone && st != StateNone && st != StateDone) || (s != StateNone && st == s) {
			if !fn(id, e.entry()) {
				return
			}
		}
	}
}

// SetOffset records a message's new frame offset after its segment was
// rewritten.
func (t *Table) SetOffset(id uint64, offset uint32) {
	if e := t.entry(id); e != nil {
		e.offset = offset
	}
}
