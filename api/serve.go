package api

// The one assembly of a running server, shaped like Ben Johnson's wtf
// http.Server (Open, Addr, Close): `spool serve` runs it, and so does the
// in-process target of `spool bench`, so the bench measures the server
// users run, timeouts, connection cap and shutdown included.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/api/miniqueue"
	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/queue"
)

// ServiceConfig configures a Service. Zero fields get the defaults noted.
type ServiceConfig struct {
	// Addr is the TCP address to listen on; port 0 picks a free one
	// (Service.Addr says which).
	Addr string
	// Queue is passed to queue.Open. Its Logger defaults to Logger. Its
	// OnCommit and OnStateSync, if set, are called after the Service's
	// Metrics have counted the commit or fsync, so a caller can count
	// fsyncs of its own (spool bench does).
	Queue queue.Options
	// API configures the handler (see New). Its Logger defaults to
	// Logger. DiskUsage, if nil while MaxDisk is set, is the data
	// directory's size, walked once a second (walking per request would
	// cost more than the enqueue); DiskFree, if nil, is FreeBytes of the
	// data directory. MaxWait also sets the http.Server's WriteTimeout
	// (MaxWait + 1 min), so a long poll fits.
	API Config
	// MaxConnections caps the client connections open at once; one over
	// it is answered 503 and closed (default DefaultMaxConnections). It
	// must fit the open-file limit beside the files the data directory
	// holds open; if it does not, the default is lowered to fit, with a
	// warning, and a value asked for (ExplicitMaxConnections) makes Open
	// fail with a *ConnectionLimitError.
	MaxConnections         int
	ExplicitMaxConnections bool
	// Logger gets the service's own lines ("spool: listening", the drain
	// warnings, a lowered connection cap) and the http.Server's errors at
	// WARN; nil means slog.Default().
	Logger *slog.Logger
	// TLSCert and TLSKey (PEM files), both set, make the listener speak
	// TLS: HTTP/2 by ALPN, and HTTP/1.1. ReloadCertificate reads them
	// again. Without them it speaks HTTP/1.1 and h2c (HTTP/2 with prior
	// knowledge) in the clear.
	TLSCert, TLSKey string
	// Miniqueue serves miniqueue's protocol (api/miniqueue) beside the
	// API: POST /publish/:topic, POST /subscribe/:topic, DELETE /:topic.
	Miniqueue bool
	// BeanstalkAddr, if set, is a second listener that speaks
	// beanstalkd's protocol (api/beanstalk) over the same queues. That
	// protocol has no authentication: spool serve allows only a loopback
	// address there unless --allow-anonymous. Its job size limit is the
	// queues' MaxMessageBytes.
	BeanstalkAddr string
	// BeanstalkMaxConnections caps its connections (default
	// beanstalk.DefaultMaxConnections); they count against the open-file
	// limit beside the HTTP ones.
	BeanstalkMaxConnections int
}

// HTTP server limits. A request's headers must arrive within
// readHeaderTimeout and its whole body within readTimeout; an idle
// keep-alive connection is closed after idleTimeout.
const (
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 2 * time.Minute
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 64 << 10
)

// Shutdown deadlines. Requests in flight get drainTimeout to finish; that
// is ample for any request that is making progress (an enqueue waits for
// one fsync), so what is left is stalled: an upload that stopped sending,
// say. Closing its connection ends its handler's read at once; handlers
// get cutTimeout more to return (one may be waiting on a slow fsync)
// before the queues are closed under them anyway.
const (
	drainTimeout = 3 * time.Second
	cutTimeout   = 3 * time.Second
)

// Service is a running spool server: the queues of one data directory
// (queue.Open), the HTTP API over them (New, with NewMetrics counting
// commits and fsyncs), a listener that caps connections at a number
// fitted to the open-file limit, and an http.Server with every timeout
// set. Open starts it; Close stops it in order. Its methods are safe for
// concurrent use.
type Service struct {
	broker  *queue.Broker
	api     *Server
	hs      *http.Server
	ln      net.Listener
	certs   *certLoader // nil without TLS
	running requestTracker
	logger  *slog.Logger

	diskUsed atomic.Int64       // the data directory's size, with ServiceConfig.API.MaxDisk
	stopDisk context.CancelFunc // ends the disk-usage walker

	beanstalk     *beanstalk.Server // nil without ServiceConfig.BeanstalkAddr
	beanstalkAddr string

	served   chan struct{} // closed when hs.Serve has returned
	serveErr error         // hs.Serve's result, once served is closed

	closeOnce sync.Once
	closeErr  error
}

