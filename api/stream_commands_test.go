package api

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

// blockingAcks is a consumer whose first Ack waits for release, so a test
// can queue commands while a group is being applied; it records each
// Ack's group.
type blockingAcks struct {
	consumer // the rest is not called
	entered  chan struct{}
	release  chan struct{}
	mu       sync.Mutex
	groups   [][]queue.Receipt
}

func (c *blockingAcks) Ack(receipts []queue.Receipt) ([]error, error) {
	c.mu.Lock()
	first := len(c.groups) == 0
	c.groups = append(c.groups, slices.Clone(receipts))
	c.mu.Unlock()
	if first {
		close(c.entered)
		<-c.release
	}
	return make([]error, len(receipts)), nil
}

// recordingWire is a stream's response, kept.
type recordingWire struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (w *recordingWire) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}
func (w *recordingWire) Flush() error                     { return nil }
func (w *recordingWire) SetReadDeadline(time.Time) error  { return nil }
func (w *recordingWire) SetWriteDeadline(time.Time) error { return nil }

func (w *recordingWire) lines(t *testing.T) []string {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(w.buf.Bytes()))
	for sc.Scan() {
		var r StreamReply
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("reply %q: %v", sc.Text(), err)
		}
		switch {
		case r.OK != "":
			out = append(out, "ok "+r.OK)
		case r.Error != nil:
			out = append(out, "error "+r.Error.Code)
		}
	}
	return out
}

func newCommandsStream(c consumer) (*streamState, *recordingWire) {
	w := &recordingWire{}
	st := &streamState{c: c, wire: w, out: map[queue.Receipt]time.Time{}, room: make(chan struct{}, 1)}
	st.commands.init(st)
	return st, w
}

func ackOp(t *testing.T, i int) streamOp {
	t.Helper()
	text := fmt.Sprintf("%d.1", i)
	op, err := decodeStreamCommand([]byte(`{"ack":"`+text+`"}`), 100)
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func (sc *streamCommands) queuedLen() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.queued)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond) // polling a condition, not ordering events
	}
}

// The commands read while a group waits for its fsync go together in the
// next group, in order; a bad line is answered where it came.
func TestStreamCommandsGroupWhatComesDuringAnApply(t *testing.T) {
	c := &blockingAcks{entered: make(chan struct{}), release: make(chan struct{})}
	st, w := newCommandsStream(c)
	st.commands.add(ackOp(t, 1))
	<-c.entered
	for i := 2; i <= 50; i++ {
		st.commands.add(ackOp(t, i))
	}
	st.commands.add(streamOp{kind: badLine, bad: replyError(errBadRequest, "not JSON")})
	st.commands.add(ackOp(t, 51))
	close(c.release)
	st.commands.drain()

	var sizes []int
	for _, g := range c.groups {
		sizes = append(sizes, len(g))
	}
	if want := []int{1, 49, 1}; !slices.Equal(sizes, want) {
		t.Errorf("ack groups %v, want %v", sizes, want)
	}
	var want []string
	for i := 1; i <= 50; i++ {
		want = append(want, fmt.Sprintf("ok %d.1", i))
	}
	want = append(want, "error invalid_request", "ok 51.1")
	if got := w.lines(t); !slices.Equal(got, want) {
		t.Errorf("replies\n%v\nwant\n%v", got, want)
	}
	if st.commands.applying || st.commands.queued != nil || st.commands.spare != nil {
		t.Errorf("an idle stream still holds its burst: applying %v, queued cap %d, spare cap %d",
			st.commands.applying, cap(st.commands.queued), cap(st.commands.spare))
	}
}

// No more than maxQueuedCommands wait: the reader waits past that.
func TestStreamCommandsAreBounded(t *testing.T) {
	c := &blockingAcks{entered: make(chan struct{}), release: make(chan struct{})}
	st, _ := newCommandsStream(c)
	const more = maxQueuedCommands + 44
	st.commands.add(ackOp(t, more+1))
	<-c.entered
	added := make(chan struct{})
	go func() {
		defer close(added)
		for i := 1; i <= more; i++ {
			st.commands.add(ackOp(t, i))
		}
	}()
	waitFor(t, "the queue to fill", func() bool { return st.commands.queuedLen() == maxQueuedCommands })
	select {
	case <-added:
		t.Fatal("every command was queued while none could be applied")
	default:
	}
	close(c.release)
	<-added
	st.commands.drain()

	total := 0
	for i, g := range c.groups {
		if len(g) > maxQueuedCommands {
			t.Errorf("group %d has %d commands, over %d", i, len(g), maxQueuedCommands)
		}
		total += len(g)
	}
	if len(c.groups) < 3 || len(c.groups[0]) != 1 || len(c.groups[1]) != maxQueuedCommands {
		t.Errorf("groups of %d then %d (of %d groups), want 1 then %d", len(c.groups[0]), len(c.groups[1]), len(c.groups), maxQueuedCommands)
	}
	if total != more+1 {
		t.Errorf("%d acks applied, want %d", total, more+1)
	}
}
