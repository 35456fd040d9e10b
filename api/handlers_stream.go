package api

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/spoolq/spool/queue"
)

// POST .../stream: leases and their commands over one connection, NDJSON
// both ways (HTTP/1.1 full duplex, or HTTP/2).
//
// The response is a line per leased message (a Message, as receive
// gives) and a line per command's outcome (a StreamReply), once it is
// durable. Credit bounds the messages out: never more than credit leased
// on the stream, not yet acked, nacked or failed on it (an outcome that
// says the receipt is stale frees its place too), and not past the end of
// its lease (one extended on the stream ends with its new lease when the
// extend named a visibility or the stream has one, else it counts until
// answered). So a client that stops answering gets credit messages, then
// the same again as their leases run out.
//
// The request body is a StreamCommand a line. A line the server cannot use
// (not JSON, an unknown field, a bad receipt, over maxStreamLine bytes) is
// answered by a StreamReply with just an error, and the stream goes on. The
// stream ends when the body ends (the client closes its side) or the
// connection goes, or the server shuts down: delivery stops, the commands
// already sent are answered, and every lease still out returns to ready at
// the front, counted as a nack: at once, or in a shutdown once the last
// stream has ended (streamReturns). A stream asked for once Shutdown has
// run is refused with 503.
//
// Per stream: a goroutine reading commands (over HTTP/2 the handler's;
// over HTTP/1.1 one of the stream's own, the connection taken from
// net/http, see hijackStream); while commands wait, one applying them
// (streamCommands); while messages are ready and credit allows, one
// delivering (an idle stream waits on the consumer's NotifyReady
// instead); a buffer of a line each way, and a set of at most credit
// receipts.

// maxStreamLine bounds one command line of a stream's body.
const maxStreamLine = 4 << 10

// streamWriteTimeout is how long one write of a stream may block (a
// client that stops reading its responses), a rolling deadline: a stream
// lives as long as its client, unlike the server's WriteTimeout.
const streamWriteTimeout = time.Minute

// defaultCredit is a stream's credit when the request gives none.
const defaultCredit = 10

