package api

// Connection limits of a Service (spool serve's --max-connections),
// fitted to the open-file limit, and a listener that refuses what is over
// it with 503.

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultMaxConnections is ServiceConfig.MaxConnections' default (and
// --max-connections'): far more than a queue on one small machine serves,
// few enough that every connection's buffers and goroutine fit a Pi's
// memory.
const DefaultMaxConnections = 1024

// fdReserve is how many file descriptors are kept free beyond the
// connections and the files the data directory held open at start, for
// what opens later: new segments and state-log files as queues grow, new
// queues, compaction's temporary files, the listener, directory fsyncs.
// Past a fixed 64 it grows with the data directory, whose files are what
// multiplies.
func fdReserve(inUse int) int { return 64 + inUse/4 }

// fitConnections checks that want connections fit the open-file limit
// beside the files already open and a reserve, so a flood of connections
// cannot starve the queues of file descriptors (a failed segment rotation
// costs far more than a refused connection). A value the user set that
// does not fit is a *ConnectionLimitError saying what to do; the default
// is lowered to fit (at least minConnections), with a warning, so `spool
// serve` starts on any machine, even one whose queues took every file
// descriptor.
func fitConnections(want int, explicit bool, queueFiles int, logger *slog.Logger) (int, error) {
	limit64, err := openFileLimit()
	if err != nil {
		logger.Warn("spool: cannot read the open-file limit; not checking --max-connections against it", "err", err)
		return want, nil
	}
	if limit64 > 1<<30 {
		return want, nil // unlimited, or beyond any connection count
	}
	limit := int(limit64)
	inUse := openFiles() + queueFiles // idle queues close their files; count what busy ones open
	reserve := fdReserve(inUse)
	fit := limit - inUse - reserve
	if want <= fit {
		return want, nil
	}
	if explicit {
		return 0, &ConnectionLimitError{Want: want, Limit: limit, FilesOpen: inUse, Reserve: reserve}
	}
	// With the default, serve anyway: the queues that opened answer, the
	// ones that did not are reported (queue.ErrQueueDamaged), and the log
	// says what to raise. A few connections are kept even with no room.
	fit = max(fit, minConnections)
	logger.Warn("spool: lowered --max-connections to fit the open-file limit; raise ulimit -n to allow more",
		"max_connections", fit, "default", want, "open_file_limit", limit, "files_open", inUse, "reserve", reserve, "ulimit_needed", want+inUse+reserve)
	return fit, nil
}

// ConnectionLimitError is Open's error when ServiceConfig.MaxConnections
// was asked for (ExplicitMaxConnections) and does not fit the open-file
// limit beside the files the data directory holds open and a reserve for
// the files it will open. Its message, written for the user of `spool
// serve` (who gets exit status 2), says what to raise or lower.
type ConnectionLimitError struct {
	Want      int // the connections asked for
	Limit     int // the open-file limit (RLIMIT_NOFILE)
	FilesOpen int // files open now plus the ones busy queues would open
	Reserve   int // files kept free for new segments, queues, compaction
}

// Error says what was asked, what limits it, and the ulimit -n (or
// LimitNOFILE=) that would fit it, or the cap that fits the limit as it is.
func (e *ConnectionLimitError) Error() string {
	need := e.Want + e.FilesOpen + e.Reserve
	lower := ""
	if fit := e.Limit - e.FilesOpen - e.Reserve; fit >= 1 {
		lower = fmt.Sprintf(", or lower --max-connections to %d", fit)
	}
	return fmt.Sprintf("--max-connections %d does not fit the open-file limit: ulimit -n is %d, and the data directory holds %d files open with %d more kept in reserve for new segments and queues; raise the limit to at least %d (ulimit -n %d, or LimitNOFILE=%d in a systemd unit)%s",
		e.Want, e.Limit, e.FilesOpen, e.Reserve, need, need, need, lower)
}

