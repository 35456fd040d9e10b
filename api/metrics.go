package api

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/VictoriaMetrics/metrics"

	"github.com/spoolq/spool/queue"
)

// Metrics collects what /metrics exposes, in the Prometheus text format,
// through github.com/VictoriaMetrics/metrics (small, no dependencies of
// note, cheap counters). Per-queue counts are read at scrape time.
type Metrics struct {
	set         *metrics.Set
	fsync       *metrics.PrometheusHistogram
	batch       *metrics.PrometheusHistogram
	fsyncs      *metrics.Counter
	stateFsyncs *metrics.Counter
	requests    sync.Map // requestKey → *metrics.Counter
}

// NewMetrics returns an empty collector. Pass its OnCommit and
// OnStateSync to queue.Options so fsyncs and group commits are counted.
func NewMetrics() *Metrics {
	set := metrics.NewSet()
	return &Metrics{
		set:         set,
		fsync:       set.GetOrCreatePrometheusHistogramExt("spool_fsync_seconds", []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1}),
		batch:       set.GetOrCreatePrometheusHistogramExt("spool_commit_records", []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}),
		fsyncs:      set.GetOrCreateCounter("spool_fsyncs_total"),
		stateFsyncs: set.GetOrCreateCounter("spool_state_fsyncs_total"),
	}
}

// OnStateSync records one state-log fsync: spool_fsyncs_total counts the
// fsyncs of both logs, spool_state_fsyncs_total the state log's alone.
func (m *Metrics) OnStateSync(_ string, _ int, took time.Duration) {
	m.fsyncs.Inc()
	m.stateFsyncs.Inc()
	m.fsync.Update(took.Seconds())
}

// OnCommit records one message-log commit round.
func (m *Metrics) OnCommit(_ string, c queue.Commit) {
	if c.Err != nil {
		m.set.GetOrCreateCounter("spool_commit_errors_total").Inc()
		return
	}
	m.batch.Update(float64(c.Records))
	if c.Synced {
		m.fsyncs.Inc()
		m.fsync.Update(c.SyncTime.Seconds())
	}
}

// request counts one request. The counter for a route and status is
// looked up once, not named with Sprintf per request: this runs on every
// request, and routes and statuses are few.
func (m *Metrics) request(route string, status int) {
	k := requestKey{route, status}
	c, ok := m.requests.Load(k)
	if !ok {
		c, _ = m.requests.LoadOrStore(k, m.set.GetOrCreateCounter(fmt.Sprintf(`spool_http_requests_total{route=%q,status="%d"}`, route, status)))
	}
	c.(*metrics.Counter).Inc()
}

type requestKey struct {
	route  string
	status int
}

func (m *Metrics) write(w io.Writer, b *queue.Broker) {
	m.set.WritePrometheus(w)
	unavailable := 0
	for _, info := range b.List() {
		if info.Err != nil {
			unavailable++
			continue
		}
		q := fmt.Sprintf(`{queue=%q}`, info.Name)
		c := info.Counts
		for _, g := range []struct {
			state string
			n     int
		}{{"ready", c.Ready}, {"delayed", c.Delayed}, {"leased", c.Leased}, {"dead", c.Dead}} {
			metrics.WriteGaugeUint64(w, fmt.Sprintf(`spool_messages{queue=%q,state=%q}`, info.Name, g.state), uint64(g.n))
		}
		metrics.WriteGaugeUint64(w, "spool_queue_bytes"+q, uint64(info.Bytes))
		s := info.Stats
		for _, t := range []struct {
			name string
			v    uint64
		}{
			{"spool_enqueued_total", s.Enqueued}, {"spool_acked_total", s.Acked}, {"spool_nacked_total", s.Nacked},
			{"spool_expired_total", s.Expired}, {"spool_dead_total", s.Dead}, {"spool_dead_lettered_total", s.DeadLettered},
			{"spool_removed_total", s.Removed},
		} {
			metrics.WriteCounterUint64(w, t.name+q, t.v)
		}
	}
	// Queues whose files did not open: the alert for "one tenant is down".
	metrics.WriteGaugeUint64(w, "spool_queues_unavailable", uint64(unavailable))
	metrics.WriteProcessMetrics(w)
}
