package index

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The golden files in testdata were written by EncodeEntry and
// EncodeSnapshot from the fixed inputs below, and are checked in so that
// any change to those bytes, or to how they decode, fails a test instead
// of leaving every queue's state log or snapshot unreadable after an
// upgrade:
//
//	entry.golden     one state-log entry holding every event type
//	snapshot.golden  a snapshot of a table with a message in every state:
//	                 ready by id, nacked to the front and to the back,
//	                 delayed (by enqueue and by a delayed nack), leased
//	                 (extended, and after a redrive), dead (being moved to
//	                 a dead-letter queue), done, and never inserted
//	snapshot-sub.golden  a subscription's table after a seek and a skip
//	                 (one priority, so still snapshot version 2)
//
// and, never rewritten, what earlier formats wrote, which must still decode:
//
//	entry-r1.golden      round 1's entry (no seek or skip events)
//	entry-v1.golden      entry version 1: the golden events without the
//	                     priorities a nack and a bury set
//	snapshot-v1.golden   the golden table in snapshot version 1
//	snapshot-v2.golden   the golden table in snapshot version 2, without
//	                     priorities
//
// After an intended format change (which also bumps the entry or
// snapshot version, keeping a reader for the old one), regenerate them
// with
//
//	go test ./index/ -run TestGolden -update
//
// and check the new files in.
var updateGolden = flag.Bool("update", false, "rewrite index/testdata/*.golden from today's encoders")

// goldenNow is the clock the golden inputs are built at, unix ns.
const goldenNow = int64(1_700_000_000_000_000_000) // 2023-11-14T22:13:20Z

func goldenAt(d time.Duration) int64 { return goldenNow + int64(d) }

// goldenEvents covers every event type and the varint widths that matter:
// an attempt and ids past one byte, a nack to the front at once and one to
// the back with a delay, a purge far past the newest id.
func goldenEvents() []Event {
	return []Event{
		{Type: EvLease, ID: 1, Attempt: 1, Time: goldenAt(30 * time.Second)},
		{Type: EvLease, ID: 300, Attempt: 300, Time: goldenAt(time.Minute)},
		{Type: EvExtend, ID: 1, Time: goldenAt(90 * time.Second)},
		{Type: EvAck, ID: 2},
		{Type: EvNack, ID: 3, Front: true},
		{Type: EvNack, ID: 4, Time: goldenAt(5 * time.Second), After: 299},
		{Type: EvExpire, ID: 5},
		{Type: EvDead, ID: 6},
		{Type: EvRedrive, ID: 6},
		{Type: EvMoving, ID: 7, After: 1 << 40},
		{Type: EvRemove, ID: 7},
		{Type: EvReady, ID: 4, After: 310},
		{Type: EvPurge, ID: 1 << 33},
		{Type: EvSeek, ID: 1 << 34},
		{Type: EvSkip, ID: 1<<34 + 5000},
		{Type: EvNack, ID: 8, After: 12, SetPriority: true, Priority: 0},
		{Type: EvNack, ID: 9, Front: true, Time: goldenAt(time.Second), SetPriority: true, Priority: math.MaxUint32},
		{Type: EvDead, ID: 10, SetPriority: true, Priority: 300},
		{Type: EvDead, ID: 11},
	}
}

// roundOneEvents is what entry-r1.golden holds: the events before seek
// and skip were added.
func roundOneEvents() []Event { return goldenEvents()[:13] }

// versionOneEvents is what entry-v1.golden holds: the events before
// priorities.
func versionOneEvents() []Event { return goldenEvents()[:15] }

// goldenStateIndex is the state-log index the golden snapshot is taken at.
const goldenStateIndex = uint64(1)<<40 + 7

