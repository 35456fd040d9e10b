package index

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/tidwall/wal"
)

// StateLogSegmentSize is the tidwall/wal segment size of a state log.
// tidwall/wal keeps its newest segment (and one more in cache) in memory,
// so this bounds a queue's state-log memory; small suits the Pi.
const StateLogSegmentSize = 256 << 10

// StateLog is one queue's log of state events on github.com/tidwall/wal.
// tidwall/wal has no checksums, refuses to open a torn tail and does not
// fsync directories, so StateLog wraps each entry in our own CRC
// (EncodeEntry), cuts a torn tail off before wal.Open, and fsyncs the
// directory after tidwall creates or removes segment files. Not safe for
// concurrent use, except the function PrepareSync returns.
type StateLog struct {
	dir string
	w   *wal.Log
	// tailBytes mirrors the size of tidwall's newest segment, to know
	// when a write made it start a new segment file (which needs a
	// directory fsync before the entry in it is durable).
	tailBytes int
	dirDirty  bool
	fault     Fault
}

// FaultOp names a state-log operation a Fault can fail.
type FaultOp string

// The operations a Fault sees.
const (
	OpWrite   FaultOp = "write"   // Append's write of an entry
	OpFsync   FaultOp = "fsync"   // Sync's fsync of the newest segment
	OpDirSync FaultOp = "dirsync" // Sync's fsync of the directory after a new segment
)

// A Fault fails state-log operations, for tests: tidwall/wal opens its own
// files, so the message log's FS seam (log.Options.FS) cannot reach them.
// It is called before each operation; a non-nil err fails the operation
// instead of doing it. For OpWrite, torn > 0 first appends that many bytes
// of the entry's framing to the newest segment, as a short write on a full
// disk leaves them; the state log must then be reopened, which cuts them.
type Fault func(op FaultOp) (torn int, err error)

// SetFault installs f (nil removes it). Not for production use.
func (s *StateLog) SetFault(f Fault) { s.fault = f }

// injected runs the installed Fault for op, writing torn bytes of framed
// (tidwall's length prefix and the entry) if it asks.
func (s *StateLog) injected(op FaultOp, entry []byte) error {
	if s.fault == nil {
		return nil
	}
	torn, err := s.fault(op)
	if err == nil {
		return nil
	}
	if op == OpWrite && torn > 0 {
		framed := binary.AppendUvarint(nil, uint64(len(entry)))
		framed = append(framed, entry...)
		if path, perr := newestSegment(s.dir); perr == nil && path != "" {
			if f, ferr := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0); ferr == nil {
				_, werr := f.Write(framed[:min(torn, len(framed)-1)])
				err = errors.Join(err, werr, f.Close())
			}
		}
	}
	return fmt.Errorf("injected %s fault: %w", op, err)
}

// StateLogRepair says what OpenStateLog cut off.
type StateLogRepair struct {
	Path      string
	Offset    int64
	Truncated int64
}

// OpenStateLog opens (creating) the state log in dir, first cutting off a
// torn or unverifiable tail of its newest segment.
func OpenStateLog(dir string) (*StateLog, *StateLogRepair, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("open state log: %w", err)
	}
	repair, tail, err := repairStateTail(dir)
	if err != nil {
		return nil, nil, err
	}
	w, err := wal.Open(dir, &wal.Options{
		NoSync:           true, // we fsync once per group commit, in Sync
		SegmentSize:      StateLogSegmentSize,
		SegmentCacheSize: 1,
		AllowEmpty:       true,
		DirPerms:         0o755,
		FilePerms:        0o644,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open state log %s: %w", dir, err)
	}
	// dirDirty starts true: tidwall may just have created the directory's
	// first segment file, and never fsyncs a directory itself.
	return &StateLog{dir: dir, w: w, tailBytes: tail, dirDirty: true}, repair, nil
}

