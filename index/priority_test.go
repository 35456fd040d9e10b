package index

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// insertPri inserts id ready at once with priority pri.
func insertPri(t testing.TB, tb *Table, id uint64, pri uint32) {
	t.Helper()
	if !tb.InsertPriority(id, uint32(id), pri, 0, 0) {
		t.Fatalf("InsertPriority(%d) = false", id)
	}
}

// lease leases the ready message id, failing the test if it is not ready.
func lease(t testing.TB, tb *Table, id uint64) {
	t.Helper()
	must(t, tb.Lease(id, tb.Get(id).Attempts+1, far))
}

func TestReadyOrderIsByPriorityThenByID(t *testing.T) {
	tb := NewTable()
	pris := map[uint64]uint32{1: 1024, 2: 5, 3: 1024, 4: 0, 5: 5, 6: math.MaxUint32, 7: 0}
	for id := uint64(1); id <= 7; id++ {
		insertPri(t, tb, id, pris[id])
	}
	if got, want := drain(t, tb), []uint64{4, 7, 2, 5, 1, 3, 6}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v", got, want)
	}
	for id, want := range pris {
		if got := tb.Priority(id); got != want {
			t.Fatalf("Priority(%d) = %d, want %d", id, got, want)
		}
	}
	checkCounts(t, tb)
}

func TestInsertWithoutAPriorityIsTheDefault(t *testing.T) {
	tb := NewTable()
	tb.Insert(1, 0, 0, 0)
	insertPri(t, tb, 2, DefaultPriority-1)
	insertPri(t, tb, 3, DefaultPriority+1)
	if got := tb.Priority(1); got != DefaultPriority {
		t.Fatalf("Priority(1) = %d, want %d", got, DefaultPriority)
	}
	if got, want := drain(t, tb), []uint64{2, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v", got, want)
	}
	if got := tb.Priority(99); got != DefaultPriority {
		t.Fatalf("Priority of an unknown id = %d, want the default", got)
	}
}

// Within one priority, front and back nacks keep their places as in a
// single-priority queue; across priorities, priority wins.
func TestNacksGoToTheFrontOrBackOfTheirOwnPriority(t *testing.T) {
	tb := NewTable()
	// ids 1-4 at 10, 5-8 at 20.
	for id := uint64(1); id <= 8; id++ {
		insertPri(t, tb, id, uint32(10+10*((id-1)/4)))
	}
	lease(t, tb, 1)
	lease(t, tb, 2)
	must(t, tb.Nack(2, true, 0, 0, 0)) // front of 10
	lease(t, tb, 2)
	lease(t, tb, 3)
	must(t, tb.Nack(3, false, tb.MaxID(), 0, 0)) // back of 10: after 4, before 5..8 only by priority
	must(t, tb.Nack(1, true, 0, 0, 0))           // front of 10, ahead of nothing else nacked now
	must(t, tb.Nack(2, false, 2, 0, 0))          // back of 10, after id 2: before 3 (nacked after 8) and 4
	// 10: front [1], then by id/back: 2 (after 2) sorts before 4, 3 (after 8) after 4.
	if got, want := drain(t, tb), []uint64{1, 2, 4, 3, 5, 6, 7, 8}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v", got, want)
	}
	checkCounts(t, tb)
}

func TestANackCanGiveANewPriorityAndOtherwiseKeepsIt(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= 4; id++ {
		insertPri(t, tb, id, 100)
	}
	lease(t, tb, 1)
	lease(t, tb, 2)
	must(t, tb.Apply(Event{Type: EvNack, ID: 1, After: tb.MaxID(), SetPriority: true, Priority: 200}, 0))
	must(t, tb.Apply(Event{Type: EvNack, ID: 2, Front: true}, 0))
	if tb.Priority(1) != 200 || tb.Priority(2) != 100 {
		t.Fatalf("priorities %d and %d, want 200 (set) and 100 (kept)", tb.Priority(1), tb.Priority(2))
	}
	if got, want := drain(t, tb), []uint64{2, 3, 4, 1}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v", got, want)
	}
	// Released to a more urgent priority, at the back of it: still first.
	must(t, tb.Apply(Event{Type: EvNack, ID: 4, After: tb.MaxID(), SetPriority: true, Priority: 0}, 0))
	must(t, tb.Expire(3))
	if got, want := drain(t, tb), []uint64{4, 3}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v", got, want)
	}
	// A nack that does not apply changes no priority.
	if err := tb.Apply(Event{Type: EvNack, ID: 99, SetPriority: true, Priority: 7}, 0); err == nil {
		t.Fatal("nack of an unknown id succeeded")
	}
	checkCounts(t, tb)
}

