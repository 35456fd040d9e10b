package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

func TestHistogramExactBelow128(t *testing.T) {
	var h Histogram
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.01, 1}, {0.5, 50}, {0.99, 99}, {0.999, 100}, {1, 100}} {
		if got := h.Quantile(c.q); got != c.want {
			t.Errorf("Quantile(%v) = %d, want %d", c.q, got, c.want)
		}
	}
	if h.Count() != 100 || h.Max() != 100 || h.Mean() != 50 {
		t.Errorf("count %d max %d mean %d, want 100 100 50", h.Count(), h.Max(), h.Mean())
	}
}

func TestHistogramSkewed(t *testing.T) {
	var h Histogram
	for range 990 {
		h.Record(time.Millisecond)
	}
	for range 9 {
		h.Record(10 * time.Millisecond)
	}
	h.Record(100 * time.Millisecond)
	within := func(name string, got, want time.Duration) {
		t.Helper()
		if d := float64(got-want) / float64(want); d > 1.0/128 || d < -1.0/128 {
			t.Errorf("%s = %s, want %s within 0.8%%", name, got, want)
		}
	}
	within("p50", h.Quantile(0.5), time.Millisecond)
	within("p99", h.Quantile(0.99), time.Millisecond) // rank 990 is the last 1 ms
	within("p99.9", h.Quantile(0.999), 10*time.Millisecond)
	if got := h.Quantile(1); got != 100*time.Millisecond {
		t.Errorf("p100 = %s, want exactly the max, 100ms", got)
	}
	if got := h.Max(); got != 100*time.Millisecond {
		t.Errorf("Max = %s", got)
	}
}

func TestHistogramUniform(t *testing.T) {
	var h Histogram
	// 1 µs .. 100 ms in 1 µs steps, shuffled.
	vals := make([]time.Duration, 100_000)
	for i := range vals {
		vals[i] = time.Duration(i+1) * time.Microsecond
	}
	rand.Shuffle(len(vals), func(i, j int) { vals[i], vals[j] = vals[j], vals[i] })
	for _, v := range vals {
		h.Record(v)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := time.Duration(q*100_000) * time.Microsecond
		got := h.Quantile(q)
		if d := float64(got-want) / float64(want); d > 1.0/128 || d < -1.0/128 {
			t.Errorf("Quantile(%v) = %s, want %s within 0.8%%", q, got, want)
		}
	}
	if p50, p99, p999 := h.Quantile(0.5), h.Quantile(0.99), h.Quantile(0.999); !(p50 <= p99 && p99 <= p999) {
		t.Errorf("quantiles out of order: %s %s %s", p50, p99, p999)
	}
}

func TestHistogramEdges(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Count() != 0 {
		t.Fatal("empty histogram should answer 0")
	}
	h.Record(-time.Second) // counts as 0
	h.Record(time.Hour)    // past the range: last bucket, exact max
	if got := h.Quantile(0.5); got != 0 {
		t.Errorf("p50 = %s, want 0", got)
	}
	if got := h.Quantile(1); got != time.Hour {
		t.Errorf("p100 = %s, want 1h (the max)", got)
	}
	if got := h.Quantile(0.99); got > time.Hour {
		t.Errorf("p99 = %s above the max", got)
	}
}

func TestHistogramBuckets(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := r.Uint64N(1 << 40)
		if r.IntN(2) == 0 {
			v >>= r.UintN(40)
		}
		i := histIndex(v)
		low, width := histBounds(i)
		if i < 0 || i >= histBuckets || v < low || v >= low+width {
			t.Fatalf("value %d: bucket %d is [%d, %d)", v, i, low, low+width)
		}
		if width > 1 && width*64 > low {
			t.Fatalf("value %d: bucket %d is %d wide at %d, over 1/64", v, i, width, low)
		}
	}
}

