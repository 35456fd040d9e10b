package index

import (
	"cmp"
	"errors"
	"math"
	"math/bits"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

const far = int64(1) << 62 // a lease deadline that never comes in a test

// newTable returns a table holding ids from..to, ready at once.
func newTable(t testing.TB, from, to uint64) *Table {
	t.Helper()
	tb := NewTable()
	for id := from; id <= to; id++ {
		if !tb.Insert(id, uint32(id), 0, 0) {
			t.Fatalf("Insert(%d) = false", id)
		}
	}
	return tb
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// drain leases every ready message in NextReady order and returns the order.
func drain(t testing.TB, tb *Table) []uint64 {
	t.Helper()
	var order []uint64
	for {
		id, ok := tb.NextReady()
		if !ok {
			return order
		}
		if err := tb.Lease(id, tb.Get(id).Attempts+1, far); err != nil {
			t.Fatalf("Lease(%d) of NextReady: %v", id, err)
		}
		order = append(order, id)
		if len(order) > 1<<20 {
			t.Fatal("NextReady does not run dry")
		}
	}
}

// chunkEnd is one past the last id the table holds an entry for.
func chunkEnd(tb *Table) uint64 { return tb.FirstID() + uint64(len(tb.chunks))*chunkSize }

// checkCounts recounts every state by brute force (Get over every entry,
// Scan for the live states) and compares with Count, Live and the chunks'
// own counters and ready bitmaps.
func checkCounts(t testing.TB, tb *Table) {
	t.Helper()
	var got [numStates]int
	if len(tb.chunks) > 0 {
		for id := tb.FirstID(); id < chunkEnd(tb); id++ {
			got[tb.Get(id).State]++
		}
	}
	for s := StateReady; s < numStates; s++ {
		if tb.Count(s) != got[s] {
			t.Fatalf("Count(%v) = %d, recount %d", s, tb.Count(s), got[s])
		}
	}
	if tb.Count(StateNone) != 0 {
		t.Fatalf("Count(none) = %d, want 0", tb.Count(StateNone))
	}
	live := 0
	for s := StateReady; s < StateDone; s++ {
		n := 0
		tb.Scan(0, s, func(id uint64, e Entry) bool {
			if e.State != s || tb.Get(id) != e {
				t.Fatalf("Scan(%v) gave id %d in %v", s, id, e.State)
			}
			n++
			return true
		})
		if n != tb.Count(s) {
			t.Fatalf("Scan(%v) found %d, Count %d", s, n, tb.Count(s))
		}
		live += n
	}
	n := 0
	tb.Scan(0, StateNone, func(uint64, Entry) bool { n++; return true })
	if n != live || tb.Live() != live {
		t.Fatalf("Scan(live) found %d, Live() = %d, recount %d", n, tb.Live(), live)
	}
	for ci, c := range tb.chunks {
		done, nready, bitsSet := 0, 0, 0
		for i, e := range c.entries {
			if e.state() == StateDone {
				done++
			}
			byID := e.readyByID() && e.level != levelOverflow
			if byID {
				nready++
			}
			if bit := c.ready[i/64]&(1<<(i%64)) != 0; bit != byID {
				t.Fatalf("chunk %d entry %d (%+v): ready bit %v", ci, i, e, bit)
			}
		}
		for _, w := range c.ready {
			bitsSet += bits.OnesCount64(w)
		}
		if c.done != done || c.nready != nready || bitsSet != nready {
			t.Fatalf("chunk %d: done %d nready %d bits %d, recount done %d ready %d", ci, c.done, c.nready, bitsSet, done, nready)
		}
		if ci == 0 && done == chunkSize {
			t.Fatalf("first chunk is all done but not released")
		}
	}
	checkLevels(t, tb)
}

// checkLevels recounts the priority levels from the entries: each level's
// live messages and ready-by-id ones, each chunk's per-level counts, the
// sorted list of levels with ready messages, the overflow map, and each
// level's search start against its lowest ready id.
func checkLevels(t testing.TB, tb *Table) {
	t.Helper()
	refs := make([]int, len(tb.levels))
	ready := make([]int, len(tb.levels))
	lowest := make([]uint64, len(tb.levels))
	overflow := 0
	for ci, c := range tb.chunks {
		var perChunk [maxLevels]int
		for i := range c.entries {
			e := &c.entries[i]
			id := tb.base + uint64(ci)*chunkSize + uint64(i)
			if st := e.state(); st == StateNone || st == StateDone {
				if e.level != 0 {
					t.Fatalf("entry %d in %s holds level %d", id, st, e.level)
				}
				continue
			}
			if e.level == levelOverflow {
				if _, ok := tb.overflow[id]; !ok {
					t.Fatalf("entry %d at the overflow level has no priority in the map", id)
				}
				overflow++
				continue
			}
			if int(e.level) >= len(tb.levels) {
				t.Fatalf("entry %d at level %d of %d", id, e.level, len(tb.levels))
			}
			refs[e.level]++
			if e.readyByID() {
				ready[e.level]++
				perChunk[e.level]++
				if lowest[e.level] == 0 {
					lowest[e.level] = id
				}
			}
		}
		for lv, n := range perChunk {
			if c.levelReady == nil && lv != 0 && n != 0 {
				t.Fatalf("chunk %d has no level counts but %d ready at level %d", ci, n, lv)
			}
			if c.levelReady != nil && int(c.levelReady[lv]) != n {
				t.Fatalf("chunk %d counts %d ready at level %d, recount %d", ci, c.levelReady[lv], lv, n)
			}
		}
	}
	if overflow != len(tb.overflow) {
		t.Fatalf("%d entries at the overflow level, map holds %d", overflow, len(tb.overflow))
	}
	var withReady []uint8
	for lv, l := range tb.levels {
		if l.refs != refs[lv] || l.ready != ready[lv] {
			t.Fatalf("level %d (priority %d): refs %d ready %d, recount %d and %d", lv, l.pri, l.refs, l.ready, refs[lv], ready[lv])
		}
		if got, ok := tb.levelOf[l.pri]; l.refs > 0 && (!ok || got != uint8(lv)) {
			t.Fatalf("level %d (priority %d) in use, levelOf says %d, %v", lv, l.pri, got, ok)
		}
		if l.ready > 0 {
			withReady = append(withReady, uint8(lv))
			if l.from > lowest[lv] {
				t.Fatalf("level %d starts its search at %d, past its ready id %d", lv, l.from, lowest[lv])
			}
		}
	}
	for pri, lv := range tb.levelOf {
		if tb.levels[lv].pri != pri || tb.levels[lv].refs == 0 {
			t.Fatalf("levelOf[%d] = %d, a level at %d with %d refs", pri, lv, tb.levels[lv].pri, tb.levels[lv].refs)
		}
	}
	if !slices.IsSortedFunc(tb.readyLevels, func(a, b uint8) int { return cmp.Compare(tb.levels[a].pri, tb.levels[b].pri) }) {
		t.Fatalf("readyLevels %v not by priority", tb.readyLevels)
	}
	got := slices.Sorted(slices.Values(tb.readyLevels))
	if !slices.Equal(got, withReady) {
		t.Fatalf("readyLevels %v, levels with ready messages %v", tb.readyLevels, withReady)
	}
}

func TestEntryIs16Bytes(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n != 16 {
		t.Fatalf("unsafe.Sizeof(Entry{}) = %d, want 16", n)
	}
	if n := unsafe.Sizeof(slot{}); n != 16 {
		t.Fatalf("unsafe.Sizeof(slot{}) = %d, want 16: the table stores one per message", n)
	}
}

func TestInsertedMessagesAreReadyInIDOrder(t *testing.T) {
	tb := NewTable()
	for _, id := range []uint64{3, 1, 5, 2, 4} {
		if !tb.Insert(id, 0, 0, 0) {
			t.Fatalf("Insert(%d) = false", id)
		}
	}
	if id, ok := tb.NextReady(); !ok || id != 1 {
		t.Fatalf("NextReady = %d, %v; want 1", id, ok)
	}
	if id, _ := tb.NextReady(); id != 1 {
		t.Fatalf("NextReady changed the table: second call gave %d", id)
	}
	if got := drain(t, tb); !slices.Equal(got, []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("order %v", got)
	}
	if id, ok := tb.NextReady(); ok {
		t.Fatalf("NextReady = %d with everything leased", id)
	}
	if tb.MaxID() != 5 || tb.Count(StateLeased) != 5 {
		t.Fatalf("MaxID %d, leased %d", tb.MaxID(), tb.Count(StateLeased))
	}
	checkCounts(t, tb)
}

func TestInsertKeepsOffsetAndSetOffsetChangesIt(t *testing.T) {
	tb := NewTable()
	tb.Insert(7, 1234, 0, 0)
	if e := tb.Get(7); e.Offset != 1234 || e.State != StateReady || e.Attempts != 0 {
		t.Fatalf("Get(7) = %+v", e)
	}
	tb.SetOffset(7, 99)
	tb.SetOffset(1<<40, 5) // unknown: ignored
	if e := tb.Get(7); e.Offset != 99 {
		t.Fatalf("after SetOffset: %+v", e)
	}
}

func TestReadyOrderAfterNacksExpiresAndRedrives(t *testing.T) {
	type op func(t *testing.T, tb *Table)
	lease := func(id uint64) op {
		return func(t *testing.T, tb *Table) { must(t, tb.Lease(id, 1, far)) }
	}
	nack := func(id uint64, front bool, after uint64) op {
		return func(t *testing.T, tb *Table) { must(t, tb.Nack(id, front, after, 0, 0)) }
	}
	insert := func(id uint64) op {
		return func(t *testing.T, tb *Table) {
			if !tb.Insert(id, 0, 0, 0) {
				t.Fatalf("Insert(%d) = false", id)
			}
		}
	}
	tests := []struct {
		name string
		n    uint64 // ids 1..n inserted first
		ops  []op
		want []uint64
	}{
		{"nothing nacked is by id", 5, nil, []uint64{1, 2, 3, 4, 5}},
		{"a nack to the front goes first", 5, []op{lease(3), nack(3, true, 0)}, []uint64{3, 1, 2, 4, 5}},
		{"nacks to the front go in nack order", 5,
			[]op{lease(4), lease(2), nack(4, true, 0), nack(2, true, 0)}, []uint64{4, 2, 1, 3, 5}},
		{"a nack to the back without after goes after the newest id", 5,
			[]op{lease(1), nack(1, false, 0)}, []uint64{2, 3, 4, 5, 1}},
		{"a nack to the back goes before ids enqueued after it", 5,
			[]op{lease(1), nack(1, false, 0), insert(6), insert(7)}, []uint64{2, 3, 4, 5, 1, 6, 7}},
		{"a nack to the back goes after the after id and before later ids", 6,
			[]op{lease(1), nack(1, false, 3)}, []uint64{2, 3, 1, 4, 5, 6}},
		{"nacks to the back after the same id go in nack order", 5,
			[]op{lease(1), lease(2), nack(2, false, 3), nack(1, false, 3)}, []uint64{3, 2, 1, 4, 5}},
		{"nacks to the back sort by their after id", 6,
			[]op{lease(1), lease(2), nack(1, false, 5), nack(2, false, 3)}, []uint64{3, 2, 4, 5, 1, 6}},
		{"a nack to the front goes before a nack to the back", 5,
			[]op{lease(1), lease(2), nack(1, false, 5), nack(2, true, 0)}, []uint64{2, 3, 4, 5, 1}},
		{"a nack to the back after every ready id waits for them", 3,
			[]op{lease(2), nack(2, false, 3)}, []uint64{1, 3, 2}},
		{"a nack to the back after an id already gone goes first", 5,
			[]op{lease(1), lease(2), lease(3), nack(3, false, 2)}, []uint64{3, 4, 5}},
		{"an expired lease returns by id", 5,
			[]op{lease(1), lease(2), lease(3), func(t *testing.T, tb *Table) { must(t, tb.Expire(2)) }}, []uint64{2, 4, 5}},
		{"a redriven message returns by id", 5,
			[]op{lease(1), func(t *testing.T, tb *Table) { must(t, tb.Dead(1)); must(t, tb.Dead(3)); must(t, tb.Redrive(1)) }}, []uint64{1, 2, 4, 5}},
		{"a requeued message leased and acked is gone from the order", 5,
			[]op{lease(1), nack(1, true, 0), lease(1), func(t *testing.T, tb *Table) { must(t, tb.Ack(1)) }}, []uint64{2, 3, 4, 5}},
		{"a message nacked twice takes its latest place", 5,
			[]op{lease(1), nack(1, true, 0), lease(1), nack(1, false, 5)}, []uint64{2, 3, 4, 5, 1}},
		{"a requeued message killed and redriven returns by id", 5,
			[]op{lease(4), nack(4, true, 0), func(t *testing.T, tb *Table) { must(t, tb.Dead(4)); must(t, tb.Redrive(4)) }}, []uint64{1, 2, 3, 4, 5}},
		{"a requeued message removed is gone from the order", 5,
			[]op{lease(4), nack(4, true, 0), func(t *testing.T, tb *Table) { must(t, tb.Remove(4)) }}, []uint64{1, 2, 3, 5}},
		{"order holds across chunks", 2 * chunkSize,
			[]op{lease(chunkSize + 5), nack(chunkSize+5, false, 3)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t, 1, tt.n)
			for _, op := range tt.ops {
				op(t, tb)
				checkCounts(t, tb)
			}
			want := tt.want
			if want == nil { // the cross-chunk case: 1..3, the nacked one, the rest
				want = []uint64{1, 2, 3, chunkSize + 5}
				for id := uint64(4); id <= tt.n; id++ {
					if id != chunkSize+5 {
						want = append(want, id)
					}
				}
			}
			if got := drain(t, tb); !slices.Equal(got, want) {
				t.Fatalf("order\n got %v\nwant %v", got, want)
			}
			checkCounts(t, tb)
		})
	}
}

func TestNackedMessageKeepsAttemptsAndRecordsItsPlace(t *testing.T) {
	tb := newTable(t, 1, 3)
	must(t, tb.Lease(2, 7, 100))
	if e := tb.Get(2); e.State != StateLeased || e.Attempts != 7 || e.Time != 100 {
		t.Fatalf("leased: %+v", e)
	}
	must(t, tb.Nack(2, true, 0, 0, 0))
	if e := tb.Get(2); e.State != StateReady || e.Attempts != 7 || e.Requeue != Front {
		t.Fatalf("nacked to the front: %+v", e)
	}
	must(t, tb.Lease(2, 8, 100))
	must(t, tb.Nack(2, false, 3, 0, 0))
	if e := tb.Get(2); e.State != StateReady || e.Attempts != 8 || e.Requeue != Back {
		t.Fatalf("nacked to the back: %+v", e)
	}
}

func TestDelayedMessagesBecomeReadyWhenDue(t *testing.T) {
	tb := NewTable()
	tb.Insert(1, 0, 100, 0)
	tb.Insert(2, 0, 50, 0)
	tb.Insert(3, 0, 0, 0)
	tb.Insert(4, 0, 10, 10) // ready-at not after now: ready
	if e := tb.Get(1); e.State != StateDelayed || e.Time != 100 {
		t.Fatalf("Get(1) = %+v, want delayed until 100", e)
	}
	if tb.Count(StateDelayed) != 2 || tb.Count(StateReady) != 2 {
		t.Fatalf("delayed %d ready %d", tb.Count(StateDelayed), tb.Count(StateReady))
	}
	if at, ok := tb.NextDeadline(); !ok || at != 50 {
		t.Fatalf("NextDeadline = %d, %v; want 50", at, ok)
	}
	steps := []struct {
		now    int64
		wantID uint64
		wantOK bool
	}{
		{49, 0, false},
		{50, 2, true},
		{50, 0, false},
		{99, 0, false},
		{1000, 1, true},
		{1000, 0, false},
	}
	for _, s := range steps {
		if id, ok := dueDelay(t, tb, s.now); id != s.wantID || ok != s.wantOK {
			t.Fatalf("DueDelay(%d) = %d, %v; want %d, %v", s.now, id, ok, s.wantID, s.wantOK)
		}
		checkCounts(t, tb)
	}
	if _, ok := tb.NextDeadline(); ok {
		t.Fatal("NextDeadline with nothing delayed or leased")
	}
	if got := drain(t, tb); !slices.Equal(got, []uint64{1, 2, 3, 4}) {
		t.Fatalf("order %v, want by id", got)
	}
}

func TestDelayedNacksGoToTheirPlaceWhenDue(t *testing.T) {
	tests := []struct {
		name  string
		front bool
		want  []uint64
	}{
		{"to the front", true, []uint64{1, 2, 3, 4, 5}},
		// A delayed nack to the back is placed by the newest id when its
		// delay runs out (queue/doc.go), so after 4 and 5 enqueued since.
		{"to the back", false, []uint64{2, 3, 4, 5, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t, 1, 3)
			must(t, tb.Lease(1, 1, far))
			must(t, tb.Nack(1, tt.front, 3, 100, 0))
			if e := tb.Get(1); e.State != StateDelayed || e.Time != 100 {
				t.Fatalf("nacked with a delay: %+v", e)
			}
			tb.Insert(4, 0, 0, 0)
			tb.Insert(5, 0, 0, 0)
			if id, _ := tb.NextReady(); id != 2 {
				t.Fatalf("NextReady = %d before the delay ran out, want 2", id)
			}
			if id, ok := dueDelay(t, tb, 100); !ok || id != 1 {
				t.Fatalf("DueDelay = %d, %v", id, ok)
			}
			checkCounts(t, tb)
			if got := drain(t, tb); !slices.Equal(got, tt.want) {
				t.Fatalf("order %v, want %v", got, tt.want)
			}
		})
	}
}

