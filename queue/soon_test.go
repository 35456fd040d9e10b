//go:build unix

package queue

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// soonRun is a broker on lossyFS whose state-log fsyncs a test can hold.
type soonRun struct {
	t      *testing.T
	dir    string
	fs     *lossyFS
	opts   Options
	b      *Broker
	q      *Queue
	held   atomic.Bool   // state-log fsyncs wait for release while set
	holds  chan struct{} // one send per fsync that started waiting
	free   chan struct{} // closed to let held fsyncs go on
	rounds atomic.Int32  // state-log fsyncs done (Options.OnStateSync)
	synced chan struct{} // one send per fsync done
}

func newSoonRun(t *testing.T) *soonRun {
	root := t.TempDir()
	stash := filepath.Join(root, "stash")
	if err := os.Mkdir(stash, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &soonRun{t: t, dir: filepath.Join(root, "data"), holds: make(chan struct{}, 64), free: make(chan struct{}), synced: make(chan struct{}, 64)}
	r.fs = newLossyFS(r.dir, stash)
	r.fs.beforeSync = func(path string) {
		if r.held.Load() && strings.Contains(path, string(filepath.Separator)+"state"+string(filepath.Separator)) {
			r.holds <- struct{}{}
			<-r.free
		}
	}
	r.opts = Options{Sync: log.SyncAlways, FS: r.fs, Logger: quiet, MaintenanceInterval: -1,
		OnStateSync: func(string, int, time.Duration) { r.rounds.Add(1); r.synced <- struct{}{} }}
	r.b = mustOpen(t, r.dir, r.opts)
	r.q = mustCreate(t, r.b, "q", ConfigUpdate{})
	return r
}

// leased enqueues n messages (durably) and leases them all.
func (r *soonRun) leased(n int) []Message {
	r.t.Helper()
	msgs := make([]NewMessage, n)
	for i := range msgs {
		msgs[i].Body = []byte{byte('a' + i)}
	}
	if _, err := r.q.Enqueue(msgs); err != nil {
		r.t.Fatal(err)
	}
	got, err := r.q.Receive(context.Background(), ReceiveOptions{Max: n, Visibility: time.Hour})
	if err != nil || len(got) != n {
		r.t.Fatalf("Receive: %d messages, %v", len(got), err)
	}
	return got
}

// waitHold waits for an fsync to be held.
func (r *soonRun) waitHold() {
	r.t.Helper()
	select {
	case <-r.holds:
	case <-time.After(10 * time.Second):
		r.t.Fatal("no state-log fsync started")
	}
}

// powerCut cuts the power, lets held fsyncs go on (they fail), and opens
// the broker again on what the disk kept.
func (r *soonRun) powerCut() {
	r.t.Helper()
	r.fs.Cut()
	if r.held.Swap(false) {
		close(r.free)
	}
	r.b.Close()
	if err := r.fs.Restore(); err != nil {
		r.t.Fatal(err)
	}
	r.b = mustOpen(r.t, r.dir, r.opts)
	q, err := r.b.Queue("q")
	if err != nil {
		r.t.Fatal(err)
	}
	r.q = q
}

// ready returns the bodies that are ready, in order.
func (r *soonRun) ready() string {
	r.t.Helper()
	msgs, err := r.q.Peek(0, 100)
	if err != nil {
		r.t.Fatal(err)
	}
	var b strings.Builder
	for _, m := range msgs {
		b.Write(m.Body)
	}
	return b.String()
}

// TestAckSoonReturnsBeforeItsFsync: AckSoon and NackSoon return while
// their fsync is held, a background round (started by nobody else) is
// the one held, and a power cut before it ends undoes them, as the doc
// says.
func TestAckSoonReturnsBeforeItsFsync(t *testing.T) {
	r := newSoonRun(t)
	msgs := r.leased(3)
	r.held.Store(true)
	done := make(chan error, 1)
	go func() {
		errs, err := r.q.AckSoon([]Receipt{msgs[0].Receipt})
		if err == nil {
			errs, err = r.q.NackSoon([]Receipt{msgs[1].Receipt}, NackOptions{Front: true})
		}
		done <- errors.Join(append(errs, err)...)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("AckSoon, NackSoon: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("AckSoon or NackSoon waited for its fsync")
	}
	r.waitHold() // the background round, fsyncing both
	if n := r.rounds.Load(); n != 0 {
		t.Fatalf("%d state-log fsyncs done while the first was held", n)
	}
	r.powerCut()
	// Neither the ack nor the nack nor the leases before them were
	// fsynced: every message is ready again, as enqueued.
	if got := r.ready(); got != "abc" {
		t.Fatalf("ready after the power cut: %q, want %q", got, "abc")
	}
}

// TestAckSoonDurableAfterItsRound: once the background round that AckSoon
// started has ended, with no other call made, its acks and nacks survive
// a power cut; AckSoons made while a round is under way share the next
// one.
func TestAckSoonDurableAfterItsRound(t *testing.T) {
	r := newSoonRun(t)
	msgs := r.leased(26)
	r.held.Store(true)
	if _, err := r.q.AckSoon([]Receipt{msgs[0].Receipt}); err != nil {
		t.Fatal(err)
	}
	r.waitHold()
	// While round one fsyncs: 24 more acks and a nack, each its own call.
	for _, m := range msgs[1:25] {
		if errs, err := r.q.AckSoon([]Receipt{m.Receipt}); err != nil || errs[0] != nil {
			t.Fatalf("AckSoon(%s): %v %v", m.Receipt, errs, err)
		}
	}
	if errs, err := r.q.NackSoon([]Receipt{msgs[25].Receipt}, NackOptions{}); err != nil || errs[0] != nil {
		t.Fatalf("NackSoon: %v %v", errs, err)
	}
	r.held.Store(false)
	close(r.free)
	for range 2 {
		select {
		case <-r.synced:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d background fsync rounds ended; want 2", r.rounds.Load())
		}
	}
	r.powerCut()
	if got := r.ready(); got != "z" {
		t.Fatalf("ready after the power cut: %q, want %q (25 acked, the nacked one back)", got, "z")
	}
	if n := r.rounds.Load(); n != 2 {
		t.Fatalf("%d fsync rounds for 26 soon calls, want 2 (the held one and one shared by the rest)", n)
	}
}

// TestAckSoonStaleReceipt: a stale receipt is reported at once, as Ack
// does, and changes nothing.
func TestAckSoonStaleReceipt(t *testing.T) {
	r := newSoonRun(t)
	msgs := r.leased(1)
	if _, err := r.q.Ack([]Receipt{msgs[0].Receipt}); err != nil {
		t.Fatal(err)
	}
	errs, err := r.q.AckSoon([]Receipt{msgs[0].Receipt})
	if err != nil || len(errs) != 1 || !errors.Is(errs[0], ErrStaleReceipt) {
		t.Fatalf("AckSoon of an acked message: %v %v, want ErrStaleReceipt", errs, err)
	}
	if _, err := r.q.NackSoon([]Receipt{msgs[0].Receipt}, NackOptions{Delay: -time.Second}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("NackSoon with a negative delay: %v, want ErrInvalid", err)
	}
}
