package queue

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spoolq/spool/log"
)

// Online backup (Broker.Backup) copies a running broker's data directory
// as it stood at one moment, the backup point, without stopping it. The
// copy is what a crash at that moment would have left on disk, with
// nothing lost that was written: every file is append-only between
// maintenance runs, so a prefix of it is a state the broker once had, and
// opening the copy is the recovery every start does (snapshot, then the
// message log, then the state log after the snapshot).
//
//  1. No maintenance run is under way while the point is taken, and
//     until the stream ends the runs leave the files alone: no snapshot
//     (which replaces the snapshot files and truncates the state log), no
//     compaction, no segment removal by a topic's retention; the rest of
//     maintenance (fsync rounds, expiries, dead-letter moves, retention's
//     removals, which are state events) goes on. So no file is replaced
//     or removed while it is read, however slow the reader. Close waits
//     for a backup's stream to end (its snapshots would replace files).
//  2. The point: every queue's and subscription's state-log writer lock is
//     taken (so no state event is written, and no receive, ack or nack
//     returns), each writes the events it has applied, and the size of
//     every state-log file is noted with its queue.json as it is. Then the
//     locks go, and the sizes of the message-log segments are noted:
//     every record an event names was appended before the event, so it is
//     inside them.
//  3. The files are streamed as a tar archive, each cut at its noted size:
//     events and messages after the point are left out (an enqueue that
//     was in flight at the point may be in the copy, as after a crash).
//
// The backup point is one moment for every queue together, so a message
// that moves between queues (a dead-letter move, a redrive) is in one or
// both of them in the copy, never in neither. A queue or topic deleted
// while the backup runs makes it fail (run it again), as does one broken
// by a failed write (it reloads within a second); one created after the
// point is not in it; one that did not open is left out and reported.

// BackupReport says what Backup copied.
type BackupReport struct {
	Queues, Topics, Subscriptions int
	Files                         int
	Bytes                         int64
	// Skipped are the queues, topics and subscriptions left out because
	// they did not open (their files may be damaged; spool check says).
	Skipped []string
	// Point is when the backup point was taken.
	Point time.Time
}

// backupFile is one file of a backup: its path in the data directory, and
// the size to copy (-1: the whole file as it is when read), or its bytes.
type backupFile struct {
	path string
	size int64
	data []byte
}

// backupUnit is a queue or subscription at the backup point.
type backupUnit struct {
	q     *Queue
	files []backupFile
}

// Backup writes a copy of the data directory at one moment to w, as a tar
// archive of paths relative to it (see Online backup). Extracted into an
// empty directory, it opens as a data directory holding exactly what
// this one held at the backup point. Producers and consumers go on
// meanwhile; only the state-log writes stop, for as long as taking the
// point does (one write per queue).
func (b *Broker) Backup(w io.Writer) (BackupReport, error) {
	b.backups.RLock() // Close waits for the stream to end
	defer b.backups.RUnlock()
	rep, files, err := b.backupPlan()
	if err != nil {
		return rep, err
	}
	defer b.backingUp.Add(-1) // backupPlan froze the files

	tw := tar.NewWriter(w)
	if err := writeBackupFile(tw, markerName, []byte(markerText), rep.Point); err != nil {
		return rep, err
	}
	for _, f := range files {
		rel, err := filepath.Rel(b.dir, f.path)
		if err != nil {
			return rep, fmt.Errorf("backup: %w", err)
		}
		n, err := b.copyBackupFile(tw, rel, f, rep.Point)
		if err != nil {
			return rep, fmt.Errorf("backup: %s: %w", rel, err)
		}
		rep.Files++
		rep.Bytes += n
	}
	if err := tw.Close(); err != nil {
		return rep, fmt.Errorf("backup: %w", err)
	}
	return rep, nil
}