func TestLeasesRunOutByDeadline(t *testing.T) {
	tb := newTable(t, 1, 3)
	must(t, tb.Lease(1, 1, 100))
	must(t, tb.Lease(2, 1, 50))
	if at, ok := tb.NextDeadline(); !ok || at != 50 {
		t.Fatalf("NextDeadline = %d, %v; want 50", at, ok)
	}
	steps := []struct {
		name   string
		op     func() error
		now    int64
		wantID uint64
		wantOK bool
	}{
		{"earliest lease not yet due", nil, 49, 2, false},
		{"earliest lease due", nil, 50, 2, true},
		{"DueLease changes nothing", nil, 50, 2, true},
		{"expired lease is no longer due", func() error { return tb.Expire(2) }, 50, 1, false},
		{"next lease due", nil, 100, 1, true},
		{"extended lease not due", func() error { return tb.Extend(1, 200) }, 150, 1, false},
		{"extended lease due at its new deadline", nil, 200, 1, true},
		{"acked lease is gone", func() error { return tb.Ack(1) }, 1000, 0, false},
	}
	for _, s := range steps {
		if s.op != nil {
			must(t, s.op())
		}
		if id, ok := tb.DueLease(s.now); id != s.wantID || ok != s.wantOK {
			t.Fatalf("%s: DueLease(%d) = %d, %v; want %d, %v", s.name, s.now, id, ok, s.wantID, s.wantOK)
		}
		checkCounts(t, tb)
	}
	if e := tb.Get(2); e.State != StateReady || e.Requeue != ByID || e.Attempts != 1 {
		t.Fatalf("expired message: %+v", e)
	}
	if _, ok := tb.NextDeadline(); ok {
		t.Fatal("NextDeadline with nothing leased")
	}
}

