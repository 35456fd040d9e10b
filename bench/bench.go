package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// The scenarios (Config.Scenario). The package doc says what each one
// measures.
const (
	Enqueue         = "enqueue"
	EnqueueBatch    = "enqueue-batch"
	ReceiveAck      = "receive-ack"
	ReceiveAckBatch = "receive-ack-batch"
	Mixed           = "mixed"
)

// Scenarios returns every scenario name, in the order of the package doc.
func Scenarios() []string {
	return []string{Enqueue, EnqueueBatch, ReceiveAck, ReceiveAckBatch, Mixed}
}

// Unknown is the value of a Report figure that could not be measured in
// this run (an int64 or float64 field documented as possibly Unknown).
const Unknown = -1

// Config is one bench run. Its fields map 1:1 to `spool bench` flags;
// DefaultConfig holds the flags' defaults. Zero fields get those defaults,
// except Baselines, which a zero Config leaves off.
type Config struct {
	// Addr is the server to load, as host:port or a URL. Empty: a server
	// started in this process on 127.0.0.1:0 over a temporary data
	// directory (under Dir) that Run removes.
	Addr string
	// Token is sent as "Authorization: Bearer <token>"; in-process, the
	// server requires it too.
	Token string
	// PID is the remote server's process id, for its RSS and CPU (read
	// from /proc/PID on this host). 0: not measured. Ignored in-process.
	PID int
	// Scenario is one of Scenarios() (default enqueue).
	Scenario string
	// Concurrency is how many requests are in flight: one worker each
	// (default 16). In mixed, half are producers and half consumers.
	Concurrency int
	// Duration is the measured window (default 10s). Baselines, setup,
	// prefill and warm-up come on top of it.
	Duration time.Duration
	// Warmup is an unmeasured run of the scenario just before the measured
	// one (connections, caches, the prefill rate estimate). 0: a tenth of
	// Duration, within [50ms, 1s]; negative: none (the receive-ack
	// scenarios still run 100 ms of one to size their prefill).
	Warmup time.Duration
	// Size is the message body size in bytes (default 100).
	Size int
	// Batch is the messages per request of enqueue-batch and
	// receive-ack-batch (default 100).
	Batch int
	// Sync is the in-process server's fsync policy: always (default),
	// interval or none. A remote server uses its own --sync.
	Sync string
	// Queue is the queue loaded (default "bench"). In-process it is
	// created in the fresh data directory. On a remote server it is
	// created if missing and deleted at the end, or, if it exists, purged
	// before and after the run: never point it at a queue in use.
	Queue string
	// Baselines measures, in the same run, the raw fsync rate of the disk
	// and a trivial net/http handler's request rate (true in
	// DefaultConfig).
	Baselines bool
	// Dir is where the in-process server's temporary data directory and
	// the fsync probe's file go: the disk being measured. "" = os.TempDir().
	Dir string
	// Progress, if set, gets a progress line about once a second, each
	// starting with \r, and a clearing \r line at the end.
	Progress io.Writer
	// Logger gets the in-process server's log; nil: slog.Default().
	Logger *slog.Logger
}

// DefaultConfig returns the defaults of `spool bench`.
func DefaultConfig() Config {
	return Config{
		Scenario:    Enqueue,
		Concurrency: 16,
		Duration:    10 * time.Second,
		Size:        100,
		Batch:       100,
		Sync:        "always",
		Queue:       "bench",
		Baselines:   true,
	}
}

// Bounds on a run, so that it stays bounded whatever the flags.
const (
	maxConcurrency  = 4096
	maxRequestBytes = 256 << 20 // one batch body
	// The prefill of receive-ack scenarios stops at maxPrefill messages
	// or maxPrefillBytes of bodies, whichever comes first.
	maxPrefill      = 4_000_000
	maxPrefillBytes = 512 << 20
)

