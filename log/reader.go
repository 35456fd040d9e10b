package log

import (
	"fmt"
	"slices"
)

// Read returns a copy of the record with the given id. It walks frame
// headers from the start of the record's segment; callers that kept the
// record's Position should use a Cursor instead.
func (l *Log) Read(id uint64) (Record, error) {
	var c Cursor
	c.l = l
	r, err := c.Read(id)
	if err != nil {
		return Record{}, err
	}
	r.Meta = slices.Clone(r.Meta)
	r.Body = slices.Clone(r.Body)
	return r, nil
}

// Cursor reads records by id with pread, keeping the last frame it decoded
// so reading neighbouring ids costs one read per frame. Its memory is one
// frame. A Cursor is not safe for concurrent use; make one per reader.
type Cursor struct {
	l   *Log
	buf frameBuf
	// the cached frame, valid while seg is not gone
	seg *segment
	off int64
	hdr frameHeader
}

// NewCursor returns a Cursor over l.
func (l *Log) NewCursor() *Cursor { return &Cursor{l: l} }

// Reset drops the cursor's cached frame and frees its buffers (an idle
// reader need not keep a frame of up to MaxFramePayload bytes); the
// cursor stays usable.
func (c *Cursor) Reset() { *c = Cursor{l: c.l} }

// Read returns the record with the given id. Meta and Body alias the
// cursor's buffer and stay valid until the next call on the cursor.
func (c *Cursor) Read(id uint64) (Record, error) {
	return c.ReadAt(id, Position{})
}

// ReadAt is Read with a hint: the Position Append or an Iterator gave for
// the record. A hint whose Segment is 0 means "the segment that holds id",
// so a caller may keep just the offset. A stale or wrong hint (the segment
// was rewritten since) only costs the walk Read does.
func (c *Cursor) ReadAt(id uint64, hint Position) (Record, error) {
	l := c.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	seg := l.holdingLocked(id)
	if seg == nil {
		return Record{}, fmt.Errorf("read id %d: %w", id, ErrNotFound)
	}
	if c.seg == seg && !seg.gone && c.hdr.first <= id && id <= c.hdr.last() {
		return c.pick(id)
	}
	c.seg = nil
	end := seg.size.Load()
	f, err := l.file(seg)
	if err != nil {
		return Record{}, fmt.Errorf("read id %d: %w", id, err)
	}
	if (hint.Segment == seg.base || hint.Segment == 0) && hint.Offset >= fileHeaderSize {
		h, err := c.buf.load(f, hint.Offset, end)
		if err == nil && h.first <= id && id <= h.last() {
			c.seg, c.off, c.hdr = seg, hint.Offset, h
			return c.pick(id)
		}
	}
	off, h, err := c.seek(seg, f, id, end)
	if err != nil {
		return Record{}, err
	}
	c.seg, c.off, c.hdr = seg, off, h
	return c.pick(id)
}

// Frame returns the position of the frame the cursor holds (the last
// read's) and its id range; ok is false when it holds none. A reader that
// walks ids in order can tell from it whether the next id is in the frame
// it has, and keep the position as a hint for later reads.
func (c *Cursor) Frame() (pos Position, first, last uint64, ok bool) {
	c.l.mu.RLock()
	defer c.l.mu.RUnlock()
	if c.seg == nil || c.seg.gone {
		return Position{}, 0, 0, false
	}
	return Position{Segment: c.seg.base, Offset: c.off}, c.hdr.first, c.hdr.last(), true
}

// seek walks seg's frame headers to the frame whose id range covers id and
// loads it. Damage on the way is resynced over; if id could have been in
// the damaged bytes the answer is ErrCorrupt, never a guess.
func (c *Cursor) seek(seg *segment, f File, id uint64, end int64) (int64, frameHeader, error) {
	prevLast := seg.base - 1
	for off := int64(fileHeaderSize); off < end; {
		h, err := c.buf.readHeader(f, off, end)
		if err == nil && h.first <= prevLast {
			err = damaged("frame ids %d..%d do not follow id %d", h.first, h.last(), prevLast)
		}
		if err == nil && h.last() < id {
			off += int64(encodedSize(int(h.storedLen)))
			prevLast = h.last()
			continue
		}
		if err == nil {
			// Verify the payload before trusting this header's ids: a
			// frame whose header checks out but whose payload does not is
			// damage, and its ids mean nothing.
			err = c.buf.loadPayload(f, off, h)
			if err == nil && h.first > id {
				break
			}
			if err == nil {
				return off, h, nil
			}
		}
		if !isDamage(err) {
			return 0, h, fmt.Errorf("read id %d: segment %s offset %d: %w", id, seg.path, off, err)
		}
		next, found, ferr := c.buf.findFrame(f, off+frameAlign, end, prevLast+1)
		if ferr != nil {
			return 0, h, fmt.Errorf("read id %d: segment %s offset %d: %w", id, seg.path, off, ferr)
		}
		if !found || c.buf.recs[0].ID > id {
			return 0, h, fmt.Errorf("%w: id %d may lie in damaged bytes of segment %s at offset %d: %v", ErrCorrupt, id, seg.path, off, err)
		}
		off = next
	}
	return 0, frameHeader{}, fmt.Errorf("read id %d: %w", id, ErrNotFound)
}

