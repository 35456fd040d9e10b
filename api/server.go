package api

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/spoolq/spool/api/sqs"
	"github.com/spoolq/spool/api/web"
	"github.com/spoolq/spool/queue"
)

// Config configures a Server. Zero fields get the defaults noted.
type Config struct {
	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every route but /healthz.
	Token string
	// Keys, if set, are API keys (keys.go) accepted as bearer tokens
	// beside Token, each allowed the calls of its scopes; a call outside
	// them is 403 forbidden.
	Keys *Keys
	// MaxMessageBytes bounds one message body (default 256 KiB); it should
	// match the broker's.
	MaxMessageBytes int
	// MaxBatch bounds messages per batch enqueue and per receive (default 1000).
	MaxBatch int
	// MaxWait bounds a receive's long poll (default 20s).
	MaxWait time.Duration
	// DiskUsage, with MaxDisk, enforces a quota: an enqueue when usage is
	// at or over MaxDisk bytes gets 507. Nil or 0 disables it.
	DiskUsage func() int64
	MaxDisk   int64
	// DiskFree, with MinFree, keeps a reserve: an enqueue when fewer than
	// MinFree bytes are free gets 507, so acks, nacks and snapshots (which
	// need a little space and free messages) keep working on a full disk.
	// Nil or 0 disables it; a negative DiskFree result means unknown.
	DiskFree func() int64
	MinFree  int64
	// SQSKeys are the access keys the SQS endpoint (api/sqs, on POST / and
	// queue URLs) accepts SigV4 signatures of. Without them it accepts any
	// signature, unless Token is set: then it refuses every request (an
	// SQS client cannot send the token), so a token-guarded server opens
	// no door through SQS.
	SQSKeys sqs.StaticKeys
	// Logger gets request errors; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock /metrics measures ages by
	// (spool_queue_oldest_ready_age_seconds); it should be the broker's
	// (queue.Options.Now), so the two agree. Nil means time.Now.
	Now func() time.Time
}

// Server serves the HTTP API of one Broker.
type Server struct {
	b       *queue.Broker
	cfg     Config
	handler http.Handler
	metrics *Metrics

	// closing is cancelled by Shutdown, ending every long poll.
	closing  context.Context
	shutdown context.CancelFunc
	// hijacked are the HTTP/1.1 streams running on connections taken
	// from net/http (see hijackStream).
	hijacked hijackedStreams
	// streamReturns returns the leases of ended streams.
	streamReturns streamReturns

	table []routeSpec  // the routes, as registered (routeTable)
	sqs   *sqs.Handler // the SQS endpoint (withSQS)

	keys        atomic.Pointer[Keys] // Config.Keys, replaced by SetKeys
	lastRelease atomic.Int64         // unix ns of the last releaseMemory
	authWarn    rateLimit            // the unauthorized-request warnings
}

// New returns a Server for b. m may be nil (no /metrics route).
func New(b *queue.Broker, cfg Config, m *Metrics) *Server {
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = queue.DefaultMaxMessageBytes
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = 1000
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 20 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Server{b: b, cfg: cfg, metrics: m}
	s.keys.Store(cfg.Keys)
	s.closing, s.shutdown = context.WithCancel(context.Background())
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, CodeRouteNotFound, "no such route; the API lives under /v1 (see the README)")
	})
	r.MethodNotAllowed = http.HandlerFunc(s.methodNotAllowed)
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, p any) {
		if p == http.ErrAbortHandler {
			panic(p) // a reply cut on purpose (messageStream.abort): net/http drops the connection
		}
		s.cfg.Logger.Error("api: panic serving a request", "method", req.Method, "path", req.URL.Path, "panic", p)
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error; the server log has the details")
	}
	s.table = s.routeTable()
	for _, sp := range s.table {
		r.Handle(sp.method, sp.path, s.wrap(sp, s.handle(sp)))
		if sp.method == http.MethodGet {
			// HEAD is a GET without the body (net/http drops it): health
			// checkers and curl -I use it, and a 405 would read as down.
			head := sp
			head.method = http.MethodHead
			r.Handle(head.method, head.path, s.wrap(head, s.handle(head)))
		}
	}
	s.handler = s.logRequests(s.withSQS(withDashboard(refuseEncodedSlashes(r))))
	return s
}

