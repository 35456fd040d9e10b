package log

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SyncPolicy says when appended bytes are fsynced.
type SyncPolicy int

// The sync policies. The zero value is the safe one.
const (
	// SyncAlways: Append returns only after its frame is fsynced. Concurrent
	// appends share one write and one fsync (group commit).
	SyncAlways SyncPolicy = iota
	// SyncInterval: Append returns after the write; a timer fsyncs every
	// Options.SyncInterval. A power loss can lose that much acknowledged data.
	SyncInterval
	// SyncNone: Append returns after the write; fsync happens only at
	// rotation and Close. A power loss can lose any acknowledged data the
	// kernel had not yet written back. Process crashes lose nothing.
	SyncNone
)

// String returns the policy's flag spelling.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "always", "interval" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNone} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown sync policy %q (want always, interval or none)", s)
}

// Defaults for zero Options fields.
const (
	DefaultSegmentSize   = 16 << 20
	DefaultMaxRecordSize = 256 << 10
	DefaultSyncInterval  = 100 * time.Millisecond
	DefaultCompressMin   = 4 << 10
)

// maxRoundBytes caps how much one commit round gathers, which bounds the
// committer's buffers; appends beyond it wait for the next round.
const maxRoundBytes = 4 << 20

// Options configure a Log. The zero value is usable: 16 MiB segments,
// 256 KiB records, SyncAlways, s2 for payloads of 4 KiB and more.
type Options struct {
	// SegmentSize is the size at which the newest segment is sealed and a
	// new one started. A single frame larger than it gets a segment of its own.
	SegmentSize int64
	// MaxRecordSize bounds len(Meta)+len(Body) of one record.
	MaxRecordSize int
	// Sync is the fsync policy; SyncInterval uses SyncInterval.
	Sync         SyncPolicy
	SyncInterval time.Duration
	// Compression is the codec tried for appended frames whose payload is
	// at least CompressMin bytes; it is kept only when it saves ≥ 1/8.
	// Zero means CodecS2; CodecNone disables compression.
	Compression Codec
	CompressMin int
	// FS is the file system; nil means OS.
	FS FS
	// Logger receives recovery reports and background sync errors; nil
	// means slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called by the committer after every commit round
	// (for metrics). It must be fast and must not call the Log.
	OnCommit func(Commit)
	// Now returns the time stamped into new segment headers; nil means time.Now.
	Now func() time.Time
}

// Commit describes one commit round, for metrics.
type Commit struct {
	Appends  int           // Append calls served
	Records  int           // records written
	Bytes    int           // bytes written
	Synced   bool          // whether the round ended with an fsync
	SyncTime time.Duration // how long that fsync took
	Err      error         // the error returned to the round's callers
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.Compression == 0 {
		o.Compression = CodecS2
	}
	if o.CompressMin == 0 {
		o.CompressMin = DefaultCompressMin
	}
	if o.FS == nil {
		o.FS = OS
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.SegmentSize < fileHeaderSize+frameHeaderSize:
		return o, fmt.Errorf("log: segment size %d is too small", o.SegmentSize)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > MaxFramePayload-maxRecordOverhead:
		return o, fmt.Errorf("log: max record size %d out of range (1..%d)", o.MaxRecordSize, MaxFramePayload-maxRecordOverhead)
	case o.Sync < SyncAlways || o.Sync > SyncNone:
		return o, fmt.Errorf("log: unknown sync policy %d", o.Sync)
	case !o.Compression.valid():
		return o, fmt.Errorf("log: unknown codec %d", o.Compression)
	case o.SyncInterval < 0:
		return o, fmt.Errorf("log: negative sync interval %s", o.SyncInterval)
	}
	return o, nil
}

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

	// Owned by the committer goroutine.
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
}

type appendReq struct {
	rotate bool // a Rotate call, not an append
	recs   []Record
	size   int // upper bound of the encoded records
	first  uint64
	pos    Position
	err    error
	done   chan struct{}
}