func checkReport(t *testing.T, rep *Report) {
	t.Helper()
	if rep.Messages <= 0 || rep.MsgsPerSec <= 0 || rep.Requests <= 0 || rep.ReqPerSec <= 0 {
		t.Errorf("messages %d (%.0f/s), requests %d (%.0f/s): want all > 0", rep.Messages, rep.MsgsPerSec, rep.Requests, rep.ReqPerSec)
	}
	if !(rep.LatencyP50 > 0 && rep.LatencyP50 <= rep.LatencyP99 && rep.LatencyP99 <= rep.LatencyP999 && rep.LatencyP999 <= rep.LatencyMax) {
		t.Errorf("latencies: p50 %s p99 %s p99.9 %s max %s: want 0 < p50 ≤ p99 ≤ p99.9 ≤ max",
			rep.LatencyP50, rep.LatencyP99, rep.LatencyP999, rep.LatencyMax)
	}
	if rep.Errors != 0 {
		t.Errorf("%d errors, first: %s", rep.Errors, rep.FirstError)
	}
	if rep.Duration <= 0 {
		t.Errorf("duration %s", rep.Duration)
	}
	if rep.ServerRSSBytes != Unknown && (rep.ServerRSSBytes <= 0 || rep.ServerRSSPeakBytes < rep.ServerRSSBytes) {
		t.Errorf("RSS %d, peak %d", rep.ServerRSSBytes, rep.ServerRSSPeakBytes)
	}
}