// withDashboard serves the dashboard (package web: GET / and its assets
// under /ui/) and hands the rest to next. The page is public, as it
// holds no data: what it shows it reads from /v1 with the token it asks
// for.
func withDashboard(next http.Handler) http.Handler {
	dash := web.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if web.Owns(r) {
			dash.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// sqsKeys are the keys the SQS endpoint verifies against, given keys
// (Config.SQSKeys): nil (any signature) only without a token or API keys.
func (s *Server) sqsKeys(keys sqs.StaticKeys) sqs.Keys {
	switch {
	case keys != nil:
		return keys
	case s.authOn():
		return sqs.StaticKeys{} // refuses all: see Config.SQSKeys
	}
	return nil
}

// authOn says whether requests must authenticate: a token or API keys.
// (SetKeys can change the keys, not whether there are any: spool serve
// makes no keys file appear or vanish on SIGHUP.)
func (s *Server) authOn() bool { return s.cfg.Token != "" || s.cfg.Keys != nil }

// SetKeys replaces the API keys (spool serve reloads its --keys file on
// SIGHUP). Calls in flight finish under the keys they started with.
func (s *Server) SetKeys(keys *Keys) { s.keys.Store(keys) }

// SetSQSKeys replaces Config.SQSKeys (spool serve reloads its
// --sqs-keys file on SIGHUP); nil goes back to what no keys mean.
func (s *Server) SetSQSKeys(keys sqs.StaticKeys) { s.sqs.SetKeys(s.sqsKeys(keys)) }

// sqsRoute is the SQS endpoint's route in the access log and metrics.
const sqsRoute = "POST / (SQS)"

// withSQS sends SQS's requests (sqs.IsRequest: a POST with an AmazonSQS
// X-Amz-Target, or a form POST to / or a queue URL) to the SQS endpoint
// and the rest on. The API lives under /v1/, so the two never meet.
func (s *Server) withSQS(next http.Handler) http.Handler {
	h := sqs.NewHandler(sqs.Config{
		Broker: s.b, Keys: s.sqsKeys(s.cfg.SQSKeys), MaxMessageBytes: s.cfg.MaxMessageBytes, MaxWait: s.cfg.MaxWait,
		Closing: s.closing, Logger: s.cfg.Logger, Now: s.cfg.Now,
	})
	s.sqs = h
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !sqs.IsRequest(r) {
			next.ServeHTTP(w, r)
			return
		}
		sw, ok := w.(*statusWriter) // logRequests made it
		if !ok {
			sw = &statusWriter{ResponseWriter: w, status: http.StatusOK}
		}
		sw.route = sqsRoute
		h.ServeHTTP(sw, r)
		if s.metrics != nil {
			s.metrics.request(sqsRoute, sw.status)
		}
	})
}

func (s *Server) serveMetrics(w http.ResponseWriter, _ *http.Request, _ target) error {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	s.metrics.write(w, s.b, s.cfg.Now())
	return nil
}

func health(w http.ResponseWriter, _ *http.Request, _ target) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
	return nil
}