// backupPlan takes the backup point (steps 1 and 2 of Online backup) and
// returns the files to stream at their sizes. Maintenance waits only
// while it runs (it holds maintMu); on success it leaves the files frozen
// (backingUp), which the caller ends once the stream has.
func (b *Broker) backupPlan() (BackupReport, []backupFile, error) {
	b.maintMu.Lock() // no maintenance run is under way, or starts, meanwhile
	defer b.maintMu.Unlock()
	var rep BackupReport

	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return rep, nil, ErrClosed
	}
	var units []*backupUnit
	for _, name := range slices.Sorted(maps.Keys(b.queues)) {
		units = append(units, &backupUnit{q: b.queues[name]})
	}
	for name := range b.failed {
		rep.Skipped = append(rep.Skipped, name)
	}
	topics := make([]*Topic, 0, len(b.topics))
	for _, name := range slices.Sorted(maps.Keys(b.topics)) {
		topics = append(topics, b.topics[name])
	}
	b.mu.RUnlock()
	rep.Queues = len(units)
	for _, t := range topics {
		t.mu.RLock()
		for _, name := range slices.Sorted(maps.Keys(t.subs)) {
			units = append(units, &backupUnit{q: t.subs[name].q})
		}
		for name := range t.failed {
			rep.Skipped = append(rep.Skipped, t.name+"/"+name)
		}
		t.mu.RUnlock()
	}
	rep.Subscriptions = len(units) - rep.Queues
	rep.Topics = len(topics)
	slices.Sort(rep.Skipped)

	if err := b.backupPoint(units); err != nil {
		return rep, nil, err
	}
	rep.Point = b.opts.Now()

	// The message logs, after the point: their segments as they are now
	// hold every record the state logs name.
	var files []backupFile
	for _, u := range units {
		q := u.q.live()
		if q.sub == nil {
			u.files = append(u.files, segmentFiles(q.log)...)
		}
		files = append(files, u.files...)
	}
	for _, t := range topics {
		files = append(files, backupFile{path: filepath.Join(t.dir, topicFileName), size: -1})
		files = append(files, segmentFiles(t.log)...)
	}

	b.backingUp.Add(1)
	return rep, files, nil
}

// backupPoint takes the backup point (step 2 of Online backup): with
// every unit's commitMu held, each writes its applied events, and its
// state-log files and config are noted.
func (b *Broker) backupPoint(units []*backupUnit) error {
	held := make([]*Queue, 0, len(units))
	defer func() {
		for _, q := range held {
			q.commitMu.Unlock()
		}
	}()
	for _, u := range units {
		q := u.q.live()
		q.commitMu.Lock()
		held = append(held, q)
		u.q = q
	}
	for _, u := range units {
		q := u.q
		q.mu.Lock()
		seq, closed := q.seq, q.closed
		var config []byte
		var err error
		if q.sub == nil {
			config, err = encodeConfigFile(q.fileLocked())
		}
		q.mu.Unlock()
		if closed {
			return fmt.Errorf("backup: %s was deleted or closed while the backup started; run it again", q.name)
		}
		if err != nil {
			return fmt.Errorf("backup: %s: %w", q.name, err)
		}
		if err := q.writeLocked(seq); err != nil {
			return fmt.Errorf("backup: %s: %w", q.name, err)
		}
		if q.sub == nil {
			u.files = append(u.files, backupFile{path: filepath.Join(q.dir, queueFileName), data: config})
		} else {
			u.files = append(u.files, backupFile{path: filepath.Join(q.dir, subscriptionFileName), size: -1})
		}
		for _, name := range []string{snapshotName, prevSnapshotName} {
			if _, err := os.Stat(filepath.Join(q.dir, name)); err == nil {
				u.files = append(u.files, backupFile{path: filepath.Join(q.dir, name), size: -1})
			}
		}
		state, err := sizedFiles(filepath.Join(q.dir, stateDirName))
		if err != nil {
			return fmt.Errorf("backup: %s: %w", q.name, err)
		}
		// The newest segment to its entries alone: past them are
		// preallocated zeros, which the events written after the point
		// fill.
		newest, size, err := q.state.NewestSegment()
		if err != nil {
			return fmt.Errorf("backup: %s: %w", q.name, err)
		}
		for i := range state {
			if state[i].path == newest {
				state[i].size = size
			}
		}
		u.files = append(u.files, state...)
	}
	return nil
}

// segmentFiles are a message log's segments at their sizes now.
func segmentFiles(l *log.Log) []backupFile {
	segs := l.Segments()
	out := make([]backupFile, len(segs))
	for i, s := range segs {
		out[i] = backupFile{path: s.Path, size: s.Size}
	}
	return out
}

