package queue

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Compaction gives the message log's disk space back. Each run walks the
// sealed segments oldest first, removes those whose messages are all done
// and rewrites those with under half of their records live, so that in
// steady state the sealed segments take at most about twice the live data.
//
// Work per run is budgeted in bytes, not segments: a rewrite costs the
// bytes it reads, a removal or a census (counting a file's records) a
// small fixed share. The budget is budgetFactor times what was appended
// since the last run, and never under one segment. Churn seals segments at
// the write rate, and each appended byte costs compaction at most about
// twice itself over its life (a rewrite reads it once; a rewritten file
// that is again mostly dead is at most half of it, and so on), so with a
// factor of three compaction always catches up, and a backlog left from
// before a restart still drains at a segment or more per run. A run stops
// once its budget is spent, so it takes time in proportion to what the
// writers did since the last one, never an unbounded pause; and a run
// that finds little to do costs little, as a segment whose live count
// stands still is scanned less and less often.
//
// Decisions are made against durable state only: the events that made
// messages done are fsynced (q.commit(seq, true)) before their records go.
// A sealed segment is never changed in place (log.Rewrite writes a new
// file, fsyncs it, renames it over and fsyncs the directory), ids are kept,
// and the new offsets go into the table under mu. No disk I/O happens
// under mu.
const (
	budgetFactor = 3
	// A removal costs a directory fsync and a census a few preads: each is
	// charged a sixteenth of a segment, which bounds them per run (a purged
	// queue's segments go over a few runs, not in one long pause).
	fixedCostShare = 16
	// A segment whose live count does not change is scanned again after
	// a wait that doubles up to this many runs: scanning costs CPU under mu
	// in proportion to the segment's ids, and old segments holding long
	// delayed messages would otherwise be scanned every run for nothing.
	maxScanWait = 16
	// scanStretch bounds the ids scanned per hold of mu.
	scanStretch = 1 << 14
)

// compactor is one queue's compaction bookkeeping between runs. Only the
// maintenance goroutine uses it (one run at a time, under the broker's
// maintMu), so it needs no lock.
type compactor struct {
	appended uint64 // q.log.Stats().Bytes at the last run
	// known is the newest segment's base at the first run. That segment
	// and every later one were never sealed before, so no earlier process
	// rewrote them: their files hold every id of their range, unless this
	// compactor rewrote them (and then segs says so). An older segment's
	// records are counted from its file (log.Records) when needed.
	known uint64
	segs  map[uint64]*segState
	keep  []uint64 // live-id bitmap of the segment being scanned
}

// segState is what a compactor knows of one sealed segment.
type segState struct {
	size    int64 // the file size the rest describes
	records int   // records in the file; -1 until counted
	live    int   // live ids at the last scan; -1 before the first
	wait    int   // runs to skip before the next scan
	backoff int   // the next wait if the live count stays the same
}

// compact is one run of compaction (see the top of this file).
func (q *Queue) compact() error {
	c := &q.compaction
	segs := q.log.Segments()
	segSize := q.b.opts.SegmentSize
	appended := q.log.Stats().Bytes
	budget := max(segSize, budgetFactor*int64(appended-c.appended))
	fixed := max(segSize/fixedCostShare, 1)
	c.appended = appended
	if c.segs == nil {
		c.segs = map[uint64]*segState{}
		c.known = segs[len(segs)-1].Base
	}
	if len(c.segs) > 0 { // forget segments that are gone
		present := make(map[uint64]bool, len(segs))
		for _, s := range segs {
			present[s.Base] = true
		}
		for base := range c.segs {
			if !present[base] {
				delete(c.segs, base)
			}
		}
	}

	// Below the table's first id everything is done, and a queue with no
	// live message has nothing to keep: segments known dead that way skip
	// their wait, so acking everything gives the disk back at once.
	q.mu.Lock()
	first := q.t.FirstID()
	empty := q.t.Live() == 0 && q.inflight == 0
	// An ordered queue's deduplication window is rebuilt from the log on
	// open: the segments holding its records stay as they are.
	keepFrom := uint64(math.MaxUint64)
	if q.ordered != nil {
		q.ordered.expire(q.now())
		if f := q.ordered.dedupFloor(); f != 0 {
			keepFrom = f
		}
	}
	q.mu.Unlock()

	var errs []error
	var spent int64
	for _, s := range segs {
		if !s.Sealed || s.LastID >= keepFrom {
			continue
		}
		if spent >= budget {
			break // the rest waits for the next run
		}
		st := c.state(s)
		if st.wait > 0 && !empty && s.LastID >= first {
			st.wait--
			continue
		}
		live, seq := q.scanLive(s, c)
		prev := st.live
		st.observe(live)
		if live == 0 {
			if err := q.commit(seq, true); err != nil {
				return err
			}
			spent += fixed
			if err := q.log.Remove(s.Base); err != nil {
				errs = append(errs, err)
				continue
			}
			delete(c.segs, s.Base)
			continue
		}
		// The id range is an upper bound of the records: if half of it is
		// live, so is half of the file, and no census is needed.
		span := int(s.LastID - s.Base + 1)
		if 2*live >= span {
			continue
		}
		if st.records < 0 {
			spent += fixed
			n, err := q.log.Records(s.Base)
			if err != nil {
				// Damage: it is reported (log, spool check) and never
				// compacted; try again only after the longest wait.
				st.wait = maxScanWait
				errs = append(errs, fmt.Errorf("compact %s: %w", q.name, err))
				continue
			}
			st.records = n
		}
		if 2*live >= st.records {
			continue // at least half of it is live: rewriting gains too little
		}
		// A live count still falling is a segment being consumed: it may
		// be all done by the next run, and copying it now would write what
		// is about to die. Wait, unless under a quarter is left (a small
		// copy).
		if prev > live && 4*live >= st.records {
			continue
		}
		if err := q.commit(seq, true); err != nil {
			return err
		}
		spent += s.Size
		if err := q.rewrite(s, c, st); err != nil {
			errs = append(errs, err)
		}
	}
	// Everything acked: seal the active segment too, so the next run can
	// remove it and disk use returns to near zero.
	tail := segs[len(segs)-1]
	q.mu.Lock()
	idle := q.t.Live() == 0 && q.inflight == 0 && tail.LastID >= tail.Base
	q.mu.Unlock()
	if idle {
		errs = append(errs, q.log.Rotate())
	}
	return errors.Join(errs...)
}