func (c Config) normalize() (Config, error) {
	d := DefaultConfig()
	if c.Scenario == "" {
		c.Scenario = d.Scenario
	}
	if c.Concurrency == 0 {
		c.Concurrency = d.Concurrency
	}
	if c.Duration == 0 {
		c.Duration = d.Duration
	}
	if c.Size == 0 {
		c.Size = d.Size
	}
	if c.Batch == 0 {
		c.Batch = d.Batch
	}
	if c.Sync == "" {
		c.Sync = d.Sync
	}
	if c.Queue == "" {
		c.Queue = d.Queue
	}
	if c.Warmup == 0 {
		c.Warmup = min(max(c.Duration/10, 50*time.Millisecond), time.Second)
	}
	c.Warmup = max(c.Warmup, 0)
	switch {
	case !slices.Contains(Scenarios(), c.Scenario):
		return c, fmt.Errorf("unknown scenario %q (want one of %s)", c.Scenario, strings.Join(Scenarios(), ", "))
	case c.Concurrency < 1 || c.Concurrency > maxConcurrency:
		return c, fmt.Errorf("concurrency %d: want 1 to %d", c.Concurrency, maxConcurrency)
	case c.Duration < 0:
		return c, fmt.Errorf("duration %s: want a positive duration", c.Duration)
	case c.Size < 0:
		return c, fmt.Errorf("size %d: want a positive number of bytes", c.Size)
	case c.Batch < 1:
		return c, fmt.Errorf("batch %d: want at least 1", c.Batch)
	case int64(c.Batch)*int64(c.Size+12) > maxRequestBytes:
		return c, fmt.Errorf("batch %d of %d-byte messages: a request over %d MiB", c.Batch, c.Size, maxRequestBytes>>20)
	}
	if _, err := queue.ParseSyncPolicy(c.Sync); err != nil && c.Addr == "" {
		return c, fmt.Errorf("sync: %w", err)
	}
	if c.Scenario == Mixed && c.Size < mixedMinSize {
		c.Size = mixedMinSize
	}
	return c, nil
}

