package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/queue/queuetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is the fake clock tests move by hand.
type clock = queuetest.Clock

func newClock() *clock { return queuetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) }

func testOptions(clk *clock) Options {
	return Options{Now: clk.Now, MaintenanceInterval: -1, Logger: quiet, SegmentSize: 64 << 10}
}

func mustOpen(tb testing.TB, dir string, opts Options) *Broker {
	tb.Helper()
	b, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { b.Close() })
	return b
}

func mustCreate(tb testing.TB, b *Broker, name string, u ConfigUpdate) *Queue {
	tb.Helper()
	q, _, err := b.Create(name, u)
	if err != nil {
		tb.Fatalf("Create(%s): %v", name, err)
	}
	return q
}

func enqueue(tb testing.TB, q *Queue, bodies ...string) []uint64 {
	tb.Helper()
	msgs := make([]NewMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = NewMessage{Body: []byte(b)}
	}
	ids, err := q.Enqueue(msgs)
	if err != nil {
		tb.Fatalf("Enqueue: %v", err)
	}
	return ids
}

func receive(tb testing.TB, q *Queue, max int) []Message {
	tb.Helper()
	msgs, err := q.Receive(context.Background(), ReceiveOptions{Max: max})
	if err != nil {
		tb.Fatalf("Receive: %v", err)
	}
	return msgs
}

func bodies(msgs []Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = string(m.Body)
	}
	return out
}

func receipts(msgs []Message) []Receipt {
	out := make([]Receipt, len(msgs))
	for i, m := range msgs {
		out[i] = m.Receipt
	}
	return out
}

func wantBodies(tb testing.TB, got []Message, want ...string) {
	tb.Helper()
	if fmt.Sprint(bodies(got)) != fmt.Sprint(want) {
		tb.Fatalf("received %q, want %q", bodies(got), want)
	}
}

// one reduces a single-receipt result to its error.
func one(errs []error, err error) error {
	if err != nil {
		return fmt.Errorf("whole call failed: %w", err)
	}
	if len(errs) != 1 {
		return fmt.Errorf("%d results, want 1", len(errs))
	}
	return errs[0]
}

