package sqs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spoolq/spool/queue"
)

// Message move tasks (StartMessageMoveTask, ListMessageMoveTasks,
// CancelMessageMoveTask) are SQS's redrive of a dead-letter queue. A task
// moves its source queue's ready messages, a batch at a time, to the
// destination queue, or with none back to the queue each came from (the
// origin spool's dead-letter moves record). Each batch is received from
// the source, enqueued in its destination (one fsync) and only then acked
// in the source, so a crash in between can leave a message in both queues,
// never in neither. A message with nowhere to go (no origin and no
// destination, or a destination that is gone) is returned to the source
// and the task fails, saying why.
//
// A task moves as many messages as the source had ready when it started
// (ApproximateNumberOfMessagesToMove), so messages that reach the source
// while it runs wait for the next task, and a message that comes back
// (moved to a queue that dead-letters it again) is not moved round and
// round. A destination that is the source itself is refused.
//
// One task runs per source queue, as in SQS, on a goroutine of its own
// that ends when it has moved its messages or the source has no ready
// message left, when it is cancelled, or when the server shuts down
// (Config.Closing). The latest
// task of each source is kept for ListMessageMoveTasks until the server
// stops.

// Task statuses, as SQS names them.
const (
	taskRunning    = "RUNNING"
	taskCompleted  = "COMPLETED"
	taskCancelling = "CANCELLING"
	taskCancelled  = "CANCELLED"
	taskFailed     = "FAILED"
)

// moveLease is how long a task holds the batch it is moving: ample for one
// enqueue and one ack, and what a crash in between costs before the batch
// is ready in the source again.
const moveLease = time.Minute

// maxMoveRate is SQS's highest MaxNumberOfMessagesPerSecond.
const maxMoveRate = 500

type moveTask struct {
	handle, source, dest string // dest "": each message's origin
	rate                 int    // messages per second; 0: as fast as it goes
	started              time.Time
	toMove               int64
	moved                atomic.Int64
	cancel               context.CancelFunc

	mu      sync.Mutex
	status  string
	failure string
}

func (t *moveTask) state() (status, failure string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.status, t.failure
}

func (t *moveTask) end(status, failure string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status, t.failure = status, failure
}

// moveTasks are the handler's tasks, the latest of each source queue.
type moveTasks struct {
	mu       sync.Mutex
	bySource map[string]*moveTask
}

var codeResourceNotFound = errorCode{"ResourceNotFoundException", "ResourceNotFoundException", 404, true}

// queueOfARN reads the queue name of an SQS queue ARN.
func queueOfARN(member, arn string) (string, error) {
	parts := strings.Split(arn, ":")
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "sqs" || !queue.ValidName(parts[5]) {
		return "", fail(codeInvalidParameterValue, "%s %q is not an SQS queue ARN", member, arn)
	}
	return parts[5], nil
}

