package queue

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Receiving: leasing ready messages, long polls parked in FIFO order,
// and reading the leased records back from the log.

// waiter is one long-poll receiver parked on a queue, or a NotifyReady.
type waiter struct {
	ch   chan struct{} // buffered (1): notifyLocked never blocks
	fn   func()        // NotifyReady's: run in a goroutine of its own instead of ch
	elem *list.Element // in q.waiters; nil once notified
}

// notifyLocked wakes up to n waiters, oldest first: n messages became ready.
// The caller holds mu.
func (q *Queue) notifyLocked(n int) {
	for ; n > 0 && q.waiters.Len() > 0; n-- {
		w := q.waiters.Remove(q.waiters.Front()).(*waiter)
		w.elem = nil
		if w.fn != nil {
			go w.fn()
			continue
		}
		w.ch <- struct{}{}
	}
	q.waiting.Store(int32(q.waiters.Len()))
}

// NotifyReady calls fn once, in a goroutine of its own, when a message may
// be ready to receive: at once if one is, else with the wake a Receive
// parked in its place would get (one waiter woken per message that
// becomes ready, oldest first; also when the queue closes). It is for a
// consumer that idles for long, such as a stream: waiting costs it a list
// element instead of a goroutine parked in Receive. fn then receives
// (without a wait: another receiver may have been faster, and fn finds
// nothing) and calls NotifyReady again if it wants more.
//
// stop withdraws fn and says whether it did; false means fn was called
// (or is being called), and stop has woken the next waiter in the
// caller's place, in case fn will not receive what it was woken for: a
// wake too many costs a waiter one look, a wake lost would leave a
// message ready while receivers wait.
func (q *Queue) NotifyReady(fn func()) (stop func() bool, err error) {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return nil, err
	}
	q.processDueLocked(q.now())
	w := &waiter{fn: fn}
	if published := q.publishedNow(); !q.readyLeftLocked(published) {
		q.parkLocked(w, false)
		if q.publishedNow() == published {
			q.mu.Unlock()
			return func() bool { return q.stopNotify(w) }, nil
		}
		// Published to while parking: as in ReceiveEach, the publish
		// may have seen no one parked. Look no further: wake fn.
		q.dropLocked(w)
	}
	q.mu.Unlock()
	go fn()
	return func() bool { return q.stopNotify(w) }, nil
}

// stopNotify is NotifyReady's stop.
func (q *Queue) stopNotify(w *waiter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropLocked(w) {
		return true
	}
	if w.fn != nil {
		w.fn = nil // one pass-on per NotifyReady, however often stop is called
		q.notifyLocked(1)
	}
	return false
}

// parkLocked adds w to the waiters: at the back when it starts waiting, at the
// front when it was woken but found nothing (another receiver was
// faster), so it keeps its turn. The caller holds mu.
func (q *Queue) parkLocked(w *waiter, again bool) {
	if again {
		w.elem = q.waiters.PushFront(w)
	} else {
		w.elem = q.waiters.PushBack(w)
	}
	q.waiting.Store(int32(q.waiters.Len()))
}

// unpark takes a waiter that stops waiting off the list. If it had been
// woken already, the message it was woken for is someone else's now: wake
// the next waiter in its place, unless the caller is going to look for a
// message itself (keep).
func (q *Queue) unpark(w *waiter, keep bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.dropLocked(w) {
		return
	}
	select {
	case <-w.ch:
		if !keep {
			q.notifyLocked(1)
		}
	default:
	}
}

// dropLocked takes w off the waiters if it is still parked, and says
// whether it was. The caller holds mu.
func (q *Queue) dropLocked(w *waiter) bool {
	if w.elem == nil {
		return false // notified already
	}
	q.waiters.Remove(w.elem)
	w.elem = nil
	q.waiting.Store(int32(q.waiters.Len()))
	return true
}

// Receive leases up to o.Max ready messages. With o.Wait it blocks until a
// message is ready, the wait is over (nil, nil) or ctx ends (ctx.Err()); a
// receiver that gives up leases nothing.
func (q *Queue) Receive(ctx context.Context, o ReceiveOptions) ([]Message, error) {
	var msgs []Message
	_, err := q.ReceiveEach(ctx, o, func(m Message) error {
		msgs = append(msgs, m)
		return nil
	})
	return msgs, err
}

