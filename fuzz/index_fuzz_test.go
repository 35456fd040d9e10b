package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/spoolq/spool/index"
)

// Layout facts of package index (index/doc.go), needed to recompute
// checksums, cut seeds and build tables of more than one chunk.
const (
	entryHeaderSize = 5    // state-log entry: crc32c, version
	snapHeaderSize  = 48   // snapshot: magic, version, reserved, five u64 fields
	chunkIDs        = 4096 // ids per table chunk
)

// fixEntry recomputes the checksum in the first 4 bytes of a state-log
// entry: the CRC32C of every byte after it.
func fixEntry(b []byte) {
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	}
}

// fixSnapshot recomputes the checksum in the last 4 bytes of a snapshot:
// the CRC32C of every byte before it.
func fixSnapshot(b []byte) {
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b[len(b)-4:], crc32.Checksum(b[:len(b)-4], castagnoli))
	}
}

// ---- state-log entries ----

// entrySeeds returns entries made by index.EncodeEntry covering every event
// type and the edges of every field, followed by damaged and hand-made
// invalid copies (with valid checksums) and one valid entry whose varints
// are not minimal.
func entrySeeds() [][]byte {
	lists := [][]index.Event{
		{ // version 2: priorities set by a nack (beanstalkd's release) and a dead event (bury)
			{Type: index.EvNack, ID: 2, Front: true, After: 9, SetPriority: true, Priority: 7},
			{Type: index.EvDead, ID: 3, SetPriority: true, Priority: math.MaxUint32},
			{Type: index.EvDead, ID: 4},
			{Type: index.EvNack, ID: 5, Time: 100},
		},
		nil,
		{{Type: index.EvAck, ID: 1}},
		{{Type: index.EvLease, ID: 1, Attempt: 1, Time: 0}},
		{{Type: index.EvLease, ID: math.MaxUint64, Attempt: math.MaxUint16, Time: math.MaxInt64}},
		{{Type: index.EvLease, ID: 300, Attempt: 2, Time: math.MinInt64}},
		{{Type: index.EvExtend, ID: 5, Time: -1}, {Type: index.EvExtend, ID: 5, Time: 1_700_000_000_000_000_000}},
		{{Type: index.EvNack, ID: 7, Front: true}},
		{{Type: index.EvNack, ID: 8, Time: 1_700_000_000_000_000_000, After: math.MaxUint64}},
		{{Type: index.EvNack, ID: 1 << 35, Front: true, Time: math.MinInt64, After: 0}},
		{{Type: index.EvReady, ID: 3, After: 0}, {Type: index.EvReady, ID: 4, After: math.MaxUint64}},
		{{Type: index.EvMoving, ID: 9, After: 1}, {Type: index.EvMoving, ID: 10, After: math.MaxInt64}},
		{
			{Type: index.EvLease, ID: 1, Attempt: 1, Time: 1000},
			{Type: index.EvAck, ID: 1},
			{Type: index.EvNack, ID: 2, After: 9},
			{Type: index.EvExtend, ID: 3, Time: 77},
			{Type: index.EvDead, ID: 4},
			{Type: index.EvRedrive, ID: 4},
			{Type: index.EvRemove, ID: 5},
			{Type: index.EvPurge, ID: 127},
			{Type: index.EvExpire, ID: 128},
			{Type: index.EvReady, ID: 129, After: 200},
			{Type: index.EvMoving, ID: 130, After: 7},
			{Type: index.EvPurge, ID: math.MaxUint64},
		},
		{{Type: index.EvSeek, ID: 1}, {Type: index.EvSkip, ID: math.MaxUint64}, {Type: index.EvSeek, ID: 1 << 40}},
	}
	var seeds [][]byte
	for _, evs := range lists {
		seeds = append(seeds, index.EncodeEntry(nil, evs))
	}
	mixed := seeds[len(seeds)-1]
	withCRC := func(b []byte) []byte { b = bytes.Clone(b); fixEntry(b); return b }
	seeds = append(seeds,
		nil,
		mixed[:4],
		mixed[:entryHeaderSize+3],                              // torn lease event
		mixed[:len(mixed)-1],                                   // torn last event
		flip(mixed, 6*8),                                       // event id, checksum now wrong
		withCRC([]byte{0, 0, 0, 0, 3}),                         // version 3
		withCRC([]byte{0, 0, 0, 0, 2}),                         // version 2, no event
		withCRC([]byte{0, 0, 0, 0, 1, 0, 1}),                   // event type 0
		withCRC([]byte{0, 0, 0, 0, 1, 14, 1}),                  // event type 14
		withCRC([]byte{0, 0, 0, 0, 1, 11, 1, 0}),               // moving from dead-letter id 0
		withCRC([]byte{0, 0, 0, 0, 1, 255, 1}),                 // event type 255
		withCRC([]byte{0, 0, 0, 0, 1, 2, 0}),                   // id 0
		withCRC([]byte{0, 0, 0, 0, 1, 1, 1, 0, 0}),             // lease attempt 0
		withCRC([]byte{0, 0, 0, 0, 1, 1, 1, 0x80, 0x80, 4, 0}), // lease attempt 65536
		withCRC([]byte{0, 0, 0, 0, 1, 3, 1, 2, 0, 0}),          // nack flags 2
		withCRC([]byte{0, 0, 0, 0, 1, 2, 0x81, 0x80, 0}),       // ack of id 1, id not minimal
	)
	return seeds
}