func (s *Server) stream(w http.ResponseWriter, r *http.Request, tg target) error {
	params := r.URL.Query()
	cr, err := queryInt(params, "credit", defaultCredit, 0, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	vis, err := queryDuration(params, "visibility", queue.MaxVisibility)
	if err != nil {
		return err
	}
	if s.closing.Err() != nil {
		// A client that reconnects while the server stops would lease
		// messages only to have them returned: each spends an attempt.
		return errShutdown
	}
	st := &streamState{
		srv: s, c: tg.consumer(), credit: cr, vis: vis,
		out: map[queue.Receipt]time.Time{}, room: make(chan struct{}, 1),
	}
	st.commands.init(st)
	if r.ProtoMajor == 1 {
		// Counted before the Hijack, which takes the connection off
		// http.Server's books: EndStreams, after http.Server.Shutdown,
		// then always finds the stream.
		s.hijacked.begin()
		wire, body, err := hijackStream(w, r, &s.hijacked)
		switch {
		case err == nil:
			// The connection is the stream's now: net/http's buffers and
			// request go once this handler returns, and the stream runs
			// on a goroutine of its own, ended by Shutdown at once.
			st.wire = wire
			go func() {
				st.serve(s.closing, body)
				wire.end()
				s.hijacked.end(wire.conn)
				wire.linger()
			}()
			return nil
		case !errors.Is(err, http.ErrNotSupported):
			s.hijacked.end(nil)
			return nil // the connection is gone
		}
		s.hijacked.end(nil)
		// A ResponseWriter that cannot hand its connection over (not
		// net/http's): full duplex if it can, else the stream still
		// serves a client that sends its whole body first.
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		st.wire = responseWire{w, rc}
	} else {
		st.wire = responseWire{w, http.NewResponseController(w)}
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	st.serve(r.Context(), r.Body)
	return nil
}

// serve runs the stream until its body ends, the connection goes or the
// server shuts down, then returns every lease still out.
func (st *streamState) serve(parent context.Context, body io.Reader) {
	// Counted live before the shutdown check below, so that a stream
	// ending in a shutdown holds its leases back while this one may
	// still deliver (see streamReturns).
	st.srv.streamReturns.begin()
	defer st.returnOutstanding()
	st.wire.SetReadDeadline(time.Time{}) // a consumer may send nothing for hours
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	defer context.AfterFunc(st.srv.closing, cancel)()
	st.end = cancel
	if err := st.flush(); err != nil {
		return // gone already
	}
	if ctx.Err() != nil || st.srv.closing.Err() != nil {
		return // Shutdown came first: lease nothing
	}
	// This goroutine reads the commands and runs them; when the stream
	// ends otherwise, ending cuts its wait for the next one short.
	defer context.AfterFunc(ctx, st.ending)()
	defer st.release()
	st.delivering.Add(1)
	go st.deliver(ctx)
	st.run(&lineReader{br: bufio.NewReaderSize(body, 256), maxCredit: st.srv.cfg.MaxBatch})
	cancel()
	st.stopDelivery()
}

// streamEndGrace is how long an ended stream's last writes (the answers
// to commands already read) may block: a client that stopped reading
// does not hold up the server's shutdown for a whole streamWriteTimeout.
const streamEndGrace = 2 * time.Second

// streamState is one stream's: its consumer, response, credit and the
// receipts out on it.
type streamState struct {
	srv *Server
	c   consumer
	vis time.Duration

	wmu  sync.Mutex // one writer of the response at a time
	wire streamWire
	buf  bytes.Buffer // one line, reused; under wmu

	// deadlineMu orders the changes to the write deadline: the rolling
	// one of each write, under wmu, and the end's (ending), which cannot
	// wait for wmu: a write may hold it, blocked on a client that stopped
	// reading.
	deadlineMu sync.Mutex
	endBy      time.Time // once the stream has ended, the latest write deadline
	writeBy    time.Time // until then, the rolling write deadline last set
	released   bool      // serve is returning: the wire is no longer the stream's

	end context.CancelFunc // ends the stream

	mu     sync.Mutex
	credit int
	out    map[queue.Receipt]time.Time // leased on this stream, not yet answered: when the lease ends (zero: unknown)
	room   chan struct{}               // signalled when credit frees up

	// delivering counts the runs of deliver under way or promised to
	// the consumer's NotifyReady; stopNotify withdraws the promise of an
	// idle stream; ended (set once the stream ends) makes no more.
	delivering sync.WaitGroup
	stopNotify func() bool
	ended      bool

	commands streamCommands
}

// lineReader reads a stream's commands: a line each, decoded. Its buffer
// is small (an idle stream holds it); a longer line is put together as it
// comes, up to maxStreamLine.
type lineReader struct {
	br        *bufio.Reader
	maxCredit int
	long      []byte
}

// next returns the next command, or a badLine op for a line the server
// cannot use; err is why the body ended (io.EOF) or broke.
func (lr *lineReader) next() (streamOp, error) {
	for {
		line, err := lr.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || lr.long != nil {
			lr.long = append(lr.long, line...)
			for errors.Is(err, bufio.ErrBufferFull) && len(lr.long) <= maxStreamLine {
				line, err = lr.br.ReadSlice('\n')
				lr.long = append(lr.long, line...)
			}
			if len(lr.long) > maxStreamLine {
				for errors.Is(err, bufio.ErrBufferFull) { // skip the rest of the line
					_, err = lr.br.ReadSlice('\n')
				}
				lr.long = nil
				return streamOp{kind: badLine, bad: replyError(errTooLarge, "a stream command line is at most 4 KiB")}, err
			}
			line, lr.long = lr.long, nil
		}
		if line = bytes.TrimSpace(line); len(line) > 0 {
			op, derr := decodeStreamCommand(line, lr.maxCredit)
			if derr != nil {
				op = streamOp{kind: badLine, bad: errorBody(derr)}
			}
			return op, err
		}
		if err != nil {
			return streamOp{kind: badLine}, err // the body ended with no command
		}
	}
}

// ready reports whether a whole line is buffered: next returns without
// waiting for the client.
func (lr *lineReader) ready() bool {
	buf, _ := lr.br.Peek(lr.br.Buffered())
	return bytes.IndexByte(buf, '\n') >= 0
}

// run reads the commands and hands them to st.commands, until the body
// ends; then it waits until the last is answered.
func (st *streamState) run(lr *lineReader) {
	for {
		op, err := lr.next()
		switch {
		case op.kind == credit:
			st.setCredit(op.credit) // not answered, so not in order with the rest
		case op.kind != badLine || op.bad != nil:
			st.commands.add(op)
		}
		if err != nil {
			st.commands.drain()
			return // the body ended (io.EOF) or broke: the stream ends
		}
	}
}

// maxQueuedCommands bounds the commands a stream has read and not yet
// applied: its reader waits past that, and the client's writes with it.
const maxQueuedCommands = 256

// streamCommands are the commands a stream has read and not yet applied.
// One goroutine at a time applies them, started when a command comes and
// gone once none wait (a busy stream's, not a message's). While a group
// waits for its fsync the reader reads on, and the commands that come
// meanwhile go together in the next group, sharing the next fsync: a
// reader that applied each group itself would find only the lines its
// 256-byte buffer holds, three acks or so, and each stream would fsync
// for that few.
type streamCommands struct {
	st       *streamState
	mu       sync.Mutex
	changed  sync.Cond  // queued was taken, or applying ended
	queued   []streamOp // read, in order, not yet applied
	spare    []streamOp // the last group's, for the next
	applying bool
}

func (sc *streamCommands) init(st *streamState) {
	sc.st = st
	sc.changed.L = &sc.mu
}

// add queues op, waiting while maxQueuedCommands wait already.
func (sc *streamCommands) add(op streamOp) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for len(sc.queued) >= maxQueuedCommands {
		sc.changed.Wait()
	}
	sc.queued = append(sc.queued, op)
	if !sc.applying {
		sc.applying = true
		go sc.applyQueued()
	}
}

// applyQueued applies what is queued until nothing is.
func (sc *streamCommands) applyQueued() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for len(sc.queued) > 0 {
		ops := sc.queued
		sc.queued, sc.spare = sc.spare[:0], nil
		sc.changed.Broadcast()
		sc.mu.Unlock()
		sc.st.applyInOrder(ops)
		clear(ops)
		sc.mu.Lock()
		sc.spare = ops[:0]
	}
	// A burst's buffers go with it: an idle stream holds none.
	sc.queued, sc.spare = nil, nil
	sc.applying = false
	sc.changed.Broadcast()
}

