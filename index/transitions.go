package index

import (
	"container/heap"
	"fmt"
)

// The transitions: every state change a message can make after it is
// inserted, each checking the state it starts from, and Apply, which
// maps a state event onto them (the queue's live path and replay alike).

// Lease marks a ready message leased until deadline with the given
// attempt number.
func (t *Table) Lease(id uint64, attempt uint16, until int64) error {
	e, err := t.want(id, "lease", StateReady)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.move(e, StateLeased)
	e.attempts, e.time = attempt, until
	e.setRequeue(ByID)
	t.maxAttempt = max(t.maxAttempt, attempt)
	heap.Push(&t.leases, deadline{at: until, id: id})
	return nil
}

// Extend moves a lease's deadline.
func (t *Table) Extend(id uint64, until int64) error {
	e, err := t.want(id, "extend", StateLeased)
	if err != nil {
		return err
	}
	e.time = until
	heap.Push(&t.leases, deadline{at: until, id: id})
	return nil
}

// Ack finishes a leased message.
func (t *Table) Ack(id uint64) error {
	e, err := t.want(id, "ack", StateLeased)
	if err != nil {
		return err
	}
	t.finish(id, e)
	return nil
}

// Nack returns a leased message to ready at the front, or at the back
// after id after (the newest id when the nack happened, so a replay puts it
// where it was), or delayed until readyAt and then to the front or back.
// The message keeps its priority.
func (t *Table) Nack(id uint64, front bool, after uint64, readyAt, now int64) error {
	mode := Back
	if front {
		mode = Front
	}
	return t.nack(id, mode, after, readyAt, now, t.Priority(id))
}

// nack is Nack to a place (ByID is beanstalkd's release) and a priority:
// the message's own, or the one a nack gave it. The new priority places
// it when it is ready.
func (t *Table) nack(id uint64, mode Requeue, after uint64, readyAt, now int64, pri uint32) error {
	e, err := t.want(id, "nack", StateLeased)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.setPriority(id, e, pri)
	t.becomeReady(id, e, mode, readyAt, now, after)
	return nil
}

// Expire returns a leased message whose lease ran out to ready, by id.
func (t *Table) Expire(id uint64) error {
	e, err := t.want(id, "expire", StateLeased)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.becomeReady(id, e, ByID, 0, 0, 0)
	return nil
}

// Dead marks a message dead: out of attempts, or failed by its consumer.
// It keeps its priority, which a redrive puts it back at.
func (t *Table) Dead(id uint64) error {
	return t.dead(id, t.Priority(id))
}

// dead is Dead to a priority: the message's own, or the one a bury gave
// it (beanstalkd's bury <id> <pri>).
func (t *Table) dead(id uint64, pri uint32) error {
	e, err := t.want(id, "kill", StateLeased, StateReady, StateDelayed)
	if err != nil {
		return err
	}
	t.leave(id, e)
	t.setPriority(id, e, pri)
	t.move(e, StateDead)
	e.setRequeue(ByID)
	return nil
}

// Redrive returns a dead message to ready, by id, at its priority. Its
// attempts keep counting, but Tries starts again from zero.
func (t *Table) Redrive(id uint64) error {
	e, err := t.want(id, "redrive", StateDead)
	if err != nil {
		return err
	}
	if e.attempts > 0 {
		if t.redriven == nil {
			t.redriven = map[uint64]uint16{}
		}
		t.redriven[id] = e.attempts
	}
	t.becomeReady(id, e, ByID, 0, 0, 0)
	return nil
}

// MarkMoving records that a copy of the dead message id is about to be
// enqueued in the dead-letter queue, at an id ≥ from there: if the move is
// cut short (a crash between the copy and the removal here), the next one
// looks there before copying again, so no dead letter is ever doubled.
func (t *Table) MarkMoving(id, from uint64) error {
	e, err := t.want(id, "mark moving", StateDead)
	if err != nil {
		return err
	}
	e.time = int64(from)
	return nil
}

// Moving returns what MarkMoving recorded for a dead message, or 0.
func (t *Table) Moving(id uint64) uint64 {
	if e := t.entry(id); e != nil && e.state() == StateDead {
		return uint64(e.time)
	}
	return 0
}

// Tries returns how many times a message was leased since it was enqueued
// or last redriven: what counts against max attempts.
func (t *Table) Tries(id uint64) int {
	return int(t.Get(id).Attempts) - int(max(t.redriven[id], t.attemptFloor))
}

// Remove finishes a message in any live state without an ack (moved to a
// dead-letter queue, past retention).
func (t *Table) Remove(id uint64) error {
	e, err := t.want(id, "remove", StateReady, StateDelayed, StateLeased, StateDead)
	if err != nil {
		return err
	}
	t.finish(id, e)
	return nil
}

