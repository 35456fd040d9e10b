package queue

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Committing state events: the state log's group commit (commit,
// syncRound) and what happens when a write or fsync fails.

// commit makes the events up to upTo written to the state log, and, if
// durable and the sync policy is always, fsynced.
//
// Writing and fsyncing are two locks: commitMu serializes writes, syncMu
// fsync rounds (lock order syncMu, commitMu, mu). A durable caller leads
// a round or waits for the one under way (syncRound); the round's leader
// writes every pending event under commitMu, then fsyncs without it, so
// receives (whose lease events are written before they return) and the
// next round's events never wait for an fsync. Callers that waited on a
// round usually find their events durable when it ends (group commit).
func (q *Queue) commit(upTo uint64, durable bool) error {
	if !durable || q.b.opts.Sync != log.SyncAlways {
		q.commitMu.Lock()
		defer q.commitMu.Unlock()
		return q.writeLocked(upTo)
	}
	q.window.enter()
	defer q.window.leave()
	return q.syncRound(upTo, true)
}

// syncRound makes the events up to upTo durable: it leads an fsync round
// for them (window says whether to wait for more callers first), or, if a
// round is under way, waits for it to end and looks again. Waiting on the
// round, not queueing on syncMu, is what lets a round's callers all go as
// it ends: queued on the mutex they left one at a time, each handing the
// lock to the next, and on two busy cores every hand-over waited tens of
// microseconds for a CPU while the disk idled (spool bench
// beanstalk-reserve-delete, 16 connections: 8-10% more deletes a second
// without the chain; bench/RESULTS.md, session 14).
func (q *Queue) syncRound(upTo uint64, window bool) error {
	for q.synced.Load() < upTo {
		q.round.mu.Lock()
		if running := q.round.done; running != nil {
			q.round.mu.Unlock()
			<-running
			continue
		}
		done := make(chan struct{})
		q.round.done = done
		q.round.mu.Unlock()
		err := q.leadRound(upTo, window)
		q.round.mu.Lock()
		q.round.done = nil
		q.round.mu.Unlock()
		close(done)
		return err
	}
	return nil
}

// syncRoundState says whether an fsync round is under way.
type syncRoundState struct {
	mu   sync.Mutex
	done chan struct{} // closed when the round under way ends; nil: none
}

// leadRound is one fsync round: it writes every pending event and fsyncs
// them, unless those up to upTo are durable already.
func (q *Queue) leadRound(upTo uint64, window bool) error {
	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	if p := q.broken.Load(); p != nil {
		return *p
	}
	if q.synced.Load() >= upTo {
		return nil
	}
	if err := q.closedError(); err != nil {
		return err // close holds syncMu while it closes the state log
	}
	if window {
		q.window.wait()
	}
	q.commitMu.Lock()
	err := q.writeLocked(upTo)
	seq := q.written
	var sync func() error
	if err == nil {
		sync, err = q.state.PrepareSync()
	}
	q.commitMu.Unlock()
	if err != nil {
		return err
	}
	took, err := q.syncState(sync, seq)
	if err != nil {
		return err
	}
	if window {
		q.window.synced(took)
	}
	q.synced.Store(seq)
	return nil
}

// writeLocked writes every pending event if those up to upTo are not
// written yet. The caller holds commitMu.
func (q *Queue) writeLocked(upTo uint64) error {
	if p := q.broken.Load(); p != nil {
		return *p
	}
	if q.written >= upTo {
		return nil
	}
	q.mu.Lock()
	if q.closed { // a caller that passed lockOpen just before close
		q.mu.Unlock()
		return q.goneError()
	}
	events, seq := q.pending, q.seq
	q.pending = q.spare[:0]
	q.mu.Unlock()
	if len(events) > 0 {
		q.entryBuf = index.EncodeEntry(q.entryBuf[:0], events)
		if _, err := q.state.Append(q.entryBuf); err != nil {
			return q.retryLater(events, err)
		}
		q.sinceSnapshot += len(events)
	}
	q.spare = events[:0]
	q.written = seq
	return nil
}

// syncState runs sync (an fsync of the state log), which makes the events
// up to seq durable, and reports it to Options.OnStateSync. A failure
// breaks the queue: the kernel may have dropped the pages. The caller
// holds syncMu and sets synced.
func (q *Queue) syncState(sync func() error, seq uint64) (time.Duration, error) {
	start := time.Now()
	if err := sync(); err != nil {
		return 0, q.breakWith(err)
	}
	took := time.Since(start)
	if hook := q.b.opts.OnStateSync; hook != nil {
		hook(q.name, int(seq-q.synced.Load()), took)
	}
	return took, nil
}