// FuzzDecodeEntry feeds arbitrary bytes to index.DecodeEntry, as they are
// and with the checksum recomputed (so mutations reach the event parser).
//
// Properties: DecodeEntry never panics and keeps what dst held; on failure
// the error wraps index.ErrCorrupt; on success every event is valid (known
// type, id ≥ 1, lease attempt ≥ 1) and re-encoding the events with
// index.EncodeEntry gives back the input byte for byte when every varint in
// it is minimal. The decoder accepts non-minimal varints (so the encoding
// is not canonical), and for those inputs the re-encoding must be shorter
// and decode to the same events (no longer, when an event type is one this
// file's minimality walk does not know yet).
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range entrySeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxInput {
			return
		}
		checkEntry(t, data)
		if fixed := bytes.Clone(data); len(fixed) >= 4 {
			if fixEntry(fixed); !bytes.Equal(fixed, data) {
				checkEntry(t, fixed)
			}
		}
	})
}

func checkEntry(t *testing.T, data []byte) {
	t.Helper()
	orig := bytes.Clone(data)
	prefix := []index.Event{{Type: index.EvPurge, ID: 42}}
	dst := slices.Clip(slices.Clone(prefix))
	evs, err := index.DecodeEntry(dst, data)
	if !bytes.Equal(data, orig) {
		t.Fatalf("DecodeEntry modified its input")
	}
	if len(evs) < len(prefix) || !slices.Equal(evs[:len(prefix)], prefix) {
		t.Fatalf("DecodeEntry lost what dst held: %+v", evs)
	}
	if err != nil {
		if !errors.Is(err, index.ErrCorrupt) {
			t.Fatalf("DecodeEntry error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	evs = evs[len(prefix):]
	for i, e := range evs {
		if strings.HasPrefix(e.Type.String(), "event(") || e.ID == 0 || (e.Type == index.EvLease && e.Attempt == 0) {
			t.Fatalf("event %d decoded as %+v", i, e)
		}
	}
	enc := index.EncodeEntry([]byte("dst"), evs)
	if string(enc[:3]) != "dst" {
		t.Fatalf("EncodeEntry overwrote dst")
	}
	enc = enc[3:]
	minimal, known := minimalEntry(data[4], data[entryHeaderSize:], evs)
	switch {
	case minimal && data[4] == enc[4]:
		if !bytes.Equal(enc, data) {
			t.Fatalf("re-encoded entry differs from a minimally encoded input:\n got %x\nwant %x", enc, data)
		}
		return
	case minimal:
		// A version-2 entry whose events set no priority: EncodeEntry
		// writes version 1, without the dead events' flag bytes.
		if enc[4] != 1 || data[4] != 2 {
			t.Fatalf("entry of version %d re-encodes as version %d", data[4], enc[4])
		}
	case known && len(enc) >= len(data):
		t.Fatalf("entry with non-minimal varints (%d bytes) re-encodes to %d bytes", len(data), len(enc))
	case len(enc) > len(data):
		t.Fatalf("entry of %d bytes re-encodes to %d bytes", len(data), len(enc))
	}
	back, err := index.DecodeEntry(nil, enc)
	if err != nil {
		t.Fatalf("DecodeEntry(EncodeEntry(events)): %v", err)
	}
	if !slices.Equal(back, evs) {
		t.Fatalf("decode(encode(events)) differs from events:\n got %+v\nwant %+v", back, evs)
	}
	if again := index.EncodeEntry(nil, back); !bytes.Equal(again, enc) {
		t.Fatalf("entry encoding is not a fixed point")
	}
}

// minimalEntry reports whether every varint in b, the events of an entry
// of the given version that decoded as evs, is minimally encoded, walking
// b by the layout in index/codec.go. known is false when an event type is
// one the walk does not know the fields of (a type added to index since):
// it cannot tell then.
func minimalEntry(version byte, b []byte, evs []index.Event) (minimal, known bool) {
	uv := func() bool {
		v, n := binary.Uvarint(b)
		b = b[n:]
		return n == len(binary.AppendUvarint(nil, v))
	}
	sv := func() bool {
		v, n := binary.Varint(b)
		b = b[n:]
		return n == len(binary.AppendVarint(nil, v))
	}
	minimal = true
	for _, e := range evs {
		b = b[1:] // type
		ok := uv()
		switch e.Type {
		case index.EvLease:
			ok = uv() && sv() && ok
		case index.EvExtend:
			ok = sv() && ok
		case index.EvNack:
			b = b[1:] // flags
			ok = sv() && uv() && ok
			if e.SetPriority {
				ok = uv() && ok
			}
		case index.EvDead:
			if version >= 2 {
				b = b[1:] // flags
				if e.SetPriority {
					ok = uv() && ok
				}
			}
		case index.EvReady, index.EvMoving:
			ok = uv() && ok
		case index.EvAck, index.EvRedrive, index.EvRemove, index.EvPurge, index.EvExpire, index.EvSeek, index.EvSkip:
		default:
			return false, false
		}
		minimal = minimal && ok
	}
	return minimal, true
}

// ---- snapshots ----

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// seedTables builds small tables through the Table API, in every state
// and shape a snapshot can see: empty; one chunk in a mix of every state
// with requeued messages, stale heap items, holes (sealed and not);
// a released prefix; every chunk released; a first chunk past id 1 with
// extreme field values; holes sealed past the table's end.
func seedTables(tb testing.TB) []*index.Table {
	tb.Helper()
	const now = int64(1_000_000)
	var tables []*index.Table

	tables = append(tables, index.NewTable())

	t := index.NewTable()
	for id := uint64(1); id <= 12; id++ {
		t.Insert(id, uint32(id*100), 0, now)
	}
	t.Insert(13, 1300, now+500, now) // delayed
	t.Insert(15, 1500, 0, now)       // 14: a hole, sealed below
	t.Insert(16, 1600, 0, now)
	t.Insert(18, 1800, now+1, now) // 17: a hole left open
	t.SealHoles(14)
	must(tb, t.Lease(2, 1, now+1000))
	must(tb, t.Lease(3, 1, now+10))
	must(tb, t.Nack(3, true, 0, 0, now)) // front
	must(tb, t.Lease(4, 1, now+10))
	must(tb, t.Nack(4, false, 0, 0, now)) // back, after the newest id
	must(tb, t.Lease(5, 2, now+10))
	must(tb, t.Nack(5, false, 2, 0, now)) // back, after id 2
	must(tb, t.Lease(6, 1, now+10))
	must(tb, t.Dead(6))
	must(tb, t.Dead(7)) // from ready
	must(tb, t.Lease(8, 1, now+10))
	must(tb, t.Ack(8))
	must(tb, t.Lease(9, 3, now+10))
	must(tb, t.Nack(9, true, 0, now+50, now)) // delayed, then to the front
	must(tb, t.Lease(10, 1, now+10))
	must(tb, t.Extend(10, now+20))
	must(tb, t.Lease(11, 1, now+10))
	must(tb, t.Expire(11))
	must(tb, t.Lease(12, 1, now+10))
	must(tb, t.Dead(12))
	must(tb, t.Redrive(12))
	must(tb, t.Remove(15))
	must(tb, t.Lease(3, 2, now+10)) // leaves a stale requeue item
	must(tb, t.Nack(3, false, 0, 0, now))
	tables = append(tables, t)

	t = index.NewTable()
	for id := uint64(1); id <= chunkIDs+20; id++ {
		t.Insert(id, uint32(id), 0, now)
	}
	for id := uint64(1); id <= chunkIDs; id++ { // releases the first chunk
		must(tb, t.Lease(id, 1, now))
		must(tb, t.Ack(id))
	}
	must(tb, t.Lease(chunkIDs+1, 1, now+5))
	must(tb, t.Lease(chunkIDs+2, 1, now+5))
	must(tb, t.Nack(chunkIDs+2, false, 0, now+7, now))
	must(tb, t.Lease(chunkIDs+3, 1, now+5))
	must(tb, t.Nack(chunkIDs+3, true, 0, 0, now))
	must(tb, t.Dead(chunkIDs+4))
	tables = append(tables, t)

	t = index.NewTable()
	for id := uint64(1); id <= chunkIDs; id++ {
		t.Insert(id, 0, 0, now)
	}
	t.Purge(chunkIDs) // every chunk released
	tables = append(tables, t)

	t = index.NewTable()
	first := uint64(3*chunkIDs + 7)
	t.Insert(first, math.MaxUint32, 0, 0)
	must(tb, t.Lease(first, math.MaxUint16, math.MinInt64))
	t.Insert(first+1, 0, math.MaxInt64, 0)
	t.Insert(first+2, math.MaxUint32, 0, 0)
	must(tb, t.Lease(first+2, 1, math.MaxInt64))
	must(tb, t.Nack(first+2, false, math.MaxUint64, 0, 0))
	t.Insert(first+3, 1, 0, 0)
	must(tb, t.Lease(first+3, 7, -1))
	must(tb, t.Nack(first+3, true, 0, math.MaxInt64, 0))
	tables = append(tables, t)

	t = index.NewTable()
	t.SealHoles(2*chunkIDs + 5)
	t.Insert(2*chunkIDs+9, 1, 0, 0)
	tables = append(tables, t)

	// A subscription's table: read, seeked back, read again past a chunk,
	// skipped by retention (attempt floor, max attempt and skipped set).
	t = index.NewTable()
	for id := uint64(1); id <= 3; id++ {
		t.Insert(id, uint32(id), 0, now)
		must(tb, t.Apply(index.Event{Type: index.EvLease, ID: id, Attempt: uint16(id), Time: now + 5}, now))
	}
	must(tb, t.Apply(index.Event{Type: index.EvSeek, ID: 2}, now))
	for id := uint64(2); id <= chunkIDs+4; id++ {
		t.Insert(id, uint32(id), 0, now)
	}
	must(tb, t.Lease(chunkIDs, 4, now+5))
	must(tb, t.Apply(index.Event{Type: index.EvSkip, ID: 10}, now))
	tables = append(tables, t)
	return tables
}

// snapshotSeeds returns snapshots of the seed tables made by
// index.EncodeSnapshot, followed by damaged copies of the mixed one.
func snapshotSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	var seeds [][]byte
	for i, t := range seedTables(tb) {
		seeds = append(seeds, index.EncodeSnapshot(nil, uint64(i)*1000+7, t))
	}
	mixed := seeds[1]
	seeds = append(seeds,
		mixed[:snapHeaderSize+3],
		mixed[:len(mixed)-1],
		flip(mixed, 20*8),                 // base
		flip(mixed, (snapHeaderSize+2)*8), // first entry
		flip(mixed, (len(mixed)-6)*8),     // requeued items
	)
	return seeds
}

// FuzzDecodeSnapshot feeds arbitrary bytes to index.DecodeSnapshot, as
// they are and with the trailing checksum recomputed (so mutations reach
// the entry and requeued-item checks).
//
// Properties: DecodeSnapshot never panics; on failure the error wraps
// index.ErrCorrupt. On success the table is self-consistent:
//   - its ids span no more than the input could describe (one byte an
//     entry at least), so walking them is bounded;
//   - Count of each live state is the number of ids in [FirstID, MaxID]
//     Get reports in it, which is what Scan visits, in id order;
//   - re-encoding it gives a snapshot, no longer than the input (but for
//     the fields version 2 added, if the input is version 1), that
//     decodes to a table that looks the same (counts, FirstID, MaxID,
//     FirstHole, NextDeadline, Get of every id, ready order, delays and
//     leases in deadline order) and re-encodes to the same bytes;
//   - leasing what NextReady offers until it offers nothing terminates
//     after exactly Count(StateReady) leases;
//   - nacking those leases again leaves a table whose snapshot decodes and
//     offers exactly its ready messages.
func FuzzDecodeSnapshot(f *testing.F) {
	for _, s := range snapshotSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxInput {
			return
		}
		checkSnapshot(t, data)
		if fixed := bytes.Clone(data); len(fixed) >= 4 {
			if fixSnapshot(fixed); !bytes.Equal(fixed, data) {
				checkSnapshot(t, fixed)
			}
		}
	})
}