func (c *call) startMessageMoveTask() (any, error) {
	var in struct {
		SourceArn, DestinationArn    string
		MaxNumberOfMessagesPerSecond *number
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.SourceArn == "" {
		return nil, fail(codeMissingParameter, "the request must contain the parameter SourceArn")
	}
	b := c.h.cfg.Broker
	source, err := queueOfARN("SourceArn", in.SourceArn)
	if err != nil {
		return nil, err
	}
	src, err := b.Queue(source)
	if errors.Is(err, queue.ErrQueueNotFound) {
		return nil, fail(codeResourceNotFound, "the source queue %q does not exist", source)
	} else if err != nil {
		return nil, err
	}
	isDLQ := false
	for _, info := range b.List() {
		isDLQ = isDLQ || (info.Err == nil && info.Config.DeadLetterQueue == source)
	}
	if !isDLQ {
		return nil, fail(codeInvalidParameterValue, "the source queue %q is no queue's dead-letter queue", source)
	}
	t := &moveTask{source: source, started: time.Now(), status: taskRunning}
	if in.DestinationArn != "" {
		if t.dest, err = queueOfARN("DestinationArn", in.DestinationArn); err != nil {
			return nil, err
		}
		if t.dest == source {
			return nil, fail(codeInvalidParameterValue, "the destination queue %q is the source queue", t.dest)
		}
		if _, err := b.Queue(t.dest); err != nil {
			if errors.Is(err, queue.ErrQueueNotFound) {
				return nil, fail(codeResourceNotFound, "the destination queue %q does not exist", t.dest)
			}
			return nil, err
		}
	}
	if in.MaxNumberOfMessagesPerSecond != nil {
		r := in.MaxNumberOfMessagesPerSecond.v
		if r < 1 || r > maxMoveRate {
			return nil, fail(codeInvalidParameterValue, "MaxNumberOfMessagesPerSecond %d must be from 1 to %d", r, maxMoveRate)
		}
		t.rate = int(r)
	}
	info, err := src.Info()
	if err != nil {
		return nil, err
	}
	t.toMove = int64(info.Counts.Ready)
	var id [8]byte
	rand.Read(id[:])
	t.handle = source + ":" + hex.EncodeToString(id[:])

	m := &c.h.moves
	m.mu.Lock()
	defer m.mu.Unlock()
	if old := m.bySource[source]; old != nil {
		if st, _ := old.state(); st == taskRunning || st == taskCancelling {
			return nil, fail(codeUnsupportedOperation, "a message move task is running for %q already (%s)", source, old.handle)
		}
	}
	if m.bySource == nil {
		m.bySource = map[string]*moveTask{}
	}
	m.bySource[source] = t
	ctx, cancel := context.WithCancel(context.Background())
	t.cancel = cancel
	go func() {
		defer cancel()
		if c.h.cfg.Closing != nil {
			defer context.AfterFunc(c.h.cfg.Closing, cancel)()
		}
		c.h.runMove(ctx, t, src)
	}()
	return struct{ TaskHandle string }{t.handle}, nil
}

// runMove is a task's work (see Message move tasks).
func (h *Handler) runMove(ctx context.Context, t *moveTask, src *queue.Queue) {
	batch := maxReceiveMessages
	if t.rate > 0 {
		batch = min(batch, t.rate)
	}
	for left := t.toMove; ; {
		if ctx.Err() != nil {
			t.end(taskCancelled, "")
			return
		}
		if left <= 0 {
			t.end(taskCompleted, "")
			return
		}
		msgs, err := src.Receive(ctx, queue.ReceiveOptions{Max: int(min(int64(batch), left)), Visibility: moveLease})
		if err != nil {
			if ctx.Err() != nil {
				t.end(taskCancelled, "")
			} else {
				t.end(taskFailed, err.Error())
			}
			return
		}
		if len(msgs) == 0 {
			t.end(taskCompleted, "")
			return
		}
		if failure := h.moveBatch(t, src, msgs); failure != "" {
			t.end(taskFailed, failure)
			return
		}
		left -= int64(len(msgs))
		if t.rate > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(time.Duration(len(msgs)) * time.Second / time.Duration(t.rate)):
			}
		}
	}
}

// moveBatch moves one received batch: enqueued in each message's
// destination, then acked in the source. On a failure what was not moved
// is returned to the source at once, and the failure said.
func (h *Handler) moveBatch(t *moveTask, src *queue.Queue, msgs []queue.Message) (failure string) {
	byDest := map[string][]queue.Message{}
	var order []string
	for _, m := range msgs {
		dest := t.dest
		if dest == "" && m.Origin != nil {
			dest = m.Origin.Queue
		}
		if byDest[dest] == nil {
			order = append(order, dest)
		}
		byDest[dest] = append(byDest[dest], m)
	}
	for i, dest := range order {
		group := byDest[dest]
		err := h.moveTo(t, dest, src, group)
		if err == nil {
			continue
		}
		var back []queue.Receipt
		for _, d := range order[i:] {
			for _, m := range byDest[d] {
				back = append(back, m.Receipt)
			}
		}
		if _, nerr := src.Nack(back, queue.NackOptions{Front: true}); nerr != nil {
			h.cfg.Logger.Warn("sqs: a move task could not return its batch (ready again when the lease ends)", "queue", src.Name(), "err", nerr)
		}
		return err.Error()
	}
	return ""
}

