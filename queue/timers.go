package queue

import (
	"time"

	"github.com/spoolq/spool/index"
)

// The clock's part: delays that run out, leases that expire, and the
// queue's one timer for the earliest of them.

// processDueLocked applies what the clock says happened: delays run out, leases
// expire (or, out of attempts, the message goes dead). The caller holds mu.
func (q *Queue) processDueLocked(now int64) {
	woke := 0
	for {
		id, ok := q.t.DueDelay(now)
		if !ok {
			break
		}
		// Logged so a replay makes it ready at the same point among the
		// other events, in the same place, whatever the clock says then.
		// DueDelay returned a delayed message: this cannot fail.
		q.applyLocked(index.Event{Type: index.EvReady, ID: id, After: q.newestLocked()}, now)
		woke++
	}
	for {
		id, due := q.t.DueLease(now)
		if !due {
			break
		}
		if q.t.Tries(id) >= q.cfg.MaxAttempts {
			q.killLocked(id)
			continue
		}
		q.applyLocked(index.Event{Type: index.EvExpire, ID: id}, now) // DueLease returned a leased message: cannot fail
		q.stats.expired.Add(1)
		woke++
	}
	q.notifyLocked(woke)
}

// killLocked makes a message dead; maintenance moves it on to the dead-letter
// queue if one is configured. The caller holds mu.
func (q *Queue) killLocked(id uint64) { q.deadLocked(index.Event{Type: index.EvDead, ID: id}) }

// deadLocked applies ev, a dead event, and counts it.
func (q *Queue) deadLocked(ev index.Event) {
	if q.applyLocked(ev, 0) == nil {
		q.stats.dead.Add(1)
	}
}

// armTimerLocked makes the queue's one timer fire at the earliest deadline. The
// caller holds mu.
func (q *Queue) armTimerLocked() {
	at, ok := q.t.NextDeadline()
	if !ok || (q.timerAt != 0 && q.timerAt <= at) {
		return
	}
	q.timerAt = at
	d := time.Duration(at - q.now())
	if q.timer == nil {
		q.timer = time.AfterFunc(max(d, 0), q.onTimer)
	} else {
		q.timer.Reset(max(d, 0))
	}
}

func (q *Queue) onTimer() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.timerAt = 0
	q.processDueLocked(q.now())
	q.armTimerLocked()
}