// goldenTable builds the golden snapshot's table through the methods the
// queue uses, message by message; offsets are id*100 (id 12's needs five
// bytes) so that each entry's bytes are its own. With priorities it is
// goldenPriorityTable.
func goldenTable(t *testing.T) *Table {
	t.Helper()
	tb := NewTable()
	for id := uint64(1); id <= 12; id++ {
		offset, readyAt := uint32(id*100), int64(0)
		switch id {
		case 5:
			readyAt = goldenAt(time.Hour)
		case 11:
			continue // an enqueue still in flight
		case 12:
			offset = 0xfffffff0
		}
		if !tb.Insert(id, offset, readyAt, goldenNow) {
			t.Fatalf("Insert(%d) = false", id)
		}
	}
	lease := goldenAt(30 * time.Second)
	must(t, tb.Lease(1, 1, lease))
	must(t, tb.Ack(1))
	must(t, tb.Lease(3, 1, lease))
	must(t, tb.Nack(3, true, 0, 0, goldenNow))
	must(t, tb.Lease(4, 1, lease))
	must(t, tb.Nack(4, false, 10, 0, goldenNow))
	must(t, tb.Lease(6, 1, lease))
	must(t, tb.Expire(6))
	must(t, tb.Lease(6, 2, goldenAt(45*time.Second)))
	must(t, tb.Extend(6, goldenAt(75*time.Second)))
	must(t, tb.Lease(7, 1, lease))
	must(t, tb.Dead(7))
	must(t, tb.MarkMoving(7, 500))
	must(t, tb.Lease(8, 1, lease))
	must(t, tb.Dead(8))
	must(t, tb.Redrive(8))
	must(t, tb.Lease(8, 2, goldenAt(20*time.Second)))
	must(t, tb.Lease(9, 1, lease))
	must(t, tb.Nack(9, false, 0, goldenAt(10*time.Minute), goldenNow))
	must(t, tb.Remove(10))
	return tb
}

// goldenEntries is every entry of the golden table, as decoded: done
// entries keep only their state, and a requeued ready message's time is
// its requeue sequence number (3 was nacked first, then 4).
var goldenEntries = map[uint64]Entry{
	1:  {State: StateDone},
	2:  {Offset: 200, State: StateReady},
	3:  {Time: 1, Offset: 300, Attempts: 1, State: StateReady, Requeue: Front},
	4:  {Time: 2, Offset: 400, Attempts: 1, State: StateReady, Requeue: Back},
	5:  {Time: goldenAt(time.Hour), Offset: 500, State: StateDelayed},
	6:  {Time: goldenAt(75 * time.Second), Offset: 600, Attempts: 2, State: StateLeased},
	7:  {Time: 500, Offset: 700, Attempts: 1, State: StateDead},
	8:  {Time: goldenAt(20 * time.Second), Offset: 800, Attempts: 2, State: StateLeased},
	9:  {Time: goldenAt(10 * time.Minute), Offset: 900, Attempts: 1, State: StateDelayed, Requeue: Back},
	10: {State: StateDone},
	11: {},
	12: {Offset: 0xfffffff0, State: StateReady},
	13: {}, // past the newest id
}

