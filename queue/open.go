package queue

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"

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

func writeConfig(fsys FS, qdir string, f queueFile) error {
	return writeConfigFile(fsys, filepath.Join(qdir, queueFileName), f)
}

// writeConfigFile replaces the config file at path with one holding v,
// atomically.
func writeConfigFile(fsys FS, path string, v any) error {
	data, err := encodeConfigFile(v)
	if err != nil {
		return err
	}
	return log.WriteFileAtomic(fsys, path, data)
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
	file, err := decodeQueueFile(data)
	if err != nil {
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	q := &Queue{b: b, name: name, dir: qdir, cfg: file.Config, label: file.Label, attrs: file.Attributes}
	q.serial.Store(file.Serial)
	lg := b.opts.Logger.With("queue", name)
	q.log, err = b.openMessageLog(qdir, name, lg)
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
	if !q.log.Recovery().Clean() {
		q.repairs++ // the log reported it itself
	}
	if repair != nil {
		q.repairs++
		lg.Warn("queue: cut torn tail off the state log (an unacknowledged write)", "path", repair.Path, "offset", repair.Offset, "bytes", repair.Truncated)
	}
	if err := q.rebuild(); err != nil {
		q.log.Close()
		q.state.Close()
		return nil, fmt.Errorf("open queue %s: %w", name, err)
	}
	if file.Ordered {
		q.ordered = newOrdering()
		q.mu.Lock()
		err := q.rebuildGroupsLocked()
		if err == nil {
			err = q.loadDedupLocked(q.now())
		}
		q.mu.Unlock()
		if err != nil {
			q.log.Close()
			q.state.Close()
			return nil, fmt.Errorf("open queue %s: %w", name, err)
		}
	}
	q.mu.Lock()
	q.armTimerLocked()
	q.mu.Unlock()
	return q, nil
}

// openMessageLog opens the message log in dir/log of the queue or topic
// name, which OnCommit hears of under that name.
func (b *Broker) openMessageLog(dir, name string, lg *slog.Logger) (*log.Log, error) {
	var onCommit func(log.Commit)
	if hook := b.opts.OnCommit; hook != nil {
		onCommit = func(c log.Commit) { hook(name, c) }
	}
	return log.Open(filepath.Join(dir, logDirName), log.Options{
		FS:            b.opts.FS,
		SegmentSize:   b.opts.SegmentSize,
		MaxRecordSize: b.opts.MaxMessageBytes + MaxAttributeBytes + 64,
		Sync:          b.opts.Sync,
		SyncInterval:  b.opts.SyncInterval,
		Logger:        lg,
		OnCommit:      onCommit,
	})
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
				q.repairs++
				lg.Error("queue: damaged range in the message log; its messages cannot be delivered", "err", it.Err())
			}
		},
		events: q.replayStateLog(lg),
		badMeta: func(id uint64, err error) {
			q.repairs++
			lg.Error("queue: record with unreadable metadata: it is ready at once and goes dead when received, as damaged messages do", "id", id, "err", err)
		},
	})
	if err != nil {
		return err
	}
	if skipped > 0 {
		q.repairs++
		lg.Warn("queue: state events about messages the log no longer holds were skipped", "count", skipped)
	}
	q.written = 0
	q.synced.Store(0)
	if clean && q.state.LastIndex() == q.snapIndex && inserted <= cleanOpenRecords {
		// The snapshot file, with the few records past it, is this table:
		// opening again would rebuild the same one. Until something
		// changes, a new snapshot is not needed (see snapshot).
		q.log.Mark(q.log.Changes())
	}
	return nil
}

// replayStateLog returns the events source of replayTable and
// replaySubscriptionTable over q's open state log: an entry that fails its
// checksum is skipped, counted and logged.
func (q *Queue) replayStateLog(lg *slog.Logger) func(after uint64, apply func([]index.Event)) error {
	return func(after uint64, apply func([]index.Event)) error {
		damaged, err := q.state.Replay(after, func(_ uint64, events []index.Event) error {
			apply(events)
			return nil
		})
		q.repairs += len(damaged)
		for _, d := range damaged {
			lg.Error("queue: damaged state-log entry skipped; its changes are lost (messages may be delivered again)", "err", d)
		}
		return err
	}
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
	// written, until the first processDueLocked after startup).
	const replayNow = 0
	lastID, err := src.records(t.FirstHole(), func(id uint64, offset uint32, raw []byte) {
		meta, err := DecodeMeta(raw)
		if err != nil {
			src.badMeta(id, err)
		}
		t.InsertPriority(id, offset, priorityOr(meta.Priority), meta.ReadyAt, replayNow)
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
			q.repairs++
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

// reopen replaces a broken queue with a fresh one loaded from disk.
func (b *Broker) reopen(old *Queue) error {
	if old.sub != nil {
		return old.sub.topic.reopen(old)
	}
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