var reqPool = sync.Pool{New: func() any { return &appendReq{done: make(chan struct{}, 1)} }}

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
	if err := l.closeSegmentFiles(); err != nil {
		l.closeFiles()
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	l.released.Store(true)
	return l, nil
}

// monoStart anchors monoNow.
var monoStart = time.Now()

// monoNow is the monotonic time in nanoseconds since the process started.
func monoNow() int64 { return int64(time.Since(monoStart)) }

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

// setFile installs f as seg's open file.
func (seg *segment) setFile(f File) { seg.f.Store(&f) }

// closeFile closes seg's file if it is open. The caller holds mu
// exclusively, and for the newest segment the committer is stopped.
func (seg *segment) closeFile() error {
	if p := seg.f.Swap(nil); p != nil {
		return (*p).Close()
	}
	return nil
}

// closeSegmentFiles closes every segment's file; the caller holds mu, or
// is Open, and no committer runs.
func (l *Log) closeSegmentFiles() error {
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.closeFile())
	}
	return errors.Join(errs...)
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
		l.stopCommitter()
	}
	// No committer runs, and none can start until closeMu is released:
	// the committer's fields are ours.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dirty {
		f, err := l.file(l.tail)
		if err == nil {
			err = l.syncFile(f)
		}
		if err != nil {
			return false, fmt.Errorf("release %s: fsync: %w", l.tail.path, err)
		}
		l.dirty = false
	}
	err := l.closeSegmentFiles()
	l.round, l.wbuf, l.rawBuf, l.compBuf = nil, nil, nil, nil
	l.released.Store(true)
	return true, err
}

// committer returns the running committer's channel, starting one if none
// runs. The caller holds closeMu shared, and the log is not closed.
func (l *Log) committer() chan *appendReq {
	if p := l.reqs.Load(); p != nil {
		return *p
	}
	l.startMu.Lock()
	defer l.startMu.Unlock()
	if p := l.reqs.Load(); p != nil {
		return *p
	}
	ch := make(chan *appendReq, 1024)
	l.stopped = make(chan struct{})
	l.released.Store(false)
	go l.run(ch, l.stopped)
	l.reqs.Store(&ch)
	return ch
}

// stopCommitter closes the running committer's channel and waits for it
// to serve what was sent and return. The caller holds closeMu exclusively.
func (l *Log) stopCommitter() {
	if p := l.reqs.Swap(nil); p != nil {
		close(*p)
		<-l.stopped
	}
}

func (l *Log) load() error {
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
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
	res, err := walkFrames(f, path, base, size, &b, nil)
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
	seg.lastID.Store(base - 1)
	return seg, nil
}

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

// Append writes recs as one frame and returns the id of the first (the
// others follow with no gap) and the frame's position. Each record's ID is
// overwritten with its assigned id; the other fields are stored as given. Under
// SyncAlways it returns only after the frame is fsynced; concurrent calls
// share one write and one fsync. On error nothing of recs is visible and the
// log stays usable once the cause is gone (see ErrFailed).
func (l *Log) Append(recs []Record) (first uint64, pos Position, err error) {
	if len(recs) == 0 {
		return 0, Position{}, errors.New("log: append of no records")
	}
	size := 0
	for i := range recs {
		if n := len(recs[i].Meta) + len(recs[i].Body); n > l.opts.MaxRecordSize {
			return 0, Position{}, fmt.Errorf("%w: record %d is %d bytes, limit %d", ErrTooLarge, i, n, l.opts.MaxRecordSize)
		}
		size += recordEncodedMax(&recs[i])
	}
	if size > MaxFramePayload {
		return 0, Position{}, fmt.Errorf("%w: %d records need up to %d bytes, one append holds %d", ErrTooLarge, len(recs), size, MaxFramePayload)
	}
	req := reqPool.Get().(*appendReq)
	req.recs, req.size = recs, size
	if err := l.submit(req); err != nil {
		return 0, Position{}, err
	}
	first, pos, err = req.first, req.pos, req.err
	*req = appendReq{done: req.done}
	reqPool.Put(req)
	return first, pos, err
}

