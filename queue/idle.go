package queue

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/log"
)

// What an idle queue costs.
//
// A data directory may hold thousands of queues of which few are busy at
// any time, so an idle queue holds next to nothing: no open file, no
// goroutine, no buffer beyond its table. Opening a queue reads its files
// and closes them again (the message log opens a segment file on its first
// read or write, the state log opens tidwall/wal on its first write); the
// message log's committer goroutine starts with the first enqueue. Once a
// queue has gone Options.IdleTimeout without a read or a write,
// maintenance gives all of that back (releaseIdle), and the next use
// reopens what it needs, transparently. Nothing durable depends on it:
// releasing fsyncs whatever a relaxed sync policy left unsynced, and a
// queue whose files are closed is exactly the queue a restart would open.
//
// A clean stop writes no snapshot for a queue in which nothing happened
// since its snapshot (see snapshot), and stops and opens queues a few at
// a time in parallel (eachParallel), so stopping or starting thousands of
// idle queues takes a fraction of a second.

// DefaultIdleTimeout is Options.IdleTimeout's default.
const DefaultIdleTimeout = time.Minute

// releaseIdle is maintenance's last step for a queue: whatever its logs
// hold that has not been used for IdleTimeout is given back.
func (q *Queue) releaseIdle() error {
	idle := q.b.opts.IdleTimeout
	if idle < 0 {
		return nil
	}
	var errs []error
	// A subscription shares its topic's log, which the topic releases; its
	// cursor's frame is dropped every run (rereading one frame a second is
	// nothing to a busy subscription).
	released := q.sub != nil
	if q.sub == nil {
		var err error
		released, err = q.log.Release(idle)
		if err != nil && !errors.Is(err, log.ErrClosed) {
			errs = append(errs, err)
		}
	}
	if released && q.readMu.TryLock() { // held: a read is under way, so not idle
		q.cursor.Reset()
		q.readMu.Unlock()
	}
	// An fsync round under way means the state log is busy.
	if !q.syncMu.TryLock() {
		return errors.Join(errs...)
	}
	defer q.syncMu.Unlock()
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	q.mu.Lock()
	unwritten := len(q.pending) > 0 || q.written < q.seq || q.closed
	q.mu.Unlock()
	if unwritten || q.broken.Load() != nil {
		return errors.Join(errs...)
	}
	released, err := q.state.Release(idle)
	if err != nil {
		// tidwall's Close fsyncs, and that fsync failed: what was written
		// since the last one may be lost, as after any failed fsync.
		errs = append(errs, q.breakWith(err))
	}
	if released {
		q.entryBuf, q.spare = nil, nil
		q.mu.Lock()
		if len(q.pending) == 0 {
			q.pending = nil
		}
		q.mu.Unlock()
	}
	return errors.Join(errs...)
}

// Queues are opened and closed parallelQueues at a time: the work is
// mostly small reads and fsyncs, which overlap well even on few CPUs.
const parallelQueues = 8

// eachParallel calls fn(i) for every i in [0, n), parallelQueues at a time,
// and returns when all calls have.
func eachParallel(n int, fn func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(parallelQueues, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				fn(i)
			}
		})
	}
	wg.Wait()
}
