package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// A queue's share of maintenance: snapshots and retention (compaction is
// in compact.go, dead-letter moves in dlq.go, idle release in idle.go).

// snapshot writes the table at the state log's newest index: the previous
// snapshot becomes snapshot.prev, and the state log is truncated to it, so
// one damaged snapshot never loses state. Writing and fsyncing the file
// (megabytes for a big queue) holds no lock: acks and receives go on, and
// their events land in the state log after the snapshot's index, which
// the next start replays.
func (q *Queue) snapshot() error {
	q.snapMu.Lock()
	defer q.snapMu.Unlock()
	if q.snapshotCurrent() {
		// Nothing happened since the snapshot was written (or since the
		// queue was opened from it): no state event, no enqueue, no
		// compaction. Writing it again would change nothing a restart
		// sees, and cost three fsyncs, which with thousands of idle
		// queues was most of a clean stop.
		return nil
	}
	data, stateIndex, changes, covered, err := q.snapshotData()
	if err != nil {
		return err
	}
	path := filepath.Join(q.dir, snapshotName)
	if _, err := os.Stat(path); err == nil {
		if err := q.b.opts.FS.Rename(path, filepath.Join(q.dir, prevSnapshotName)); err != nil {
			return fmt.Errorf("snapshot %s: %w", q.name, err)
		}
	}
	if err := log.WriteFileAtomic(q.b.opts.FS, path, data); err != nil {
		return fmt.Errorf("snapshot %s: %w", q.name, err)
	}
	if q.sub == nil {
		q.log.Mark(changes)
	}
	q.syncMu.Lock() // TruncateFront may replace the file an fsync round syncs
	defer q.syncMu.Unlock()
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	// Only now do the covered events stop counting toward the next
	// snapshot: a failed write leaves it due at the next maintenance run.
	q.sinceSnapshot -= covered
	prev := q.snapIndex
	q.snapIndex = stateIndex
	return q.state.TruncateFront(prev + 1)
}

// snapshotCurrent reports whether the snapshot file (or, with none, the
// empty table) is what a snapshot would write now, as far as a restart can
// tell: no event was applied since its state index, and the message log
// did not change since it was written or since the queue was opened from
// it (see rebuild). Such a snapshot is also durable: it was fsynced with
// the state log up to its index. The caller holds snapMu.
func (q *Queue) snapshotCurrent() bool {
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	// A subscription's table does not change with its topic's log: only
	// its own events count.
	logSame := q.sub != nil || q.log.Changes() == q.log.Marked()
	return len(q.pending) == 0 && q.written == q.seq && q.broken.Load() == nil &&
		q.state.LastIndex() == q.snapIndex && logSame
}