func TestLifecycle(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreate(t, b, "jobs", ConfigUpdate{})

	t.Run("receives in FIFO order with attempts and receipts", func(t *testing.T) {
		enqueue(t, q, "a", "b", "c")
		got := receive(t, q, 2)
		wantBodies(t, got, "a", "b")
		if got[0].Attempts != 1 || got[0].Receipt.String() != fmt.Sprintf("%d.1", got[0].ID) {
			t.Fatalf("first delivery: attempts %d receipt %s", got[0].Attempts, got[0].Receipt)
		}
		if errs, err := q.Ack(receipts(got)); err != nil || errs[0] != nil || errs[1] != nil {
			t.Fatalf("Ack = %v, %v", errs, err)
		}
		wantBodies(t, receive(t, q, 5), "c")
	})
	t.Run("an expired lease returns the message with attempts+1 and makes the old receipt stale", func(t *testing.T) {
		q := mustCreate(t, b, "expiry", ConfigUpdate{})
		enqueue(t, q, "x")
		first := receive(t, q, 1)
		clk.Advance(31 * time.Second)
		second := receive(t, q, 1)
		wantBodies(t, second, "x")
		if second[0].Attempts != 2 {
			t.Fatalf("attempts %d, want 2", second[0].Attempts)
		}
		if err := one(q.Ack(receipts(first))); !errors.Is(err, ErrStaleReceipt) {
			t.Fatalf("ack with the old receipt = %v, want ErrStaleReceipt", err)
		}
		if err := one(q.Ack(receipts(second))); err != nil {
			t.Fatalf("ack with the live receipt = %v", err)
		}
		// The lease is over: a worker retrying its ack, or one whose lease
		// someone else's ack ended, is told so (409), not "no such message".
		if err := one(q.Ack(receipts(second))); !errors.Is(err, ErrStaleReceipt) {
			t.Fatalf("second ack = %v, want ErrStaleReceipt", err)
		}
		if err := one(q.Ack(receipts(first))); !errors.Is(err, ErrStaleReceipt) {
			t.Fatalf("ack with the old receipt after another worker's ack = %v, want ErrStaleReceipt", err)
		}
	})
	t.Run("does not receive a delayed message before its time", func(t *testing.T) {
		q := mustCreate(t, b, "delayed", ConfigUpdate{})
		d := 10 * time.Second
		if _, err := q.Enqueue([]NewMessage{{Body: []byte("later"), Delay: &d}}); err != nil {
			t.Fatal(err)
		}
		enqueue(t, q, "now")
		wantBodies(t, receive(t, q, 5), "now")
		clk.Advance(10 * time.Second)
		wantBodies(t, receive(t, q, 5), "later")
	})
	t.Run("nack to the front goes first, nack to the back goes after what is queued", func(t *testing.T) {
		q := mustCreate(t, b, "nacks", ConfigUpdate{})
		enqueue(t, q, "1", "2", "3", "4")
		got := receive(t, q, 2) // 1, 2
		if err := one(q.Nack(receipts(got[:1]), NackOptions{})); err != nil {
			t.Fatal(err)
		}
		if err := one(q.Nack(receipts(got[1:]), NackOptions{Front: true})); err != nil {
			t.Fatal(err)
		}
		enqueue(t, q, "5")
		wantBodies(t, receive(t, q, 10), "2", "3", "4", "1", "5")
	})
	t.Run("goes dead after max attempts and can be redriven", func(t *testing.T) {
		q := mustCreate(t, b, "deadly", ConfigUpdate{MaxAttempts: ptr(2)})
		enqueue(t, q, "poison")
		for i := 0; i < 2; i++ {
			got := receive(t, q, 1)
			if err := one(q.Nack(receipts(got), NackOptions{})); err != nil {
				t.Fatal(err)
			}
		}
		if got := receive(t, q, 1); len(got) != 0 {
			t.Fatalf("received %q from a dead message", bodies(got))
		}
		dead, err := q.Dead(0, 10)
		if err != nil || len(dead) != 1 || string(dead[0].Body) != "poison" || dead[0].State != index.StateDead {
			t.Fatalf("Dead = %+v, %v", dead, err)
		}
		if n, err := q.Redrive(0); n != 1 || err != nil {
			t.Fatalf("Redrive = %d, %v", n, err)
		}
		got := receive(t, q, 1)
		wantBodies(t, got, "poison")
		if got[0].Attempts != 3 || got[0].Receipt.Attempt != 3 {
			t.Fatalf("attempts after redrive %d (receipt %s), want 3: attempts keep counting", got[0].Attempts, got[0].Receipt)
		}
		// A redrive grants max attempts more deliveries: one more nack
		// leaves it ready, the second kills it again.
		if err := one(q.Nack(receipts(got), NackOptions{})); err != nil {
			t.Fatal(err)
		}
		got = receive(t, q, 1)
		if err := one(q.Nack(receipts(got), NackOptions{})); err != nil {
			t.Fatal(err)
		}
		if info, _ := q.Info(); info.Counts.Dead != 1 {
			t.Fatalf("after two more tries: %+v, want dead again", info.Counts)
		}
	})
	t.Run("fail moves a message to the dead-letter queue", func(t *testing.T) {
		dlq := mustCreate(t, b, "jobs.dlq", ConfigUpdate{})
		q := mustCreate(t, b, "failing", ConfigUpdate{DeadLetterQueue: ptr("jobs.dlq")})
		if _, err := q.Enqueue([]NewMessage{{Body: []byte("bad"), Attributes: map[string]string{"k": "v"}}}); err != nil {
			t.Fatal(err)
		}
		if err := one(q.Fail(receipts(receive(t, q, 1)))); err != nil {
			t.Fatal(err)
		}
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
		got := receive(t, dlq, 1)
		wantBodies(t, got, "bad")
		if got[0].Attributes["k"] != "v" {
			t.Fatalf("attributes lost on the way to the DLQ: %v", got[0].Attributes)
		}
		if info, _ := q.Info(); info.Counts.Total != 0 {
			t.Fatalf("source still holds %+v", info.Counts)
		}
	})
	t.Run("extend keeps a lease past its first deadline", func(t *testing.T) {
		q := mustCreate(t, b, "extend", ConfigUpdate{})
		enqueue(t, q, "long job")
		got := receive(t, q, 1)
		clk.Advance(25 * time.Second)
		if err := one(q.Extend(receipts(got), time.Minute)); err != nil {
			t.Fatal(err)
		}
		clk.Advance(50 * time.Second)
		if again := receive(t, q, 1); len(again) != 0 {
			t.Fatalf("extended message delivered again: %q", bodies(again))
		}
		if err := one(q.Ack(receipts(got))); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("max length refuses what does not fit and writes nothing", func(t *testing.T) {
		q := mustCreate(t, b, "small", ConfigUpdate{MaxLength: ptr(2)})
		enqueue(t, q, "1")
		if _, err := q.Enqueue([]NewMessage{{Body: []byte("2")}, {Body: []byte("3")}}); !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Enqueue over max length = %v, want ErrQueueFull", err)
		}
		enqueue(t, q, "2")
		if info, _ := q.Info(); info.Counts.Ready != 2 {
			t.Fatalf("counts %+v, want 2 ready", info.Counts)
		}
	})
	t.Run("purge removes everything", func(t *testing.T) {
		q := mustCreate(t, b, "purged", ConfigUpdate{})
		enqueue(t, q, "1", "2", "3")
		leased := receive(t, q, 1)
		if err := q.Purge(); err != nil {
			t.Fatal(err)
		}
		if info, _ := q.Info(); info.Counts.Total != 0 {
			t.Fatalf("counts after purge %+v", info.Counts)
		}
		if err := one(q.Ack(receipts(leased))); !errors.Is(err, ErrStaleReceipt) {
			t.Fatalf("ack after purge = %v, want ErrStaleReceipt", err)
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestLongPollWakesOnEnqueueAndOnCancel(t *testing.T) {
	b := mustOpen(t, t.TempDir(), Options{MaintenanceInterval: -1, Logger: quiet})
	q := mustCreate(t, b, "poll", ConfigUpdate{})
	got := make(chan []Message, 1)
	go func() {
		msgs, err := q.Receive(context.Background(), ReceiveOptions{Wait: time.Minute})
		if err != nil {
			t.Error(err)
		}
		got <- msgs
	}()
	enqueue(t, q, "wake up")
	select {
	case msgs := <-got:
		wantBodies(t, msgs, "wake up")
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not wake on enqueue")
	}

	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := q.Receive(ctx, ReceiveOptions{Wait: time.Minute})
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled receive = %v", err)
	}
	enqueue(t, q, "still here")
	wantBodies(t, receive(t, q, 1), "still here")
}

func TestRestartKeepsState(t *testing.T) {
	for _, snapshot := range []bool{false, true} {
		t.Run(fmt.Sprintf("snapshot=%v", snapshot), func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := testOptions(clk)
			if snapshot {
				opts.SnapshotEvery = 1
			}
			b := mustOpen(t, dir, opts)
			q := mustCreate(t, b, "q", ConfigUpdate{MaxAttempts: ptr(3)})
			enqueue(t, q, "acked", "leased", "nacked", "ready", "dead")
			got := receive(t, q, 3)
			q.Ack(receipts(got[:1]))
			q.Nack(receipts(got[2:3]), NackOptions{Front: true})
			rest := receive(t, q, 3) // nacked (front), ready, dead
			wantBodies(t, rest, "nacked", "ready", "dead")
			q.Fail(receipts(rest[2:]))
			q.Nack(receipts(rest[:2]), NackOptions{})
			b.Maintain()
			b.Close()

			b2 := mustOpen(t, dir, opts)
			q2, err := b2.Queue("q")
			if err != nil {
				t.Fatal(err)
			}
			if q2.Config().MaxAttempts != 3 {
				t.Fatalf("config after restart %+v", q2.Config())
			}
			info, _ := q2.Info()
			if want := (Counts{Ready: 2, Leased: 1, Dead: 1, Total: 4}); info.Counts != want {
				t.Fatalf("counts after restart %+v, want %+v", info.Counts, want)
			}
			r := receive(t, q2, 5)
			wantBodies(t, r, "nacked", "ready")
			if errs, err := q2.Ack(receipts(r)); err != nil || errs[0] != nil || errs[1] != nil {
				t.Fatalf("Ack after restart = %v, %v", errs, err)
			}
			clk.Advance(time.Minute)
			again := receive(t, q2, 5)
			wantBodies(t, again, "leased")
			if again[0].Attempts != 2 {
				t.Fatalf("attempts of the re-leased message %d, want 2", again[0].Attempts)
			}
		})
	}
}

func TestCompactionGivesDiskSpaceBack(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := testOptions(clk)
	opts.SegmentSize = 8 << 10
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "c", ConfigUpdate{})
	body := string(make([]byte, 200))
	for i := 0; i < 400; i++ {
		enqueue(t, q, body)
	}
	info, _ := q.Info()
	full := info.Bytes
	if full < 80<<10 {
		t.Fatalf("only %d bytes on disk after 400 x 200-byte messages", full)
	}
	// Ack four fifths, keeping every fifth: sealed segments fall under
	// half live and get rewritten, within a byte budget per run.
	var keep []Message
	for {
		got := receive(t, q, 100)
		if len(got) == 0 {
			break
		}
		var ack []Receipt
		for _, m := range got {
			if m.ID%5 == 0 {
				keep = append(keep, m)
			} else {
				ack = append(ack, m.Receipt)
			}
		}
		if _, err := q.Ack(ack); err != nil {
			t.Fatal(err)
		}
	}
	segs := len(q.log.Segments())
	for i := 0; i < segs; i++ {
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	info, _ = q.Info()
	if info.Bytes > full/2 {
		t.Fatalf("%d of %d bytes left with a fifth of the messages live", info.Bytes, full)
	}
	// The kept messages are still readable at their new places.
	clk.Advance(time.Minute)
	again := receive(t, q, 1000)
	if len(again) != len(keep) {
		t.Fatalf("received %d messages after compaction, want %d", len(again), len(keep))
	}
	for i, m := range again {
		if m.ID != keep[i].ID || string(m.Body) != body {
			t.Fatalf("message %d after compaction: id %d, want %d", i, m.ID, keep[i].ID)
		}
	}
	if _, err := q.Ack(receipts(again)); err != nil {
		t.Fatal(err)
	}
	// With everything acked, two runs seal the active segment and remove all.
	b.Maintain()
	b.Maintain()
	info, _ = q.Info()
	if info.Bytes > 4<<10 {
		t.Fatalf("%d bytes left after acking everything", info.Bytes)
	}
	b.Close()
	b2 := mustOpen(t, dir, opts)
	q2, _ := b2.Queue("c")
	if info, _ := q2.Info(); info.Counts.Total != 0 {
		t.Fatalf("after restart: %+v", info.Counts)
	}
	ids := enqueue(t, q2, "after")
	if ids[0] != 401 {
		t.Fatalf("new id after compaction and restart %d, want 401 (ids are never reused)", ids[0])
	}
}

// simulateCrash leaves b's directory as a killed process would: with
// flush, every event applied so far is written (not fsynced: a process
// crash keeps what was written), else pending events are lost; no
// snapshot; files closed and the directory lock released, as the kernel
// does for a dead process. b must not be used again.
func simulateCrash(b *Broker, flush bool) error {
	var errs []error
	if flush {
		qs := b.snapshotQueues()
		for _, t := range b.topicList() {
			for _, s := range t.subscriptionList() {
				qs = append(qs, s.q.live())
			}
		}
		for _, q := range qs {
			q.mu.Lock()
			seq := q.seq
			q.mu.Unlock()
			errs = append(errs, q.commit(seq, false))
		}
	}
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	for _, q := range b.queues {
		errs = append(errs, q.close(false))
	}
	for _, t := range b.topics {
		errs = append(errs, t.close(false))
	}
	return errors.Join(append(errs, b.unlock())...)
}

func TestDamagedSnapshotsFallBack(t *testing.T) {
	cases := []struct {
		name   string
		damage []string // snapshot files to flip a bit in
	}{
		{"a damaged snapshot falls back to the previous one and the state log", []string{snapshotName}},
		// The state log keeps every event since the older snapshot, which
		// here is all of them; acks older than it would come back.
		{"both damaged: rebuilt from the log and the state log that remains", []string{snapshotName, prevSnapshotName}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := testOptions(clk)
			b := mustOpen(t, dir, opts)
			q := mustCreate(t, b, "q", ConfigUpdate{})
			enqueue(t, q, "acked", "kept", "also kept")
			if err := q.snapshot(); err != nil { // the first snapshot, before the ack
				t.Fatal(err)
			}
			got := receive(t, q, 1)
			if err := one(q.Ack(receipts(got))); err != nil {
				t.Fatal(err)
			}
			b.Close() // the second snapshot: the first becomes snapshot.prev
			qdir := filepath.Join(dir, "queues", "q")
			for _, name := range tc.damage {
				path := filepath.Join(qdir, name)
				data, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				data[len(data)/2] ^= 0x20
				os.WriteFile(path, data, 0o644)
			}
			b2 := mustOpen(t, dir, opts)
			q2, err := b2.Queue("q")
			if err != nil {
				t.Fatal(err)
			}
			msgs, err := q2.Peek(0, 10)
			if err != nil {
				t.Fatal(err)
			}
			var bodies []string
			for _, m := range msgs {
				bodies = append(bodies, string(m.Body))
			}
			if fmt.Sprint(bodies) != "[kept also kept]" {
				t.Fatalf("after reopening: %q, want the two unacked messages", bodies)
			}
		})
	}
}

// TestFailedSnapshotIsRetried: a snapshot whose file cannot be written
// stays due, so the next maintenance run writes it, without waiting for
// SnapshotEvery more events.
func TestFailedSnapshotIsRetried(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	opts.SnapshotEvery = 4
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "jobs", ConfigUpdate{})
	qdir := filepath.Join(dir, "queues", "jobs")
	snapIndex := func() uint64 {
		t.Helper()
		data, err := os.ReadFile(filepath.Join(qdir, snapshotName))
		if err != nil {
			t.Fatal(err)
		}
		snap, err := index.DecodeSnapshot(data)
		if err != nil {
			t.Fatal(err)
		}
		return snap.StateIndex
	}
	ackAll := func() {
		t.Helper()
		enqueue(t, q, "a", "b", "c", "d", "e")
		if _, err := q.Ack(receipts(receive(t, q, 5))); err != nil {
			t.Fatal(err)
		}
	}
	ackAll()
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	first := snapIndex()

	// snapshot.prev as a non-empty directory: the rename before the write fails.
	blocker := filepath.Join(qdir, prevSnapshotName)
	if err := os.Remove(blocker); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(blocker, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	ackAll()
	if err := b.Maintain(); err == nil {
		t.Fatal("maintenance succeeded with snapshot.prev blocked")
	}
	if got := snapIndex(); got != first {
		t.Fatalf("snapshot at index %d after a failed write, want still %d", got, first)
	}
	if err := os.RemoveAll(blocker); err != nil {
		t.Fatal(err)
	}
	if err := b.Maintain(); err != nil { // no new events: the snapshot is still due
		t.Fatal(err)
	}
	if got := snapIndex(); got <= first {
		t.Fatalf("snapshot at index %d after the retry, want past %d", got, first)
	}
}