func TestDelayedMessagesBecomeReadyAtTheirPriority(t *testing.T) {
	tb := NewTable()
	tb.InsertPriority(1, 0, 50, 0, 0)
	tb.InsertPriority(2, 0, 10, 100, 0) // delayed until 100
	tb.InsertPriority(3, 0, 50, 0, 0)
	lease(t, tb, 1)
	must(t, tb.Apply(Event{Type: EvNack, ID: 1, Front: true, Time: 200, SetPriority: true, Priority: 5}, 0))
	if got := drain(t, tb); !slices.Equal(got, []uint64{3}) {
		t.Fatalf("before any delay ran out: %v, want [3]", got)
	}
	must(t, tb.Expire(3))
	if id, ok := dueDelay(t, tb, 150); !ok || id != 2 {
		t.Fatalf("due at 150: %d, %v; want 2", id, ok)
	}
	if id, ok := dueDelay(t, tb, 250); !ok || id != 1 {
		t.Fatalf("due at 250: %d, %v; want 1", id, ok)
	}
	if got, want := drain(t, tb), []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("ready order %v, want %v (5, 10, 50)", got, want)
	}
	checkCounts(t, tb)
}

func TestDeadKeepsItsPriorityOrABuryGivesOneAndRedriveKeepsIt(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= 4; id++ {
		insertPri(t, tb, id, 300)
	}
	lease(t, tb, 1)
	must(t, tb.Apply(Event{Type: EvDead, ID: 1}, 0))
	must(t, tb.Apply(Event{Type: EvDead, ID: 2, SetPriority: true, Priority: 1}, 0)) // buried while ready
	if tb.Priority(1) != 300 || tb.Priority(2) != 1 {
		t.Fatalf("dead priorities %d and %d, want 300 and 1", tb.Priority(1), tb.Priority(2))
	}
	must(t, tb.Redrive(1))
	must(t, tb.Redrive(2))
	if got, want := drain(t, tb), []uint64{2, 1, 3, 4}; !slices.Equal(got, want) {
		t.Fatalf("ready order after redrive %v, want %v", got, want)
	}
	checkCounts(t, tb)
}

// A level is freed when its last message goes, and taken again by the
// next priority that needs one: a queue that moves through priorities
// (timestamps, say) does not run out of levels.
func TestPriorityLevelsAreReusedOnceFree(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= 10*maxLevels; id++ {
		insertPri(t, tb, id, uint32(id))
		lease(t, tb, id)
		must(t, tb.Ack(id))
	}
	if len(tb.levels) != 1 || len(tb.overflow) != 0 {
		t.Fatalf("%d levels and %d overflow for one live priority at a time", len(tb.levels), len(tb.overflow))
	}
	checkCounts(t, tb)
}

// Past maxLevels distinct live priorities, the rest are kept per message
// and still order right, by id within a priority as well.
func TestMorePrioritiesThanLevelsStillOrderRight(t *testing.T) {
	tb := NewTable()
	const n = 3 * maxLevels
	var want []uint64
	for id := uint64(1); id <= n; id++ {
		// Priorities n..1, each shared by ids i and i+n (inserted later).
		insertPri(t, tb, id, uint32(n+1-id))
	}
	for id := uint64(n + 1); id <= 2*n; id++ {
		insertPri(t, tb, id, uint32(2*n+1-id))
	}
	for i := uint64(n); i >= 1; i-- {
		want = append(want, i, i+n)
	}
	if len(tb.overflow) == 0 {
		t.Fatal("no message went to the overflow level")
	}
	checkCounts(t, tb)
	snap, err := DecodeSnapshot(EncodeSnapshot(nil, 1, tb))
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, tb); !slices.Equal(got, want) {
		t.Fatalf("ready order %v..., want %v...", head(got), head(want))
	}
	if got := drain(t, snap.Table); !slices.Equal(got, want) {
		t.Fatalf("after a snapshot: ready order %v..., want %v...", head(got), head(want))
	}
}

