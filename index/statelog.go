package index

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

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
//
// tidwall/wal holds its newest segment in memory and a file open, so a
// StateLog opens it only when it is needed (an Append, a Replay with
// entries to replay, a TruncateFront), and Release closes it again: a queue
// that only opened, or has been idle a while, costs no file and no buffer.
type StateLog struct {
	dir string
	w   *wal.Log // nil until needed, and after Release
	// last is the index of the newest entry, known without tidwall: read
	// from the newest segment at open, then counted by Append.
	last    uint64
	closed  bool  // Close was called: nothing reopens tidwall
	lastUse int64 // monoNow at the last use of tidwall (see Release)
	// tailBytes mirrors the size of tidwall's newest segment, to know
	// when a write made it start a new segment file (which needs a
	// directory fsync before the entry in it is durable).
	tailBytes int
	dirDirty  bool
	// tailPath caches the newest segment file's path (newestPath), and
	// zeroEnd is how far that file runs in preallocated zeros past
	// tailBytes (0: no zeros); see statelog_prealloc.go.
	tailPath string
	zeroEnd  int64
	files    Files
	fault    Fault
}

// Files is what the state log does to its files itself, beside
// tidwall/wal (which reads and writes its segments through package os):
// it cuts a torn tail and makes appends and new segments durable. The
// queue passes log.PathOps over its file system, so these steps sit behind
// the same seam (and fault injection) as every other file spool writes.
type Files interface {
	// TruncateSync cuts the file at path to size and makes that durable.
	TruncateSync(path string, size int64) error
	// SyncFile fsyncs the file at path through a descriptor of its own.
	SyncFile(path string) error
	// SyncDir makes the creates, renames and removes in dir durable.
	SyncDir(dir string) error
	// WriteZeros writes zeros over [from, to) of the file at path, not
	// fsyncing them (preallocation: see statelog_prealloc.go).
	WriteZeros(path string, from, to int64) error
}

// OpenStateLog opens (creating) the state log in dir, first cutting off a
// torn or unverifiable tail of its newest segment; files does that and
// every fsync.
func OpenStateLog(dir string, files Files) (*StateLog, *StateLogRepair, error) {
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		// A new directory's entry is durable only once its parent is
		// fsynced: else a power cut could lose it, and every entry in it.
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, nil, fmt.Errorf("open state log: %w", err)
		}
		if err := files.SyncDir(filepath.Dir(dir)); err != nil {
			return nil, nil, fmt.Errorf("open state log: %w", err)
		}
	}
	names, recovering, err := scanSegments(dir)
	if err != nil {
		return nil, nil, err
	}
	repair, tail, entries, err := repairStateTail(files, dir, names)
	if err != nil {
		return nil, nil, err
	}
	// dirDirty starts true: tidwall may create the directory's first
	// segment file when it opens, and never fsyncs a directory itself.
	s := &StateLog{dir: dir, tailBytes: tail, dirDirty: true, files: files}
	if len(names) > 0 {
		// tidwall's rule: the newest segment's name is the index of its
		// first entry (an empty newest segment: the next index).
		base, _ := strconv.ParseUint(names[len(names)-1], 10, 64)
		s.last = base + uint64(entries) - 1
	}
	if recovering {
		// A truncation a crash interrupted left tidwall's START or END
		// file: let tidwall finish it now, and take its word for the index.
		w, err := s.openWAL()
		if err != nil {
			return nil, nil, err
		}
		s.w, s.last = w, lastIndexOf(w)
	}
	return s, repair, nil
}