func TestNextDeadlineIsTheEarlierOfDelaysAndLeases(t *testing.T) {
	tb := newTable(t, 1, 2)
	tb.Insert(3, 0, 300, 0)
	must(t, tb.Lease(1, 1, 200))
	if at, _ := tb.NextDeadline(); at != 200 {
		t.Fatalf("NextDeadline = %d, want the lease's 200", at)
	}
	must(t, tb.Lease(2, 1, 400))
	must(t, tb.Ack(1))
	if at, _ := tb.NextDeadline(); at != 300 {
		t.Fatalf("NextDeadline = %d, want the delay's 300", at)
	}
	must(t, tb.Dead(3))
	if at, _ := tb.NextDeadline(); at != 400 {
		t.Fatalf("NextDeadline = %d, want 400 once the delayed one is dead", at)
	}
}

func TestDeadMessagesLeaveTheOrderAndRedriveRestartsTheirTries(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, tb *Table)
	}{
		{"from leased", func(t *testing.T, tb *Table) { must(t, tb.Lease(2, 3, 50)) }},
		{"from ready", func(t *testing.T, tb *Table) {}},
		{"from ready by a nack", func(t *testing.T, tb *Table) {
			must(t, tb.Lease(2, 3, 50))
			must(t, tb.Nack(2, true, 0, 0, 0))
		}},
		{"from delayed", func(t *testing.T, tb *Table) {
			must(t, tb.Lease(2, 3, 50))
			must(t, tb.Nack(2, false, 3, 100, 0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t, 1, 3)
			tt.setup(t, tb)
			must(t, tb.Dead(2))
			if e := tb.Get(2); e.State != StateDead || e.Requeue != ByID {
				t.Fatalf("dead: %+v", e)
			}
			if tb.Count(StateDead) != 1 {
				t.Fatalf("Count(dead) = %d", tb.Count(StateDead))
			}
			if id, ok := dueDelay(t, tb, math.MaxInt64); ok {
				t.Fatalf("DueDelay gave dead message %d", id)
			}
			if id, ok := tb.DueLease(math.MaxInt64); ok {
				t.Fatalf("DueLease gave dead message %d", id)
			}
			checkCounts(t, tb)
			var te *TransitionError
			if err := tb.Dead(2); !errors.As(err, &te) {
				t.Fatalf("second Dead: %v", err)
			}
			before := tb.Get(2).Attempts
			must(t, tb.Redrive(2))
			if e := tb.Get(2); e.State != StateReady || e.Attempts != before || e.Requeue != ByID {
				t.Fatalf("redriven: %+v, want attempts kept at %d", e, before)
			}
			if tb.Tries(2) != 0 {
				t.Fatalf("Tries after redrive = %d, want 0", tb.Tries(2))
			}
			if before > 0 {
				must(t, tb.Lease(2, before+1, 10))
				if tb.Tries(2) != 1 {
					t.Fatalf("Tries after one more lease = %d, want 1", tb.Tries(2))
				}
				must(t, tb.Expire(2))
			}
			checkCounts(t, tb)
			if got := drain(t, tb); !slices.Equal(got, []uint64{1, 2, 3}) {
				t.Fatalf("order %v", got)
			}
		})
	}
}