// A queue whose every message shares one priority, whichever, never
// allocates per-chunk level counts: it costs what it did before
// priorities.
func TestASinglePriorityQueueKeepsNoLevelCounts(t *testing.T) {
	for _, pri := range []uint32{0, 7, DefaultPriority, math.MaxUint32} {
		tb := NewTable()
		for id := uint64(1); id <= 3*chunkSize; id++ {
			insertPri(t, tb, id, pri)
		}
		for range chunkSize / 2 {
			id, _ := tb.NextReady()
			lease(t, tb, id)
			must(t, tb.Nack(id, id%2 == 0, tb.MaxID(), 0, 0))
		}
		for _, c := range tb.chunks {
			if c.levelReady != nil {
				t.Fatalf("priority %d: a chunk has per-level counts", pri)
			}
		}
		if len(tb.levels) != 1 {
			t.Fatalf("priority %d: %d levels", pri, len(tb.levels))
		}
	}
}

func TestPrioritiesSurviveASnapshotAndASingleOneCostsNothing(t *testing.T) {
	one := NewTable()
	def := NewTable()
	for id := uint64(1); id <= 100; id++ {
		insertPri(t, one, id, 7)
		insertPri(t, def, id, DefaultPriority)
	}
	a, b := EncodeSnapshot(nil, 1, one), EncodeSnapshot(nil, 1, def)
	if a[4] != 3 || b[4] != 2 {
		t.Fatalf("versions %d and %d, want 3 (a priority other than the default) and 2", a[4], b[4])
	}
	if len(a) != len(b)+1 {
		t.Fatalf("a single priority 7 takes %d bytes, the default %d: want one more, for the common priority", len(a), len(b))
	}
	for seed := range uint64(3) {
		orig := prioritizedTable(t, seed)
		snap, err := DecodeSnapshot(EncodeSnapshot(nil, 9, orig))
		if err != nil {
			t.Fatal(err)
		}
		if snap.Table.Count(StateReady) == 0 {
			t.Fatal("no ready message to compare")
		}
		compareTables(t, orig, snap.Table)
	}
}

// prioritizedTable is mixedTable with its live messages spread over a
// few priorities, some set by a nack or a bury, and a handful past the
// levels (overflow).
func prioritizedTable(t testing.TB, seed uint64) *Table {
	t.Helper()
	tb := mixedTable(t, seed, 2)
	rng := rand.New(rand.NewPCG(seed, 7))
	pris := []uint32{0, 3, DefaultPriority, math.MaxUint32}
	tb.Scan(0, StateNone, func(id uint64, e Entry) bool {
		pri := pris[rng.IntN(len(pris))]
		switch e.State {
		case StateLeased:
			if rng.IntN(2) == 0 {
				must(t, tb.Apply(Event{Type: EvNack, ID: id, Front: rng.IntN(2) == 0, After: tb.MaxID(), SetPriority: true, Priority: pri}, 0))
			}
		case StateReady, StateDelayed:
			if rng.IntN(4) == 0 {
				must(t, tb.Apply(Event{Type: EvDead, ID: id, SetPriority: true, Priority: pri}, 0))
			}
		}
		return true
	})
	for i := range uint32(2 * maxLevels) {
		tb.InsertPriority(tb.MaxID()+1, 1, 1_000_000+i, 0, 0)
	}
	if len(tb.overflow) == 0 {
		t.Fatal("no message at the overflow level")
	}
	checkCounts(t, tb)
	return tb
}