// golden returns the checked-in bytes of testdata/name, first rewriting
// them from encoded under -update.
func golden(t *testing.T, name string, encoded []byte) []byte {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *updateGolden {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, encoded, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestGoldenEntry(t *testing.T) {
	want := goldenEvents()
	b := golden(t, "entry.golden", EncodeEntry(nil, want))

	t.Run("the golden entry holds every event type", func(t *testing.T) {
		for ty := EventType(1); !strings.HasPrefix(ty.String(), "event("); ty++ {
			if !slices.ContainsFunc(want, func(e Event) bool { return e.Type == ty }) {
				t.Fatalf("no %s event in the golden entry: add one and regenerate", ty)
			}
		}
	})
	t.Run("it decodes to the events it was made from", func(t *testing.T) {
		got, err := DecodeEntry(nil, b)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("DecodeEntry =\n %+v\nwant\n %+v", got, want)
		}
	})
	t.Run("EncodeEntry writes the golden bytes", func(t *testing.T) {
		if got := EncodeEntry(nil, want); !bytes.Equal(got, b) {
			t.Fatalf("EncodeEntry =\n %x\ngolden\n %x", got, b)
		}
	})
}

// goldenPriorities are the golden table's priorities once
// goldenPriorityTable set them: inserted with one (2, 5, 12), released
// with one (3, 4), buried with one (7), and 6, 8 and 9 at the default.
var goldenPriorities = map[uint64]uint32{2: 7, 3: 7, 4: 0, 5: 7, 6: DefaultPriority, 7: 1 << 31, 8: DefaultPriority, 9: DefaultPriority, 12: math.MaxUint32}

// goldenPriorityTable is goldenTable with priorities: the same messages,
// in the same states, built the same way but for the priorities each
// insert, nack and bury gives.
func goldenPriorityTable(t *testing.T) *Table {
	t.Helper()
	tb := NewTable()
	for id := uint64(1); id <= 12; id++ {
		offset, readyAt, pri := uint32(id*100), int64(0), DefaultPriority
		switch id {
		case 2:
			pri = 7
		case 5:
			readyAt, pri = goldenAt(time.Hour), 7
		case 11:
			continue
		case 12:
			offset, pri = 0xfffffff0, math.MaxUint32
		}
		if !tb.InsertPriority(id, offset, pri, readyAt, goldenNow) {
			t.Fatalf("InsertPriority(%d) = false", id)
		}
	}
	lease := goldenAt(30 * time.Second)
	must(t, tb.Lease(1, 1, lease))
	must(t, tb.Ack(1))
	must(t, tb.Lease(3, 1, lease))
	must(t, tb.Apply(Event{Type: EvNack, ID: 3, Front: true, SetPriority: true, Priority: 7}, goldenNow))
	must(t, tb.Lease(4, 1, lease))
	must(t, tb.Apply(Event{Type: EvNack, ID: 4, After: 10, SetPriority: true, Priority: 0}, goldenNow))
	must(t, tb.Lease(6, 1, lease))
	must(t, tb.Expire(6))
	must(t, tb.Lease(6, 2, goldenAt(45*time.Second)))
	must(t, tb.Extend(6, goldenAt(75*time.Second)))
	must(t, tb.Lease(7, 1, lease))
	must(t, tb.Apply(Event{Type: EvDead, ID: 7, SetPriority: true, Priority: 1 << 31}, goldenNow))
	must(t, tb.MarkMoving(7, 500))
	must(t, tb.Lease(8, 1, lease))
	must(t, tb.Dead(8))
	must(t, tb.Redrive(8))
	must(t, tb.Lease(8, 2, goldenAt(20*time.Second)))
	must(t, tb.Lease(9, 1, lease))
	must(t, tb.Nack(9, false, 0, goldenAt(10*time.Minute), goldenNow))
	must(t, tb.Remove(10))
	return tb
}

func TestGoldenSnapshot(t *testing.T) {
	b := golden(t, "snapshot.golden", EncodeSnapshot(nil, goldenStateIndex, goldenPriorityTable(t)))
	if b[4] != snapshotVersion {
		t.Fatalf("snapshot.golden is version %d, want %d", b[4], snapshotVersion)
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	tb := snap.Table

	t.Run("it decodes to the table it was taken of", func(t *testing.T) {
		if snap.StateIndex != goldenStateIndex {
			t.Fatalf("StateIndex = %d, want %d", snap.StateIndex, goldenStateIndex)
		}
		for id := uint64(1); id <= 13; id++ {
			if got, want := tb.Get(id), goldenEntries[id]; got != want {
				t.Fatalf("Get(%d) = %+v, want %+v", id, got, want)
			}
		}
		counts := map[State]int{StateNone: 0, StateReady: 4, StateDelayed: 2, StateLeased: 2, StateDead: 1, StateDone: 2}
		for s, want := range counts {
			if got := tb.Count(s); got != want {
				t.Fatalf("Count(%s) = %d, want %d", s, got, want)
			}
		}
		if tb.MaxID() != 12 || tb.FirstID() != 1 || tb.FirstHole() != 11 || tb.Live() != 9 {
			t.Fatalf("MaxID %d, FirstID %d, FirstHole %d, Live %d; want 12, 1, 11, 9", tb.MaxID(), tb.FirstID(), tb.FirstHole(), tb.Live())
		}
		if tb.Tries(8) != 1 || tb.Moving(7) != 500 {
			t.Fatalf("Tries(8) = %d, Moving(7) = %d; want 1 (redriven after one try) and 500", tb.Tries(8), tb.Moving(7))
		}
		if at, ok := tb.NextDeadline(); !ok || at != goldenAt(20*time.Second) {
			t.Fatalf("NextDeadline = %d, %v; want id 8's lease, %d", at, ok, goldenAt(20*time.Second))
		}
		for id, want := range goldenPriorities {
			if got := tb.Priority(id); got != want {
				t.Fatalf("Priority(%d) = %d, want %d", id, got, want)
			}
		}
	})
	t.Run("EncodeSnapshot writes the golden bytes", func(t *testing.T) {
		if got := EncodeSnapshot(nil, goldenStateIndex, goldenPriorityTable(t)); !bytes.Equal(got, b) {
			t.Fatalf("EncodeSnapshot of the golden table differs from the golden file (%d bytes, golden %d)", len(got), len(b))
		}
		if got := EncodeSnapshot(nil, snap.StateIndex, tb); !bytes.Equal(got, b) {
			t.Fatalf("EncodeSnapshot of the decoded table differs from the golden file (%d bytes, golden %d)", len(got), len(b))
		}
	})
	// Last, as it leases from the decoded table.
	t.Run("the decoded table hands out messages in the golden order", func(t *testing.T) {
		var order []uint64
		for {
			id, ok := tb.NextReady()
			if !ok {
				break
			}
			order = append(order, id)
			must(t, tb.Lease(id, tb.Get(id).Attempts+1, far))
		}
		// 4 was released to priority 0; 3 nacked to the front of 7, ahead
		// of 2; 12 is at the lowest priority there is.
		if want := []uint64{4, 3, 2, 12}; !slices.Equal(order, want) {
			t.Fatalf("ready order %v, want %v", order, want)
		}
	})
}

func TestGoldenRoundOneEntryStillDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "entry-r1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntry(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := roundOneEvents(); !slices.Equal(got, want) {
		t.Fatalf("DecodeEntry(entry-r1.golden) =\n %+v\nwant\n %+v", got, want)
	}
}

func TestGoldenVersionOneEntryStillDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "entry-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntry(nil, b)
	if err != nil {
		t.Fatal(err)
	}
	if want := versionOneEvents(); !slices.Equal(got, want) {
		t.Fatalf("DecodeEntry(entry-v1.golden) =\n %+v\nwant\n %+v", got, want)
	}
	// Events that set no priority are still written as version 1.
	if again := EncodeEntry(nil, got); !bytes.Equal(again, b) {
		t.Fatal("EncodeEntry of version 1's events no longer writes version 1")
	}
}

// Version 2 kept no priorities: every message decodes at the default,
// and a table that has only the default still writes version 2.
func TestGoldenSnapshotVersionTwoStillDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "snapshot-v2.golden"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 13; id++ {
		if got, want := snap.Table.Get(id), goldenEntries[id]; got != want {
			t.Fatalf("Get(%d) = %+v, want %+v", id, got, want)
		}
		if got := snap.Table.Priority(id); got != DefaultPriority {
			t.Fatalf("Priority(%d) = %d, want the default", id, got)
		}
	}
	if got := EncodeSnapshot(nil, snap.StateIndex, snap.Table); !bytes.Equal(got, b) {
		t.Fatal("re-encoding the version-2 snapshot differs from it")
	}
	if got := EncodeSnapshot(nil, goldenStateIndex, goldenTable(t)); !bytes.Equal(got, b) {
		t.Fatal("the golden table without priorities no longer encodes as version 2")
	}
	if got := drain(t, snap.Table); !slices.Equal(got, []uint64{3, 2, 4, 12}) {
		t.Fatalf("ready order %v, want [3 2 4 12]", got)
	}
}