// Report is the result of a run. Durations are nanoseconds in JSON. A
// figure documented as possibly Unknown (-1) was not measurable in the
// run; its *Source field says why.
type Report struct {
	Scenario string `json:"scenario"`
	// Target is "in-process" or the remote server's address.
	Target string `json:"target"`
	// Sync is the in-process server's policy; "" for a remote server (its
	// own --sync).
	Sync        string `json:"sync,omitempty"`
	Concurrency int    `json:"concurrency"`
	// Producers and Consumers split Concurrency in mixed.
	Producers int `json:"producers,omitempty"`
	Consumers int `json:"consumers,omitempty"`
	Size      int `json:"size"`
	// Batch is the messages per request of the *-batch scenarios.
	Batch int `json:"batch,omitempty"`

	// Duration is the measured window: from its start to the last counted
	// completion. It is shorter than asked when the queue ran dry or the
	// run was cancelled.
	Duration time.Duration `json:"duration_ns"`
	// Messages counts the scenario's unit: messages enqueued (enqueue*),
	// acked (receive-ack*) or received with an end-to-end latency (mixed).
	Messages int64 `json:"messages"`
	// Enqueued is what mixed's producers enqueued.
	Enqueued   int64   `json:"enqueued,omitempty"`
	Requests   int64   `json:"requests"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	ReqPerSec  float64 `json:"req_per_sec"`

	// LatencyOf says what one latency sample is.
	LatencyOf   string        `json:"latency_of"`
	LatencyP50  time.Duration `json:"latency_p50_ns"`
	LatencyP99  time.Duration `json:"latency_p99_ns"`
	LatencyP999 time.Duration `json:"latency_p999_ns"`
	LatencyMax  time.Duration `json:"latency_max_ns"`
	LatencyMean time.Duration `json:"latency_mean_ns"`

	// Fsyncs are the server's fsyncs in the window, of its message logs
	// (enqueues) and state logs (acks); FsyncSource says how they were
	// counted.
	Fsyncs       int64   `json:"fsyncs"`
	FsyncsPerSec float64 `json:"fsyncs_per_sec"`
	// MsgsPerFsync is the scenario's messages (enqueued, or acked for
	// receive-ack*) per fsync (Unknown with Fsyncs).
	MsgsPerFsync float64 `json:"msgs_per_fsync"`
	FsyncSource  string  `json:"fsync_source"`
	// DiskFlushes are the flush requests the data directory's disk
	// completed in the window: every fsync of every process, and the
	// filesystem journal's, on that disk (in-process only; Unknown else).
	DiskFlushes int64  `json:"disk_flushes"`
	Disk        string `json:"disk,omitempty"`

	// ServerRSSBytes is the server's resident memory at the end of the
	// window, ServerRSSPeakBytes the most seen in samples every 250 ms
	// (both Unknown if not measured); RSSSource says how.
	ServerRSSBytes     int64  `json:"server_rss_bytes"`
	ServerRSSPeakBytes int64  `json:"server_rss_peak_bytes"`
	RSSSource          string `json:"rss_source"`

	// CPUCores is the bench process's CPU time over the window, in cores
	// (in-process: server and client together). ServerCPUCores is the
	// remote server's (with PID). ClientCPUShare and ServerCPUShare are
	// the fractions of all CPU used by the client and the server; in-
	// process the rest went to the Go runtime (background GC). Each may be
	// Unknown; CPUSource says how they were measured.
	CPUCores       float64 `json:"cpu_cores"`
	ServerCPUCores float64 `json:"server_cpu_cores"`
	ClientCPUShare float64 `json:"client_cpu_share"`
	ServerCPUShare float64 `json:"server_cpu_share"`
	CPUSource      string  `json:"cpu_source"`

	// Prefilled is how many messages receive-ack* enqueued before their
	// warm-up and window; RanDry says the queue ran out within the window.
	Prefilled int64 `json:"prefilled,omitempty"`
	RanDry    bool  `json:"ran_dry,omitempty"`

	Baselines *Baselines `json:"baselines,omitempty"`
	Notes     []string   `json:"notes,omitempty"`
}

// Baselines are measured in the same run, before the scenario, and the
// ratios put the scenario's figures beside them.
type Baselines struct {
	// FsyncPerSec: a loop of 100-byte appends (pwrite at the end of a
	// file) each followed by fsync (os.File.Sync, the call spool's logs
	// make), for FsyncDuration, in FsyncDir.
	FsyncPerSec   float64       `json:"fsync_per_sec"`
	FsyncDuration time.Duration `json:"fsync_duration_ns"`
	FsyncDir      string        `json:"fsync_dir"`
	// TrivialReqPerSec: the scenario's main request (its body, through the
	// same client, at the same concurrency) to a net/http handler on
	// 127.0.0.1 that reads the body and writes "ok", for TrivialDuration
	// before the window (TrivialBefore) and again after it (TrivialAfter):
	// it is their mean, so a machine that speeds up or slows down during
	// the run (a noisy neighbour) biases the ratio less, and shows.
	TrivialReqPerSec  float64       `json:"trivial_req_per_sec"`
	TrivialBefore     float64       `json:"trivial_before_req_per_sec"`
	TrivialAfter      float64       `json:"trivial_after_req_per_sec"`
	TrivialDuration   time.Duration `json:"trivial_duration_ns"`
	TrivialLatencyP50 time.Duration `json:"trivial_latency_p50_ns"`
	TrivialLatencyP99 time.Duration `json:"trivial_latency_p99_ns"`

	// MsgsPerRawFsync is MsgsPerSec / FsyncPerSec: how many times the
	// ceiling of one fsync per message the scenario reached.
	MsgsPerRawFsync float64 `json:"msgs_per_raw_fsync"`
	// FsyncUse is FsyncsPerSec / FsyncPerSec: the server's fsync rate as
	// a share of the disk's (Unknown with Fsyncs).
	FsyncUse float64 `json:"fsync_use"`
	// VsTrivial is ReqPerSec / TrivialReqPerSec: the server's request rate
	// as a share of a do-nothing handler's.
	VsTrivial float64 `json:"vs_trivial"`
}

// Run runs one bench and returns its report. It stops by itself after
// the baselines, setup, warm-up and cfg.Duration; cancelling ctx ends it
// early with what was measured so far (or an error if nothing was).
func Run(ctx context.Context, cfg Config) (rep *Report, err error) {
	cfg, err = cfg.normalize()
	if err != nil {
		return nil, err
	}
	pr := &progress{w: cfg.Progress}
	defer pr.clear()
	r := &runner{cfg: cfg, pr: pr, epoch: time.Now()}
	rep = &Report{
		Scenario:    cfg.Scenario,
		Target:      "in-process",
		Concurrency: cfg.Concurrency,
		Size:        cfg.Size,
		LatencyOf:   latencyOf(cfg),
	}
	if cfg.Addr != "" {
		rep.Target = cfg.Addr
	} else {
		rep.Sync = cfg.Sync
	}
	if cfg.Scenario == EnqueueBatch || cfg.Scenario == ReceiveAckBatch {
		rep.Batch = cfg.Batch
	}
	if cfg.Scenario == Mixed {
		rep.Producers, rep.Consumers = mixedSplit(cfg.Concurrency)
	}
	parent := cfg.Dir
	if parent == "" {
		parent = os.TempDir()
	}
	probeDir := parent
	if cfg.Addr == "" {
		dataDir, err := os.MkdirTemp(parent, "spool-bench-")
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer func() {
			if rerr := os.RemoveAll(dataDir); rerr != nil {
				err = errors.Join(err, fmt.Errorf("bench: removing the temporary data directory: %w", rerr))
			}
		}()
		probeDir = dataDir
	}
	if isTmpfs(probeDir) {
		rep.note("%s is on tmpfs: fsync costs nothing there; measure the disk you care about (Dir)", probeDir)
	}
	if cfg.Baselines {
		if rep.Baselines, err = r.baselines(ctx, probeDir); err != nil {
			return nil, err
		}
	}
	if cfg.Addr == "" {
		r.t, err = startInProcess(ctx, cfg, probeDir)
	} else {
		r.t, err = openRemote(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	closeTarget := func() error {
		t := r.t
		if t == nil {
			return nil
		}
		r.t = nil
		if err := t.close(); err != nil {
			return fmt.Errorf("bench: closing the server: %w", err)
		}
		return nil
	}
	defer func() { err = errors.Join(err, closeTarget()) }()
	r.cl = newClient(cfg.Concurrency, cfg.Token)
	defer r.cl.close()
	r.s = newScenario(cfg, r.t.base, r.epoch)
	if err := r.measure(ctx, rep, probeDir); err != nil {
		return nil, err
	}
	// The second trivial baseline runs with the server gone: an idle
	// in-process one still snapshots and compacts, and shares the heap.
	if err := closeTarget(); err != nil {
		return nil, err
	}
	if rep.Baselines != nil {
		if err := r.trivialAgain(ctx, rep); err != nil && ctx.Err() == nil {
			return nil, err
		}
		rep.Baselines.ratios(rep)
	}
	return rep, nil
}

// latencyOf is Report.LatencyOf: what one latency sample of the scenario
// times.
func latencyOf(cfg Config) string {
	switch cfg.Scenario {
	case Enqueue:
		return fmt.Sprintf("one POST %s (enqueue one message, fsynced per --sync)", api.RouteMessages)
	case EnqueueBatch:
		return fmt.Sprintf("one POST %s of %d messages", api.RouteBatch, cfg.Batch)
	case ReceiveAck:
		return fmt.Sprintf("POST %s of one message, then POST %s of it", api.RouteReceive, api.RouteAck)
	case ReceiveAckBatch:
		return fmt.Sprintf("POST %s?max=%d, then one POST %s of every receipt", api.RouteReceive, cfg.Batch, api.RouteAck)
	default:
		return "end to end: from the producer's enqueue request to the consumer's receive reply"
	}
}

func (rep *Report) note(format string, args ...any) {
	rep.Notes = append(rep.Notes, fmt.Sprintf(format, args...))
}

// runner holds one Run's moving parts.
type runner struct {
	cfg   Config
	pr    *progress
	epoch time.Time
	t     *target
	cl    *client
	s     *scenario
}

// baselines measures the raw fsync rate in dir and a trivial handler's
// request rate, with the run's client settings and concurrency.
func (r *runner) baselines(ctx context.Context, dir string) (*Baselines, error) {
	b := &Baselines{FsyncDir: dir}
	b.FsyncDuration = min(max(r.cfg.Duration/5, 100*time.Millisecond), time.Second)
	r.pr.show("spool bench: raw fsync probe (%s)", b.FsyncDuration)
	var err error
	if b.FsyncPerSec, err = fsyncProbe(ctx, dir, b.FsyncDuration); err != nil {
		return nil, fmt.Errorf("bench: fsync probe: %w", err)
	}
	b.TrivialDuration = min(r.cfg.Duration, 3*time.Second)
	p, h, err := r.trivial(ctx, b.TrivialDuration)
	if err != nil {
		return nil, fmt.Errorf("bench: trivial HTTP baseline: %w", err)
	}
	b.TrivialBefore = rate(p.msgs.Load(), p.elapsed())
	b.TrivialReqPerSec = b.TrivialBefore
	b.TrivialLatencyP50, b.TrivialLatencyP99 = h.Quantile(0.50), h.Quantile(0.99)
	return b, nil
}

// trivialAgain measures the trivial handler a second time, after the
// window, and makes the baseline the mean of both runs.
func (r *runner) trivialAgain(ctx context.Context, rep *Report) error {
	b := rep.Baselines
	p, _, err := r.trivial(ctx, b.TrivialDuration)
	if err != nil {
		return fmt.Errorf("bench: trivial HTTP baseline after the window: %w", err)
	}
	b.TrivialAfter = rate(p.msgs.Load(), p.elapsed())
	b.TrivialReqPerSec = (b.TrivialBefore + b.TrivialAfter) / 2
	if d := math.Abs(b.TrivialAfter-b.TrivialBefore) / b.TrivialReqPerSec; d > 0.15 {
		rep.note("the trivial baseline moved %.0f%% during the run (%.0f req/s before the window, %.0f after): the machine's speed changed, so this run's ratios are rough; compare several runs",
			100*d, b.TrivialBefore, b.TrivialAfter)
	}
	return nil
}

// fsyncProbeMax bounds the probe file (100 bytes per fsync).
const fsyncProbeMax = 1 << 20

// fsyncProbe appends 100 bytes to a new file in dir and fsyncs it, in a
// loop for d, and returns the fsyncs per second.
func fsyncProbe(ctx context.Context, dir string, d time.Duration) (float64, error) {
	f, err := os.CreateTemp(dir, "spool-bench-fsync-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := []byte(strings.Repeat("spool fsync probe ", 6)[:100])
	start := time.Now()
	n := 0
	for ; n < fsyncProbeMax && ctx.Err() == nil && time.Since(start) < d; n++ {
		if _, err := f.WriteAt(buf, int64(n*len(buf))); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, ctx.Err()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// trivial runs the HTTP baseline: a handler that reads the body and
// writes "ok", on 127.0.0.1:0, loaded by a client like the scenario's
// (fresh, same settings) at the same concurrency with the scenario's main
// request.
func (r *runner) trivial(ctx context.Context, d time.Duration) (*phase, *Histogram, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	ok := []byte("ok")
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body)
			w.Write(ok)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	withSide(ctx, sideServer, func(context.Context) { go hs.Serve(ln) })
	defer hs.Close()
	u := "http://" + ln.Addr().String() + "/"
	var body []byte
	var ctype []string
	s := newScenario(r.cfg, "", r.epoch)
	switch r.cfg.Scenario {
	case Enqueue, Mixed:
		body, ctype = s.body, ctOctets
	case EnqueueBatch:
		body, ctype = s.batchBody, ctJSON
	}
	cl := newClient(r.cfg.Concurrency, r.cfg.Token)
	defer cl.close()
	ws := make(workers, r.cfg.Concurrency)
	for i := range ws {
		ws[i] = trivialOp(u, body, ctype)
	}
	h := &Histogram{}
	p := ws.run(ctx, cl, d, h, r.ticker("trivial net/http baseline", d, "requests"))
	if p.msgs.Load() == 0 {
		if err := p.firstError(); err != nil {
			return nil, nil, err
		}
		return nil, nil, errors.Join(errors.New("no request completed"), ctx.Err())
	}
	return p, h, nil
}

// ticker returns a phase's tick function: a progress line about once a
// second with the phase's count and rate so far.
func (r *runner) ticker(label string, d time.Duration, unit string) func(*phase) {
	if r.pr.w == nil {
		return nil
	}
	rateUnit := unit
	if unit == "requests" {
		rateUnit = "req"
	}
	n := 0
	return func(p *phase) {
		if n++; n%4 != 0 {
			return
		}
		el := time.Since(p.start)
		line := fmt.Sprintf("spool bench %s: %s %.1fs/%s  %s %s  %s %s/s", r.cfg.Scenario, label,
			el.Seconds(), d, count(p.msgs.Load()), unit, count(int64(rate(p.msgs.Load(), el))), rateUnit)
		if p.hist != nil && p.hist.Count() > 0 {
			line += "  p99 " + ms(p.hist.Quantile(0.99))
		}
		r.pr.show("%s", line)
	}
}

// counters are the server-side counters read around the measured window.
type counters struct {
	fsyncs    int64
	fsyncsOK  bool
	flushes   int64
	flushesOK bool
	cpu       time.Duration // this process
	cpuOK     bool
	srvCPU    time.Duration // remote server
	srvCPUOK  bool
}

func (r *runner) read(ctx context.Context, flushes func() (int64, bool)) counters {
	var c counters
	c.fsyncs, c.fsyncsOK = r.t.fsyncCount(ctx)
	if flushes != nil {
		c.flushes, c.flushesOK = flushes()
	}
	c.cpu, c.cpuOK = processCPU()
	if !r.t.inProcess() && r.cfg.PID > 0 {
		c.srvCPU, c.srvCPUOK = pidCPU(r.cfg.PID)
	}
	return c
}

// measure runs the scenario: prefill and warm-up, then the measured
// window, and fills rep.
func (r *runner) measure(ctx context.Context, rep *Report, dataDir string) error {
	cfg := r.cfg
	receiving := cfg.Scenario == ReceiveAck || cfg.Scenario == ReceiveAckBatch
	if receiving {
		if err := r.prefillFor(ctx, rep); err != nil {
			return err
		}
	} else if cfg.Warmup > 0 {
		r.s.workers(false).run(ctx, r.cl, cfg.Warmup, nil, r.ticker("warming up", cfg.Warmup, "msgs"))
		if cfg.Scenario == Mixed {
			// Leftovers would give the first receives stale stamps.
			if err := r.t.purge(ctx); err != nil {
				return fmt.Errorf("bench: purge after the warm-up: %w", err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	var flushes func() (int64, bool)
	if r.t.inProcess() {
		var ok bool
		if flushes, rep.Disk, ok = diskFlushes(dataDir); !ok {
			flushes = nil
		}
	}
	var rssMu sync.Mutex
	rssPeak := int64(Unknown)
	sampleRSS := func() {
		if n, _, ok := r.t.rss(); ok {
			rssMu.Lock()
			rssPeak = max(rssPeak, n)
			rssMu.Unlock()
		}
	}
	sampleRSS()
	tick := r.ticker("measuring", cfg.Duration, "msgs")
	hist := &Histogram{}
	before := r.read(ctx, flushes)
	var prof *cpuProfile
	var profErr error
	if r.t.inProcess() {
		prof, profErr = startCPUProfile()
	}
	p := r.s.workers(true).run(ctx, r.cl, cfg.Duration, hist, func(p *phase) {
		sampleRSS()
		if tick != nil {
			tick(p)
		}
	})
	var shares cpuShares
	if prof != nil {
		shares, profErr = prof.stop()
	}
	after := r.read(context.WithoutCancel(ctx), flushes)
	sampleRSS()

	el := p.elapsed()
	rep.Duration = el
	rep.Messages = p.msgs.Load()
	rep.Enqueued = p.enq.Load()
	rep.Requests = p.reqs.Load()
	rep.Errors = p.errs.Load()
	if err := p.firstError(); err != nil {
		rep.FirstError = err.Error()
	}
	rep.RanDry = p.dry.Load()
	rep.MsgsPerSec = rate(rep.Messages, el)
	rep.ReqPerSec = rate(rep.Requests, el)
	rep.LatencyP50 = hist.Quantile(0.50)
	rep.LatencyP99 = hist.Quantile(0.99)
	rep.LatencyP999 = hist.Quantile(0.999)
	rep.LatencyMax = hist.Max()
	rep.LatencyMean = hist.Mean()

	if rep.Messages == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := p.firstError(); err != nil {
			return fmt.Errorf("bench: %s: no message went through: %w", cfg.Scenario, err)
		}
		return fmt.Errorf("bench: %s: no message went through in %s", cfg.Scenario, el)
	}
	if ctx.Err() != nil {
		rep.note("cancelled: the window was cut short at %s", el.Round(time.Millisecond))
	}
	if rep.Errors > 0 {
		rep.note("%d operations failed; the first: %s", rep.Errors, rep.FirstError)
	}
	if rep.RanDry {
		rep.note("the queue ran dry after %s (%d messages prefilled): the rate is over that window", el.Round(time.Millisecond), rep.Prefilled)
	}

	// Fsyncs.
	if r.t.inProcess() {
		rep.FsyncSource = "message-log and state-log fsyncs, counted through queue.Options.OnCommit and OnStateSync"
	} else {
		rep.FsyncSource = "spool_fsyncs_total of the server's /metrics before and after (every queue's message and state logs)"
	}
	switch {
	case before.fsyncsOK && after.fsyncsOK:
		rep.Fsyncs = after.fsyncs - before.fsyncs
		rep.FsyncsPerSec = rate(rep.Fsyncs, el)
		enq := rep.Messages
		if cfg.Scenario == Mixed {
			enq = rep.Enqueued
		}
		rep.MsgsPerFsync = Unknown
		if rep.Fsyncs > 0 {
			rep.MsgsPerFsync = float64(enq) / float64(rep.Fsyncs)
		}
	default:
		rep.Fsyncs, rep.FsyncsPerSec, rep.MsgsPerFsync = Unknown, Unknown, Unknown
		rep.FsyncSource = "not measured: the server's /metrics has no spool_fsyncs_total"
	}
	rep.DiskFlushes = Unknown
	if before.flushesOK && after.flushesOK {
		rep.DiskFlushes = after.flushes - before.flushes
	}

	// Memory.
	n, src, ok := r.t.rss()
	rep.RSSSource = src
	rep.ServerRSSBytes, rep.ServerRSSPeakBytes = Unknown, Unknown
	if ok {
		rep.ServerRSSBytes = n
		rep.ServerRSSPeakBytes = max(rssPeak, n)
	}

	// CPU.
	rep.CPUCores, rep.ServerCPUCores, rep.ClientCPUShare, rep.ServerCPUShare = Unknown, Unknown, Unknown, Unknown
	var clientCPU time.Duration
	if before.cpuOK && after.cpuOK {
		clientCPU = after.cpu - before.cpu
		rep.CPUCores = clientCPU.Seconds() / el.Seconds()
	}
	switch {
	case r.t.inProcess() && profErr == nil && shares.total() > 0:
		tot := float64(shares.total())
		rep.ClientCPUShare = float64(shares.client) / tot
		rep.ServerCPUShare = float64(shares.server) / tot
		rep.CPUSource = "CPU profile of the window with client and server goroutines labelled (pprof labels); the rest is the Go runtime's (GC)"
	case r.t.inProcess():
		why := "the profile held no samples"
		if profErr != nil {
			why = profErr.Error()
		}
		rep.CPUSource = "client/server split not measured: " + why
	case before.srvCPUOK && after.srvCPUOK && before.cpuOK && after.cpuOK:
		srv := after.srvCPU - before.srvCPU
		rep.ServerCPUCores = srv.Seconds() / el.Seconds()
		if tot := clientCPU + srv; tot > 0 {
			rep.ClientCPUShare = float64(clientCPU) / float64(tot)
			rep.ServerCPUShare = float64(srv) / float64(tot)
		}
		rep.CPUSource = fmt.Sprintf("getrusage of the bench process and /proc/%d/stat of the server (10 ms ticks)", cfg.PID)
	default:
		rep.CPUSource = "the bench process's getrusage; the server's CPU is not measured (give its PID)"
	}

	return nil
}

// ratios sets the ratios of rep's figures to the baselines.
func (b *Baselines) ratios(rep *Report) {
	b.MsgsPerRawFsync = rep.MsgsPerSec / b.FsyncPerSec
	b.FsyncUse = Unknown
	if rep.Fsyncs != Unknown {
		b.FsyncUse = rep.FsyncsPerSec / b.FsyncPerSec
	}
	b.VsTrivial = rep.ReqPerSec / b.TrivialReqPerSec
}

// prefillFor fills the queue of a receive-ack scenario before the window:
// a first amount, a warm-up that consumes from it to estimate the rate,
// then enough for 1.5 times that rate over Duration (within the caps).
func (r *runner) prefillFor(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	per := int64(1)
	if cfg.Scenario == ReceiveAckBatch {
		per = int64(cfg.Batch)
	}
	limit := min(int64(maxPrefill), int64(maxPrefillBytes)/int64(max(cfg.Size, 1)))
	limit = max(limit, per*int64(cfg.Concurrency))
	first := min(max(int64(cfg.Concurrency)*per*50, 5000), limit)
	if err := r.fill(ctx, first); err != nil {
		return err
	}
	rep.Prefilled = first
	// The warm-up doubles as the rate estimate: without one, a short
	// run still sizes the prefill.
	warm := cfg.Warmup
	if warm <= 0 {
		warm = 100 * time.Millisecond
	}
	p := r.s.workers(false).run(ctx, r.cl, warm, nil, r.ticker("warming up", warm, "msgs"))
	consumed := p.msgs.Load()
	if consumed == 0 {
		if err := p.firstError(); err != nil {
			return fmt.Errorf("bench: %s warm-up: %w", cfg.Scenario, err)
		}
	}
	est := rate(consumed, p.elapsed())
	want := int64(est*cfg.Duration.Seconds()*1.5) + 4*per*int64(cfg.Concurrency)
	if want > limit {
		rep.note("prefill capped at %s messages (rate estimate %s msgs/s): the window may end when the queue runs dry", count(limit), count(int64(est)))
		want = limit
	}
	if more := want - max(first-consumed, 0); more > 0 {
		if err := r.fill(ctx, more); err != nil {
			return err
		}
		rep.Prefilled += more
	}
	return ctx.Err()
}

func (r *runner) fill(ctx context.Context, n int64) error {
	err := r.t.prefill(ctx, r.cl, r.s, n, func(done int64) {
		if done%(50*prefillBatch) < prefillBatch || done == n {
			r.pr.show("spool bench %s: prefilling %s/%s messages", r.cfg.Scenario, count(done), count(n))
		}
	})
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

func rate(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// progress writes \r-led status lines, padded over the previous one.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	width int
}

func (p *progress) show(format string, args ...any) {
	if p.w == nil {
		return
	}
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	pad := max(p.width-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.width = len(line)
}

func (p *progress) clear() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.width > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.width))
		p.width = 0
	}
}