// Open listens on cfg.Addr, opens the queues in dir, fits the connection
// cap to the open-file limit and serves the API in a goroutine, logging
// "spool: listening" with the address, data directory, sync policy,
// connection cap and version. It listens first, so a busy port fails
// before the data directory is created or anything in it opened. It
// returns once the listener is open, so Addr answers and a client may
// connect at once. On an error nothing is left open.
func Open(dir string, cfg ServiceConfig) (*Service, error) {
	logger := cmp.Or(cfg.Logger, slog.Default())
	var certs *certLoader
	if cfg.TLSCert != "" || cfg.TLSKey != "" {
		if cfg.TLSCert == "" || cfg.TLSKey == "" {
			return nil, fmt.Errorf("TLS needs both a certificate and a key (--tls-cert and --tls-key)")
		}
		var err error
		if certs, err = newCertLoader(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, err
	}
	var bln net.Listener
	if cfg.BeanstalkAddr != "" {
		if bln, err = net.Listen("tcp", cfg.BeanstalkAddr); err != nil {
			return nil, errors.Join(fmt.Errorf("beanstalk listener: %w", err), ln.Close())
		}
	}
	closeListeners := func() error {
		if bln != nil {
			return errors.Join(ln.Close(), bln.Close())
		}
		return ln.Close()
	}
	m := NewMetrics()
	qopts := cfg.Queue
	qopts.Logger = cmp.Or(qopts.Logger, logger)
	qopts.OnCommit = m.OnCommit
	if hook := cfg.Queue.OnCommit; hook != nil {
		qopts.OnCommit = func(name string, c queue.Commit) { m.OnCommit(name, c); hook(name, c) }
	}
	qopts.OnStateSync = m.OnStateSync
	if hook := cfg.Queue.OnStateSync; hook != nil {
		qopts.OnStateSync = func(name string, events int, took time.Duration) {
			m.OnStateSync(name, events, took)
			hook(name, events, took)
		}
	}
	b, err := queue.Open(dir, qopts)
	if err != nil {
		return nil, errors.Join(err, closeListeners())
	}
	// After queue.Open, so the files the data directory holds open count.
	beanstalkConns := 0
	if bln != nil {
		beanstalkConns = cmp.Or(cfg.BeanstalkMaxConnections, beanstalk.DefaultMaxConnections)
	}
	maxConns, err := fitConnections(cmp.Or(cfg.MaxConnections, DefaultMaxConnections), cfg.ExplicitMaxConnections, b.MaxOpenFiles()+beanstalkConns, logger)
	if err != nil {
		return nil, errors.Join(err, b.Close(), closeListeners())
	}
	s := &Service{broker: b, logger: logger, served: make(chan struct{}), certs: certs}
	var ctx context.Context
	ctx, s.stopDisk = context.WithCancel(context.Background())
	acfg := cfg.API
	acfg.Logger = cmp.Or(acfg.Logger, logger)
	if acfg.Now == nil {
		acfg.Now = cfg.Queue.Now // the broker's clock, so ages agree with its times
	}
	if acfg.MaxDisk > 0 && acfg.DiskUsage == nil {
		s.diskUsed.Store(dirSize(dir))
		go trackDiskUsage(ctx, dir, &s.diskUsed)
		acfg.DiskUsage = s.diskUsed.Load
	}
	if acfg.DiskFree == nil {
		acfg.DiskFree = func() int64 { return FreeBytes(dir) }
	}
	s.api = New(b, acfg, m)
	s.ln = newLimitListener(ln, maxConns, logger)
	handler := s.api.Handler()
	if cfg.Miniqueue {
		handler = s.api.withMiniqueue(handler, miniqueue.NewHandler(miniqueue.Config{
			Broker: b, Logger: acfg.Logger, MaxMessageBytes: acfg.MaxMessageBytes,
		}))
	}
	s.hs = &http.Server{
		Handler:           s.running.wrap(handler),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      s.api.cfg.MaxWait + time.Minute, // a long poll must fit (New defaulted MaxWait)
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		Protocols:         new(http.Protocols),
	}
	s.hs.Protocols.SetHTTP1(true)
	if certs != nil {
		s.hs.TLSConfig = certs.tlsConfig()
		s.hs.Protocols.SetHTTP2(true)
	} else {
		s.hs.Protocols.SetUnencryptedHTTP2(true) // h2c, prior knowledge
	}
	logger.Info("spool: listening", "addr", s.Addr(), "data", dir, "sync", qopts.Sync.String(), "max_connections", maxConns,
		"version", m.build.Version)
	if bln != nil {
		s.beanstalk = beanstalk.NewServer(b, beanstalk.Options{
			MaxJobBytes: cmp.Or(qopts.MaxMessageBytes, queue.DefaultMaxMessageBytes), MaxConnections: beanstalkConns,
			Version: m.build.Version, Logger: logger,
		})
		s.beanstalkAddr = bln.Addr().String()
		logger.Info("spool: beanstalkd protocol listening", "addr", s.beanstalkAddr, "max_connections", beanstalkConns)
		go func() {
			if err := s.beanstalk.Serve(bln); !errors.Is(err, beanstalk.ErrServerClosed) {
				logger.Error("spool: the beanstalkd listener failed; the HTTP API serves on", "err", err)
			}
		}()
	}
	go func() {
		if certs != nil {
			s.serveErr = s.hs.ServeTLS(s.ln, "", "")
		} else {
			s.serveErr = s.hs.Serve(s.ln)
		}
		close(s.served)
	}()
	return s, nil
}

// withMiniqueue routes miniqueue's paths to mq and the rest to api: the
// API lives under /v1/, /healthz and /metrics, so the two never meet.
// miniqueue has no auth of its own; with --token its routes want the
// token too (in miniqueue's error shape), so --miniqueue opens no door
// around it.
func (s *Server) withMiniqueue(api, mq http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if strings.HasPrefix(p, "/publish/") || strings.HasPrefix(p, "/subscribe/") ||
			(r.Method == http.MethodDelete && !strings.HasPrefix(p, "/v1/")) {
			key, err := s.authorize(r)
			if err != nil {
				s.warnUnauthorized(r, p)
				w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
				writeMiniqueueError(w, http.StatusUnauthorized, err)
				return
			}
			if key != nil {
				if err := s.miniqueuePermitted(key, p); err != nil {
					writeMiniqueueError(w, http.StatusForbidden, err)
					return
				}
			}
			mq.ServeHTTP(w, r)
			return
		}
		api.ServeHTTP(w, r)
	})
}

