package queue

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// A backup taken while producers and consumers run (and maintenance
// with them) opens, passes Check, and holds every message enqueued before
// the backup began and not acked by then, and none acked before it began.
func TestBackupUnderLoad(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Sync: log.SyncAlways, SegmentSize: 32 << 10, SnapshotEvery: 100, MaintenanceInterval: 5 * time.Millisecond, Logger: quiet}
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "jobs", ConfigUpdate{VisibilityTimeout: ptr(time.Hour)})
	tp, _, err := b.CreateTopic("events", TopicUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	sub, _, err := tp.CreateSubscription("audit", SubscriptionUpdate{VisibilityTimeout: ptr(time.Hour)}, Position{})
	if err != nil {
		t.Fatal(err)
	}

	// phase is 0 before Backup is called, 1 while it runs, 2 after.
	var phase atomic.Int32
	type record struct {
		mu       sync.Mutex
		enqueued map[uint64]int32 // id → phase its enqueue returned in
		acked    map[uint64]int32 // id → phase its ack returned in
		ackedAt  map[uint64]int32 // id → phase its ack was called in
	}
	recs := map[string]*record{}
	for _, name := range []string{"jobs", "events"} {
		recs[name] = &record{enqueued: map[uint64]int32{}, acked: map[uint64]int32{}, ackedAt: map[uint64]int32{}}
	}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	fail := make(chan error, 8)
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				msgs := []NewMessage{{Body: fmt.Appendf(nil, "p%d-%d", g, i)}, {Body: fmt.Appendf(nil, "p%d-%d'", g, i)}}
				var ids []uint64
				var err error
				name := "jobs"
				if i%2 == 0 {
					ids, err = q.Enqueue(msgs)
				} else {
					name = "events"
					ids, err = tp.Publish(msgs)
				}
				p := phase.Load()
				if err != nil {
					fail <- err
					return
				}
				r := recs[name]
				r.mu.Lock()
				for _, id := range ids {
					r.enqueued[id] = p
				}
				r.mu.Unlock()
			}
		})
	}
	consume := func(name string, c interface {
		Receive(context.Context, ReceiveOptions) ([]Message, error)
		Ack([]Receipt) ([]error, error)
	}) {
		for n := 0; ctx.Err() == nil; n++ {
			msgs, err := c.Receive(ctx, ReceiveOptions{Max: 4, Wait: 50 * time.Millisecond})
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fail <- err
				return
			}
			var rs []Receipt
			for i, m := range msgs {
				if (n+i)%3 != 0 { // a third stays leased
					rs = append(rs, m.Receipt)
				}
			}
			if len(rs) == 0 {
				continue
			}
			called := phase.Load()
			errs, err := c.Ack(rs)
			p := phase.Load()
			if err != nil {
				fail <- err
				return
			}
			r := recs[name]
			r.mu.Lock()
			for i, e := range errs {
				if e == nil {
					r.acked[rs[i].ID], r.ackedAt[rs[i].ID] = p, called
				}
			}
			r.mu.Unlock()
		}
	}
	wg.Go(func() { consume("jobs", q) })
	wg.Go(func() { consume("events", sub) })

	waitUntil := func(cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !cond(); {
			if time.Now().After(deadline) {
				t.Fatal("the load did not get going within 20s")
			}
			time.Sleep(time.Millisecond) // polling the load with a deadline
		}
	}
	count := func(name string) int {
		r := recs[name]
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.acked)
	}
	waitUntil(func() bool { return count("jobs") > 300 && count("events") > 300 })
	phase.Store(1)
	var archive bytes.Buffer
	rep, err := b.Backup(&archive)
	phase.Store(2)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // let the load go on past the backup: not synchronisation
	stop()
	wg.Wait()
	select {
	case err := <-fail:
		t.Fatal(err)
	default:
	}
	if rep.Queues != 1 || rep.Topics != 1 || rep.Subscriptions != 1 || rep.Files < 5 || len(rep.Skipped) != 0 {
		t.Fatalf("report %+v", rep)
	}

	restored := filepath.Join(t.TempDir(), "copy")
	files, n, err := RestoreBackup(&archive, restored)
	if err != nil || files != rep.Files+1 || n != rep.Bytes+int64(len(markerText)) {
		t.Fatalf("RestoreBackup: %d files, %d bytes, %v; the backup wrote %d and %d", files, n, err, rep.Files+1, rep.Bytes)
	}
	check, err := Check(restored)
	if err != nil {
		t.Fatal(err)
	}
	if problems := check.Problems(); len(problems) != 0 {
		t.Fatalf("Check of the copy: %v", problems)
	}
	// Two hours on, every lease of the copy is over: what it holds is
	// what a receive gets.
	later := time.Now().Add(2 * time.Hour)
	b2 := mustOpen(t, restored, Options{Logger: quiet, MaintenanceInterval: -1, Now: func() time.Time { return later }})
	q2, err := b2.Queue("jobs")
	if err != nil {
		t.Fatal(err)
	}
	tp2, err := b2.Topic("events")
	if err != nil {
		t.Fatal(err)
	}
	sub2, err := tp2.Subscription("audit")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]interface {
		Receive(context.Context, ReceiveOptions) ([]Message, error)
	}{"jobs": q2, "events": sub2} {
		held := map[uint64]bool{}
		for {
			msgs, err := c.Receive(context.Background(), ReceiveOptions{Max: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				held[m.ID] = true
			}
		}
		r := recs[name]
		for id, p := range r.enqueued {
			ackPhase, acked := r.acked[id]
			switch {
			// An ack called before Backup returned may have been applied
			// before the point, and be in the copy, even if it returned
			// after (as after a crash: it was not acknowledged then).
			case p == 0 && (!acked || r.ackedAt[id] == 2) && !held[id]:
				t.Errorf("%s: message %d, enqueued before the backup and not acked until after it (acked %v, called in phase %d), is not in it", name, id, acked, r.ackedAt[id])
			case acked && ackPhase == 0 && held[id]:
				t.Errorf("%s: message %d, acked before the backup, is in it", name, id)
			}
		}
		for id := range held {
			if _, ok := r.enqueued[id]; !ok && id <= maxKey(r.enqueued) {
				t.Errorf("%s: the copy holds message %d, which no enqueue returned", name, id)
			}
		}
		if len(held) == 0 {
			t.Errorf("%s: the copy holds nothing", name)
		}
	}
}

