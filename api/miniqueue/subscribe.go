package miniqueue

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/spoolq/spool/queue"
)

var base64Std = base64.StdEncoding

func appendInt(dst []byte, n int) []byte { return strconv.AppendInt(dst, int64(n), 10) }

// The error payloads of a stream's commands; miniqueue's texts.
var (
	errAck  = errors.New("error ACKing message")
	errNack = errors.New("error NACKing message")
	errBack = errors.New("error BACKing message")
	errDack = errors.New("error DACKing message")
)

// pendingCommands bounds the commands read ahead of the one being
// handled. Commands apply in order, each to the message out when it is
// handled (a client may send "INIT" and "ACK" at once, as miniqueue's echo
// example does); reading ahead lets the stream see the body end while it
// waits for a message, and the bound keeps a client that sends faster
// than its commands are handled to TCP's flow control.
const pendingCommands = 16

// subscribe is POST /subscribe/:topic, the full-duplex stream (see the
// package doc, "Subscribe").
func (h *handler) subscribe(w http.ResponseWriter, r *http.Request) {
	q, err := h.topic(r.PathValue("topic"), true)
	if err != nil {
		h.fail(w, r, err, errNextValue)
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil && r.ProtoMajor == 1 {
		// Without it the HTTP/1 server may stop reading the body at the
		// first reply (HTTP/2 is always full duplex).
		h.fail(w, r, err, errStream)
		return
	}
	// A subscriber may hold a message, or wait for one, for hours: no
	// server-wide read or write timeout applies to the stream (each reply
	// has its own write deadline).
	stoppable := rc.SetReadDeadline(time.Time{}) == nil
	rc.SetWriteDeadline(time.Time{})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return // the client is gone already
	}
	ctx, cancel := context.WithCancel(r.Context())
	wait, endWait := context.WithCancel(ctx)
	s := &stream{
		h:         h,
		q:         q,
		w:         w,
		rc:        rc,
		log:       h.log.With("queue", q.Name()),
		ctx:       ctx,
		cancel:    cancel,
		wait:      wait,
		endWait:   endWait,
		stoppable: stoppable,
		items:     make(chan item, pendingCommands),
		stop:      make(chan struct{}),
		extend:    time.NewTimer(time.Hour),
	}
	s.extend.Stop()
	go s.read(r.Body)
	s.run()
}

// stream is one subscribe stream. Two goroutines: read decodes the body
// into items; run (the handler's) handles them in order and owns
// everything else.
type stream struct {
	h      *handler
	q      *queue.Queue
	w      http.ResponseWriter
	rc     *http.ResponseController
	log    *slog.Logger
	ctx    context.Context // done when the client is gone: no delivery then
	cancel context.CancelFunc
	// wait is done when ctx is, or the body has ended: a delivery then
	// takes a message that is ready, and waits for none.
	wait    context.Context
	endWait context.CancelFunc
	// stoppable: SetReadDeadline works, so run can end read's blocked
	// body read and wait for it.
	stoppable bool
	items     chan item     // read → run; closed when read returns
	stop      chan struct{} // closed by finish: read hands over nothing more

	held    bool          // a message is out on this stream
	receipt queue.Receipt // its lease
	extend  *time.Timer   // renews the lease while it is out
	out     []byte        // reply buffer, reused
	writeBy time.Time     // the write deadline last set (see reply)
}

// item is one thing read from the body, in order.
type item struct {
	cmd Command
	err error // a bad command: its payload
	end bool  // nothing follows: the body ended, broke, or cannot be decoded
}

// read decodes the body until it ends, handing each command to run.
func (s *stream) read(body io.Reader) {
	defer close(s.items)
	dec := NewDecoder(body, s.h.cfg.MaxCommandBytes)
	for {
		var it item
		text, err := dec.Next()
		switch {
		case err == nil:
			it.cmd, it.err = ParseCommand(text)
		case errors.Is(err, ErrCommandTooLong):
			it.err = err
		case err == io.EOF:
			// The client closed its side: what it sent still applies,
			// but nothing it may send could ACK a message it waits for.
			s.endWait()
			it.end = true
		case errors.Is(err, ErrSyntax):
			it.err, it.end = ErrSyntax, true
		default:
			// A broken body (reset stream, dropped connection, our own
			// read deadline): the client is gone, stop waiting now.
			s.cancel()
			it.end = true
		}
		select {
		case s.items <- it:
		case <-s.stop:
			return
		}
		if it.end {
			return
		}
	}
}

// run handles items until the stream ends, renewing the lease of the
// message out meanwhile.
func (s *stream) run() {
	defer s.finish()
	gone := s.ctx.Done()
	for {
		var it item
		select {
		case it = <-s.items:
		case <-s.extend.C:
			s.renew()
			continue
		case <-gone:
			// Read on to the end of what arrived (an ACK sent just
			// before the client left still counts), but not past it.
			gone = nil
			if !s.stopReading() {
				return
			}
			continue
		}
		if !s.handle(it) {
			return
		}
	}
}

