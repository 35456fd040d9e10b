package api

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/spoolq/spool/queue"
)

// Config configures a Server. Zero fields get the defaults noted.
type Config struct {
	// Token, if set, is required as "Authorization: Bearer <token>" on
	// every route but /healthz.
	Token string
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
	// Logger gets request errors; nil means slog.Default().
	Logger *slog.Logger
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

	lastRelease atomic.Int64 // unix ns of the last releaseMemory
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
	s := &Server{b: b, cfg: cfg, metrics: m}
	s.closing, s.shutdown = context.WithCancel(context.Background())
	r := httprouter.New()
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = true
	r.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusNotFound, CodeRouteNotFound, "no such route; the API lives under /v1 (see the README)")
	})
	r.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, CodeMethodNotAllowed, "method not allowed: GET only reads, every change is a POST")
	})
	r.PanicHandler = func(w http.ResponseWriter, req *http.Request, p any) {
		if p == http.ErrAbortHandler {
			panic(p) // a reply cut on purpose (messageStream.abort): net/http drops the connection
		}
		s.cfg.Logger.Error("api: panic serving a request", "method", req.Method, "path", req.URL.Path, "panic", p)
		writeError(w, http.StatusInternalServerError, CodeInternal, "internal error; the server log has the details")
	}
	route := func(method, path string, h handler) {
		r.Handle(method, path, s.wrap(method+" "+path, h))
	}
	route(http.MethodGet, QueuesPath, s.listQueues)
	for _, qr := range []struct {
		method string
		route  Route
		h      handler
	}{
		{http.MethodGet, RouteQueue, s.getQueue},
		{http.MethodPost, RouteQueue, s.putQueue},
		{http.MethodPost, RouteDelete, s.deleteQueue},
		{http.MethodPost, RoutePurge, s.purgeQueue},
		{http.MethodPost, RouteMessages, s.enqueueOne},
		{http.MethodGet, RouteMessages, s.peek},
		{http.MethodPost, RouteBatch, s.enqueueBatch},
		{http.MethodPost, RouteReceive, s.receive},
		{http.MethodPost, RouteAck, s.receiptRoute(ack)},
		{http.MethodPost, RouteNack, s.receiptRoute(nack)},
		{http.MethodPost, RouteExtend, s.receiptRoute(extend)},
		{http.MethodPost, RouteFail, s.receiptRoute(fail)},
		{http.MethodGet, RouteDead, s.dead},
		{http.MethodPost, RouteRedrive, s.redrive},
	} {
		route(qr.method, qr.route.pattern(), qr.h)
	}
	if m != nil {
		route(http.MethodGet, MetricsPath, func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			m.write(w, s.b)
			return nil
		})
	}
	r.GET(HealthPath, func(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	s.handler = refuseEncodedSlashes(r)
	return s
}

// refuseEncodedSlashes answers 400 for a path with an escaped slash: the
// router matches the decoded path, so "a%2Fdelete" would reach the delete
// route of queue "a". No queue name holds a slash anyway.
func refuseEncodedSlashes(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(strings.ToLower(r.URL.EscapedPath()), "%2f") {
			writeError(w, http.StatusBadRequest, CodeInvalidName, "a queue name cannot hold a slash, escaped or not")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Handler returns the server's http.Handler.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown releases every long-poll receive with 503; call it before
// http.Server.Shutdown so in-flight requests can finish.
func (s *Server) Shutdown() { s.shutdown() }

// handler is a route's handler: an error it returns becomes the JSON
// error reply (see wrap).
type handler func(http.ResponseWriter, *http.Request, httprouter.Params) error

// wrap adds auth, error replies and metrics to a handler.
func (s *Server) wrap(route string, h handler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		err := s.authorize(r)
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
				s.cfg.Logger.Debug("api: request ended by shutdown", "route", route, "status", status)
			case status >= 500:
				s.cfg.Logger.Error("api: request failed", "route", route, "status", status, "err", err)
			}
			switch code {
			case CodeUnauthorized:
				w.Header().Set("WWW-Authenticate", `Bearer realm="spool"`)
			case CodeUnavailable:
				w.Header().Set("Retry-After", "1") // maintenance reloads a queue within a second
			}
			writeError(sw, status, code, publicMessage(status, code, err))
		}
		if s.metrics != nil {
			s.metrics.request(route, sw.status)
		}
	}
}

