package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// mixedTable returns a table in a random mix of every state: a released
// prefix of one chunk, then live chunks of ready (by id, nacked to the
// front and to the back), delayed, leased, dead and done messages, holes
// (some sealed) and stale heap items.
func mixedTable(t testing.TB, seed uint64, liveChunks int) *Table {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	tb := newTable(t, 1, chunkSize)
	for id := uint64(1); id <= chunkSize; id++ {
		must(t, tb.Lease(id, 1, far))
		must(t, tb.Ack(id))
	}
	last := uint64(chunkSize*(1+liveChunks)) - 100
	now := int64(1_000_000)
	for id := uint64(chunkSize + 1); id <= last; id++ {
		switch {
		case rng.IntN(50) == 0: // a hole
		case rng.IntN(10) == 0:
			tb.Insert(id, rng.Uint32(), now+1+rng.Int64N(1000), now)
		default:
			tb.Insert(id, rng.Uint32(), 0, now)
		}
	}
	tb.SealHoles(chunkSize + chunkSize/2)
	for range int(last-chunkSize) * 2 {
		id := chunkSize + 1 + rng.Uint64N(last-chunkSize)
		var err error
		switch rng.IntN(12) {
		case 0, 1, 2:
			err = tb.Lease(id, uint16(1+rng.IntN(math.MaxUint16)), now+rng.Int64N(1<<40)-(1<<39))
		case 3:
			err = tb.Ack(id)
		case 4:
			err = tb.Nack(id, true, 0, 0, now)
		case 5:
			err = tb.Nack(id, false, chunkSize+rng.Uint64N(last-chunkSize), 0, now)
		case 6:
			err = tb.Nack(id, rng.IntN(2) == 0, 0, now+1+rng.Int64N(1000), now)
		case 7:
			err = tb.Dead(id)
		case 8:
			err = tb.Redrive(id)
		case 9:
			err = tb.Remove(id)
		case 10:
			err = tb.Extend(id, now+rng.Int64N(5000))
		case 11:
			err = tb.Expire(id)
		}
		var te *TransitionError
		if err != nil && !errors.As(err, &te) {
			t.Fatal(err)
		}
	}
	checkCounts(t, tb)
	for s := StateReady; s <= StateDone; s++ {
		if tb.Count(s) == 0 {
			t.Fatalf("mixed table has no %v message", s)
		}
	}
	if tb.requeued.Len() == 0 || tb.FirstID() == 1 || tb.FirstHole() > tb.MaxID() {
		t.Fatalf("mixed table lacks requeued messages, a released prefix or a hole")
	}
	return tb
}

// compareTables fails unless a and b hold the same messages in the same
// states, ready order and deadlines. It leases, expires and nacks on both,
// so it leaves them changed (alike).
func compareTables(t testing.TB, a, b *Table) {
	t.Helper()
	if a.FirstID() != b.FirstID() || a.MaxID() != b.MaxID() || a.FirstHole() != b.FirstHole() || a.Live() != b.Live() {
		t.Fatalf("FirstID %d/%d MaxID %d/%d FirstHole %d/%d Live %d/%d",
			a.FirstID(), b.FirstID(), a.MaxID(), b.MaxID(), a.FirstHole(), b.FirstHole(), a.Live(), b.Live())
	}
	if a.floor != b.floor || a.seq != b.seq {
		t.Fatalf("floor %d/%d requeue seq %d/%d", a.floor, b.floor, a.seq, b.seq)
	}
	if a.maxAttempt != b.maxAttempt || a.attemptFloor != b.attemptFloor || a.skipped != b.skipped {
		t.Fatalf("max attempt %d/%d attempt floor %d/%d skipped %d/%d", a.maxAttempt, b.maxAttempt, a.attemptFloor, b.attemptFloor, a.skipped, b.skipped)
	}
	for s := StateNone; s < numStates; s++ {
		if a.Count(s) != b.Count(s) {
			t.Fatalf("Count(%v) = %d and %d", s, a.Count(s), b.Count(s))
		}
	}
	end := max(chunkEnd(a), chunkEnd(b)) + chunkSize
	for id := uint64(0); id < end; id++ {
		ea, eb := a.Get(id), b.Get(id)
		if ea.State == StateDone || ea.State == StateNone {
			// Nothing but the state of a message that is gone (or not
			// yet there) matters, and a snapshot keeps only that.
			ea, eb = Entry{State: ea.State}, Entry{State: eb.State}
		}
		if ea != eb {
			t.Fatalf("Get(%d) = %+v and %+v", id, ea, eb)
		}
		if pa, pb := a.Priority(id), b.Priority(id); pa != pb {
			t.Fatalf("Priority(%d) = %d and %d", id, pa, pb)
		}
	}
	checkCounts(t, a)
	checkCounts(t, b)
	da, oka := a.NextDeadline()
	db, okb := b.NextDeadline()
	if da != db || oka != okb {
		t.Fatalf("NextDeadline = %d, %v and %d, %v", da, oka, db, okb)
	}
	same := func(what string, x, y []uint64) {
		t.Helper()
		if !slices.Equal(x, y) {
			t.Fatalf("%s differs: %d ids and %d ids\n%v\n%v", what, len(x), len(y), head(x), head(y))
		}
	}
	same("ready order", drain(t, a), drain(t, b))
	due := func(tb *Table) (ids []uint64) {
		for {
			id, ok := dueDelay(t, tb, math.MaxInt64)
			if !ok {
				return ids
			}
			ids = append(ids, id)
		}
	}
	same("delays in deadline order", due(a), due(b))
	same("ready order once every delay ran out", drain(t, a), drain(t, b))
	expire := func(tb *Table) (ids []uint64) {
		for {
			id, ok := tb.DueLease(math.MaxInt64)
			if !ok {
				return ids
			}
			must(t, tb.Expire(id))
			ids = append(ids, id)
		}
	}
	same("leases in deadline order", expire(a), expire(b))
	// Every live message is ready by id now; nacks must pick up the same
	// requeue sequence on both.
	var leased []uint64
	ids := drain(t, a)
	leased = append(leased, ids[:min(len(ids), 50)]...)
	drain(t, b)
	for i, id := range leased {
		must(t, a.Nack(id, i%3 == 0, a.MaxID()-uint64(i), 0, 0))
		must(t, b.Nack(id, i%3 == 0, b.MaxID()-uint64(i), 0, 0))
	}
	same("ready order after more nacks", drain(t, a), drain(t, b))
}

