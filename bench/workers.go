package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// client is the load generator's HTTP client: one tuned http.Client
// shared by every worker, keep-alive connections (an idle pool as large as
// the concurrency, so no worker ever dials again after its first request),
// no compression, large socket buffers for batch bodies. Request bodies
// are built once per run where they do not change; replies are read into
// a buffer each worker reuses.
type client struct {
	hc   *http.Client
	auth []string // the Authorization header value, or nil
}

func newClient(concurrency int, token string) *client {
	tr := &http.Transport{
		Proxy:               nil, // the target is named explicitly; never a proxy
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0, // no global limit
		MaxIdleConnsPerHost: 2*concurrency + 8,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		WriteBufferSize:     64 << 10,
		ReadBufferSize:      64 << 10,
	}
	c := &client{hc: &http.Client{Transport: tr}}
	if token != "" {
		c.auth = []string{"Bearer " + token}
	}
	return c
}

func (c *client) close() { c.hc.CloseIdleConnections() }

// Shared header values: the transport only reads them.
var (
	ctOctets = []string{"application/octet-stream"}
	ctJSON   = []string{"application/json"}
)

// conn is one worker's end of the client: the buffer its replies are
// read into.
type conn struct {
	c     *client
	reply bytes.Buffer
}

// replyLimit bounds a reply read into memory (a receive of the largest
// batch of the largest messages, as JSON, fits).
const replyLimit = 1 << 30

// post sends body (nil: none) and returns the status and the reply, which
// is valid until the next call. body is not reused by the caller while
// the transport may still read it: each request gets its own reader.
func (w *conn) post(ctx context.Context, u string, body []byte, ctype []string) (int, []byte, error) {
	var rd io.Reader = http.NoBody
	if len(body) > 0 {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, rd)
	if err != nil {
		return 0, nil, err
	}
	if ctype != nil {
		req.Header["Content-Type"] = ctype
	}
	if w.c.auth != nil {
		req.Header["Authorization"] = w.c.auth
	}
	resp, err := w.c.hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	w.reply.Reset()
	_, err = w.reply.ReadFrom(io.LimitReader(resp.Body, replyLimit))
	resp.Body.Close()
	if err != nil {
		return 0, nil, fmt.Errorf("reading the reply of POST %s: %w", pathOf(u), err)
	}
	return resp.StatusCode, w.reply.Bytes(), nil
}

func pathOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Path
	}
	return u
}

// statusError describes an unexpected reply.
func statusError(u string, status int, reply []byte) error {
	ex := strings.Join(strings.Fields(string(reply[:min(len(reply), 200)])), " ")
	return fmt.Errorf("POST %s: status %d: %s", pathOf(u), status, ex)
}

// phase is one timed run of workers: the warm-up or the measured window.
type phase struct {
	start    time.Time
	deadline time.Time
	hist     *Histogram // nil: latencies are not kept

	msgs atomic.Int64 // the scenario's unit (see Report.Messages)
	enq  atomic.Int64 // mixed: messages enqueued
	reqs atomic.Int64
	errs atomic.Int64
	// last is when the last counted operation completed, in ns after
	// start: the end of the window the rate is computed over.
	last atomic.Int64
	dry  atomic.Bool // a receive found the queue empty

	errMu    sync.Mutex
	firstErr error

	cancel context.CancelFunc // aborts the phase (too many errors)
}

// done counts n messages of one operation that completed at now, with
// latency lat (recorded when rec).
func (p *phase) done(now time.Time, n int, lat time.Duration, rec bool) {
	if rec && p.hist != nil {
		p.hist.Record(lat)
	}
	p.msgs.Add(int64(n))
	off := int64(now.Sub(p.start))
	for {
		l := p.last.Load()
		if off <= l || p.last.CompareAndSwap(l, off) {
			return
		}
	}
}

// request is one POST of the phase through w, counted in reqs whatever
// its outcome: it returns the reply (valid until w's next call), or an
// error for a reply whose status is not want.
func (p *phase) request(ctx context.Context, w *conn, u string, body []byte, ctype []string, want int) ([]byte, error) {
	st, reply, err := w.post(ctx, u, body, ctype)
	p.reqs.Add(1)
	if err != nil {
		return nil, err
	}
	if st != want {
		return nil, statusError(u, st, reply)
	}
	return reply, nil
}

// fail counts a failed operation and keeps the first error.
func (p *phase) fail(err error) {
	p.errs.Add(1)
	p.errMu.Lock()
	if p.firstErr == nil {
		p.firstErr = err
	}
	p.errMu.Unlock()
}

func (p *phase) firstError() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.firstErr
}

// elapsed is the window the phase's counts cover: from its start to the
// last counted completion (a worker finishing its last request after the
// deadline, or the queue running dry before it), or to now if nothing
// completed.
func (p *phase) elapsed() time.Duration {
	if l := p.last.Load(); l > 0 {
		return time.Duration(l)
	}
	return time.Since(p.start)
}

// op is one operation of a worker: a request, or a receive and its ack.
// It counts its own success through p.done; dry reports an empty queue
// (the worker stops).
type op func(ctx context.Context, w *conn, p *phase) (dry bool, err error)

// Error handling in a worker: a failed operation is counted and the worker
// waits errPause; after maxConsecutiveErrors failures in a row the phase
// is aborted (a server that went away, a misconfigured queue).
const (
	errPause             = 10 * time.Millisecond
	maxConsecutiveErrors = 50
)

// loop runs f until the deadline, the context ends or the queue is dry.
func (p *phase) loop(ctx context.Context, w *conn, f op) {
	bad := 0
	for ctx.Err() == nil && !p.dry.Load() && time.Now().Before(p.deadline) {
		dry, err := f(ctx, w, p)
		if dry {
			p.dry.Store(true)
			return
		}
		if err == nil {
			bad = 0
			continue
		}
		if ctx.Err() != nil {
			return // cancelled: not the server's fault
		}
		p.fail(err)
		if bad++; bad >= maxConsecutiveErrors {
			p.cancel()
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(errPause):
		}
	}
}

// phaseGrace bounds how long requests may run past a phase's deadline
// before they are cancelled (a wedged server must not hang the bench).
const phaseGrace = 15 * time.Second

// workers is a set of goroutines, each running one op, started together.
type workers []op

// run runs ws for d and returns the finished phase. tick, if set, is
// called about every 250 ms while it runs, from one goroutine.
func (ws workers) run(ctx context.Context, cl *client, d time.Duration, hist *Histogram, tick func(*phase)) *phase {
	p := &phase{hist: hist}
	p.start = time.Now()
	p.deadline = p.start.Add(d)
	ctx, cancel := context.WithDeadline(ctx, p.deadline.Add(phaseGrace))
	defer cancel()
	p.cancel = cancel
	var wg sync.WaitGroup
	withSide(ctx, sideClient, func(ctx context.Context) {
		for _, f := range ws {
			wg.Go(func() { p.loop(ctx, &conn{c: cl}, f) })
		}
	})
	stop := make(chan struct{})
	ticked := make(chan struct{})
	go func() {
		defer close(ticked)
		if tick == nil {
			return
		}
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				tick(p)
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-ticked
	return p
}