// ReceiveEach is Receive that hands each leased message to fn as its body
// is read, and returns how many it handed out: a caller streaming a reply
// holds one body at a time, not o.Max of them. If fn fails (the client
// went away), the messages not yet handed out stay leased until their
// lease runs out, and ReceiveEach returns fn's error.
func (q *Queue) ReceiveEach(ctx context.Context, o ReceiveOptions, fn func(Message) error) (int, error) {
	if o.Max == 0 {
		o.Max = 1
	}
	switch {
	case o.Max < 0 || o.Max > MaxReceive:
		return 0, fmt.Errorf("%w: max %d must be between 1 and %d", ErrInvalid, o.Max, MaxReceive)
	case o.Wait < 0 || o.Wait > MaxWait:
		return 0, fmt.Errorf("%w: wait %s must be between 0 and %s", ErrInvalid, o.Wait, MaxWait)
	case o.Visibility < 0 || o.Visibility > MaxVisibility:
		return 0, fmt.Errorf("%w: visibility %s must be between 0 and %s", ErrInvalid, o.Visibility, MaxVisibility)
	}
	var timer *time.Timer
	var w *waiter
	woken := false
	for {
		q = q.live() // follow a finished reload (see live)
		if err := q.lockOpen(); err != nil {
			return 0, err
		}
		now := q.now()
		q.processDueLocked(now)
		vis := o.Visibility
		if vis == 0 {
			vis = q.cfg.VisibilityTimeout
		}
		var leased []leasedMsg
		published := q.publishedNow()
		if q.ordered != nil {
			q.ordered.turn++ // a receive of its own: earlier receives' leases hold their groups
		}
		for len(leased) < o.Max {
			id, ok, readMore := q.nextReadyLocked(now, published)
			if !ok && readMore {
				// A subscription with unread messages and none read ahead:
				// read on from the topic, without holding mu, and look again.
				if err := q.readAheadUnlocked(published); err != nil {
					if len(leased) == 0 {
						q.mu.Unlock()
						return 0, err
					}
					break // hand out what is leased; the next receive retries
				}
				if q.closed {
					break
				}
				continue
			}
			if !ok {
				break
			}
			e := q.t.Get(id)
			if e.Attempts == math.MaxUint16 {
				q.killLocked(id) // no attempt number left for a receipt
				if q.ordered != nil {
					q.ordered.notTaken(q.t)
				}
				continue
			}
			attempt := e.Attempts + 1
			until := now + int64(vis)
			if err := q.applyLocked(index.Event{Type: index.EvLease, ID: id, Attempt: attempt, Time: until}, now); err != nil {
				q.mu.Unlock()
				return 0, fmt.Errorf("receive from %s: %w", q.name, err)
			}
			leased = append(leased, leasedMsg{id: id, attempt: attempt, offset: e.Offset, until: until, priority: q.t.Priority(id)})
			if q.ordered != nil {
				q.ordered.leased(q.t, id)
			}
		}
		if len(leased) > 0 {
			q.armTimerLocked()
			if q.readyLeftLocked(published) {
				q.notifyLocked(1) // what this receive left is the next waiter's
			}
			seq := q.seq
			q.mu.Unlock()
			q.writeLeases(seq)
			return q.readLeased(leased, o.Visibility == 0, fn)
		}
		if o.Wait == 0 {
			q.mu.Unlock()
			return 0, nil
		}
		if w == nil {
			w = &waiter{ch: make(chan struct{}, 1)}
		}
		parkedOn := q
		q.parkLocked(w, woken)
		if q.publishedNow() != published {
			// Published to while this receiver looked: Publish may have
			// seen no one parked here, and woken no one. Look again.
			q.mu.Unlock()
			parkedOn.unpark(w, true)
			continue
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(o.Wait)
			defer timer.Stop()
		}
		select {
		case <-w.ch:
			woken = true
		case <-timer.C:
			parkedOn.unpark(w, true)
			o.Wait = 0 // one last look, then give up
		case <-ctx.Done():
			parkedOn.unpark(w, false)
			return 0, ctx.Err()
		}
	}
}

type leasedMsg struct {
	id       uint64
	attempt  uint16
	offset   uint32
	until    int64 // the lease's deadline, unix ns
	priority uint32
}

