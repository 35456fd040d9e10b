package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"sync"
	"time"
)

// streamWire is where a stream's response goes and its deadlines are
// set: net/http's response (HTTP/2, or a ResponseWriter that cannot be
// hijacked), or an HTTP/1.1 connection taken from net/http.
type streamWire interface {
	io.Writer
	Flush() error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// responseWire is a stream's net/http response.
type responseWire struct {
	http.ResponseWriter
	*http.ResponseController
}

// http1Wire is an HTTP/1.1 stream's connection once net/http has handed
// it over (Hijack). An idle stream served by net/http holds its
// connection's buffers (4 KiB to read, 4 KiB to write, 2 KiB of the
// response's), its request and a handler goroutine whose stack net/http's
// call chain has grown, for as long as it is open: about 29 KB a stream
// against 17 KB over HTTP/2. Taken over, it holds a 256-byte buffer for
// the chunked body and a chunk buffer only while it writes.
//
// The response is chunked (close-delimited for an HTTP/1.0 client) and
// says Connection: close: the connection ends with the stream. The access
// log's line for the request, written when the handler returns, times the
// stream's start, not its life.
type http1Wire struct {
	conn    net.Conn
	chunked bool
	chunk   *[]byte // the chunk being written, from chunkPool; nil between writes
	err     error   // the first write's error: the response is broken from there on
	// halfClosed says end closed the connection's write side, so linger
	// has the client's unread bytes to wait out.
	halfClosed bool
}

// A chunk's data starts after room for its size line, written when it is
// sent (16 hex digits and CRLF), so a chunk is one write; a chunk is sent
// once chunkFlushAt bytes are buffered, so a large delivery goes out as
// it is written, as net/http's buffered writer would.
const (
	chunkSizeRoom = 18
	chunkFlushAt  = 4 << 10
)

var chunkPool = sync.Pool{New: func() any {
	b := make([]byte, chunkSizeRoom, chunkSizeRoom+chunkFlushAt+2)
	return &b
}}

// hijackStream takes an HTTP/1.1 stream's connection from net/http,
// records it in streams (before anything can block on it, so closeAll
// reaches it) and writes the response's head; body is the request body, read
// from the connection. http.ErrNotSupported means w cannot hand its
// connection over; any other error, that the connection is gone (and out
// of streams again).
func hijackStream(w http.ResponseWriter, r *http.Request, streams *hijackedStreams) (wire *http1Wire, body io.Reader, err error) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, nil, err
	}
	streams.adopt(conn)
	// What net/http read past the request's head is the body's start;
	// copied out, so its 4 KiB reader can go.
	early := make([]byte, brw.Reader.Buffered())
	io.ReadFull(brw.Reader, early)
	src := io.MultiReader(bytes.NewReader(early), conn)
	wire = &http1Wire{conn: conn, chunked: r.ProtoAtLeast(1, 1)}
	switch {
	case len(r.TransferEncoding) > 0: // net/http accepts only "chunked"
		body = httputil.NewChunkedReader(bufio.NewReaderSize(src, 256))
	case r.ContentLength > 0:
		body = io.LimitReader(src, r.ContentLength)
	default:
		body = http.NoBody
	}

	var head bytes.Buffer
	if expectsContinue(r) {
		// net/http sends it on the body's first read, which is now ours;
		// a client waiting for it (curl does, for a body of unknown
		// length) would otherwise take the 200 as a refusal of its body.
		head.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
	}
	fmt.Fprintf(&head, "HTTP/1.%d 200 OK\r\n", min(r.ProtoMinor, 1)) // 1.0 or 1.1, as net/http answers
	h := w.Header()
	h.Set("Content-Type", "application/x-ndjson")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Connection", "close")
	if wire.chunked {
		h.Set("Transfer-Encoding", "chunked")
	}
	h.Write(&head)
	head.WriteString("\r\n")
	conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
	if _, err := conn.Write(head.Bytes()); err != nil {
		conn.Close()
		streams.drop(conn)
		return nil, nil, fmt.Errorf("stream: writing the response head: %w", err)
	}
	return wire, body, nil
}