// segmentNames returns tidwall's plain segment files in dir, oldest
// first: 20-digit names (.START/.END/.TEMP are tidwall's own recovery files).
func segmentNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state log: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name := e.Name(); len(name) == 20 && !e.IsDir() {
			if _, err := strconv.ParseUint(name, 10, 64); err == nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// newestSegment returns the path of tidwall's newest plain segment file.
func newestSegment(dir string) (string, error) {
	names, err := segmentNames(dir)
	if err != nil || len(names) == 0 {
		return "", err
	}
	return filepath.Join(dir, names[len(names)-1]), nil
}

// walkEntries walks the entries of one segment file's bytes (tidwall
// frames each as uvarint length, data), checking each with our CRC, and
// calls fn with each entry's events. It returns the offset just past the
// last good entry and, if it stopped before the end, why.
func walkEntries(data []byte, fn func(events []Event)) (end int, damage string) {
	var events []Event
	var bad error
	end, damage = eachFrame(data, func(entry []byte) bool {
		if events, bad = DecodeEntry(events[:0], entry); bad != nil {
			return false
		}
		if fn != nil {
			fn(events)
		}
		return true
	})
	if bad != nil {
		damage = bad.Error()
	}
	return end, damage
}

// eachFrame calls fn with each entry of a segment file's bytes, by
// tidwall's framing alone, until fn returns false. It returns the offset
// of the entry it stopped at (len(data) at the end) and, if the framing
// broke there, why: tidwall's framing has no way to resync, so the rest
// of the segment is unreadable.
func eachFrame(data []byte, fn func(entry []byte) bool) (end int, broken string) {
	for off := 0; off < len(data); {
		size, n := binary.Uvarint(data[off:])
		switch {
		case n <= 0:
			return off, "bad entry length"
		case size > uint64(len(data)-off-n):
			return off, fmt.Sprintf("entry of %d bytes runs past the end", size)
		}
		if !fn(data[off+n : off+n+int(size)]) {
			return off, ""
		}
		off += n + int(size)
	}
	return len(data), ""
}

// repairStateTail cuts the newest segment at its first entry that is short
// or fails our CRC. Only the newest segment can have a torn tail: tidwall
// fsyncs a segment before starting the next.
func repairStateTail(dir string) (*StateLogRepair, int, error) {
	path, err := newestSegment(dir)
	if err != nil || path == "" {
		return nil, 0, err
	}
	data, err := os.ReadFile(path) // tidwall itself reads it whole next; it is small
	if err != nil {
		return nil, 0, fmt.Errorf("state log: %w", err)
	}
	off, damage := walkEntries(data, nil)
	if damage == "" {
		return nil, off, nil
	}
	if err := truncateSync(path, int64(off)); err != nil {
		return nil, 0, fmt.Errorf("state log: cut torn tail of %s at %d: %w", path, off, err)
	}
	return &StateLogRepair{Path: path, Offset: int64(off), Truncated: int64(len(data) - off)}, off, nil
}

func truncateSync(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// LastIndex returns the index of the newest entry (0 if none was ever
// written).
func (s *StateLog) LastIndex() uint64 {
	i, _ := s.w.LastIndex() // only fails on a closed or corrupt log, which later calls report
	return i
}

// Append writes one entry (from EncodeEntry) without fsyncing it, and
// returns its index. Sync makes it durable.
func (s *StateLog) Append(entry []byte) (uint64, error) {
	index := s.LastIndex() + 1
	if err := s.injected(OpWrite, entry); err != nil {
		return 0, fmt.Errorf("state log %s: write entry %d: %w", s.dir, index, err)
	}
	if err := s.w.Write(index, entry); err != nil {
		return 0, fmt.Errorf("state log %s: write entry %d: %w", s.dir, index, err)
	}
	// Mirror tidwall's cycle rule: a new segment before the write if the
	// tail was over size, and after it if the write filled the tail.
	n := len(entry) + uvarintLen(uint64(len(entry)))
	if s.tailBytes > StateLogSegmentSize {
		s.tailBytes, s.dirDirty = 0, true
	}
	s.tailBytes += n
	if s.tailBytes >= StateLogSegmentSize {
		s.tailBytes, s.dirDirty = 0, true
	}
	return index, nil
}

func uvarintLen(v uint64) int {
	var b [binary.MaxVarintLen64]byte
	return binary.PutUvarint(b[:], v)
}

// Sync makes every appended entry durable.
func (s *StateLog) Sync() error {
	if err := s.injected(OpFsync, nil); err != nil {
		return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
	}
	if err := s.w.Sync(); err != nil {
		return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
	}
	if s.dirDirty {
		if err := s.injected(OpDirSync, nil); err != nil {
			return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
		}
		if err := syncDir(s.dir); err != nil {
			return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
		}
		s.dirDirty = false
	}
	return nil
}

// PrepareSync returns a function that makes every entry appended so far
// durable, as Sync does, but that may run without the lock serializing
// Appends, while they go on: it fsyncs the newest segment file through a
// descriptor of its own instead of through tidwall/wal, which holds its
// lock for the whole fsync. tidwall fsyncs a segment before it starts the
// next one, so only the newest can hold unsynced entries. PrepareSync
// itself must be serialized with Append and TruncateFront, and the
// function must finish before the next TruncateFront (which may replace
// the newest segment's file).
func (s *StateLog) PrepareSync() (func() error, error) {
	path, err := newestSegment(s.dir)
	if err != nil || path == "" {
		return nil, fmt.Errorf("state log %s: find the newest segment: %w", s.dir, cmp.Or(err, fs.ErrNotExist))
	}
	dirDirty := s.dirDirty
	s.dirDirty = false
	return func() error {
		if err := s.injected(OpFsync, nil); err != nil {
			return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
		}
		if err := syncFile(path); err != nil {
			return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
		}
		if dirDirty {
			if err := s.injected(OpDirSync, nil); err != nil {
				return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
			}
			if err := syncDir(s.dir); err != nil {
				return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
			}
		}
		return nil
	}, nil
}

// Replay calls fn for every entry after index after, in order. An entry
// that fails its checksum is not applied: it is returned in damaged (with
// its index) and replay goes on, since losing a state event only means a
// redelivery, never a lost message.
func (s *StateLog) Replay(after uint64, fn func(index uint64, events []Event) error) (damaged []error, err error) {
	first, err := s.w.FirstIndex()
	if err != nil {
		return nil, fmt.Errorf("state log %s: %w", s.dir, err)
	}
	var events []Event
	for i := max(after+1, first); i <= s.LastIndex(); i++ {
		data, err := s.read(i)
		if err != nil {
			damaged = append(damaged, fmt.Errorf("state log %s entry %d: %w", s.dir, i, err))
			continue
		}
		events, err = DecodeEntry(events[:0], data)
		if err != nil {
			damaged = append(damaged, fmt.Errorf("state log %s entry %d: %w", s.dir, i, err))
			continue
		}
		if err := fn(i, events); err != nil {
			return damaged, err
		}
	}
	return damaged, nil
}

// read reads entry i. tidwall/wal trusts its length prefixes: a damaged
// one in a sealed segment makes Read fail, or panic on an index out of
// range. Both are damage to report and skip, never a reason not to open.
func (s *StateLog) read(i uint64) (data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: tidwall/wal: %v", ErrCorrupt, p)
		}
	}()
	data, err = s.w.Read(i)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return data, nil
}

// TruncateFront drops every entry before index (a snapshot covers them).
func (s *StateLog) TruncateFront(index uint64) error {
	first, err := s.w.FirstIndex()
	if err != nil {
		return fmt.Errorf("state log %s: %w", s.dir, err)
	}
	if index <= first {
		return nil
	}
	if err := s.w.TruncateFront(index); err != nil {
		return fmt.Errorf("state log %s: truncate front to %d: %w", s.dir, index, err)
	}
	// Truncating may rewrite the newest segment; resync the size mirror.
	if path, err := newestSegment(s.dir); err == nil && path != "" {
		if st, err := os.Stat(path); err == nil {
			s.tailBytes = int(st.Size())
		}
	}
	// tidwall renames and removes files without a directory fsync; a
	// power cut could bring old segments back, which is harmless (replay
	// starts after the snapshot), but make it durable anyway.
	if err := syncDir(s.dir); err != nil {
		return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
	}
	return nil
}

// Close closes the log.
func (s *StateLog) Close() error {
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("state log %s: close: %w", s.dir, err)
	}
	return nil
}

func syncDir(dir string) error { return syncFile(dir) }

// syncFile fsyncs the file or directory at path through a descriptor of
// its own: fsync flushes the file's pages whichever descriptor wrote them.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}
