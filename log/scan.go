package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// damage marks bytes that do not verify, as opposed to an I/O error: only
// damage may be cut off as a torn tail or skipped over by a resync.
type damage struct{ reason string }

func (d *damage) Error() string { return d.reason }

func damaged(format string, args ...any) error { return &damage{reason: fmt.Sprintf(format, args...)} }

func isDamage(err error) bool {
	var d *damage
	return errors.As(err, &d)
}

// frameBuf holds one frame read from disk; its buffers are reused from
// frame to frame, so a reader's memory is bounded by its largest frame.
type frameBuf struct {
	header  [frameHeaderSize]byte
	stored  []byte
	decoded []byte
	payload []byte // decoded payload of the last load: stored or decoded
	recs    []Record
}

// readAt fills p from f at off; a short read inside end is damage (the file
// is shorter than its published size said), anything else is I/O.
func readAt(f File, p []byte, off int64) error {
	n, err := f.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return damaged("short read: %d of %d bytes at offset %d", n, len(p), off)
	}
	return err
}

// readHeader reads and checks the frame header at off, and that the whole
// frame lies before end. It does not read the payload.
func (b *frameBuf) readHeader(f File, off, end int64) (frameHeader, error) {
	if end-off < frameHeaderSize {
		return frameHeader{}, damaged("%d bytes left, too few for a frame header", end-off)
	}
	if err := readAt(f, b.header[:], off); err != nil {
		return frameHeader{}, err
	}
	h, err := decodeFrameHeader(b.header[:])
	if err != nil {
		return h, &damage{reason: err.Error()}
	}
	if size := int64(encodedSize(int(h.storedLen))); size > end-off {
		return h, damaged("frame of %d bytes runs past the end (%d bytes left)", size, end-off)
	}
	return h, nil
}

// load reads, verifies and decodes the frame at off, leaving its records in
// b.recs (aliasing b's buffers, valid until the next load).
func (b *frameBuf) load(f File, off, end int64) (frameHeader, error) {
	h, err := b.readHeader(f, off, end)
	if err != nil {
		return h, err
	}
	return h, b.loadPayload(f, off, h)
}

func (b *frameBuf) loadPayload(f File, off int64, h frameHeader) error {
	b.stored = grow(b.stored, int(h.storedLen))
	if err := readAt(f, b.stored, off+frameHeaderSize); err != nil {
		return err
	}
	if err := verifyFramePayload(b.header[:], h, b.stored); err != nil {
		return &damage{reason: err.Error()}
	}
	payload, err := decodePayload(h, b.stored, b.decoded)
	if err != nil {
		return &damage{reason: err.Error()}
	}
	if h.codec != CodecNone {
		b.decoded = payload
	}
	b.payload = payload
	b.recs = b.recs[:0]
	err = decodeRecords(payload, h, func(r Record) bool {
		b.recs = append(b.recs, r)
		return true
	})
	if err != nil {
		b.recs = b.recs[:0]
		return &damage{reason: err.Error()}
	}
	return nil
}

// resyncWindow is how much of a damaged region is read at a time while
// looking for the next frame that verifies.
const resyncWindow = 64 << 10

// findFrame looks for the first offset at or after from (rounded up to the
// frame alignment) where a whole frame verifies, with a first id of at
// least minID so that stale bytes of older frames are not taken for new
// ones. It reads the region in windows, checking only header checksums
// until one matches, so skipping a large damaged range stays cheap.
func (b *frameBuf) findFrame(f File, from, end int64, minID uint64) (off int64, found bool, err error) {
	window := make([]byte, resyncWindow+frameHeaderSize)
	for start := int64(alignUp(int(from))); start+frameHeaderSize <= end; start += resyncWindow {
		n := min(int64(len(window)), end-start)
		if err := readAt(f, window[:n], start); err != nil {
			return 0, false, err
		}
		for i := int64(0); i < resyncWindow && i+frameHeaderSize <= n; i += frameAlign {
			h, err := decodeFrameHeader(window[i : i+frameHeaderSize])
			if err != nil || h.first < minID {
				continue
			}
			_, err = b.load(f, start+i, end)
			if err == nil {
				return start + i, true, nil
			}
			if !isDamage(err) {
				return 0, false, err
			}
		}
	}
	return 0, false, nil
}

// allZero reports whether the bytes of f in [from, to) are all zero, reading
// them a block at a time.
func allZero(f File, from, to int64) (bool, error) {
	buf := make([]byte, min(to-from, int64(len(zeroBlock))))
	for off := from; off < to; off += int64(len(buf)) {
		chunk := buf[:min(int64(len(buf)), to-off)]
		if err := readAt(f, chunk, off); err != nil {
			return false, err
		}
		if !bytes.Equal(chunk, zeroBlock[:len(chunk)]) {
			return false, nil
		}
	}
	return true, nil
}

// walkResult sums up a walk over a segment's frames.
type walkResult struct {
	end     int64  // offset just past the last frame that verified
	lastID  uint64 // last id of that frame, or base-1
	frames  int
	records int
	damage  []Problem // in file order; the last may run to the end of the file
}

// walkFrames verifies every frame of one segment from the first frame to
// size, calling onFrame (if not nil) for each frame that verifies, with its
// records in b.recs. Damage is skipped by resyncing to the next frame that
// verifies; a damaged range with no valid frame after it is marked
// TornTail (only the newest segment's caller may treat it as repairable).
// In the newest segment such a range that is all zeros is the space
// preallocated for frames never written (see preallocate): the walk ends
// there without a problem. A sealed segment is cut back to its frames
// before the next one is created, so there zeros are lost data, reported.
func walkFrames(f File, path string, base uint64, size int64, newest bool, b *frameBuf, onFrame func(off int64, h frameHeader) error) (walkResult, error) {
	res := walkResult{end: fileHeaderSize, lastID: base - 1}
	for off := int64(fileHeaderSize); off < size; {
		h, err := b.load(f, off, size)
		if err == nil && h.first <= res.lastID {
			err = damaged("frame ids %d..%d do not follow id %d", h.first, h.last(), res.lastID)
		}
		if err == nil {
			if onFrame != nil {
				if err := onFrame(off, h); err != nil {
					return res, err
				}
			}
			off += int64(encodedSize(int(h.storedLen)))
			res.end, res.lastID = off, h.last()
			res.frames++
			res.records += int(h.count)
			continue
		}
		if !isDamage(err) {
			return res, fmt.Errorf("segment %s offset %d: %w", path, off, err)
		}
		next, found, ferr := b.findFrame(f, off+frameAlign, size, res.lastID+1)
		if ferr != nil {
			return res, fmt.Errorf("segment %s offset %d: %w", path, off, ferr)
		}
		if !found && newest {
			zero, zerr := allZero(f, off, size)
			if zerr != nil {
				return res, fmt.Errorf("segment %s offset %d: %w", path, off, zerr)
			}
			if zero {
				break // space preallocated for frames never written: not damage
			}
		}
		p := Problem{Path: path, Segment: base, Offset: off, Length: size - off, Reason: err.Error(), TornTail: !found}
		if found {
			p.Length = next - off
		}
		res.damage = append(res.damage, p)
		if !found {
			break
		}
		off = next
	}
	return res, nil
}