// miniqueuePermitted checks an API key against a miniqueue call: a
// publish is produce on its topic, a subscribe consume, a DELETE (purge)
// admin. A publish or subscribe creates a missing topic's queue, which on
// /v1 is admin's: so it is here too.
func (s *Server) miniqueuePermitted(key *Key, p string) error {
	perm, name := PermAdmin, strings.TrimPrefix(p, "/")
	switch {
	case strings.HasPrefix(p, "/publish/"):
		perm, name = PermProduce, strings.TrimPrefix(p, "/publish/")
	case strings.HasPrefix(p, "/subscribe/"):
		perm, name = PermConsume, strings.TrimPrefix(p, "/subscribe/")
	}
	if !key.May(perm, name) {
		return fmt.Errorf("%w: the key %q has no %s grant on %s", errForbidden, key.Name, perm, name)
	}
	if perm != PermAdmin && !key.May(PermAdmin, name) {
		if _, err := s.b.Queue(name); errors.Is(err, queue.ErrQueueNotFound) {
			return fmt.Errorf("%w: %s does not exist, and creating it needs an admin grant (the key %q has %s)", errForbidden, name, key.Name, perm)
		}
	}
	return nil
}

// writeMiniqueueError writes err in miniqueue's error shape.
func writeMiniqueueError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{err.Error()})
	w.Write(append(b, '\n'))
}

// ReloadCertificate reads the TLS certificate and key again (spool serve
// calls it on SIGHUP); if they do not load, the one in use stays and the
// error says why. Without TLS it does nothing.
func (s *Service) ReloadCertificate() error {
	if s.certs == nil {
		return nil
	}
	return s.certs.Reload()
}

// SetSQSKeys replaces the SQS endpoint's access keys (API.SQSKeys).
func (s *Service) SetSQSKeys(keys sqs.StaticKeys) { s.api.SetSQSKeys(keys) }

// SetKeys replaces the API keys (Server.SetKeys).
func (s *Service) SetKeys(keys *Keys) { s.api.SetKeys(keys) }

// Addr returns the address the service listens on, as host:port.
func (s *Service) Addr() string { return s.ln.Addr().String() }

// BeanstalkAddr returns the address the beanstalkd protocol listens on,
// or "" without ServiceConfig.BeanstalkAddr.
func (s *Service) BeanstalkAddr() string { return s.beanstalkAddr }

// URL returns the service's base URL, http://host:port (https:// with
// TLS).
func (s *Service) URL() string {
	if s.certs != nil {
		return "https://" + s.Addr()
	}
	return BaseURL(s.Addr())
}

