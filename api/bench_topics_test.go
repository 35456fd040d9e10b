package api_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/spoolq/spool/queue"
)

// BenchmarkHTTPPublish: 16 goroutines each POSTing one 100-byte message
// at a time to a topic with 1 and with 100 subscriptions (none consuming),
// under sync=always; ns/op is per message. A publish writes the topic's
// log once however many subscriptions read it, so the two should match,
// as should the log's bytes per message (disk-B/msg).
func BenchmarkHTTPPublish(b *testing.B) {
	for _, subs := range []int{1, 100} {
		b.Run(fmt.Sprintf("conc=16/subs=%d/sync=always", subs), func(b *testing.B) {
			e := benchSpool(b, queue.SyncAlways)
			tp, _, err := e.br.CreateTopic("bench", queue.TopicUpdate{})
			if err != nil {
				b.Fatal(err)
			}
			for i := range subs {
				if _, _, err := tp.CreateSubscription(fmt.Sprintf("s%d", i), queue.SubscriptionUpdate{}, queue.Earliest()); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			body := benchBody()
			b.SetBytes(int64(len(body)))
			benchParallel(b, 16, b.N, b.N, nil, func() error {
				_, err := e.c.Publish(ctx, "bench", body, 0)
				return err
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			info, err := tp.Info()
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(info.Bytes)/float64(max(info.Published, 1)), "disk-B/msg")
		})
	}
}
