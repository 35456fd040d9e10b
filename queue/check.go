package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// CheckReport is what Check found in a data directory.
type CheckReport struct {
	Queues []QueueCheck
}

// QueueCheck is one queue's part of a CheckReport.
type QueueCheck struct {
	Name      string
	Config    error // nil, or why queue.json does not load
	Log       *log.VerifyReport
	State     *index.StateLogReport
	Snapshots []SnapshotCheck
	Meta      error // nil, or how many records' metadata does not decode
	// Counts are the messages a server would load, by state, as the files
	// say: leases and delays are not advanced to the present, so a lease
	// that ran out while the server was down still counts as leased.
	Counts Counts
}

// SnapshotCheck says whether one snapshot file decodes.
type SnapshotCheck struct {
	Name  string
	Index uint64 // state-log index it covers, if it decodes
	Err   error
}

// Problem is one thing Check found wrong, and whether Repair fixes it.
type Problem struct {
	Queue      string
	What       string
	Repairable bool // a torn tail: a write that never completed
}

// Problems lists everything wrong, queue by queue.
func (r *CheckReport) Problems() []Problem {
	var out []Problem
	for _, q := range r.Queues {
		if q.Config != nil {
			out = append(out, Problem{Queue: q.Name, What: q.Config.Error()})
		}
		if q.Log != nil {
			for _, p := range q.Log.Problems {
				out = append(out, Problem{Queue: q.Name, What: p.String(), Repairable: p.TornTail})
			}
		}
		if q.State != nil {
			for _, p := range q.State.Problems {
				out = append(out, Problem{Queue: q.Name, What: p.String(), Repairable: p.TornTail})
			}
		}
		if q.Meta != nil {
			out = append(out, Problem{Queue: q.Name, What: q.Meta.Error()})
		}
		for _, s := range q.Snapshots {
			if s.Err != nil {
				out = append(out, Problem{Queue: q.Name, What: fmt.Sprintf("%s: %v", s.Name, s.Err)})
			}
		}
	}
	return out
}

// Check verifies every queue of the data directory dir offline: config,
// message-log segments (every frame and record), state log (every entry)
// and snapshots. It changes nothing. It refuses (ErrLocked) a directory a
// server holds, and fails only when it cannot read; damage goes in the
// report.
func Check(dir string) (*CheckReport, error) {
	rep := &CheckReport{}
	err := eachQueue(dir, "check", func(qdir, name string) error {
		qc, err := checkQueue(qdir, name)
		rep.Queues = append(rep.Queues, qc)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// eachQueue holds the directory lock of the data directory dir and calls
// fn for each queue directory in it.
func eachQueue(dir, what string, fn func(qdir, name string) error) error {
	unlock, err := lockExisting(dir)
	if err != nil {
		return err
	}
	defer unlock()
	root := filepath.Join(dir, queuesName)
	names, err := log.OS.ReadDir(root)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	for _, name := range names {
		if ValidName(name) {
			if err := fn(filepath.Join(root, name), name); err != nil {
				return err
			}
		}
	}
	return nil
}

// lockExisting takes the directory lock of an existing data directory
// without creating anything else in it. A directory that is not spool's
// is refused before anything is written to it.
func lockExisting(dir string) (func() error, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("no data directory at %s: it does not exist: %w", dir, fs.ErrNotExist)
		case err == nil:
			return nil, fmt.Errorf("%w: %s is not a directory", ErrNotDataDir, dir)
		}
		return nil, fmt.Errorf("check %s: %w", dir, err)
	}
	kind, err := inspectDataDir(dir)
	if err != nil {
		return nil, err
	}
	if kind == dataDirNew {
		return nil, fmt.Errorf("%w: %s is empty", ErrNotDataDir, dir)
	}
	return lockDir(filepath.Join(dir, lockName))
}

func checkQueue(qdir, name string) (QueueCheck, error) {
	qc := QueueCheck{Name: name}
	if data, err := os.ReadFile(filepath.Join(qdir, queueFileName)); errors.Is(err, fs.ErrNotExist) {
		qc.Config = fmt.Errorf("no %s: spool did not create this directory, and a server leaves it alone (move it out of the data directory)", queueFileName)
		return qc, nil
	} else if err != nil {
		qc.Config = err
	} else if _, err := decodeQueueFile(data); err != nil {
		qc.Config = err
	}
	// The snapshot a server would load; an unreadable file is reported
	// (in qc.Snapshots) rather than stopping the check.
	snap, files, _ := readSnapshots(qdir, true)
	qc.Snapshots = files
	// One read-only pass over each log both verifies it and replays it
	// into the table a server would load, for the counts.
	var badMeta int
	_, err := replayTable(snap.Table, snap.StateIndex, tableSource{
		records: func(from uint64, insert func(id uint64, offset uint32, meta []byte)) (uint64, error) {
			rep, err := log.Verify(filepath.Join(qdir, logDirName), log.VerifyOptions{Visit: func(r log.Record, pos log.Position) {
				if r.ID >= from {
					insert(r.ID, uint32(pos.Offset), r.Meta)
				}
			}})
			if errors.Is(err, fs.ErrNotExist) {
				return 0, nil
			}
			qc.Log = rep
			var lastID uint64
			if rep != nil && len(rep.Segments) > 0 {
				lastID = rep.Segments[len(rep.Segments)-1].LastID
			}
			return lastID, err
		},
		events: func(after uint64, apply func([]index.Event)) error {
			rep, err := index.VerifyStateLog(filepath.Join(qdir, stateDirName), func(i uint64, events []index.Event) {
				if i > after {
					apply(events)
				}
			})
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			qc.State = rep
			return err
		},
		badMeta: func(uint64, error) { badMeta++ },
	})
	if err != nil {
		return qc, fmt.Errorf("check queue %s: %w", name, err)
	}
	if badMeta > 0 {
		qc.Meta = fmt.Errorf("%d records with metadata that does not decode (delivered without their delay and attributes)", badMeta)
	}
	qc.Counts = countsOf(snap.Table)
	return qc, nil
}

// Repair cuts the torn tails Check reports (writes that never completed,
// so were never acknowledged) off every queue's message log and state log,
// as opening the queue would, and nothing else: damage elsewhere stays for
// a person to look at. It refuses (ErrLocked) a directory a server holds.
func Repair(dir string) error {
	return eachQueue(dir, "repair", func(qdir, name string) error {
		if _, err := os.Stat(filepath.Join(qdir, queueFileName)); errors.Is(err, fs.ErrNotExist) {
			return nil // not spool's: nothing is written into it
		}
		l, err := log.Open(filepath.Join(qdir, logDirName), log.Options{Logger: discardLogger()})
		if err == nil {
			err = l.Close()
		}
		if err != nil {
			return fmt.Errorf("repair queue %s: %w", name, err)
		}
		st, _, err := index.OpenStateLog(filepath.Join(qdir, stateDirName), log.PathOps{FS: log.OS})
		if err == nil {
			err = st.Close()
		}
		if err != nil {
			return fmt.Errorf("repair queue %s: %w", name, err)
		}
		return nil
	})
}