// retryLater handles a failed state-log write (a full disk, typically)
// without taking the queue down: tidwall/wal cannot be trusted after a
// failed write, so the state log is reopened (cutting whatever part of the
// entry reached the file), and the events go back in front of the pending
// ones, to be written by the next commit. The caller gets the error (an
// ack on a full disk is a 507 that may or may not have happened, which is
// what an error promises). Only if the reopen fails is the queue broken.
// The caller holds commitMu.
func (q *Queue) retryLater(events []index.Event, cause error) error {
	err := fmt.Errorf("queue %s: state log: %w", q.name, cause)
	if cerr := q.state.Close(); cerr != nil {
		q.b.opts.Logger.Warn("queue: closing the state log after a failed write", "queue", q.name, "err", cerr)
	}
	st, _, oerr := q.openStateLog()
	if oerr != nil {
		return q.breakWith(errors.Join(cause, oerr))
	}
	q.state = st
	q.mu.Lock()
	q.pending = append(append(make([]index.Event, 0, len(events)+len(q.pending)), events...), q.pending...)
	q.mu.Unlock()
	q.spare = nil // events' backing array now lives on in pending
	return err
}

// breakWith marks the queue unusable: its in-memory state may hold changes
// the state log does not. Maintenance reloads it from disk.
func (q *Queue) breakWith(err error) error {
	err = fmt.Errorf("queue %s: state log: %w", q.name, err)
	q.broken.CompareAndSwap(nil, &err)
	q.b.opts.Logger.Error("queue: state log failed; the queue reloads its state", "queue", q.name, "err", err)
	return err
}

// closedError is goneError if q is closed, else nil.
func (q *Queue) closedError() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.goneError()
	}
	return nil
}

// commitSoon writes the events up to seq and, under sync=always, starts
// an fsync round for them in the background without waiting for it (see
// AckSoon). One background round runs per queue at a time; events that
// arrive while it fsyncs are taken by the next, so a caller that commits
// soon faster than the disk fsyncs shares each fsync with the others.
func (q *Queue) commitSoon(seq uint64) error {
	if err := q.commit(seq, false); err != nil {
		return err
	}
	if q.b.opts.Sync != log.SyncAlways {
		return nil
	}
	for want := q.soon.want.Load(); want < seq && !q.soon.want.CompareAndSwap(want, seq); want = q.soon.want.Load() {
	}
	if q.soon.running.CompareAndSwap(false, true) {
		go q.syncSoonRounds()
	}
	return nil
}

// soonPace is how long a background fsync round waits before it starts.
// Nothing waits on these rounds, so fsyncing back to back bought nothing
// but fsyncs: a round every millisecond at most carries what a
// millisecond of AckSoon calls wrote. On a 2-core machine running
// miniqueue's consume loop, fsyncing back to back took a fifth of the CPU;
// paced, one fsync carries 50-70 acks instead of 6-20, and the loop moved
// 20% more messages a second with one consumer, 9% with 12
// (bench/RESULTS.md, session 11). The price: an AckSoon stays short of
// its fsync up to a millisecond longer.
const soonPace = time.Millisecond

// soonSync is the state of a queue's background fsync rounds.
type soonSync struct {
	want    atomic.Uint64 // the highest seq a commitSoon asked for
	running atomic.Bool   // a syncSoonRounds goroutine is on it
}

// syncSoonRounds fsyncs until every seq commitSoon asked for is durable,
// then exits. A failed round breaks the queue (syncState) or means it is
// closed: the events are then either in the state log, only short of an
// fsync that maintenance or close makes, or the queue is reloaded from
// disk; nothing is waiting on this goroutine to report either.
func (q *Queue) syncSoonRounds() {
	for {
		time.Sleep(soonPace)
		want := q.soon.want.Load()
		if err := q.syncRound(want, false); err != nil && !errors.Is(err, ErrQueueNotFound) && !errors.Is(err, ErrSubscriptionNotFound) {
			q.b.opts.Logger.Warn("queue: background fsync failed", "queue", q.name, "err", err)
		}
		q.soon.running.Store(false)
		// A commitSoon that raised want after the Load above either
		// started its own goroutine (running was still true: no) or
		// finds it here.
		if q.soon.want.Load() <= want || !q.soon.running.CompareAndSwap(false, true) {
			return
		}
	}
}

// writeLeases writes the events up to seq, the receive's leases among
// them, to the state log before their receipts leave, without an fsync:
// a process that dies (SIGKILL, a crash) then restarts knowing every
// attempt it handed out, so no receipt is ever issued twice. Only a power
// cut can lose them (up to the next fsync, at most a maintenance interval
// away): then a receipt may be issued again. A failed write leaves the
// events pending for the next commit; the receive still succeeds, since
// consumers must be able to drain a queue on a full disk.
func (q *Queue) writeLeases(seq uint64) {
	if err := q.commit(seq, false); err != nil {
		q.b.opts.Logger.Warn("queue: lease events not written yet; a crash before the next commit may reissue their receipts", "queue", q.name, "err", err)
	}
}