func head(ids []uint64) []uint64 { return ids[:min(len(ids), 20)] }

func TestSnapshotRoundTripsAMixedTable(t *testing.T) {
	for seed := range uint64(3) {
		orig := mixedTable(t, seed, 3)
		b := EncodeSnapshot([]byte("prefix"), 1<<40+seed, orig)
		if string(b[:6]) != "prefix" {
			t.Fatal("EncodeSnapshot clobbered dst")
		}
		snap, err := DecodeSnapshot(b[6:])
		if err != nil {
			t.Fatalf("seed %d: DecodeSnapshot: %v", seed, err)
		}
		if snap.StateIndex != 1<<40+seed {
			t.Fatalf("StateIndex = %d", snap.StateIndex)
		}
		compareTables(t, orig, snap.Table)
	}
}

func TestSnapshotRoundTripsTablesAtTheEdges(t *testing.T) {
	tests := []struct {
		name  string
		build func(t *testing.T) *Table
	}{
		{"empty table", func(t *testing.T) *Table { return NewTable() }},
		{"table whose every chunk was released", func(t *testing.T) *Table {
			tb := newTable(t, 1, chunkSize)
			tb.Purge(chunkSize)
			return tb
		}},
		{"table with holes only sealed past its end", func(t *testing.T) *Table {
			tb := NewTable()
			tb.SealHoles(3*chunkSize + 5)
			tb.Insert(3*chunkSize+9, 1, 0, 0)
			return tb
		}},
		{"table starting in a later chunk", func(t *testing.T) *Table {
			return newTable(t, 10*chunkSize+100, 10*chunkSize+200)
		}},
		{"every entry a live message with extreme fields", func(t *testing.T) *Table {
			tb := NewTable()
			for id := uint64(1); id <= chunkSize; id++ {
				tb.Insert(id, math.MaxUint32, 0, 0)
				must(t, tb.Lease(id, math.MaxUint16, math.MinInt64+int64(id)))
			}
			return tb
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.build(t)
			snap, err := DecodeSnapshot(EncodeSnapshot(nil, 0, orig))
			if err != nil {
				t.Fatalf("DecodeSnapshot: %v", err)
			}
			compareTables(t, orig, snap.Table)
		})
	}
}

