package bench

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/queue"
)

// target is the server under test: one started in this process on
// 127.0.0.1:0 over a temporary data directory, or a running one at
// Config.Addr.
type target struct {
	cfg  Config
	base string // http://host:port, no trailing slash
	// wire is the host:port the beanstalkd and redis scenarios' workers
	// dial: spool's beanstalkd listener in-process, else Config.Addr.
	wire string

	// in-process: the api.Service spool serve runs
	svc    *api.Service
	q      *queue.Queue
	fsyncs atomic.Int64 // message-log commit rounds that fsynced, and state-log fsyncs

	// remote: api for a spool server over HTTP; nil for the beanstalkd
	// and redis scenarios (their server may not be spool's)
	api     *api.Client
	created bool // the bench created the queue (and deletes it after)
}

func (t *target) inProcess() bool { return t.svc != nil }

// startInProcess starts the server spool serve runs (api.Open: the same
// timeouts, connection cap and shutdown) in dir with the run's sync
// policy, listening on 127.0.0.1:0, and creates the queue, all labelled
// as the server side for the CPU profile. For the beanstalkd scenarios it
// also listens for that protocol on 127.0.0.1:0, as spool serve
// --beanstalk-addr does, and the queue is the tube's, made by a use
// command as any client's tube is.
func startInProcess(ctx context.Context, cfg Config, dir string) (*target, error) {
	policy, err := queue.ParseSyncPolicy(cfg.Sync)
	if err != nil {
		return nil, err
	}
	t := &target{cfg: cfg}
	maxBytes := max(queue.DefaultMaxMessageBytes, cfg.Size)
	tubes := protocolOf(cfg.Scenario) == protoBeanstalk
	var beanstalkAddr string
	if tubes {
		beanstalkAddr = "127.0.0.1:0"
	}
	withSide(ctx, sideServer, func(context.Context) {
		t.svc, err = api.Open(dir, api.ServiceConfig{
			Addr: "127.0.0.1:0",
			Queue: queue.Options{
				Sync:            policy,
				MaxMessageBytes: maxBytes,
				OnCommit: func(_ string, c queue.Commit) {
					if c.Err == nil && c.Synced {
						t.fsyncs.Add(1)
					}
				},
				OnStateSync: func(string, int, time.Duration) { t.fsyncs.Add(1) },
			},
			API: api.Config{
				Token:           cfg.Token,
				MaxMessageBytes: maxBytes,
				MaxBatch:        max(1000, cfg.Batch),
			},
			// Room for every worker of the measured run and of the client
			// that prefills and reads /metrics beside it: the cap is for
			// floods, not for the load the bench asks for. Not explicit,
			// so a low ulimit -n lowers it as it would serve's default.
			MaxConnections: max(api.DefaultMaxConnections, 2*cfg.Concurrency+16),
			// The same room on the beanstalkd listener: the workers, and
			// the prefill's as many connections.
			BeanstalkAddr:           beanstalkAddr,
			BeanstalkMaxConnections: max(beanstalk.DefaultMaxConnections, 2*cfg.Concurrency+16),
			Logger:                  cfg.Logger,
		})
		if err != nil {
			return
		}
		t.base = t.svc.URL()
		if !tubes {
			t.q, _, err = t.svc.Broker().Create(cfg.Queue, queue.ConfigUpdate{})
		}
	})
	if err == nil && tubes {
		t.wire = t.svc.BeanstalkAddr()
		t.q, err = t.tube(ctx)
	}
	if err != nil {
		if t.svc != nil {
			t.svc.Close()
		}
		return nil, fmt.Errorf("in-process server: %w", err)
	}
	return t, nil
}

// tube makes the bench's tube on the in-process server through the
// protocol (so its queue is configured as the server makes a tube's) and
// returns its queue, for the prefill to fill directly.
func (t *target) tube(ctx context.Context) (*queue.Queue, error) {
	c, err := dialLine(ctx, t.wire)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := useTube(ctx, c, t.cfg.Queue); err != nil {
		return nil, err
	}
	return t.svc.Broker().Queue(beanstalk.QueueName(t.cfg.Queue))
}