func TestRemoveFinishesAMessageInAnyLiveState(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, tb *Table)
	}{
		{"ready", func(t *testing.T, tb *Table) {}},
		{"ready by a nack", func(t *testing.T, tb *Table) { must(t, tb.Lease(2, 1, 10)); must(t, tb.Nack(2, false, 0, 0, 0)) }},
		{"delayed", func(t *testing.T, tb *Table) { must(t, tb.Lease(2, 1, 10)); must(t, tb.Nack(2, true, 0, 20, 0)) }},
		{"leased", func(t *testing.T, tb *Table) { must(t, tb.Lease(2, 1, 10)) }},
		{"dead", func(t *testing.T, tb *Table) { must(t, tb.Dead(2)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := newTable(t, 1, 3)
			tt.setup(t, tb)
			must(t, tb.Remove(2))
			if e := tb.Get(2); e.State != StateDone {
				t.Fatalf("removed: %+v", e)
			}
			checkCounts(t, tb)
			if tb.Live() != 2 {
				t.Fatalf("Live = %d", tb.Live())
			}
			if _, ok := tb.NextDeadline(); ok {
				t.Fatal("a deadline is left")
			}
			var te *TransitionError
			if err := tb.Remove(2); !errors.As(err, &te) || te.State != StateDone {
				t.Fatalf("second Remove: %v", err)
			}
			if got := drain(t, tb); !slices.Equal(got, []uint64{1, 3}) {
				t.Fatalf("order %v", got)
			}
		})
	}
}