func (s *Server) authorize(r *http.Request) error {
	if s.cfg.Token == "" {
		return nil
	}
	h := r.Header.Get("Authorization")
	const scheme = "bearer "
	ok := len(h) > len(scheme) && strings.EqualFold(h[:len(scheme)], scheme) // the scheme is case-insensitive
	if !ok || subtle.ConstantTimeCompare([]byte(h[len(scheme):]), []byte(s.cfg.Token)) != 1 {
		return fmt.Errorf("%w: send Authorization: Bearer <token> (the server's --token)", errUnauthorized)
	}
	return nil
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) {
	w.status = status
	w.ResponseWriter.WriteHeader(status)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, ErrorReply{Error: ErrorBody{Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v) // a failed write means the client left; nothing to tell it
}

// query returns the single value of a query parameter; a parameter given
// twice is ambiguous and refused rather than guessed.
func query(q url.Values, name string) (string, error) {
	v := q[name]
	if len(v) > 1 {
		return "", fmt.Errorf("%w: query parameter %q given %d times", errBadRequest, name, len(v))
	}
	if len(v) == 0 {
		return "", nil
	}
	return v[0], nil
}

func queryInt(q url.Values, name string, def, lo, hi int) (int, error) {
	s, err := query(q, name)
	if err != nil || s == "" {
		return def, err
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%w: %s=%q must be a whole number from %d to %d", errBadRequest, name, s, lo, hi)
	}
	return n, nil
}

func queryDuration(q url.Values, name string, hi time.Duration) (time.Duration, error) {
	s, err := query(q, name)
	if err != nil || s == "" {
		return 0, err
	}
	return parseDuration(name, s, hi)
}

func parseDuration(name, s string, hi time.Duration) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > hi {
		return 0, fmt.Errorf("%w: %s=%q must be a duration from 0s to %s (like 30s or 5m)", errBadRequest, name, s, hi)
	}
	return d, nil
}

// readJSON decodes a JSON body of at most limit bytes into v, refusing
// other content types, unknown fields and trailing data.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := checkJSONType(r); err != nil {
		return err
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err, limit)
	}
	if dec.More() {
		return fmt.Errorf("%w: body holds more than one JSON value", errBadRequest)
	}
	return nil
}

// jsonError turns a failure to decode a JSON body of at most limit bytes
// into the request error: too large, or not the JSON the route takes.
func jsonError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return fmt.Errorf("%w: request body over %d bytes", errTooLarge, limit)
	}
	return fmt.Errorf("%w: body is not the JSON this route takes: %w", errBadRequest, err)
}

// checkJSONType refuses a body labelled other than JSON.
func checkJSONType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		// curl -d labels every body form-urlencoded; accept that label (the
		// body must still be JSON) so the README's curl lines work as typed.
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/x-www-form-urlencoded") {
			return fmt.Errorf("%w: send Content-Type: application/json, not %q", errBadMedia, ct)
		}
	}
	return nil
}

