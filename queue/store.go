package queue

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// File names inside a queue's directory.
const (
	queueFileName    = "queue.json"
	logDirName       = "log"
	stateDirName     = "state"
	snapshotName     = "snapshot"
	prevSnapshotName = "snapshot.prev"
)

func writeConfig(fsys FS, qdir string, c Config) error {
	data, err := encodeQueueFile(c)
	if err != nil {
		return err
	}
	return log.WriteFileAtomic(fsys, filepath.Join(qdir, queueFileName), data)
}

// openQueue opens a queue's files and rebuilds its table: snapshot, then
// the log records past the table's first hole, then the state log after
// the snapshot.
func openQueue(b *Broker, name string) (*Queue, error) {
	qdir := filepath.Join(b.queuesDir(), name)
	data, err := os.ReadFile(filepath.Join(qdir, queueFileName))
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	cfg, err := decodeQueueFile(data)
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	q := &Queue{b: b, name: name, dir: qdir, cfg: cfg}
	lg := b.opts.Logger.With("queue", name)
	var onCommit func(log.Commit)
	if hook := b.opts.OnCommit; hook != nil {
		onCommit = func(c log.Commit) { hook(name, c) }
	}
	q.log, err = log.Open(filepath.Join(qdir, logDirName), log.Options{
		FS:            b.opts.FS,
		SegmentSize:   b.opts.SegmentSize,
		MaxRecordSize: b.opts.MaxMessageBytes + MaxAttributeBytes + 64,
		Sync:          b.opts.Sync,
		SyncInterval:  b.opts.SyncInterval,
		Logger:        lg,
		OnCommit:      onCommit,
	})
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	q.cursor = q.log.NewCursor()
	state, repair, err := q.openStateLog()
	if err != nil {
		q.log.Close()
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	q.state = state
	if repair != nil {
		lg.Warn("queue: cut torn tail off the state log (an unacknowledged write)", "path", repair.Path, "offset", repair.Offset, "bytes", repair.Truncated)
	}
	if err := q.rebuild(); err != nil {
		q.log.Close()
		q.state.Close()
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	q.mu.Lock()
	q.armTimer()
	q.mu.Unlock()
	return q, nil
}

// openStateLog opens q's state log, cutting a torn tail.
func (q *Queue) openStateLog() (*index.StateLog, *index.StateLogRepair, error) {
	st, repair, err := index.OpenStateLog(filepath.Join(q.dir, stateDirName), log.PathOps{FS: q.b.opts.FS})
	if err == nil {
		st.SetFault(q.b.opts.stateFault)
	}
	return st, repair, err
}

func (q *Queue) rebuild() error {
	lg := q.b.opts.Logger.With("queue", q.name)
	snap, clean, err := q.loadSnapshot()
	if err != nil {
		return err
	}
	q.t, q.snapIndex = snap.Table, snap.StateIndex
	inserted := 0
	skipped, err := replayTable(q.t, q.snapIndex, tableSource{
		records: func(from uint64, insert func(id uint64, offset uint32, meta []byte)) (uint64, error) {
			if segs := q.log.Segments(); len(segs) > 0 {
				from = max(from, segs[0].Base)
			}
			it := q.log.Iter(from)
			for {
				for it.Next() {
					insert(it.Record().ID, uint32(it.Position().Offset), it.Record().Meta)
					inserted++
				}
				if it.Err() == nil {
					return q.log.LastID(), nil
				}
				if !errors.Is(it.Err(), log.ErrCorrupt) {
					return 0, it.Err()
				}
				lg.Error("queue: damaged range in the message log; its messages cannot be delivered", "err", it.Err())
			}
		},
		events: func(after uint64, apply func([]index.Event)) error {
			damaged, err := q.state.Replay(after, func(_ uint64, events []index.Event) error {
				apply(events)
				return nil
			})
			for _, d := range damaged {
				lg.Error("queue: damaged state-log entry skipped; its changes are lost (messages may be delivered again)", "err", d)
			}
			return err
		},
		badMeta: func(id uint64, err error) {
			lg.Error("queue: record with unreadable metadata, delivering it without", "id", id, "err", err)
		},
	})
	if err != nil {
		return err
	}
	if skipped > 0 {
		lg.Warn("queue: state events about messages the log no longer holds were skipped", "count", skipped)
	}
	q.written, q.synced = 0, 0
	if clean && q.state.LastIndex() == q.snapIndex && inserted <= cleanOpenRecords {
		// The snapshot file, with the few records past it, is this table:
		// opening again would rebuild the same one. Until something
		// changes, a new snapshot is not needed (see snapshot).
		q.log.Mark(q.log.Changes())
	}
	return nil
}

// cleanOpenRecords bounds the records past the snapshot that opening a
// queue may read from the message log and still count the snapshot as
// current: beyond it, the next snapshot saves the next start the reading.
const cleanOpenRecords = 10_000

// tableSource is where a queue's durable state comes from: opening a
// queue reads it through the open logs, Check through read-only walks of
// the files. Either way replayTable turns it into the same table.
type tableSource struct {
	// records calls insert for every message-log record with id ≥ from,
	// in id order, and returns the log's last id.
	records func(from uint64, insert func(id uint64, offset uint32, meta []byte)) (lastID uint64, err error)
	// events calls apply for every state-log entry after index after.
	events func(after uint64, apply func([]index.Event)) error
	// badMeta hears of a record whose metadata does not decode.
	badMeta func(id uint64, err error)
}

// replayTable brings t, loaded from the snapshot at state index snapIndex
// (or empty), up to date: the records appended after it, then the state
// events after it. It returns how many events named messages the log no
// longer holds.
func replayTable(t *index.Table, snapIndex uint64, src tableSource) (skipped int, err error) {
	// Rebuild as the events happened, not as the clock says now: a delayed
	// message stays delayed until its EvReady (or, if that was never
	// written, until the first processDue after startup).
	const replayNow = 0
	lastID, err := src.records(t.FirstHole(), func(id uint64, offset uint32, raw []byte) {
		meta, err := DecodeMeta(raw)
		if err != nil {
			src.badMeta(id, err)
		}
		t.Insert(id, offset, meta.ReadyAt, replayNow)
	})
	if err != nil {
		return 0, err
	}
	t.SealHoles(lastID)
	err = src.events(snapIndex, func(events []index.Event) {
		for _, ev := range events {
			if t.Apply(ev, replayNow) != nil {
				skipped++
			}
		}
	})
	return skipped, err
}

// loadSnapshot returns the newest snapshot that verifies, or an empty
// table at index 0 when there is none. clean says that it came from the
// snapshot file, or that there is no snapshot file at all: no fallback.
func (q *Queue) loadSnapshot() (snap index.Snapshot, clean bool, err error) {
	lg := q.b.opts.Logger.With("queue", q.name)
	snap, files, err := readSnapshots(q.dir, false)
	if err != nil {
		return index.Snapshot{}, false, err
	}
	bad := 0
	for _, f := range files {
		if f.Err != nil {
			bad++
			lg.Error("queue: damaged snapshot ignored", "path", filepath.Join(q.dir, f.Name), "err", f.Err)
		} else if bad > 0 {
			lg.Warn("queue: using the previous snapshot", "path", filepath.Join(q.dir, f.Name))
		}
	}
	if bad == len(files) && bad > 0 {
		lg.Error("queue: no usable snapshot: rebuilding from the message log and what remains of the state log; acked messages may be delivered again")
	}
	clean = len(files) == 0 || (files[0].Name == snapshotName && files[0].Err == nil)
	return snap, clean, nil
}

// readSnapshots reads the snapshot files of the queue directory qdir,
// newest first, and returns the first that decodes (an empty table at
// index 0 if none does) and what each file read held, as Check reports
// it. Unless all, it stops at the first that decodes: opening a queue
// need not decode the fallback too. readErr is the first error reading a
// file (other than its absence): opening the queue fails on it, Check
// reports it and goes on.
func readSnapshots(qdir string, all bool) (snap index.Snapshot, files []SnapshotCheck, readErr error) {
	loaded := false
	for _, name := range []string{snapshotName, prevSnapshotName} {
		if (loaded || readErr != nil) && !all {
			break
		}
		data, err := os.ReadFile(filepath.Join(qdir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		f := SnapshotCheck{Name: name, Err: err}
		if err != nil {
			readErr = cmp.Or(readErr, err)
		} else {
			var s index.Snapshot
			if s, f.Err = index.DecodeSnapshot(data); f.Err == nil {
				f.Index = s.StateIndex
				if !loaded {
					snap, loaded = s, true
				}
			}
		}
		files = append(files, f)
	}
	if !loaded {
		snap = index.Snapshot{Table: index.NewTable()}
	}
	return snap, files, readErr
}

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
	q.log.Mark(changes)
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
	return len(q.pending) == 0 && q.written == q.seq && q.broken.Load() == nil &&
		q.state.LastIndex() == q.snapIndex && q.log.Changes() == q.log.Marked()
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
	if q.synced < seq {
		if _, err := q.syncState(q.state.Sync, seq); err != nil {
			return nil, 0, 0, 0, err
		}
	}
	q.written, q.synced = seq, seq
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
	q.processDue(q.now())
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
	q.commitMu.Lock()
	due := q.sinceSnapshot >= q.b.opts.SnapshotEvery
	q.commitMu.Unlock()
	if due {
		keep(q.snapshot())
	}
	keep(q.compact())
	keep(q.releaseIdle())
	return errors.Join(errs...)
}

// Dead-letter moves go in batches: at most maxMovesPerBatch messages and
// maxMoveBytes of bodies held at once, and maxMovesPerRun per run.
const (
	maxMovesPerRun   = 1000
	maxMovesPerBatch = 100
	maxMoveBytes     = 4 << 20
)

// moveDead moves dead messages to the dead-letter queue, a batch at a
// time, idempotently across a crash:
//
//  1. mark each message "moving from" the dead-letter queue's next id
//     (EvMoving, fsynced);
//  2. enqueue the copies there (fsynced), each carrying its origin;
//  3. remove the messages here (fsynced).
//
// A crash after 2 leaves marked messages here whose copies exist: the
// next move finds them (by origin, from the marked id on) and only does 3.
// A crash before 2 leaves marks and no copies: the next move copies. So a
// message is in one of the two queues, never in neither and never twice.
func (q *Queue) moveDead(dlqName string) error {
	dlq, err := q.b.Queue(dlqName)
	if err != nil {
		return nil // not created (yet): messages stay dead here
	}
	q.mu.Lock()
	var dead []moveItem
	q.t.Scan(0, index.StateDead, func(id uint64, e index.Entry) bool {
		dead = append(dead, moveItem{id: id, offset: e.Offset, from: q.t.Moving(id)})
		return len(dead) < maxMovesPerRun
	})
	q.mu.Unlock()
	for len(dead) > 0 {
		n, err := q.moveBatch(dlq, dead)
		if err != nil {
			return fmt.Errorf("dead-letter %s to %s: %w", q.name, dlqName, err)
		}
		dead = dead[n:]
	}
	return nil
}

type moveItem struct {
	id     uint64
	offset uint32
	from   uint64 // Table.Moving: where a copy may stand, 0 if unmarked
}

// moveBatch moves the first messages of items (as many as a batch holds)
// and returns how many it took.
func (q *Queue) moveBatch(dlq *Queue, items []moveItem) (int, error) {
	var batch []moveItem
	var msgs []NewMessage
	bytes := 0
	for _, it := range items {
		if len(batch) == maxMovesPerBatch || (len(batch) > 0 && bytes >= maxMoveBytes) {
			break
		}
		m, err := q.read(it.id, it.offset)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", it.id, err)
		}
		zero := time.Duration(0)
		batch = append(batch, it)
		msgs = append(msgs, NewMessage{Body: m.Body, Attributes: m.Attributes, Delay: &zero, origin: &Origin{Queue: q.name, ID: it.id}})
		bytes += len(m.Body)
	}
	copied, err := dlq.copiesOf(q.name, batch)
	if err != nil {
		return 0, err
	}
	// Mark the ones without a copy, then copy them.
	var toCopy []NewMessage
	q.mu.Lock()
	from := dlq.live().log.LastID() + 1 // every copy enqueued from now on gets an id ≥ from
	for i, it := range batch {
		if !copied[it.id] && q.applyLocked(index.Event{Type: index.EvMoving, ID: it.id, After: from}, 0) == nil {
			toCopy = append(toCopy, msgs[i])
		}
	}
	seq := q.seq
	q.mu.Unlock()
	if len(toCopy) > 0 {
		if err := q.commit(seq, true); err != nil {
			return 0, err
		}
		if _, err := dlq.Enqueue(toCopy); err != nil {
			return 0, err
		}
	}
	q.mu.Lock()
	for _, it := range batch {
		// Redriven or purged meanwhile: its copy (if any) stays a
		// dead letter there, the message lives on here.
		if q.t.Get(it.id).State == index.StateDead && q.applyLocked(index.Event{Type: index.EvRemove, ID: it.id}, 0) == nil {
			q.stats.deadLettered.Add(1)
		}
	}
	seq = q.seq
	q.mu.Unlock()
	return len(batch), q.commit(seq, true)
}

// copiesOf returns which of the marked items (from ≠ 0) already have a copy
// in q, the dead-letter queue, enqueued by an earlier move of origin that
// a crash cut short: a record with their origin, at or after their mark.
func (q *Queue) copiesOf(origin string, items []moveItem) (map[uint64]bool, error) {
	from := uint64(0)
	for _, it := range items {
		if it.from != 0 && (from == 0 || it.from < from) {
			from = it.from
		}
	}
	if from == 0 {
		return nil, nil
	}
	q = q.live()
	it := q.log.Iter(from)
	copied := map[uint64]bool{}
	for it.Next() {
		meta, err := DecodeMeta(it.Record().Meta)
		if err == nil && meta.Origin != nil && meta.Origin.Queue == origin {
			copied[meta.Origin.ID] = true
		}
	}
	if err := it.Err(); err != nil && !errors.Is(err, log.ErrCorrupt) {
		return nil, fmt.Errorf("look for copies in %s: %w", q.name, err)
	}
	return copied, nil
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

// reopen replaces a broken queue with a fresh one loaded from disk.
func (b *Broker) reopen(old *Queue) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.queues[old.name] != old {
		return nil
	}
	old.mu.Lock()
	old.reloading = true
	old.mu.Unlock()
	old.close(false)
	q, err := openQueue(b, old.name)
	if err != nil {
		return fmt.Errorf("reload queue %s: %w", old.name, err)
	}
	b.queues[old.name] = q
	old.replacedBy.Store(q)
	b.opts.Logger.Info("queue: reloaded from disk after a state-log failure", "queue", old.name)
	return nil
}
