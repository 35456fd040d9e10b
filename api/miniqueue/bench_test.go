package miniqueue

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

// BenchmarkMiniqueueConsume is miniqueue's examples/bench_consume against
// spool: subscribers over h2c, each a loop of decode a message, send
// "ACK", on a topic holding b.N messages. An ACK is written and its fsync
// started before the next message goes out (queue.AckSoon; the package
// doc, "Durability"), so under sync=always one subscriber shares each
// fsync among its ACKs (acks/fsync). The figure to beat (the issue's):
// 2 × miniqueue's ≈8k/s with one consumer and 20k/s with 12, which are
// without fsync. Figures: bench/RESULTS.md.
//
//	go test ./api/miniqueue -run '^$' -bench . -benchtime=2s
func BenchmarkMiniqueueConsume(b *testing.B) {
	for _, policy := range []queue.SyncPolicy{queue.SyncAlways, queue.SyncNone} {
		for _, consumers := range []int{1, 12} {
			b.Run(fmt.Sprintf("sync=%s/consumers=%d", policy, consumers), func(b *testing.B) {
				benchConsume(b, policy, consumers)
			})
		}
	}
}

func benchConsume(b *testing.B, policy queue.SyncPolicy, consumers int) {
	var syncs atomic.Int64
	e := newEnv(b, "h2c", envOptions{opts: queue.Options{Sync: policy, OnStateSync: func(string, int, time.Duration) { syncs.Add(1) }}})
	if _, _, err := e.b.Create("bench", queue.ConfigUpdate{}); err != nil {
		b.Fatal(err)
	}
	q := e.queue(b, "bench")
	body := []byte("helloworld") // miniqueue's benchmark message
	for left := b.N; left > 0; {
		n := min(left, 1000)
		batch := make([]queue.NewMessage, n)
		for i := range batch {
			batch[i].Body = body
		}
		if _, err := q.Enqueue(batch); err != nil {
			b.Fatal(err)
		}
		left -= n
	}
	var consumed atomic.Int64
	done := make(chan struct{})
	var once sync.Once
	var streams []func()
	var wg sync.WaitGroup
	b.ResetTimer()
	syncs.Store(0)
	start := time.Now()
	for range consumers {
		pr, pw := io.Pipe()
		enc := json.NewEncoder(pw)
		go enc.Encode("INIT")
		res, err := e.hc.Post(e.url+"/subscribe/bench", "application/json", pr)
		if err != nil {
			b.Fatal(err)
		}
		if res.StatusCode != http.StatusOK {
			b.Fatalf("status %d", res.StatusCode)
		}
		streams = append(streams, func() { pw.Close(); res.Body.Close() })
		wg.Go(func() {
			dec := json.NewDecoder(res.Body)
			for {
				var out reply
				if err := dec.Decode(&out); err != nil {
					return // closed at the end
				}
				if out.Error != "" {
					b.Errorf("error payload %q", out.Error)
					return
				}
				if consumed.Add(1) == int64(b.N) {
					once.Do(func() { close(done) })
				}
				if enc.Encode("ACK") != nil {
					return
				}
			}
		})
	}
	<-done
	elapsed := time.Since(start)
	b.StopTimer()
	for _, stop := range streams {
		stop()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	if n := syncs.Load(); n > 0 && policy == queue.SyncAlways {
		b.ReportMetric(float64(b.N)/float64(n), "acks/fsync")
	}
}