func maxKey(m map[uint64]int32) uint64 {
	var top uint64
	for k := range m {
		top = max(top, k)
	}
	return top
}

// hookWriter runs once before the first byte of the archive is written:
// after the backup point.
type hookWriter struct {
	w    *bytes.Buffer
	once sync.Once
	hook func()
}

func (h *hookWriter) Write(p []byte) (int, error) {
	h.once.Do(h.hook)
	return h.w.Write(p)
}

// What changes after the backup point, while the archive is written, is
// not in it: an ack, an enqueue, a new queue, and a maintenance run.
func TestBackupPointExcludesLaterChanges(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	q := mustCreate(t, b, "q", ConfigUpdate{})
	enqueue(t, q, "a", "b", "c")
	leased := receive(t, q, 1) // a
	var archive bytes.Buffer
	h := &hookWriter{w: &archive, hook: func() {
		ack(t, q, leased[0].Receipt)
		enqueue(t, q, "after")
		mustCreate(t, b, "later", ConfigUpdate{})
		// Maintenance runs while the archive streams (it only leaves the
		// files alone), so a slow reader does not stop it.
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}}
	if _, err := b.Backup(h); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "copy")
	if _, _, err := RestoreBackup(&archive, dir); err != nil {
		t.Fatal(err)
	}
	b2 := mustOpen(t, dir, testOptions(newClock()))
	if _, err := b2.Queue("later"); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("a queue made after the point is in the copy: %v", err)
	}
	q2, err := b2.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := q2.Peek(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := bodies(msgs); len(got) != 3 || got[0] != "a" || got[1] != "b" || got[2] != "c" || msgs[0].State != StateLeased {
		t.Fatalf("the copy holds %v (a %v), want a (leased), b, c", got, msgs[0].State)
	}
	// The original has all three changes.
	if now, _ := q.Peek(0, 10); len(now) != 3 || string(now[2].Body) != "after" {
		t.Fatalf("the original holds %v", bodies(now))
	}
}

// Restore takes only what a backup holds, into an empty directory.
func TestRestoreBackupRefuses(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	mustCreate(t, b, "q", ConfigUpdate{})
	var archive bytes.Buffer
	if _, err := b.Backup(&archive); err != nil {
		t.Fatal(err)
	}
	if _, _, err := RestoreBackup(bytes.NewReader(archive.Bytes()), b.dir); err == nil {
		t.Fatal("restored into a data directory that is in use")
	}
	for name, body := range map[string][]byte{
		"a path out of the directory": tarOf(t, "queues/../../evil", "x"),
		"a file no backup has":        tarOf(t, "notes.txt", "x"),
		"an absolute path":            tarOf(t, "/etc/passwd", "x"),
	} {
		dir := filepath.Join(t.TempDir(), "copy")
		if _, _, err := RestoreBackup(bytes.NewReader(body), dir); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func tarOf(t *testing.T, name, body string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := writeBackupFile(tw, name, []byte(body), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