// open opens the tidwall log if it is not open. tidwall must find the
// newest index this StateLog knows: anything else means the files changed
// under it.
func (s *StateLog) open() error {
	s.lastUse = monoNow()
	if s.w != nil {
		return nil
	}
	if s.closed {
		return fmt.Errorf("state log %s: %w", s.dir, wal.ErrClosed)
	}
	// Release cuts the zeros, but if that failed they are still there,
	// and tidwall must not read them.
	if err := s.trimZeros(); err != nil {
		return err
	}
	w, err := s.openWAL()
	if err != nil {
		return err
	}
	s.newSegment() // tidwall may have created or renamed the newest file
	if got := lastIndexOf(w); got != s.last {
		return errors.Join(fmt.Errorf("%w: state log %s: tidwall/wal finds last index %d, %d expected", ErrCorrupt, s.dir, got, s.last), w.Close())
	}
	s.w = w
	return nil
}

func (s *StateLog) openWAL() (*wal.Log, error) {
	w, err := wal.Open(s.dir, &wal.Options{
		NoSync:           true, // we fsync once per group commit, in Sync
		SegmentSize:      StateLogSegmentSize,
		SegmentCacheSize: 1,
		AllowEmpty:       true,
		DirPerms:         0o755,
		FilePerms:        0o644,
	})
	if err != nil {
		return nil, fmt.Errorf("open state log %s: %w", s.dir, err)
	}
	return w, nil
}

func lastIndexOf(w *wal.Log) uint64 {
	i, _ := w.LastIndex() // only fails on a closed or corrupt log, which later calls report
	return i
}

// Release closes the tidwall log if it is open and was not used (appended
// to, replayed, truncated) for idle, giving back its file and its
// in-memory tail segment; the next call that needs it reopens it. It
// reports whether it released anything. tidwall's Close fsyncs the newest
// segment: an error means that fsync failed, and entries appended since
// the last Sync may be lost (the log stays open, as tidwall leaves it).
func (s *StateLog) Release(idle time.Duration) (bool, error) {
	if s.w == nil || s.closed || monoNow()-s.lastUse < int64(idle) {
		return false, nil
	}
	if err := s.w.Close(); err != nil {
		return false, fmt.Errorf("state log %s: close: %w", s.dir, err)
	}
	s.w = nil
	if err := s.trimZeros(); err != nil {
		return true, err
	}
	return true, nil
}

// monoStart anchors monoNow.
var monoStart = time.Now()

// monoNow is the monotonic time in nanoseconds since the process started.
func monoNow() int64 { return int64(time.Since(monoStart)) }

// LastIndex returns the index of the newest entry (0 if none was ever
// written).
func (s *StateLog) LastIndex() uint64 { return s.last }

// NewestSegment returns the path of tidwall's newest segment file and how
// many of its bytes are entries: past them the file may hold preallocated
// zeros, which a copy of the log (a backup) need not take. path is ""
// when tidwall has not created a file yet.
func (s *StateLog) NewestSegment() (path string, size int64, err error) {
	path, err = s.newestPath()
	if err != nil {
		return "", 0, fmt.Errorf("state log %s: find the newest segment: %w", s.dir, err)
	}
	return path, int64(s.tailBytes), nil
}

