package queue

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// lockedBuffer is a bytes.Buffer a logger may write to from several
// goroutines (Open opens queues in parallel).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// What an operator reads in the log: a summary when the data directory
// opens, a line per queue created, updated or deleted, and a warning for a
// dead-letter target that does not exist.
func TestTheLogSaysWhatHappensToQueues(t *testing.T) {
	dir := t.TempDir()
	var logs lockedBuffer
	opts := testOptions(newClock())
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	b := mustOpen(t, dir, opts)
	if got := logs.take(); !strings.Contains(got, `msg="queue: data directory opened"`) || !strings.Contains(got, "queues=0") {
		t.Fatalf("opening an empty directory logged:\n%s", got)
	}

	q := mustCreate(t, b, "jobs", ConfigUpdate{DeadLetterQueue: ptr("jobs-dead")})
	enqueue(t, q, "a", "b", "c")
	got := logs.take()
	for _, want := range []string{
		`msg="queue: created" queue=jobs`,
		`level=WARN msg="queue: its dead-letter queue does not exist (yet): dead messages stay in this queue until it is created" queue=jobs dead_letter_queue=jobs-dead`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("creating jobs: no %q in:\n%s", want, got)
		}
	}
	mustCreate(t, b, "jobs-dead", ConfigUpdate{})
	if _, _, err := b.Create("jobs", ConfigUpdate{MaxAttempts: ptr(3)}); err != nil {
		t.Fatal(err)
	}
	got = logs.take()
	if !strings.Contains(got, `msg="queue: config updated" queue=jobs`) || strings.Contains(got, "does not exist") {
		t.Errorf("updating jobs once its dead-letter queue exists logged:\n%s", got)
	}
	if _, _, err := b.Create("jobs", ConfigUpdate{}); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); got != "" {
		t.Errorf("an empty update logged:\n%s", got)
	}
	if err := b.Delete("jobs-dead"); err != nil {
		t.Fatal(err)
	}
	if got := logs.take(); !strings.Contains(got, `msg="queue: deleted" queue=jobs-dead`) {
		t.Errorf("deleting logged:\n%s", got)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = mustOpen(t, dir, opts)
	got = logs.take()
	for _, want := range []string{"queues=1", "messages=3", "ready=3", "repairs=0"} {
		if !strings.Contains(got, want) {
			t.Errorf("reopening: no %q in the summary:\n%s", want, got)
		}
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	// A torn write at the end of the message log: cut, and counted.
	segs, _ := filepath.Glob(filepath.Join(dir, "queues", "jobs", "log", "*.seg"))
	if len(segs) == 0 {
		t.Fatal("no segment")
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("torn write"))
	f.Close()
	mustOpen(t, dir, opts)
	if got := logs.take(); !strings.Contains(got, "repairs=1") || !strings.Contains(got, "messages=3") {
		t.Errorf("reopening after a torn write: want repairs=1 and the 3 messages in:\n%s", got)
	}
}