// readLeased reads the bodies of freshly leased messages, one at a time,
// and hands each to fn. A message whose record cannot be read (damage the
// log reported) is failed rather than handed out broken, and left out.
// With ownLease (the receive gave no lease length), a message with a
// lease length of its own gets it here, once its record says so.
func (q *Queue) readLeased(leased []leasedMsg, ownLease bool, fn func(Message) error) (int, error) {
	n := 0
	for _, l := range leased {
		m, err := q.read(l.id, l.offset)
		if err != nil && !errors.Is(err, log.ErrCorrupt) && !errors.Is(err, log.ErrNotFound) {
			// Not damage: the file could not be read now (an idle queue's
			// segment reopened into a full file table, an I/O error). The
			// message is sound: its lease ends at once, as an expiry would.
			q.b.opts.Logger.Warn("queue: leased message could not be read now; returning it to the queue", "queue", q.name, "id", l.id, "err", err)
			q.mu.Lock()
			if e := q.t.Get(l.id); e.State == index.StateLeased && e.Attempts == l.attempt {
				if q.t.Tries(l.id) >= q.cfg.MaxAttempts {
					q.killLocked(l.id)
				} else if q.applyLocked(index.Event{Type: index.EvExpire, ID: l.id}, 0) == nil {
					q.stats.expired.Add(1)
					q.notifyLocked(1)
				}
			}
			q.mu.Unlock()
			continue
		}
		if err != nil {
			q.b.opts.Logger.Error("queue: leased message cannot be read; failing it", "queue", q.name, "id", l.id, "err", err)
			q.mu.Lock()
			if q.t.Get(l.id).State == index.StateLeased {
				q.killLocked(l.id)
			}
			q.mu.Unlock()
			continue
		}
		m.Receipt = Receipt{ID: l.id, Attempt: l.attempt}
		m.Attempts = int(l.attempt)
		m.State = index.StateLeased
		m.Priority = l.priority
		if ownLease && m.VisibilityTimeout != 0 {
			l.until = q.leaseFor(l, m.VisibilityTimeout)
		}
		m.LeaseEnds = time.Unix(0, l.until)
		if err := fn(m); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// leaseFor gives the fresh lease l the length vis, from now, and returns
// its deadline. The lease was taken at the queue's length before the
// record was read (the table holds no lease lengths); the extend is
// written to the state log before the message is handed out, as the
// lease was, so a process crash cannot leave the message leased for the
// queue's length instead of its own.
func (q *Queue) leaseFor(l leasedMsg, vis time.Duration) int64 {
	q.mu.Lock()
	if e := q.t.Get(l.id); q.closed || e.State != index.StateLeased || e.Attempts != l.attempt {
		q.mu.Unlock()
		return l.until // already over (acked by a racing receipt, expired): leave it
	}
	now := q.now()
	until := now + int64(vis)
	if q.applyLocked(index.Event{Type: index.EvExtend, ID: l.id, Time: until}, now) != nil {
		q.mu.Unlock()
		return l.until
	}
	q.armTimerLocked()
	seq := q.seq
	q.mu.Unlock()
	q.writeLeases(seq)
	return until
}

// read returns a copy of the message's record.
func (q *Queue) read(id uint64, offset uint32) (Message, error) {
	q.readMu.Lock()
	defer q.readMu.Unlock()
	rec, err := q.readLocked(id, offset)
	if err != nil {
		return Message{}, err
	}
	meta, err := DecodeMeta(rec.Meta)
	if err != nil {
		return Message{}, err
	}
	return Message{
		ID: id, EnqueuedAt: time.Unix(0, rec.Time), Body: slices.Clone(rec.Body), Attributes: meta.Attributes,
		// The priority it was enqueued at; a caller that holds the
		// table's (a nack or bury may have changed it) sets that one.
		Priority: priorityOr(meta.Priority), VisibilityTimeout: meta.VisibilityTimeout,
		Delay: time.Duration(max(meta.ReadyAt-rec.Time, 0)), Origin: meta.Origin,
		Group: meta.Group, DedupID: meta.DedupID,
	}, nil
}

// readLocked reads message id's record at offset; the caller holds readMu.
// The record's bytes are the cursor's until the next read.
func (q *Queue) readLocked(id uint64, offset uint32) (log.Record, error) {
	return q.cursor.ReadAt(id, log.Position{Offset: int64(offset)})
}

// enqueuedAt returns when message id (its record at offset) was
// enqueued, for Info's OldestReady: the oldest ready message. The time is
// read from its record once and remembered for that id, so a metrics
// scrape neither rereads the disk nor reopens an idle queue while that
// message stays the oldest. It is best effort: a record that cannot be
// read is logged once and reads as zero, so the queue's counts are still
// listed and scraped.
func (q *Queue) enqueuedAt(id uint64, offset uint32) time.Time {
	q.readMu.Lock()
	defer q.readMu.Unlock()
	if q.oldest.id != id {
		q.oldest.id, q.oldest.at = id, 0
		rec, err := q.readLocked(id, offset)
		if err != nil {
			q.b.opts.Logger.Warn("queue: cannot read the oldest ready message for its age; the age reads 0", "queue", q.name, "id", id, "err", err)
		} else {
			q.oldest.at = rec.Time
		}
	}
	if q.oldest.at == 0 {
		return time.Time{}
	}
	return time.Unix(0, q.oldest.at)
}