// submit hands req to the committer and waits until it is served, or
// returns ErrClosed (and recycles req) if the log is closed.
func (l *Log) submit(req *appendReq) error {
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		*req = appendReq{done: req.done}
		reqPool.Put(req)
		return ErrClosed
	}
	l.committer() <- req
	l.closeMu.RUnlock()
	<-req.done
	return nil
}

// Rotate seals the newest segment and starts an empty one, if the newest
// holds any frame, so that it can be removed once its records are no
// longer needed (a queue that acked everything gives its disk space back).
func (l *Log) Rotate() error {
	req := reqPool.Get().(*appendReq)
	req.rotate = true
	if err := l.submit(req); err != nil {
		return err
	}
	err := req.err
	*req = appendReq{done: req.done}
	reqPool.Put(req)
	return err
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
	l.stopCommitter()
	l.closeMu.Unlock()
	var err error
	if l.dirty {
		f, ferr := l.file(l.tail)
		if ferr == nil {
			ferr = l.syncFile(f)
		}
		err = ferr
	}
	return errors.Join(err, l.closeFiles())
}

func (l *Log) closeFiles() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, s := range l.segs {
		errs = append(errs, s.closeFile())
		s.gone = true
	}
	l.segs = nil
	return errors.Join(errs...)
}

// run is the committer: the only goroutine that writes or fsyncs the
// newest segment. It serves reqs until the channel is closed (Close,
// Release), then closes stopped.
func (l *Log) run(reqs chan *appendReq, stopped chan struct{}) {
	defer close(stopped)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case req, ok := <-reqs:
			if !ok {
				return
			}
			// The appenders the last round released are runnable but may
			// not have sent again yet; without this pause the first one back
			// would get an fsync of its own and rounds would alternate
			// 1, N-1, 1, N-1, halving the records per fsync.
			for i := 0; i < 8 && len(reqs)+1 < l.lastAppends; i++ {
				runtime.Gosched()
			}
			if req.rotate {
				l.serveRotate(req)
				continue
			}
			round, rot := l.gather(reqs, req)
			l.commit(round)
			if rot != nil {
				l.serveRotate(rot)
			}
		case <-tick:
			if l.dirty {
				if err := l.syncTail(); err != nil {
					l.opts.Logger.Error("log: interval fsync failed", "path", l.tail.path, "err", err)
				} else {
					l.dirty = false
				}
			}
		}
	}
}

// gather collects the requests already waiting, up to maxRoundBytes: every
// one of them rides on this round's single write and fsync. A Rotate
// request ends the round and is served after it.
func (l *Log) gather(reqs chan *appendReq, first *appendReq) (round []*appendReq, rotate *appendReq) {
	round = append(l.round[:0], first)
	bytes := first.size
	for bytes < maxRoundBytes {
		select {
		case req, ok := <-reqs:
			if !ok {
				return round, nil
			}
			if req.rotate {
				return round, req
			}
			round = append(round, req)
			bytes += req.size
		default:
			return round, nil
		}
	}
	return round, nil
}

func (l *Log) serveRotate(req *appendReq) {
	req.err = nil
	if l.tail.size.Load() > fileHeaderSize {
		req.err = l.rotate(l.nextID)
	}
	req.done <- struct{}{}
}