// finishHoles marks ids up to upTo that were never inserted as done.
func (t *Table) finishHoles(upTo uint64) {
	if len(t.chunks) == 0 {
		return
	}
	for id := t.base; id <= min(upTo, t.base+uint64(len(t.chunks))*chunkSize-1); id++ {
		if e := t.entry(id); e.state() == StateNone {
			e.setState(StateDone)
			t.counts[StateDone]++
			c, _ := t.chunkOf(id)
			c.done++
		}
	}
}

// Purge finishes every message with an id up to upTo, including ids whose
// enqueue is still in flight (their Insert will find them done): a replay
// inserts every record before it applies the purge, and must agree.
func (t *Table) Purge(upTo uint64) {
	upTo = min(upTo, t.maxID) // ids past the newest are still to come
	t.finishHoles(upTo)
	for id := t.FirstID(); id <= min(upTo, t.maxID); id++ {
		if e := t.entry(id); e != nil && e.state() != StateNone && e.state() != StateDone {
			t.finish(id, e)
			if id < t.base {
				id = t.base - 1 // release moved past it; keep walking from the new base
			}
		}
	}
}

func (t *Table) want(id uint64, op string, states ...State) (*slot, error) {
	e := t.entry(id)
	var st State
	if e != nil {
		st = e.state()
	} else {
		st = t.Get(id).State // below the table or past it
	}
	for _, s := range states {
		if st == s {
			return e, nil
		}
	}
	return nil, &TransitionError{Op: op, ID: id, State: st}
}

// TransitionError is returned for an operation the message's state does
// not allow. The queue checks receipts first, so live operations only see
// it through a bug; a replay sees it for events about ids that a crash
// left unknown, and skips them.
type TransitionError struct {
	Op    string
	ID    uint64
	State State
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("index: cannot %s message %d in state %s", e.Op, e.ID, e.State)
}

// Apply replays one state event.
func (t *Table) Apply(ev Event, now int64) error {
	switch ev.Type {
	case EvLease:
		// Counted even if the lease no longer applies (its message was
		// removed from under a replay): the receipt was handed out.
		t.maxAttempt = max(t.maxAttempt, ev.Attempt)
		return t.Lease(ev.ID, ev.Attempt, ev.Time)
	case EvExtend:
		return t.Extend(ev.ID, ev.Time)
	case EvAck:
		return t.Ack(ev.ID)
	case EvNack:
		return t.nack(ev.ID, ev.requeue(), ev.After, ev.Time, now, ev.priority(t))
	case EvExpire:
		return t.Expire(ev.ID)
	case EvDead:
		return t.dead(ev.ID, ev.priority(t))
	case EvRedrive:
		return t.Redrive(ev.ID)
	case EvRemove:
		return t.Remove(ev.ID)
	case EvPurge:
		t.Purge(ev.ID)
		return nil
	case EvReady:
		return t.Ready(ev.ID, ev.After)
	case EvMoving:
		return t.MarkMoving(ev.ID, ev.After)
	case EvSeek:
		t.Seek(ev.ID)
		return nil
	case EvSkip:
		t.Skip(ev.ID)
		return nil
	}
	return fmt.Errorf("index: unknown event type %d", ev.Type)
}

// requeue is where a nack event puts its message.
func (ev Event) requeue() Requeue {
	switch {
	case ev.InPlace:
		return ByID
	case ev.Front:
		return Front
	}
	return Back
}

// priority is the priority ev leaves its message at: the one it sets, or
// the message's own.
func (ev Event) priority(t *Table) uint32 {
	if ev.SetPriority {
		return ev.Priority
	}
	return t.Priority(ev.ID)
}

// Ready makes a delayed message ready now, at the place its nack chose (by
// id, front, or after id after for the back). It replays what DueDelay
// did live, so a restart puts the message exactly where it was.
func (t *Table) Ready(id uint64, after uint64) error {
	e, err := t.want(id, "make ready", StateDelayed)
	if err != nil {
		return err
	}
	t.becomeReady(id, e, e.requeue(), 0, 0, after)
	return nil
}

// Seek restarts a subscription's table at id to: every id below it is
// done, none at or past it has been read (ReadUpTo is to-1, MaxID 0 until
// one is), and every
// message state, lease and nack is forgotten, so a receipt held across
// the seek is stale. Attempts keep counting from the highest ever leased
// (no receipt is reused); the tries counted against max attempts start
// again from zero.
func (t *Table) Seek(to uint64) {
	*t = Table{
		floor:        to - 1,
		seq:          t.seq,
		maxAttempt:   t.maxAttempt,
		attemptFloor: t.maxAttempt,
		skipped:      t.skipped,
	}
}

// Skip finishes every id up to upTo, read or not, and moves the read
// position past it: retention removed those messages from under a
// subscription. The ids that were not done yet are counted (Skipped).
func (t *Table) Skip(upTo uint64) {
	for id := t.FirstID(); id <= min(upTo, t.maxID); id++ {
		if s := t.Get(id).State; s != StateNone && s != StateDone {
			t.skipped++
		}
	}
	if read := max(t.maxID, t.floor); upTo > read {
		t.skipped += upTo - read // never read
	}
	t.Purge(upTo)
	t.SealHoles(upTo)
}