// The model: a reference queue kept as a plain map, ordering ready
// messages by (priority, placement key), where the key puts a front nack
// at (0, seq), a message ready by id at (id, 0) and a back nack after id
// a at (a, seq): the rule the table implements with bitmaps and heaps.
type modelMsg struct {
	state   State
	pri     uint32
	rq      Requeue
	key     [2]int64 // ready: placement within its priority
	readyAt int64    // delayed
}

type model struct {
	msgs  map[uint64]*modelMsg
	seq   int64
	maxID uint64
}

func (m *model) becomeReady(id uint64, mode Requeue, readyAt, now int64, after uint64) {
	msg := m.msgs[id]
	msg.rq = mode
	if readyAt > now {
		msg.state, msg.readyAt = StateDelayed, readyAt
		return
	}
	msg.state = StateReady
	switch mode {
	case ByID:
		msg.key = [2]int64{int64(id), 0}
	case Front:
		m.seq++
		msg.key = [2]int64{0, m.seq}
	case Back:
		m.seq++
		if after == 0 {
			after = m.maxID
		}
		msg.key = [2]int64{int64(after), m.seq}
	}
}

// next returns the ready message the model would lease next.
func (m *model) next() (uint64, bool) {
	var best uint64
	for id, msg := range m.msgs {
		if msg.state != StateReady {
			continue
		}
		if best == 0 {
			best = id
			continue
		}
		b := m.msgs[best]
		if c := cmp.Or(cmp.Compare(msg.pri, b.pri), cmp.Compare(msg.key[0], b.key[0]), cmp.Compare(msg.key[1], b.key[1])); c < 0 {
			best = id
		}
	}
	return best, best != 0
}

// dueDelay returns the delayed message whose time came first, by
// (ready-at, id) as the delay heap orders them.
func (m *model) dueDelay(now int64) (uint64, bool) {
	var best uint64
	for id, msg := range m.msgs {
		if msg.state == StateDelayed && msg.readyAt <= now {
			if b := m.msgs[best]; best == 0 || msg.readyAt < b.readyAt || (msg.readyAt == b.readyAt && id < best) {
				best = id
			}
		}
	}
	return best, best != 0
}

func (m *model) inState(rng *rand.Rand, states ...State) (uint64, bool) {
	var ids []uint64
	for id, msg := range m.msgs {
		if slices.Contains(states, msg.state) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return 0, false
	}
	slices.Sort(ids)
	return ids[rng.IntN(len(ids))], true
}

// modelChange is one change the model test made, to replay onto a fresh table.
type modelChange struct {
	insert  bool
	id      uint64
	pri     uint32
	readyAt int64
	ev      Event
	now     int64
}

// TestTableMatchesAModelUnderRandomOperations drives a table and the
// model with the same random inserts (at a few priorities, or at
// arbitrary ones that overflow the levels), leases, acks, nacks (front,
// back, delayed, to a new priority), expiries, deaths and buries,
// redrives, removes and delays running out, swapping the table for its
// snapshot now and then; after every step they must agree on the next
// message and on every priority. At the end a replay of every change onto
// an empty table must give the same ready order.
func TestTableMatchesAModelUnderRandomOperations(t *testing.T) {
	pools := []struct {
		name     string
		pri      func(*rand.Rand) uint32
		overflow bool // must reach the overflow level
	}{
		{"one priority", func(*rand.Rand) uint32 { return 42 }, false},
		{"four priorities", func(r *rand.Rand) uint32 { return uint32(r.IntN(4)) * 100 }, false},
		{"16 priorities", func(r *rand.Rand) uint32 { return uint32(r.IntN(16)) }, false},
		{"any uint32", func(r *rand.Rand) uint32 { return r.Uint32() }, true},
		{"around the limit", func(r *rand.Rand) uint32 { return uint32(r.IntN(maxLevels + 40)) }, false},
	}
	for _, p := range pools {
		for seed := range uint64(4) {
			t.Run(fmt.Sprintf("%s/seed %d", p.name, seed), func(t *testing.T) {
				if overflowed := modelRun(t, seed, p.pri); p.overflow && !overflowed {
					t.Fatal("never reached the overflow level")
				}
			})
		}
	}
}

