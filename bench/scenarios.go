package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/api"
)

// scenario holds what the operations of one run share: URLs, bodies and
// commands built once, and the beanstalkd and redis scenarios' connections.
type scenario struct {
	cfg   Config
	epoch time.Time // mixed: enqueue stamps are nanoseconds since epoch

	messagesURL, batchURL, receiveURL, ackURL string

	body      []byte // one message of cfg.Size bytes
	batchBody []byte // a batch of cfg.Batch such messages, as JSON

	// The beanstalkd and redis scenarios: the server's address, the one
	// command the workers repeat (put, or LPUSH), and each worker's
	// connection by worker index (see lineOp), kept from phase to phase.
	wire  string
	cmd   []byte
	lines []*lineConn
}

// mixedReceiveMax and mixedWait are the consumers' receive of mixed: up
// to 10 messages, long-polling 100 ms (so consumers stop soon after the
// deadline, and wake as soon as a message is ready).
const (
	mixedReceiveMax = 10
	mixedWait       = 100 * time.Millisecond
)

// newScenario builds the URLs (on the server at base) and bodies of a run,
// and the commands of the beanstalkd and redis scenarios (to the server at
// wire). The paths come from package api, where the server's routes are
// named.
func newScenario(cfg Config, base, wire string, epoch time.Time) *scenario {
	u := func(r api.Route) string { return base + api.QueuePath(cfg.Queue, r) }
	s := &scenario{
		cfg:         cfg,
		epoch:       epoch,
		messagesURL: u(api.RouteMessages),
		batchURL:    u(api.RouteBatch),
		ackURL:      u(api.RouteAck),
		body:        bytes.Repeat([]byte{'x'}, cfg.Size),
		wire:        wire,
	}
	switch protocolOf(cfg.Scenario) {
	case protoBeanstalk:
		s.cmd = putCommand(s.body)
		s.lines = make([]*lineConn, cfg.Concurrency)
	case protoRedis:
		s.cmd = respCommand("LPUSH", cfg.Queue, string(s.body))
		s.lines = make([]*lineConn, cfg.Concurrency)
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
	case BeanstalkPut:
		for i := range c {
			ws = append(ws, s.lineOp(i, s.useTube, s.pushOp(rec, "put", "INSERTED ")))
		}
	case BeanstalkReserveDelete:
		for i := range c {
			ws = append(ws, s.lineOp(i, s.watchTube, s.reserveDeleteOp(rec)))
		}
	case RedisLPush:
		for i := range c {
			ws = append(ws, s.lineOp(i, nil, s.pushOp(rec, "LPUSH", ":")))
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
	return postOp(s.messagesURL, s.body, ctOctets, http.StatusCreated, 1, rec)
}

// enqueueBatchOp: one POST /batch of cfg.Batch messages; latency = the
// request.
func (s *scenario) enqueueBatchOp(rec bool) op {
	return postOp(s.batchURL, s.batchBody, ctJSON, http.StatusCreated, s.cfg.Batch, rec)
}

// postOp is an operation of one POST of body (content type ctype) to u,
// whose reply must have status want: it counts n messages, with the
// request as the latency sample (recorded when rec). The enqueue
// scenarios and the trivial baseline share it, so they time alike.
func postOp(u string, body []byte, ctype []string, want, n int, rec bool) op {
	return func(ctx context.Context, w *conn, p *phase) (bool, error) {
		t0 := time.Now()
		if _, err := p.request(ctx, w, u, body, ctype, want); err != nil {
			return false, err
		}
		now := time.Now()
		p.done(now, n, now.Sub(t0), rec)
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
		if _, err := p.request(ctx, w, s.messagesURL, body, ctOctets, http.StatusCreated); err != nil {
			return false, err
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
		if reply, err = p.request(ctx, w, s.ackURL, bytes.Clone(ack), ctJSON, http.StatusOK); err != nil {
			return false, err
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