func TestPurgeFinishesUpToItsIDAndLeavesLaterIDs(t *testing.T) {
	tb := newTable(t, 1, 10)
	must(t, tb.Lease(2, 1, 100))
	must(t, tb.Lease(3, 1, 100))
	must(t, tb.Dead(3))
	must(t, tb.Lease(4, 1, 100))
	must(t, tb.Nack(4, false, 0, 500, 0))
	must(t, tb.Lease(8, 1, 100))
	must(t, tb.Lease(9, 1, 100))
	must(t, tb.Nack(9, true, 0, 0, 0))
	tb.Purge(6)
	for id := uint64(1); id <= 10; id++ {
		want := map[uint64]State{7: StateReady, 8: StateLeased, 9: StateReady, 10: StateReady}[id]
		if want == StateNone {
			want = StateDone
		}
		if got := tb.Get(id).State; got != want {
			t.Fatalf("after Purge(6): Get(%d) = %v, want %v", id, got, want)
		}
	}
	checkCounts(t, tb)
	if got := drain(t, tb); !slices.Equal(got, []uint64{9, 7, 10}) {
		t.Fatalf("order %v", got)
	}
	if at, _ := tb.NextDeadline(); at != 100 {
		t.Fatalf("NextDeadline = %d, want 8's lease", at)
	}
}

func TestPurgeAcrossChunksReleasesThem(t *testing.T) {
	n := uint64(2*chunkSize + 100)
	tb := newTable(t, 1, n)
	tb.Purge(2 * chunkSize)
	if tb.FirstID() != 2*chunkSize+1 {
		t.Fatalf("FirstID = %d, want %d", tb.FirstID(), 2*chunkSize+1)
	}
	if tb.Count(StateReady) != 100 || tb.Count(StateDone) != 0 {
		t.Fatalf("ready %d done %d", tb.Count(StateReady), tb.Count(StateDone))
	}
	checkCounts(t, tb)
	tb.Purge(math.MaxUint64)
	if tb.Live() != 0 || tb.Count(StateDone) != 100 {
		t.Fatalf("after purging everything: live %d done %d", tb.Live(), tb.Count(StateDone))
	}
	checkCounts(t, tb)
}

func TestInvalidTransitionsReturnTransitionError(t *testing.T) {
	tests := []struct {
		name  string
		id    uint64
		op    string
		state State
		do    func(tb *Table, id uint64) error
	}{
		{"ack of ready", 1, "ack", StateReady, func(tb *Table, id uint64) error { return tb.Ack(id) }},
		{"ack of delayed", 2, "ack", StateDelayed, func(tb *Table, id uint64) error { return tb.Ack(id) }},
		{"ack of dead", 4, "ack", StateDead, func(tb *Table, id uint64) error { return tb.Ack(id) }},
		{"ack of done", 5, "ack", StateDone, func(tb *Table, id uint64) error { return tb.Ack(id) }},
		{"ack of unknown", 100, "ack", StateNone, func(tb *Table, id uint64) error { return tb.Ack(id) }},
		{"lease of leased", 3, "lease", StateLeased, func(tb *Table, id uint64) error { return tb.Lease(id, 2, 1) }},
		{"lease of delayed", 2, "lease", StateDelayed, func(tb *Table, id uint64) error { return tb.Lease(id, 1, 1) }},
		{"lease of dead", 4, "lease", StateDead, func(tb *Table, id uint64) error { return tb.Lease(id, 1, 1) }},
		{"lease of unknown", 100, "lease", StateNone, func(tb *Table, id uint64) error { return tb.Lease(id, 1, 1) }},
		{"nack of ready", 1, "nack", StateReady, func(tb *Table, id uint64) error { return tb.Nack(id, true, 0, 0, 0) }},
		{"nack of done", 5, "nack", StateDone, func(tb *Table, id uint64) error { return tb.Nack(id, false, 0, 0, 0) }},
		{"extend of ready", 1, "extend", StateReady, func(tb *Table, id uint64) error { return tb.Extend(id, 9) }},
		{"expire of dead", 4, "expire", StateDead, func(tb *Table, id uint64) error { return tb.Expire(id) }},
		{"expire of ready", 1, "expire", StateReady, func(tb *Table, id uint64) error { return tb.Expire(id) }},
		{"kill of done", 5, "kill", StateDone, func(tb *Table, id uint64) error { return tb.Dead(id) }},
		{"kill of unknown", 7, "kill", StateNone, func(tb *Table, id uint64) error { return tb.Dead(id) }},
		{"redrive of ready", 1, "redrive", StateReady, func(tb *Table, id uint64) error { return tb.Redrive(id) }},
		{"redrive of leased", 3, "redrive", StateLeased, func(tb *Table, id uint64) error { return tb.Redrive(id) }},
		{"remove of done", 5, "remove", StateDone, func(tb *Table, id uint64) error { return tb.Remove(id) }},
		{"remove of unknown", 7, "remove", StateNone, func(tb *Table, id uint64) error { return tb.Remove(id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// 1 ready, 2 delayed, 3 leased, 4 dead, 5 done, 6 ready, 7 a hole.
			tb := NewTable()
			tb.Insert(1, 0, 0, 0)
			tb.Insert(2, 0, 1000, 0)
			tb.Insert(3, 0, 0, 0)
			tb.Insert(4, 0, 0, 0)
			tb.Insert(5, 0, 0, 0)
			tb.Insert(6, 0, 0, 0)
			must(t, tb.Lease(3, 1, 500))
			must(t, tb.Dead(4))
			must(t, tb.Remove(5))
			before := snapshotOf(tb)
			err := tt.do(tb, tt.id)
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Fatalf("err %v, want a TransitionError", err)
			}
			if te.Op != tt.op || te.ID != tt.id || te.State != tt.state {
				t.Fatalf("TransitionError %+v, want op %s id %d state %v", te, tt.op, tt.id, tt.state)
			}
			if te.Error() == "" {
				t.Fatal("empty error text")
			}
			if after := snapshotOf(tb); after != before {
				t.Fatal("a failed transition changed the table")
			}
		})
	}
}

// snapshotOf returns the table's snapshot bytes as a string, to compare
// two states of a table.
func snapshotOf(tb *Table) string { return string(EncodeSnapshot(nil, 0, tb)) }