// sizedFiles are the files in dir at their sizes now.
func sizedFiles(dir string) ([]backupFile, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []backupFile
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		out = append(out, backupFile{path: filepath.Join(dir, e.Name()), size: info.Size()})
	}
	return out, nil
}

// copyBackupFile writes f to tw under the name rel and returns its size.
func (b *Broker) copyBackupFile(tw *tar.Writer, rel string, f backupFile, at time.Time) (int64, error) {
	if f.data != nil {
		return int64(len(f.data)), writeBackupFile(tw, rel, f.data, at)
	}
	file, err := b.opts.FS.OpenFile(f.path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	size := f.size
	if size < 0 {
		if size, err = file.Size(); err != nil {
			return 0, err
		}
	}
	if err := tw.WriteHeader(backupHeader(rel, size, at)); err != nil {
		return 0, err
	}
	n, err := io.Copy(tw, io.NewSectionReader(file, 0, size))
	if err == nil && n < size {
		err = fmt.Errorf("%d of %d bytes: the file shrank during the backup", n, size)
	}
	return n, err
}

// backupHeader is the tar header of a file of the backup: a regular file
// at rel, the only kind RestoreBackup takes.
func backupHeader(rel string, size int64, at time.Time) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: filepath.ToSlash(rel), Size: size, Mode: 0o644, ModTime: at}
}

func writeBackupFile(tw *tar.Writer, rel string, data []byte, at time.Time) error {
	if err := tw.WriteHeader(backupHeader(rel, int64(len(data)), at)); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

// RestoreBackup extracts a Backup archive from r into dir, which must not
// exist or be empty, and makes it durable (files and directories
// fsynced). Only what a backup holds is taken: regular files under
// queues/ and topics/ and the data-directory marker, at clean relative
// paths; anything else is refused and the extraction stops. dir then
// opens as a data directory (Open, spool serve --data) and passes Check.
func RestoreBackup(r io.Reader, dir string) (files int, bytes int64, err error) {
	if st, err := inspectDataDir(dir); err != nil || st != dataDirNew {
		if err == nil {
			err = fmt.Errorf("%w: %s is not empty", ErrInvalid, dir)
		}
		return 0, 0, fmt.Errorf("restore: %w", err)
	}
	dirs := map[string]bool{dir: true}
	for _, sub := range []string{queuesName, topicsName} { // a data directory has both, empty or not
		path := filepath.Join(dir, sub)
		if err := os.MkdirAll(path, 0o755); err != nil {
			return 0, 0, fmt.Errorf("restore: %w", err)
		}
		dirs[path] = true
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return files, bytes, fmt.Errorf("restore: the archive: %w", err)
		}
		rel := filepath.FromSlash(h.Name)
		top, _, _ := cutPath(rel)
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(rel) || filepath.Clean(rel) != rel ||
			!(rel == markerName || top == queuesName || top == topicsName) {
			return files, bytes, fmt.Errorf("restore: %w: the archive holds %q, which no backup has", ErrInvalid, h.Name)
		}
		path := filepath.Join(dir, rel)
		parent := filepath.Dir(path)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return files, bytes, fmt.Errorf("restore: %w", err)
		}
		for d := parent; !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
		}
		n, err := writeRestored(path, tr)
		bytes += n
		if err != nil {
			return files, bytes, fmt.Errorf("restore: %s: %w", h.Name, err)
		}
		files++
	}
	// Deepest first, so each directory's entry is durable in its parent.
	order := make([]string, 0, len(dirs))
	for d := range dirs {
		order = append(order, d)
	}
	slices.SortFunc(order, func(a, b string) int { return len(b) - len(a) })
	for _, d := range append(order, filepath.Dir(dir)) {
		if err := log.OS.SyncDir(d); err != nil {
			return files, bytes, fmt.Errorf("restore: %w", err)
		}
	}
	return files, bytes, nil
}

// cutPath splits a relative path at its first separator.
func cutPath(rel string) (first, rest string, ok bool) {
	for i := 0; i < len(rel); i++ {
		if os.IsPathSeparator(rel[i]) {
			return rel[:i], rel[i+1:], true
		}
	}
	return rel, "", false
}

func writeRestored(path string, r io.Reader) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	return n, errors.Join(err, f.Close())
}
