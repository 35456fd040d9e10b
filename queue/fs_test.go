package queue

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spoolq/spool/log"
)

// recordingFS is the real file system, noting every write-side call
// (opens for writing, renames, removes, directory fsyncs) by path relative
// to the data directory, so a test can see what went through Options.FS.
type recordingFS struct {
	log.FS
	root string
	mu   sync.Mutex
	ops  []string
}

func (r *recordingFS) note(op, path string) {
	rel, err := filepath.Rel(r.root, path)
	if err != nil {
		rel = path
	}
	r.mu.Lock()
	r.ops = append(r.ops, op+" "+filepath.ToSlash(rel))
	r.mu.Unlock()
}

func (r *recordingFS) OpenFile(name string, flag int, perm fs.FileMode) (log.File, error) {
	if flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE) != 0 {
		r.note("write", name)
	} else {
		r.note("open", name)
	}
	return r.FS.OpenFile(name, flag, perm)
}

func (r *recordingFS) Rename(oldpath, newpath string) error {
	r.note("rename", newpath)
	return r.FS.Rename(oldpath, newpath)
}

func (r *recordingFS) RemoveAll(path string) error {
	r.note("removeall", path)
	return r.FS.RemoveAll(path)
}

func (r *recordingFS) SyncDir(dir string) error {
	r.note("syncdir", dir)
	return r.FS.SyncDir(dir)
}

// saw reports whether an op matching op and the path pattern was noted.
func (r *recordingFS) saw(op, pattern string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.ops, func(s string) bool {
		o, p, _ := strings.Cut(s, " ")
		ok, _ := filepath.Match(pattern, p)
		return o == op && ok
	})
}

func TestEveryFileAQueueWritesGoesThroughOptionsFS(t *testing.T) {
	dir := t.TempDir()
	rec := &recordingFS{FS: log.OS, root: dir}
	opts := testOptions(newClock())
	opts.FS = rec
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "jobs", ConfigUpdate{})
	enqueue(t, q, "a", "b")
	msgs, err := q.Receive(t.Context(), ReceiveOptions{Max: 1})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %v, %v", msgs, err)
	}
	if _, err := q.Ack([]Receipt{msgs[0].Receipt}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Create("jobs", ConfigUpdate{MaxAttempts: ptr(7)}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, b, "gone", ConfigUpdate{})
	if err := b.Delete("gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil { // writes the snapshot
		t.Fatal(err)
	}
	for _, want := range []struct{ op, path string }{
		{"write", "SPOOL.tmp"},    // the data directory's marker
		{"rename", "queues/jobs"}, // the staged create, renamed into place
		{"write", "queues/.creating-jobs-*/queue.json.tmp"},
		{"syncdir", "queues"},                    // creates and deletes made durable
		{"write", "queues/jobs/log/*.seg"},       // message segments
		{"syncdir", "queues/jobs/log"},           //
		{"open", "queues/jobs/state/*"},          // the state log's fsync
		{"write", "queues/jobs/queue.json.tmp"},  // the config update
		{"rename", "queues/jobs/queue.json"},     //
		{"write", "queues/jobs/snapshot.tmp"},    // the snapshot at close
		{"rename", "queues/jobs/snapshot"},       //
		{"rename", "queues/.deleting-gone-*"},    // the delete
		{"removeall", "queues/.deleting-gone-*"}, //
	} {
		if !rec.saw(want.op, want.path) {
			t.Errorf("no %s of %s went through Options.FS; saw:\n%s", want.op, want.path, strings.Join(rec.ops, "\n"))
		}
	}
}
