package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// parked returns how many long-poll receivers wait on q.
func parked(q *Queue) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters.Len()
}

// waitParked polls until n receivers wait on q.
func waitParked(t testing.TB, q *Queue, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for parked(q) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d receivers parked, want %d", parked(q), n)
		}
		time.Sleep(time.Millisecond) // polling with a deadline
	}
}

type received struct {
	msgs []Message
	err  error
}

func goReceive(ctx context.Context, q *Queue, o ReceiveOptions) <-chan received {
	ch := make(chan received, 1)
	go func() {
		msgs, err := q.Receive(ctx, o)
		ch <- received{msgs, err}
	}()
	return ch
}

func TestLongPollWakesOneWaiterPerReadyMessage(t *testing.T) {
	b := mustOpen(t, t.TempDir(), Options{MaintenanceInterval: -1, Logger: quiet})
	q := mustCreate(t, b, "q", ConfigUpdate{})
	const n = 20
	results := make(chan received, n)
	for i := 0; i < n; i++ {
		go func() {
			msgs, err := q.Receive(context.Background(), ReceiveOptions{Wait: time.Minute})
			results <- received{msgs, err}
		}()
	}
	waitParked(t, q, n)
	enqueue(t, q, "a", "b", "c")
	got := map[string]bool{}
	for i := 0; i < 3; i++ {
		r := <-results
		if r.err != nil || len(r.msgs) != 1 {
			t.Fatalf("woken receiver got %v, %v", r.msgs, r.err)
		}
		got[string(r.msgs[0].Body)] = true
	}
	if len(got) != 3 {
		t.Fatalf("the three messages went to %v", got)
	}
	// The other receivers stay parked: only three were woken.
	waitParked(t, q, n-3)
	select {
	case r := <-results:
		t.Fatalf("a fourth receiver returned: %v, %v", r.msgs, r.err)
	default:
	}
	b.Close()
	for i := 0; i < n-3; i++ {
		if r := <-results; r.err == nil {
			t.Fatalf("receiver released by Close got %v, want an error", r.msgs)
		}
	}
}

func TestLongPollPassesAWakeOnWhenItsReceiverGivesUp(t *testing.T) {
	b := mustOpen(t, t.TempDir(), Options{MaintenanceInterval: -1, Logger: quiet})
	q := mustCreate(t, b, "q", ConfigUpdate{})
	ctx, cancel := context.WithCancel(context.Background())
	first := goReceive(ctx, q, ReceiveOptions{Wait: time.Minute})
	waitParked(t, q, 1)
	second := goReceive(context.Background(), q, ReceiveOptions{Wait: time.Minute})
	waitParked(t, q, 2)
	// Wake the first while it is parked, then have it give up before it
	// can look: the message must reach the second.
	q.mu.Lock()
	q.notifyLocked(1)
	q.mu.Unlock()
	cancel()
	if r := <-first; r.err == nil && len(r.msgs) > 0 {
		t.Fatalf("the first receiver took %v", r.msgs) // nothing was ready
	}
	enqueue(t, q, "m")
	r := <-second
	if r.err != nil || len(r.msgs) != 1 || string(r.msgs[0].Body) != "m" {
		t.Fatalf("second receiver got %v, %v", r.msgs, r.err)
	}
}

// BenchmarkEnqueueWithParkedReceivers measures 5,000 single enqueues
// while 0 or 5,000 receivers wait in long polls, each taking one message
// (issue 11: 5,000 parked polls once made 5,000 enqueues 4-7 times
// slower, as every enqueue woke every poll). The cost per enqueue must
// not grow with the number parked.
func BenchmarkEnqueueWithParkedReceivers(b *testing.B) {
	const enqueues = 5000
	for _, c := range []struct {
		sync   log.SyncPolicy
		parked int
		// then: with none parked, receive the messages one by one after
		// the enqueues, so the run does the deliveries the parked
		// receivers do: what is left of the ratio is the cost of parking.
		then bool
	}{
		{log.SyncNone, 0, false}, {log.SyncNone, 0, true}, {log.SyncNone, enqueues, false},
		{log.SyncAlways, 0, false}, {log.SyncAlways, 0, true}, {log.SyncAlways, enqueues, false},
	} {
		name := fmt.Sprintf("sync=%s/parked=%d", c.sync, c.parked)
		if c.then {
			name += "+receive-after"
		}
		b.Run(name, func(b *testing.B) {
			br, err := Open(b.TempDir(), Options{MaintenanceInterval: -1, Logger: quiet, Sync: c.sync})
			if err != nil {
				b.Fatal(err)
			}
			defer br.Close()
			q, _, err := br.Create("q", ConfigUpdate{})
			if err != nil {
				b.Fatal(err)
			}
			body := []NewMessage{{Body: []byte("x")}}
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				if err := q.Purge(); err != nil {
					b.Fatal(err)
				}
				got := make(chan received, c.parked)
				for range c.parked {
					go func() {
						msgs, err := q.Receive(context.Background(), ReceiveOptions{Wait: time.Minute})
						got <- received{msgs, err}
					}()
				}
				waitParked(b, q, c.parked)
				b.StartTimer()
				for range enqueues {
					if _, err := q.Enqueue(body); err != nil {
						b.Fatal(err)
					}
				}
				for range c.parked {
					if r := <-got; r.err != nil || len(r.msgs) != 1 {
						b.Fatalf("parked receiver got %v, %v", r.msgs, r.err)
					}
				}
				for i := 0; c.then && i < enqueues; i++ {
					if msgs, err := q.Receive(context.Background(), ReceiveOptions{}); err != nil || len(msgs) != 1 {
						b.Fatalf("receive after: %v, %v", msgs, err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*enqueues), "ns/enqueue")
		})
	}
}
