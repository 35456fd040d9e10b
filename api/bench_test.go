package api_test

// Benchmarks of the HTTP API: a real broker in a temp dir behind an
// httptest server on 127.0.0.1, driven by an api.Client, as the queue
// package's benchmarks drive the embedded API. BenchmarkTrivialHandler
// drives a handler that only writes "ok" with the same client and
// transport, so the cost of HTTP itself, and what the API adds to it, can
// be read as ratios within one run.
//
// Each concurrency level runs exactly that many goroutines, sharing b.N
// through an atomic counter; client and server share the machine's cores.
// Long runs purge and compact between rounds of at most 200k messages
// (outside the timer), so however long the run, the largest holds about
// 20 MB of disk under the temp dir (these 100-byte bodies compress; about
// 30 MB were they incompressible), deleted after each run.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// benchRound bounds the messages written between two purges.
const benchRound = 200_000

// benchTransport is shared by every benchmark's client, with more idle
// connections per host than the highest concurrency, so no request dials
// once a run is warm.
var benchTransport = sync.OnceValue(func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 128
	return t
})

var benchPolicies = []queue.SyncPolicy{queue.SyncAlways, queue.SyncNone}

// benchServe serves h on 127.0.0.1 until the benchmark ends and returns a
// client for it on the shared transport.
func benchServe(b *testing.B, h http.Handler) *api.Client {
	b.Helper()
	return api.NewClient(benchServeURL(b, h), "", &http.Client{Transport: benchTransport()})
}

// benchServeURL serves h on 127.0.0.1 until the benchmark ends and
// returns its URL.
func benchServeURL(b *testing.B, h http.Handler) string {
	b.Helper()
	hs := httptest.NewServer(h)
	b.Cleanup(func() {
		hs.Close()
		benchTransport().CloseIdleConnections() // the pool would keep dead ones
	})
	return hs.URL
}

// benchEnv is a broker with one queue, "bench", served over HTTP.
type benchEnv struct {
	br *queue.Broker
	q  *queue.Queue
	c  *api.Client
	// url is the server's, for clients other than c (the SQS benchmarks).
	url string
	// records and fsyncs count the message log's commit rounds.
	records, fsyncs atomic.Int64
}

