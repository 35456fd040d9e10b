package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

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

// Send enqueues one message with body as its exact bytes and returns its
// id. A delay of 0 leaves the queue's default delay in force.
func (c *Client) Send(ctx context.Context, queueName string, body []byte, delay time.Duration) (id string, err error) {
	p, err := queuePath(queueName, RouteMessages)
	if err != nil {
		return "", err
	}
	return c.sendOne(ctx, p, body, delay)
}

// SendBatch enqueues msgs all-or-nothing and returns their ids in order.
// BodyMessage builds a NewMessage from any bytes.
func (c *Client) SendBatch(ctx context.Context, queueName string, msgs []NewMessage) ([]string, error) {
	p, err := queuePath(queueName, RouteBatch)
	if err != nil {
		return nil, err
	}
	return c.sendBatch(ctx, p, msgs)
}

// sendOne posts body as one message to an enqueue route (a queue's or a
// topic's) and returns its id.
func (c *Client) sendOne(ctx context.Context, path string, body []byte, delay time.Duration) (string, error) {
	q := url.Values{}
	// Negative delays are sent too, so the server refuses them (400)
	// rather than the client quietly using the default.
	setDuration(q, "delay", delay)
	resp, err := c.do(ctx, http.MethodPost, path, q, bytes.NewReader(body), "application/octet-stream")
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

// sendBatch posts msgs to a batch route (a queue's or a topic's) and
// returns their ids.
func (c *Client) sendBatch(ctx context.Context, path string, msgs []NewMessage) ([]string, error) {
	var out Enqueued
	if _, err := c.doJSON(ctx, http.MethodPost, path, nil, Batch{Messages: msgs}, &out); err != nil {
		return nil, err
	}
	if len(out.IDs) != len(msgs) {
		return nil, fmt.Errorf("spool: batch reply holds %d ids for %d messages", len(out.IDs), len(msgs))
	}
	return out.IDs, nil
}

// Consumer is the consumer side of one queue (Client.Queue) or one
// subscription of a topic (Client.Subscription): receive, the receipt
// calls, peek, the dead list and redrive, over the same routes, bodies and
// replies, so each call exists once. Client's queue methods are these:
// c.Receive(ctx, "jobs", o) is c.Queue("jobs").Receive(ctx, o), and
// c.Subscription("orders", "billing").Receive(ctx, o) leases from
// subscription billing of topic orders. A Consumer is only a path: cheap
// to make per call, and safe for concurrent use. When a name would hit
// another route, every call returns invalid_name without sending.
type Consumer struct {
	c    *Client
	base string // the path its routes follow
	err  error  // a name refused before sending
}

// Queue returns the consumer calls of the queue called name.
func (c *Client) Queue(name string) *Consumer {
	p, err := queuePath(name, RouteQueue)
	return &Consumer{c: c, base: p, err: err}
}

// Subscription returns the consumer calls of subscription sub of topic.
// Its messages are the topic's, from the subscription's offset on, with a
// queue's leases, receipts, attempts and dead letters of its own.
func (c *Client) Subscription(topic, sub string) *Consumer {
	p, err := subscriptionPath(topic, sub, RouteQueue)
	return &Consumer{c: c, base: p, err: err}
}

// path returns the path of route, or the error that refused the name.
func (cs *Consumer) path(route Route) (string, error) {
	return cs.base + string(route), cs.err
}

// post sends in (as JSON, if not nil) to route and decodes the reply into
// out (if not nil).
func (cs *Consumer) post(ctx context.Context, route Route, q url.Values, in, out any) error {
	p, err := cs.path(route)
	if err != nil {
		return err
	}
	_, err = cs.c.doJSON(ctx, http.MethodPost, p, q, in, out)
	return err
}

// Receive leases up to o.Max messages from the queue; see Consumer.Receive.
func (c *Client) Receive(ctx context.Context, queueName string, o ReceiveOptions) ([]Message, error) {
	return c.Queue(queueName).Receive(ctx, o)
}

// ReceiveRaw leases one message from the queue; see Consumer.ReceiveRaw.
func (c *Client) ReceiveRaw(ctx context.Context, queueName string, wait, visibility time.Duration) (RawMessage, bool, error) {
	return c.Queue(queueName).ReceiveRaw(ctx, wait, visibility)
}

// Ack finishes leased messages of the queue; see Consumer.Ack.
func (c *Client) Ack(ctx context.Context, queueName string, receipts ...string) ([]Result, error) {
	return c.Queue(queueName).Ack(ctx, receipts...)
}

// Fail sends leased messages of the queue dead; see Consumer.Fail.
func (c *Client) Fail(ctx context.Context, queueName string, receipts ...string) ([]Result, error) {
	return c.Queue(queueName).Fail(ctx, receipts...)
}

// Nack returns leased messages to the queue; see Consumer.Nack.
func (c *Client) Nack(ctx context.Context, queueName string, o NackOptions, receipts ...string) ([]Result, error) {
	return c.Queue(queueName).Nack(ctx, o, receipts...)
}

// Extend moves leases' deadlines; see Consumer.Extend.
func (c *Client) Extend(ctx context.Context, queueName string, visibility time.Duration, receipts ...string) ([]Result, error) {
	return c.Queue(queueName).Extend(ctx, visibility, receipts...)
}

// Peek lists the queue's messages without leasing them; see Consumer.Peek.
func (c *Client) Peek(ctx context.Context, queueName, after string, limit int) ([]Message, error) {
	return c.Queue(queueName).Peek(ctx, after, limit)
}

// Dead lists the queue's dead messages; see Consumer.Dead.
func (c *Client) Dead(ctx context.Context, queueName, after string, limit int) ([]Message, error) {
	return c.Queue(queueName).Dead(ctx, after, limit)
}

// Redrive returns the queue's dead messages to ready; see Consumer.Redrive.
func (c *Client) Redrive(ctx context.Context, queueName string, limit int) (int, error) {
	return c.Queue(queueName).Redrive(ctx, limit)
}

// Receive leases up to o.Max messages. With o.Wait it long-polls; when no
// message came it returns nil, nil.
func (cs *Consumer) Receive(ctx context.Context, o ReceiveOptions) ([]Message, error) {
	p, err := cs.path(RouteReceive)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.Max != 0 {
		q.Set("max", strconv.Itoa(o.Max))
	}
	setDuration(q, "wait", o.Wait)
	setDuration(q, "visibility", o.Visibility)
	resp, err := cs.c.do(ctx, http.MethodPost, p, q, nil, "")
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
func (cs *Consumer) ReceiveRaw(ctx context.Context, wait, visibility time.Duration) (m RawMessage, ok bool, err error) {
	p, err := cs.path(RouteReceive)
	if err != nil {
		return m, false, err
	}
	q := url.Values{"raw": {"1"}}
	setDuration(q, "wait", wait)
	setDuration(q, "visibility", visibility)
	resp, err := cs.c.do(ctx, http.MethodPost, p, q, nil, "")
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
func (cs *Consumer) Ack(ctx context.Context, receipts ...string) ([]Result, error) {
	return cs.receipts(ctx, RouteAck, Receipts{Receipts: receipts})
}

// Fail sends leased messages straight to dead (or the dead-letter queue),
// for work that retrying cannot fix.
func (cs *Consumer) Fail(ctx context.Context, receipts ...string) ([]Result, error) {
	return cs.receipts(ctx, RouteFail, Receipts{Receipts: receipts})
}

// Nack returns leased messages to the queue now rather than when their
// lease runs out (or sends one dead if that was its last attempt).
func (cs *Consumer) Nack(ctx context.Context, o NackOptions, receipts ...string) ([]Result, error) {
	body := Receipts{Receipts: receipts}
	if o.Front {
		body.Position = "front"
	}
	if o.Delay != 0 {
		body.Delay = o.Delay.String()
	}
	return cs.receipts(ctx, RouteNack, body)
}

// Extend moves leases' deadlines to now + visibility (0: the queue's
// visibility timeout), for work that is taking longer than planned.
func (cs *Consumer) Extend(ctx context.Context, visibility time.Duration, receipts ...string) ([]Result, error) {
	body := Receipts{Receipts: receipts}
	if visibility != 0 {
		body.Visibility = visibility.String()
	}
	return cs.receipts(ctx, RouteExtend, body)
}

// receipts runs a receipt route. The server applies each receipt on its
// own and answers either one result per receipt (200, returned as is:
// check each Result.Err) or, when every receipt failed the same way,
// that single error (returned as a nil slice and an *Error).
func (cs *Consumer) receipts(ctx context.Context, route Route, body Receipts) ([]Result, error) {
	var out Results
	if err := cs.post(ctx, route, nil, body, &out); err != nil {
		return nil, err
	}
	return out.Results, nil
}

// Peek returns up to limit ready, delayed or leased messages with ids
// after the given one ("" for the start), without leasing them. limit 0
// means the server's default. Page by passing the last id seen as after.
// A delayed message's ReadyAt says when it becomes ready, a leased one's
// LeaseEnds when its lease runs out.
func (cs *Consumer) Peek(ctx context.Context, after string, limit int) ([]Message, error) {
	return cs.list(ctx, RouteMessages, after, limit)
}

// Dead is Peek for the dead messages.
func (cs *Consumer) Dead(ctx context.Context, after string, limit int) ([]Message, error) {
	return cs.list(ctx, RouteDead, after, limit)
}

// list runs a listing route (peek or dead), one page of it.
func (cs *Consumer) list(ctx context.Context, route Route, after string, limit int) ([]Message, error) {
	p, err := cs.path(route)
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
	_, err = cs.c.doJSON(ctx, http.MethodGet, p, q, nil, &out)
	return out.Messages, err
}

// Redrive returns up to limit dead messages (all when limit is 0) to
// ready and reports how many.
func (cs *Consumer) Redrive(ctx context.Context, limit int) (int, error) {
	q := url.Values{}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var out Redriven
	err := cs.post(ctx, RouteRedrive, q, nil, &out)
	return out.Redriven, err
}