// Broker returns the queues the service serves, for callers that also use
// them directly (spool bench creates and prefills its queue so). It is
// closed by Close.
func (s *Service) Broker() *queue.Broker { return s.broker }

// Done returns a channel closed once the service has stopped serving:
// after Close, or before it if the listener failed (Accept errors other
// than temporary ones end http.Server.Serve); Close then returns that
// error. `spool serve` waits on it beside its signal context.
func (s *Service) Done() <-chan struct{} { return s.served }

// Close stops the service in order and returns the first error of each
// step: it releases every long-poll receive with 503 (Server.Shutdown),
// stops accepting and lets requests in flight finish for up to 3 s, then
// closes the connections still busy and gives their handlers 3 s more
// (see drain), waits for the streams to return their leases
// (Server.EndStreams: 3 s for the HTTP/1.1 ones, 3 s more once their
// connections are closed, then 3 s for the rest), and last fsyncs and
// closes the queues. A request cut so
// was never acknowledged, so cutting is logged at WARN, not returned.
// Only the first call does the work; later ones return its result.
func (s *Service) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Service) close() error {
	s.logger.Info("spool: shutting down")
	s.stopDisk()
	s.api.Shutdown() // release long polls with 503 first
	err := drain(s.hs, &s.running, s.logger)
	if !s.api.EndStreams(cutTimeout) {
		s.logger.Warn("spool: streams still running at the shutdown deadline; closing the queues anyway (their leases return when they run out)",
			"streams", s.api.streamReturns.running.count())
	}
	<-s.served // Shutdown (or Close) has closed the listener, so Serve returns
	if !errors.Is(s.serveErr, http.ErrServerClosed) {
		err = errors.Join(s.serveErr, err) // the listener failed before Close
	}
	if s.beanstalk != nil {
		// Its connections close and their reserved jobs go back to ready,
		// while the queues are still open.
		err = errors.Join(err, s.beanstalk.Close())
	}
	if err != nil {
		return errors.Join(err, s.broker.Close())
	}
	if err := s.broker.Close(); err != nil {
		return fmt.Errorf("closing the queues: %w", err)
	}
	s.logger.Info("spool: stopped cleanly")
	return nil
}

// drain stops the HTTP server: it lets requests in flight finish for up
// to drainTimeout, then cuts the connections still busy. Cutting is the
// expected end of a stalled request, not a failure: nothing it sent was
// acknowledged, so it logs at WARN and returns nil.
func drain(hs *http.Server, running *requestTracker, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := hs.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		if err != nil {
			return fmt.Errorf("stopping the HTTP server: %w", err)
		}
		return nil
	}
	logger.Warn("spool: requests still running at the drain deadline; closing their connections (none of them was acknowledged)",
		"deadline", drainTimeout, "requests", running.count())
	if err := hs.Close(); err != nil {
		return fmt.Errorf("closing the HTTP server's connections: %w", err)
	}
	if !running.wait(cutTimeout) {
		logger.Warn("spool: requests still running after their connections were closed; closing the queues anyway",
			"waited", cutTimeout, "requests", running.count())
	}
	return nil
}

// requestTracker counts the handlers running, so shutdown can wait for
// the ones it cut before closing the queues under them (and, in Server,
// the HTTP/1.1 streams running on connections taken from net/http). (A WaitGroup
// cannot: a request may start while shutdown waits, and WaitGroup forbids
// Add from zero concurrently with Wait.)
type requestTracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; nil means closed
}

func (t *requestTracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.begin()
		defer t.end()
		h.ServeHTTP(w, r)
	})
}

// begin counts one more running; end, one fewer.
func (t *requestTracker) begin() {
	t.mu.Lock()
	if t.n == 0 {
		t.idle = make(chan struct{})
	}
	t.n++
	t.mu.Unlock()
}

func (t *requestTracker) end() {
	t.mu.Lock()
	if t.n--; t.n == 0 {
		close(t.idle)
	}
	t.mu.Unlock()
}

func (t *requestTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// wait reports whether no handler was running within timeout.
func (t *requestTracker) wait(timeout time.Duration) bool {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	if idle == nil {
		return true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-idle:
		return true
	case <-timer.C:
		return false
	}
}

// trackDiskUsage refreshes the data directory's size every second for the
// MaxDisk quota: walking per request would cost more than the enqueue.
func trackDiskUsage(ctx context.Context, dir string, used *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			used.Store(dirSize(dir))
		}
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
