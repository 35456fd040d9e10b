package queue

import (
	"errors"
	"fmt"
	"slices"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// compact removes sealed segments whose messages are all done and
// rewrites, at most one per run, a sealed segment with under a quarter of
// its messages live. Decisions are made against durable state only: the
// events that made messages done are fsynced before their records go.
func (q *Queue) compact() error {
	var errs []error
	rewrote := false
	for _, s := range q.log.Segments() {
		if !s.Sealed {
			continue
		}
		q.mu.Lock()
		live := q.liveIDs(s.Base, s.LastID)
		seq := q.seq
		q.mu.Unlock()
		total := int(s.LastID - s.Base + 1)
		switch {
		case live == nil:
			if err := q.commit(seq, true); err != nil {
				return err
			}
			errs = append(errs, q.log.Remove(s.Base))
		// A segment at most a quarter full was rewritten already (or is a
		// small one sealed early): leave it until all of it is done.
		case !rewrote && len(live)*4 < total && s.Size > q.b.opts.SegmentSize/4:
			rewrote = true
			if err := q.commit(seq, true); err != nil {
				return err
			}
			errs = append(errs, q.rewrite(s.Base, live))
		}
	}
	// Everything acked: seal the active segment too, so the next run can
	// remove it and disk use returns to near zero.
	segs := q.log.Segments()
	tail := segs[len(segs)-1]
	q.mu.Lock()
	idle := q.t.Live() == 0 && q.inflight == 0 && tail.LastID >= tail.Base
	q.mu.Unlock()
	if idle {
		errs = append(errs, q.log.Rotate())
	}
	return errors.Join(errs...)
}

// liveIDs returns the ids in [from, to] that are not done (an id the
// table has not seen yet may be an enqueue in flight: it counts as live),
// or nil if there are none. The caller holds mu.
func (q *Queue) liveIDs(from, to uint64) []uint64 {
	var live []uint64
	for id := max(from, q.t.FirstID()); id <= to; id++ {
		if q.t.Get(id).State != index.StateDone {
			live = append(live, id)
		}
	}
	return live
}

func (q *Queue) rewrite(base uint64, live []uint64) error {
	keep := func(id uint64) bool {
		_, found := slices.BinarySearch(live, id)
		return found
	}
	rw, err := q.log.Rewrite(base, keep, log.RewriteOptions{})
	if err != nil {
		return fmt.Errorf("compact %s: %w", q.name, err)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := rw.Commit(); err != nil {
		return fmt.Errorf("compact %s: %w", q.name, err)
	}
	for _, m := range rw.Moved {
		q.t.SetOffset(m.ID, uint32(m.Pos.Offset))
	}
	return nil
}
