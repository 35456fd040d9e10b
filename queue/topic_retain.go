package queue

import (
	"errors"
	"fmt"
	"math"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// A topic's maintenance: its subscriptions' (as queues'), then retention,
// which removes whole sealed segments, oldest first, never rewriting one
// (so a record's offset never changes, which subscriptions rely on):
//
//   - at once, a segment every subscription has finished (a topic with no
//     subscription keeps its messages for its retention only);
//   - a segment whose newest message is older than the retention, and the
//     oldest ones while the log is over max_bytes, finished or not: a slow
//     subscription skips what it had not finished (Skipped, and
//     spool_subscription_skipped_total).
//
// Before a segment goes, each subscription's skip (or its finished state)
// is made durable, so a restart never finds a subscription waiting on a
// removed message; if a crash falls between the two, opening the
// subscription skips what the topic no longer holds.

// topicRetention is what retention remembers between runs.
type topicRetention struct {
	// newest is each sealed segment's newest publish time (unix ns), read
	// once: sealed segments never change.
	newest map[uint64]int64
}

// maintain is one topic's share of a maintenance run.
func (t *Topic) maintain() error {
	subs := t.subscriptionList()
	var errs []error
	for _, s := range subs {
		if err := s.q.live().maintain(); err != nil && !errors.Is(err, ErrSubscriptionNotFound) {
			errs = append(errs, err)
		}
	}
	if t.b.backingUp.Load() > 0 {
		return errors.Join(errs...) // a backup is reading the segments retention would remove
	}
	if err := t.retain(subs); err != nil {
		errs = append(errs, fmt.Errorf("topic %s: retention: %w", t.name, err))
	}
	if idle := t.b.opts.IdleTimeout; idle >= 0 {
		if _, err := t.log.Release(idle); err != nil && !errors.Is(err, log.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// retain removes the sealed segments retention says go (see above).
func (t *Topic) retain(subs []*Subscription) error {
	t.mu.RLock()
	cfg, failed := t.cfg, len(t.failed)
	t.mu.RUnlock()
	segs := t.log.Segments()
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	cutoff := t.b.now() - int64(cfg.Retention)
	for _, seg := range segs {
		if !seg.Sealed || seg.LastID > t.published.Load() {
			break
		}
		// A subscription that did not open may not have finished it.
		finished := len(subs) > 0 && failed == 0
		for _, s := range subs {
			if finished && s.q.live().doneUpTo() < seg.LastID {
				finished = false
			}
		}
		expired := cfg.Retention > 0 && t.newestIn(seg) < cutoff
		over := cfg.MaxBytes > 0 && total > cfg.MaxBytes
		if !finished && !expired && !over {
			return nil
		}
		for _, s := range subs {
			if err := s.q.live().skipThrough(seg.LastID); err != nil {
				return err
			}
		}
		if err := t.log.Remove(seg.Base); err != nil {
			return err
		}
		delete(t.retention.newest, seg.Base)
		total -= seg.Size
		t.b.opts.Logger.Debug("queue: topic segment removed", "topic", t.name, "base", seg.Base, "last", seg.LastID,
			"finished", finished, "expired", expired, "over_max_bytes", over)
	}
	return nil
}

// newestIn returns when the newest message of a sealed segment was
// published. One that cannot be read is never removed by time (by bytes
// it still is), and says so once.
func (t *Topic) newestIn(seg log.SegmentInfo) int64 {
	if at, ok := t.retention.newest[seg.Base]; ok {
		return at
	}
	at := int64(math.MaxInt64)
	if seg.LastID >= seg.Base {
		rec, err := t.log.Read(seg.LastID)
		if err != nil {
			t.b.opts.Logger.Warn("queue: cannot read a topic segment's newest message; retention by time leaves the segment", "topic", t.name, "segment", seg.Path, "err", err)
		} else {
			at = rec.Time
		}
	}
	if t.retention.newest == nil {
		t.retention.newest = map[uint64]int64{}
	}
	t.retention.newest[seg.Base] = at
	return at
}

// doneUpTo returns the id up to which a subscription has finished every
// message: its read position, or just below its oldest live message.
func (q *Queue) doneUpTo() uint64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	done := q.t.ReadUpTo()
	q.t.Scan(0, index.StateNone, func(id uint64, _ index.Entry) bool {
		done = min(done, id-1)
		return false
	})
	return done
}

// skipThrough skips every message of the subscription up to upTo that it
// has not finished, and returns once that, and every event before it, is
// durable.
func (q *Queue) skipThrough(upTo uint64) error {
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.skipRemovedLocked(upTo + 1)
	q.sub.dropAhead()
	seq := q.seq
	q.mu.Unlock()
	return q.commit(seq, true)
}
