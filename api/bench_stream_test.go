package api_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// BenchmarkHTTPStream consumes over streams (POST .../stream, credit 100),
// acking each message as it arrives with acks that are durable before
// they are answered (sync=always); ns/op is per message. Each stream has
// as many goroutines taking messages and acking them as its credit, so
// acks overlap and share fsyncs, as a worker pool on one stream would.
// BenchmarkHTTPReceiveAck/batch=1/conc=1/sync=always, one request to
// receive and one to ack each message, is the baseline at one client.
func BenchmarkHTTPStream(b *testing.B) {
	const credit = 100
	for _, streams := range []int{1, 8} {
		b.Run(fmt.Sprintf("streams=%d/credit=%d/sync=always", streams, credit), func(b *testing.B) {
			e := benchSpool(b, queue.SyncAlways)
			ctx := context.Background()
			fill := make([]queue.NewMessage, 1000)
			for i := range fill {
				fill[i] = queue.NewMessage{Body: bytes.Repeat([]byte{byte('a' + i%26)}, 100)}
			}
			for n := 0; n < b.N; n += len(fill) {
				if _, err := e.q.Enqueue(fill[:min(len(fill), b.N-n)]); err != nil {
					b.Fatal(err)
				}
			}
			var done atomic.Int64
			all := make(chan struct{})
			var once sync.Once
			b.ResetTimer()
			var wg sync.WaitGroup
			for range streams {
				s, err := e.c.Queue("bench").Stream(ctx, api.StreamOptions{Credit: credit})
				if err != nil {
					b.Fatal(err)
				}
				for range credit {
					wg.Go(func() {
						for {
							select {
							case m, ok := <-s.Messages():
								if !ok {
									return
								}
								if err := s.Ack(ctx, m.Receipt); err != nil {
									b.Error(err)
									return
								}
								if done.Add(1) == int64(b.N) {
									once.Do(func() { close(all) })
								}
							case <-all:
								return
							}
						}
					})
				}
				defer s.Close()
			}
			<-all
			b.StopTimer()
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