// readJSONOrEmpty is readJSON for routes whose body may be empty.
func readJSONOrEmpty(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := readJSON(w, r, limit, v)
	if errors.Is(err, errBadRequest) && errors.Is(err, io.EOF) {
		return nil
	}
	return err
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

func infoJSON(i queue.Info) QueueInfo {
	if i.Err != nil {
		return QueueInfo{Name: i.Name, Unavailable: i.Err.Error()}
	}
	c := i.Config
	return QueueInfo{
		Name:              i.Name,
		VisibilityTimeout: c.VisibilityTimeout.String(),
		MaxAttempts:       c.MaxAttempts,
		DeadLetterQueue:   c.DeadLetterQueue,
		MaxLength:         c.MaxLength,
		Retention:         c.Retention.String(),
		Delay:             c.Delay.String(),
		Counts:            Counts(i.Counts),
		Bytes:             i.Bytes,
	}
}

func (s *Server) listQueues(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) error {
	infos := s.b.List()
	out := QueueList{Queues: make([]QueueInfo, len(infos))}
	for i, info := range infos {
		out.Queues[i] = infoJSON(info)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) getQueue(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	info, err := q.Info()
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, infoJSON(info))
	return nil
}

// configLimit bounds a config body: a few short fields.
const configLimit = 4 << 10

func (s *Server) putQueue(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	var c QueueConfig
	if err := readJSONOrEmpty(w, r, configLimit, &c); err != nil {
		return err
	}
	u := queue.ConfigUpdate{MaxAttempts: c.MaxAttempts, DeadLetterQueue: c.DeadLetterQueue, MaxLength: c.MaxLength}
	for _, f := range []struct {
		name string
		in   *string
		out  **time.Duration
	}{
		{"visibility_timeout", c.VisibilityTimeout, &u.VisibilityTimeout},
		{"retention", c.Retention, &u.Retention},
		{"delay", c.Delay, &u.Delay},
	} {
		if f.in == nil {
			continue
		}
		d, err := time.ParseDuration(*f.in)
		if err != nil {
			return fmt.Errorf("%w: %s=%q is not a duration (like 30s or 5m)", errBadRequest, f.name, *f.in)
		}
		*f.out = &d
	}
	q, created, err := s.b.Create(ps.ByName(queueParam), u)
	if err != nil {
		return err
	}
	info, err := q.Info()
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, infoJSON(info))
	return nil
}

func (s *Server) deleteQueue(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) error {
	if err := s.b.Delete(ps.ByName(queueParam)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

func (s *Server) purgeQueue(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	if err := q.Purge(); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct{}{})
	return nil
}

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

func (s *Server) enqueueOne(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	delay, err := queryDelay(r.URL.Query())
	if err != nil {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxMessageBytes)))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: message over %d bytes (--max-message-bytes)", errTooLarge, s.cfg.MaxMessageBytes)
		}
		return fmt.Errorf("%w: reading the body: %v", errBadRequest, err)
	}
	if err := s.checkQuota(); err != nil {
		return err
	}
	ids, err := q.Enqueue([]queue.NewMessage{{Body: body, Delay: delay}})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, Enqueued{IDs: idStrings(ids)})
	return nil
}

func queryDelay(q url.Values) (*time.Duration, error) {
	s, err := query(q, "delay")
	if err != nil || s == "" {
		return nil, err
	}
	d, err := parseDuration("delay", s, queue.MaxDelay)
	return &d, err
}

func idStrings(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(id, 10)
	}
	return out
}

func (s *Server) enqueueBatch(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	msgs, err := s.readBatch(w, r)
	if err != nil {
		return err
	}
	size := 0
	for _, m := range msgs {
		size += len(m.Body)
	}
	if size >= bigRequest {
		defer s.releaseMemory()
	}
	if err := s.checkQuota(); err != nil {
		return err
	}
	ids, err := q.Enqueue(msgs)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, Enqueued{IDs: idStrings(ids)})
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

