package log

import (
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Record is one entry of the log. The log gives the bytes no meaning: the
// queue layer decides what Flags and Meta say.
type Record struct {
	ID    uint64 // assigned by Append (ignored on input), from 1, never reused
	Time  int64  // caller's timestamp, unix nanoseconds
	Flags uint8
	Meta  []byte
	Body  []byte
}

// Position is where a record's frame starts. Keeping it lets Cursor.ReadAt
// fetch a record with one read instead of walking the segment's headers.
type Position struct {
	Segment uint64 // base id of the segment
	Offset  int64  // offset of the frame in the segment file
}

// Problem is a damaged byte range found by Open, Verify or an Iterator.
type Problem struct {
	Path    string
	Segment uint64
	Offset  int64
	Length  int64
	Reason  string
	// TornTail marks damage at the end of the newest segment with no valid
	// frame after it: a write that never completed, so never acknowledged.
	// Open cuts it off; anything else is corruption and is left in place.
	TornTail bool
}

func (p Problem) String() string {
	kind := "corrupt"
	if p.TornTail {
		kind = "torn tail"
	}
	return fmt.Sprintf("%s: %s at offset %d (%d bytes): %s", p.Path, kind, p.Offset, p.Length, p.Reason)
}

// Recovery is what Open found and did.
type Recovery struct {
	Truncated  []Problem // torn tails cut off the newest segment
	Corrupt    []Problem // damaged ranges left in place, never served
	Recreated  []string  // newest segment files whose header was torn at rotation
	TempsFound []string  // leftover temp files of interrupted rewrites, removed
}

// Clean reports whether Open found nothing to repair or report.
func (r Recovery) Clean() bool {
	return len(r.Truncated)+len(r.Corrupt)+len(r.Recreated)+len(r.TempsFound) == 0
}

// Stats are running totals since Open.
type Stats struct {
	Appends  uint64 // Append calls that succeeded
	Records  uint64 // records appended
	Bytes    uint64 // bytes written by appends
	Rounds   uint64 // commit rounds that wrote
	Fsyncs   uint64 // fsyncs of segment files
	SyncTime time.Duration
}

// Log is one directory of segment files. Append, Read, Iter, Cursor,
// Segments, Remove, Rewrite and Release are safe for concurrent use.
//
// A Log holds no file open and runs no goroutine until it is used: segment
// files open on their first read or write, and the committer goroutine
// starts with the first Append. Release (called when the log has been idle
// a while) closes the files, stops the committer and frees its buffers, so
// an idle log costs a few hundred bytes; the next use reopens what it needs.
type Log struct {
	dir  string
	opts Options
	fs   FS

	// mu guards segs and each segment's sealed flag, and the closing of
	// segment files. Readers hold it shared for the length of a pread (a
	// file a reader finds closed it opens, see file), so Remove, Rewrite
	// and Release can never close a file under a read.
	mu   sync.RWMutex
	segs []*segment

	// closeMu orders Append's send against Close and Release: Append
	// sends while holding it shared; Close and Release take it exclusively
	// before closing the committer's channel.
	closeMu sync.RWMutex
	closed  bool
	// reqs is the running committer's channel, nil while none runs;
	// stopped is closed when that committer has returned. A committer
	// starts under closeMu shared plus startMu, and stops (Close,
	// Release) under closeMu exclusive.
	reqs    atomic.Pointer[chan *appendReq]
	startMu sync.Mutex
	stopped chan struct{}
	// lastUse is when a file was last read or written (monoNow);
	// released is set by Release and cleared by any use that opens a file
	// or starts the committer.
	lastUse  atomic.Int64
	released atomic.Bool

	lastID atomic.Uint64 // highest id appended and published
	// rewrites counts committed rewrites; marked is the caller's Mark
	// (see Changes).
	rewrites atomic.Uint64
	marked   atomic.Uint64
	recovery Recovery
	stats    struct {
		appends, records, bytes, rounds, fsyncs atomic.Uint64
		syncNanos                               atomic.Int64
	}

	// Owned by the committer goroutine (see commit.go); Close and Release
	// use them only after stopping it.
	tail        *segment
	nextID      uint64
	dirty       bool  // written but not fsynced (SyncInterval, SyncNone)
	failed      error // sticky: set when a bad tail could not be cut back
	round       []*appendReq
	lastAppends int    // requests in the last round
	skipCodec   int    // frames left to store raw after compression did not pay
	wbuf        []byte // the round's encoded frames
	rawBuf      []byte // one frame's raw payload
	compBuf     []byte // one frame's compressed payload
}

// Open opens (creating if needed) the log in dir. It repairs a torn tail of
// the newest segment (truncate + fsync), reports damage elsewhere without
// touching it (see Recovery), and fails with ErrUnsupportedVersion for a
// segment of an unknown format version.
func Open(dir string, opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, fs: opts.FS}
	l.marked.Store(math.MaxUint64) // no mark yet
	if err := l.load(); err != nil {
		l.closeFiles()
		return nil, err
	}
	l.tail = l.segs[len(l.segs)-1]
	l.nextID = l.tail.lastID.Load() + 1
	l.lastID.Store(l.nextID - 1)
	l.report()
	// Nothing stays open until it is used: a data directory of thousands
	// of queues that are mostly idle holds few files.
	if err := l.closeSegmentFilesLocked(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.released.Store(true)
	return l, nil
}

// report logs what recovery found, once, at Open.
func (l *Log) report() {
	r := l.recovery
	for _, p := range r.Truncated {
		l.opts.Logger.Warn("log: cut off torn tail (an unacknowledged write)", "path", p.Path, "offset", p.Offset, "bytes", p.Length, "reason", p.Reason)
	}
	for _, p := range r.Corrupt {
		l.opts.Logger.Error("log: corrupt range left in place and never served", "path", p.Path, "offset", p.Offset, "bytes", p.Length, "reason", p.Reason)
	}
	for _, path := range r.Recreated {
		l.opts.Logger.Warn("log: recreated segment whose header was torn at rotation", "path", path)
	}
	for _, name := range r.TempsFound {
		l.opts.Logger.Info("log: removed leftover temp file of an interrupted rewrite", "name", name)
	}
}

// Close waits for pending appends, fsyncs and closes every file. Calls
// after Close return ErrClosed.
func (l *Log) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.stopCommitterLocked()
	l.closeMu.Unlock()
	// closed is set, so no committer can start again: its fields are ours.
	var err error
	if l.dirty {
		err = l.syncTail()
	}
	if err == nil {
		err = l.trimTail()
	}
	return errors.Join(err, l.closeFiles())
}

