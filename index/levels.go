package index

import (
	"math"
	"math/bits"
)

// Priorities. A message's priority is a uint32, 0 most urgent. The table
// interns the distinct priorities of its live messages as levels, so an
// entry spends one byte on its priority, not four: levels 0..maxLevels-1
// each stand for one priority while a live message holds them, and are
// reused once none does. A table with more distinct live priorities than
// that keeps the rest per message in a map (levelOverflow), slower and
// bigger, but right (see doc.go for the costs).

// DefaultPriority is the priority of a message inserted without one
// (beanstalkd's default).
const DefaultPriority uint32 = 1024

const (
	// maxLevels is how many priorities the table interns at once.
	maxLevels = 255
	// levelOverflow marks an entry whose priority is in overflow.
	levelOverflow = maxLevels
	// scanLevels is how many levels intern looks along before it asks
	// the map.
	scanLevels = 16
	// recentLevels is the size of the intern cache: 64 bytes a table.
	recentLevels = 64
)

// recentSlot is pri's place in the intern cache: Fibonacci hashing, so
// ten priorities in even steps (0, 1, 2... or 0, 100, 200...) take ten
// slots.
func recentSlot(pri uint32) uint32 { return pri * 0x9E3779B1 >> 26 }

// level is one interned priority.
type level struct {
	pri  uint32
	refs int // live messages at this level; 0: free for another priority
	// ready counts its messages ready by id, in the chunks' bitmaps.
	ready int
	// from is a lower bound on the ids of its ready-by-id messages, where
	// a search for its next one starts: taking a level's messages in turn
	// then walks each bitmap bit once, not once per take.
	from uint64
}

// priorities is the Table's part that keeps the levels.
type priorities struct {
	levels  []level
	levelOf map[uint32]uint8 // pri → its level, for the levels in use
	free    []uint8          // levels no message holds any more
	// recent remembers, by a hash of the priority, the level each slot's
	// priority was last interned at: a single-priority queue's every
	// insert, and a few priorities in turn, skip the look along the levels.
	recent [recentLevels]uint8
	// readyLevels lists the levels with messages ready by id, lowest
	// priority first: its head is where the ready order starts.
	readyLevels []uint8
	// overflow holds the priorities of the messages at levelOverflow.
	overflow map[uint64]uint32
}

// priority returns the priority of the live message id, entry e.
func (t *Table) priority(id uint64, e *slot) uint32 {
	if e.level == levelOverflow {
		return t.overflow[id]
	}
	return t.levels[e.level].pri
}

// ref gives a live message that holds no level the priority pri.
func (t *Table) ref(id uint64, e *slot, pri uint32) {
	lv := t.intern(pri)
	e.level = lv
	if lv == levelOverflow {
		if t.overflow == nil {
			t.overflow = map[uint64]uint32{}
		}
		t.overflow[id] = pri
		return
	}
	t.levels[lv].refs++
}

// unref lets go of a message's level, freeing it if no other message
// holds it. The message must not be in a ready bitmap.
func (t *Table) unref(id uint64, e *slot) {
	lv := e.level
	e.level = 0
	if lv == levelOverflow {
		delete(t.overflow, id)
		return
	}
	l := &t.levels[lv]
	if l.refs--; l.refs == 0 {
		delete(t.levelOf, l.pri)
		t.free = append(t.free, lv)
	}
}

// intern returns pri's level, taking a free one if pri has none, or
// levelOverflow when every level is in use.
func (t *Table) intern(pri uint32) uint8 {
	slot := &t.recent[recentSlot(pri)]
	if lv := *slot; int(lv) < len(t.levels) && t.levels[lv].refs > 0 && t.levels[lv].pri == pri {
		return lv
	}
	if len(t.levels) <= scanLevels {
		// Few levels: a look along them is quicker than the map.
		for i := range t.levels {
			if l := &t.levels[i]; l.refs > 0 && l.pri == pri {
				*slot = uint8(i)
				return *slot
			}
		}
	}
	lv, ok := t.levelOf[pri]
	switch {
	case ok:
		*slot = lv
		return lv
	case len(t.free) > 0:
		lv = t.free[len(t.free)-1]
		t.free = t.free[:len(t.free)-1]
		t.levels[lv] = level{pri: pri, from: math.MaxUint64}
	case len(t.levels) < maxLevels:
		lv = uint8(len(t.levels))
		t.levels = append(t.levels, level{pri: pri, from: math.MaxUint64})
	default:
		return levelOverflow
	}
	if t.levelOf == nil {
		t.levelOf = map[uint32]uint8{}
	}
	t.levelOf[pri], *slot = lv, lv
	return lv
}