func TestAckingAFullChunkReleasesIt(t *testing.T) {
	tb := newTable(t, 1, chunkSize+10)
	for id := uint64(1); id <= chunkSize; id++ {
		if tb.FirstID() != 1 {
			t.Fatalf("FirstID = %d with id %d not yet acked", tb.FirstID(), id)
		}
		must(t, tb.Lease(id, 1, far))
		must(t, tb.Ack(id))
	}
	if tb.FirstID() != chunkSize+1 {
		t.Fatalf("FirstID = %d after acking the first chunk, want %d", tb.FirstID(), chunkSize+1)
	}
	if len(tb.chunks) != 1 {
		t.Fatalf("%d chunks left, want 1", len(tb.chunks))
	}
	if tb.Count(StateDone) != 0 || tb.Count(StateReady) != 10 {
		t.Fatalf("done %d ready %d: the released chunk is still counted", tb.Count(StateDone), tb.Count(StateReady))
	}
	for _, id := range []uint64{1, chunkSize / 2, chunkSize} {
		if got := tb.Get(id); got != (Entry{State: StateDone}) {
			t.Fatalf("Get(%d) of a released id = %+v", id, got)
		}
		if tb.Insert(id, 0, 0, 0) {
			t.Fatalf("Insert(%d) of a released id = true", id)
		}
	}
	var te *TransitionError
	if err := tb.Lease(1, 1, 1); !errors.As(err, &te) || te.State != StateDone {
		t.Fatalf("Lease of a released id: %v", err)
	}
	checkCounts(t, tb)
	if got := drain(t, tb); len(got) != 10 || got[0] != chunkSize+1 {
		t.Fatalf("order %v", got)
	}
}

func TestAckingOutOfOrderReleasesOnlyTheFrontChunks(t *testing.T) {
	tb := newTable(t, 1, 3*chunkSize)
	ack := func(from, to uint64) {
		for id := from; id <= to; id++ {
			must(t, tb.Lease(id, 1, far))
			must(t, tb.Ack(id))
		}
	}
	ack(chunkSize+1, 2*chunkSize) // the middle chunk: nothing released
	if tb.FirstID() != 1 {
		t.Fatalf("FirstID = %d", tb.FirstID())
	}
	checkCounts(t, tb)
	ack(1, chunkSize) // now the first two go at once
	if tb.FirstID() != 2*chunkSize+1 {
		t.Fatalf("FirstID = %d, want %d", tb.FirstID(), 2*chunkSize+1)
	}
	checkCounts(t, tb)
}

func TestAHoleKeepsItsChunkUntilInsertedOrSealed(t *testing.T) {
	const hole = 77
	for _, seal := range []bool{false, true} {
		name := map[bool]string{false: "inserted late", true: "sealed"}[seal]
		t.Run(name, func(t *testing.T) {
			tb := NewTable()
			for id := uint64(1); id <= chunkSize+5; id++ {
				if id != hole {
					tb.Insert(id, 0, 0, 0)
				}
			}
			for id := uint64(1); id <= chunkSize; id++ {
				if id != hole {
					must(t, tb.Lease(id, 1, far))
					must(t, tb.Ack(id))
				}
			}
			if tb.FirstID() != 1 {
				t.Fatalf("FirstID = %d: the chunk with a hole was released", tb.FirstID())
			}
			if tb.Get(hole).State != StateNone {
				t.Fatalf("hole is %v", tb.Get(hole).State)
			}
			if tb.FirstHole() != hole {
				t.Fatalf("FirstHole = %d, want %d", tb.FirstHole(), hole)
			}
			checkCounts(t, tb)
			if seal {
				tb.SealHoles(chunkSize + 5)
				if tb.Insert(hole, 0, 0, 0) {
					t.Fatal("Insert of a sealed hole = true")
				}
			} else {
				if !tb.Insert(hole, 0, 0, 0) {
					t.Fatal("Insert of the hole = false")
				}
				if id, _ := tb.NextReady(); id != hole {
					t.Fatalf("NextReady = %d, want the late %d", id, hole)
				}
				must(t, tb.Lease(hole, 1, far))
				must(t, tb.Ack(hole))
			}
			if tb.FirstID() != chunkSize+1 {
				t.Fatalf("FirstID = %d, want %d", tb.FirstID(), chunkSize+1)
			}
			if tb.FirstHole() != chunkSize+6 {
				t.Fatalf("FirstHole = %d", tb.FirstHole())
			}
			checkCounts(t, tb)
		})
	}
}

func TestSealHolesMarksHolesDoneUpToItsID(t *testing.T) {
	tb := NewTable()
	for _, id := range []uint64{2, 3, 5, 9} {
		tb.Insert(id, 0, 0, 0)
	}
	if tb.FirstHole() != 1 {
		t.Fatalf("FirstHole = %d", tb.FirstHole())
	}
	tb.SealHoles(6)
	for id, want := range map[uint64]State{1: StateDone, 4: StateDone, 6: StateDone, 7: StateNone, 8: StateNone, 2: StateReady, 9: StateReady} {
		if got := tb.Get(id).State; got != want {
			t.Fatalf("Get(%d) = %v, want %v", id, got, want)
		}
	}
	if tb.FirstHole() != 7 {
		t.Fatalf("FirstHole = %d, want 7", tb.FirstHole())
	}
	if !tb.Insert(7, 0, 0, 0) || tb.Insert(6, 0, 0, 0) {
		t.Fatal("Insert after SealHoles: want 7 accepted, 6 refused")
	}
	checkCounts(t, tb)

	// Past the table's end: ids are born done when their chunk is added.
	tb.SealHoles(3*chunkSize + 10)
	if tb.FirstHole() != 3*chunkSize+11 {
		t.Fatalf("FirstHole = %d, want %d", tb.FirstHole(), 3*chunkSize+11)
	}
	if !tb.Insert(3*chunkSize+20, 0, 0, 0) || tb.Insert(3*chunkSize+5, 0, 0, 0) || tb.Insert(2*chunkSize, 0, 0, 0) {
		t.Fatal("Insert past a sealed range: want only the id past it accepted")
	}
	for _, id := range []uint64{chunkSize + 1, 2 * chunkSize, 3*chunkSize + 10} {
		if got := tb.Get(id).State; got != StateDone {
			t.Fatalf("Get(%d) = %v, want done", id, got)
		}
	}
	checkCounts(t, tb)
}

func TestSealHolesOnAnEmptyTableReleasesEverythingBelow(t *testing.T) {
	tb := NewTable()
	tb.SealHoles(2*chunkSize + 7)
	if !tb.Insert(2*chunkSize+8, 0, 0, 0) {
		t.Fatal("Insert past the sealed range = false")
	}
	if tb.FirstID() != 2*chunkSize+1 {
		t.Fatalf("FirstID = %d", tb.FirstID())
	}
	if tb.Count(StateDone) != 7 {
		t.Fatalf("Count(done) = %d, want the 7 born done in the new chunk", tb.Count(StateDone))
	}
	checkCounts(t, tb)
}

