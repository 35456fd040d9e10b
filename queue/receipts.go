package queue

import (
	"fmt"
	"time"

	"github.com/spoolq/spool/index"
)

// What a consumer does with a lease: ack, nack, extend, fail.

// commitMode says when a receipt operation returns.
type commitMode int

const (
	// commitLater: once applied; the events are written and fsynced with
	// the next commit (an extend, like a lease: losing one only shortens
	// a lease).
	commitLater commitMode = iota
	// commitSoon: once written, with their fsync started (AckSoon).
	commitSoon
	// commitDurable: once fsynced, under sync=always.
	commitDurable
)

// receiptOp applies fn to each receipt that names a live lease, under one
// lock, and commits the events as mode says. errs[i] is receipt i's
// outcome.
func (q *Queue) receiptOp(receipts []Receipt, mode commitMode, fn func(r Receipt, now int64)) ([]error, error) {
	if len(receipts) == 0 {
		return nil, fmt.Errorf("%w: no receipts", ErrInvalid)
	}
	if err := q.lockOpen(); err != nil {
		return nil, err
	}
	now := q.now()
	q.processDueLocked(now)
	errs := make([]error, len(receipts))
	for i, r := range receipts {
		if errs[i] = q.checkReceiptLocked(r); errs[i] == nil {
			fn(r, now)
		}
	}
	seq := q.seq
	q.armTimerLocked()
	q.mu.Unlock()
	var err error
	switch mode {
	case commitSoon:
		err = q.commitSoon(seq)
	case commitDurable:
		err = q.commit(seq, true)
	}
	if err != nil {
		return nil, err
	}
	return errs, nil
}

// checkReceiptLocked says whether r names a live lease. A receipt for a message
// that is finished (acked, purged, removed, dead-lettered) is stale, like
// one whose lease ran out: its lease is over, and the worker holding it
// learns that (409), not that the message never was (404). Only an id
// never enqueued, or an attempt not reached yet, is not found.
func (q *Queue) checkReceiptLocked(r Receipt) error {
	if r.ID == 0 || r.Attempt == 0 {
		return fmt.Errorf("%w: receipt %s", ErrInvalid, r)
	}
	e := q.t.Get(r.ID)
	switch {
	case e.State == index.StateDone:
		return fmt.Errorf("%w: %s (message %d is finished: acked, purged or removed)", ErrStaleReceipt, r, r.ID)
	case q.sub != nil && e.State == index.StateNone && r.ID <= q.publishedNow() && r.Attempt <= q.t.AttemptFloor():
		// Unread now, at an attempt reached before the last seek.
		return fmt.Errorf("%w: %s (message %d was not leased since the subscription's last seek)", ErrStaleReceipt, r, r.ID)
	case r.ID > q.t.MaxID() || e.State == index.StateNone:
		return fmt.Errorf("%w: %s has no message %d", ErrNotFound, q.name, r.ID)
	case e.State == index.StateLeased && e.Attempts == r.Attempt:
		return nil
	case r.Attempt > e.Attempts:
		return fmt.Errorf("%w: message %d was never leased as attempt %d", ErrNotFound, r.ID, r.Attempt)
	}
	return fmt.Errorf("%w: %s (message %d is %s, attempt %d)", ErrStaleReceipt, r, r.ID, e.State, e.Attempts)
}

// Ack finishes leased messages. errs[i] is receipt i's outcome
// (ErrStaleReceipt, ErrNotFound); err is a failure of the whole call.
func (q *Queue) Ack(receipts []Receipt) (errs []error, err error) {
	return q.live().ack(receipts, commitDurable)
}

// AckSoon is Ack for a protocol whose ack has no reply to hold back
// (miniqueue's): it returns once the acks are applied and written to the
// state log, so the process dying cannot undo them, and starts their
// fsync without waiting for it. Only a power cut before that fsync ends
// (a round starts at most a millisecond after the ack, soonPace) can
// undo them; the
// messages are then delivered again, which at-least-once allows. A
// consumer that acks soon and takes its next message at once shares
// fsyncs with itself.
func (q *Queue) AckSoon(receipts []Receipt) (errs []error, err error) {
	return q.live().ack(receipts, commitSoon)
}

func (q *Queue) ack(receipts []Receipt, mode commitMode) ([]error, error) {
	return q.receiptOp(receipts, mode, func(r Receipt, _ int64) {
		q.applyLocked(index.Event{Type: index.EvAck, ID: r.ID}, 0) // checkReceipt: a live lease
		q.stats.acked.Add(1)
	})
}

// Nack returns leased messages to the queue, or, for a lease that was the
// last allowed attempt, sends the message dead.
func (q *Queue) Nack(receipts []Receipt, o NackOptions) (errs []error, err error) {
	return q.live().nack(receipts, o, commitDurable)
}

// NackSoon is Nack returning before the fsync, as AckSoon does. A nack
// that a power cut undoes leaves the lease to run out instead.
func (q *Queue) NackSoon(receipts []Receipt, o NackOptions) (errs []error, err error) {
	return q.live().nack(receipts, o, commitSoon)
}

func (q *Queue) nack(receipts []Receipt, o NackOptions, mode commitMode) ([]error, error) {
	if o.Delay < 0 || o.Delay > MaxDelay {
		return nil, fmt.Errorf("%w: delay %s must be between 0 and %s", ErrInvalid, o.Delay, MaxDelay)
	}
	return q.receiptOp(receipts, mode, func(r Receipt, now int64) {
		q.stats.nacked.Add(1)
		if q.t.Tries(r.ID) >= q.cfg.MaxAttempts {
			q.killLocked(r.ID)
			return
		}
		var readyAt int64
		if o.Delay > 0 {
			readyAt = now + int64(o.Delay)
		}
		ev := index.Event{Type: index.EvNack, ID: r.ID, Front: o.Front, InPlace: o.InPlace, After: q.newestLocked(), Time: readyAt}
		if o.Priority != nil {
			ev.SetPriority, ev.Priority = true, *o.Priority
		}
		q.applyLocked(ev, now)
		if readyAt == 0 {
			q.notifyLocked(1)
		}
	})
}

// Extend moves leases' deadlines to now + visibility (the queue's
// visibility timeout if 0).
func (q *Queue) Extend(receipts []Receipt, visibility time.Duration) (errs []error, err error) {
	q = q.live()
	if visibility < 0 || visibility > MaxVisibility {
		return nil, fmt.Errorf("%w: visibility %s must be between 0 and %s", ErrInvalid, visibility, MaxVisibility)
	}
	return q.receiptOp(receipts, commitLater, func(r Receipt, now int64) {
		vis := visibility
		if vis == 0 {
			vis = q.cfg.VisibilityTimeout
		}
		q.applyLocked(index.Event{Type: index.EvExtend, ID: r.ID, Time: now + int64(vis)}, now)
	})
}

// Fail sends leased messages straight to dead (or the dead-letter queue).
func (q *Queue) Fail(receipts []Receipt) (errs []error, err error) {
	q = q.live()
	return q.receiptOp(receipts, commitDurable, func(r Receipt, _ int64) { q.killLocked(r.ID) })
}

// FailWithPriority is Fail that gives the messages a new priority, which
// a redrive puts them back at (beanstalkd's bury <id> <pri>).
func (q *Queue) FailWithPriority(receipts []Receipt, priority uint32) (errs []error, err error) {
	q = q.live()
	return q.receiptOp(receipts, commitDurable, func(r Receipt, _ int64) {
		q.deadLocked(index.Event{Type: index.EvDead, ID: r.ID, SetPriority: true, Priority: priority})
	})
}