// pick finds id among the records of the cached frame.
func (c *Cursor) pick(id uint64) (Record, error) {
	recs := c.buf.recs
	i, ok := slices.BinarySearchFunc(recs, id, func(r Record, id uint64) int { return cmpUint(r.ID, id) })
	if !ok {
		return Record{}, fmt.Errorf("read id %d: %w", id, ErrNotFound)
	}
	return recs[i], nil
}

// Iterator walks records in id order from a starting id, frame by frame.
// It sees records appended after it was created. Not safe for concurrent
// use.
//
//	it := l.Iter(from)
//	for it.Next() { use(it.Record()) }
//	if err := it.Err(); err != nil { ... }
type Iterator struct {
	l    *Log
	from uint64 // next id wanted
	buf  frameBuf
	seg  *segment
	off  int64 // next frame to read in seg
	pos  Position
	i    int // next record in buf.recs
	cur  Record
	err  error
	// set after damage: Next resumes by resyncing past this offset
	damagedAt int64
}

// Iter returns an iterator over the records with id ≥ from.
func (l *Log) Iter(from uint64) *Iterator {
	return &Iterator{l: l, from: max(from, 1), damagedAt: -1}
}

// IterAt is Iter starting at the frame hint names, a Position an earlier
// Iterator gave for a record at or before from: a reader that resumes
// where it stopped (a topic's subscription reading on) skips the walk
// over the frame headers before it. A zero hint, or one whose segment is
// gone, costs that walk. The hint must be a frame's start, as every
// Position is: this log never moves a frame but by a rewrite, which
// only compaction does.
func (l *Log) IterAt(from uint64, hint Position) *Iterator {
	it := l.Iter(from)
	if hint.Segment == 0 || hint.Offset < fileHeaderSize {
		return it
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if _, seg := l.findLocked(hint.Segment); seg != nil && hint.Offset < seg.size.Load() && seg.base <= it.from {
		it.seg, it.off = seg, hint.Offset
	}
	return it
}

// Record returns the current record. Meta and Body alias the iterator's
// buffer and stay valid until the next call to Next.
func (it *Iterator) Record() Record { return it.cur }

// Position returns the current record's frame position.
func (it *Iterator) Position() Position { return it.pos }

// Err returns the error that stopped Next, nil at the end of the log. An
// error wrapping ErrCorrupt names a damaged range; calling Next again skips
// it and resumes at the next frame that verifies, so a reader can collect
// every readable record and every problem.
func (it *Iterator) Err() error { return it.err }

// Next advances to the next record and reports whether there is one.
func (it *Iterator) Next() bool {
	for {
		if it.i < len(it.buf.recs) {
			r := it.buf.recs[it.i]
			it.i++
			if r.ID < it.from {
				continue
			}
			it.cur, it.from = r, r.ID+1
			return true
		}
		ok, err := it.nextFrame()
		if err != nil || !ok {
			it.err = err
			return false
		}
	}
}

// nextFrame loads the next frame holding ids ≥ it.from into it.buf.
func (it *Iterator) nextFrame() (bool, error) {
	l := it.l
	l.mu.RLock()
	defer l.mu.RUnlock()
	it.buf.recs, it.i, it.err = it.buf.recs[:0], 0, nil
	for {
		if it.seg == nil || it.seg.gone {
			if !it.locateLocked() {
				return false, nil
			}
		}
		seg := it.seg
		end := seg.size.Load()
		if it.off >= end && it.damagedAt < 0 {
			if !seg.sealed {
				return false, nil // caught up with the writer, no file needed
			}
			it.seg = nil
			it.from = max(it.from, seg.lastID.Load()+1)
			continue
		}
		f, err := l.file(seg)
		if err != nil {
			return false, fmt.Errorf("segment %s: %w", seg.path, err)
		}
		if it.damagedAt >= 0 {
			next, found, err := it.buf.findFrame(f, it.damagedAt+frameAlign, end, it.from)
			if err != nil {
				return false, fmt.Errorf("segment %s offset %d: %w", seg.path, it.damagedAt, err)
			}
			it.damagedAt = -1
			if !found {
				it.off = end
			} else {
				it.off = next
			}
		}
		if it.off >= end {
			if !seg.sealed {
				return false, nil // caught up with the writer
			}
			it.seg = nil
			it.from = max(it.from, seg.lastID.Load()+1)
			continue
		}
		h, err := it.buf.readHeader(f, it.off, end)
		if err == nil && h.last() < it.from {
			it.off += int64(encodedSize(int(h.storedLen)))
			continue
		}
		if err == nil {
			err = it.buf.loadPayload(f, it.off, h)
		}
		if err != nil {
			if !isDamage(err) {
				return false, fmt.Errorf("segment %s offset %d: %w", seg.path, it.off, err)
			}
			it.damagedAt = it.off
			return false, fmt.Errorf("%w: segment %s offset %d: %v", ErrCorrupt, seg.path, it.off, err)
		}
		it.pos = Position{Segment: seg.base, Offset: it.off}
		it.off += int64(encodedSize(int(h.storedLen)))
		return true, nil
	}
}

// locateLocked points the iterator at the first segment that can hold
// it.from; the caller holds mu.
func (it *Iterator) locateLocked() bool {
	for _, s := range it.l.segs {
		if s.lastID.Load() >= it.from || !s.sealed {
			it.seg, it.off = s, fileHeaderSize
			return true
		}
	}
	return false
}