// expectsContinue says whether the client waits for 100 Continue before
// it sends r's body, by net/http's rule: HTTP/1.1, a body, and the
// 100-continue token in Expect.
func expectsContinue(r *http.Request) bool {
	if !r.ProtoAtLeast(1, 1) || r.ContentLength == 0 {
		return false
	}
	for _, v := range r.Header.Values("Expect") {
		for token := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(token), "100-continue") {
				return true
			}
		}
	}
	return false
}

// Write adds p to the response, sending a chunk once chunkFlushAt bytes
// wait.
func (w *http1Wire) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if !w.chunked {
		n, err := w.conn.Write(p)
		w.err = err
		return n, err
	}
	if w.chunk == nil {
		w.chunk = chunkPool.Get().(*[]byte)
	}
	*w.chunk = append(*w.chunk, p...)
	if len(*w.chunk)-chunkSizeRoom >= chunkFlushAt {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

// Flush sends what Write buffered as one chunk.
func (w *http1Wire) Flush() error {
	if w.chunk == nil || w.err != nil {
		return w.err
	}
	b := *w.chunk
	defer w.putChunk()
	n := len(b) - chunkSizeRoom
	if n == 0 {
		return nil
	}
	size := strconv.AppendUint(make([]byte, 0, 16), uint64(n), 16)
	start := chunkSizeRoom - len(size) - 2
	copy(b[start:], size)
	copy(b[chunkSizeRoom-2:], "\r\n")
	b = append(b, "\r\n"...)
	*w.chunk = b
	_, w.err = w.conn.Write(b[start:])
	return w.err
}

// putChunk gives the chunk buffer back, unless one large write grew it.
func (w *http1Wire) putChunk() {
	if cap(*w.chunk) <= chunkSizeRoom+2*chunkFlushAt {
		*w.chunk = (*w.chunk)[:chunkSizeRoom]
		chunkPool.Put(w.chunk)
	}
	w.chunk = nil
}

func (w *http1Wire) SetReadDeadline(t time.Time) error  { return w.conn.SetReadDeadline(t) }
func (w *http1Wire) SetWriteDeadline(t time.Time) error { return w.conn.SetWriteDeadline(t) }

// end ends the response (the last chunk) and, so that the client's
// unread commands do not make closing reset the connection (and lose
// that last chunk), half-closes the connection.
func (w *http1Wire) end() {
	if w.chunked && w.Flush() == nil {
		w.conn.SetWriteDeadline(time.Now().Add(streamEndGrace))
		_, w.err = io.WriteString(w.conn, "0\r\n\r\n")
	}
	if cw, ok := w.conn.(interface{ CloseWrite() error }); ok && w.err == nil {
		w.halfClosed = cw.CloseWrite() == nil
	}
}

// linger, after end, reads and drops what the client still sends, until it
// closes its side (a client reads the response's end and hangs up) or for
// streamEndGrace, then closes the connection.
func (w *http1Wire) linger() {
	defer w.conn.Close()
	if w.halfClosed {
		w.conn.SetReadDeadline(time.Now().Add(streamEndGrace))
		io.Copy(io.Discard, io.LimitReader(w.conn, 64<<10))
	}
}

// hijackedStreams are the HTTP/1.1 streams running on connections taken
// from net/http, which http.Server neither waits for nor closes.
type hijackedStreams struct {
	running requestTracker
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	cut     bool // closeAll has run: a connection adopted later is closed at once
}

// begin counts a stream about to take its connection; end (with that
// connection, or nil if it never took it) counts it gone.
func (h *hijackedStreams) begin() { h.running.begin() }

func (h *hijackedStreams) end(c net.Conn) {
	if c != nil {
		h.drop(c)
	}
	h.running.end()
}

// drop forgets a connection adopt recorded.
func (h *hijackedStreams) drop(c net.Conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
}

// adopt records the connection a stream took.
func (h *hijackedStreams) adopt(c net.Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cut {
		c.Close()
		return
	}
	if h.conns == nil {
		h.conns = map[net.Conn]struct{}{}
	}
	h.conns[c] = struct{}{}
}

// closeAll closes every stream's connection, now and from now on.
// (Outside the lock: closing a TLS connection may write.)
func (h *hijackedStreams) closeAll() {
	h.mu.Lock()
	h.cut = true
	conns := make([]net.Conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
