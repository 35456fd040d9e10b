package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Client talks to a spool server over the HTTP API. It is safe for
// concurrent use; share one per server so its connections are reused.
//
// Every method takes a context: it is the only deadline on a call, so a
// long-poll Receive can wait as long as the server allows while a caller
// that gives up (ctx done) gets ctx's error back. The server then leases
// nothing; a lease that raced the hang-up comes back when it runs out.
//
// An error reply becomes an *Error. Its Unwrap maps the reply's code back
// to the queue package's sentinels, so errors.Is(err, queue.ErrStaleReceipt)
// and the like work the same over HTTP as against an embedded Broker.
// Transport failures (refused connection, ctx done) are returned as the
// http.Client gives them.
//
// Calls are never retried: an ack or an enqueue that may have happened is
// for the caller to judge.
type Client struct {
	base  string // scheme://host[:port][/prefix], no trailing slash
	token string
	hc    *http.Client
}

// NewClient returns a Client for the server at baseURL (like
// "http://127.0.0.1:7070"; a bare "host:port" means http, and a path
// prefix is kept for servers behind a reverse proxy). A non-empty token is
// sent as "Authorization: Bearer <token>" on every request.
//
// hc nil means a client built for long polls: connection and TLS
// handshake timeouts, but no overall timeout and no response-header
// timeout, since either would cut a receive that is waiting, as asked, for
// a message. Bound calls with their context instead.
func NewClient(baseURL, token string, hc *http.Client) *Client {
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	return &Client{base: BaseURL(baseURL), token: token, hc: hc}
}

// defaultTransport is shared by every Client built without an http.Client,
// so clients made per command or per test still share keep-alive
// connections rather than each holding its own idle pool.
var defaultTransport = sync.OnceValue(func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = 10 * time.Second
	// Workers keep many requests to one server in flight (long polls,
	// acks); the default of 2 idle connections per host would make most
	// of them dial afresh.
	t.MaxIdleConnsPerHost = 64
	t.IdleConnTimeout = 90 * time.Second
	return t
})

// CloseIdleConnections closes the client's idle keep-alive connections,
// for a program that is done with the server.
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// ListQueues returns every queue with its config and counts, sorted by name.
func (c *Client) ListQueues(ctx context.Context) ([]QueueInfo, error) {
	var out QueueList
	_, err := c.doJSON(ctx, http.MethodGet, QueuesPath, nil, nil, &out)
	return out.Queues, err
}

// GetQueue returns one queue's config and counts.
func (c *Client) GetQueue(ctx context.Context, name string) (QueueInfo, error) {
	var out QueueInfo
	p, err := queuePath(name, RouteQueue)
	if err == nil {
		_, err = c.doJSON(ctx, http.MethodGet, p, nil, nil, &out)
	}
	return out, err
}

// PutQueue creates the queue, or updates it when it exists: only the
// fields set in cfg change. created reports which happened. It is
// idempotent, so it is safe to call on every program start. info.Warnings
// says what took effect but may not be what was meant (a dead-letter
// queue that does not exist yet); show them to the user.
func (c *Client) PutQueue(ctx context.Context, name string, cfg QueueConfig) (info QueueInfo, created bool, err error) {
	p, err := queuePath(name, RouteQueue)
	if err != nil {
		return info, false, err
	}
	status, err := c.doJSON(ctx, http.MethodPost, p, nil, cfg, &info)
	return info, status == http.StatusCreated, err
}

// DeleteQueue removes the queue and every message in it.
func (c *Client) DeleteQueue(ctx context.Context, name string) error {
	return c.post(ctx, name, RouteDelete, nil, nil, nil)
}

// PurgeQueue removes every message in the queue and keeps its config.
func (c *Client) PurgeQueue(ctx context.Context, name string) error {
	return c.post(ctx, name, RoutePurge, nil, nil, nil)
}

// Health returns nil when the server answers /healthz. The server needs
// no token for it, so it also works before auth is set up.
func (c *Client) Health(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodGet, HealthPath, nil, nil, "")
	if err != nil {
		return err
	}
	closeBody(resp)
	return nil
}

// Metrics returns the server's /metrics page in the Prometheus text format.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, MetricsPath, nil, nil, "")
	if err != nil {
		return "", err
	}
	defer closeBody(resp)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("spool: reading metrics: %w", err)
	}
	return string(b), nil
}

// Backup streams an online backup of the server's data directory (GET
// /v1/backup: a tar archive, see queue.Broker.Backup) to w and returns
// its size. queue.RestoreBackup turns it into a data directory. A backup
// cut short is an error (the archive's end is missing), never a short
// archive that looks whole.
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, err := c.do(ctx, http.MethodGet, BackupPath, nil, nil, "")
	if err != nil {
		return 0, err
	}
	defer closeBody(resp)
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("spool: reading the backup: %w", err)
	}
	return n, nil
}

