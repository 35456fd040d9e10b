package queue

// Benchmarks of the embedded API. The largest, BenchmarkRestart at 1M
// messages, needs about 150 MB of disk under the temp dir.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

func benchBroker(b *testing.B, policy log.SyncPolicy) (*Broker, *Queue) {
	b.Helper()
	br, err := Open(b.TempDir(), Options{Sync: policy, MaintenanceInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	q, _, err := br.Create("bench", ConfigUpdate{})
	if err != nil {
		b.Fatal(err)
	}
	return br, q
}

func batchOf(n, size int) []NewMessage {
	msgs := make([]NewMessage, n)
	for i := range msgs {
		msgs[i] = NewMessage{Body: bytes.Repeat([]byte{byte('a' + i%26)}, size)}
	}
	return msgs
}

// jobsOf returns n messages whose bodies are what a job producer sends:
// size bytes of JSON naming a job, each with its own ids and time, so
// the frame's compression meets the kind of bytes it meets in use.
// batchOf's bodies, one letter repeated, are its best case.
func jobsOf(n, size int) []NewMessage {
	msgs := make([]NewMessage, n)
	for i := range msgs {
		body := fmt.Appendf(nil, `{"job":"send_email","id":%d,"user":%d,"to":"user%d@example.com","at":%d}`,
			100_000+i*7919, i*31337%99991, i*7, 1_764_000_000+i*13)
		body = append(body, bytes.Repeat([]byte{' '}, max(size-len(body), 0))...)
		msgs[i] = NewMessage{Body: body[:size]}
	}
	return msgs
}

// BenchmarkEnqueueBatch: one goroutine enqueueing batches of 100
// 100-byte messages; ns/op is per message. priorities=mixed gives them
// ten priorities in turn (issue 16: at least 0.9 of one priority's rate).
// body=json has jobsOf's bodies instead of batchOf's repeated letters.
func BenchmarkEnqueueBatch(b *testing.B) {
	for _, bodies := range []string{"", "/body=json"} {
		for _, c := range []struct {
			policy log.SyncPolicy
			mixed  bool
		}{{log.SyncAlways, false}, {log.SyncAlways, true}, {log.SyncNone, false}, {log.SyncNone, true}} {
			name := "batch=100/sync=" + c.policy.String() + "/priorities=one" + bodies
			if c.mixed {
				name = "batch=100/sync=" + c.policy.String() + "/priorities=mixed" + bodies
			}
			b.Run(name, func(b *testing.B) {
				br, q := benchBroker(b, c.policy)
				msgs := batchOf(100, 100)
				if bodies != "" {
					msgs = jobsOf(100, 100)
				}
				if c.mixed {
					pris := make([]uint32, 10)
					for i := range msgs {
						pris[i%10] = uint32(i % 10 * 100)
						msgs[i].Priority = &pris[i%10]
					}
				}
				b.SetBytes(100)
				b.ResetTimer()
				for n := 0; n < b.N; n += len(msgs) {
					if _, err := q.Enqueue(msgs); err != nil {
						b.Fatal(err)
					}
					if n%200_000 == 0 {
						b.StopTimer()
						drop(b, br, q)
						b.StartTimer()
					}
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// drop purges and compacts so long runs do not fill a small disk.
func drop(b *testing.B, br *Broker, q *Queue) {
	if err := q.Purge(); err != nil {
		b.Fatal(err)
	}
	br.Maintain()
	br.Maintain()
}

// BenchmarkEnqueueConcurrent: 64 goroutines enqueueing one 100-byte
// message each call; reports messages per fsync of the message log.
func BenchmarkEnqueueConcurrent(b *testing.B) {
	for _, writers := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("writers=%d/sync=always", writers), func(b *testing.B) {
			_, q := benchBroker(b, log.SyncAlways)
			msg := batchOf(1, 100)
			before := q.log.Stats()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < writers; w++ {
				wg.Go(func() {
					for next.Add(1) <= int64(b.N) {
						if _, err := q.Enqueue(msg); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			after := q.log.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(after.Records-before.Records)/float64(max(after.Fsyncs-before.Fsyncs, 1)), "msgs/fsync")
		})
	}
}

// BenchmarkReceiveAck: receive a batch of 10 and ack it; ns/op is per
// message. The queue is refilled outside the timer.
func BenchmarkReceiveAck(b *testing.B) {
	for _, policy := range []log.SyncPolicy{log.SyncAlways, log.SyncNone} {
		for _, consumers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("batch=10/consumers=%d/sync=%s", consumers, policy), func(b *testing.B) {
				br, q := benchBroker(b, policy)
				var syncs atomic.Int64
				br.opts.OnStateSync = func(string, int, time.Duration) { syncs.Add(1) } // before any goroutine reads opts
				const fill = 100_000
				msgs := batchOf(1000, 100)
				refill := func() {
					for i := 0; i < fill; i += len(msgs) {
						if _, err := q.Enqueue(msgs); err != nil {
							b.Fatal(err)
						}
					}
				}
				benchConsume(b, consumers, q.Receive, q.Ack, refill)
				if n := syncs.Load(); n > 0 {
					b.ReportMetric(float64(b.N)/float64(n), "acks/fsync")
				}
			})
		}
	}
}

// benchConsume receives batches of 10 and acks them from consumers
// goroutines until b.N messages are done, calling refill first and
// whenever the backlog runs out (outside the timer), and reports msgs/s.
func benchConsume(b *testing.B, consumers int, receive func(context.Context, ReceiveOptions) ([]Message, error), ack func([]Receipt) ([]error, error), refill func()) {
	refill()
	var done atomic.Int64
	b.ResetTimer()
	for done.Load() < int64(b.N) {
		var wg sync.WaitGroup
		for c := 0; c < consumers; c++ {
			wg.Go(func() {
				for done.Load() < int64(b.N) {
					got, err := receive(context.Background(), ReceiveOptions{Max: 10})
					if err != nil {
						b.Error(err)
						return
					}
					if len(got) == 0 {
						return // empty: refill
					}
					if _, err := ack(receipts(got)); err != nil {
						b.Error(err)
						return
					}
					done.Add(int64(len(got)))
				}
			})
		}
		wg.Wait()
		if done.Load() < int64(b.N) {
			b.StopTimer()
			refill()
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkRestart fills a queue with pending 100-byte messages, closes
// the broker, and times Open; reports the restart time, the heap and RSS
// after it, and heap bytes per pending message.
func BenchmarkRestart(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		for _, snap := range []bool{true, false} {
			b.Run(fmt.Sprintf("pending=%d/snapshot=%v", n, snap), func(b *testing.B) {
				dir := b.TempDir()
				fill(b, dir, n)
				if !snap {
					os.Remove(filepath.Join(dir, "queues", "bench", snapshotName))
					os.Remove(filepath.Join(dir, "queues", "bench", prevSnapshotName))
				}
				b.ResetTimer()
				var open time.Duration
				for i := 0; i < b.N; i++ {
					runtime.GC()
					var before runtime.MemStats
					runtime.ReadMemStats(&before)
					t0 := time.Now()
					br, err := Open(dir, Options{MaintenanceInterval: -1, Logger: quiet})
					if err != nil {
						b.Fatal(err)
					}
					open += time.Since(t0)
					q, _ := br.Queue("bench")
					if info, _ := q.Info(); info.Counts.Ready != n {
						b.Fatalf("%d ready after restart, want %d", info.Counts.Ready, n)
					}
					runtime.GC()
					var after runtime.MemStats
					runtime.ReadMemStats(&after)
					b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(n), "heapB/msg")
					b.ReportMetric(float64(rssBytes())/(1<<20), "rssMB")
					b.StopTimer()
					if snap {
						br.Close() // writes the snapshot again
					} else {
						simulateCrash(br, false)
					}
					b.StartTimer()
				}
				b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "ms/restart")
			})
		}
	}
}

func fill(b *testing.B, dir string, n int) {
	br, err := Open(dir, Options{Sync: log.SyncNone, MaintenanceInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	q, _, err := br.Create("bench", ConfigUpdate{})
	if err != nil {
		b.Fatal(err)
	}
	msgs := batchOf(1000, 100)
	for i := 0; i < n; i += len(msgs) {
		if _, err := q.Enqueue(msgs); err != nil {
			b.Fatal(err)
		}
	}
	if err := br.Close(); err != nil {
		b.Fatal(err)
	}
}

// rssBytes reads the process's resident set size from /proc (0 elsewhere).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
