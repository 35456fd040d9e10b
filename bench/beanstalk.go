package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"time"
)

// The beanstalkd-protocol scenarios, and the connection they share with
// redis-lpush: both protocols are one command, one reply over TCP, with
// "\r\n"-ended reply lines, and each worker keeps one command in flight on
// a connection of its own, as a queue client library does.

// lineConn is one connection to a beanstalkd- or redis-protocol server.
// One goroutine uses it at a time (its worker, or a prefill sender); only
// the phase watcher of bound touches it beside that one.
type lineConn struct {
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer

	// ctx is the phase whose deadline is set on nc (see bound).
	mu  sync.Mutex
	ctx context.Context
}

// lineBuffer is each side's buffer: a reply line or a command of the
// default 100-byte bodies fits many times over.
const lineBuffer = 64 << 10

func dialLine(ctx context.Context, addr string) (*lineConn, error) {
	d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &lineConn{nc: nc, r: bufio.NewReaderSize(nc, lineBuffer), w: bufio.NewWriterSize(nc, lineBuffer)}, nil
}

func (c *lineConn) close() { c.nc.Close() }

// bound ties the connection to ctx, the phase (or prefill) it now works
// for: ctx's deadline (the phase's end plus its grace) becomes the
// connection's, so a server that stops answering holds a worker no longer
// than an HTTP request would, and when ctx ends (cancelled, or 50 errors
// in a row) a read or write waiting on the server fails at once. Setting
// it once per phase, not per command, keeps context machinery out of the
// measured loop; the lock keeps the end of one phase from reaching the
// connection once the next phase has it.
func (c *lineConn) bound(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == ctx {
		return
	}
	c.ctx = ctx
	d, _ := ctx.Deadline() // zero (none) for a prefill
	c.nc.SetDeadline(d)
	context.AfterFunc(ctx, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.ctx == ctx {
			c.nc.SetDeadline(time.Unix(1, 0))
		}
	})
}

// roundTrip sends cmd and returns the reply's first line, without its
// "\r\n", valid until the next read.
func (c *lineConn) roundTrip(ctx context.Context, cmd []byte) ([]byte, error) {
	c.bound(ctx)
	if _, err := c.w.Write(cmd); err != nil {
		return nil, err
	}
	if err := c.w.Flush(); err != nil {
		return nil, err
	}
	return c.line()
}

// line reads one reply line.
func (c *lineConn) line() ([]byte, error) {
	l, err := c.r.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("a reply line over %d KiB", lineBuffer>>10)
	case err != nil:
		return nil, err
	case len(l) < 2 || l[len(l)-2] != '\r':
		return nil, fmt.Errorf("a reply line not ended by \\r\\n: %q", clip(l))
	}
	return l[:len(l)-2], nil
}

// skipBody reads past a job body of n bytes and its "\r\n".
func (c *lineConn) skipBody(n int) error {
	if _, err := c.r.Discard(n); err != nil {
		return err
	}
	end, err := c.r.Peek(2)
	if err != nil {
		return err
	}
	if string(end) != "\r\n" {
		return fmt.Errorf("a job body not followed by \\r\\n but %q", end)
	}
	_, err = c.r.Discard(2)
	return err
}

func clip(b []byte) []byte { return b[:min(len(b), 200)] }

// unexpectedReply is a reply the scenario does not take for success: an
// error counted in Report.Errors, with the reply for the first one's text.
func unexpectedReply(cmd string, reply []byte) error {
	return fmt.Errorf("%s: unexpected reply %q", cmd, clip(reply))
}

// exchange is one operation of a line scenario over its worker's
// connection; dry reports an empty tube.
type exchange func(ctx context.Context, c *lineConn, p *phase) (dry bool, err error)

// lineOp is the worker of index i of a line scenario: its connection is
// s.lines[i], dialled and readied by hello (nil: nothing to say first) on
// first use and again after any failed operation (which may leave replies
// unread, so the connection is dropped), and otherwise kept from the
// warm-up to the window, like the HTTP client's keep-alive connections.
// Dialling and hello are outside the timing and the request count.
func (s *scenario) lineOp(i int, hello func(context.Context, *lineConn) error, f exchange) op {
	return func(ctx context.Context, _ *conn, p *phase) (bool, error) {
		c := s.lines[i]
		if c == nil {
			var err error
			if c, err = dialLine(ctx, s.wire); err != nil {
				return false, err
			}
			if hello != nil {
				if err := hello(ctx, c); err != nil {
					c.close()
					return false, err
				}
			}
			s.lines[i] = c
		}
		dry, err := f(ctx, c, p)
		if err != nil {
			c.close()
			s.lines[i] = nil
		}
		return dry, err
	}
}

// close closes the workers' connections (at the end of the run).
func (s *scenario) close() {
	for i, c := range s.lines {
		if c != nil {
			c.close()
			s.lines[i] = nil
		}
	}
}

// pushOp sends the scenario's one command (put, LPUSH) and wants a reply
// line starting with ok; the latency sample is that round trip, and each
// success counts one message.
func (s *scenario) pushOp(rec bool, name, ok string) exchange {
	return func(ctx context.Context, c *lineConn, p *phase) (bool, error) {
		t0 := time.Now()
		reply, err := c.roundTrip(ctx, s.cmd)
		p.reqs.Add(1)
		if err != nil {
			return false, fmt.Errorf("%s: %w", name, err)
		}
		if !bytes.HasPrefix(reply, []byte(ok)) {
			return false, unexpectedReply(name, reply)
		}
		now := time.Now()
		p.done(now, 1, now.Sub(t0), rec)
		return false, nil
	}
}