// queuePath returns the path of a queue's route. Names that would change
// which route is hit ("", ".", "..", or holding a "/": the server routes
// on the decoded path, so "a/delete" would delete queue a) are refused
// here, never sent, with the error the server gives a bad name; every
// other name goes to the server, which owns the naming rules.
func queuePath(name string, route Route) (string, error) {
	if err := checkRouteName("queue", name); err != nil {
		return "", err
	}
	return QueuePath(name, route), nil
}

// topicPath is queuePath for a topic's route.
func topicPath(topic string, route Route) (string, error) {
	if err := checkRouteName("topic", topic); err != nil {
		return "", err
	}
	return TopicPath(topic, route), nil
}

// subscriptionPath is queuePath for a subscription's route: neither name
// may change the route.
func subscriptionPath(topic, sub string, route Route) (string, error) {
	if err := checkRouteName("topic", topic); err != nil {
		return "", err
	}
	if err := checkRouteName("subscription", sub); err != nil {
		return "", err
	}
	return SubscriptionPath(topic, sub, route), nil
}

// checkRouteName refuses a name (of what kind says) that would change
// which route a request hits.
func checkRouteName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return &Error{Status: statusOfCode(CodeInvalidName), Code: CodeInvalidName, Message: fmt.Sprintf("%s name %q (use 1-80 of A-Z a-z 0-9 _ . -, not starting with a dot); not sent", kind, name)}
	}
	return nil
}

// setDuration sets the query parameter name to d, unless d is 0 (the
// server's default).
func setDuration(q url.Values, name string, d time.Duration) {
	if d != 0 {
		q.Set(name, d.String())
	}
}

// post sends in (as JSON, if not nil) to a queue's route and decodes the
// reply into out (if not nil).
func (c *Client) post(ctx context.Context, queueName string, route Route, q url.Values, in, out any) error {
	p, err := queuePath(queueName, route)
	if err != nil {
		return err
	}
	_, err = c.doJSON(ctx, http.MethodPost, p, q, in, out)
	return err
}

// doJSON is do with a JSON body (if in is not nil) and reply (if out is
// not nil). It returns the reply's status.
func (c *Client) doJSON(ctx context.Context, method, path string, q url.Values, in, out any) (int, error) {
	var body io.Reader
	var contentType string
	if in != nil {
		b, err := marshalJSON(in)
		if err != nil {
			return 0, fmt.Errorf("spool: encoding request: %w", err)
		}
		body, contentType = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, q, body, contentType)
	if err != nil {
		return 0, err
	}
	if out == nil {
		closeBody(resp)
		return resp.StatusCode, nil
	}
	return resp.StatusCode, readReply(resp, out)
}

// do sends a request and returns a 2xx response, whose body the caller
// must close with closeBody. Any other reply is returned as an *Error.
// body should be a *bytes.Reader (or nil) so the transport can replay it
// when a reused keep-alive connection turns out to be closed.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer closeBody(resp)
		return nil, errorFromResponse(resp)
	}
	return resp, nil
}

// readReply decodes a JSON reply into out and closes the body.
func readReply(resp *http.Response, out any) error {
	defer closeBody(resp)
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("spool: decoding the reply of %s %s: %w", resp.Request.Method, resp.Request.URL.Path, err)
	}
	return nil
}

// drainLimit bounds what closeBody reads to let a connection be reused:
// past it, closing the connection is cheaper than reading on.
const drainLimit = 64 << 10

// closeBody reads what is left of a (small) body before closing it: a
// connection goes back to the keep-alive pool only once its body is read
// to the end.
func closeBody(resp *http.Response) {
	io.CopyN(io.Discard, resp.Body, drainLimit)
	resp.Body.Close()
}

// Limits on reading an error reply: ours are a few hundred bytes, and a
// proxy's HTML page or a misbehaving server must not cost more than this.
const (
	errorBodyLimit = 16 << 10
	excerptLimit   = 200
)

// errorFromResponse turns a non-2xx reply into an *Error: our JSON error
// body when it is one, else (a proxy's page, an empty body) code "" and a
// message with the status and the start of the body, so the cause is not
// lost.
func errorFromResponse(resp *http.Response) *Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyLimit))
	var reply ErrorReply
	if err := json.Unmarshal(b, &reply); err == nil && reply.Error.Code != "" {
		return &Error{Status: resp.StatusCode, Code: reply.Error.Code, Message: reply.Error.Message}
	}
	msg := resp.Status
	if msg == "" {
		msg = strconv.Itoa(resp.StatusCode)
	}
	if ex := excerpt(b); ex != "" {
		msg += ": " + ex
	} else {
		msg += " with an empty body"
	}
	return &Error{Status: resp.StatusCode, Message: msg}
}

// excerpt returns the start of b as one printable line.
func excerpt(b []byte) string {
	cut := len(b) > excerptLimit
	if cut {
		b = b[:excerptLimit]
	}
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "\uFFFD")), " ")
	if cut {
		s += "…"
	}
	return s
}
