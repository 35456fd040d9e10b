package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spoolq/spool/api"
)

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
	b.TrivialServer = trivialServer(r.cfg.Scenario)
	b.TrivialDuration = min(r.cfg.Duration, 3*time.Second)
	p, h, err := r.trivial(ctx, b.TrivialDuration)
	if err != nil {
		return nil, fmt.Errorf("bench: trivial %s baseline: %w", b.TrivialServer, err)
	}
	b.TrivialBefore = rate(p.reqs.Load(), p.elapsed())
	b.TrivialReqPerSec = b.TrivialBefore
	b.TrivialLatencyP50, b.TrivialLatencyP99 = h.Quantile(0.50), h.Quantile(0.99)
	return b, nil
}

// trivialAgain measures the trivial handler a second time, after the
// window, and makes the baseline the mean of both runs.
func (r *runner) trivialAgain(ctx context.Context, rep *Report) error {
	b := rep.Baselines
	if b.TrivialDuration == 0 {
		return nil // not measured
	}
	p, _, err := r.trivial(ctx, b.TrivialDuration)
	if err != nil {
		return fmt.Errorf("bench: trivial %s baseline after the window: %w", b.TrivialServer, err)
	}
	b.TrivialAfter = rate(p.reqs.Load(), p.elapsed())
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

// trivial runs the scenario's trivial baseline for d: trivialHTTP, or
// for the beanstalkd and redis scenarios trivialLine. A baseline in which
// no operation completed is an error.
func (r *runner) trivial(ctx context.Context, d time.Duration) (*phase, *Histogram, error) {
	run := r.trivialHTTP
	if protocolOf(r.cfg.Scenario) != protoHTTP {
		run = r.trivialLine
	}
	p, h, err := run(ctx, d)
	if err != nil {
		return nil, nil, err
	}
	if p.msgs.Load() == 0 {
		if err := p.firstError(); err != nil {
			return nil, nil, err
		}
		return nil, nil, errors.Join(errors.New("no request completed"), ctx.Err())
	}
	return p, h, nil
}

// trivialHTTP runs the HTTP baseline: a handler that reads the body and
// writes "ok", on 127.0.0.1:0, loaded by a client like the scenario's
// (fresh, same settings) at the same concurrency with the scenario's main
// request.
func (r *runner) trivialHTTP(ctx context.Context, d time.Duration) (*phase, *Histogram, error) {
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
	u := api.BaseURL(ln.Addr().String()) + "/"
	var body []byte
	var ctype []string
	s := newScenario(r.cfg, "", "", r.epoch)
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
	return ws.run(ctx, cl, d, h, r.ticker("trivial net/http baseline", d, "requests")), h, nil
}

// ratios sets the ratios of rep's figures to the baselines.
func (b *Baselines) ratios(rep *Report) {
	b.MsgsPerRawFsync = rep.MsgsPerSec / b.FsyncPerSec
	b.FsyncUse = Unknown
	if rep.Fsyncs != Unknown {
		b.FsyncUse = rep.FsyncsPerSec / b.FsyncPerSec
	}
	b.VsTrivial = Unknown
	if b.TrivialDuration > 0 {
		b.VsTrivial = rep.ReqPerSec / b.TrivialReqPerSec
	}
}

// trivialOp is the HTTP baseline's operation: the scenario's main request
// (its body and content type) to a handler that reads it and writes "ok".
func trivialOp(u string, body []byte, ctype []string) op {
	return postOp(u, body, ctype, http.StatusOK, 1, true)
}