// snapshotData encodes the table at the state-log index that covers it
// exactly, and makes the state log durable up to there (else new entries
// could reuse indexes the snapshot claims to cover). changes is the
// message log's Changes when the table was encoded; covered is how many
// of the events counted toward the next snapshot it holds.
func (q *Queue) snapshotData() (data []byte, stateIndex, changes uint64, covered int, err error) {
	// The buffer is allocated before mu is taken: allocating megabytes can
	// make this goroutine help the GC first, which under the lock once
	// stalled every receive and ack for 50-150 ms. An eighth more leaves
	// room for what is enqueued meanwhile.
	q.mu.Lock()
	bound := index.SnapshotSizeBound(q.t)
	q.mu.Unlock()
	buf := make([]byte, 0, bound+bound/8)

	q.syncMu.Lock()
	defer q.syncMu.Unlock()
	q.commitMu.Lock()
	defer q.commitMu.Unlock()
	// Write everything applied so far (through the one commit path, with
	// its handling of a failed write), then encode holding mu, so nothing
	// new is applied in between.
	for {
		if err := q.lockOpen(); err != nil {
			return nil, 0, 0, 0, err
		}
		if len(q.pending) == 0 {
			break
		}
		seq := q.seq
		q.mu.Unlock()
		if err := q.writeLocked(seq); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	seq := q.seq
	stateIndex = q.state.LastIndex()
	// Appends whose records are not in the table yet count: the records
	// past a snapshot are read from the log at the next start anyway.
	changes = q.log.Changes()
	data = index.EncodeSnapshot(buf, stateIndex, q.t)
	q.mu.Unlock()
	// Under commitMu nothing is appended until this fsync is done,
	// whatever the sync policy. Events fsynced already (by a commit
	// round, or the last snapshot) need no second one.
	if q.synced.Load() < seq {
		if _, err := q.syncState(q.state.Sync, seq); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	q.written = seq
	q.synced.Store(seq)
	return data, stateIndex, changes, q.sinceSnapshot, nil
}

// maintain is one queue's share of a maintenance run. Compaction runs
// every time: its work is budgeted by what was appended since the last
// run (see compact.go), so it keeps up with churn without long pauses.
func (q *Queue) maintain() error {
	if err := q.lockOpen(); err != nil {
		if q.broken.Load() != nil {
			return q.b.reopen(q)
		}
		return err
	}
	q.processDueLocked(q.now())
	seq := q.seq
	dlq := q.cfg.DeadLetterQueue
	hasDead := q.t.Count(index.StateDead) > 0
	retention := q.cfg.Retention
	q.mu.Unlock()
	// Every queue runs this every second, idle or not: it allocates
	// nothing unless there is work (errs stays nil unless one fails).
	var errs []error
	keep := func(err error) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if q.b.opts.Sync == log.SyncNone {
		keep(q.commit(seq, false))
	} else {
		// fsync what receives, extends and expiries wrote since the last
		// round, so a power cut loses at most a maintenance interval of
		// them (and so --sync=interval fsyncs the state log too).
		keep(q.syncRound(seq, false))
	}
	if dlq != "" && hasDead {
		keep(q.moveDead(dlq))
	}
	if retention > 0 {
		keep(q.retain(retention))
	}
	// While a backup streams, the files stay as they are (see Backup):
	// snapshots and compaction wait for the next run after it.
	frozen := q.b.backingUp.Load() > 0
	q.commitMu.Lock()
	due := q.sinceSnapshot >= q.b.opts.SnapshotEvery
	q.commitMu.Unlock()
	if due && !frozen {
		keep(q.snapshot())
	}
	if q.sub == nil && !frozen { // a subscription's log is its topic's to compact
		keep(q.compact())
	}
	keep(q.releaseIdle())
	return errors.Join(errs...)
}

// maxRetainPerRun bounds the records retention reads per maintenance run.
const maxRetainPerRun = 100_000

// retain removes messages older than the retention period, walking the
// log from where the last run stopped. A leased message is left to its
// consumer, and remembered: once its lease is over (ready again, or dead),
// a later run removes it. The list costs O(leased), never O(backlog).
func (q *Queue) retain(retention time.Duration) error {
	q.mu.Lock()
	from := max(q.retained+1, q.t.FirstID())
	cutoff := q.now() - int64(retention)
	q.mu.Unlock()
	it := q.log.Iter(from)
	var old []uint64
	for len(old) < maxRetainPerRun && it.Next() {
		r := it.Record()
		if r.Time >= cutoff {
			break
		}
		old = append(old, r.ID)
	}
	if err := it.Err(); err != nil && !errors.Is(err, log.ErrCorrupt) {
		return fmt.Errorf("retention %s: %w", q.name, err)
	}
	q.mu.Lock()
	waiting := q.retainLeased
	q.retainLeased = nil
	for _, ids := range [][]uint64{waiting, old} {
		for _, id := range ids {
			switch q.t.Get(id).State {
			case index.StateLeased:
				q.retainLeased = append(q.retainLeased, id)
			case index.StateReady, index.StateDelayed, index.StateDead:
				q.applyLocked(index.Event{Type: index.EvRemove, ID: id}, 0) // in a live state: cannot fail
				q.stats.removed.Add(1)
			}
		}
	}
	if len(old) > 0 {
		q.retained = max(q.retained, old[len(old)-1])
	}
	seq := q.seq
	q.mu.Unlock()
	return q.commit(seq, true)
}