// refuseEncodedSlashes answers 400 for a path with an escaped slash: the
// router matches the decoded path, so "a%2Fdelete" would reach the delete
// route of queue "a". No name holds a slash anyway.
func refuseEncodedSlashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(strings.ToLower(r.URL.EscapedPath()), "%2f") {
			writeError(w, http.StatusBadRequest, CodeInvalidName, "a queue, topic or subscription name cannot hold a slash, escaped or not")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown releases every long-poll receive with 503, ends every stream
// and refuses new ones with 503; call it before http.Server.Shutdown so
// in-flight requests can finish, and EndStreams after that, before the
// Broker is closed.
func (s *Server) Shutdown() { s.shutdown() }

// EndStreams, after Shutdown, waits for the streams to end and return
// their leases. Those over HTTP/1.1 run on connections http.Server no
// longer tracks: it waits for them for up to timeout, then closes the
// connections of those still running and waits as long again; then as
// long for the rest (HTTP/2's, which end with their handlers). An ended
// stream's last writes get 2 s, so only a stream whose client stopped
// reading can hold it up. It reports whether every stream ended. Call it
// before the Broker is closed: during a shutdown the streams' leases go
// back only once the last stream has ended, so that none is leased again.
func (s *Server) EndStreams(timeout time.Duration) bool {
	if !s.hijacked.running.wait(timeout) {
		s.hijacked.closeAll()
		if !s.hijacked.running.wait(timeout) {
			return false
		}
	}
	return s.streamReturns.running.wait(timeout)
}

// handler is a route's handler: an error it returns becomes the JSON
// error reply (see wrap).
type handler func(http.ResponseWriter, *http.Request, httprouter.Params) error

// wrap adds auth, error replies and metrics to a route's handler, and
// tells the access log (logRequests) the route and queue.
func (s *Server) wrap(sp routeSpec, h handler) httprouter.Handle {
	label := sp.method + " " + sp.path // spool_http_requests_total's route
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		sw, ok := w.(*statusWriter) // logRequests, the outermost layer, made it
		if !ok {
			sw = &statusWriter{ResponseWriter: w, status: http.StatusOK}
		}
		sw.route = sp.path
		switch sp.scope {
		case scopeQueue:
			sw.queue = ps.ByName(queueParam)
		case scopeTopic, scopeSubscription:
			sw.topic, sw.subscription = ps.ByName(topicParam), ps.ByName(subscriptionParam)
		}
		var err error
		if !sp.public {
			var key *Key
			key, err = s.authorize(r)
			if err != nil {
				s.warnUnauthorized(r, sp.path)
			} else if key != nil {
				err = permitted(key, sp, ps)
				r = r.WithContext(context.WithValue(r.Context(), keyContext{}, key))
			}
		}
		if err == nil {
			err = h(sw, r, ps)
		}
		if errors.Is(err, errClientGone) {
			sw.status = statusClientGone
		} else if err != nil {
			status, code := statusOf(err)
			switch {
			case code == CodeShuttingDown:
				// How a graceful stop ends long polls and late requests:
				// expected, not a fault for an operator to chase.
				s.cfg.Logger.Debug("api: request ended by shutdown", "route", label, "status", status)
			case status >= 500:
				s.cfg.Logger.Error("api: request failed", "route", label, "status", status, "err", err)
			}
			switch code {
			case CodeUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
			case CodeUnavailable:
				w.Header().Set("Retry-After", "1") // maintenance reloads a queue within a second
			}
			streamHTTP1 := sp.route == RouteStream && r.ProtoMajor == 1
			if streamHTTP1 {
				// A stream's body may never end, and net/http drains a
				// body the handler left before it writes the reply (and
				// again after it): in full duplex the reply goes now, and
				// a read deadline in the past ends the drain at once, and
				// with it the connection.
				rc := http.NewResponseController(sw)
				rc.EnableFullDuplex()
				w.Header().Set("Connection", "close")
				defer rc.SetReadDeadline(time.Now())
				defer rc.Flush()
			}
			writeError(sw, status, code, publicMessage(status, code, err))
		}
		if s.metrics != nil {
			s.metrics.request(label, sw.status)
		}
	}
}