// openRemote checks the server at cfg.Addr and makes the queue ready:
// created if missing (and then deleted at the end), else purged (and
// purged again at the end). A beanstalkd-protocol server is only checked:
// the protocol cannot empty a tube but job by job, so its tube keeps what
// a run leaves (point the bench at a scratch server); a redis server's
// list is deleted before and after.
func openRemote(ctx context.Context, cfg Config) (*target, error) {
	switch protocolOf(cfg.Scenario) {
	case protoBeanstalk:
		t := &target{cfg: cfg, wire: cfg.Addr}
		c, err := dialLine(ctx, cfg.Addr)
		if err == nil {
			// A reply the protocol's way, or this is no beanstalkd server.
			err = useTube(ctx, c, cfg.Queue)
			c.close()
		}
		if err != nil {
			return nil, fmt.Errorf("beanstalkd-protocol server at %s: %w", cfg.Addr, err)
		}
		return t, nil
	case protoRedis:
		if err := redisDel(ctx, cfg.Addr, cfg.Queue); err != nil {
			return nil, fmt.Errorf("redis server at %s: %w", cfg.Addr, err)
		}
		return &target{cfg: cfg, wire: cfg.Addr}, nil
	}
	t := &target{cfg: cfg, base: api.BaseURL(cfg.Addr)}
	t.api = api.NewClient(t.base, cfg.Token, nil)
	_, err := t.api.GetQueue(ctx, cfg.Queue)
	switch {
	case errors.Is(err, queue.ErrQueueNotFound):
		_, t.created, err = t.api.PutQueue(ctx, cfg.Queue, api.QueueConfig{})
	case err == nil:
		err = t.api.PurgeQueue(ctx, cfg.Queue)
	}
	if err != nil {
		t.api.CloseIdleConnections()
		return nil, fmt.Errorf("server at %s: queue %s: %w", cfg.Addr, cfg.Queue, err)
	}
	return t, nil
}

