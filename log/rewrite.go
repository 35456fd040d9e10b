package log

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"slices"
)

// RewriteOptions tune Rewrite.
type RewriteOptions struct {
	// Codec compresses the new frames; zero means CodecZstd, which suits
	// cold segments: they are read rarely and kept long.
	Codec Codec
	// FrameSize is the raw payload bytes gathered into one new frame;
	// zero means 256 KiB.
	FrameSize int
}

// Moved gives a surviving record's new frame position.
type Moved struct {
	ID  uint64
	Pos Position
}

// Rewrite is a prepared compaction of one sealed segment: the surviving
// records sit, fsynced, in a temp file until Commit swaps it in. Nothing a
// reader sees changes before Commit, so the caller can prepare without
// holding its own locks and then Commit and update its index together.
type Rewrite struct {
	l    *Log
	seg  *segment
	tmp  string
	f    File
	size int64
	done bool

	// Moved lists the surviving records in id order with their positions
	// in the new file.
	Moved   []Moved
	Dropped int   // records keep rejected
	OldSize int64 // bytes of the segment before
	NewSize int64 // bytes after
}

// Rewrite prepares a copy of the sealed segment at base holding only the
// records for which keep returns true, with their ids unchanged. A segment
// with damage is not rewritten (ErrCorrupt): compaction must never turn
// damaged bytes into a silent loss.
func (l *Log) Rewrite(base uint64, keep func(id uint64) bool, opts RewriteOptions) (*Rewrite, error) {
	if opts.Codec == 0 {
		opts.Codec = CodecZstd
	}
	if !opts.Codec.valid() {
		return nil, fmt.Errorf("rewrite: unknown codec %d", opts.Codec)
	}
	if opts.FrameSize <= 0 {
		opts.FrameSize = 256 << 10
	}
	l.mu.RLock()
	_, seg := l.findLocked(base)
	var sealed bool
	var oldSize int64
	if seg != nil {
		sealed, oldSize = seg.sealed, seg.size.Load()
	}
	l.mu.RUnlock()
	switch {
	case seg == nil:
		return nil, fmt.Errorf("rewrite segment %d: %w", base, fs.ErrNotExist)
	case !sealed:
		return nil, fmt.Errorf("rewrite segment %s: %w", seg.path, ErrActiveSegment)
	}
	// A handle of our own: the log's may be closed by a concurrent Remove,
	// and reading through it would mean holding mu for the whole copy.
	src, err := l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	defer src.Close()
	tmp := seg.path + tempSuffix
	f, err := l.fs.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("rewrite: %w", err)
	}
	rw := &Rewrite{l: l, seg: seg, tmp: tmp, f: f, OldSize: oldSize}
	if err := rw.copy(src, keep, opts); err != nil {
		return nil, errors.Join(err, rw.Abort())
	}
	return rw, nil
}

// rewriteFlush is how much encoded output is buffered between writes.
const rewriteFlush = 1 << 20

