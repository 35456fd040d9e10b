package api

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
	if !strings.Contains(baseURL, "://") {
		baseURL = "http://" + baseURL
	}
	if hc == nil {
		hc = &http.Client{Transport: defaultTransport()}
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), token: token, hc: hc}
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

// ReceiveOptions tune Client.Receive. Zero fields are left to the server:
// one message, no wait, the queue's visibility timeout.
type ReceiveOptions struct {
	// Max is how many messages to lease at most.
	Max int
	// Wait is the long poll: how long the server waits for a first
	// message before answering with none (at most its --max-wait).
	Wait time.Duration
	// Visibility is the lease length.
	Visibility time.Duration
}

// NackOptions tune Client.Nack.
type NackOptions struct {
	// Front returns the messages to the front of the queue, so they are
	// received next, instead of the back.
	Front bool
	// Delay keeps the messages from being received again for this long.
	Delay time.Duration
}

// RawMessage is one message received with ReceiveRaw: the body exactly as
// enqueued, with no JSON or base64 in between.
type RawMessage struct {
	ID         string
	Receipt    string
	Attempts   int
	EnqueuedAt time.Time
	Body       []byte
}

// Err returns the receipt's error as an *Error (so errors.Is(res.Err(),
// queue.ErrStaleReceipt) works), or nil when it succeeded. Status is the
// one the server uses for the code when it is a call's only error.
func (r Result) Err() error {
	if r.Error == nil {
		return nil
	}
	return &Error{Status: statusOfCode(r.Error.Code), Code: r.Error.Code, Message: r.Error.Message}
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
// idempotent, so it is safe to call on every program start.
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

// Send enqueues one message with body as its exact bytes and returns its
// id. A delay of 0 leaves the queue's default delay in force.
func (c *Client) Send(ctx context.Context, queueName string, body []byte, delay time.Duration) (id string, err error) {
	p, err := queuePath(queueName, RouteMessages)
	if err != nil {
		return "", err
	}
	q := url.Values{}
	// Negative delays are sent too, so the server refuses them (400)
	// rather than the client quietly using the default.
	setDuration(q, "delay", delay)
	resp, err := c.do(ctx, http.MethodPost, p, q, bytes.NewReader(body), "application/octet-stream")
	if err != nil {
		return "", err
	}
	var out Enqueued
	if err := readReply(resp, &out); err != nil {
		return "", err
	}
	if len(out.IDs) != 1 {
		return "", fmt.Errorf("spool: enqueue reply holds %d ids, want 1", len(out.IDs))
	}
	return out.IDs[0], nil
}

// SendBatch enqueues msgs all-or-nothing and returns their ids in order.
// BodyMessage builds a NewMessage from any bytes.
func (c *Client) SendBatch(ctx context.Context, queueName string, msgs []NewMessage) ([]string, error) {
	var out Enqueued
	err := c.post(ctx, queueName, RouteBatch, nil, Batch{Messages: msgs}, &out)
	if err != nil {
		return nil, err
	}
	if len(out.IDs) != len(msgs) {
		return nil, fmt.Errorf("spool: batch reply holds %d ids for %d messages", len(out.IDs), len(msgs))
	}
	return out.IDs, nil
}

// Receive leases up to o.Max messages. With o.Wait it long-polls; when no
// message came it returns nil, nil.
func (c *Client) Receive(ctx context.Context, queueName string, o ReceiveOptions) ([]Message, error) {
	p, err := queuePath(queueName, RouteReceive)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.Max != 0 {
		q.Set("max", strconv.Itoa(o.Max))
	}
	setDuration(q, "wait", o.Wait)
	setDuration(q, "visibility", o.Visibility)
	resp, err := c.do(ctx, http.MethodPost, p, q, nil, "")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusNoContent {
		closeBody(resp)
		return nil, nil
	}
	var out Messages
	if err := readReply(resp, &out); err != nil {
		return nil, err
	}
	return out.Messages, nil
}

// ReceiveRaw leases one message and returns its body exactly as enqueued
// (the ?raw=1 form, lease details in Spool-* headers): no JSON escaping or
// base64 on the way. ok is false when no message came within wait.
func (c *Client) ReceiveRaw(ctx context.Context, queueName string, wait, visibility time.Duration) (m RawMessage, ok bool, err error) {
	p, err := queuePath(queueName, RouteReceive)
	if err != nil {
		return m, false, err
	}
	q := url.Values{"raw": {"1"}}
	setDuration(q, "wait", wait)
	setDuration(q, "visibility", visibility)
	resp, err := c.do(ctx, http.MethodPost, p, q, nil, "")
	if err != nil {
		return m, false, err
	}
	defer closeBody(resp)
	if resp.StatusCode == http.StatusNoContent {
		return m, false, nil
	}
	h := resp.Header
	m.ID, m.Receipt = h.Get("Spool-Id"), h.Get("Spool-Receipt")
	if m.ID == "" || m.Receipt == "" {
		return RawMessage{}, false, errors.New("spool: raw receive reply lacks the Spool-Id and Spool-Receipt headers")
	}
	if m.Attempts, err = strconv.Atoi(h.Get("Spool-Attempts")); err != nil {
		return RawMessage{}, false, fmt.Errorf("spool: raw receive reply: Spool-Attempts: %w", err)
	}
	if m.EnqueuedAt, err = time.Parse(time.RFC3339Nano, h.Get("Spool-Enqueued-At")); err != nil {
		return RawMessage{}, false, fmt.Errorf("spool: raw receive reply: Spool-Enqueued-At: %w", err)
	}
	if m.Body, err = io.ReadAll(resp.Body); err != nil {
		return RawMessage{}, false, fmt.Errorf("spool: reading raw message %s: %w", m.ID, err)
	}
	return m, true, nil
}

// Ack finishes leased messages. Like Nack, Extend and Fail, it applies
// each receipt on its own and returns one Result per receipt, in order
// (check each Result.Err), or, when every receipt failed the same way (a
// single stale receipt, say), nil and that error as an *Error.
func (c *Client) Ack(ctx context.Context, queueName string, receipts ...string) ([]Result, error) {
	return c.receipts(ctx, queueName, RouteAck, Receipts{Receipts: receipts})
}

// Fail sends leased messages straight to dead (or the dead-letter queue),
// for work that retrying cannot fix.
func (c *Client) Fail(ctx context.Context, queueName string, receipts ...string) ([]Result, error) {
	return c.receipts(ctx, queueName, RouteFail, Receipts{Receipts: receipts})
}

// Nack returns leased messages to the queue now rather than when their
// lease runs out (or sends one dead if that was its last attempt).
func (c *Client) Nack(ctx context.Context, queueName string, o NackOptions, receipts ...string) ([]Result, error) {
	body := Receipts{Receipts: receipts}
	if o.Front {
		body.Position = "front"
	}
	if o.Delay != 0 {
		body.Delay = o.Delay.String()
	}
	return c.receipts(ctx, queueName, RouteNack, body)
}

// Extend moves leases' deadlines to now + visibility (0: the queue's
// visibility timeout), for work that is taking longer than planned.
func (c *Client) Extend(ctx context.Context, queueName string, visibility time.Duration, receipts ...string) ([]Result, error) {
	body := Receipts{Receipts: receipts}
	if visibility != 0 {
		body.Visibility = visibility.String()
	}
	return c.receipts(ctx, queueName, RouteExtend, body)
}

// receipts runs a receipt route. The server applies each receipt on its
// own and answers either one result per receipt (200, returned as is:
// check each Result.Err) or, when every receipt failed the same way,
// that single error (returned as a nil slice and an *Error).
func (c *Client) receipts(ctx context.Context, queueName string, route Route, body Receipts) ([]Result, error) {
	var out Results
	if err := c.post(ctx, queueName, route, nil, body, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Peek returns up to limit ready, delayed or leased messages with ids
// after the given one ("" for the start), without leasing them. limit 0
// means the server's default. Page by passing the last id seen as after.
func (c *Client) Peek(ctx context.Context, queueName, after string, limit int) ([]Message, error) {
	return c.list(ctx, queueName, RouteMessages, after, limit)
}

// Dead is Peek for the queue's dead messages.
func (c *Client) Dead(ctx context.Context, queueName, after string, limit int) ([]Message, error) {
	return c.list(ctx, queueName, RouteDead, after, limit)
}

// list runs a listing route (peek or dead), one page of it.
func (c *Client) list(ctx context.Context, queueName string, route Route, after string, limit int) ([]Message, error) {
	p, err := queuePath(queueName, route)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Messages
	_, err = c.doJSON(ctx, http.MethodGet, p, q, nil, &out)
	return out.Messages, err
}

// Redrive returns up to limit dead messages (all when limit is 0) to
// ready and reports how many.
func (c *Client) Redrive(ctx context.Context, queueName string, limit int) (int, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Redriven
	err := c.post(ctx, queueName, RouteRedrive, q, nil, &out)
	return out.Redriven, err
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

// queuePath returns the path of a queue's route. Names that would change
// which route is hit ("", ".", "..", or holding a "/": the server routes
// on the decoded path, so "a/delete" would delete queue a) are refused
// here, never sent, with the error the server gives a bad name; every
// other name goes to the server, which owns the naming rules.
func queuePath(name string, route Route) (string, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return "", &Error{Status: statusOfCode(CodeInvalidName), Code: CodeInvalidName, Message: fmt.Sprintf("queue name %q (use 1-80 of A-Z a-z 0-9 _ . -, not starting with a dot); not sent", name)}
	}
	return QueuePath(name, route), nil
}

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
		b, err := json.Marshal(in)
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
