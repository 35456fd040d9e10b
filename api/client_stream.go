package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// StreamOptions tune Consumer.Stream.
type StreamOptions struct {
	// Credit is how many messages the server may have out unacked on the
	// stream; 0 means the server's default (10). SetCredit changes it.
	Credit int
	// Visibility is each lease's length; 0 means the queue's.
	Visibility time.Duration
}

// Stream is an open POST .../stream: messages arrive on Messages, and
// Ack, Nack, Extend and Fail return once the server says the command is
// durable. Its methods are safe for concurrent use. Close it when done:
// the leases still out return to the queue's front at once.
type Stream struct {
	body   *io.PipeWriter
	resp   *http.Response
	cancel context.CancelFunc
	msgs   chan Message
	done   chan struct{} // closed when the response has ended

	cmds *commandWriter // the request body's writer

	mu      sync.Mutex
	waiting map[string][]chan error // receipt → commands awaiting their outcome, in order
	err     error                   // why the response ended, once done
	// pending are messages read and not yet taken from Messages: the
	// response reader never waits for the caller (an outcome the caller
	// waits for may come after a message), and the server's credit
	// bounds them. arrived wakes the pump that feeds Messages.
	pending []Message
	ended   bool // the response has ended: the pump closes Messages when pending is empty
	arrived chan struct{}
	closed  chan struct{} // Close was called: the pump stops
}

// maxStreamReplyLine bounds one line of a stream's response: a message of
// the server's largest body, base64, with its fields.
const maxStreamReplyLine = 8 << 20

// Stream opens a stream on the queue or subscription. An error the server
// gives before the stream starts (a missing queue, a bad option) is
// returned here, as the matching sentinel error.
func (cs *Consumer) Stream(ctx context.Context, o StreamOptions) (*Stream, error) {
	path, err := cs.path(RouteStream)
	if err != nil {
		return nil, err
	}
	q := url.Values{}
	if o.Credit > 0 {
		q.Set("credit", strconv.Itoa(o.Credit))
	}
	if o.Visibility > 0 {
		q.Set("visibility", o.Visibility.String())
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	// net/http's transport, when ctx ends before the response has come,
	// waits for its body writer, which waits on this pipe: ctx ends it.
	context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	resp, err := cs.c.do(ctx, http.MethodPost, path, q, pr, "application/x-ndjson")
	if err != nil {
		if ctx.Err() != nil { // not the pipe's end, which the transport may report first
			err = &url.Error{Op: "Post", URL: path, Err: ctx.Err()}
		}
		cancel()
		pw.Close()
		return nil, err
	}
	s := &Stream{body: pw, resp: resp, cancel: cancel, msgs: make(chan Message), done: make(chan struct{}),
		cmds: newCommandWriter(pw), waiting: map[string][]chan error{},
		arrived: make(chan struct{}, 1), closed: make(chan struct{})}
	go s.read()
	go s.pump()
	return s, nil
}

// pump feeds Messages from pending, in order; it closes Messages once the
// response has ended and every message was taken, or at Close.
func (s *Stream) pump() {
	defer close(s.msgs)
	for {
		s.mu.Lock()
		var m Message
		have := len(s.pending) > 0
		if have {
			m = s.pending[0]
			s.pending[0] = Message{}
			s.pending = s.pending[1:]
		}
		ended := s.ended
		s.mu.Unlock()
		switch {
		case have:
			select {
			case s.msgs <- m:
			case <-s.closed:
				return
			}
		case ended:
			return
		default:
			select {
			case <-s.arrived:
			case <-s.closed:
				return
			}
		}
	}
}

// Messages delivers the stream's messages; it is closed when the stream
// ends (Err says why). Read it: the server sends no more than the credit
// allows, and a reader that stops holds the stream up.
func (s *Stream) Messages() <-chan Message { return s.msgs }

// Ack acks receipt and returns once the ack is durable, or the server's
// error for it (errors.Is works against the queue package's sentinels).
func (s *Stream) Ack(ctx context.Context, receipt string) error {
	return s.command(ctx, receipt, StreamCommand{Ack: receipt})
}

// Nack returns receipt's message to the queue, as Client.Nack does.
func (s *Stream) Nack(ctx context.Context, receipt string, o NackOptions) error {
	c := StreamCommand{Nack: receipt}
	if o.Front {
		c.Position = "front"
	}
	if o.Delay > 0 {
		c.Delay = o.Delay.String()
	}
	return s.command(ctx, receipt, c)
}

// Extend moves receipt's lease deadline to now + visibility (the stream's
// visibility if 0).
func (s *Stream) Extend(ctx context.Context, receipt string, visibility time.Duration) error {
	c := StreamCommand{Extend: receipt}
	if visibility > 0 {
		c.Visibility = visibility.String()
	}
	return s.command(ctx, receipt, c)
}

// Fail sends receipt's message straight to dead.
func (s *Stream) Fail(ctx context.Context, receipt string) error {
	return s.command(ctx, receipt, StreamCommand{Fail: receipt})
}

// SetCredit changes how many messages may be out unacked; 0 pauses
// delivery. The server does not answer it.
func (s *Stream) SetCredit(n int) error {
	return s.send(StreamCommand{Credit: &n})
}

// Close ends the stream: the server stops delivering, answers the commands
// sent, and returns the leases still out to the queue's front. It waits
// for the response to end and returns why it ended if not by Close.
func (s *Stream) Close() error {
	s.body.Close()
	<-s.done
	s.cancel()
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return s.Err()
}

// Err returns why the stream ended (nil while it runs, or when it ended
// because Close ended it).
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Stream) send(c StreamCommand) error {
	line, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("spool: stream: %w", err)
	}
	if err := s.cmds.send(append(line, '\n')); err != nil {
		return fmt.Errorf("spool: stream: %w", err)
	}
	return nil
}