// readBatch decodes a Batch body one message at a time, turning each into
// a queue.NewMessage as it goes: only the bodies stay in memory, not the
// request text nor a decoded copy of every message beside them (issue 11
// measured +246 MB of RSS for a 64 MiB batch when it held all three). The
// rules are readJSON's: JSON content type, no unknown field, nothing after
// the object.
func (s *Server) readBatch(w http.ResponseWriter, r *http.Request) ([]queue.NewMessage, error) {
	if err := checkJSONType(r); err != nil {
		return nil, err
	}
	// base64 and JSON escaping can take a body to about 4/3 (base64) or
	// 6x (\u escapes) its bytes; bound the request by the worst honest case.
	limit := int64(s.cfg.MaxBatch) * (int64(s.cfg.MaxMessageBytes)*6 + 64<<10)
	limit = min(limit, 512<<20)
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	bad := func(err error) error { return jsonError(err, limit) }
	expect := func(want json.Delim) error {
		tok, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		if tok != want {
			return bad(fmt.Errorf("want %q, found %v", want, tok))
		}
		return nil
	}
	if err := expect('{'); err != nil {
		return nil, err
	}
	var msgs []queue.NewMessage
	seen := false
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		if key != "messages" || seen {
			return nil, bad(fmt.Errorf("unknown or repeated field %q", key))
		}
		seen = true
		if err := expect('['); err != nil {
			return nil, err
		}
		bytes := 0
		for i := 0; dec.More(); i++ {
			if i == s.cfg.MaxBatch {
				return nil, fmt.Errorf("%w: more than %d messages in a batch (--max-batch)", errTooLarge, s.cfg.MaxBatch)
			}
			var m NewMessage
			if err := dec.Decode(&m); err != nil {
				return nil, bad(err)
			}
			nm, err := newMessage(i, m)
			if err != nil {
				return nil, err
			}
			if len(nm.Body) > s.cfg.MaxMessageBytes {
				return nil, fmt.Errorf("%w: message %d is %d bytes, limit %d (--max-message-bytes)", errTooLarge, i, len(nm.Body), s.cfg.MaxMessageBytes)
			}
			if bytes += len(nm.Body); bytes > queue.MaxBatchBytes {
				return nil, fmt.Errorf("%w: a batch holds at most %d bytes of bodies", errTooLarge, queue.MaxBatchBytes)
			}
			msgs = append(msgs, nm)
		}
		if err := expect(']'); err != nil {
			return nil, err
		}
	}
	if err := expect('}'); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: body holds more than one JSON value", errBadRequest)
	}
	if len(msgs) == 0 {
		return nil, fmt.Errorf("%w: a batch needs at least one message", errBadRequest)
	}
	return msgs, nil
}

// newMessage turns message i of a batch into a queue.NewMessage.
func newMessage(i int, m NewMessage) (queue.NewMessage, error) {
	var nm queue.NewMessage
	body, err := decodeBody(i, m.Body, m.BodyBase64)
	if err != nil {
		return nm, fmt.Errorf("%w: %w", errBadRequest, err)
	}
	nm.Body = body
	if m.Delay != "" {
		d, err := parseDuration(fmt.Sprintf("messages[%d].delay", i), m.Delay, queue.MaxDelay)
		if err != nil {
			return nm, err
		}
		nm.Delay = &d
	}
	nm.Attributes = m.Attributes
	return nm, nil
}

// messageJSON is m as a reply carries it.
func messageJSON(m queue.Message) Message {
	out := Message{
		ID:         strconv.FormatUint(m.ID, 10),
		Attempts:   m.Attempts,
		EnqueuedAt: m.EnqueuedAt.UTC().Format(time.RFC3339Nano),
		Attributes: m.Attributes,
	}
	if m.Receipt.ID != 0 {
		out.Receipt = m.Receipt.String()
	} else {
		out.State = m.State.String()
	}
	out.Body, out.BodyBase64 = encodeBody(m.Body)
	return out
}

