//go:build linux

package queue

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// openFDs counts this process's open file descriptors.
func openFDs(tb testing.TB) int {
	tb.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		tb.Fatal(err)
	}
	return len(ents)
}

// goroutinesSettled returns the goroutine count once it stops falling
// (goroutines that were told to stop may take a moment to be gone).
func goroutinesSettled() int {
	n := runtime.NumGoroutine()
	for range 100 {
		time.Sleep(time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return m
		}
		n = m
	}
	return n
}

// makeManyQueues creates n empty queues q0000.. in dir and closes the
// broker.
func makeManyQueues(tb testing.TB, dir string, n int) {
	tb.Helper()
	b, err := Open(dir, Options{MaintenanceInterval: -1, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				_, _, errs[i] = b.Create(fmt.Sprintf("q%04d", i), ConfigUpdate{})
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := b.Close(); err != nil {
		tb.Fatal(err)
	}
}

// snapshotFiles lists the snapshot files under dir with their
// modification times.
func snapshotFiles(tb testing.TB, dir string) map[string]time.Time {
	tb.Helper()
	files := map[string]time.Time{}
	for _, pattern := range []string{snapshotName, prevSnapshotName} {
		paths, err := filepath.Glob(filepath.Join(dir, queuesName, "*", pattern))
		if err != nil {
			tb.Fatal(err)
		}
		for _, p := range paths {
			st, err := os.Stat(p)
			if err != nil {
				tb.Fatal(err)
			}
			files[p] = st.ModTime()
		}
	}
	return files
}

// TestManyIdleQueuesCostLittle: a broker of 500 queues that only opened
// holds no file and no goroutine per queue, and closing it fsyncs nothing
// and writes no snapshot: nothing happened. It once held 2 files and a
// goroutine per queue, and wrote and fsynced a snapshot of each at close
// (5,000 queues took 9-12 s to stop).
func TestManyIdleQueuesCostLittle(t *testing.T) {
	const n = 500
	dir := t.TempDir()
	makeManyQueues(t, dir, n)
	// A queue with something in it, snapshotted at the last close: still
	// nothing to do at the next one.
	b := mustOpen(t, dir, Options{MaintenanceInterval: -1, Logger: quiet})
	q := mustQueue(t, b, "q0000")
	enqueue(t, q, "a", "b")
	if _, err := q.Ack(receipts(receive(t, q, 1))); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	before := snapshotFiles(t, dir)
	if len(before) == 0 {
		t.Fatal("no snapshot of q0000")
	}

	fds, gs := openFDs(t), goroutinesSettled()
	var stateSyncs, commits atomic.Int64
	opts := Options{MaintenanceInterval: -1, Logger: quiet,
		OnStateSync: func(string, int, time.Duration) { stateSyncs.Add(1) },
		OnCommit:    func(string, log.Commit) { commits.Add(1) },
	}
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got := len(b.List()); got != n {
		t.Fatalf("%d queues listed, want %d", got, n)
	}
	if got := b.MaxOpenFiles(); got != 2*n {
		t.Errorf("MaxOpenFiles = %d, want %d (a segment and a state log per queue)", got, 2*n)
	}
	if got := openFDs(t) - fds; got > n/20 {
		t.Errorf("the open broker holds %d more files for %d queues that were only opened, want none per queue", got, n)
	}
	if got := goroutinesSettled() - gs; got > n/20 {
		t.Errorf("the open broker runs %d more goroutines for %d idle queues, want none per queue", got, n)
	}
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if got := stateSyncs.Load(); got != 0 {
		t.Errorf("closing %d idle queues fsynced their state logs %d times, want 0", n, got)
	}
	if got := commits.Load(); got != 0 {
		t.Errorf("closing %d idle queues made %d message-log commits, want 0", n, got)
	}
	after := snapshotFiles(t, dir)
	for p, mtime := range after {
		if was, ok := before[p]; !ok || !was.Equal(mtime) {
			t.Errorf("closing idle queues wrote %s", p)
		}
	}
	if len(after) != len(before) {
		t.Errorf("snapshot files: %d before, %d after closing idle queues", len(before), len(after))
	}
	if got := openFDs(t); got > fds {
		t.Errorf("after Close %d files are open, %d before Open", got, fds)
	}
	t.Logf("closed %d idle queues in %s", n, took)

	// And they open again as they were.
	b = mustOpen(t, dir, opts)
	if c := countsOf(mustQueue(t, b, "q0000").t); c.Ready != 1 || c.Total != 1 {
		t.Errorf("q0000 counts %+v after restarts, want 1 ready", c)
	}
}

// TestIdleQueuesCloseTheirFiles: a queue unused for IdleTimeout closes
// its files, stops its committer and frees its buffers at the next
// maintenance run, and the next use reopens them transparently; nothing
// is lost across a clean restart or a crash.
func TestIdleQueuesCloseTheirFiles(t *testing.T) {
	const n = 100
	dir := t.TempDir()
	makeManyQueues(t, dir, n)
	fds, gs := openFDs(t), goroutinesSettled()
	const idle = 50 * time.Millisecond
	opts := Options{MaintenanceInterval: -1, Logger: quiet, IdleTimeout: idle}
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	qs := make([]*Queue, n)
	for i := range qs {
		qs[i] = mustQueue(t, b, fmt.Sprintf("q%04d", i))
	}
	use := func(round int) {
		t.Helper()
		for i, q := range qs {
			enqueue(t, q, fmt.Sprintf("r%d-a-%d", round, i), fmt.Sprintf("r%d-b-%d", round, i))
			msgs := receive(t, q, 1)
			wantBodies(t, msgs, fmt.Sprintf("r%d-a-%d", round, i))
			if err := one(q.Ack(receipts(msgs))); err != nil {
				t.Fatal(err)
			}
		}
	}
	use(1)
	// Used: queues have their segment and their state log open, and a
	// committer running (those used first may be released already).
	if got := openFDs(t) - fds; got < n/2 {
		t.Fatalf("after using %d queues %d more files are open; the test expects more", n, got)
	}
	if got := goroutinesSettled() - gs; got < n/2 {
		t.Fatalf("after using %d queues %d more goroutines run; the test expects more", n, got)
	}
	time.Sleep(idle + 10*time.Millisecond)
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t) - fds; got > n/20 {
		t.Errorf("%d queues idle for %s still hold %d more files", n, idle, got)
	}
	if got := goroutinesSettled() - gs; got > n/20 {
		t.Errorf("%d queues idle for %s still run %d more goroutines", n, idle, got)
	}
	for i, q := range qs {
		if q.entryBuf != nil || q.state.LastIndex() == 0 {
			t.Fatalf("queue %d: state-log buffer not freed (or nothing was written)", i)
		}
	}
	// A queue used just now keeps its files until it has been idle.
	base := openFDs(t)
	enqueue(t, qs[0], "r1-c-0")
	msgs := receive(t, qs[0], 1)
	wantBodies(t, msgs, "r1-b-0")
	if err := one(qs[0].Ack(receipts(msgs))); err != nil {
		t.Fatal(err)
	}
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t) - base; got != 2 {
		t.Errorf("a queue used just now holds %d files after maintenance, want 2 (its segment and its state log)", got)
	}
	time.Sleep(idle + 10*time.Millisecond)
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	if got := openFDs(t) - base; got != 0 {
		t.Errorf("a queue idle for %s holds %d files", idle, got)
	}

	// Transparently reopened: the message left from round 1 comes first.
	for i, q := range qs {
		want := fmt.Sprintf("r1-b-%d", i)
		if i == 0 {
			want = "r1-c-0"
		}
		msgs := receive(t, q, 2)
		wantBodies(t, msgs, want)
		if err := one(q.Ack(receipts(msgs))); err != nil {
			t.Fatal(err)
		}
	}
	use(2)
	time.Sleep(idle + 10*time.Millisecond)
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	// A crash (files closed, no snapshot) while idle: the next start finds
	// what was acknowledged.
	if err := simulateCrash(b, false); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir, opts)
	for i := range qs {
		q := mustQueue(t, b, fmt.Sprintf("q%04d", i))
		msgs := receive(t, q, 10)
		wantBodies(t, msgs, fmt.Sprintf("r2-b-%d", i))
		if err := one(q.Ack(receipts(msgs))); err != nil {
			t.Fatal(err)
		}
		if c := countsOf(q.t); c.Total != 0 {
			t.Fatalf("queue %d counts %+v, want empty", i, c)
		}
	}
}