func (l *Log) commit(round []*appendReq) {
	c := Commit{Appends: len(round)}
	l.lastAppends = len(round)
	c.Err = l.write(round, &c)
	// One huge append must not pin its buffers (the round's frames, a
	// frame's raw and compressed payload: up to a 64 MiB batch each)
	// forever. Dropped before the appenders wake, so a caller that gives
	// memory back to the system after a big batch finds them garbage.
	if cap(l.wbuf) > 2*maxRoundBytes {
		l.wbuf = nil
	}
	if cap(l.rawBuf) > 2*maxRoundBytes {
		l.rawBuf = nil
	}
	if cap(l.compBuf) > 2*maxRoundBytes {
		l.compBuf = nil
	}
	for _, req := range round {
		req.err = c.Err
		req.done <- struct{}{}
	}
	clear(round)
	l.round = round[:0]
	if l.opts.OnCommit != nil {
		l.opts.OnCommit(c)
	}
}

// write encodes the round into frames, writes them with one WriteAt at the
// tail, fsyncs per policy and publishes them to readers. On failure it cuts
// the tail back to where the round started.
func (l *Log) write(round []*appendReq, c *Commit) error {
	if l.failed != nil {
		if err := l.cutBack(l.tail, l.tail.size.Load()); err != nil {
			return fmt.Errorf("%w: %w", ErrFailed, err)
		}
		l.failed = nil
	}
	buf, frameOffs := l.encodeRound(round)
	tail := l.tail
	if tail.size.Load() > fileHeaderSize && tail.size.Load()+int64(len(buf)) > l.opts.SegmentSize {
		if err := l.rotate(l.nextID); err != nil {
			return err
		}
		tail = l.tail
	}
	start := tail.size.Load()
	for i, req := range round {
		req.pos = Position{Segment: tail.base, Offset: start + int64(frameOffs[i])}
	}
	f, err := l.file(tail)
	if err != nil {
		return fmt.Errorf("append to %s: %w", tail.path, err) // nothing written
	}
	if _, err := f.WriteAt(buf, start); err != nil {
		return l.fail(tail, start, fmt.Errorf("append to %s: %w", tail.path, err))
	}
	l.dirty = true
	if l.opts.Sync == SyncAlways {
		t0 := time.Now()
		if err := l.syncFile(f); err != nil {
			return l.fail(tail, start, fmt.Errorf("append to %s: fsync: %w", tail.path, err))
		}
		c.Synced, c.SyncTime = true, time.Since(t0)
		l.dirty = false
	}
	last := round[len(round)-1]
	lastID := last.first + uint64(len(last.recs)) - 1
	// Size before ids: a reader that sees an id as written must find its bytes.
	tail.size.Store(start + int64(len(buf)))
	tail.lastID.Store(lastID)
	l.lastID.Store(lastID)
	l.nextID = lastID + 1
	c.Bytes = len(buf)
	for _, req := range round {
		c.Records += len(req.recs)
	}
	l.stats.appends.Add(uint64(len(round)))
	l.stats.records.Add(uint64(c.Records))
	l.stats.bytes.Add(uint64(len(buf)))
	l.stats.rounds.Add(1)
	return nil
}

// encodeRound assigns ids and encodes the round's records into l.wbuf:
// consecutive requests share a frame until it would pass MaxFramePayload,
// and one request never spans two frames. frameOffs[i] is the offset in
// the buffer of request i's frame.
func (l *Log) encodeRound(round []*appendReq) (buf []byte, frameOffs []int) {
	buf = l.wbuf[:0]
	frameOffs = make([]int, len(round))
	id := l.nextID
	for i := 0; i < len(round); {
		j, size := i, 0
		for j < len(round) && (j == i || size+round[j].size <= MaxFramePayload) {
			size += round[j].size
			j++
		}
		for k := i; k < j; k++ {
			frameOffs[k] = len(buf)
			round[k].first = id
			for r := range round[k].recs {
				round[k].recs[r].ID = id
				id++
			}
		}
		buf = l.appendFrame(buf, round[i:j])
		i = j
	}
	l.wbuf = buf
	return buf, frameOffs
}

