package api

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
)

// blockingWriter's first Write waits for release; a Write after fail is
// set fails.
type blockingWriter struct {
	entered, release chan struct{}
	mu               sync.Mutex
	writes           []string
	fail             error
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	first := len(w.writes) == 0
	w.writes = append(w.writes, string(p))
	fail := w.fail
	w.mu.Unlock()
	if first {
		close(w.entered)
		<-w.release
	}
	if fail != nil {
		return 0, fail
	}
	return len(p), nil
}

func (cw *commandWriter) queuedLines() int {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	return bytes.Count(cw.queued, []byte("\n"))
}

// Lines sent while a write is under way go out together in the next one,
// each whole; a failed write fails its senders and every later one.
func TestCommandWriterGroupsLinesSentDuringAWrite(t *testing.T) {
	w := &blockingWriter{entered: make(chan struct{}), release: make(chan struct{})}
	cw := newCommandWriter(w)
	firstDone := make(chan error, 1)
	go func() { firstDone <- cw.send([]byte("first\n")) }()
	<-w.entered
	const senders = 10
	errs := make(chan error, senders)
	for i := range senders {
		go func() { errs <- cw.send(fmt.Appendf(nil, "line %d\n", i)) }()
	}
	waitFor(t, "every line to queue", func() bool { return cw.queuedLines() == senders })
	close(w.release)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	for range senders {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if len(w.writes) != 2 || w.writes[0] != "first\n" {
		t.Fatalf("writes %q, want the first line then one write of the rest", w.writes)
	}
	got := strings.Split(strings.TrimSuffix(w.writes[1], "\n"), "\n")
	sort.Strings(got)
	var want []string
	for i := range senders {
		want = append(want, fmt.Sprintf("line %d", i))
	}
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("second write's lines %q, want %q", got, want)
	}

	broken := errors.New("pipe gone")
	w.mu.Lock()
	w.fail = broken
	w.mu.Unlock()
	if err := cw.send([]byte("x\n")); !errors.Is(err, broken) {
		t.Errorf("send over a failing write: %v, want %v", err, broken)
	}
	if err := cw.send([]byte("y\n")); !errors.Is(err, broken) {
		t.Errorf("send after a failed write: %v, want %v", err, broken)
	}
	if len(w.writes) != 3 {
		t.Errorf("%d writes, want 3: nothing is written after a failure", len(w.writes))
	}
}