// The bench's jobs: beanstalkd clients' usual priority and TTR, no delay.
const (
	putPriority = 1024
	putTTR      = 60 // seconds
)

// putCommand is the put of one job with body.
func putCommand(body []byte) []byte {
	b := fmt.Appendf(nil, "put %d 0 %d %d\r\n", putPriority, putTTR, len(body))
	b = append(b, body...)
	return append(b, "\r\n"...)
}

// reserveTimeout is reserve-with-timeout's wait: a prefilled tube always
// has a job ready, so TIMED_OUT means it ran dry; short, so workers stop
// soon after.
const reserveTimeout = time.Second

var reserveCommand = fmt.Appendf(nil, "reserve-with-timeout %d\r\n", int(reserveTimeout/time.Second))

// useTube makes tube the connection's for put (and the server makes it if
// it has none, as for any client).
func useTube(ctx context.Context, c *lineConn, tube string) error {
	reply, err := c.roundTrip(ctx, []byte("use "+tube+"\r\n"))
	if err != nil {
		return fmt.Errorf("use %s: %w", tube, err)
	}
	if string(reply) != "USING "+tube {
		return unexpectedReply("use "+tube, reply)
	}
	return nil
}

func (s *scenario) useTube(ctx context.Context, c *lineConn) error {
	return useTube(ctx, c, s.cfg.Queue)
}

// watchTube makes the connection reserve from the bench's tube only.
func (s *scenario) watchTube(ctx context.Context, c *lineConn) error {
	tube := s.cfg.Queue
	cmds := []string{"watch " + tube}
	if tube != "default" {
		cmds = append(cmds, "ignore default")
	}
	for _, cmd := range cmds {
		reply, err := c.roundTrip(ctx, []byte(cmd+"\r\n"))
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		if !bytes.HasPrefix(reply, []byte("WATCHING ")) {
			return unexpectedReply(cmd, reply)
		}
	}
	return nil
}

// reserveDeleteOp: reserve-with-timeout, read the job, delete it. One
// latency sample from the reserve's send to DELETED; one message per
// deleted job. TIMED_OUT is the tube running dry.
func (s *scenario) reserveDeleteOp(rec bool) exchange {
	var del []byte
	return func(ctx context.Context, c *lineConn, p *phase) (bool, error) {
		t0 := time.Now()
		reply, err := c.roundTrip(ctx, reserveCommand)
		p.reqs.Add(1)
		if err != nil {
			return false, fmt.Errorf("reserve-with-timeout: %w", err)
		}
		if string(reply) == "TIMED_OUT" {
			return true, nil
		}
		id, size, ok := parseReserved(reply)
		if !ok {
			return false, unexpectedReply("reserve-with-timeout", reply)
		}
		if size != len(s.body) {
			return false, fmt.Errorf("reserve-with-timeout: job %s has %d bytes, not the bench's %d: the tube holds jobs of another run", id, size, len(s.body))
		}
		// id points into the read buffer: copy it out before the body.
		del = append(append(append(del[:0], "delete "...), id...), "\r\n"...)
		if err := c.skipBody(size); err != nil {
			return false, fmt.Errorf("reserve-with-timeout: reading the job: %w", err)
		}
		reply, err = c.roundTrip(ctx, del)
		p.reqs.Add(1)
		if err != nil {
			return false, fmt.Errorf("delete: %w", err)
		}
		if string(reply) != "DELETED" {
			return false, unexpectedReply("delete", reply)
		}
		now := time.Now()
		p.done(now, 1, now.Sub(t0), rec)
		return false, nil
	}
}

// parseReserved reads "RESERVED <id> <bytes>".
func parseReserved(reply []byte) (id []byte, size int, ok bool) {
	rest, ok := bytes.CutPrefix(reply, []byte("RESERVED "))
	if !ok {
		return nil, 0, false
	}
	id, n, ok := bytes.Cut(rest, []byte{' '})
	if !ok {
		return nil, 0, false
	}
	if _, err := strconv.ParseUint(string(id), 10, 64); err != nil {
		return nil, 0, false
	}
	size, err := strconv.Atoi(string(n))
	return id, size, err == nil && size >= 0
}

// fillTube puts n jobs of the scenario's body into the bench's tube of the
// beanstalkd-protocol server at addr, outside any window: from
// Concurrency connections at once (spool answers each connection's puts
// in turn, each after its group commit, so its prefill is as fast as the
// connections are many), each sending prefillBatch puts in one write and
// then reading their replies.
func (s *scenario) fillTube(ctx context.Context, n int64, show func(int64)) error {
	k := min(int64(prefillBatch/10), n)
	return fillParallel(ctx, s.cfg.Concurrency, n, k, 0, show, func() (func(int64) error, func(), error) {
		c, err := dialLine(ctx, s.wire)
		if err != nil {
			return nil, nil, err
		}
		if err := s.useTube(ctx, c); err != nil {
			c.close()
			return nil, nil, err
		}
		send := func(kk int64) error {
			c.bound(ctx)
			for range kk {
				if _, err := c.w.Write(s.cmd); err != nil {
					return err
				}
			}
			if err := c.w.Flush(); err != nil {
				return err
			}
			for range kk {
				reply, err := c.line()
				if err != nil {
					return fmt.Errorf("put: %w", err)
				}
				if !bytes.HasPrefix(reply, []byte("INSERTED ")) {
					return unexpectedReply("put", reply)
				}
			}
			return nil
		}
		return send, c.close, nil
	})
}
