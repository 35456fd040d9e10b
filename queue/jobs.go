package queue

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/spoolq/spool/index"
)

// Operations on one message by its id, beside Receive's leases and the
// receipt operations: what beanstalkd's job commands need (peek <id>,
// peek-ready, peek-delayed, delete of an unreserved job, kick, kick-job,
// reserve-job, stats-tube's urgent count). They are a queue's: a
// subscription's messages past its read position are not in its table,
// so each returns ErrInvalid there.

// queueOnly is the error of a by-id operation on a subscription.
func (q *Queue) queueOnly(op string) error {
	if q.sub != nil {
		return fmt.Errorf("%w: %s is a queue's operation; %s is a subscription", ErrInvalid, op, q.name)
	}
	return nil
}

// lockQueue is lockOpen for the by-id operations: the queue open, not a
// subscription, and what is due processed.
func (q *Queue) lockQueue(op string) error {
	if err := q.queueOnly(op); err != nil {
		return err
	}
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.processDueLocked(q.now())
	return nil
}

// notFound is ErrNotFound for message id.
func (q *Queue) notFound(id uint64) error {
	return fmt.Errorf("%w: %s has no message %d", ErrNotFound, q.name, id)
}

// Get returns message id in whichever state it is (ready, delayed,
// leased or dead), as Peek shows it; ErrNotFound if the queue does not
// hold it.
func (q *Queue) Get(id uint64) (Message, error) {
	q = q.live()
	if err := q.lockQueue("get"); err != nil {
		return Message{}, err
	}
	e := q.t.Get(id)
	pri := q.t.Priority(id)
	q.mu.Unlock()
	if !live(e.State) {
		return Message{}, q.notFound(id)
	}
	return q.readEntry(id, e, pri)
}

func live(s index.State) bool { return s != index.StateNone && s != index.StateDone }

// NextReady returns the id and priority of the message the next Receive
// would lease, without its body; ok is false when none is ready.
func (q *Queue) NextReady() (id uint64, priority uint32, ok bool, err error) {
	q = q.live()
	if err := q.lockQueue("next ready"); err != nil {
		return 0, 0, false, err
	}
	defer q.mu.Unlock()
	id, ok = q.t.NextReady()
	if !ok {
		return 0, 0, false, nil
	}
	return id, q.t.Priority(id), true, nil
}

// PeekReady returns the message the next Receive would lease, leasing
// nothing; ErrNotFound when none is ready.
func (q *Queue) PeekReady() (Message, error) {
	return q.peekNext("peek ready", func(t *index.Table) (uint64, bool) { return t.NextReady() })
}

// PeekDelayed returns the delayed message that becomes ready first;
// ErrNotFound when none is delayed.
func (q *Queue) PeekDelayed() (Message, error) {
	return q.peekNext("peek delayed", func(t *index.Table) (uint64, bool) {
		id, _, ok := t.NextDelayed()
		return id, ok
	})
}

func (q *Queue) peekNext(op string, next func(*index.Table) (uint64, bool)) (Message, error) {
	q = q.live()
	if err := q.lockQueue(op); err != nil {
		return Message{}, err
	}
	id, ok := next(q.t)
	e, pri := q.t.Get(id), q.t.Priority(id)
	q.mu.Unlock()
	if !ok {
		return Message{}, fmt.Errorf("%w: %s: none to %s", ErrNotFound, q.name, op)
	}
	return q.readEntry(id, e, pri)
}

// Remove finishes messages that are not leased (ready, delayed or dead),
// by id, as an ack would, and returns once that is durable (under
// Sync=always). errs[i] is ids[i]'s outcome: ErrNotFound for a message
// the queue does not hold, ErrLeased for one under a lease (only its
// receipt can ack it).
func (q *Queue) Remove(ids []uint64) (errs []error, err error) {
	q = q.live()
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no ids", ErrInvalid)
	}
	if err := q.lockQueue("remove"); err != nil {
		return nil, err
	}
	errs = make([]error, len(ids))
	for i, id := range ids {
		switch e := q.t.Get(id); {
		case e.State == index.StateLeased:
			errs[i] = fmt.Errorf("%w: message %d of %s", ErrLeased, id, q.name)
		case !live(e.State):
			errs[i] = q.notFound(id)
		default:
			q.applyLocked(index.Event{Type: index.EvRemove, ID: id}, 0) // live and not leased
			q.stats.removed.Add(1)
		}
	}
	q.armTimerLocked()
	seq := q.seq
	q.mu.Unlock()
	return errs, q.commit(seq, true)
}

// Kick makes message id ready now if it is dead (a redrive of that one)
// or delayed, and returns once that is durable (beanstalkd's kick-job).
// ErrNotFound if the queue holds no such message, or holds it ready or
// leased.
func (q *Queue) Kick(id uint64) error {
	q = q.live()
	if err := q.lockQueue("kick"); err != nil {
		return err
	}
	ok := q.kickLocked(id)
	seq := q.seq
	q.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s has no dead or delayed message %d", ErrNotFound, q.name, id)
	}
	return q.commit(seq, true)
}