func (s *Server) receive(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	params := r.URL.Query()
	rawText, err := query(params, "raw")
	if err != nil {
		return err
	}
	raw := rawText == "1" || rawText == "true"
	maxDefault := 1
	maxN, err := queryInt(params, "max", maxDefault, 1, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	if raw && maxN != 1 {
		return fmt.Errorf("%w: raw=1 returns one message: leave out max or use max=1", errBadRequest)
	}
	wait, err := queryDuration(params, "wait", s.cfg.MaxWait)
	if err != nil {
		return err
	}
	vis, err := queryDuration(params, "visibility", queue.MaxVisibility)
	if err != nil {
		return err
	}
	ctx := r.Context()
	if wait > 0 {
		// The wait ends with the request: a client that hangs up while
		// waiting leases nothing. Shutdown releases the wait with 503.
		// (Not set up for a receive that does not wait: registering with
		// the server-wide closing context on every receive contends.)
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.closing, cancel)()
	}
	out := messageStream{w: w}
	defer func() {
		if out.bytes >= bigRequest {
			s.releaseMemory()
		}
	}()
	n, err := q.ReceiveEach(ctx, queue.ReceiveOptions{Max: maxN, Wait: wait, Visibility: vis}, func(m queue.Message) error {
		if raw {
			h := w.Header()
			h.Set("Content-Type", "application/octet-stream")
			h.Set("Spool-Id", strconv.FormatUint(m.ID, 10))
			h.Set("Spool-Receipt", m.Receipt.String())
			h.Set("Spool-Attempts", strconv.Itoa(m.Attempts))
			h.Set("Spool-Enqueued-At", m.EnqueuedAt.UTC().Format(time.RFC3339Nano))
			w.WriteHeader(http.StatusOK)
			out.n++
			_, err := w.Write(m.Body)
			return err
		}
		return out.add(m)
	})
	switch {
	case err != nil && out.n > 0:
		out.abort() // the reply is under way: cut it rather than end it as if whole
	case err != nil:
		if s.closing.Err() != nil {
			return errShutdown
		}
		if errors.Is(err, context.Canceled) {
			return errClientGone
		}
		return err
	case n == 0:
		w.WriteHeader(http.StatusNoContent)
	case !raw:
		out.end()
	}
	return nil
}

// messageStream writes a Messages reply one message at a time, as the
// queue reads each body: a reply of a thousand 256 KiB messages never sits
// in memory whole (issue 11 measured +744 MB of RSS for such a peek when
// it did). The bytes are those writeJSON would write for the whole reply.
type messageStream struct {
	w     http.ResponseWriter
	n     int
	bytes int // written so far
}

func (s *messageStream) add(m queue.Message) error {
	b, err := json.Marshal(messageJSON(m))
	if err != nil {
		return err
	}
	if s.n == 0 {
		s.w.Header().Set("Content-Type", "application/json")
		s.w.WriteHeader(http.StatusOK)
		b = append([]byte(`{"messages":[`), b...)
	} else {
		b = append([]byte{','}, b...)
	}
	s.n++
	s.bytes += len(b)
	_, err = s.w.Write(b)
	return err
}

// end finishes the reply; with no message added it is an empty list.
func (s *messageStream) end() {
	if s.n == 0 {
		writeJSON(s.w, http.StatusOK, Messages{Messages: []Message{}})
		return
	}
	io.WriteString(s.w, "]}\n")
}

// abort ends a reply that failed after it started: the status is sent
// already, so the connection is cut and the client sees a broken reply,
// never a short list that looks whole.
func (s *messageStream) abort() { panic(http.ErrAbortHandler) }

type receiptKind int

const (
	ack receiptKind = iota
	nack
	extend
	fail
)