func TestSnapshotOfAnEmptyTableRoundTrips(t *testing.T) {
	b := EncodeSnapshot(nil, 17, NewTable())
	if len(b) != snapshotHeaderSize+1+1+1+3+4 {
		t.Fatalf("empty snapshot of %d bytes", len(b))
	}
	snap, err := DecodeSnapshot(b)
	if err != nil {
		t.Fatal(err)
	}
	tb := snap.Table
	if snap.StateIndex != 17 || tb.MaxID() != 0 || tb.FirstID() != 1 || tb.Live() != 0 || tb.FirstHole() != 1 {
		t.Fatalf("decoded empty table: index %d max %d first %d live %d hole %d",
			snap.StateIndex, tb.MaxID(), tb.FirstID(), tb.Live(), tb.FirstHole())
	}
	if _, ok := tb.NextReady(); ok {
		t.Fatal("NextReady on an empty table")
	}
	if !tb.Insert(1, 0, 0, 0) {
		t.Fatal("Insert into the decoded empty table = false")
	}
	if id, _ := tb.NextReady(); id != 1 {
		t.Fatalf("NextReady = %d", id)
	}
}

func TestSnapshotWithAnySingleBitFlippedIsRejected(t *testing.T) {
	for name, tb := range map[string]*Table{
		"empty": NewTable(),
		"mixed": mixedTable(t, 9, 1),
	} {
		t.Run(name, func(t *testing.T) {
			b := EncodeSnapshot(nil, 5, tb)
			for bit := range len(b) * 8 {
				b[bit/8] ^= 1 << (bit % 8)
				_, err := DecodeSnapshot(b)
				b[bit/8] ^= 1 << (bit % 8)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("flip of bit %d of %d: err %v, want ErrCorrupt", bit, len(b)*8, err)
				}
			}
			if _, err := DecodeSnapshot(b); err != nil {
				t.Fatalf("unflipped snapshot: %v", err)
			}
		})
	}
}