func (rw *Rewrite) copy(src File, keep func(uint64) bool, opts RewriteOptions) error {
	var hb [fileHeaderSize]byte
	encodeFileHeader(hb[:], fileHeader{version: formatVersion, base: rw.seg.base, created: rw.l.opts.Now().UnixNano()})
	out := append([]byte(nil), hb[:]...)
	var raw, comp []byte
	var pending []uint64 // ids in raw, awaiting their frame
	var prevTime int64
	flushFrame := func() {
		if len(pending) == 0 {
			return
		}
		stored, codec, err := compressPayload(opts.Codec, raw, &comp)
		if err != nil {
			stored, codec = raw, CodecNone
		}
		pos := Position{Segment: rw.seg.base, Offset: rw.size + int64(len(out))}
		first, last := pending[0], pending[len(pending)-1]
		out = appendFrameBytes(out, frameHeader{
			storedLen: uint32(len(stored)), codec: codec, count: uint32(len(pending)),
			first: first, span: uint32(last - first), decodedLen: uint32(len(raw)),
		}, stored)
		for _, id := range pending {
			rw.Moved = append(rw.Moved, Moved{ID: id, Pos: pos})
		}
		raw, pending, prevTime = raw[:0], pending[:0], 0
	}
	flushOut := func() error {
		if _, err := rw.f.WriteAt(out, rw.size); err != nil {
			return fmt.Errorf("rewrite %s: %w", rw.tmp, err)
		}
		rw.size += int64(len(out))
		out = out[:0]
		return nil
	}
	size, err := src.Size()
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", rw.seg.path, err)
	}
	var b frameBuf
	res, err := walkFrames(src, rw.seg.path, rw.seg.base, size, false, &b, func(_ int64, _ frameHeader) error {
		for i := range b.recs {
			r := &b.recs[i]
			if !keep(r.ID) {
				rw.Dropped++
				continue
			}
			if len(pending) > 0 && r.ID-pending[0] > math.MaxUint32 {
				flushFrame()
			}
			prevID := r.ID
			if len(pending) > 0 {
				prevID = pending[len(pending)-1]
			}
			raw = appendRecord(raw, r, prevID, prevTime)
			prevTime = r.Time
			pending = append(pending, r.ID)
			if len(raw) >= opts.FrameSize {
				flushFrame()
			}
		}
		if len(out) >= rewriteFlush {
			return flushOut()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(res.damage) > 0 {
		return fmt.Errorf("%w: rewrite refused: %s", ErrCorrupt, res.damage[0])
	}
	flushFrame()
	if err := flushOut(); err != nil {
		return err
	}
	if err := rw.l.syncFile(rw.f); err != nil {
		return fmt.Errorf("rewrite %s: fsync: %w", rw.tmp, err)
	}
	rw.NewSize = rw.size
	return nil
}

// Commit swaps the new file in: rename over the segment, fsync the
// directory, and switch readers to it. After Commit, positions in Moved are
// the only valid ones for the segment.
func (rw *Rewrite) Commit() error {
	if rw.done {
		return errors.New("rewrite: already committed or aborted")
	}
	l := rw.l
	l.mu.Lock()
	defer l.mu.Unlock()
	i, seg := l.findLocked(rw.seg.base)
	if seg != rw.seg {
		return errors.Join(fmt.Errorf("rewrite %s: the segment was removed or rewritten meanwhile", rw.seg.path), rw.abort())
	}
	if err := l.fs.Rename(rw.tmp, seg.path); err != nil {
		return errors.Join(fmt.Errorf("rewrite %s: %w", seg.path, err), rw.abort())
	}
	rw.done = true
	ns := &segment{base: seg.base, path: seg.path, sealed: true}
	ns.setFile(rw.f)
	l.released.Store(false) // ns's file is open: a Release closes it
	ns.size.Store(rw.size)
	ns.lastID.Store(seg.lastID.Load())
	l.segs = slices.Replace(l.segs, i, i+1, ns)
	seg.gone = true
	l.rewrites.Add(1)
	return errors.Join(seg.closeFileLocked(), l.fs.SyncDir(l.dir))
}

// Abort discards the prepared rewrite.
func (rw *Rewrite) Abort() error {
	if rw.done {
		return nil
	}
	return rw.abort()
}

func (rw *Rewrite) abort() error {
	rw.done = true
	return errors.Join(rw.f.Close(), removeIfExists(rw.l.fs, rw.tmp))
}

// Records counts the records the sealed segment at base holds, reading
// only its frame headers (each verified by its own checksum), not the
// payloads. After a rewrite a segment's id range no longer says how many
// records it holds; this lets compaction judge how much of a segment is
// still live without reading all of it. Damage that stops the walk is
// ErrCorrupt.
func (l *Log) Records(base uint64) (int, error) {
	l.mu.RLock()
	_, seg := l.findLocked(base)
	var sealed bool
	if seg != nil {
		sealed = seg.sealed
	}
	l.mu.RUnlock()
	switch {
	case seg == nil:
		return 0, fmt.Errorf("count records of segment %d: %w", base, fs.ErrNotExist)
	case !sealed:
		return 0, fmt.Errorf("count records of segment %s: %w", seg.path, ErrActiveSegment)
	}
	// A handle of our own, as in Rewrite: the walk must not hold mu.
	f, err := l.fs.OpenFile(seg.path, os.O_RDONLY, 0)
	if err != nil {
		return 0, fmt.Errorf("count records: %w", err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, fmt.Errorf("count records of %s: %w", seg.path, err)
	}
	var b frameBuf
	n := 0
	for off := int64(fileHeaderSize); off < size; {
		h, err := b.readHeader(f, off, size)
		if isDamage(err) {
			return 0, fmt.Errorf("%w: count records of %s: offset %d: %v", ErrCorrupt, seg.path, off, err)
		}
		if err != nil {
			return 0, fmt.Errorf("count records of %s: offset %d: %w", seg.path, off, err)
		}
		n += int(h.count)
		off += int64(encodedSize(int(h.storedLen)))
	}
	return n, nil
}
