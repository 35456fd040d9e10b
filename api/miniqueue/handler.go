package miniqueue

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"syscall"
	"time"

	"github.com/spoolq/spool/queue"
)

// Config configures the handler. Broker is required; every other field
// has a default.
type Config struct {
	Broker *queue.Broker
	// Logger gets the adapter's lines (streams that end in an error,
	// queue calls that fail); nil: slog.Default().
	Logger *slog.Logger
	// MaxAttempts is the max attempts of a queue this adapter creates
	// (a topic's first use); 0: queue.MaxMaxAttempts, since miniqueue
	// redelivers without limit. A queue that exists keeps its config.
	MaxAttempts int
	// Lease is the lease a subscribe stream takes on the message it
	// sends, renewed every Lease/3 while the stream is open (default
	// DefaultLease): how long a message stays out after the server
	// itself dies holding it.
	Lease time.Duration
	// MaxCommandBytes bounds one command (default DefaultMaxCommandBytes).
	MaxCommandBytes int
	// MaxMessageBytes bounds a published body (default
	// queue.DefaultMaxMessageBytes); set it to the broker's
	// Options.MaxMessageBytes. The broker's own limit applies too.
	MaxMessageBytes int
	// WriteTimeout bounds each write of a subscribe stream's reply: a
	// client that reads nothing for this long is gone (default
	// DefaultWriteTimeout).
	WriteTimeout time.Duration
}

// Defaults of Config.
const (
	DefaultLease        = 30 * time.Second
	DefaultWriteTimeout = 30 * time.Second
)

// New returns the miniqueue handler over b (see the package doc), with
// Config's defaults.
func New(b *queue.Broker, logger *slog.Logger) http.Handler {
	return NewHandler(Config{Broker: b, Logger: logger})
}

// NewHandler returns the miniqueue handler for c.
func NewHandler(c Config) http.Handler {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = queue.MaxMaxAttempts
	}
	if c.Lease <= 0 {
		c.Lease = DefaultLease
	}
	c.Lease = min(c.Lease, queue.MaxVisibility)
	if c.MaxCommandBytes <= 0 {
		c.MaxCommandBytes = DefaultMaxCommandBytes
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = queue.DefaultMaxMessageBytes
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	h := &handler{cfg: c, log: c.Logger.With("api", "miniqueue"), mux: http.NewServeMux()}
	h.mux.HandleFunc("POST /publish/{topic}", h.publish)
	h.mux.HandleFunc("POST /subscribe/{topic}", h.subscribe)
	h.mux.HandleFunc("DELETE /{topic}", h.purge)
	return h
}

type handler struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// The error payloads: miniqueue's texts where it has one.
var (
	errInvalidTopic = errors.New("invalid topic value")
	errReadBody     = errors.New("error reading the request body")
	errTooLarge     = errors.New("message too large")
	errTopicFull    = errors.New("topic full")
	errUnavailable  = errors.New("temporarily unavailable, retry")
	errNoSpace      = errors.New("insufficient storage")
	errPublish      = errors.New("error publishing to broker")
	errPurge        = errors.New("failed to purge topic")
	errNextValue    = errors.New("error getting next value for consumer")
	errStream       = errors.New("streaming not supported on this connection")
)

// replyStatus maps a queue error to the status and payload of a reply
// sent before a stream starts. Queue error texts are logged, never sent.
func replyStatus(err, internal error) (int, error) {
	switch {
	case errors.Is(err, errInvalidTopic), errors.Is(err, queue.ErrInvalidName):
		return http.StatusBadRequest, errInvalidTopic
	case errors.Is(err, queue.ErrTooLarge):
		return http.StatusRequestEntityTooLarge, errTooLarge
	case errors.Is(err, queue.ErrQueueFull):
		return http.StatusTooManyRequests, errTopicFull
	case errors.Is(err, queue.ErrClosed), errors.Is(err, queue.ErrUnavailable), errors.Is(err, queue.ErrQueueDamaged):
		return http.StatusServiceUnavailable, errUnavailable
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return http.StatusInsufficientStorage, errNoSpace
	}
	return http.StatusInternalServerError, internal
}

// fail sends an error reply: the status, and {"error":"..."} as miniqueue
// writes it (with a newline).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err, internal error) {
	status, payload := replyStatus(err, internal)
	if status >= 500 {
		h.log.Warn("miniqueue: request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(appendError(nil, payload))
}

// topic returns the queue behind a miniqueue topic, creating it if asked
// and it does not exist. A name outside the queue-name rule is
// errInvalidTopic, and nothing is created.
func (h *handler) topic(name string, create bool) (*queue.Queue, error) {
	if !queue.ValidName(name) {
		return nil, errInvalidTopic
	}
	q, err := h.cfg.Broker.Queue(name)
	if create && errors.Is(err, queue.ErrQueueNotFound) {
		// A queue made between the lookup and here gets this MaxAttempts
		// too; that is the only way this adapter changes a queue's config.
		q, _, err = h.cfg.Broker.Create(name, queue.ConfigUpdate{MaxAttempts: &h.cfg.MaxAttempts})
	}
	return q, err
}

// publish is POST /publish/:topic: the body is one message. 201 and no
// body when it is durable, as miniqueue replies.
func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("topic")
	if !queue.ValidName(name) {
		h.fail(w, r, errInvalidTopic, errPublish)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(h.cfg.MaxMessageBytes)))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			err = queue.ErrTooLarge
		} else {
			err = errReadBody
		}
		h.fail(w, r, err, errReadBody)
		return
	}
	msg := []queue.NewMessage{{Body: body}}
	q, err := h.topic(name, true)
	if err == nil {
		_, err = q.Enqueue(msg)
	}
	if errors.Is(err, queue.ErrQueueNotFound) { // deleted since the lookup: make it again
		if q, err = h.topic(name, true); err == nil {
			_, err = q.Enqueue(msg)
		}
	}
	if err != nil {
		h.fail(w, r, err, errPublish)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// purge is DELETE /:topic, miniqueue's "deletes the given topic, removing
// all messages": the queue's messages are purged and it stays, so that
// subscribers connected to it go on. A topic that does not exist is
// purged already (200), and is not created.
func (h *handler) purge(w http.ResponseWriter, r *http.Request) {
	q, err := h.topic(r.PathValue("topic"), false)
	if err == nil {
		err = q.Purge()
	}
	if err != nil && !errors.Is(err, queue.ErrQueueNotFound) {
		h.fail(w, r, err, errPurge)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// appendMsg appends a message payload as miniqueue's subResponse encodes
// it: msg and dackCount are omitted when empty and zero.
func appendMsg(dst, body []byte, dackCount int) []byte {
	dst = append(dst, '{')
	if len(body) > 0 {
		dst = append(dst, `"msg":"`...)
		dst = base64Std.AppendEncode(dst, body)
		dst = append(dst, '"')
	}
	if dackCount > 0 {
		if len(body) > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"dackCount":`...)
		dst = appendInt(dst, dackCount)
	}
	return append(dst, "}\n"...)
}

// appendError appends an error payload, {"error":"..."} and a newline.
func appendError(dst []byte, err error) []byte {
	text, _ := json.Marshal(err.Error())
	dst = append(dst, `{"error":`...)
	dst = append(dst, text...)
	return append(dst, "}\n"...)
}