// setPriority changes a live message's priority. The message must not be
// in a ready bitmap (the transitions call it between leave and the next
// state).
func (t *Table) setPriority(id uint64, e *slot, pri uint32) {
	if t.priority(id, e) == pri {
		return
	}
	t.unref(id, e)
	t.ref(id, e, pri)
}

// addReadyByID counts a message of level lv just set in chunk c's bitmap.
func (t *Table) addReadyByID(id uint64, c *chunk, lv uint8) {
	if lv != 0 && c.levelReady == nil {
		c.levelReady = new([maxLevels]uint16)
		c.levelReady[0] = uint16(c.nready - 1) // every other one is at level 0
	}
	if c.levelReady != nil {
		c.levelReady[lv]++
	}
	l := &t.levels[lv]
	l.from = min(l.from, id)
	if l.ready++; l.ready > 1 {
		return
	}
	// Keep readyLevels sorted by priority; it changes only when a level
	// starts or stops having ready messages, and is short.
	i := 0
	for i < len(t.readyLevels) && t.levels[t.readyLevels[i]].pri < l.pri {
		i++
	}
	t.readyLevels = append(t.readyLevels, 0)
	copy(t.readyLevels[i+1:], t.readyLevels[i:])
	t.readyLevels[i] = lv
}

// removeReadyByID counts a message of level lv just cleared from chunk c's
// bitmap.
func (t *Table) removeReadyByID(c *chunk, lv uint8) {
	if c.levelReady != nil {
		c.levelReady[lv]--
	}
	l := &t.levels[lv]
	if l.ready--; l.ready > 0 {
		return
	}
	for i, x := range t.readyLevels {
		if x == lv {
			t.readyLevels = append(t.readyLevels[:i], t.readyLevels[i+1:]...)
			break
		}
	}
	l.from = math.MaxUint64 // none left: the next one sets it
}

// firstByID returns the lowest id ready by id at level lv, which has one.
func (t *Table) firstByID(lv uint8) uint64 {
	if len(t.readyLevels) == 1 {
		// Every bit in the bitmaps is lv's: a single-priority queue's
		// path, as fast as before priorities.
		id, _ := t.anyReadyByID()
		return id
	}
	l := &t.levels[lv]
	start := max(l.from, t.base) - t.base
	for ci := int(start >> chunkShift); ci < len(t.chunks); ci++ {
		c := t.chunks[ci]
		if c.nready == 0 || (c.levelReady == nil && lv != 0) || (c.levelReady != nil && c.levelReady[lv] == 0) {
			continue
		}
		var skip uint64 // bits of this chunk below start
		if uint64(ci) == start>>chunkShift {
			skip = start & (chunkSize - 1)
		}
		for w := skip / 64; w < chunkWords; w++ {
			word := c.ready[w]
			if w == skip/64 {
				word &^= 1<<(skip%64) - 1
			}
			for ; word != 0; word &= word - 1 {
				i := w*64 + uint64(bits.TrailingZeros64(word))
				if c.entries[i].level == lv {
					id := t.base + uint64(ci)*chunkSize + i
					l.from = id
					return id
				}
			}
		}
	}
	panic("index: a priority level counts ready messages its bitmaps do not hold")
}

// ReadyBelow counts the ready messages whose priority is below pri
// (beanstalkd's urgent jobs, below 1024): the levels' counts, and a walk
// of the requeue heap, which holds only the nacked and overflowing ones.
func (t *Table) ReadyBelow(pri uint32) int {
	n := 0
	for _, lv := range t.readyLevels {
		if t.levels[lv].pri >= pri {
			break // sorted by priority
		}
		n += t.levels[lv].ready
	}
	var seen map[uint64]bool // an overflowing message ready by id can have two live items
	for _, r := range t.requeued {
		if r.pri >= pri || !t.live(r) {
			continue
		}
		if r.seq == 0 {
			if seen[r.id] {
				continue
			}
			if seen == nil {
				seen = map[uint64]bool{}
			}
			seen[r.id] = true
		}
		n++
	}
	return n
}