// authorize checks the request's bearer token: the --token, which may do
// anything (nil key), or an API key (returned, for permitted). With
// neither configured every request passes.
func (s *Server) authorize(r *http.Request) (*Key, error) {
	if !s.authOn() {
		return nil, nil
	}
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	if len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) { // the scheme is case-insensitive
		token := h[len(scheme):]
		if s.cfg.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) == 1 {
			return nil, nil
		}
		if k := s.keys.Load().match(token); k != nil {
			return k, nil
		}
	}
	if s.cfg.Token == "" {
		return nil, fmt.Errorf("%w: send Authorization: Bearer <secret> (an API key of the server's --keys)", errUnauthorized)
	}
	return nil, fmt.Errorf("%w: send Authorization: Bearer <token> (the server's --token)", errUnauthorized)
}

// statusWriter is the ResponseWriter every layer of a request writes
// through: it keeps the status for the metrics and the access log, and
// the route pattern and queue name wrap learns from the router.
type statusWriter struct {
	http.ResponseWriter
	status int
	route  string // the route's pattern; "" when no route matched
	queue  string // the queue the route names, if any
	// topic and subscription are the topic and subscription the route
	// names, if any.
	topic, subscription string
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

// target is what a route's path names, looked up before its handler runs
// (see Server.handle): the router's parameters, and the queue, topic or
// subscription, as far as the route looks them up.
type target struct {
	ps    httprouter.Params
	queue *queue.Queue
	topic *queue.Topic
	sub   *queue.Subscription
}

// targetHandler is the handler of a route, given what its path names.
type targetHandler func(http.ResponseWriter, *http.Request, target) error

// consumer is what the consumer routes (receive, ack, nack, extend, fail,
// peek, dead, redrive) call: a *queue.Queue or a *queue.Subscription,
// which have the same methods, so each of those routes has one handler
// for both.
type consumer interface {
	ReceiveEach(ctx context.Context, o queue.ReceiveOptions, fn func(queue.Message) error) (int, error)
	NotifyReady(fn func()) (stop func() bool, err error)
	Ack(receipts []queue.Receipt) ([]error, error)
	Nack(receipts []queue.Receipt, o queue.NackOptions) ([]error, error)
	Extend(receipts []queue.Receipt, visibility time.Duration) ([]error, error)
	Fail(receipts []queue.Receipt) ([]error, error)
	PeekEach(after uint64, limit int, fn func(queue.Message) error) error
	DeadEach(after uint64, limit int, fn func(queue.Message) error) error
	Redrive(limit int) (int, error)
}

var (
	_ consumer = (*queue.Queue)(nil)
	_ consumer = (*queue.Subscription)(nil)
)

// consumer returns the subscription the route names, else its queue.
func (tg target) consumer() consumer {
	if tg.sub != nil {
		return tg.sub
	}
	return tg.queue
}

// name is the name of what the route acts on, for the log: "jobs",
// "orders" or "orders/billing".
func (tg target) name() string {
	switch {
	case tg.sub != nil:
		return tg.sub.Topic() + "/" + tg.sub.Name()
	case tg.topic != nil:
		return tg.topic.Name()
	case tg.queue != nil:
		return tg.queue.Name()
	}
	return ""
}

// enqueue adds msgs to the queue (Queue.Enqueue) or publishes them to the
// topic (Topic.Publish) the route names: the enqueue routes of both are
// one handler each. A full queue's error (the queue's own words: how many
// it holds, of how many, and how many did not fit) gets what the client
// can do about it.
func (tg target) enqueue(msgs []queue.NewMessage) ([]uint64, error) {
	if tg.topic != nil {
		return tg.topic.Publish(msgs)
	}
	ids, err := tg.queue.Enqueue(msgs)
	if errors.Is(err, queue.ErrQueueFull) {
		return nil, fmt.Errorf("%w; consumers must ack some first, or raise its max_length with POST %s", err, QueuePath(tg.queue.Name(), RouteQueue))
	}
	return ids, err
}

// lookup finds what a route's path names, as far as look says: nothing,
// the queue, the topic, or the topic and then its subscription. A missing
// one is 404 with how to create it.
func (s *Server) lookup(look scope, ps httprouter.Params) (target, error) {
	tg := target{ps: ps}
	var err error
	switch look {
	case scopeQueue:
		tg.queue, err = s.queue(ps)
	case scopeTopic:
		tg.topic, err = s.topic(ps)
	case scopeSubscription:
		if tg.topic, err = s.topic(ps); err == nil {
			tg.sub, err = s.subscription(tg.topic, ps)
		}
	}
	return tg, err
}

// queue returns the queue a route names, or queue_not_found with how to
// create it.
func (s *Server) queue(ps httprouter.Params) (*queue.Queue, error) {
	name := ps.ByName(queueParam)
	q, err := s.b.Queue(name)
	if errors.Is(err, queue.ErrQueueNotFound) {
		return nil, fmt.Errorf("%w: %q does not exist; create it first with POST %s/%s (or: spool create %s)", queue.ErrQueueNotFound, name, QueuesPath, name, name)
	}
	return q, err
}

// topic returns the topic a route names, or topic_not_found with how to
// create it.
func (s *Server) topic(ps httprouter.Params) (*queue.Topic, error) {
	name := ps.ByName(topicParam)
	t, err := s.b.Topic(name)
	if errors.Is(err, queue.ErrTopicNotFound) {
		return nil, topicNotFound(name)
	}
	return t, err
}

func topicNotFound(name string) error {
	return fmt.Errorf("%w: %q does not exist; create it first with POST %s (or: spool topic create %s)", queue.ErrTopicNotFound, name, TopicPath(name, RouteQueue), name)
}

// subscription returns the subscription of t a route names, or
// subscription_not_found with how to create it.
func (s *Server) subscription(t *queue.Topic, ps httprouter.Params) (*queue.Subscription, error) {
	name := ps.ByName(subscriptionParam)
	sub, err := t.Subscription(name)
	if errors.Is(err, queue.ErrSubscriptionNotFound) {
		return nil, subscriptionNotFound(t.Name(), name)
	}
	return sub, err
}

func subscriptionNotFound(topic, name string) error {
	return fmt.Errorf("%w: topic %q has no subscription %q; create it first with POST %s (or: spool subscribe %s %s)",
		queue.ErrSubscriptionNotFound, topic, name, SubscriptionPath(topic, name, RouteQueue), topic, name)
}

// checkQuota refuses an enqueue past --max-disk or into the --min-free
// reserve.
func (s *Server) checkQuota() error {
	if s.cfg.MaxDisk > 0 && s.cfg.DiskUsage != nil {
		if used := s.cfg.DiskUsage(); used >= s.cfg.MaxDisk {
			return fmt.Errorf("%w: data uses %d of %d bytes", ErrQuotaExceeded, used, s.cfg.MaxDisk)
		}
	}
	if s.cfg.MinFree > 0 && s.cfg.DiskFree != nil {
		if free := s.cfg.DiskFree(); free >= 0 && free < s.cfg.MinFree {
			return fmt.Errorf("%w: %d bytes free, %d kept in reserve for acks", ErrQuotaExceeded, free, s.cfg.MinFree)
		}
	}
	return nil
}

// bigRequest is the size of bodies past which a batch, or a receive or
// listing reply, gives the memory it took back to the system when it is
// done. The Go runtime otherwise keeps freed memory for minutes, and on a
// Pi a few big requests would leave the server hundreds of megabytes
// larger than its data needs.
const bigRequest = 8 << 20

// releaseMemory returns freed memory to the system (a forced GC), at most
// once a second however many big requests end.
func (s *Server) releaseMemory() {
	now := time.Now().UnixNano()
	last := s.lastRelease.Load()
	if now-last < int64(time.Second) || !s.lastRelease.CompareAndSwap(last, now) {
		return
	}
	debug.FreeOSMemory()
}
