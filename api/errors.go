package api

import (
	"errors"
	"fmt"
	"net/http"
	"syscall"

	"github.com/spoolq/spool/queue"
)

// The error codes of the API. They are stable: clients switch on them.
const (
	CodeInvalidRequest       = "invalid_request"        // 400: malformed JSON, bad parameter or value
	CodeInvalidName          = "invalid_name"           // 400: a queue name outside the rules
	CodeUnauthorized         = "unauthorized"           // 401: missing or wrong bearer token
	CodeForbidden            = "forbidden"              // 403: an API key without the scope for the call
	CodeQueueNotFound        = "queue_not_found"        // 404
	CodeTopicNotFound        = "topic_not_found"        // 404
	CodeSubscriptionNotFound = "subscription_not_found" // 404: the topic exists, the subscription does not
	CodeMessageNotFound      = "message_not_found"      // 404: per receipt, or every receipt
	CodeRouteNotFound        = "route_not_found"        // 404
	CodeMethodNotAllowed     = "method_not_allowed"     // 405
	CodeStaleReceipt         = "stale_receipt"          // 409: the lease is over
	CodeTooLarge             = "too_large"              // 413: body, message or batch too large
	CodeUnsupportedMedia     = "unsupported_media_type" // 415: a JSON route sent something else
	CodeQueueFull            = "queue_full"             // 429
	CodeInternal             = "internal"               // 500
	CodeShuttingDown         = "shutting_down"          // 503
	CodeUnavailable          = "unavailable"            // 503: a queue reloads after a disk error; retry
	CodeQueueUnavailable     = "queue_unavailable"      // 503: the queue's files did not open; the message says why
	CodeInsufficientStorage  = "insufficient_storage"   // 507: disk full or over --max-disk
)

// ErrQuotaExceeded is returned (and sent as 507) for an enqueue that
// would take the data directory past the server's --max-disk.
var ErrQuotaExceeded = errors.New("disk quota exceeded")

// errTooLarge and errBadRequest mark request problems found by the API
// layer itself (sizes, JSON, parameters).
var (
	errTooLarge     = errors.New("request too large")
	errBadRequest   = errors.New("invalid request")
	errBadMedia     = errors.New("unsupported media type")
	errShutdown     = errors.New("server shutting down")
	errUnauthorized = errors.New("unauthorized")
	errForbidden    = errors.New("forbidden")
	// errClientGone: the client hung up (a long poll it gave up on); no
	// reply is written, and metrics count it as 499, nginx's "client
	// closed request".
	errClientGone = errors.New("client closed the request")
)

const statusClientGone = 499

// codes is the one place queue errors meet HTTP: the first entry whose
// error matches (errors.Is) gives the status and code. Client maps codes
// back to these errors, so errors.Is(err, queue.ErrStaleReceipt) works
// over HTTP.
//
// The first entry for a code is also what Client maps that code back to,
// unless it is one of this package's unexported errors, which callers
// cannot test for: those codes map to no sentinel.
var codes = []struct {
	err    error
	status int
	code   string
}{
	{queue.ErrInvalidName, http.StatusBadRequest, CodeInvalidName},
	{queue.ErrInvalid, http.StatusBadRequest, CodeInvalidRequest},
	{errBadRequest, http.StatusBadRequest, CodeInvalidRequest},
	{errUnauthorized, http.StatusUnauthorized, CodeUnauthorized},
	{errForbidden, http.StatusForbidden, CodeForbidden},
	{queue.ErrQueueNotFound, http.StatusNotFound, CodeQueueNotFound},
	{queue.ErrTopicNotFound, http.StatusNotFound, CodeTopicNotFound},
	{queue.ErrSubscriptionNotFound, http.StatusNotFound, CodeSubscriptionNotFound},
	{queue.ErrNotFound, http.StatusNotFound, CodeMessageNotFound},
	{queue.ErrStaleReceipt, http.StatusConflict, CodeStaleReceipt},
	{queue.ErrTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{errTooLarge, http.StatusRequestEntityTooLarge, CodeTooLarge},
	{errBadMedia, http.StatusUnsupportedMediaType, CodeUnsupportedMedia},
	{queue.ErrQueueFull, http.StatusTooManyRequests, CodeQueueFull},
	{queue.ErrClosed, http.StatusServiceUnavailable, CodeShuttingDown},
	{errShutdown, http.StatusServiceUnavailable, CodeShuttingDown},
	{queue.ErrUnavailable, http.StatusServiceUnavailable, CodeUnavailable},
	{queue.ErrQueueDamaged, http.StatusServiceUnavailable, CodeQueueUnavailable},
	{ErrQuotaExceeded, http.StatusInsufficientStorage, CodeInsufficientStorage},
	{syscall.ENOSPC, http.StatusInsufficientStorage, CodeInsufficientStorage},
	{syscall.EDQUOT, http.StatusInsufficientStorage, CodeInsufficientStorage},
}

// statusOf returns the status and code for err; anything unknown is a 500.
func statusOf(err error) (int, string) {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.status, c.code
		}
	}
	return http.StatusInternalServerError, CodeInternal
}

// statusOfCode looks the code up in the server's own table, so the two
// cannot drift apart; 0 for a code it does not know.
func statusOfCode(code string) int {
	for _, c := range codes {
		if c.code == code {
			return c.status
		}
	}
	return 0
}

// publicMessage is what a client is told. 4xx messages come from input
// checks and say what to fix; 5xx ones would leak paths and internals, so
// they get a fixed text (the server logs the real error).
func publicMessage(status int, code string, err error) string {
	switch {
	case status == http.StatusInsufficientStorage:
		return "the server's disk is full or over its quota; nothing was written"
	case code == CodeUnavailable:
		return "the queue is reloading its state from disk after a disk error; retry in a second"
	case code == CodeQueueUnavailable:
		return err.Error() // says why without paths (queue.ErrQueueDamaged's contract)
	case status == http.StatusServiceUnavailable:
		return "the server is shutting down; retry against the restarted server"
	case status >= 500:
		return "internal error; the server log has the details"
	}
	return err.Error()
}

// Error is an error reply as Client returns it. errors.Is matches it
// against the queue package's sentinel errors (and ErrQuotaExceeded) by
// its code.
type Error struct {
	Status  int
	Code    string
	Message string
}

// Error reads as the server's message with the status and code after it,
// "queue \"jobs\" not found [404 queue_not_found]", and no "spool:" prefix
// of its own, so a program's prefix is not doubled.
func (e *Error) Error() string {
	return fmt.Sprintf("%s [%d %s]", e.Message, e.Status, e.Code)
}

// Unwrap returns the sentinel error the code stands for, if any: the
// first entry of the codes table with that code.
func (e *Error) Unwrap() error {
	for _, c := range codes {
		if c.code == e.Code {
			if isPrivate(c.err) {
				return nil
			}
			return c.err
		}
	}
	return nil
}

// isPrivate reports whether err is one of this package's unexported
// errors: no caller can test for it, so Client maps its code to none.
func isPrivate(err error) bool {
	switch err {
	case errTooLarge, errBadRequest, errBadMedia, errShutdown, errUnauthorized, errClientGone:
		return true
	}
	return false
}