// drain waits until every command queued has been applied.
func (sc *streamCommands) drain() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for sc.applying {
		sc.changed.Wait()
	}
}

// applyInOrder applies ops, each run of like commands (the same kind and
// options) as one group, which shares one fsync, and answers a line the
// server could not use where it came.
func (st *streamState) applyInOrder(ops []streamOp) {
	for len(ops) > 0 {
		first, n := ops[0], 1
		if first.kind == badLine {
			st.writeReply(StreamReply{Error: first.bad})
		} else {
			for n < len(ops) && ops[n].kind == first.kind && ops[n].nack == first.nack && ops[n].visibility == first.visibility {
				n++
			}
			st.apply(ops[:n])
		}
		ops = ops[n:]
	}
}

// apply runs one group of like commands and answers each.
func (st *streamState) apply(group []streamOp) {
	receipts := make([]queue.Receipt, len(group))
	for i, op := range group {
		receipts[i] = op.receipt
	}
	var errs []error
	var err error
	switch group[0].kind {
	case ack:
		errs, err = st.c.Ack(receipts)
	case nack:
		errs, err = st.c.Nack(receipts, group[0].nack)
	case extend:
		vis := group[0].visibility
		if vis == 0 {
			vis = st.vis
		}
		errs, err = st.c.Extend(receipts, vis)
	case fail:
		errs, err = st.c.Fail(receipts)
	}
	if group[0].kind != extend {
		st.answered(receipts)
	} else {
		st.extended(group, errs, err)
	}
	st.wmu.Lock()
	defer st.wmu.Unlock()
	for i, op := range group {
		e := err
		if e == nil {
			e = errs[i]
		}
		if e == nil {
			st.lineLocked(StreamReply{OK: op.text})
		} else {
			st.lineLocked(StreamReply{Receipt: op.text, Error: errorBody(e)})
		}
	}
	st.flushLocked()
}