// TestIdleReleaseRacesUse releases every queue's files at every
// maintenance run (IdleTimeout of a nanosecond) while workers enqueue,
// receive and ack on them: every message is delivered, once, and the
// state survives a restart. Run it with -race.
func TestIdleReleaseRacesUse(t *testing.T) {
	const queues, workers, perWorker = 4, 8, 150
	dir := t.TempDir()
	opts := Options{MaintenanceInterval: -1, Logger: quiet, IdleTimeout: time.Nanosecond, SegmentSize: 4 << 10, SnapshotEvery: 50}
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range queues {
		mustCreate(t, b, fmt.Sprintf("q%d", i), ConfigUpdate{VisibilityTimeout: ptr(time.Hour)})
	}
	stop := make(chan struct{})
	var maint sync.WaitGroup
	maint.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.Maintain(); err != nil {
				t.Errorf("Maintain: %v", err)
				return
			}
		}
	})
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			q, err := b.Queue(fmt.Sprintf("q%d", w%queues))
			if err != nil {
				t.Error(err)
				return
			}
			for i := range perWorker {
				if _, err := q.Enqueue([]NewMessage{{Body: fmt.Appendf(nil, "w%d-%d", w, i)}}); err != nil {
					t.Errorf("Enqueue: %v", err)
					return
				}
				msgs, err := q.Receive(context.Background(), ReceiveOptions{Max: 2})
				if err != nil {
					t.Errorf("Receive: %v", err)
					return
				}
				mu.Lock()
				for _, m := range msgs {
					seen[string(m.Body)]++
				}
				mu.Unlock()
				if len(msgs) > 0 {
					if errs, err := q.Ack(receipts(msgs)); err != nil || errs[0] != nil {
						t.Errorf("Ack: %v %v", err, errs)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	maint.Wait()
	// What is left: receive it all.
	for i := range queues {
		q := mustQueue(t, b, fmt.Sprintf("q%d", i))
		for {
			msgs := receive(t, q, 100)
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				seen[string(m.Body)]++
			}
			if err := one(q.Ack(receipts(msgs))); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(seen) != workers*perWorker {
		t.Errorf("%d distinct messages delivered, want %d", len(seen), workers*perWorker)
	}
	for body, k := range seen {
		if k != 1 {
			t.Errorf("%s delivered %d times", body, k)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir, opts)
	for i := range queues {
		q := mustQueue(t, b, fmt.Sprintf("q%d", i))
		if c := countsOf(q.t); c.Total != 0 {
			t.Errorf("q%d after restart: %+v, want empty", i, c)
		}
		id := enqueue(t, q, "after")[0]
		if id != uint64(workers/queues*perWorker+1) {
			t.Errorf("q%d: new id %d after restart, want %d", i, id, workers/queues*perWorker+1)
		}
	}
}

// TestIdleReleaseChangesNothing runs the restart scenario with every
// queue released at every maintenance run, with and without a restart
// (clean or crash) halfway: every step returns what it returns when
// nothing is ever released.
func TestIdleReleaseChangesNothing(t *testing.T) {
	steps := rsScenario()
	base := Options{Sync: log.SyncNone, MaintenanceInterval: -1, Logger: quiet, SegmentSize: 8 << 10, IdleTimeout: -1}
	wantRes, wantStates := runScenario(t, steps, base, -1, false)
	released := base
	released.IdleTimeout = time.Nanosecond
	// A crash after a step that rsCrashDiffers names changes what follows
	// by itself; crash after the next one.
	crashAfter := len(steps) / 3
	for rsCrashDiffers[steps[crashAfter].name] != "" {
		crashAfter++
	}
	for _, v := range []struct {
		name         string
		restartAfter int
		crash        bool
	}{
		{"no restart", -1, false},
		{"restart", len(steps) / 2, false},
		{"crash", crashAfter, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			gotRes, gotStates := runScenario(t, steps, released, v.restartAfter, v.crash)
			for i := range steps {
				if gotRes[i] != wantRes[i] {
					t.Fatalf("step %d (%s) returned\n%s\nwithout releases:\n%s", i, steps[i].name, gotRes[i], wantRes[i])
				}
				if rsMessages(gotStates[i]) != rsMessages(wantStates[i]) {
					t.Fatalf("state after step %d (%s):\n%s\nwithout releases:\n%s", i, steps[i].name, gotStates[i], wantStates[i])
				}
			}
		})
	}
}