// kickLocked makes id ready now if it is dead or delayed, and says
// whether it was. The caller holds mu.
func (q *Queue) kickLocked(id uint64) bool {
	ev := index.Event{ID: id}
	switch q.t.Get(id).State {
	case index.StateDead:
		ev.Type = index.EvRedrive
	case index.StateDelayed:
		ev.Type, ev.After = index.EvReady, q.newestLocked()
	default:
		return false
	}
	q.applyLocked(ev, 0) // in the state the event wants
	q.notifyLocked(1)
	q.armTimerLocked()
	return true
}

// KickDelayed makes up to n delayed messages ready now, those due first
// first, and returns how many, once that is durable (beanstalkd's kick
// when nothing is buried; Redrive is the kick of dead messages).
func (q *Queue) KickDelayed(n int) (int, error) {
	q = q.live()
	if err := q.lockQueue("kick"); err != nil {
		return 0, err
	}
	kicked := 0
	for kicked < n {
		id, _, ok := q.t.NextDelayed()
		if !ok {
			break
		}
		q.kickLocked(id)
		kicked++
	}
	seq := q.seq
	q.mu.Unlock()
	if kicked == 0 {
		return 0, nil
	}
	return kicked, q.commit(seq, true)
}

// LeaseID leases message id if it is ready, delayed or dead (beanstalkd's
// reserve-job), for visibility (0: the message's own lease length, else
// the queue's), and returns it as Receive would. ErrNotFound if the queue
// holds no such message; ErrLeased if it is leased already.
func (q *Queue) LeaseID(id uint64, visibility time.Duration) (Message, error) {
	return q.leaseID(id, visibility, true)
}

// LeaseReady is LeaseID of a message that must be ready: one that NextReady
// named, say, which another caller may have leased, failed or delayed
// since (then ErrLeased, or ErrNotFound: look again). It never revives a
// dead or delayed message, as LeaseID does.
func (q *Queue) LeaseReady(id uint64, visibility time.Duration) (Message, error) {
	return q.leaseID(id, visibility, false)
}

func (q *Queue) leaseID(id uint64, visibility time.Duration, anyState bool) (Message, error) {
	q = q.live()
	if visibility < 0 || visibility > MaxVisibility {
		return Message{}, fmt.Errorf("%w: visibility %s must be between 0 and %s", ErrInvalid, visibility, MaxVisibility)
	}
	// The record is read first, without the lock, so the lease is taken
	// at its own length in one event: a crash can never leave it leased
	// for the queue's length instead.
	if err := q.lockQueue("lease"); err != nil {
		return Message{}, err
	}
	e, err := q.leasableLocked(id, anyState)
	q.mu.Unlock()
	if err != nil {
		return Message{}, err
	}
	m, err := q.read(id, e.Offset)
	if err != nil {
		return Message{}, fmt.Errorf("lease %d from %s: %w", id, q.name, err)
	}
	if err := q.lockQueue("lease"); err != nil {
		return Message{}, err
	}
	again, err := q.leasableLocked(id, anyState)
	switch {
	case err != nil:
		q.mu.Unlock()
		return Message{}, err
	case again.Offset != e.Offset || again.Attempts != e.Attempts:
		q.mu.Unlock()
		return Message{}, fmt.Errorf("%w: message %d of %s changed while it was read; look again", ErrNotFound, id, q.name)
	case again.State != index.StateReady:
		q.kickLocked(id)
	}
	if e.Attempts == math.MaxUint16 {
		q.killLocked(id)
		q.mu.Unlock()
		return Message{}, fmt.Errorf("%w: message %d of %s has used every attempt number and is dead", ErrNotFound, id, q.name)
	}
	vis := cmp.Or(visibility, m.VisibilityTimeout, q.cfg.VisibilityTimeout)
	now := q.now()
	m.Receipt = Receipt{ID: id, Attempt: e.Attempts + 1}
	m.Attempts, m.State, m.Priority = int(m.Receipt.Attempt), index.StateLeased, q.t.Priority(id)
	m.LeaseEnds, m.ReadyAt = time.Unix(0, now+int64(vis)), time.Time{}
	if err := q.applyLocked(index.Event{Type: index.EvLease, ID: id, Attempt: m.Receipt.Attempt, Time: now + int64(vis)}, now); err != nil {
		q.mu.Unlock()
		return Message{}, fmt.Errorf("lease %d from %s: %w", id, q.name, err)
	}
	q.armTimerLocked()
	seq := q.seq
	q.mu.Unlock()
	q.writeLeases(seq)
	return m, nil
}

// leasableLocked returns message id's entry if it can be leased: ready,
// or with anyState also delayed or dead. The caller holds mu.
func (q *Queue) leasableLocked(id uint64, anyState bool) (index.Entry, error) {
	switch e := q.t.Get(id); {
	case e.State == index.StateLeased:
		return e, fmt.Errorf("%w: message %d of %s", ErrLeased, id, q.name)
	case !live(e.State), !anyState && e.State != index.StateReady:
		return e, fmt.Errorf("%w: %s has no ready message %d", ErrNotFound, q.name, id)
	default:
		return e, nil
	}
}

// ReadyBelow counts the ready messages whose priority is below priority
// (beanstalkd's urgent jobs: below 1024).
func (q *Queue) ReadyBelow(priority uint32) (int, error) {
	q = q.live()
	if err := q.lockQueue("count ready"); err != nil {
		return 0, err
	}
	defer q.mu.Unlock()
	return q.t.ReadyBelow(priority), nil
}