// command sends c and waits for the server's outcome for receipt.
func (s *Stream) command(ctx context.Context, receipt string, c StreamCommand) error {
	reply := make(chan error, 1)
	s.mu.Lock()
	if s.err != nil || isClosed(s.done) {
		err := s.err
		s.mu.Unlock()
		return fmt.Errorf("spool: stream ended: %w", err)
	}
	s.waiting[receipt] = append(s.waiting[receipt], reply)
	s.mu.Unlock()
	if err := s.send(c); err != nil {
		return err
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		select {
		case err := <-reply:
			return err
		default:
			return fmt.Errorf("spool: stream ended before the server answered %s: %w", receipt, s.Err())
		}
	}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// streamLine is any line of a stream's response: a message has an id.
type streamLine struct {
	Message
	OK    string     `json:"ok"`
	Error *ErrorBody `json:"error"`
}

// read dispatches the response's lines until it ends.
func (s *Stream) read() {
	defer close(s.done)
	defer closeBody(s.resp)
	sc := bufio.NewScanner(s.resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxStreamReplyLine)
	var err error
	for sc.Scan() {
		var l streamLine
		if err = json.Unmarshal(sc.Bytes(), &l); err != nil {
			err = fmt.Errorf("spool: stream: a line that is not JSON: %w", err)
			break
		}
		switch {
		case l.ID != "":
			s.mu.Lock()
			s.pending = append(s.pending, l.Message)
			s.mu.Unlock()
			s.wake()
		case l.OK != "":
			s.answer(l.OK, nil)
		case l.Receipt != "" && l.Error != nil:
			s.answer(l.Receipt, &Error{Status: statusOfCode(l.Error.Code), Code: l.Error.Code, Message: l.Error.Message})
		case l.Error != nil:
			// A line of ours the server could not use: this client sends
			// none, so it is a server's answer to something else (a
			// failed receive ends the stream after it).
			err = &Error{Status: statusOfCode(l.Error.Code), Code: l.Error.Code, Message: l.Error.Message}
		}
	}
	if err == nil {
		err = sc.Err()
	}
	s.mu.Lock()
	if err != nil && !errors.Is(err, context.Canceled) {
		s.err = err
	}
	for r, waiters := range s.waiting {
		for _, w := range waiters {
			w <- fmt.Errorf("spool: stream ended before the server answered %s", r)
		}
	}
	clear(s.waiting)
	s.ended = true
	s.mu.Unlock()
	s.wake()
}

func (s *Stream) wake() {
	select {
	case s.arrived <- struct{}{}:
	default:
	}
}

// answer hands the outcome for receipt to the oldest command waiting on it.
func (s *Stream) answer(receipt string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	waiters := s.waiting[receipt]
	if len(waiters) == 0 {
		return
	}
	waiters[0] <- err
	if len(waiters) == 1 {
		delete(s.waiting, receipt)
	} else {
		s.waiting[receipt] = waiters[1:]
	}
}
