package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"time"

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
	// The beanstalkd-protocol scenarios load spool's beanstalkd listener
	// (in-process, or spool serve --beanstalk-addr) or beanstalkd itself;
	// redis-lpush loads a redis server. Same shape as the HTTP ones, so
	// the figures of spool and of the servers it replaces sit side by side.
	BeanstalkPut           = "beanstalk-put"
	BeanstalkReserveDelete = "beanstalk-reserve-delete"
	RedisLPush             = "redis-lpush"
)

// Scenarios returns every scenario name, in the order of the package doc.
func Scenarios() []string {
	return []string{Enqueue, EnqueueBatch, ReceiveAck, ReceiveAckBatch, Mixed, BeanstalkPut, BeanstalkReserveDelete, RedisLPush}
}

// protocol is what a scenario's workers speak to the server.
type protocol int

const (
	protoHTTP protocol = iota
	protoBeanstalk
	protoRedis
)

func protocolOf(scenario string) protocol {
	switch scenario {
	case BeanstalkPut, BeanstalkReserveDelete:
		return protoBeanstalk
	case RedisLPush:
		return protoRedis
	}
	return protoHTTP
}

func (p protocol) String() string {
	return [...]string{"HTTP", "beanstalkd", "redis"}[p]
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
	// directory (under Dir) that Run removes. For the beanstalk-*
	// scenarios it is a beanstalkd-protocol server's host:port (beanstalkd,
	// or spool serve's --beanstalk-addr); for redis-lpush, a redis
	// server's, and required: the bench starts no redis.
	Addr string
	// Token is sent as "Authorization: Bearer <token>"; in-process, the
	// server requires it too. The beanstalkd and redis scenarios take
	// none (those protocols have no such token).
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
	if proto := protocolOf(c.Scenario); proto != protoHTTP {
		switch _, _, err := net.SplitHostPort(c.Addr); {
		case c.Addr == "" && proto == protoRedis:
			return c, fmt.Errorf("%s needs the address (host:port) of a redis server to load: the bench starts no redis", c.Scenario)
		case c.Addr != "" && err != nil:
			return c, fmt.Errorf("address %q: %s speaks the %s protocol: want host:port", c.Addr, c.Scenario, proto)
		case c.Token != "":
			return c, fmt.Errorf("token: the %s protocol of %s has no authentication to send it with", proto, c.Scenario)
		}
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
	// TrivialReqPerSec: the scenario's requests (through the same client,
	// at the same concurrency) to TrivialServer on 127.0.0.1, a server
	// that does no work: for the HTTP scenarios the main request (its
	// body) to a net/http handler that reads the body and writes "ok"; for
	// the beanstalkd and redis scenarios the scenario's own commands to a
	// responder that reads each and writes a fixed reply. Measured for
	// TrivialDuration before the window (TrivialBefore) and again after it
	// (TrivialAfter): it is their mean, so a machine that speeds up or
	// slows down during the run (a noisy neighbour) biases the ratio less,
	// and shows.
	TrivialServer     string        `json:"trivial_server"`
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
	// as a share of a do-nothing server's (Unknown without the trivial
	// baseline).
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
	r.s = newScenario(cfg, r.t.base, r.t.wire, r.epoch)
	defer r.s.close()
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
