package index

import (
	"container/heap"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"slices"
)

const (
	snapshotMagic = "SPSN"
	// snapshotVersion 2 added the subscription fields at the end (attempt
	// floor, max attempt, skipped); 3 added priorities. Versions 1 and 2
	// are still read, and 2 is still written for a table whose every
	// message has DefaultPriority, so a queue that uses no priorities stays
	// readable by the build before.
	snapshotVersion = 3
	// rqPriority, in a version-3 entry's requeue byte, says its priority
	// follows: it is not the snapshot's common one.
	rqPriority = 4
	// snapshotHeaderSize: magic, version, 3 reserved, then five 8-byte
	// fields (state index, base, max id, floor, requeue seq).
	snapshotHeaderSize = 8 + 5*8
)

// Snapshot is a table frozen at a point of the state log.
type Snapshot struct {
	// StateIndex is the state-log index of the last event the table
	// reflects; replay resumes after it.
	StateIndex uint64
	Table      *Table
}

// EncodeSnapshot appends the encoding of the table at stateIndex to dst.
//
//	"SPSN" | version uint8 | 3 reserved | state index u64 | base u64 |
//	max id u64 | floor u64 | requeue seq i64 |
//	uvarint n | n entries | uvarint r | r requeued |
//	uvarint d | d redriven | uvarint attempt floor | uvarint max attempt |
//	uvarint skipped | crc32c u32 (version 1 ends after the redriven items)
//	entry: state uint8, then for live states: uvarint offset |
//	       uvarint attempts | requeue uint8 | varint time
//	requeued: uvarint id | uvarint after | varint seq
//	redriven: uvarint id | uvarint attempts at the last redrive (ids ascending)
//
// Version 3 adds, after the header, uvarint priority: the most common
// priority of the live messages; an entry at another priority sets bit 2
// (4) of its requeue byte and has uvarint priority after that byte.
//
// The trailing CRC32C covers every byte before it. Entries cover ids base
// .. base+n-1; none and done take one byte each.
func EncodeSnapshot(dst []byte, stateIndex uint64, t *Table) []byte {
	n := uint64(len(t.chunks)) * chunkSize
	dst = slices.Grow(dst, SnapshotSizeBound(t))
	at := len(dst)
	common, version := t.commonPriority()
	dst = append(dst, snapshotMagic...)
	dst = append(dst, version, 0, 0, 0)
	for _, v := range []uint64{stateIndex, t.base, t.maxID, t.floor, uint64(t.seq)} {
		dst = binary.LittleEndian.AppendUint64(dst, v)
	}
	if version >= 3 {
		dst = binary.AppendUvarint(dst, uint64(common))
	}
	dst = binary.AppendUvarint(dst, n)
	for ci, c := range t.chunks {
		for i := range c.entries {
			e := &c.entries[i]
			st := e.state()
			dst = append(dst, byte(st))
			if st == StateNone || st == StateDone {
				continue
			}
			dst = binary.AppendUvarint(dst, uint64(e.offset))
			dst = binary.AppendUvarint(dst, uint64(e.attempts))
			pri := t.priority(t.base+uint64(ci)*chunkSize+uint64(i), e)
			if pri == common {
				dst = append(dst, byte(e.requeue()))
			} else {
				dst = append(dst, byte(e.requeue())|rqPriority)
				dst = binary.AppendUvarint(dst, uint64(pri))
			}
			dst = binary.AppendVarint(dst, e.time)
		}
	}
	var live []requeued
	for _, r := range t.requeued {
		if r.seq != 0 && t.live(r) { // a ready-by-id item is rebuilt from its entry
			live = append(live, r)
		}
	}
	// In ready order, not the heap's: the bytes then do not depend on the
	// heap's history (or on the overflow items a decoded heap also holds).
	slices.SortFunc(live, compareRequeued)
	dst = binary.AppendUvarint(dst, uint64(len(live)))
	for _, r := range live {
		dst = binary.AppendUvarint(dst, r.id)
		dst = binary.AppendUvarint(dst, r.after)
		dst = binary.AppendVarint(dst, r.seq)
	}
	ids := slices.Sorted(maps.Keys(t.redriven))
	dst = binary.AppendUvarint(dst, uint64(len(ids)))
	for _, id := range ids {
		dst = binary.AppendUvarint(dst, id)
		dst = binary.AppendUvarint(dst, uint64(t.redriven[id]))
	}
	dst = binary.AppendUvarint(dst, uint64(t.attemptFloor))
	dst = binary.AppendUvarint(dst, uint64(t.maxAttempt))
	dst = binary.AppendUvarint(dst, t.skipped)
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[at:], castagnoli))
}