func (l *Log) appendFrame(dst []byte, reqs []*appendReq) []byte {
	raw := l.rawBuf[:0]
	first := reqs[0].first
	prevID, prevTime, count := first, int64(0), 0
	for _, req := range reqs {
		for i := range req.recs {
			r := &req.recs[i]
			raw = appendRecord(raw, r, prevID, prevTime)
			prevID, prevTime = r.ID, r.Time
			count++
		}
	}
	l.rawBuf = raw
	codec := CodecNone
	if len(raw) >= l.opts.CompressMin && l.opts.Compression != CodecNone {
		if l.skipCodec > 0 {
			l.skipCodec--
		} else {
			codec = l.opts.Compression
		}
	}
	stored, used, err := compressPayload(codec, raw, &l.compBuf)
	if err != nil {
		stored, used = raw, CodecNone // the zstd coder could not be built: store raw
	}
	if used == CodecNone && codec != CodecNone {
		// Incompressible bodies (already compressed, encrypted) would pay
		// the encoder on every frame for nothing: try again later.
		l.skipCodec = 16
	}
	codec = used
	return appendFrameBytes(dst, frameHeader{
		storedLen:  uint32(len(stored)),
		codec:      codec,
		count:      uint32(count),
		first:      first,
		span:       uint32(prevID - first),
		decodedLen: uint32(len(raw)),
	}, stored)
}

// appendFrameBytes appends header, payload and zero padding to dst.
func appendFrameBytes(dst []byte, h frameHeader, stored []byte) []byte {
	at := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst = append(dst, stored...)
	encodeFrameHeader(dst[at:at+frameHeaderSize], h, stored)
	pad := alignUp(len(stored)) - len(stored)
	return append(dst, make([]byte, pad)...)
}

// fail cuts the tail back after a failed write or fsync. If even that
// fails, the log is marked failed and every later round retries the cut
// before writing anything.
func (l *Log) fail(tail *segment, start int64, cause error) error {
	if err := l.cutBack(tail, start); err != nil {
		l.failed = err
		return fmt.Errorf("%w (and the tail could not be cut back: %w)", cause, err)
	}
	return cause
}

func (l *Log) cutBack(tail *segment, size int64) error {
	f, err := l.file(tail)
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", tail.path, size, err)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s to %d: %w", tail.path, size, err)
	}
	if err := l.syncFile(f); err != nil {
		return fmt.Errorf("fsync %s after truncate: %w", tail.path, err)
	}
	l.dirty = false
	return nil
}

// rotate seals the newest segment and starts a new one at base.
func (l *Log) rotate(base uint64) error {
	old := l.tail
	if l.dirty {
		if err := l.syncTail(); err != nil {
			return fmt.Errorf("seal %s: %w", old.path, err)
		}
		l.dirty = false
	}
	seg, err := l.createSegment(base)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old.sealed = true
	l.segs = append(l.segs, seg)
	l.mu.Unlock()
	l.tail = seg
	return nil
}

// syncTail fsyncs the newest segment; the caller is the committer (or
// holds closeMu exclusively with no committer running).
func (l *Log) syncTail() error {
	f, err := l.file(l.tail)
	if err != nil {
		return err
	}
	return l.syncFile(f)
}

func (l *Log) syncFile(f File) error {
	t0 := time.Now()
	err := f.Sync()
	l.stats.syncNanos.Add(int64(time.Since(t0)))
	if err == nil {
		l.stats.fsyncs.Add(1)
	}
	return err
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
	i, seg := l.find(base)
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
	return errors.Join(seg.closeFile(), l.fs.SyncDir(l.dir))
}

// find returns the segment with the given base; the caller holds mu.
func (l *Log) find(base uint64) (int, *segment) {
	i, ok := slices.BinarySearchFunc(l.segs, base, func(s *segment, b uint64) int { return cmpUint(s.base, b) })
	if !ok {
		return i, nil
	}
	return i, l.segs[i]
}

// holding returns the segment whose id range holds id, or nil; the caller
// holds mu.
func (l *Log) holding(id uint64) *segment {
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