// state returns what c knows of the sealed segment s, starting afresh if
// its file is not the one c knew (then its records must be counted).
func (c *compactor) state(s log.SegmentInfo) *segState {
	st := c.segs[s.Base]
	switch {
	case st == nil:
		st = &segState{size: s.Size, records: -1, live: -1}
		if s.Base >= c.known {
			st.records = int(s.LastID - s.Base + 1)
		}
		c.segs[s.Base] = st
	case st.size != s.Size: // rewritten, but c missed the outcome
		*st = segState{size: s.Size, records: -1, live: -1}
	}
	return st
}

// observe records a scan's live count and when to scan next: at the next
// run while the count moves, after a doubling wait while it does not.
func (st *segState) observe(live int) {
	if live != st.live {
		st.wait, st.backoff = 0, 1
	} else {
		st.wait, st.backoff = st.backoff, min(2*st.backoff, maxScanWait)
	}
	st.live = live
}

// scanLive marks in c.keep the ids of s that are not done (an id the table
// has not seen yet may be an enqueue in flight: it counts as live) and
// returns how many there are, and the seq that covers every done it saw:
// done is final, so a message seen done stays done, and one that becomes
// done during the scan is only kept one run longer. mu is taken per
// stretch of ids, not for the whole segment.
func (q *Queue) scanLive(s log.SegmentInfo, c *compactor) (live int, seq uint64) {
	n := int(s.LastID - s.Base + 1)
	words := (n + 63) / 64
	c.keep = slices.Grow(c.keep[:0], words)[:words]
	clear(c.keep)
	for from := 0; ; from += scanStretch {
		to := min(from+scanStretch, n)
		q.mu.Lock()
		start := from
		if f := q.t.FirstID(); f > s.Base { // ids below it are done: skip them unread
			start = max(start, int(min(f-s.Base, uint64(to))))
		}
		for i := start; i < to; i++ {
			if q.t.Get(s.Base+uint64(i)).State != index.StateDone {
				c.keep[i/64] |= 1 << (i % 64)
				live++
			}
		}
		if to == n {
			seq = q.seq
			q.mu.Unlock()
			return live, seq
		}
		q.mu.Unlock()
	}
}

// rewrite copies the records of s marked in c.keep into a new file, swaps
// it in, and moves their offsets in the table. The swap (a rename and a
// directory fsync) happens before mu is taken: until the offsets are set,
// a reader holding an old one finds its record by the walk a stale hint
// costs (log.Cursor.ReadAt), so nobody waits on the disk under mu.
func (q *Queue) rewrite(s log.SegmentInfo, c *compactor, st *segState) error {
	keep := func(id uint64) bool {
		i := id - s.Base
		if id < s.Base || i >= uint64(len(c.keep))*64 {
			return true // not ours to judge: never drop it
		}
		return c.keep[i/64]&(1<<(i%64)) != 0
	}
	rw, err := q.log.Rewrite(s.Base, keep, log.RewriteOptions{})
	if err != nil {
		st.wait = maxScanWait // damage (or I/O): not again at every run
		return fmt.Errorf("compact %s: %w", q.name, err)
	}
	if err := rw.Commit(); err != nil {
		// The file may or may not have been swapped: count it again.
		st.records, st.size = -1, -1
		return fmt.Errorf("compact %s: %w", q.name, err)
	}
	q.mu.Lock()
	for _, m := range rw.Moved {
		q.t.SetOffset(m.ID, uint32(m.Pos.Offset))
	}
	q.mu.Unlock()
	*st = segState{size: rw.NewSize, records: len(rw.Moved), live: len(rw.Moved), backoff: 1}
	return nil
}
