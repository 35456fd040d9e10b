package queue

// Benchmarks of topics (issue 14's figures). BenchmarkTopicRestart needs
// about 150 MB of disk under the temp dir.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// randomBatch returns n messages of size random (incompressible) bytes:
// what disk per message and restart reading should be measured with.
func randomBatch(n, size int) []NewMessage {
	rng := rand.New(rand.NewPCG(uint64(n), uint64(size)))
	msgs := make([]NewMessage, n)
	for i := range msgs {
		body := make([]byte, size)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		msgs[i] = NewMessage{Body: body}
	}
	return msgs
}

func benchTopic(b *testing.B, policy log.SyncPolicy, subs int) (*Broker, *Topic) {
	b.Helper()
	br, err := Open(b.TempDir(), Options{Sync: policy, MaintenanceInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { br.Close() })
	tp, _, err := br.CreateTopic("bench", TopicUpdate{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range subs {
		if _, _, err := tp.CreateSubscription(fmt.Sprintf("s%d", i), SubscriptionUpdate{}, Earliest()); err != nil {
			b.Fatal(err)
		}
	}
	return br, tp
}

// BenchmarkTopicPublish publishes 100-byte random messages to a topic
// with 1 subscription, to a second one with 1 (the control) and to one
// with 100 (none consuming), in the same broker, in rounds of 2,000
// messages each, taking turns to go first, so that all see the same
// machine: from 16 goroutines one message a call, and from one goroutine
// in batches of 100, under sync=always. Publishing writes the topic's log
// once whatever the fan-out, so fanout-ratio (the rate with 100 over the
// rate with 1) should be about 1; control-ratio (the same for the two
// topics of 1) is how far apart identical topics land, the noise to read
// fanout-ratio against. disk-B/msg (the log's bytes per message) should
// be the same for all. ns/op counts every topic's messages.
func BenchmarkTopicPublish(b *testing.B) {
	for _, mode := range []struct {
		name             string
		writers, perCall int
	}{{"writers=16/batch=1", 16, 1}, {"writers=1/batch=100", 1, 100}} {
		b.Run(mode.name, func(b *testing.B) {
			br, one := benchTopic(b, log.SyncAlways, 1)
			topics := []*Topic{one}
			for _, n := range []int{1, 100} {
				tp, _, err := br.CreateTopic(fmt.Sprintf("subs-%d", n), TopicUpdate{})
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					if _, _, err := tp.CreateSubscription(fmt.Sprintf("s%d", i), SubscriptionUpdate{}, Earliest()); err != nil {
						b.Fatal(err)
					}
				}
				topics = append(topics, tp)
			}
			msgs := randomBatch(mode.perCall, 100)
			publishN := func(tp *Topic, n int) {
				var next atomic.Int64
				var wg sync.WaitGroup
				for range mode.writers {
					wg.Go(func() {
						for next.Add(int64(mode.perCall)) <= int64(n)+int64(mode.perCall)-1 {
							if _, err := tp.Publish(msgs); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
			const round = 2000
			var took [3]time.Duration
			b.SetBytes(100)
			b.ResetTimer()
			for r := 0; r*3*round < b.N; r++ {
				for k := range 3 {
					i := (r + k) % 3 // each goes first in turn
					start := time.Now()
					publishN(topics[i], round)
					took[i] += time.Since(start)
				}
			}
			b.StopTimer()
			var rate, disk [3]float64
			for i, tp := range topics {
				info, err := tp.Info()
				if err != nil {
					b.Fatal(err)
				}
				rate[i] = float64(info.Published) / took[i].Seconds()
				disk[i] = float64(info.Bytes) / float64(info.Published)
			}
			b.ReportMetric(rate[0], "msgs/s-subs=1")
			b.ReportMetric(rate[2], "msgs/s-subs=100")
			b.ReportMetric(rate[2]/rate[0], "fanout-ratio")
			b.ReportMetric(rate[1]/rate[0], "control-ratio")
			b.ReportMetric(disk[0], "disk-B/msg-subs=1")
			b.ReportMetric(disk[2], "disk-B/msg-subs=100")
		})
	}
}

// BenchmarkConsumeQueueVsSubscription receives batches of 10 and acks
// them, on a queue and on one subscription of a topic (with 9 more
// subscriptions, idle), from 1 and 16 consumers under sync=always, in one
// run so the two compare. ns/op is per message; a backlog of 100k is
// refilled outside the timer.
func BenchmarkConsumeQueueVsSubscription(b *testing.B) {
	for _, consumers := range []int{1, 16} {
		for _, kind := range []string{"queue", "subscription"} {
			b.Run(fmt.Sprintf("consumers=%d/%s", consumers, kind), func(b *testing.B) {
				msgs := batchOf(1000, 100)
				var fill func([]NewMessage) ([]uint64, error)
				refill := func() {
					for range 100 {
						if _, err := fill(msgs); err != nil {
							b.Fatal(err)
						}
					}
				}
				if kind == "queue" {
					_, q := benchBroker(b, log.SyncAlways)
					fill = q.Enqueue
					benchConsume(b, consumers, q.Receive, q.Ack, refill)
					return
				}
				_, tp := benchTopic(b, log.SyncAlways, 10)
				s, _ := tp.Subscription("s0")
				fill = tp.Publish
				benchConsume(b, consumers, s.Receive, s.Ack, refill)
			})
		}
	}
}

// Topic restart, measured in a fresh process (the child below), so the
// RSS is what a server that just started holds, not what filling left.
const (
	trestartEnvDir  = "SPOOL_TOPIC_RESTART_DIR"
	trestartSubs    = 100
	trestartBacklog = 1_000_000
)

// TestTopicRestartChild opens the data directory BenchmarkTopicRestart
// filled and prints how long Open took and the RSS after it, as JSON; it
// does nothing unless started by the benchmark.
func TestTopicRestartChild(t *testing.T) {
	dir := os.Getenv(trestartEnvDir)
	if dir == "" {
		t.Skip("the child side of BenchmarkTopicRestart")
	}
	start := time.Now()
	b, err := Open(dir, Options{MaintenanceInterval: -1, Logger: quiet})
	took := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	tp, err := b.Topic("bench")
	if err != nil {
		t.Fatal(err)
	}
	info, err := tp.Info()
	if err != nil || len(info.Subscriptions) != trestartSubs {
		t.Fatalf("after restart: %d subscriptions, %v", len(info.Subscriptions), err)
	}
	lag := 0
	for _, s := range info.Subscriptions {
		lag += s.Lag
	}
	runtime.GC()
	out, _ := json.Marshal(map[string]any{"open_ns": took.Nanoseconds(), "rss": rssBytes(), "lag": lag, "tail": info.TailID})
	fmt.Printf("RESTART %s\n", out)
	simulateCrash(b, false) // no snapshot writing: the parent opens it again
}

// BenchmarkTopicRestart publishes a backlog of 1M 100-byte messages to a
// topic with 100 subscriptions, each of which has consumed a different
// share (subscription i acked i*100 messages, and holds 10 leases), then
// opens the data directory in a fresh process: ms/restart is Open's time,
// rssMB the process's RSS after it (the Pi budget: ≤ 64 MB, < 1 s).
func BenchmarkTopicRestart(b *testing.B) {
	dir := b.TempDir()
	br, err := Open(dir, Options{Sync: log.SyncNone, MaintenanceInterval: -1, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	tp, _, err := br.CreateTopic("bench", TopicUpdate{})
	if err != nil {
		b.Fatal(err)
	}
	var subs []*Subscription
	for i := range trestartSubs {
		s, _, err := tp.CreateSubscription(fmt.Sprintf("s%d", i), SubscriptionUpdate{VisibilityTimeout: ptr(time.Hour)}, Earliest())
		if err != nil {
			b.Fatal(err)
		}
		subs = append(subs, s)
	}
	msgs := randomBatch(1000, 100)
	for range trestartBacklog / len(msgs) {
		if _, err := tp.Publish(msgs); err != nil {
			b.Fatal(err)
		}
	}
	for i, s := range subs {
		for acked := 0; acked < i*100; {
			got, err := s.Receive(context.Background(), ReceiveOptions{Max: 100})
			if err != nil || len(got) == 0 {
				b.Fatal(err)
			}
			if _, err := s.Ack(receipts(got)); err != nil {
				b.Fatal(err)
			}
			acked += len(got)
		}
		if _, err := s.Receive(context.Background(), ReceiveOptions{Max: 10}); err != nil {
			b.Fatal(err)
		}
	}
	if err := br.Close(); err != nil {
		b.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	var open time.Duration
	var rss int64
	b.ResetTimer()
	for range b.N {
		cmd := exec.Command(exe, "-test.run=^TestTopicRestartChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), trestartEnvDir+"="+dir)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("child: %v\n%s", err, out)
		}
		var res struct {
			OpenNS int64 `json:"open_ns"`
			RSS    int64 `json:"rss"`
			Lag    int   `json:"lag"`
			Tail   uint64
		}
		after, ok := resultLine(string(out), "RESTART ")
		if !ok || json.Unmarshal([]byte(after), &res) != nil {
			b.Fatalf("child printed no result:\n%s", out)
		}
		if want := trestartSubs*trestartBacklog - trestartSubs*(trestartSubs-1)/2*100; res.Lag != want {
			b.Fatalf("lag %d after restart, want %d", res.Lag, want)
		}
		open += time.Duration(res.OpenNS)
		rss = max(rss, res.RSS)
	}
	b.ReportMetric(float64(open.Milliseconds())/float64(b.N), "ms/restart")
	b.ReportMetric(float64(rss)/(1<<20), "rssMB")
	if du, err := dirBytes(dir); err == nil {
		b.ReportMetric(float64(du)/(1<<20), "diskMB")
	}
}

// resultLine returns the rest of the first line of s that starts with
// prefix.
func resultLine(s, prefix string) (string, bool) {
	for line := range strings.Lines(s) {
		if rest, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), prefix); ok {
			return rest, true
		}
	}
	return "", false
}

// dirBytes sums the sizes of the files under dir.
func dirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}