// Release gives back what an idle log holds, if it has not been used for
// idle: it stops the committer, fsyncs what a relaxed sync policy left
// unsynced, closes every segment file and frees the write buffers. It
// reports whether it released anything. The log stays fully usable:
// the next Append starts the committer again, and a read reopens the one
// file it needs. Release waits for an append under way but leaves a busy
// log alone.
func (l *Log) Release(idle time.Duration) (bool, error) {
	if l.released.Load() || monoNow()-l.lastUse.Load() < int64(idle) {
		return false, nil
	}
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed {
		return false, ErrClosed
	}
	if p := l.reqs.Load(); p != nil {
		if len(*p) > 0 {
			return false, nil // appends are waiting: not idle after all
		}
		l.stopCommitterLocked()
	}
	// No committer runs, and none can start until closeMu is released:
	// the committer's fields are ours.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirty {
		if err := l.syncTail(); err != nil {
			return false, fmt.Errorf("release %s: fsync: %w", l.tail.path, err)
		}
		l.dirty = false
	}
	if err := l.trimTail(); err != nil {
		return false, fmt.Errorf("release %s: %w", l.tail.path, err)
	}
	err := l.closeSegmentFilesLocked()
	l.round, l.wbuf, l.rawBuf, l.compBuf = nil, nil, nil, nil
	l.released.Store(true)
	return true, err
}

// closeFiles closes every segment file and forgets the segments, marking
// them gone for any reader still holding one; for Close and a failed Open.
// It takes mu itself.
func (l *Log) closeFiles() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.closeFileLocked())
		s.gone = true
	}
	l.segs = nil
	return errors.Join(errs...)
}

// monoStart anchors monoNow.
var monoStart = time.Now()

// monoNow is the monotonic time in nanoseconds since the process started.
func monoNow() int64 { return int64(time.Since(monoStart)) }

// Recovery returns what Open repaired and found.
func (l *Log) Recovery() Recovery { return l.recovery }

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// LastID returns the highest id appended so far (0 if none). Records up to
// it are readable.
func (l *Log) LastID() uint64 { return l.lastID.Load() }

// Changes returns how many times the records changed since Open: appends
// and committed rewrites (which move records). A caller that keeps state
// derived from the records and their positions (an index snapshot) can
// tell from it whether that state may have gone stale: it marks the
// Changes value its state covers with Mark, and compares later.
func (l *Log) Changes() uint64 { return l.stats.appends.Load() + l.rewrites.Load() }

// Mark records c, a Changes value, for the caller; Marked returns it
// (math.MaxUint64 before any Mark).
func (l *Log) Mark(c uint64) { l.marked.Store(c) }

// Marked returns the last value given to Mark.
func (l *Log) Marked() uint64 { return l.marked.Load() }

// Stats returns running totals since Open.
func (l *Log) Stats() Stats {
	return Stats{
		Appends:  l.stats.appends.Load(),
		Records:  l.stats.records.Load(),
		Bytes:    l.stats.bytes.Load(),
		Rounds:   l.stats.rounds.Load(),
		Fsyncs:   l.stats.fsyncs.Load(),
		SyncTime: time.Duration(l.stats.syncNanos.Load()),
	}
}