// modelRun runs one model test and reports whether the table used the
// overflow level.
func modelRun(t *testing.T, seed uint64, pool func(*rand.Rand) uint32) bool {
	rng := rand.New(rand.NewPCG(seed, 99))
	tb := NewTable()
	m := &model{msgs: map[uint64]*modelMsg{}}
	var log []modelChange
	now := int64(1000)
	apply := func(ev Event) {
		t.Helper()
		if err := tb.Apply(ev, now); err != nil {
			t.Fatalf("Apply(%+v): %v", ev, err)
		}
		log = append(log, modelChange{ev: ev, now: now})
	}
	overflowed := false
	for step := range 3000 {
		switch op := rng.IntN(20); {
		case op < 5: // insert, sometimes delayed
			id := tb.MaxID() + 1
			pri := pool(rng)
			var readyAt int64
			if rng.IntN(5) == 0 {
				readyAt = now + 1 + rng.Int64N(200)
			}
			tb.InsertPriority(id, 0, pri, readyAt, now)
			log = append(log, modelChange{insert: true, id: id, pri: pri, readyAt: readyAt, now: now})
			m.maxID = id
			m.msgs[id] = &modelMsg{pri: pri}
			m.becomeReady(id, ByID, readyAt, now, 0)
		case op < 10: // take the next ready message
			id, ok := m.next()
			if !ok {
				break
			}
			apply(Event{Type: EvLease, ID: id, Attempt: tb.Get(id).Attempts + 1, Time: now + 1000})
			m.msgs[id].state = StateLeased
		case op < 12:
			if id, ok := m.inState(rng, StateLeased); ok {
				apply(Event{Type: EvAck, ID: id})
				delete(m.msgs, id)
			}
		case op < 15:
			id, ok := m.inState(rng, StateLeased)
			if !ok {
				break
			}
			ev := Event{Type: EvNack, ID: id, Front: rng.IntN(2) == 0, InPlace: rng.IntN(5) == 0}
			if rng.IntN(2) == 0 {
				ev.After = tb.MaxID() - uint64(rng.IntN(int(tb.MaxID())))
			}
			if rng.IntN(4) == 0 {
				ev.Time = now + 1 + rng.Int64N(200)
			}
			if rng.IntN(3) == 0 {
				ev.SetPriority, ev.Priority = true, pool(rng)
				m.msgs[id].pri = ev.Priority
			}
			apply(ev)
			m.becomeReady(id, ev.requeue(), ev.Time, now, ev.After)
		case op == 15:
			if id, ok := m.inState(rng, StateLeased); ok {
				apply(Event{Type: EvExpire, ID: id})
				m.becomeReady(id, ByID, 0, 0, 0)
			}
		case op == 16:
			id, ok := m.inState(rng, StateLeased, StateReady, StateDelayed)
			if !ok {
				break
			}
			ev := Event{Type: EvDead, ID: id}
			if rng.IntN(2) == 0 {
				ev.SetPriority, ev.Priority = true, pool(rng)
				m.msgs[id].pri = ev.Priority
			}
			apply(ev)
			m.msgs[id].state, m.msgs[id].rq = StateDead, ByID
		case op == 17:
			if id, ok := m.inState(rng, StateDead); ok {
				apply(Event{Type: EvRedrive, ID: id})
				m.becomeReady(id, ByID, 0, 0, 0)
			}
		case op == 18:
			if id, ok := m.inState(rng, StateReady, StateDelayed, StateLeased, StateDead); ok && rng.IntN(3) == 0 {
				apply(Event{Type: EvRemove, ID: id})
				delete(m.msgs, id)
			}
		case op == 19: // time passes; delays run out in deadline order
			now += rng.Int64N(100)
			if id, at, ok := tb.NextDelayed(); ok && (m.msgs[id].state != StateDelayed || m.msgs[id].readyAt != at) {
				t.Fatalf("step %d: NextDelayed = %d at %d; model has it %s at %d", step, id, at, m.msgs[id].state, m.msgs[id].readyAt)
			}
			for {
				id, ok := tb.DueDelay(now)
				want, wok := m.dueDelay(now)
				if id != want || ok != wok {
					t.Fatalf("step %d: DueDelay = %d, %v; model %d, %v", step, id, ok, want, wok)
				}
				if !ok {
					break
				}
				apply(Event{Type: EvReady, ID: id, After: tb.MaxID()})
				m.becomeReady(id, m.msgs[id].rq, 0, 0, tb.MaxID())
			}
		}
		overflowed = overflowed || len(tb.overflow) > 0
		if step%200 == 199 {
			checkCounts(t, tb)
			snap, err := DecodeSnapshot(EncodeSnapshot(nil, 1, tb))
			if err != nil {
				t.Fatalf("step %d: snapshot: %v", step, err)
			}
			// A decoded table's encoding is a fixed point (a live one's
			// heap order may differ, its content not).
			enc := EncodeSnapshot(nil, 1, snap.Table)
			again, err := DecodeSnapshot(enc)
			if err != nil || !bytes.Equal(EncodeSnapshot(nil, 1, again.Table), enc) {
				t.Fatalf("step %d: the snapshot of a decoded table is not a fixed point (%v)", step, err)
			}
			tb = snap.Table
		}
		got, ok := tb.NextReady()
		want, wok := m.next()
		if got != want || ok != wok {
			t.Fatalf("step %d: NextReady = %d, %v; model says %d, %v (priority %d and %d)", step, got, ok, want, wok, tb.Priority(got), tb.Priority(want))
		}
		below, wantBelow := pool(rng), 0
		for id, msg := range m.msgs {
			if tb.Priority(id) != msg.pri || tb.Get(id).State != msg.state {
				t.Fatalf("step %d: message %d: %s at %d, model %s at %d", step, id, tb.Get(id).State, tb.Priority(id), msg.state, msg.pri)
			}
			if msg.state == StateReady && msg.pri < below {
				wantBelow++
			}
		}
		if got := tb.ReadyBelow(below); got != wantBelow {
			t.Fatalf("step %d: ReadyBelow(%d) = %d, model %d", step, below, got, wantBelow)
		}
		if tb.Live() != len(m.msgs) {
			t.Fatalf("step %d: %d live, model %d", step, tb.Live(), len(m.msgs))
		}
	}
	checkCounts(t, tb)

	replay := NewTable()
	for _, r := range log {
		if r.insert {
			replay.InsertPriority(r.id, 0, r.pri, r.readyAt, r.now)
			continue
		}
		if err := replay.Apply(r.ev, r.now); err != nil {
			t.Fatalf("replay of %+v: %v", r.ev, err)
		}
	}
	compareTables(t, tb, replay)
	return overflowed
}

// BenchmarkInsertTakeMixed inserts and takes messages spread evenly over
// 4 and 16 priorities, and over arbitrary ones (the overflow path), to
// set against BenchmarkInsertTake's single priority.
func BenchmarkInsertTakeMixed(b *testing.B) {
	for _, levels := range []int{4, 16, 0} {
		name := fmt.Sprintf("%d levels", levels)
		if levels == 0 {
			name = "arbitrary"
		}
		b.Run(name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 2))
			pris := make([]uint32, benchBacklog)
			for i := range pris {
				if levels == 0 {
					pris[i] = rng.Uint32()
				} else {
					pris[i] = uint32(rng.IntN(levels))
				}
			}
			benchTakeAll(b, func(tb *Table, id uint64) { tb.InsertPriority(id, uint32(id), pris[id-1], 0, 0) })
		})
	}
}

// BenchmarkTableMemoryMixed is BenchmarkTableMemory with 16 priorities.
func BenchmarkTableMemoryMixed(b *testing.B) {
	benchTableMemory(b, func(id uint64) uint32 { return uint32(id*2654435761) % 16 })
}
