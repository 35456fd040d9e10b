package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/api"
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

// scenario holds what the operations of one run share: URLs and bodies
// built once.
type scenario struct {
	cfg   Config
	epoch time.Time // mixed: enqueue stamps are nanoseconds since epoch

	messagesURL, batchURL, receiveURL, ackURL string

	body      []byte // one message of cfg.Size bytes
	batchBody []byte // a batch of cfg.Batch such messages, as JSON
}

// mixedReceiveMax and mixedWait are the consumers' receive of mixed: up
// to 10 messages, long-polling 100 ms (so consumers stop soon after the
// deadline, and wake as soon as a message is ready).
const (
	mixedReceiveMax = 10
	mixedWait       = 100 * time.Millisecond
)

// newScenario builds the URLs (on the server at base) and bodies of a run.
// The paths come from package api, where the server's routes are named.
func newScenario(cfg Config, base string, epoch time.Time) *scenario {
	u := func(r api.Route) string { return base + api.QueuePath(cfg.Queue, r) }
	s := &scenario{
		cfg:         cfg,
		epoch:       epoch,
		messagesURL: u(api.RouteMessages),
		batchURL:    u(api.RouteBatch),
		ackURL:      u(api.RouteAck),
		body:        bytes.Repeat([]byte{'x'}, cfg.Size),
	}
	switch receive := u(api.RouteReceive); cfg.Scenario {
	case ReceiveAck:
		s.receiveURL = receive + "?max=1"
	case ReceiveAckBatch:
		s.receiveURL = receive + "?max=" + strconv.Itoa(cfg.Batch)
	case Mixed:
		s.receiveURL = receive + "?max=" + strconv.Itoa(mixedReceiveMax) + "&wait=" + mixedWait.String()
	}
	if cfg.Scenario == EnqueueBatch {
		s.batchBody = batchJSON(cfg.Batch, s.body)
	}
	return s
}

// batchJSON returns the body of a batch enqueue of n copies of body,
// which must need no JSON escaping (the bench's bodies are 'x's).
func batchJSON(n int, body []byte) []byte {
	b := make([]byte, 0, n*(len(body)+12)+16)
	b = append(b, `{"messages":[`...)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"body":"`...)
		b = append(b, body...)
		b = append(b, `"}`...)
	}
	return append(b, "]}"...)
}

// workers returns the scenario's workers for concurrency c.
func (s *scenario) workers(rec bool) workers {
	c := s.cfg.Concurrency
	ws := make(workers, 0, c+1)
	switch s.cfg.Scenario {
	case Enqueue:
		for range c {
			ws = append(ws, s.enqueueOp(rec))
		}
	case EnqueueBatch:
		for range c {
			ws = append(ws, s.enqueueBatchOp(rec))
		}
	case ReceiveAck, ReceiveAckBatch:
		for range c {
			ws = append(ws, s.receiveAckOp(rec, true))
		}
	case Mixed:
		producers, consumers := mixedSplit(c)
		for range producers {
			ws = append(ws, s.produceOp())
		}
		for range consumers {
			ws = append(ws, s.receiveAckOp(rec, false))
		}
	}
	return ws
}

// mixedSplit divides the concurrency of mixed: half producers, the rest
// consumers, at least one of each.
func mixedSplit(c int) (producers, consumers int) {
	producers = max(c/2, 1)
	return producers, max(c-producers, 1)
}

// enqueueOp: one POST /messages of cfg.Size bytes; latency = the request.
func (s *scenario) enqueueOp(rec bool) op {
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		t0 := time.Now()
		st, reply, err := w.post(ctx, s.messagesURL, s.body, ctOctets)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st != http.StatusCreated {
			return false, statusError(s.messagesURL, st, reply)
		}
		now := time.Now()
		p.done(now, 1, now.Sub(t0), rec)
		return false, nil
	}
}

// enqueueBatchOp: one POST /batch of cfg.Batch messages; latency = the
// request.
func (s *scenario) enqueueBatchOp(rec bool) op {
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		t0 := time.Now()
		st, reply, err := w.post(ctx, s.batchURL, s.batchBody, ctJSON)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st != http.StatusCreated {
			return false, statusError(s.batchURL, st, reply)
		}
		now := time.Now()
		p.done(now, s.cfg.Batch, now.Sub(t0), rec)
		return false, nil
	}
}

// produceOp (mixed): one POST /messages whose body starts with the
// enqueue time (decimal ns since the run's epoch, then '.', then 'x'
// padding up to cfg.Size). Counted in phase.enq; no latency sample (the
// consumers take the end-to-end one).
func (s *scenario) produceOp() op {
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		body := make([]byte, 0, max(s.cfg.Size, mixedMinSize))
		body = strconv.AppendInt(body, int64(time.Since(s.epoch)), 10)
		body = append(body, '.')
		for len(body) < s.cfg.Size {
			body = append(body, 'x')
		}
		st, reply, err := w.post(ctx, s.messagesURL, body, ctOctets)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st != http.StatusCreated {
			return false, statusError(s.messagesURL, st, reply)
		}
		p.enq.Add(1)
		return false, nil
	}
}