// deliver leases what credit allows and writes each message, until
// nothing is ready: then it asks the consumer to run it again when a
// message may be (NotifyReady) and returns, so that an idle stream holds
// no goroutine for its delivery. One run at a time: the handler starts
// the first, the consumer's wake each next one. It ends the stream when
// a write fails or the consumer does (deleted, shutting down).
func (st *streamState) deliver(ctx context.Context) {
	defer st.delivering.Done()
	for ctx.Err() == nil {
		n := st.waitRoom(ctx)
		// ReceiveEach leases what is ready whatever ctx says, and ctx
		// learns of a shutdown on another goroutine: a stream woken by
		// the leases another one returned as it ended would take them
		// again, spending an attempt each.
		if n == 0 || ctx.Err() != nil || st.srv.closing.Err() != nil {
			return
		}
		var werr error
		got, err := st.c.ReceiveEach(ctx, queue.ReceiveOptions{Max: n, Visibility: st.vis}, func(m queue.Message) error {
			// Every lease is recorded, written or not, so the end of the
			// stream returns it at once.
			st.mu.Lock()
			st.out[m.Receipt] = m.LeaseEnds
			st.mu.Unlock()
			if werr == nil {
				st.wmu.Lock()
				werr = st.lineLocked(messageJSON(m))
				st.wmu.Unlock()
			}
			return nil
		})
		if werr == nil && got > 0 {
			werr = st.flush()
		}
		if err == nil && werr == nil && got == 0 {
			err = st.idle(ctx)
			if err == nil {
				return
			}
		}
		if err != nil && ctx.Err() == nil {
			st.writeReply(StreamReply{Error: errorBody(err)})
		}
		if err != nil || werr != nil {
			st.end()
			return
		}
	}
}

// idle promises the consumer's next wake a run of deliver, unless the
// stream has ended. st.mu is held across NotifyReady, so stopDelivery
// always finds the newest promise.
func (st *streamState) idle(ctx context.Context) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ended {
		return nil
	}
	st.delivering.Add(1)
	stop, err := st.c.NotifyReady(func() { st.deliver(ctx) })
	if err != nil {
		st.delivering.Done()
		return err
	}
	st.stopNotify = stop
	return nil
}

// stopDelivery, once the stream has ended, withdraws an idle stream's
// promised run and waits for a run under way.
func (st *streamState) stopDelivery() {
	st.mu.Lock()
	st.ended = true
	stop := st.stopNotify
	st.stopNotify = nil
	st.mu.Unlock()
	if stop != nil && stop() {
		st.delivering.Done() // withdrawn: that run will never start
	}
	st.delivering.Wait()
}

// waitRoom returns how many more messages credit allows out, waiting
// until it is some (an answer, a credit raised, or a lease that ends);
// 0 when ctx ends.
func (st *streamState) waitRoom(ctx context.Context) int {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		n, next := st.room0()
		if n > 0 {
			return n
		}
		var expiry <-chan time.Time
		if !next.IsZero() {
			d := next.Sub(st.srv.cfg.Now())
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expiry = timer.C
		}
		select {
		case <-st.room:
		case <-expiry:
		case <-ctx.Done():
			return 0
		}
	}
}

// room0 drops the receipts whose leases have ended and returns the room
// credit leaves and, when there is none, the earliest lease end to wait
// for (zero if none is known).
func (st *streamState) room0() (int, time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	now := st.srv.cfg.Now()
	var next time.Time
	for r, end := range st.out {
		switch {
		case end.IsZero():
		case !end.After(now):
			delete(st.out, r) // back in the queue: not out on this stream
		case next.IsZero() || end.Before(next):
			next = end
		}
	}
	return st.credit - len(st.out), next
}

