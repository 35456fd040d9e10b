package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// CheckReport is what Check found in a data directory.
type CheckReport struct {
	Queues []QueueCheck
	Topics []TopicCheck
}

// TopicCheck is one topic's part of a CheckReport.
type TopicCheck struct {
	Name   string
	Config error // nil, or why topic.json does not load
	Log    *log.VerifyReport
	Meta   error // nil, or how many records' metadata does not decode
	// Subscriptions are named "topic/subscription"; their Log is nil (the
	// topic's is theirs). Their counts are of the messages they have read
	// (unread ones are not in a subscription's state).
	Subscriptions []QueueCheck
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

// Problems lists everything wrong, queue by queue, then topic by topic.
func (r *CheckReport) Problems() []Problem {
	var out []Problem
	for _, q := range r.Queues {
		out = append(out, q.problems()...)
	}
	for _, t := range r.Topics {
		if t.Config != nil {
			out = append(out, Problem{Queue: t.Name, What: t.Config.Error()})
		}
		if t.Log != nil {
			for _, p := range t.Log.Problems {
				out = append(out, Problem{Queue: t.Name, What: p.String(), Repairable: p.TornTail})
			}
		}
		if t.Meta != nil {
			out = append(out, Problem{Queue: t.Name, What: t.Meta.Error()})
		}
		for _, s := range t.Subscriptions {
			out = append(out, s.problems()...)
		}
	}
	return out
}

// problems lists what is wrong with one queue or subscription.
func (q QueueCheck) problems() []Problem {
	var out []Problem
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
	return out
}

// Check verifies every queue and topic of the data directory dir offline: config,
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
	}, func(tdir, name string) error {
		tc, err := checkTopic(tdir, name)
		rep.Topics = append(rep.Topics, tc)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// eachQueue holds the directory lock of the data directory dir and calls
// queueFn for each queue directory in it, then topicFn for each topic
// directory.
func eachQueue(dir, what string, queueFn, topicFn func(dir, name string) error) error {
	unlock, err := lockExisting(dir)
	if err != nil {
		return err
	}
	defer unlock()
	if err := eachNamedDir(filepath.Join(dir, queuesName), queueFn); err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	if err := eachNamedDir(filepath.Join(dir, topicsName), topicFn); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	return nil
}

// eachNamedDir calls fn for each entry of root with a valid name.
func eachNamedDir(root string, fn func(dir, name string) error) error {
	names, err := log.OS.ReadDir(root)
	if err != nil {
		return err
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
	return eachQueue(dir, "repair", repairQueue, repairTopic)
}

func repairQueue(qdir, name string) error {
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
	if err := repairStateLog(qdir); err != nil {
		return fmt.Errorf("repair queue %s: %w", name, err)
	}
	return nil
}

func repairStateLog(dir string) error {
	st, _, err := index.OpenStateLog(filepath.Join(dir, stateDirName), log.PathOps{FS: log.OS})
	if err == nil {
		err = st.Close()
	}
	return err
}

func repairTopic(tdir, name string) error {
	if _, err := os.Stat(filepath.Join(tdir, topicFileName)); errors.Is(err, fs.ErrNotExist) {
		return nil // not spool's: nothing is written into it
	}
	l, err := log.Open(filepath.Join(tdir, logDirName), log.Options{Logger: discardLogger()})
	if err == nil {
		err = l.Close()
	}
	if err != nil {
		return fmt.Errorf("repair topic %s: %w", name, err)
	}
	err = eachNamedDir(filepath.Join(tdir, subscriptionsDirName), func(sdir, sub string) error {
		if _, err := os.Stat(filepath.Join(sdir, subscriptionFileName)); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err := repairStateLog(sdir); err != nil {
			return fmt.Errorf("subscription %s: %w", sub, err)
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("repair topic %s: %w", name, err)
	}
	return nil
}

// checkTopic verifies a topic offline: topic.json, its log (every frame
// and record) and each subscription's sub.json, state log and snapshots,
// replaying each into the table a server would load, for the counts.
func checkTopic(tdir, name string) (TopicCheck, error) {
	tc := TopicCheck{Name: name}
	if data, err := os.ReadFile(filepath.Join(tdir, topicFileName)); err != nil {
		tc.Config = err
	} else if err := DecodeConfigFile(data, new(TopicConfig)); err != nil {
		tc.Config = err
	}
	// The records, as subscriptions read them in: 24 bytes each, held
	// for the check only.
	recs := recordList{now: time.Now().UnixNano()}
	badMeta := 0
	rep, err := log.Verify(filepath.Join(tdir, logDirName), log.VerifyOptions{Visit: func(r log.Record, pos log.Position) {
		meta, err := DecodeMeta(r.Meta)
		if err != nil {
			badMeta++
		}
		recs.recs = append(recs.recs, unreadRecord{id: r.ID, offset: uint32(pos.Offset), readyAt: meta.ReadyAt})
	}})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return tc, fmt.Errorf("check topic %s: %w", name, err)
	}
	tc.Log = rep
	first := uint64(1)
	if rep != nil && len(rep.Segments) > 0 {
		first, recs.lastID = rep.Segments[0].Base, rep.Segments[len(rep.Segments)-1].LastID
	}
	if badMeta > 0 {
		tc.Meta = fmt.Errorf("%d records with metadata that does not decode (delivered without their delay and attributes)", badMeta)
	}
	err = eachNamedDir(filepath.Join(tdir, subscriptionsDirName), func(sdir, sub string) error {
		sc, err := checkSubscription(sdir, name+"/"+sub, &recs, first)
		tc.Subscriptions = append(tc.Subscriptions, sc)
		return err
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return tc, fmt.Errorf("check topic %s: %w", name, err)
	}
	return tc, nil
}

func checkSubscription(sdir, name string, recs *recordList, first uint64) (QueueCheck, error) {
	sc := QueueCheck{Name: name}
	var f subscriptionFile
	if data, err := os.ReadFile(filepath.Join(sdir, subscriptionFileName)); err != nil {
		sc.Config = err
	} else if err := DecodeConfigFile(data, &f); err != nil {
		sc.Config = err
	}
	snap, files, _ := readSnapshots(sdir, true)
	sc.Snapshots = files
	_, err := replaySubscriptionTable(snap.Table, snap.StateIndex, max(f.StartID, 1), subSource{
		records: recs,
		events: func(after uint64, apply func([]index.Event)) error {
			rep, err := index.VerifyStateLog(filepath.Join(sdir, stateDirName), func(i uint64, events []index.Event) {
				if i > after {
					apply(events)
				}
			})
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			sc.State = rep
			return err
		},
	})
	if err != nil {
		return sc, fmt.Errorf("check subscription %s: %w", name, err)
	}
	if unfinishedBelow(snap.Table, first) {
		snap.Table.Skip(first - 1) // as opening it does: retention removed them
	}
	sc.Counts = countsOf(snap.Table)
	return sc, nil
}

// LogTotals sums a message log's verify report (none: zeros): how many
// segments, records and bytes it found.
func LogTotals(rep *log.VerifyReport) (segments, records int, bytes int64) {
	if rep == nil {
		return 0, 0, 0
	}
	for _, s := range rep.Segments {
		segments++
		records += s.Records
		bytes += s.Size
	}
	return segments, records, bytes
}