// close stops the in-process server, or cleans up the remote queue.
func (t *target) close() error {
	if t.inProcess() {
		return t.svc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	switch protocolOf(t.cfg.Scenario) {
	case protoBeanstalk:
		return nil
	case protoRedis:
		return redisDel(ctx, t.wire, t.cfg.Queue)
	}
	defer t.api.CloseIdleConnections()
	if t.created {
		return t.api.DeleteQueue(ctx, t.cfg.Queue)
	}
	return t.api.PurgeQueue(ctx, t.cfg.Queue)
}

func (t *target) purge(ctx context.Context) error {
	if t.inProcess() {
		return t.q.Purge()
	}
	return t.api.PurgeQueue(ctx, t.cfg.Queue)
}

// fsyncCount returns the message-log and state-log fsyncs so far: counted
// through queue.Options.OnCommit and OnStateSync in-process,
// spool_fsyncs_total of GET /metrics for a remote server.
func (t *target) fsyncCount(ctx context.Context) (int64, bool) {
	if t.inProcess() {
		return t.fsyncs.Load(), true
	}
	if t.api == nil {
		return 0, false
	}
	text, err := t.api.Metrics(ctx)
	if err != nil {
		return 0, false
	}
	return metricValue(text, "spool_fsyncs_total")
}

// metricValue returns the value of an unlabelled sample of a Prometheus
// text page.
func metricValue(text, name string) (int64, bool) {
	for line := range strings.Lines(text) {
		rest, ok := strings.CutPrefix(line, name+" ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
		if err != nil {
			return 0, false
		}
		return int64(v), true
	}
	return 0, false
}

// rss returns the server's resident memory and where it came from.
func (t *target) rss() (int64, string, bool) {
	if t.inProcess() {
		if n, ok := vmRSS("self"); ok {
			return n, "VmRSS of /proc/self/status (the whole bench process: server and client)", true
		}
		s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
		metrics.Read(s)
		if s[0].Value.Kind() == metrics.KindUint64 {
			return int64(s[0].Value.Uint64()), "runtime/metrics /memory/classes/total:bytes (Go-mapped memory of the whole bench process)", true
		}
		return 0, "", false
	}
	if t.cfg.PID <= 0 {
		return 0, "not measured: give the server's PID", false
	}
	if n, ok := vmRSS(strconv.Itoa(t.cfg.PID)); ok {
		return n, fmt.Sprintf("VmRSS of /proc/%d/status", t.cfg.PID), true
	}
	return 0, fmt.Sprintf("not measured: /proc/%d/status unreadable", t.cfg.PID), false
}

// prefillBatch is how many messages one prefill call enqueues.
const prefillBatch = 1000

// prefill enqueues n messages of the scenario's body, outside any
// measured window: straight into the broker in-process, in batches over
// HTTP for a remote server, as pipelined puts for a remote
// beanstalkd-protocol one. show gets the count as it grows.
func (t *target) prefill(ctx context.Context, cl *client, s *scenario, n int64, show func(done int64)) error {
	if !t.inProcess() && t.api == nil {
		return s.fillTube(ctx, n, show)
	}
	if t.inProcess() {
		msgs := make([]queue.NewMessage, prefillBatch)
		for i := range msgs {
			msgs[i].Body = s.body
		}
		var done int64
		for done < n {
			if err := ctx.Err(); err != nil {
				return err
			}
			k := int(min(n-done, prefillBatch))
			if _, err := t.q.Enqueue(msgs[:k]); err != nil {
				return fmt.Errorf("prefill: %w", err)
			}
			done += int64(k)
			show(done)
		}
		return nil
	}
	// Remote: find a batch size the server takes (its --max-batch may be
	// below ours: 413, halve), then send from a few connections at once.
	w := &conn{c: cl}
	k := min(int64(prefillBatch), n)
	var first int64
	for first == 0 && n > 0 {
		st, reply, err := w.post(ctx, s.batchURL, batchJSON(int(k), s.body), ctJSON)
		switch {
		case err != nil:
			return fmt.Errorf("prefill: %w", err)
		case st == http.StatusRequestEntityTooLarge && k > 1:
			k = max(k/2, 1)
		case st != http.StatusCreated:
			return fmt.Errorf("prefill: %w", statusError(s.batchURL, st, reply))
		default:
			first = k
		}
	}
	show(first)
	body := batchJSON(int(k), s.body)
	return fillParallel(ctx, 4, n, k, first, show, func() (func(int64) error, func(), error) {
		w := &conn{c: cl}
		send := func(kk int64) error {
			b := body
			if kk < k {
				b = batchJSON(int(kk), s.body)
			}
			st, reply, err := w.post(ctx, s.batchURL, b, ctJSON)
			if err == nil && st != http.StatusCreated {
				err = statusError(s.batchURL, st, reply)
			}
			return err
		}
		return send, func() {}, nil
	})
}

// fillParallel is a remote prefill's sending: from conns senders at once
// (each made by open, over a connection of its own), chunks of at most k
// messages until n are sent, the first already; show gets the count as it
// grows.
func fillParallel(ctx context.Context, conns int, n, k, first int64, show func(int64), open func() (send func(int64) error, close func(), err error)) error {
	var next, done atomic.Int64
	next.Store(first)
	done.Store(first)
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i := range errs {
		wg.Go(func() {
			send, closeSender, err := open()
			if err != nil {
				errs[i] = fmt.Errorf("prefill: %w", err)
				return
			}
			defer closeSender()
			for ctx.Err() == nil {
				start := next.Add(k) - k
				if start >= n {
					return
				}
				kk := min(k, n-start)
				if err := send(kk); err != nil {
					errs[i] = fmt.Errorf("prefill: %w", err)
					return
				}
				show(done.Add(kk))
			}
			errs[i] = ctx.Err()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