func benchSpool(b *testing.B, policy queue.SyncPolicy) *benchEnv {
	b.Helper()
	quiet := slog.New(slog.DiscardHandler)
	e := &benchEnv{}
	m := api.NewMetrics() // as main.go wires it: the server's cost includes it
	br, err := queue.Open(b.TempDir(), queue.Options{
		Sync:                policy,
		MaintenanceInterval: -1,
		Logger:              quiet,
		OnCommit: func(name string, c queue.Commit) {
			m.OnCommit(name, c)
			e.records.Add(int64(c.Records))
			if c.Synced {
				e.fsyncs.Add(1)
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() }) // after the server's cleanup: LIFO
	q, _, err := br.Create("bench", queue.ConfigUpdate{})
	if err != nil {
		b.Fatal(err)
	}
	e.br, e.q = br, q
	e.url = benchServeURL(b, api.New(br, api.Config{Logger: quiet}, m).Handler())
	e.c = api.NewClient(e.url, "", &http.Client{Transport: benchTransport()})
	return e
}

// drop purges and compacts so long runs do not fill a small disk.
func (e *benchEnv) drop(b *testing.B) {
	if err := e.q.Purge(); err != nil {
		b.Fatal(err)
	}
	e.br.Maintain()
	e.br.Maintain()
}

// reportFsyncs reports messages per fsync of the message log since the
// given counts (under sync=always; other policies hardly fsync).
func (e *benchEnv) reportFsyncs(b *testing.B, policy queue.SyncPolicy, records, fsyncs int64) {
	if policy == queue.SyncAlways {
		b.ReportMetric(float64(e.records.Load()-records)/float64(max(e.fsyncs.Load()-fsyncs, 1)), "msgs/fsync")
	}
}

// benchParallel makes ops calls of op on exactly conc goroutines, which
// claim calls through an atomic counter, in rounds of at most round calls.
// Between rounds it stops the timer and calls reset (if not nil). It
// resets the timer first and stops it at the end.
func benchParallel(b *testing.B, conc, ops, round int, reset func(), op func() error) {
	var failed atomic.Bool
	b.ResetTimer()
	for start := 0; start < ops && !failed.Load(); start += round {
		if start > 0 && reset != nil {
			b.StopTimer()
			reset()
			b.StartTimer()
		}
		end := int64(min(start+round, ops))
		var next atomic.Int64
		next.Store(int64(start))
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for !failed.Load() && next.Add(1) <= end {
					if err := op(); err != nil {
						if failed.CompareAndSwap(false, true) {
							b.Error(err)
						}
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.StopTimer()
}

func benchBody() []byte { return bytes.Repeat([]byte{'a'}, 100) }

// BenchmarkHTTPEnqueue: conc goroutines each POSTing one 100-byte message
// at a time; ns/op is per message. Under sync=always it also reports
// messages per fsync of the message log (group commit across requests).
func BenchmarkHTTPEnqueue(b *testing.B) {
	for _, conc := range []int{1, 16, 64} {
		for _, policy := range benchPolicies {
			b.Run(fmt.Sprintf("conc=%d/sync=%s", conc, policy), func(b *testing.B) {
				e := benchSpool(b, policy)
				ctx := context.Background()
				body := benchBody()
				b.SetBytes(int64(len(body)))
				records, fsyncs := e.records.Load(), e.fsyncs.Load()
				benchParallel(b, conc, b.N, benchRound, func() { e.drop(b) }, func() error {
					_, err := e.c.Send(ctx, "bench", body, 0)
					return err
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
				e.reportFsyncs(b, policy, records, fsyncs)
			})
		}
	}
}

// BenchmarkHTTPEnqueueBatch: conc goroutines each POSTing batches of 100
// 100-byte messages (JSON bodies); ns/op is per message.
func BenchmarkHTTPEnqueueBatch(b *testing.B) {
	const batch = 100
	for _, conc := range []int{1, 16} {
		for _, policy := range benchPolicies {
			b.Run(fmt.Sprintf("batch=%d/conc=%d/sync=%s", batch, conc, policy), func(b *testing.B) {
				e := benchSpool(b, policy)
				ctx := context.Background()
				msgs := make([]api.NewMessage, batch)
				for i := range msgs {
					msgs[i] = api.BodyMessage(bytes.Repeat([]byte{byte('a' + i%26)}, 100))
				}
				b.SetBytes(100)
				calls := (b.N + batch - 1) / batch
				benchParallel(b, conc, calls, benchRound/batch, func() { e.drop(b) }, func() error {
					_, err := e.c.SendBatch(ctx, "bench", msgs)
					return err
				})
				b.ReportMetric(float64(calls*batch)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}

// BenchmarkHTTPReceiveAck: conc goroutines each receiving up to batch
// messages (JSON reply) and acking them in one request; ns/op is per
// message. The queue is filled in-process, outside the timer, in rounds
// of at most 200k messages, purged and compacted between rounds.
func BenchmarkHTTPReceiveAck(b *testing.B) {
	for _, batch := range []int{1, 10} {
		for _, conc := range []int{1, 16, 64} {
			for _, policy := range benchPolicies {
				b.Run(fmt.Sprintf("batch=%d/conc=%d/sync=%s", batch, conc, policy), func(b *testing.B) {
					benchReceiveAck(b, batch, conc, policy)
				})
			}
		}
	}
}

func benchReceiveAck(b *testing.B, batch, conc int, policy queue.SyncPolicy) {
	e := benchSpool(b, policy)
	ctx := context.Background()
	benchConsume(b, e, conc, func() (int, error) {
		receipts := make([]string, 0, batch)
		got, err := e.c.Receive(ctx, "bench", api.ReceiveOptions{Max: batch})
		if err != nil || len(got) == 0 {
			return 0, err
		}
		for _, m := range got {
			receipts = append(receipts, m.Receipt)
		}
		res, err := e.c.Ack(ctx, "bench", receipts...)
		for _, r := range res {
			if err == nil {
				err = r.Err()
			}
		}
		return len(got), err
	})
}

// benchConsume runs consume (receive a batch and ack it, returning how
// many it got; 0 when the queue is empty) on conc goroutines until b.N
// messages are consumed, and reports msgs/s. The queue is filled
// in-process, outside the timer, in rounds of at most benchRound
// messages, purged and compacted between rounds.
func benchConsume(b *testing.B, e *benchEnv, conc int, consume func() (int, error)) {
	fill := make([]queue.NewMessage, 1000)
	for i := range fill {
		fill[i] = queue.NewMessage{Body: bytes.Repeat([]byte{byte('a' + i%26)}, 100)}
	}
	refill := func(n int) {
		for n > 0 {
			k := min(n, len(fill))
			if _, err := e.q.Enqueue(fill[:k]); err != nil {
				b.Fatal(err)
			}
			n -= k
		}
	}
	total := int64(b.N)
	var done atomic.Int64
	var failed atomic.Bool
	refill(int(min(total, benchRound)))
	b.ResetTimer()
	for !failed.Load() {
		var wg sync.WaitGroup
		for range conc {
			wg.Go(func() {
				for !failed.Load() && done.Load() < total {
					n, err := consume()
					if err != nil {
						if failed.CompareAndSwap(false, true) {
							b.Error(err)
						}
						return
					}
					if n == 0 {
						return // empty: refill
					}
					done.Add(int64(n))
				}
			})
		}
		wg.Wait()
		left := total - done.Load()
		if left <= 0 {
			break
		}
		b.StopTimer()
		e.drop(b)
		refill(int(min(left, benchRound)))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(done.Load())/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkTrivialHandler is the baseline for the benchmarks above: conc
// goroutines sending plain GETs, through an api.Client on the same
// transport (Health: a GET whose body is read to the end), to a handler
// that writes "ok" and nothing else.
func BenchmarkTrivialHandler(b *testing.B) {
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			c := benchServe(b, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				io.WriteString(w, "ok")
			}))
			ctx := context.Background()
			benchParallel(b, conc, b.N, b.N, nil, func() error { return c.Health(ctx) })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
		})
	}
}
