package log

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// The segment files: finding and opening them at Open (with the newest
// one's torn-tail repair), creating one at rotation, opening and closing
// their handles lazily, and listing and removing sealed ones.

// segment is one segment file. Its sealed and gone flags are guarded by
// Log.mu; size and lastID are atomics so a reader can check them under mu
// shared while the committer publishes a new frame.
type segment struct {
	base uint64
	path string
	// f is the open file, nil while closed (Release); file opens it under
	// fmu. It is closed only under Log.mu held exclusively, with the
	// committer stopped if the segment is the newest.
	f      atomic.Pointer[File]
	fmu    sync.Mutex
	sealed bool
	gone   bool // removed or replaced by a rewrite: readers must relocate
	// size is the published length: readers never look past it, so they
	// never see a frame still being written.
	size atomic.Int64
	// lastID is the highest id the segment can hold: for the newest
	// segment the last id written, for a sealed one the next base - 1.
	lastID atomic.Uint64
	// alloc is the newest segment's file length, zeros past size
	// included (see preallocate); the committer's.
	alloc int64
}

// setFile installs f as seg's open file.
func (seg *segment) setFile(f File) { seg.f.Store(&f) }

// closeFileLocked closes seg's file if it is open. The caller holds mu
// exclusively, and for the newest segment the committer is stopped.
func (seg *segment) closeFileLocked() error {
	if p := seg.f.Swap(nil); p != nil {
		return (*p).Close()
	}
	return nil
}

// file returns seg's open file, opening it if it is closed. The caller
// holds mu (shared is enough) or is the committer, and seg is not gone.
func (l *Log) file(seg *segment) (File, error) {
	l.lastUse.Store(monoNow())
	if p := seg.f.Load(); p != nil {
		return *p, nil
	}
	seg.fmu.Lock()
	defer seg.fmu.Unlock()
	if p := seg.f.Load(); p != nil {
		return *p, nil
	}
	f, err := l.fs.OpenFile(seg.path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("reopen segment: %w", err)
	}
	seg.f.Store(&f)
	l.released.Store(false)
	return f, nil
}

// closeSegmentFilesLocked closes every segment's file; the caller holds mu
// exclusively (or is Open, before the log is shared), and no committer
// runs.
func (l *Log) closeSegmentFilesLocked() error {
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.closeFileLocked())
	}
	return errors.Join(errs...)
}

// load finds the segments in l.dir, removes leftover rewrite temps and
// opens each segment, walking the newest (see openSegment); with none, it
// creates the first. Only Open calls it, before the log is shared.
func (l *Log) load() error {
	if err := MkdirDurable(l.fs, l.dir); err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	names, err := l.fs.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	var bases []uint64
	for _, name := range names {
		if strings.HasSuffix(name, segmentSuffix+tempSuffix) {
			// An interrupted Rewrite: the original segment is still in place.
			if err := l.fs.Remove(filepath.Join(l.dir, name)); err != nil {
				return fmt.Errorf("open log: remove leftover %s: %w", name, err)
			}
			l.recovery.TempsFound = append(l.recovery.TempsFound, name)
			continue
		}
		if base, ok := parseSegmentName(name); ok {
			bases = append(bases, base)
		}
	}
	slices.Sort(bases)
	if len(bases) == 0 {
		seg, err := l.createSegment(1)
		if err != nil {
			return err
		}
		l.segs = []*segment{seg}
		return nil
	}
	for i, base := range bases {
		newest := i == len(bases)-1
		seg, err := l.openSegment(base, newest)
		if err != nil {
			return err
		}
		if !newest {
			seg.sealed = true
			seg.lastID.Store(bases[i+1] - 1)
		}
		l.segs = append(l.segs, seg)
	}
	return nil
}