// extended moves the lease ends of receipts extended on the stream.
func (st *streamState) extended(group []streamOp, errs []error, err error) {
	vis := group[0].visibility
	if vis == 0 {
		vis = st.vis
	}
	end := time.Time{} // the queue's visibility: not known here
	if vis > 0 {
		end = st.srv.cfg.Now().Add(vis)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, op := range group {
		if _, out := st.out[op.receipt]; out && err == nil && errs[i] == nil {
			st.out[op.receipt] = end
		}
	}
}

func (st *streamState) setCredit(n int) {
	st.mu.Lock()
	st.credit = n
	st.mu.Unlock()
	st.signalRoom()
}

// answered takes receipts the client acked, nacked or failed (stale or
// not) off the stream's count.
func (st *streamState) answered(receipts []queue.Receipt) {
	st.mu.Lock()
	for _, r := range receipts {
		delete(st.out, r)
	}
	st.mu.Unlock()
	st.signalRoom()
}

func (st *streamState) signalRoom() {
	select {
	case st.room <- struct{}{}:
	default:
	}
}

// returnOutstanding returns every lease still out on the ended stream
// (streamReturns.end).
func (st *streamState) returnOutstanding() {
	st.mu.Lock()
	receipts := make([]queue.Receipt, 0, len(st.out))
	for r := range st.out {
		receipts = append(receipts, r)
	}
	clear(st.out)
	st.mu.Unlock()
	st.srv.streamReturns.end(st.srv, st.c, receipts)
}

// streamReturns returns the leases of ended streams: at once, or, once
// the server is shutting down, when the last live stream has ended. A
// stream that ends in a shutdown and returns its leases at once makes
// them ready for a stream still delivering (its shutdown check passed
// just before), which would lease them again, spending an attempt each;
// held back, they return once nothing can lease them.
type streamReturns struct {
	mu   sync.Mutex
	live int          // streams between serve's start and their leases' return
	held []heldLeases // the ended streams' leases, during a shutdown
	// running counts the same streams, for EndStreams to wait on; it
	// ends a stream only once its leases are back.
	running requestTracker
}

// heldLeases are one ended stream's leases.
type heldLeases struct {
	c        consumer
	receipts []queue.Receipt
}

func (r *streamReturns) begin() {
	r.running.begin()
	r.mu.Lock()
	r.live++
	r.mu.Unlock()
}

// end counts a stream gone and returns its leases as the type says.
func (r *streamReturns) end(s *Server, c consumer, receipts []queue.Receipt) {
	defer r.running.end()
	r.mu.Lock()
	r.live--
	var due []heldLeases
	switch {
	case s.closing.Err() == nil:
		due = []heldLeases{{c, receipts}}
	default:
		if len(receipts) > 0 {
			r.held = append(r.held, heldLeases{c, receipts})
		}
		if r.live == 0 {
			due, r.held = r.held, nil
		}
	}
	r.mu.Unlock()
	for _, h := range due {
		if len(h.receipts) == 0 {
			continue
		}
		// To the front, at once, counted as a nack.
		if _, err := h.c.Nack(h.receipts, queue.NackOptions{Front: true}); err != nil {
			s.cfg.Logger.Warn("api: an ended stream's leases could not be returned; they return when they run out", "leases", len(h.receipts), "err", err)
		}
	}
}

// lineLocked writes v as one line; the caller holds wmu.
func (st *streamState) lineLocked(v any) error {
	st.buf.Reset()
	if err := newEncoder(&st.buf).Encode(v); err != nil {
		return err
	}
	st.setWriteDeadline()
	_, err := st.wire.Write(st.buf.Bytes())
	return err
}

func (st *streamState) writeReply(r StreamReply) {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	if st.lineLocked(r) == nil {
		st.flushLocked()
	}
}

func (st *streamState) flush() error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	return st.flushLocked()
}

func (st *streamState) flushLocked() error {
	st.setWriteDeadline()
	return st.wire.Flush()
}

// setWriteDeadline gives the next write streamWriteTimeout, or what is
// left of streamEndGrace once the stream has ended. The rolling deadline
// moves on only once a tenth of streamWriteTimeout has gone by, so a
// write gets 90-100% of it: over HTTP/2 each change is a message to the
// connection's goroutine and a timer reset, and a stream writes a line
// a message.
func (st *streamState) setWriteDeadline() {
	st.deadlineMu.Lock()
	defer st.deadlineMu.Unlock()
	deadline := st.endBy
	if deadline.IsZero() {
		now := time.Now()
		if st.writeBy.Sub(now) >= streamWriteTimeout-streamWriteTimeout/10 {
			return
		}
		deadline = now.Add(streamWriteTimeout)
		st.writeBy = deadline
	}
	st.wire.SetWriteDeadline(deadline)
}

// ending, once the stream has ended, ends the wait for the next command
// (a read deadline in the past) and gives what is left to write (the
// answers to the commands already read) streamEndGrace.
func (st *streamState) ending() {
	st.deadlineMu.Lock()
	defer st.deadlineMu.Unlock()
	if st.released {
		return
	}
	st.wire.SetReadDeadline(time.Now())
	st.endBy = time.Now().Add(streamEndGrace)
	st.wire.SetWriteDeadline(st.endBy)
}

// release, as serve returns, stops ending from touching the wire: a
// response's goes back to net/http.
func (st *streamState) release() {
	st.deadlineMu.Lock()
	st.released = true
	st.deadlineMu.Unlock()
}

// errorBody is err as a reply's error object.
func errorBody(err error) *ErrorBody {
	status, code := statusOf(err)
	return &ErrorBody{Code: code, Message: publicMessage(status, code, err)}
}

// replyError is an error object for a problem of the API layer's own.
func replyError(kind error, message string) *ErrorBody {
	return errorBody(errors.Join(kind, errors.New(message)))
}
