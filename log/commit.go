package log

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"
)

// The write path. Append and Rotate hand a request to the committer
// goroutine (run) and wait. Everything run calls, from gather down to
// syncTail, runs on the committer and owns the committer's fields of Log
// (tail, nextID, dirty, failed, round and the buffers) without a lock: no
// other goroutine touches them while a committer runs, and Close and
// Release touch them only after stopCommitterLocked.

// maxRoundBytes caps how much one commit round gathers, which bounds the
// committer's buffers; appends beyond it wait for the next round.
const maxRoundBytes = 4 << 20

// appendReq is one Append or Rotate call on its way to the committer,
// which fills in first, pos and err and then signals done.
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
	l.committerLocked() <- req
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

// committerLocked returns the running committer's channel, starting one
// if none runs. The caller holds closeMu (shared is enough), and the log is
// not closed: that is what keeps Close and Release from stopping the
// committer between the start and the send.
func (l *Log) committerLocked() chan *appendReq {
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

// stopCommitterLocked closes the running committer's channel and waits
// for it to serve what was sent and return. The caller holds closeMu
// exclusively, so no Append can send on the closed channel.
func (l *Log) stopCommitterLocked() {
	if p := l.reqs.Swap(nil); p != nil {
		close(*p)
		<-l.stopped
	}
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

// serveRotate serves a Rotate call: an empty newest segment is left as it
// is, since sealing it would only add an empty file.
func (l *Log) serveRotate(req *appendReq) {
	req.err = nil
	if l.tail.size.Load() > fileHeaderSize {
		req.err = l.rotate(l.nextID)
	}
	req.done <- struct{}{}
}

// commit writes one round, then releases every caller in it with the
// round's outcome and reports the round to OnCommit.
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
	if err := l.preallocate(tail, f, start+int64(len(buf))); err != nil {
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

// appendFrame encodes the records of reqs, whose ids are assigned, as one
// frame appended to dst, compressed when Options say so and it pays.
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

// preallocChunk is how far past its frames the newest segment's file is
// filled with zeros under SyncAlways: at most 256 KiB of disk per queue,
// and a fresh chunk every couple of thousand small appends.
const preallocChunk = 256 << 10

// zeroBlock is what preallocate writes, a block at a time, and what
// allZero compares with.
var zeroBlock [64 << 10]byte

// preallocate makes sure that, under SyncAlways, the newest segment's file
// runs past end, the end of the frames just written, by filling the next
// chunk with zeros. An fsync of writes into space already written, the
// file's length unchanged, need not journal a new length: on this
// project's virtio disk it took 20-30% less time than an fsync of an
// append (6.0-6.2k fsyncs/s against 4.5-5.2k). The zeros are not a
// frame (an all-zero header never parses), so a reopen ends the walk
// there without a problem (walkFrames), and the file is cut back to its
// frames when the segment is sealed, the log is closed or released, and
// at the next Open. fallocate would not do: its unwritten extents are
// converted, and journalled, as the frames land.
func (l *Log) preallocate(tail *segment, f File, end int64) error {
	if l.opts.Sync != SyncAlways || end <= tail.alloc {
		return nil
	}
	to := min(end+preallocChunk, max(l.opts.SegmentSize, end))
	for off := end; off < to; {
		n := min(int64(len(zeroBlock)), to-off)
		if _, err := f.WriteAt(zeroBlock[:n], off); err != nil {
			return fmt.Errorf("preallocate: %w", err)
		}
		off += n
	}
	tail.alloc = to
	return nil
}

// trimTail cuts the newest segment's preallocated zeros off (see
// preallocate) and fsyncs the cut. The caller is the committer, or holds
// closeMu exclusively with no committer running.
func (l *Log) trimTail() error {
	tail := l.tail
	size := tail.size.Load()
	if tail.alloc <= size {
		return nil
	}
	f, err := l.file(tail)
	if err == nil {
		err = f.Truncate(size)
	}
	if err == nil {
		err = l.syncFile(f)
	}
	if err != nil {
		return fmt.Errorf("cut preallocated space off %s: %w", tail.path, err)
	}
	tail.alloc = size
	return nil
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

// cutBack truncates tail to size and fsyncs it, so no later round can
// append after the bytes of a failed one.
func (l *Log) cutBack(tail *segment, size int64) error {
	f, err := l.file(tail)
	if err != nil {
		return fmt.Errorf("truncate %s to %d: %w", tail.path, size, err)
	}
	if err := f.Truncate(size); err != nil {
		return fmt.Errorf("truncate %s to %d: %w", tail.path, size, err)
	}
	tail.alloc = min(tail.alloc, size)
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
	// Cut before the next segment exists: a sealed segment is read to
	// its file's end, so it must never keep the zeros.
	if err := l.trimTail(); err != nil {
		return fmt.Errorf("seal %s: %w", old.path, err)
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

// syncTail fsyncs the newest segment; the caller is the committer, or
// holds closeMu exclusively with no committer running (Release, Close).
func (l *Log) syncTail() error {
	f, err := l.file(l.tail)
	if err != nil {
		return err
	}
	return l.syncFile(f)
}

// syncFile fsyncs f and counts the fsync and its time in Stats; any
// goroutine may call it.
func (l *Log) syncFile(f File) error {
	t0 := time.Now()
	err := f.Sync()
	l.stats.syncNanos.Add(int64(time.Since(t0)))
	if err == nil {
		l.stats.fsyncs.Add(1)
	}
	return err
}