// Append writes one entry (from EncodeEntry) without fsyncing it, and
// returns its index. Sync makes it durable.
func (s *StateLog) Append(entry []byte) (uint64, error) {
	if err := s.open(); err != nil {
		return 0, err
	}
	index := s.last + 1
	// Mirror tidwall's cycle rule: a new segment before the write if the
	// tail was over size, and after it if the write filled the tail.
	n := len(entry) + uvarintLen(uint64(len(entry)))
	before, after := s.tailBytes > StateLogSegmentSize, s.tailBytes+n >= StateLogSegmentSize
	if before || after {
		// tidwall seals the newest segment in this write: without its
		// zeros (its cycle fsyncs the file, and with it the cut).
		if err := s.trimZeros(); err != nil {
			return 0, err
		}
	}
	if err := s.injected(OpWrite, entry); err != nil {
		return 0, fmt.Errorf("state log %s: write entry %d: %w", s.dir, index, err)
	}
	if err := s.w.Write(index, entry); err != nil {
		return 0, fmt.Errorf("state log %s: write entry %d: %w", s.dir, index, err)
	}
	s.last = index
	if before {
		s.tailBytes, s.dirDirty = 0, true
	}
	s.tailBytes += n
	if s.tailBytes >= StateLogSegmentSize {
		s.tailBytes, s.dirDirty = 0, true
	}
	if before || after {
		s.newSegment()
	}
	s.preallocate()
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
	// Released (not closed), tidwall has written nothing since it was
	// last closed, and its Close fsyncs.
	if s.closed {
		return fmt.Errorf("state log %s: fsync: %w", s.dir, wal.ErrClosed)
	}
	if s.w != nil {
		// Through files, not tidwall's own fsync, so that this fsync sits
		// behind the same seam as every other (tidwall writes straight to
		// the file: a descriptor of our own syncs the same pages).
		path, err := s.newestPath()
		if err == nil && path != "" {
			err = s.files.SyncFile(path)
		}
		if err != nil {
			return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
		}
	}
	if s.dirDirty {
		if err := s.injected(OpDirSync, nil); err != nil {
			return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
		}
		if err := s.files.SyncDir(s.dir); err != nil {
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
	path, err := s.newestPath()
	if err == nil && path == "" && s.w == nil && s.last == 0 {
		// Never written: tidwall has not even created a file. There is
		// nothing to make durable.
		return func() error { return nil }, nil
	}
	if err != nil || path == "" {
		return nil, fmt.Errorf("state log %s: find the newest segment: %w", s.dir, cmp.Or(err, fs.ErrNotExist))
	}
	dirDirty := s.dirDirty
	s.dirDirty = false
	return func() error {
		if err := s.injected(OpFsync, nil); err != nil {
			return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
		}
		if err := s.files.SyncFile(path); err != nil {
			return fmt.Errorf("state log %s: fsync: %w", s.dir, err)
		}
		if dirDirty {
			if err := s.injected(OpDirSync, nil); err != nil {
				return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
			}
			if err := s.files.SyncDir(s.dir); err != nil {
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
	if s.closed {
		return nil, fmt.Errorf("state log %s: %w", s.dir, wal.ErrClosed)
	}
	if after >= s.last {
		return nil, nil // nothing after it: no need to open tidwall
	}
	if err := s.open(); err != nil {
		return nil, err
	}
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
	if err := s.open(); err != nil {
		return err
	}
	first, err := s.w.FirstIndex()
	if err != nil {
		return fmt.Errorf("state log %s: %w", s.dir, err)
	}
	if index <= first {
		return nil
	}
	// tidwall may rewrite the newest segment from its memory, or keep
	// the file: either way without the zeros, so the size read below is
	// its own.
	if err := s.trimZeros(); err != nil {
		return err
	}
	if err := s.w.TruncateFront(index); err != nil {
		return fmt.Errorf("state log %s: truncate front to %d: %w", s.dir, index, err)
	}
	s.newSegment()
	// Truncating may rewrite the newest segment; resync the size mirror.
	if path, err := s.newestPath(); err == nil && path != "" {
		if st, err := os.Stat(path); err == nil {
			s.tailBytes = int(st.Size())
		}
	}
	// tidwall renames and removes files without a directory fsync; a
	// power cut could bring old segments back, which is harmless (replay
	// starts after the snapshot), but make it durable anyway.
	if err := s.files.SyncDir(s.dir); err != nil {
		return fmt.Errorf("state log %s: fsync dir: %w", s.dir, err)
	}
	return nil
}

// Close closes the log.
func (s *StateLog) Close() error {
	if s.closed && s.w == nil {
		return fmt.Errorf("state log %s: close: %w", s.dir, wal.ErrClosed)
	}
	s.closed = true
	if s.w == nil {
		return nil
	}
	if err := s.w.Close(); err != nil {
		return fmt.Errorf("state log %s: close: %w", s.dir, err)
	}
	return s.trimZeros()
}