// minConnections is the fewest connections the default is lowered to.
const minConnections = 8

// openFiles counts this process's open file descriptors where the system
// lists them (Linux, and /dev/fd on the BSDs and macOS), else 0: then the
// reserve alone stands for the data directory's files.
func openFiles() int {
	for _, dir := range []string{"/proc/self/fd", "/dev/fd"} {
		if ents, err := os.ReadDir(dir); err == nil {
			return len(ents)
		}
	}
	return 0
}

// limitListener caps the connections open at once (golang.org/x/net's
// netutil.LimitListener does the like, but blocks in Accept at the cap,
// which leaves new clients hanging in the kernel's backlog with no word
// of why). Here a connection over the cap is accepted, told 503 and
// closed, so the client sees a clear, retryable refusal.
type limitListener struct {
	net.Listener
	slots    chan struct{} // one token per connection being served
	refusers chan struct{} // one token per goroutine answering a refused connection
	reply    []byte        // the whole 503 response, built once
	logger   *slog.Logger
	refused  atomic.Int64
	lastWarn atomic.Int64 // unix nanoseconds of the last "limit reached" warning
}

// Refusal bounds. A refused connection gets refuseTimeout to take the 503
// and hang up; at most maxRefusers such goroutines exist, so a flood
// cannot pile them up. Past that, a refused connection is answered
// straight from the accept loop and closed at once: the reply fits the
// socket's empty send buffer, so the write does not block, but closing
// over input the client sent may reset the connection before it reads the
// 503 (it still sees a refusal, not a hang).
const (
	refuseTimeout  = time.Second
	maxRefusers    = 16
	refuseWarnEach = 10 * time.Second
)

func newLimitListener(ln net.Listener, n int, logger *slog.Logger) *limitListener {
	body, _ := marshalJSON(ErrorReply{Error: ErrorBody{
		Code:    CodeUnavailable,
		Message: "the server is at its connection limit (--max-connections); retry in a second",
	}})
	body = append(body, '\n')
	reply := fmt.Appendf(nil, "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: %d\r\nRetry-After: 1\r\nConnection: close\r\n\r\n%s", len(body), body)
	return &limitListener{
		Listener: ln,
		slots:    make(chan struct{}, n),
		refusers: make(chan struct{}, maxRefusers),
		reply:    reply,
		logger:   logger,
	}
}

// Accept returns the next connection under the cap, answering every one
// over it on the way.
func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err // http.Server retries temporary errors (EMFILE) with a backoff
		}
		select {
		case l.slots <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.slots }}, nil
		default:
		}
		l.refuse(c)
	}
}

func (l *limitListener) refuse(c net.Conn) {
	n := l.refused.Add(1)
	if now, last := time.Now().UnixNano(), l.lastWarn.Load(); now-last >= int64(refuseWarnEach) && l.lastWarn.CompareAndSwap(last, now) {
		l.logger.Warn("spool: at the connection limit; refusing new connections with 503", "max_connections", cap(l.slots), "refused_total", n)
	}
	select {
	case l.refusers <- struct{}{}:
		go func() {
			defer func() { <-l.refusers }()
			l.answer(c, true)
		}()
	default:
		l.answer(c, false)
	}
}

// answer writes the 503 and closes c. With linger it first half-closes
// and reads what the client sends until it hangs up (or refuseTimeout):
// closing a socket with unread input makes the kernel send a reset, which
// can destroy the 503 before the client reads it.
func (l *limitListener) answer(c net.Conn, linger bool) {
	defer c.Close()
	timeout := refuseTimeout
	if !linger {
		timeout = 50 * time.Millisecond // the accept loop is waiting
	}
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(l.reply); err != nil || !linger {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}
}

// limitedConn gives its slot back when closed, once however often Close
// is called.
type limitedConn struct {
	net.Conn
	release func()
	once    sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite passes the half-close through: net/http uses it to avoid
// resetting a connection it closes with a request body unread.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