func TestGoldenSnapshotVersionOneStillDecodes(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "snapshot-v1.golden"))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	for id := uint64(1); id <= 13; id++ {
		if got, want := snap.Table.Get(id), goldenEntries[id]; got != want {
			t.Fatalf("Get(%d) = %+v, want %+v", id, got, want)
		}
	}
	// Version 1 did not keep the highest attempt: it is the highest an
	// entry holds, and encoding the table again writes today's version.
	if got := snap.Table.MaxAttempt(); got != 2 {
		t.Fatalf("MaxAttempt = %d, want 2", got)
	}
	v2, err := os.ReadFile(filepath.Join("testdata", "snapshot-v2.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if got := EncodeSnapshot(nil, snap.StateIndex, snap.Table); !bytes.Equal(got, v2) {
		t.Fatalf("re-encoding the version-1 snapshot differs from snapshot-v2.golden")
	}
}

// goldenSubscription builds a subscription's table: ids 1-3 read and
// leased (3 twice), a seek back to 2, ids 2-5 read again (2 leased, so at
// attempt 3), then a skip of 2-3 by retention.
func goldenSubscription(t *testing.T) *Table {
	t.Helper()
	tb := NewTable()
	lease := goldenAt(30 * time.Second)
	for id := uint64(1); id <= 3; id++ {
		tb.Insert(id, uint32(id*100), 0, goldenNow)
		must(t, tb.Lease(id, 1, lease))
	}
	must(t, tb.Expire(3))
	must(t, tb.Lease(3, 2, lease))
	must(t, tb.Apply(Event{Type: EvSeek, ID: 2}, goldenNow))
	for id := uint64(2); id <= 5; id++ {
		tb.Insert(id, uint32(id*100), 0, goldenNow)
	}
	must(t, tb.Lease(2, 3, lease))
	must(t, tb.Apply(Event{Type: EvSkip, ID: 3}, goldenNow))
	return tb
}

func TestGoldenSubscriptionSnapshot(t *testing.T) {
	b := golden(t, "snapshot-sub.golden", EncodeSnapshot(nil, goldenStateIndex, goldenSubscription(t)))
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	tb := snap.Table
	if got := EncodeSnapshot(nil, snap.StateIndex, tb); !bytes.Equal(got, b) {
		t.Fatal("EncodeSnapshot of the decoded table differs from the golden file")
	}
	// 2 (leased) and 3 (read, ready) were skipped; 4 and 5 stay ready.
	if tb.Skipped() != 2 || tb.MaxAttempt() != 3 || tb.ReadUpTo() != 5 || tb.Count(StateReady) != 2 || tb.Live() != 2 {
		t.Fatalf("Skipped %d, MaxAttempt %d, ReadUpTo %d, ready %d, live %d; want 2, 3, 5, 2, 2",
			tb.Skipped(), tb.MaxAttempt(), tb.ReadUpTo(), tb.Count(StateReady), tb.Live())
	}
	// Attempts go on from the highest before the seek (2, for message 3);
	// the tries that count against max attempts start again.
	if e := tb.Get(4); e.Attempts != 2 || tb.Tries(4) != 0 {
		t.Fatalf("message 4: attempts %d, tries %d; want 2 and 0", e.Attempts, tb.Tries(4))
	}
	for id, want := range map[uint64]State{1: StateDone, 2: StateDone, 3: StateDone, 4: StateReady, 6: StateNone} {
		if got := tb.Get(id).State; got != want {
			t.Fatalf("Get(%d).State = %s, want %s", id, got, want)
		}
	}
}