// handle applies one item and says whether the stream goes on. Which
// errors end the stream follows miniqueue's subscribeHandler.
func (s *stream) handle(it item) bool {
	if it.err != nil {
		s.reply(appendError(s.out[:0], it.err))
		switch {
		case it.end, errors.Is(it.err, ErrDackArgs), errors.Is(it.err, ErrDackSeconds):
			return false
		}
		return true // unknown or over-long command: miniqueue goes on
	}
	if it.end {
		return false
	}
	if it.cmd.Verb == Init {
		if s.held {
			// miniqueue's consumer: one message out at a time.
			s.reply(appendError(s.out[:0], errNextValue))
			return true
		}
		return s.deliver()
	}
	payload := failure(it.cmd.Verb)
	if !s.held {
		s.reply(appendError(s.out[:0], payload))
		return false
	}
	if err := s.settle(it.cmd); err != nil {
		s.log.Warn("miniqueue: command failed", "command", it.cmd.Verb.String(), "receipt", s.receipt.String(), "err", err)
		s.reply(appendError(s.out[:0], payload))
		return false
	}
	return s.deliver()
}

// failure is the payload of a failed ACK, NACK, BACK or DACK.
func failure(v Verb) error {
	switch v {
	case Ack:
		return errAck
	case Nack:
		return errNack
	case Back:
		return errBack
	}
	return errDack
}

// settle applies an ACK, NACK, BACK or DACK to the message out; it
// returns once the change is written, its fsync under way (see the
// package doc, "Durability").
func (s *stream) settle(c Command) error {
	r := []queue.Receipt{s.receipt}
	var errs []error
	var err error
	switch c.Verb {
	case Ack:
		errs, err = s.q.AckSoon(r)
	case Nack:
		errs, err = s.q.NackSoon(r, queue.NackOptions{Front: true})
	case Back:
		errs, err = s.q.NackSoon(r, queue.NackOptions{})
	case Dack:
		errs, err = s.q.NackSoon(r, queue.NackOptions{Front: true, Delay: dackDelay(c.Seconds)})
	}
	if err != nil {
		return err // nothing done, or not known: the message stays ours, finish nacks it
	}
	s.held = false
	s.extend.Stop()
	return errs[0] // a stale receipt: the lease was lost, the message is not ours
}

// dackDelay is DACK n's delay: n seconds, none for n ≤ 0 (miniqueue
// returns a message whose time has passed at once), at most queue.MaxDelay.
func dackDelay(seconds int) time.Duration {
	if seconds <= 0 {
		return 0
	}
	return time.Duration(min(seconds, int(queue.MaxDelay/time.Second))) * time.Second
}

// deliver waits for the next message and sends it; it says whether the
// stream goes on.
func (s *stream) deliver() bool {
	for s.ctx.Err() == nil {
		// A receive whose wait is over still leases a message that is
		// ready (Receive looks before it parks).
		msgs, err := s.q.Receive(s.wait, queue.ReceiveOptions{Wait: queue.MaxWait, Visibility: s.h.cfg.Lease})
		if s.wait.Err() != nil && len(msgs) == 0 {
			break
		}
		if err != nil {
			s.log.Warn("miniqueue: receive failed", "err", err)
			s.reply(appendError(s.out[:0], errNextValue))
			return false
		}
		if len(msgs) == 0 {
			continue // the long poll ran out: wait again
		}
		m := msgs[0]
		s.held, s.receipt = true, m.Receipt
		s.extend.Reset(s.h.cfg.Lease / 3)
		s.reply(appendMsg(s.out[:0], m.Body, m.Attempts-1))
		return true
	}
	return true // gone, or the body ended: run reads on to its end
}

// renew extends the lease of the message out.
func (s *stream) renew() {
	if !s.held {
		return
	}
	errs, err := s.q.Extend([]queue.Receipt{s.receipt}, s.h.cfg.Lease)
	if err == nil {
		err = errs[0]
	}
	switch {
	case errors.Is(err, queue.ErrStaleReceipt), errors.Is(err, queue.ErrNotFound):
		// Expired while this stream was stalled, or the message was
		// purged: the client's next command gets the error.
		s.log.Warn("miniqueue: lease lost while the message was out", "receipt", s.receipt.String(), "err", err)
		return
	case err != nil:
		s.log.Warn("miniqueue: extending the lease failed; retrying", "receipt", s.receipt.String(), "err", err)
	}
	s.extend.Reset(s.h.cfg.Lease / 3)
}

// reply writes one payload and flushes it. A write that fails means the
// client is gone.
func (s *stream) reply(b []byte) {
	s.out = b
	// The deadline rolls on only once a tenth of WriteTimeout has gone
	// by, so a write gets 90-100% of it: over HTTP/2 each change is a
	// message to the connection's goroutine and a timer reset.
	if now := time.Now(); s.writeBy.Sub(now) < s.h.cfg.WriteTimeout-s.h.cfg.WriteTimeout/10 {
		s.writeBy = now.Add(s.h.cfg.WriteTimeout)
		s.rc.SetWriteDeadline(s.writeBy)
	}
	_, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil && s.ctx.Err() == nil {
		s.log.Debug("miniqueue: client gone", "err", err)
		s.cancel()
	}
}

// stopReading makes read's blocked body read return; false if the
// connection cannot do that.
func (s *stream) stopReading() bool {
	return s.stoppable && s.rc.SetReadDeadline(time.Now()) == nil
}

// finish ends the stream: the message out, if any, goes back to the front
// of the queue at once, and read is stopped and waited for.
func (s *stream) finish() {
	close(s.stop)
	s.extend.Stop()
	if s.held {
		if _, err := s.q.NackSoon([]queue.Receipt{s.receipt}, queue.NackOptions{Front: true}); err != nil {
			s.log.Warn("miniqueue: returning the message out failed; its lease will run out", "receipt", s.receipt.String(), "err", err)
		}
		s.held = false
	}
	if s.stopReading() {
		for range s.items {
		}
	}
	s.cancel()
}