// SnapshotSizeBound is an upper bound on the size of t's snapshot. Growing a buffer
// of megabytes by doubling triples the copying and the garbage, so
// EncodeSnapshot sizes its buffer once; a caller that encodes under a lock
// can allocate it beforehand instead, since a large allocation may make
// the allocating goroutine help the GC first. A live entry takes at most
// 1+5+3+1+5+10 bytes; pages of the buffer never written are never touched.
func SnapshotSizeBound(t *Table) int {
	live := t.Count(StateReady) + t.Count(StateDelayed) + t.Count(StateLeased) + t.Count(StateDead)
	return snapshotHeaderSize + 7*binary.MaxVarintLen64 + len(t.chunks)*chunkSize + live*25 +
		len(t.requeued)*3*binary.MaxVarintLen64 + len(t.redriven)*2*binary.MaxVarintLen64 + 4
}

// DecodeSnapshot verifies and decodes a snapshot, rebuilding the table's
// ready order and deadline heaps.
func DecodeSnapshot(b []byte) (Snapshot, error) {
	fail := func(format string, args ...any) (Snapshot, error) {
		return Snapshot{}, fmt.Errorf("%w: snapshot: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	if len(b) < snapshotHeaderSize+4 {
		return fail("%d bytes", len(b))
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return fail("crc %08x, want %08x", got, sum)
	}
	if string(body[:4]) != snapshotMagic {
		return fail("magic %q", body[:4])
	}
	version := body[4]
	if version < 1 || version > snapshotVersion {
		return fail("version %d (this build reads 1 to %d)", version, snapshotVersion)
	}
	if body[5]|body[6]|body[7] != 0 {
		return fail("reserved bytes are not zero")
	}
	field := func(i int) uint64 { return binary.LittleEndian.Uint64(body[8+8*i:]) }
	snap := Snapshot{StateIndex: field(0)}
	t := &Table{base: field(1), maxID: field(2), floor: field(3), seq: int64(field(4))}
	snap.Table = t
	r := reader{b: body[snapshotHeaderSize:]}
	common := DefaultPriority // before version 3, every message's
	if version >= 3 {
		common = r.priority()
	}
	n := r.uvarint()
	switch {
	case r.err != nil:
		return fail("%v", r.err)
	case n%chunkSize != 0 || n > uint64(len(r.b)):
		return fail("%d entries in %d bytes", n, len(r.b))
	case n > 0 && (t.base == 0 || (t.base-1)%chunkSize != 0 || t.base > math.MaxUint64-n):
		return fail("base id %d", t.base)
	case n > 0 && (t.maxID < t.base || t.maxID >= t.base+n):
		return fail("max id %d outside %d entries from %d", t.maxID, n, t.base)
	case n == 0 && t.base != 0 && ((t.base-1)%chunkSize != 0 || t.maxID >= t.base):
		// Every chunk released: every id below base is done, none above it
		// was inserted. A max id past base would make scans walk nothing
		// for ever.
		return fail("no entries, yet base %d and max id %d", t.base, t.maxID)
	case n == 0 && t.base == 0 && t.maxID != 0:
		return fail("no entries and no base, yet max id %d", t.maxID)
	case t.floor == math.MaxUint64:
		return fail("floor %d", t.floor)
	}
	var byIDOverflow []requeued // ready by id, but not in the bitmaps
	for i := uint64(0); i < n && r.err == nil; i++ {
		if i%chunkSize == 0 {
			t.chunks = append(t.chunks, new(chunk))
		}
		id := t.base + i
		e := t.entry(id)
		st := State(r.byte())
		switch st {
		case StateNone:
			continue
		case StateDone:
			e.setState(StateDone)
			t.counts[StateDone]++
			c, _ := t.chunkOf(id)
			c.done++
			continue
		case StateReady, StateDelayed, StateLeased, StateDead:
		default:
			r.fail("entry %d: state %d", id, st)
			continue
		}
		off, att := r.uvarint(), r.uvarint()
		rq, pri := Requeue(r.byte()), common
		if version >= 3 && rq&rqPriority != 0 {
			rq &^= rqPriority
			pri = r.priority()
		}
		tm := r.varint()
		if off > math.MaxUint32 || att > math.MaxUint16 || rq > Back || id > t.maxID {
			r.fail("entry %d out of range", id)
			continue
		}
		*e = slot{time: tm, offset: uint32(off), attempts: uint16(att)}
		e.setState(st)
		e.setRequeue(rq)
		t.ref(id, e, pri)
		t.counts[st]++
		switch {
		case st == StateReady && rq == ByID:
			if tm != 0 {
				r.fail("entry %d: ready by id with time %d", id, tm)
			}
			if e.level == levelOverflow {
				byIDOverflow = append(byIDOverflow, requeued{id: id, after: id, pri: pri})
				break
			}
			c, i := t.chunkOf(id)
			c.ready[i/64] |= 1 << (i % 64)
			c.nready++
			t.addReadyByID(id, c, e.level)
		case st == StateDelayed:
			t.delays = append(t.delays, deadline{at: tm, id: id})
		case st == StateLeased:
			t.leases = append(t.leases, deadline{at: tm, id: id})
		}
	}
	nr := r.uvarint()
	if nr > uint64(len(r.b)) {
		r.fail("%d requeued in %d bytes", nr, len(r.b))
	}
	seen := make(map[uint64]bool, min(nr, 1<<16))
	for i := uint64(0); i < nr && r.err == nil; i++ {
		q := requeued{id: r.uvarint(), after: r.uvarint(), seq: r.varint()}
		e := t.entry(q.id)
		if r.err == nil && (e == nil || e.state() != StateReady || e.requeue() == ByID || e.time != q.seq || (e.requeue() == Front) != (q.after == 0) || seen[q.id]) {
			r.fail("requeued item %d does not match its entry", q.id)
		}
		if r.err == nil {
			q.pri = t.priority(q.id, e)
		}
		seen[q.id] = true
		if q.seq > t.seq {
			r.fail("requeued item %d has seq %d past the table's %d", q.id, q.seq, t.seq)
		}
		t.requeued = append(t.requeued, q)
	}
	nd := r.uvarint()
	if nd > uint64(len(r.b)) {
		r.fail("%d redriven in %d bytes", nd, len(r.b))
	}
	var prev uint64
	for i := uint64(0); i < nd && r.err == nil; i++ {
		id, base := r.uvarint(), r.uvarint()
		e := t.entry(id)
		if r.err == nil && (e == nil || e.state() == StateNone || e.state() == StateDone || base == 0 || base > math.MaxUint16 || id <= prev) {
			r.fail("redriven item %d does not match its entry", id)
		}
		if t.redriven == nil {
			t.redriven = map[uint64]uint16{}
		}
		t.redriven[id], prev = uint16(base), id
	}
	if version >= 2 {
		floor, top := r.uvarint(), r.uvarint()
		t.skipped = r.uvarint()
		if r.err == nil && (floor > top || top > math.MaxUint16) {
			r.fail("attempt floor %d, max attempt %d", floor, top)
		}
		t.attemptFloor, t.maxAttempt = uint16(floor), uint16(top)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return fail("%v", r.err)
	}
	if got, want := len(t.requeued), t.counts[StateReady]-t.readyByID()-len(byIDOverflow); got != want {
		return fail("%d requeued items for %d requeued entries", got, want)
	}
	t.requeued = append(t.requeued, byIDOverflow...)
	if version == 1 {
		t.maxAttempt = t.maxEntryAttempts() // version 1 did not keep it
	}
	heap.Init(&t.delays)
	heap.Init(&t.leases)
	heap.Init(&t.requeued)
	return snap, nil
}

// commonPriority returns the priority most live messages have, which a
// snapshot spends no bytes on, and the snapshot version that can hold the
// table: 2 if every live message has DefaultPriority, else 3. It counts
// by priority, not by level, and breaks ties to the lower priority, so
// that a decoded table, whose levels may be interned in another order,
// encodes to the same bytes.
func (t *Table) commonPriority() (uint32, byte) {
	count := make(map[uint32]int, len(t.levels))
	for _, l := range t.levels {
		if l.refs > 0 {
			count[l.pri] += l.refs
		}
	}
	for _, pri := range t.overflow {
		count[pri]++
	}
	common, most := DefaultPriority, 0
	for pri, n := range count {
		if n > most || (n == most && pri < common) {
			common, most = pri, n
		}
	}
	if common == DefaultPriority && most == t.Live() {
		return DefaultPriority, 2 // also an empty table
	}
	return common, snapshotVersion
}

func (t *Table) maxEntryAttempts() uint16 {
	var top uint16
	for _, c := range t.chunks {
		for i := range c.entries {
			top = max(top, c.entries[i].attempts)
		}
	}
	return top
}

func (t *Table) readyByID() int {
	n := 0
	for _, c := range t.chunks {
		n += c.nready
	}
	return n
}