func TestInsertIsIdempotent(t *testing.T) {
	tb := NewTable()
	if !tb.Insert(5, 10, 0, 0) {
		t.Fatal("first Insert = false")
	}
	must(t, tb.Lease(5, 2, 99))
	before := tb.Get(5)
	if tb.Insert(5, 20, 0, 0) {
		t.Fatal("second Insert = true")
	}
	if tb.Get(5) != before {
		t.Fatalf("second Insert changed the entry: %+v, was %+v", tb.Get(5), before)
	}
	if tb.Insert(0, 0, 0, 0) {
		t.Fatal("Insert(0) = true")
	}
	if tb.Count(StateLeased) != 1 || tb.Live() != 1 {
		t.Fatalf("counts after a repeated insert: leased %d live %d", tb.Count(StateLeased), tb.Live())
	}
	checkCounts(t, tb)
}

func TestInsertAfterTheTableDrainedKeepsInFlightIDs(t *testing.T) {
	tb := newTable(t, 1, chunkSize)
	for id := uint64(1); id <= chunkSize; id++ {
		must(t, tb.Lease(id, 1, far))
		must(t, tb.Ack(id))
	}
	if tb.FirstID() != chunkSize+1 {
		t.Fatalf("FirstID = %d", tb.FirstID())
	}
	// Two enqueues in flight: ids chunkSize+1 .. 2*chunkSize+1 appended;
	// the later one's Insert comes first.
	late := uint64(2*chunkSize + 1)
	if !tb.Insert(late, 0, 0, 0) {
		t.Fatal("Insert(late) = false")
	}
	if got := tb.Get(chunkSize + 1).State; got != StateNone {
		t.Fatalf("id %d, never inserted, is %v", chunkSize+1, got)
	}
	if !tb.Insert(chunkSize+1, 0, 0, 0) {
		t.Fatalf("Insert(%d) = false: the message is lost", chunkSize+1)
	}
	if id, _ := tb.NextReady(); id != chunkSize+1 {
		t.Fatalf("NextReady = %d", id)
	}
}

// TestCountsMatchARecountAfterRandomOperations drives a table through
// random operations and recounts by brute force after each one.
func TestCountsMatchARecountAfterRandomOperations(t *testing.T) {
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 99))
		tb := NewTable()
		var next uint64 = 1
		now := int64(1000)
		for step := range 1000 {
			now += rng.Int64N(10)
			id := tb.FirstID() + rng.Uint64N(max(next, tb.FirstID())-tb.FirstID()+1)
			var err error
			switch k := rng.IntN(16); k {
			case 0, 1, 2:
				n := 1 + rng.IntN(40)
				for range n {
					if rng.IntN(20) == 0 {
						next++ // a hole
					}
					readyAt := int64(0)
					if rng.IntN(5) == 0 {
						readyAt = now + rng.Int64N(50)
					}
					tb.Insert(next, 0, readyAt, now)
					next++
				}
			case 3, 4:
				if rid, ok := tb.NextReady(); ok {
					err = tb.Lease(rid, uint16(1+rng.IntN(5)), now+rng.Int64N(100))
				}
			case 5, 6:
				err = tb.Ack(id)
			case 7:
				err = tb.Nack(id, rng.IntN(2) == 0, tb.MaxID()-rng.Uint64N(tb.MaxID()+1), now+rng.Int64N(40)-20, now)
			case 8:
				err = tb.Extend(id, now+rng.Int64N(100))
			case 9:
				err = tb.Dead(id)
			case 10:
				err = tb.Redrive(id)
			case 11:
				err = tb.Remove(id)
			case 12:
				if rng.IntN(10) == 0 {
					tb.Purge(id)
				}
			case 13:
				for {
					if _, ok := dueDelay(t, tb, now); !ok {
						break
					}
				}
			case 14:
				if lid, ok := tb.DueLease(now); ok {
					err = tb.Expire(lid)
				}
			case 15:
				if rng.IntN(10) == 0 {
					tb.SealHoles(id)
				}
			}
			var te *TransitionError
			if err != nil && !errors.As(err, &te) {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			checkCounts(t, tb)
		}
	}
}

// TestReplayingEventsRebuildsTheTable applies the events a live table
// went through to a fresh table holding the same records, as a restart
// does, and expects the same table.
func TestReplayingEventsRebuildsTheTable(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	live := NewTable()
	var events []Event
	var inserted []uint64
	apply := func(ev Event) {
		if err := live.Apply(ev, 0); err != nil {
			var te *TransitionError
			if !errors.As(err, &te) {
				t.Fatal(err)
			}
			return
		}
		events = append(events, ev)
	}
	next := uint64(1)
	for range 5000 {
		switch rng.IntN(10) {
		case 0:
			for range 10 {
				live.Insert(next, uint32(next), 0, 0)
				inserted = append(inserted, next)
				next++
			}
		case 1, 2:
			if id, ok := live.NextReady(); ok {
				apply(Event{Type: EvLease, ID: id, Attempt: live.Get(id).Attempts + 1, Time: rng.Int64N(1000)})
			}
		case 3:
			if id, ok := live.DueLease(rng.Int64N(1000)); ok {
				apply(Event{Type: EvExpire, ID: id})
			}
		default:
			id := 1 + rng.Uint64N(next)
			evs := []Event{
				{Type: EvAck, ID: id},
				{Type: EvNack, ID: id, Front: true},
				{Type: EvNack, ID: id, After: live.MaxID()},
				{Type: EvExtend, ID: id, Time: rng.Int64N(1000)},
				{Type: EvDead, ID: id},
				{Type: EvRedrive, ID: id},
				{Type: EvRemove, ID: id},
				// Purge only ids already inserted: see
				// TestPurgeTreatsALateInsertTheSameLiveAndOnReplay.
				{Type: EvPurge, ID: min(id/8, live.MaxID())},
			}
			if ev := evs[rng.IntN(len(evs))]; ev.ID != 0 {
				apply(ev)
			}
		}
	}
	if len(events) < 1000 || live.Count(StateDead) == 0 || live.Count(StateLeased) == 0 || live.Count(StateReady) == 0 {
		t.Fatalf("too little happened: %d events, counts %v", len(events), live.counts)
	}
	// The replay reads its events back from their encoding.
	evs, err := DecodeEntry(nil, EncodeEntry(nil, events))
	if err != nil {
		t.Fatal(err)
	}
	replayed := NewTable()
	for _, id := range inserted {
		replayed.Insert(id, uint32(id), 0, 0)
	}
	for _, ev := range evs {
		if err := replayed.Apply(ev, 0); err != nil {
			t.Fatalf("replay of %+v: %v", ev, err)
		}
	}
	compareTables(t, live, replayed)
}