// openSegment opens one existing segment. Sealed segments are only header-
// checked here (their frames verify when read, and by Verify); the newest
// is walked frame by frame so its torn tail can be cut off.
func (l *Log) openSegment(base uint64, newest bool) (*segment, error) {
	path := filepath.Join(l.dir, segmentName(base))
	f, err := l.fs.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	seg := &segment{base: base, path: path}
	seg.setFile(f)
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open segment %s: %w", path, err)
	}
	herr, err := checkSegmentHeader(f, path, base, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	if !newest {
		if herr != nil {
			l.recovery.Corrupt = append(l.recovery.Corrupt, Problem{Path: path, Segment: base, Length: fileHeaderSize, Reason: herr.Error()})
		}
		seg.size.Store(size)
		return seg, nil
	}
	var b frameBuf
	res, err := walkFrames(f, path, base, size, true, &b, nil)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open segment: %w", err)
	}
	if herr != nil && res.frames == 0 {
		// Crash during rotation: the header never made it, so no frame did.
		f.Close()
		l.recovery.Recreated = append(l.recovery.Recreated, path)
		return l.createSegment(base)
	}
	if herr != nil {
		l.recovery.Corrupt = append(l.recovery.Corrupt, Problem{Path: path, Segment: base, Length: fileHeaderSize, Reason: herr.Error()})
	}
	for _, p := range res.damage {
		if p.TornTail {
			l.recovery.Truncated = append(l.recovery.Truncated, p)
		} else {
			l.recovery.Corrupt = append(l.recovery.Corrupt, p)
		}
	}
	if res.end < size {
		if err := f.Truncate(res.end); err != nil {
			f.Close()
			return nil, fmt.Errorf("open segment %s: cut torn tail at %d: %w", path, res.end, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("open segment %s: cut torn tail at %d: %w", path, res.end, err)
		}
	}
	seg.size.Store(res.end)
	seg.alloc = res.end
	seg.lastID.Store(res.lastID)
	return seg, nil
}

// createSegment creates the segment file for base and makes it durable
// (header fsynced, directory fsynced) before any frame goes in, so a crash
// can only ever leave a whole header or a file with no frames.
func (l *Log) createSegment(base uint64) (*segment, error) {
	path := filepath.Join(l.dir, segmentName(base))
	f, err := l.fs.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", path, err)
	}
	var hb [fileHeaderSize]byte
	encodeFileHeader(hb[:], fileHeader{version: formatVersion, base: base, created: l.opts.Now().UnixNano()})
	_, err = f.WriteAt(hb[:], 0)
	if err == nil {
		err = l.syncFile(f)
	}
	if err == nil {
		err = l.fs.SyncDir(l.dir)
	}
	if err != nil {
		f.Close()
		return nil, errors.Join(fmt.Errorf("create segment %s: %w", path, err), removeIfExists(l.fs, path))
	}
	seg := &segment{base: base, path: path}
	seg.setFile(f)
	seg.size.Store(fileHeaderSize)
	seg.alloc = fileHeaderSize
	seg.lastID.Store(base - 1)
	return seg, nil
}

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Base   uint64 // first id the segment may hold
	LastID uint64 // last id it may hold (Base-1 if it is empty)
	Size   int64  // bytes
	Sealed bool   // no longer appended to; may be removed or rewritten
	Path   string
}

// Segments lists the segments, oldest first.
func (l *Log) Segments() []SegmentInfo {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]SegmentInfo, len(l.segs))
	for i, s := range l.segs {
		out[i] = SegmentInfo{Base: s.base, LastID: s.lastID.Load(), Size: s.size.Load(), Sealed: s.sealed, Path: s.path}
	}
	return out
}

// Remove deletes a sealed segment (its records are no longer needed) and
// makes the removal durable. The newest segment cannot be removed.
func (l *Log) Remove(base uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	i, seg := l.findLocked(base)
	if seg == nil {
		return fmt.Errorf("remove segment %d: %w", base, fs.ErrNotExist)
	}
	if !seg.sealed {
		return fmt.Errorf("remove segment %s: %w", seg.path, ErrActiveSegment)
	}
	if err := l.fs.Remove(seg.path); err != nil {
		return fmt.Errorf("remove segment: %w", err)
	}
	seg.gone = true
	l.segs = slices.Delete(l.segs, i, i+1)
	return errors.Join(seg.closeFileLocked(), l.fs.SyncDir(l.dir))
}

// findLocked returns the segment with the given base and its index in
// segs (where it would go if there is none); the caller holds mu.
func (l *Log) findLocked(base uint64) (int, *segment) {
	i, ok := slices.BinarySearchFunc(l.segs, base, func(s *segment, b uint64) int { return cmpUint(s.base, b) })
	if !ok {
		return i, nil
	}
	return i, l.segs[i]
}

// holdingLocked returns the segment whose id range holds id, or nil; the
// caller holds mu.
func (l *Log) holdingLocked(id uint64) *segment {
	i, ok := slices.BinarySearchFunc(l.segs, id, func(s *segment, b uint64) int { return cmpUint(s.base, b) })
	if !ok {
		i--
	}
	if i < 0 || id > l.segs[i].lastID.Load() {
		return nil
	}
	return l.segs[i]
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