func (s *Server) receiptRoute(kind receiptKind) handler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		q, err := s.queue(ps)
		if err != nil {
			return err
		}
		var body Receipts
		if err := readJSON(w, r, int64(s.cfg.MaxBatch)*64+4<<10, &body); err != nil {
			return err
		}
		if len(body.Receipts) == 0 {
			return fmt.Errorf("%w: no receipts", errBadRequest)
		}
		if len(body.Receipts) > s.cfg.MaxBatch {
			return fmt.Errorf("%w: %d receipts, at most %d (--max-batch)", errTooLarge, len(body.Receipts), s.cfg.MaxBatch)
		}
		if kind != nack && (body.Position != "" || body.Delay != "") {
			return fmt.Errorf("%w: position and delay belong to nack", errBadRequest)
		}
		if kind != extend && body.Visibility != "" {
			return fmt.Errorf("%w: visibility belongs to extend", errBadRequest)
		}
		receipts := make([]queue.Receipt, len(body.Receipts))
		for i, text := range body.Receipts {
			if receipts[i], err = queue.ParseReceipt(text); err != nil {
				return err
			}
		}
		var errs []error
		switch kind {
		case ack:
			errs, err = q.Ack(receipts)
		case fail:
			errs, err = q.Fail(receipts)
		case extend:
			var vis time.Duration
			if body.Visibility != "" {
				if vis, err = parseDuration("visibility", body.Visibility, queue.MaxVisibility); err != nil {
					return err
				}
			}
			errs, err = q.Extend(receipts, vis)
		case nack:
			var o queue.NackOptions
			switch body.Position {
			case "", "back":
			case "front":
				o.Front = true
			default:
				return fmt.Errorf("%w: position %q (want front or back)", errBadRequest, body.Position)
			}
			if body.Delay != "" {
				if o.Delay, err = parseDuration("delay", body.Delay, queue.MaxDelay); err != nil {
					return err
				}
			}
			errs, err = q.Nack(receipts, o)
		}
		if err != nil {
			return err
		}
		return writeResults(w, body.Receipts, errs)
	}
}

// writeResults answers a receipt call: when every receipt failed the same
// way, that error (a single stale receipt is a plain 409); otherwise 200
// with one result per receipt.
func writeResults(w http.ResponseWriter, receipts []string, errs []error) error {
	first := errs[0]
	if first != nil {
		status, code := statusOf(first)
		same := true
		for _, e := range errs[1:] {
			if e == nil {
				same = false
				break
			}
			if st, c := statusOf(e); st != status || c != code {
				same = false
				break
			}
		}
		if same {
			return first
		}
	}
	out := Results{Results: make([]Result, len(receipts))}
	for i, e := range errs {
		out.Results[i].Receipt = receipts[i]
		if e == nil {
			out.Results[i].OK = true
			continue
		}
		status, code := statusOf(e)
		out.Results[i].Error = &ErrorBody{Code: code, Message: publicMessage(status, code, e)}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, ps httprouter.Params, dead bool) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	params := r.URL.Query()
	afterText, err := query(params, "after")
	if err != nil {
		return err
	}
	var after uint64
	if afterText != "" {
		if after, err = strconv.ParseUint(afterText, 10, 64); err != nil {
			return fmt.Errorf("%w: after=%q is not a message id", errBadRequest, afterText)
		}
	}
	limit, err := queryInt(params, "limit", 100, 1, queue.MaxList)
	if err != nil {
		return err
	}
	each := q.PeekEach
	if dead {
		each = q.DeadEach
	}
	out := messageStream{w: w}
	defer func() {
		if out.bytes >= bigRequest {
			s.releaseMemory()
		}
	}()
	if err := each(after, limit, out.add); err != nil {
		if out.n > 0 {
			s.cfg.Logger.Error("api: listing failed after its reply started; cutting it", "queue", q.Name(), "err", err)
			out.abort()
		}
		return err
	}
	out.end()
	return nil
}

func (s *Server) peek(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	return s.list(w, r, ps, false)
}

func (s *Server) dead(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	return s.list(w, r, ps, true)
}

func (s *Server) redrive(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	q, err := s.queue(ps)
	if err != nil {
		return err
	}
	limit, err := queryInt(r.URL.Query(), "limit", 0, 0, 1<<30)
	if err != nil {
		return err
	}
	n, err := q.Redrive(limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, Redriven{Redriven: n})
	return nil
}