// moveTo enqueues msgs in the queue dest and acks them in src.
func (h *Handler) moveTo(t *moveTask, dest string, src *queue.Queue, msgs []queue.Message) error {
	switch dest {
	case "":
		return errors.New("a message has no source queue to return to (it was not moved there by a redrive policy): give a DestinationArn")
	case src.Name():
		return errors.New("a message's source queue is the queue it is in: give a DestinationArn")
	}
	q, err := h.cfg.Broker.Queue(dest)
	if err != nil {
		return err
	}
	copies := make([]queue.NewMessage, len(msgs))
	receipts := make([]queue.Receipt, len(msgs))
	for i, m := range msgs {
		copies[i] = queue.NewMessage{Body: m.Body, Attributes: m.Attributes, VisibilityTimeout: m.VisibilityTimeout, Delay: ptr(time.Duration(0))}
		if m.Priority != queue.DefaultPriority {
			copies[i].Priority = ptr(m.Priority)
		}
		if q.Ordered() {
			copies[i].Group = m.Group // a FIFO destination keeps the groups
		}
		receipts[i] = m.Receipt
	}
	if _, err := q.Enqueue(copies); err != nil {
		return err
	}
	if _, err := src.Ack(receipts); err != nil {
		// Moved, and still in the source until its lease ends: a
		// duplicate, never a loss.
		h.cfg.Logger.Warn("sqs: a move task moved a batch it could not ack in the source", "queue", src.Name(), "err", err)
	}
	t.moved.Add(int64(len(msgs)))
	return nil
}

// task returns the latest task of source, or nil.
func (m *moveTasks) task(source string) *moveTask {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bySource[source]
}

type moveTaskEntry struct {
	TaskHandle                        string `json:",omitempty" xml:",omitempty"`
	Status                            string
	SourceArn                         string
	DestinationArn                    string `json:",omitempty" xml:",omitempty"`
	MaxNumberOfMessagesPerSecond      int    `json:",omitempty" xml:",omitempty"`
	ApproximateNumberOfMessagesMoved  int64
	ApproximateNumberOfMessagesToMove int64
	FailureReason                     string `json:",omitempty" xml:",omitempty"`
	StartedTimestamp                  int64
}

func (c *call) listMessageMoveTasks() (any, error) {
	var in struct {
		SourceArn  string
		MaxResults *number
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.SourceArn == "" {
		return nil, fail(codeMissingParameter, "the request must contain the parameter SourceArn")
	}
	source, err := queueOfARN("SourceArn", in.SourceArn)
	if err != nil {
		return nil, err
	}
	if _, err := c.h.cfg.Broker.Queue(source); err != nil {
		if errors.Is(err, queue.ErrQueueNotFound) {
			return nil, fail(codeResourceNotFound, "the source queue %q does not exist", source)
		}
		return nil, err
	}
	if n := in.MaxResults.or(1); n < 1 || n > 10 {
		return nil, fail(codeInvalidParameterValue, "MaxResults %d must be from 1 to 10", n)
	}
	res := struct {
		Results []moveTaskEntry `xml:"ListMessageMoveTasksResultEntry"`
	}{Results: []moveTaskEntry{}}
	if t := c.h.moves.task(source); t != nil {
		status, failure := t.state()
		e := moveTaskEntry{
			Status: status, SourceArn: c.h.arn(t.source), MaxNumberOfMessagesPerSecond: t.rate,
			ApproximateNumberOfMessagesMoved: t.moved.Load(), ApproximateNumberOfMessagesToMove: t.toMove,
			FailureReason: failure, StartedTimestamp: t.started.UnixMilli(),
		}
		if t.dest != "" {
			e.DestinationArn = c.h.arn(t.dest)
		}
		if status == taskRunning {
			e.TaskHandle = t.handle // SQS gives the handle of a running task only
		}
		res.Results = append(res.Results, e)
	}
	return res, nil
}

func (c *call) cancelMessageMoveTask() (any, error) {
	var in struct{ TaskHandle string }
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.TaskHandle == "" {
		return nil, fail(codeMissingParameter, "the request must contain the parameter TaskHandle")
	}
	source, _, _ := strings.Cut(in.TaskHandle, ":")
	t := c.h.moves.task(source)
	if t == nil || t.handle != in.TaskHandle {
		return nil, fail(codeResourceNotFound, "no message move task has the handle %q", in.TaskHandle)
	}
	t.mu.Lock()
	if t.status != taskRunning {
		t.mu.Unlock()
		return nil, fail(codeInvalidParameterValue, "the message move task %q is %s, not running", in.TaskHandle, t.status)
	}
	t.status = taskCancelling
	t.mu.Unlock()
	t.cancel()
	return struct{ ApproximateNumberOfMessagesMoved int64 }{t.moved.Load()}, nil
}