// mixedMinSize is the shortest body of mixed: the stamp needs it.
const mixedMinSize = 21

// receiveReply is the part of a receive reply the bench reads: the
// bodies only in mixed (receiptsReply skips them without copying).
type receiveReply struct {
	Messages []struct {
		Receipt string  `json:"receipt"`
		Body    *string `json:"body"`
	} `json:"messages"`
}

type receiptsReply struct {
	Messages []struct {
		Receipt string `json:"receipt"`
	} `json:"messages"`
}

// reset empties a reused reply: Unmarshal appends into the slice's old
// elements, whose fields a reply without them would leave set.
func reset[T any](s []T) []T {
	clear(s[:cap(s)])
	return s[:0]
}

var okResult = []byte(`"ok":true`)

// receiveAckOp: POST /receive (max 1, cfg.Batch, or for mixed 10 with a
// 100 ms long poll), then one POST /ack of every receipt. counted counts
// acked messages, with the receive+ack pair as the latency (receive-ack
// scenarios); otherwise (mixed) it counts received messages with each
// one's enqueue-to-receive latency. An empty receive means the queue ran
// dry when counted (receive-ack), and is just a wait that ended for mixed.
func (s *scenario) receiveAckOp(rec, counted bool) op {
	var rr receiptsReply
	var mr receiveReply
	var receipts []string
	var ack []byte
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		t0 := time.Now()
		st, reply, err := w.post(ctx, s.receiveURL, nil, nil)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st == http.StatusNoContent {
			return counted, nil
		}
		if st != http.StatusOK {
			return false, statusError(s.receiveURL, st, reply)
		}
		received := time.Now()
		receipts = receipts[:0]
		if counted {
			rr.Messages = reset(rr.Messages)
			err = json.Unmarshal(reply, &rr)
			for _, m := range rr.Messages {
				receipts = append(receipts, m.Receipt)
			}
		} else {
			mr.Messages = reset(mr.Messages)
			err = json.Unmarshal(reply, &mr)
			startNS := int64(p.start.Sub(s.epoch))
			for _, m := range mr.Messages {
				receipts = append(receipts, m.Receipt)
				stamp, ok := parseStamp(m.Body)
				if !ok && err == nil {
					err = errors.New("a message without the bench's enqueue stamp")
				}
				if ok && stamp >= startNS { // enqueued in this phase
					p.done(received, 1, received.Sub(s.epoch.Add(time.Duration(stamp))), rec)
				}
			}
		}
		if err != nil {
			return false, fmt.Errorf("POST %s: decoding the reply: %w", pathOf(s.receiveURL), err)
		}
		if len(receipts) == 0 {
			return false, fmt.Errorf("POST %s: 200 with no messages", pathOf(s.receiveURL))
		}
		ack = append(ack[:0], `{"receipts":[`...)
		for i, r := range receipts {
			if i > 0 {
				ack = append(ack, ',')
			}
			ack = strconv.AppendQuote(ack, r)
		}
		ack = append(ack, "]}"...)
		// The transport reads the body after post returns only when the
		// server replied before reading it all, an error case; a fresh
		// copy keeps the reused buffer out of that race.
		st, reply, err = w.post(ctx, s.ackURL, bytes.Clone(ack), ctJSON)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st != http.StatusOK {
			return false, statusError(s.ackURL, st, reply)
		}
		acked := bytes.Count(reply, okResult)
		if counted {
			now := time.Now()
			p.done(now, acked, now.Sub(t0), rec)
		}
		if acked != len(receipts) {
			return false, fmt.Errorf("POST %s: %d of %d receipts failed: %s", pathOf(s.ackURL),
				len(receipts)-acked, len(receipts), strings.Join(strings.Fields(string(reply[:min(len(reply), 200)])), " "))
		}
		return false, nil
	}
}

// parseStamp reads the enqueue stamp at the start of a mixed body.
func parseStamp(body *string) (int64, bool) {
	if body == nil {
		return 0, false
	}
	b := *body
	i := strings.IndexByte(b, '.')
	if i <= 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(b[:i], 10, 64)
	return n, err == nil
}

// trivialOp is the HTTP baseline's operation: the scenario's main request
// (its body and content type) to a handler that reads it and writes "ok".
func trivialOp(u string, body []byte, ctype []string) op {
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		t0 := time.Now()
		st, reply, err := w.post(ctx, u, body, ctype)
		p.reqs.Add(1)
		if err != nil {
			return false, err
		}
		if st != http.StatusOK {
			return false, statusError(u, st, reply)
		}
		now := time.Now()
		p.done(now, 1, now.Sub(t0), true)
		return false, nil
	}
}