// Table.Purge skips ids not yet inserted (an enqueue in flight), so such a
// message stays live; a restart inserts every record before replaying the
// state log, so the same EvPurge then finishes it. The message is live
// before the restart and gone after, without an ack.
func TestPurgeTreatsALateInsertTheSameLiveAndOnReplay(t *testing.T) {
	live := NewTable()
	live.Insert(1, 0, 0, 0)
	live.Insert(3, 0, 0, 0) // 2's enqueue is still in flight
	must(t, live.Apply(Event{Type: EvPurge, ID: live.MaxID()}, 0))
	live.Insert(2, 0, 0, 0) // 2's enqueue returns to its producer

	replayed := NewTable()
	for id := uint64(1); id <= 3; id++ {
		replayed.Insert(id, 0, 0, 0)
	}
	must(t, replayed.Apply(Event{Type: EvPurge, ID: 3}, 0))
	if l, r := live.Get(2).State, replayed.Get(2).State; l != r {
		t.Fatalf("message 2 is %v live and %v after a replay", l, r)
	}
}

func TestApplyRejectsAnUnknownEventType(t *testing.T) {
	tb := newTable(t, 1, 1)
	for _, typ := range []EventType{0, evLimit, 255} {
		if err := tb.Apply(Event{Type: typ, ID: 1}, 0); err == nil {
			t.Fatalf("Apply of type %v: no error", typ)
		}
	}
}

func TestStateAndEventNames(t *testing.T) {
	for s, want := range map[State]string{StateNone: "none", StateReady: "ready", StateDone: "done", 77: "state(77)"} {
		if s.String() != want {
			t.Fatalf("State(%d).String() = %q", s, s.String())
		}
	}
	for e, want := range map[EventType]string{EvLease: "lease", EvExpire: "expire", EvReady: "ready", EvMoving: "moving", EvSeek: "seek", EvSkip: "skip", 0: "event(0)", 14: "event(14)"} {
		if e.String() != want {
			t.Fatalf("EventType(%d).String() = %q", e, e.String())
		}
	}
}

// BenchmarkTableMemory reports the heap a table takes per message, for 1M
// messages inserted ready. The target is at most 32 B/msg.
func BenchmarkTableMemory(b *testing.B) {
	benchTableMemory(b, func(uint64) uint32 { return DefaultPriority })
}

// benchTableMemory measures a table of 1M ready messages, message id at
// priority pri(id).
func benchTableMemory(b *testing.B, pri func(id uint64) uint32) {
	const n = 1 << 20
	var perMsg float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		tb := NewTable()
		for id := uint64(1); id <= n; id++ {
			tb.InsertPriority(id, uint32(id), pri(id), 0, 0)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		perMsg = float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / n
		runtime.KeepAlive(tb)
	}
	b.ReportMetric(perMsg, "B/msg")
}

func TestInsertAtOrBelowTheFloorOfAReleasedTableIsRefused(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= chunkSize; id++ {
		tb.Insert(id, 0, 0, 0)
		must(t, tb.Lease(id, 1, 1))
		must(t, tb.Ack(id))
	}
	tb.SealHoles(10000)
	if tb.Insert(5000, 0, 0, 0) {
		t.Fatal("Insert of an id below the floor succeeded")
	}
	if !tb.Insert(10001, 0, 0, 0) || tb.Get(10001).State != StateReady {
		t.Fatalf("Insert past the floor: %+v", tb.Get(10001))
	}
	checkCounts(t, tb)
}

// dueDelay does what the queue does with a delay that ran out: DueDelay
// names the message, and EvReady's transition (Ready, after the newest id)
// makes it ready.
func dueDelay(t testing.TB, tb *Table, now int64) (uint64, bool) {
	t.Helper()
	id, ok := tb.DueDelay(now)
	if ok {
		if err := tb.Ready(id, tb.MaxID()); err != nil {
			t.Fatalf("Ready(%d) of a due delay: %v", id, err)
		}
	}
	return id, ok
}

// OldestReady agrees with the first ready message a full scan finds, under
// random leases, nacks to the front and back (with and without a delay),
// expiries, acks, deaths and redrives.
func TestOldestReadyIsTheLowestReadyID(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tb := NewTable()
	now := int64(1000)
	for id := uint64(1); id <= 300; id++ {
		tb.Insert(id, uint32(id), 0, now)
	}
	for step := range 20000 {
		id := uint64(r.IntN(300) + 1)
		e := tb.Get(id)
		switch r.IntN(7) {
		case 0, 1:
			if e.State == StateReady {
				tb.Lease(id, e.Attempts+1, now+100)
			}
		case 2:
			var readyAt int64
			if r.IntN(4) == 0 {
				readyAt = now + 50
			}
			tb.Nack(id, r.IntN(2) == 0, tb.MaxID(), readyAt, now)
		case 3:
			tb.Expire(id)
		case 4:
			if r.IntN(8) == 0 {
				tb.Ack(id)
			}
		case 5:
			tb.Dead(id)
		case 6:
			tb.Redrive(id)
		}
		if step%50 == 0 {
			now += 60
			for {
				if _, ok := dueDelay(t, tb, now); !ok {
					break
				}
			}
		}
		var want uint64
		tb.Scan(0, StateReady, func(id uint64, _ Entry) bool { want = id; return false })
		if got, ok := tb.OldestReady(); got != want || ok != (want != 0) {
			t.Fatalf("step %d: OldestReady = %d, %v; a scan finds %d", step, got, ok, want)
		}
	}
}