// TestRunScenarios runs each HTTP scenario briefly against an in-process
// server with sync=always (beanstalk_test.go runs the others).
func TestRunScenarios(t *testing.T) {
	for _, sc := range Scenarios() {
		if protocolOf(sc) != protoHTTP {
			continue
		}
		t.Run(sc, func(t *testing.T) {
			rep, err := Run(t.Context(), Config{
				Scenario:    sc,
				Concurrency: 2,
				Duration:    300 * time.Millisecond,
				Size:        100,
				Batch:       10,
				Sync:        "always",
				Dir:         t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep)
			// Enqueues fsync the message log, acks the state log: both count.
			if rep.Fsyncs <= 0 || rep.MsgsPerFsync <= 0 {
				t.Errorf("fsyncs %d, %.1f msgs per fsync: want > 0 with sync=always", rep.Fsyncs, rep.MsgsPerFsync)
			}
			switch sc {
			case ReceiveAck, ReceiveAckBatch:
				if rep.DiskFlushes != Unknown && rep.DiskFlushes <= 0 {
					t.Errorf("disk flushes %d: acks with sync=always must flush", rep.DiskFlushes)
				}
				if rep.Prefilled < rep.Messages {
					t.Errorf("acked %d of %d prefilled", rep.Messages, rep.Prefilled)
				}
			}
			if sc == Mixed && (rep.Enqueued < rep.Messages || rep.Producers != 1 || rep.Consumers != 1) {
				t.Errorf("mixed: enqueued %d, received %d, %d producers, %d consumers", rep.Enqueued, rep.Messages, rep.Producers, rep.Consumers)
			}
			if rep.ServerRSSBytes <= 0 {
				t.Errorf("in-process RSS %d: want it measured", rep.ServerRSSBytes)
			}
			if rep.ClientCPUShare != Unknown {
				// A 300 ms profile holds ~60 samples: either side may get
				// none by chance, but not both, and never more than all.
				if rep.ClientCPUShare < 0 || rep.ServerCPUShare < 0 || rep.ClientCPUShare+rep.ServerCPUShare <= 0 ||
					rep.ClientCPUShare+rep.ServerCPUShare > 1.0001 {
					t.Errorf("CPU shares: client %.2f server %.2f", rep.ClientCPUShare, rep.ServerCPUShare)
				}
			}
			if rep.Baselines != nil {
				t.Error("baselines measured though not asked for")
			}
			var text bytes.Buffer
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("\n%s", text.String())
		})
	}
}

func TestRunSyncNone(t *testing.T) {
	rep, err := Run(t.Context(), Config{Scenario: Enqueue, Concurrency: 2, Duration: 200 * time.Millisecond, Sync: "none", Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	if rep.Fsyncs != 0 || rep.MsgsPerFsync != Unknown {
		t.Errorf("sync=none: %d fsyncs, %.1f msgs per fsync; want 0 and Unknown", rep.Fsyncs, rep.MsgsPerFsync)
	}
}

func TestRunBaselinesAndProgress(t *testing.T) {
	var progress bytes.Buffer
	rep, err := Run(t.Context(), Config{
		Scenario:    EnqueueBatch,
		Concurrency: 2,
		Duration:    300 * time.Millisecond,
		Batch:       10,
		Baselines:   true,
		Progress:    &progress,
		Dir:         t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	b := rep.Baselines
	if b == nil {
		t.Fatal("no baselines")
	}
	if b.FsyncPerSec <= 0 || b.TrivialReqPerSec <= 0 || b.TrivialLatencyP50 <= 0 {
		t.Errorf("baselines: %+v", b)
	}
	if b.MsgsPerRawFsync <= 0 || b.VsTrivial <= 0 || b.FsyncUse <= 0 {
		t.Errorf("ratios: %+v", b)
	}
	if want := rep.MsgsPerSec / b.FsyncPerSec; b.MsgsPerRawFsync != want {
		t.Errorf("msgs per raw fsync %v, want %v", b.MsgsPerRawFsync, want)
	}
	checkTrivialBaseline(t, rep, "net/http handler", "x the one-fsync-per-message ceiling", "of the raw fsync rate")
	if p := progress.String(); !strings.Contains(p, "\r") || !strings.Contains(p, "fsync probe") {
		t.Errorf("progress output %q: want \\r lines naming the phases", p)
	}
}

// remoteServer serves a broker over HTTP on 127.0.0.1, as `spool serve`
// would, for the bench to load as a remote server.
func remoteServer(t *testing.T, token string) string {
	t.Helper()
	m := api.NewMetrics()
	b, err := queue.Open(t.TempDir(), queue.Options{OnCommit: m.OnCommit, OnStateSync: m.OnStateSync})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(b, api.Config{Token: token, MaxBatch: 500}, m)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv.Handler()}
	go hs.Serve(ln)
	t.Cleanup(func() {
		srv.Shutdown()
		hs.Close()
		srv.EndStreams(5 * time.Second)
		b.Close()
	})
	return ln.Addr().String()
}

func TestRunRemote(t *testing.T) {
	addr := remoteServer(t, "s3cret")
	cl := api.NewClient(addr, "s3cret", nil)
	for _, sc := range []string{Enqueue, ReceiveAckBatch} {
		t.Run(sc, func(t *testing.T) {
			rep, err := Run(t.Context(), Config{
				Addr:        addr,
				Token:       "s3cret",
				PID:         os.Getpid(), // the "server" lives in the test process
				Scenario:    sc,
				Concurrency: 2,
				Duration:    300 * time.Millisecond,
				Batch:       10,
				Queue:       "bench-remote",
				Dir:         t.TempDir(),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkReport(t, rep)
			if rep.Target != addr || rep.Sync != "" {
				t.Errorf("target %q sync %q", rep.Target, rep.Sync)
			}
			if rep.Fsyncs <= 0 {
				t.Errorf("fsyncs %d from /metrics: want > 0 (enqueues and acks both fsync)", rep.Fsyncs)
			}
			if rep.ServerRSSBytes <= 0 || rep.ServerCPUCores == Unknown || rep.ClientCPUShare == Unknown {
				t.Errorf("with a PID: RSS %d, server cores %v, client share %v; want them measured", rep.ServerRSSBytes, rep.ServerCPUCores, rep.ClientCPUShare)
			}
			// The bench created the queue, so it deleted it.
			if _, err := cl.GetQueue(t.Context(), "bench-remote"); !errors.Is(err, queue.ErrQueueNotFound) {
				t.Errorf("after the run: GetQueue = %v, want not found", err)
			}
		})
	}
	t.Run("existing queue is purged, kept", func(t *testing.T) {
		if _, _, err := cl.PutQueue(t.Context(), "mine", api.QueueConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Send(t.Context(), "mine", []byte("old"), 0); err != nil {
			t.Fatal(err)
		}
		rep, err := Run(t.Context(), Config{Addr: addr, Token: "s3cret", Scenario: Mixed, Concurrency: 2, Duration: 200 * time.Millisecond, Queue: "mine", Dir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		checkReport(t, rep)
		if rep.ServerRSSBytes != Unknown || rep.ClientCPUShare != Unknown {
			t.Errorf("no PID: RSS %d, client share %v; want Unknown", rep.ServerRSSBytes, rep.ClientCPUShare)
		}
		info, err := cl.GetQueue(t.Context(), "mine")
		if err != nil {
			t.Fatal(err)
		}
		if info.Counts.Total != 0 {
			t.Errorf("queue holds %d messages after the run, want 0 (purged)", info.Counts.Total)
		}
	})
	t.Run("wrong token fails fast", func(t *testing.T) {
		_, err := Run(t.Context(), Config{Addr: addr, Token: "wrong", Duration: time.Second})
		if err == nil || !strings.Contains(err.Error(), "unauthorized") {
			t.Errorf("err = %v, want unauthorized", err)
		}
	})
}

func TestRunCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	time.AfterFunc(400*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, Config{Scenario: Enqueue, Concurrency: 2, Duration: time.Minute, Warmup: -1, Dir: t.TempDir()})
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("Run took %s after its context ended", took)
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages == 0 || rep.Duration > 5*time.Second || len(rep.Notes) == 0 || !strings.Contains(rep.Notes[0], "cancelled") {
		t.Errorf("messages %d, duration %s, notes %q", rep.Messages, rep.Duration, rep.Notes)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Scenario: "nope"},
		{Sync: "sometimes"},
		{Concurrency: -1},
		{Size: -5},
		{Batch: -1},
		{Duration: -time.Second},
		{Scenario: EnqueueBatch, Batch: 100_000, Size: 100_000},
	} {
		if _, err := Run(t.Context(), cfg); err == nil {
			t.Errorf("Run(%+v) succeeded, want a config error", cfg)
		}
	}
}

func sampleReport() *Report {
	return &Report{
		Scenario: Enqueue, Target: "in-process", Sync: "always", Concurrency: 16, Size: 100,
		Duration: 3 * time.Second, Messages: 150_000, Requests: 150_000,
		MsgsPerSec: 50_000, ReqPerSec: 50_000, LatencyOf: latencyOf(Config{Scenario: Enqueue}),
		LatencyP50: 300 * time.Microsecond, LatencyP99: 2 * time.Millisecond, LatencyP999: 4 * time.Millisecond,
		LatencyMax: 9 * time.Millisecond, LatencyMean: 320 * time.Microsecond,
		Fsyncs: 9_000, FsyncsPerSec: 3_000, MsgsPerFsync: 16.7, FsyncSource: "OnCommit",
		DiskFlushes: 9_500, Disk: "vda",
		ServerRSSBytes: 40 << 20, ServerRSSPeakBytes: 42 << 20, RSSSource: "VmRSS",
		CPUCores: 1.9, ServerCPUCores: Unknown, ClientCPUShare: 0.4, ServerCPUShare: 0.5, CPUSource: "pprof labels",
		Baselines: &Baselines{
			FsyncPerSec: 5_000, FsyncDuration: 600 * time.Millisecond, FsyncDir: "/tmp/x",
			TrivialServer: "net/http handler", TrivialReqPerSec: 100_000, TrivialDuration: 3 * time.Second,
			TrivialLatencyP50: 100 * time.Microsecond, TrivialLatencyP99: time.Millisecond,
			MsgsPerRawFsync: 10, FsyncUse: 0.6, VsTrivial: 0.5,
		},
		Notes: []string{"a note"},
	}
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport()
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rep, &back) {
		t.Errorf("round trip changed the report:\n%+v\n%+v", rep, &back)
	}
	for _, key := range []string{`"msgs_per_sec"`, `"latency_p999_ns"`, `"msgs_per_fsync"`, `"server_rss_bytes"`, `"client_cpu_share"`, `"fsync_per_sec"`, `"trivial_server"`, `"trivial_req_per_sec"`, `"vs_trivial"`} {
		if !strings.Contains(buf.String(), key) {
			t.Errorf("JSON lacks %s", key)
		}
	}
}

func TestWriteTextRatios(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteText(&buf); err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	for _, want := range []string{
		"50,000 msgs/s", "p50 0.300ms", "p99 2.00ms", "p99.9 4.00ms",
		"3,000/s", "16.7 msgs per fsync", "RSS 40.0 MiB",
		"client 40%, server 50%, Go runtime/GC 10%",
		"raw fsync 5,000/s", "trivial net/http handler 100,000 req/s",
		"10.0x the one-fsync-per-message ceiling", "fsyncs at 60% of the raw fsync rate",
		"requests at 50% of the trivial net/http handler's rate (0.50x)", "note        a note",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	// Unknown figures say n/a rather than printing -1.
	rep := sampleReport()
	rep.Fsyncs, rep.MsgsPerFsync, rep.ServerRSSBytes = Unknown, Unknown, Unknown
	rep.Baselines.FsyncUse = Unknown
	buf.Reset()
	rep.WriteText(&buf)
	if text := buf.String(); strings.Contains(text, "-1") || !strings.Contains(text, "fsyncs      n/a") || strings.Contains(text, "of the raw fsync rate") {
		t.Errorf("unknowns:\n%s", text)
	}
}

func TestSharesOfLabels(t *testing.T) {
	prof, err := startCPUProfile()
	if err != nil {
		t.Skip("profiler busy:", err)
	}
	spin := func(d time.Duration) {
		x := 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			x++
		}
		_ = x
	}
	done := make(chan struct{})
	withSide(t.Context(), sideClient, func(context.Context) {
		go func() { spin(300 * time.Millisecond); close(done) }() // inherits the label
	})
	<-done
	s, err := prof.stop()
	if err != nil {
		t.Fatal(err)
	}
	if s.total() == 0 {
		t.Skip("no samples (slow machine?)")
	}
	if share := float64(s.client) / float64(s.total()); share < 0.5 {
		t.Errorf("client share %.2f of %+v, want most of it", share, s)
	}
}

// checkTrivialBaseline checks rep's trivial baseline: server's, measured
// before the window and after it, the baseline their mean and the ratio
// against that; the text names it, and holds the strings of also.
func checkTrivialBaseline(t *testing.T, rep *Report, server string, also ...string) {
	t.Helper()
	b := rep.Baselines
	if b.TrivialServer != server || b.TrivialLatencyP50 <= 0 {
		t.Errorf("trivial baseline of %q (p50 %s), want %q", b.TrivialServer, b.TrivialLatencyP50, server)
	}
	if b.TrivialBefore <= 0 || b.TrivialAfter <= 0 || b.TrivialReqPerSec != (b.TrivialBefore+b.TrivialAfter)/2 {
		t.Errorf("trivial before %v, after %v, baseline %v: want both measured and the baseline their mean", b.TrivialBefore, b.TrivialAfter, b.TrivialReqPerSec)
	}
	if want := rep.ReqPerSec / b.TrivialReqPerSec; b.VsTrivial != want {
		t.Errorf("vs trivial %v, want %v", b.VsTrivial, want)
	}
	var text bytes.Buffer
	rep.WriteText(&text)
	for _, want := range append([]string{"raw fsync", "trivial " + server, "before the window", "of the trivial " + server + "'s rate"}, also...) {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}
}