func TestSnapshotTruncatedAtAnyLengthIsRejected(t *testing.T) {
	b := EncodeSnapshot(nil, 5, mixedTable(t, 11, 1))
	for n := range len(b) {
		if _, err := DecodeSnapshot(b[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("snapshot cut to %d of %d bytes: err %v, want ErrCorrupt", n, len(b), err)
		}
	}
}

// snapEntry is one entry for buildSnapshot; state none if left zero.
type snapEntry struct {
	state    State
	offset   uint64
	attempts uint64
	requeue  Requeue
	time     int64
}

// snapSpec is a snapshot written by hand, following the documented layout.
type snapSpec struct {
	magic              string
	version            byte
	reserved           [3]byte
	index, base, maxID uint64
	floor              uint64
	seq                int64
	n                  uint64
	declaredN          uint64               // if not 0, the entry count written instead of n
	entries            map[uint64]snapEntry // by id
	requeued           []requeued
	redriven           [][2]uint64 // id, attempts at the last redrive
	sub                [3]uint64   // version 2: attempt floor, max attempt, skipped
	trailing           []byte      // before the crc
}

func buildSnapshot(s snapSpec) []byte {
	b := append([]byte(s.magic), s.version)
	b = append(b, s.reserved[:]...)
	for _, v := range []uint64{s.index, s.base, s.maxID, s.floor, uint64(s.seq)} {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	if s.declaredN != 0 {
		b = binary.AppendUvarint(b, s.declaredN)
	} else {
		b = binary.AppendUvarint(b, s.n)
	}
	for i := range s.n {
		e := s.entries[s.base+i]
		b = append(b, byte(e.state))
		if e.state == StateNone || e.state == StateDone {
			continue
		}
		b = binary.AppendUvarint(b, e.offset)
		b = binary.AppendUvarint(b, e.attempts)
		b = append(b, byte(e.requeue))
		b = binary.AppendVarint(b, e.time)
	}
	b = binary.AppendUvarint(b, uint64(len(s.requeued)))
	for _, r := range s.requeued {
		b = binary.AppendUvarint(b, r.id)
		b = binary.AppendUvarint(b, r.after)
		b = binary.AppendVarint(b, r.seq)
	}
	b = binary.AppendUvarint(b, uint64(len(s.redriven)))
	for _, r := range s.redriven {
		b = binary.AppendUvarint(b, r[0])
		b = binary.AppendUvarint(b, r[1])
	}
	if s.version >= 2 {
		for _, v := range s.sub {
			b = binary.AppendUvarint(b, v)
		}
	}
	b = append(b, s.trailing...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// smallSpec describes the table smallTable builds: 1 ready by id, 2
// leased, 3 nacked to the front, 4 a hole, 5 delayed, 6 dead, 7 nacked
// to the back after 8, 8 done.
func smallSpec() snapSpec {
	return snapSpec{
		magic: "SPSN", version: 2, index: 42, base: 1, maxID: 8, floor: 0, seq: 2, n: chunkSize, sub: [3]uint64{0, 3, 0},
		entries: map[uint64]snapEntry{
			1: {StateReady, 10, 0, ByID, 0},
			2: {StateLeased, 300, 3, ByID, 1000},
			3: {StateReady, 0, 1, Front, 1},
			5: {StateDelayed, 5, 0, ByID, 777},
			6: {StateDead, 6, 1, ByID, 0},
			7: {StateReady, 7, 2, Back, 2},
			8: {state: StateDone},
		},
		requeued: []requeued{{id: 3, after: 0, seq: 1}, {id: 7, after: 8, seq: 2}},
	}
}

func smallTable(t *testing.T) *Table {
	tb := NewTable()
	tb.Insert(1, 10, 0, 0)
	tb.Insert(2, 300, 0, 0)
	must(t, tb.Lease(2, 3, 1000))
	tb.Insert(3, 0, 0, 0)
	must(t, tb.Lease(3, 1, 5))
	must(t, tb.Nack(3, true, 0, 0, 0))
	tb.Insert(5, 5, 777, 0)
	tb.Insert(6, 6, 0, 0)
	must(t, tb.Lease(6, 1, 5))
	must(t, tb.Dead(6))
	tb.Insert(7, 7, 0, 0)
	tb.Insert(8, 8, 0, 0)
	must(t, tb.Lease(8, 1, 5))
	must(t, tb.Ack(8))
	must(t, tb.Lease(7, 2, 5))
	must(t, tb.Nack(7, false, 0, 0, 0))
	return tb
}

func TestSnapshotLayoutIsAsDocumented(t *testing.T) {
	got := EncodeSnapshot(nil, 42, smallTable(t))
	if want := buildSnapshot(smallSpec()); !bytes.Equal(got, want) {
		t.Fatalf("EncodeSnapshot differs from the documented layout:\n got %x\nwant %x", got, want)
	}
	snap, err := DecodeSnapshot(buildSnapshot(smallSpec()))
	if err != nil {
		t.Fatal(err)
	}
	if got := drain(t, snap.Table); !slices.Equal(got, []uint64{3, 1, 7}) {
		t.Fatalf("order %v", got)
	}
	// Version 1 ends after the redriven items; its highest attempt is the
	// highest an entry holds.
	v1 := smallSpec()
	v1.version = 1
	old, err := DecodeSnapshot(buildSnapshot(v1))
	if err != nil {
		t.Fatalf("version 1: %v", err)
	}
	if old.Table.MaxAttempt() != 3 {
		t.Fatalf("version 1: MaxAttempt %d, want 3", old.Table.MaxAttempt())
	}
	compareTables(t, smallTable(t), old.Table)
}

func TestSnapshotThatDoesNotParseIsRejectedEvenWithAValidCRC(t *testing.T) {
	tests := []struct {
		name string
		edit func(s *snapSpec)
	}{
		{"bad magic", func(s *snapSpec) { s.magic = "SPSX" }},
		{"version 0", func(s *snapSpec) { s.version = 0 }},
		{"version 3", func(s *snapSpec) { s.version = 3 }},
		{"attempt floor above the max attempt", func(s *snapSpec) { s.sub = [3]uint64{4, 3, 0} }},
		{"max attempt past 65535", func(s *snapSpec) { s.sub = [3]uint64{0, 1 << 16, 0} }},
		{"reserved byte set", func(s *snapSpec) { s.reserved[2] = 1 }},
		{"entries not a whole chunk", func(s *snapSpec) { s.declaredN = chunkSize - 1 }},
		{"more entries than bytes", func(s *snapSpec) { s.declaredN = 2 * chunkSize }},
		{"entries past the bytes", func(s *snapSpec) { s.declaredN = 1 << 62 }},
		{"base 0", func(s *snapSpec) { s.base, s.maxID = 0, 7 }},
		{"base not at a chunk start", func(s *snapSpec) {
			s.base, s.maxID, s.requeued = 2, 9, nil
			s.entries = map[uint64]snapEntry{2: {state: StateDone}}
		}},
		{"base overflowing", func(s *snapSpec) {
			s.base, s.maxID, s.requeued = math.MaxUint64-chunkSize+2, math.MaxUint64, nil
			s.entries = nil
		}},
		{"max id below base", func(s *snapSpec) { s.maxID = 0 }},
		{"max id past the entries", func(s *snapSpec) { s.maxID = chunkSize + 1 }},
		{"live entry past max id", func(s *snapSpec) { s.maxID = 6 }},
		{"unknown state", func(s *snapSpec) { s.entries[4] = snapEntry{state: 6} }},
		{"state 255", func(s *snapSpec) { s.entries[4] = snapEntry{state: 255} }},
		{"unknown requeue mode", func(s *snapSpec) { s.entries[1] = snapEntry{StateReady, 0, 0, 3, 0} }},
		{"offset over 32 bits", func(s *snapSpec) { s.entries[1] = snapEntry{StateReady, 1 << 32, 0, ByID, 0} }},
		{"attempts over 16 bits", func(s *snapSpec) { s.entries[2] = snapEntry{StateLeased, 0, 1 << 16, ByID, 1000} }},
		{"ready by id with a time", func(s *snapSpec) { s.entries[1] = snapEntry{StateReady, 10, 0, ByID, 5} }},
		{"requeued entry without its item", func(s *snapSpec) { s.requeued = s.requeued[:1] }},
		{"item for a ready-by-id entry", func(s *snapSpec) { s.requeued = append(s.requeued, requeued{id: 1, seq: 0}) }},
		{"item for an unknown id", func(s *snapSpec) { s.requeued[0].id = 4 }},
		{"item past the entries", func(s *snapSpec) { s.requeued[0].id = 1 << 20 }},
		{"item with another seq", func(s *snapSpec) { s.requeued[0].seq = 2 }},
		{"front item with an after id", func(s *snapSpec) { s.requeued[0].after = 5 }},
		{"back item without an after id", func(s *snapSpec) { s.requeued[1].after = 0 }},
		{"more items than bytes", func(s *snapSpec) { s.requeued = nil; s.trailing = []byte{} }},
		{"trailing byte", func(s *snapSpec) { s.trailing = []byte{0} }},
		{"redriven item for a ready message without attempts", func(s *snapSpec) { s.redriven = [][2]uint64{{1, 0}} }},
		{"redriven item for a hole", func(s *snapSpec) { s.redriven = [][2]uint64{{4, 1}} }},
		{"redriven item for a done message", func(s *snapSpec) { s.redriven = [][2]uint64{{8, 1}} }},
		{"redriven items out of order", func(s *snapSpec) { s.redriven = [][2]uint64{{2, 1}, {1, 1}} }},
		{"more redriven items than bytes", func(s *snapSpec) { s.trailing = []byte{9} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smallSpec()
			tt.edit(&s)
			b := buildSnapshot(s)
			if tt.name == "more items than bytes" {
				// Replace the item count (0, the byte before the crc) with 100.
				b = b[:len(b)-5]
				b = append(b, 100)
				b = binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
			}
			if snap, err := DecodeSnapshot(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v (table %v), want ErrCorrupt", err, snap.Table != nil)
			}
		})
	}
}

// DecodeSnapshot checks each requeued item against its entry and the
// number of items against the number of requeued entries, but not that
// every requeued entry has its own item: an item repeated in place of
// another's passes, and the message without an item is never offered by
// NextReady. Only a CRC-valid forged or buggy snapshot can do this.
func TestSnapshotWithARepeatedRequeuedItemIsRejected(t *testing.T) {
	s := smallSpec()
	s.entries[7] = snapEntry{StateReady, 7, 2, Front, 2}
	s.requeued = []requeued{{id: 3, seq: 1}, {id: 3, seq: 1}}
	snap, err := DecodeSnapshot(buildSnapshot(s))
	if errors.Is(err, ErrCorrupt) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Fatalf("decoded; ready order %v leaves out requeued message 7", drain(t, snap.Table))
}

func TestSnapshotWithARequeueSeqBehindItsItemsIsRejected(t *testing.T) {
	tb := NewTable()
	tb.Insert(1, 0, 0, 0)
	must(t, tb.Lease(1, 1, 10))
	must(t, tb.Nack(1, true, 0, 0, 0))
	b := EncodeSnapshot(nil, 1, tb)
	binary.LittleEndian.PutUint64(b[40:48], 0) // the requeue seq field
	binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], crc32.MakeTable(crc32.Castagnoli)))
	if _, err := DecodeSnapshot(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeSnapshot = %v, want ErrCorrupt", err)
	}
}

// BenchmarkEncodeSnapshot encodes a table of 1M pending messages, a tenth
// of them leased: the work a snapshot does while it holds the queue lock.
func BenchmarkEncodeSnapshot(b *testing.B) {
	const n = 1 << 20
	tb := NewTable()
	for id := uint64(1); id <= n; id++ {
		tb.Insert(id, uint32(id)*64, 0, 0)
	}
	for i := 0; i < n/10; i++ {
		id, _ := tb.NextReady()
		if err := tb.Lease(id, 1, 1767225600_000_000_000); err != nil {
			b.Fatal(err)
		}
	}
	var data []byte
	for b.Loop() {
		data = EncodeSnapshot(nil, 42, tb) // a fresh buffer each time, as each snapshot needs one
	}
	b.ReportMetric(float64(len(data))/n, "B/msg")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/snapshot")
}
