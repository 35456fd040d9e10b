package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/spoolq/spool/api"
)

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
	case BeanstalkPut:
		return "one put (beanstalkd protocol), to its INSERTED"
	case BeanstalkReserveDelete:
		return fmt.Sprintf("reserve-with-timeout %d and the job's delete, from the reserve to DELETED", int(reserveTimeout/time.Second))
	case RedisLPush:
		return "one LPUSH (RESP), to its integer reply"
	default:
		return "end to end: from the producer's enqueue request to the consumer's receive reply"
	}
}

// note adds a line to the report's notes.
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

// read takes the counters of one side of the window; flushes, if set,
// reads the disk's.
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

// prefilled says whether the scenario consumes a queue filled before it.
func prefilled(scenario string) bool {
	return scenario == ReceiveAck || scenario == ReceiveAckBatch || scenario == BeanstalkReserveDelete
}

// measure runs the scenario: prefill and warm-up, then the measured
// window, and fills rep.
func (r *runner) measure(ctx context.Context, rep *Report, dataDir string) error {
	cfg := r.cfg
	if prefilled(cfg.Scenario) {
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
	switch {
	case r.t.inProcess():
		rep.FsyncSource = "message-log and state-log fsyncs, counted through queue.Options.OnCommit and OnStateSync"
	case r.t.api == nil:
		rep.FsyncSource = fmt.Sprintf("not measured: the bench sees no fsync counter over the %s protocol", protocolOf(cfg.Scenario))
	default:
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
		if r.t.api != nil {
			rep.FsyncSource = "not measured: the server's /metrics has no spool_fsyncs_total"
		}
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

// fill enqueues n messages, showing the prefill's progress.
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

// rate is n per second of d (0 for no time).
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

// show replaces the progress line with a new one.
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

// clear blanks the progress line, so what follows starts clean.
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