func checkSnapshot(t *testing.T, data []byte) {
	t.Helper()
	orig := bytes.Clone(data)
	snap, err := index.DecodeSnapshot(data)
	if !bytes.Equal(data, orig) {
		t.Fatalf("DecodeSnapshot modified its input")
	}
	if err != nil {
		if !errors.Is(err, index.ErrCorrupt) {
			t.Fatalf("DecodeSnapshot error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	tb := snap.Table
	if tb == nil {
		t.Fatalf("DecodeSnapshot succeeded with no table")
	}
	// A table holds an entry for every id from FirstID to MaxID, and each
	// entry takes a byte at least; a table whose ids span more has MaxID
	// past its entries, and Scan, FirstHole and Purge walk every id up to
	// MaxID.
	if first, last := tb.FirstID(), tb.MaxID(); last >= first && last-first >= uint64(len(data)) {
		t.Fatalf("decoded table spans ids %d..%d from a snapshot of %d bytes (%d live)", first, last, len(data), tb.Live())
	}
	checkTable(t, tb)

	enc := index.EncodeSnapshot(nil, snap.StateIndex, tb)
	// Version 1 lacks the subscription fields today's version writes:
	// three uvarints, the highest attempt in at most 3 bytes.
	grown := 0
	if data[4] == 1 {
		grown = 5
	}
	if len(enc) > len(data)+grown {
		t.Fatalf("snapshot of %d bytes re-encodes to %d bytes", len(data), len(enc))
	}
	snap2, err := index.DecodeSnapshot(enc)
	if err != nil {
		t.Fatalf("DecodeSnapshot(EncodeSnapshot(table)): %v", err)
	}
	if snap2.StateIndex != snap.StateIndex {
		t.Fatalf("state index %d comes back as %d", snap.StateIndex, snap2.StateIndex)
	}
	tb2 := snap2.Table
	checkTable(t, tb2)
	if again := index.EncodeSnapshot(nil, snap2.StateIndex, tb2); !bytes.Equal(again, enc) {
		t.Fatalf("snapshot encoding is not a fixed point")
	}
	sameTables(t, tb, tb2) // leases every ready message of both

	// Nack every leased message, alternating front and back.
	requeueAll(t, tb, ids(tb, index.StateLeased))
	// Lease and at once nack every ready message of a fresh copy, as a
	// receive and a nack do: the heap items of the first requeues go stale
	// but stay behind.
	snap, err = index.DecodeSnapshot(data)
	if err != nil {
		t.Fatalf("DecodeSnapshot of the same bytes again: %v", err)
	}
	requeueAll(t, snap.Table, ids(snap.Table, index.StateReady))
}

// ids returns the ids of tb's messages in state s.
func ids(tb *index.Table, s index.State) []uint64 {
	var ids []uint64
	tb.Scan(0, s, func(id uint64, _ index.Entry) bool {
		ids = append(ids, id)
		return true
	})
	return ids
}

// requeueAll leases each of ids if it is ready and nacks it straight
// back, alternating front and back. The table must then snapshot to bytes
// that decode, and it and the decoded table must offer exactly their
// ready messages.
func requeueAll(t *testing.T, tb *index.Table, ids []uint64) {
	t.Helper()
	for i, id := range ids {
		if tb.Get(id).State == index.StateReady {
			must(t, tb.Lease(id, 1, 1))
		}
		must(t, tb.Nack(id, i%2 == 0, 0, 0, 0))
	}
	ready := tb.Count(index.StateReady)
	snap, err := index.DecodeSnapshot(index.EncodeSnapshot(nil, 1, tb))
	if err != nil {
		t.Fatalf("snapshot after %d nacks: %v", len(ids), err)
	}
	if n := len(leaseAll(t, tb)); n != ready {
		t.Fatalf("after %d nacks NextReady offered %d of %d ready messages", len(ids), n, ready)
	}
	if n := len(leaseAll(t, snap.Table)); n != ready {
		t.Fatalf("after %d nacks the table's snapshot offered %d of %d ready messages", len(ids), n, ready)
	}
}

// checkTable checks a table's counts against Get and Scan over its ids.
// The caller has bounded MaxID-FirstID.
func checkTable(t *testing.T, tb *index.Table) {
	t.Helper()
	first, last := tb.FirstID(), tb.MaxID()
	if first > 1 {
		if e := tb.Get(first - 1); e.State != index.StateDone {
			t.Fatalf("Get(%d), below FirstID %d, = %+v", first-1, first, e)
		}
	}
	var byGet [6]int
	for id := first; id <= last && id != 0; id++ {
		e := tb.Get(id)
		if int(e.State) >= len(byGet) || e.Requeue > index.Back {
			t.Fatalf("Get(%d) = %+v", id, e)
		}
		if e.State == index.StateReady && e.Requeue == index.ByID && e.Time != 0 {
			t.Fatalf("Get(%d) = %+v: ready by id with a time", id, e)
		}
		byGet[e.State]++
	}
	live := 0
	for s := index.StateReady; s <= index.StateDead; s++ {
		live += tb.Count(s)
		if tb.Count(s) != byGet[s] {
			t.Fatalf("Count(%v) = %d, Get finds %d in %d..%d", s, tb.Count(s), byGet[s], first, last)
		}
		n := 0
		tb.Scan(0, s, func(id uint64, e index.Entry) bool {
			if e != tb.Get(id) || e.State != s {
				t.Fatalf("Scan(%v) yields %d as %+v, Get says %+v", s, id, e, tb.Get(id))
			}
			n++
			return true
		})
		if n != byGet[s] {
			t.Fatalf("Scan(%v) yields %d ids, Get finds %d", s, n, byGet[s])
		}
	}
	if tb.Live() != live {
		t.Fatalf("Live() = %d, counts add up to %d", tb.Live(), live)
	}
	n, prev := 0, uint64(0)
	tb.Scan(0, index.StateNone, func(id uint64, e index.Entry) bool {
		if id <= prev && n > 0 {
			t.Fatalf("Scan yields %d after %d", id, prev)
		}
		prev = id
		n++
		return true
	})
	if n != live {
		t.Fatalf("Scan of every live state yields %d ids, counts add up to %d", n, live)
	}
}

// sameTables fails unless a and b look alike: counts, id range, holes,
// deadlines, every entry, ready order, and delays and leases in deadline
// order. It leases every ready message of both (checking that NextReady
// offers exactly Count(StateReady) of them), so it changes them alike.
func sameTables(t *testing.T, a, b *index.Table) {
	t.Helper()
	if a.FirstID() != b.FirstID() || a.MaxID() != b.MaxID() || a.FirstHole() != b.FirstHole() {
		t.Fatalf("FirstID %d/%d MaxID %d/%d FirstHole %d/%d",
			a.FirstID(), b.FirstID(), a.MaxID(), b.MaxID(), a.FirstHole(), b.FirstHole())
	}
	for s := index.StateNone; s <= index.StateDone; s++ {
		if a.Count(s) != b.Count(s) {
			t.Fatalf("Count(%v) = %d, re-decoded %d", s, a.Count(s), b.Count(s))
		}
	}
	last := a.MaxID()
	if last < math.MaxUint64-chunkIDs {
		last += chunkIDs // done entries past MaxID, up to the chunk's end
	}
	for id := a.FirstID() - 1; id <= last; id++ {
		if ea, eb := a.Get(id), b.Get(id); ea != eb {
			t.Fatalf("Get(%d) = %+v, re-decoded %+v", id, ea, eb)
		}
		if id == math.MaxUint64 {
			break
		}
	}
	da, oka := a.NextDeadline()
	db, okb := b.NextDeadline()
	if da != db || oka != okb {
		t.Fatalf("NextDeadline = %d, %v; re-decoded %d, %v", da, oka, db, okb)
	}
	ra, rb := a.Count(index.StateReady), b.Count(index.StateReady)
	oa, ob := leaseAll(t, a), leaseAll(t, b)
	if len(oa) != ra || len(ob) != rb {
		t.Fatalf("NextReady offered %d of %d ready messages, re-decoded %d of %d", len(oa), ra, len(ob), rb)
	}
	if !slices.Equal(oa, ob) {
		t.Fatalf("ready order differs:\n%v\n%v", oa[:min(len(oa), 20)], ob[:min(len(ob), 20)])
	}
	due := func(tb *index.Table) (ids []uint64) {
		for n := tb.Count(index.StateDelayed); len(ids) <= n; {
			id, ok := tb.DueDelay(math.MaxInt64)
			if !ok {
				break
			}
			if err := tb.Ready(id, tb.MaxID()); err != nil {
				t.Fatalf("Ready(%d) of a due delay: %v", id, err)
			}
			ids = append(ids, id)
		}
		return ids
	}
	delayed := a.Count(index.StateDelayed)
	if xa, xb := due(a), due(b); len(xa) != delayed || !slices.Equal(xa, xb) {
		t.Fatalf("%d delayed: %d and %d came due, in orders\n%v\n%v", delayed, len(xa), len(xb), xa[:min(len(xa), 20)], xb[:min(len(xb), 20)])
	}
	expire := func(tb *index.Table) (ids []uint64) {
		for n := tb.Count(index.StateLeased); len(ids) <= n; {
			id, ok := tb.DueLease(math.MaxInt64)
			if !ok {
				break
			}
			must(t, tb.Expire(id))
			ids = append(ids, id)
		}
		return ids
	}
	leased := a.Count(index.StateLeased)
	if xa, xb := expire(a), expire(b); len(xa) != leased || !slices.Equal(xa, xb) {
		t.Fatalf("%d leased: %d and %d expired, in orders\n%v\n%v", leased, len(xa), len(xb), xa[:min(len(xa), 20)], xb[:min(len(xb), 20)])
	}
	// Every live message is now ready by id or dead; lease the ready ones
	// again so the caller finds them leased.
	ra, rb = a.Count(index.StateReady), b.Count(index.StateReady)
	oa, ob = leaseAll(t, a), leaseAll(t, b)
	if len(oa) != ra || len(ob) != rb || !slices.Equal(oa, ob) {
		t.Fatalf("after the deadlines NextReady offered %d of %d and %d of %d", len(oa), ra, len(ob), rb)
	}
}

// leaseAll leases whatever NextReady offers until it offers nothing, and
// returns the ids in the order offered. It fails when NextReady offers
// more than Count(StateReady) messages, or one Lease refuses.
func leaseAll(t *testing.T, tb *index.Table) []uint64 {
	t.Helper()
	limit := tb.Count(index.StateReady)
	var ids []uint64
	for {
		id, ok := tb.NextReady()
		if !ok {
			return ids
		}
		if len(ids) == limit {
			t.Fatalf("NextReady offers a message (%d) after %d leases of %d ready", id, len(ids), limit)
		}
		if err := tb.Lease(id, 1, math.MaxInt64); err != nil {
			t.Fatalf("NextReady offered %d: %v", id, err)
		}
		ids = append(ids, id)
	}
}
