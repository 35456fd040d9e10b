package api_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
)

// HTTP/1.1 streams run on connections taken from net/http, so the
// server writes their framing itself: these tests read it byte for byte
// as a client that is not Go's would.

// rawConn is a TCP connection to e's server, every read and write under
// a deadline.
func rawConn(t *testing.T, e *streamEnv) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("tcp", e.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn, bufio.NewReader(conn)
}

// readHead reads a response's status line and headers.
func readHead(t *testing.T, br *bufio.Reader) (status string, h http.Header) {
	t.Helper()
	h = http.Header{}
	for i := 0; ; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the response head: %v", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if i == 0 {
			status = line
			continue
		}
		if line == "" {
			return status, h
		}
		k, v, _ := strings.Cut(line, ":")
		h.Add(k, strings.TrimSpace(v))
	}
}

// TestStreamHTTP1Framing: a chunked request that expects 100-continue (as
// curl sends a body of unknown length) gets the 100, a chunked ndjson
// 200 that closes the connection, its commands answered in chunks, and
// the last chunk once its body ends.
func TestStreamHTTP1Framing(t *testing.T) {
	e := newStreamEnv(t, "http1")
	e.enqueue(t, 1)
	conn, br := rawConn(t, e)
	io.WriteString(conn, "POST /v1/queues/q/stream?credit=1 HTTP/1.1\r\nHost: x\r\n"+
		"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nContent-Type: application/x-ndjson\r\n\r\n")
	if status, _ := readHead(t, br); status != "HTTP/1.1 100 Continue" {
		t.Fatalf("first reply %q, want the 100 Continue the client waits for", status)
	}
	status, h := readHead(t, br)
	if status != "HTTP/1.1 200 OK" || h.Get("Content-Type") != "application/x-ndjson" ||
		h.Get("Transfer-Encoding") != "chunked" || h.Get("Connection") != "close" || h.Get("Date") == "" {
		t.Fatalf("response head %q %v", status, h)
	}
	lines := bufio.NewReader(httputil.NewChunkedReader(br))
	line := func() string {
		t.Helper()
		s, err := lines.ReadString('\n')
		if err != nil {
			t.Fatalf("reading a line: %q, %v", s, err)
		}
		return strings.TrimSuffix(s, "\n")
	}
	if got := line(); !strings.Contains(got, `"receipt":"1.1"`) {
		t.Fatalf("first line %s", got)
	}
	cmd := `{"ack":"1.1"}` + "\n"
	cw := httputil.NewChunkedWriter(conn)
	io.WriteString(cw, cmd)
	if got := line(); got != `{"ok":"1.1"}` {
		t.Fatalf("ack answered %s", got)
	}
	if c := e.counts(t); c.Ready+c.Leased != 0 {
		t.Fatalf("after the ack: %+v", c)
	}
	cw.Close()                   // the last chunk: the body ends,
	io.WriteString(conn, "\r\n") // with no trailers
	if rest, err := io.ReadAll(lines); err != nil || len(rest) != 0 {
		t.Fatalf("after the body ended: %q, %v; want the response's last chunk", rest, err)
	}
	if rest, err := io.ReadAll(br); err != nil || string(rest) != "\r\n" {
		t.Fatalf("after the last chunk: %q, %v; want the end of its (empty) trailers, then the connection closed", rest, err)
	}
}

// TestStreamHTTP1WholeBody: a body sent whole with a Content-Length, over
// HTTP/1.1 and from an HTTP/1.0 client (whose response cannot be chunked
// and ends with the connection), is run and answered, then the stream
// ends.
func TestStreamHTTP1WholeBody(t *testing.T) {
	for _, tc := range []struct{ proto, status, te string }{
		{"HTTP/1.1", "HTTP/1.1 200 OK", "chunked"},
		{"HTTP/1.0", "HTTP/1.0 200 OK", ""},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			e := newStreamEnv(t, "http1")
			e.enqueue(t, 1)
			conn, br := rawConn(t, e)
			body := `{"nack":"x"}` + "\n" + `{"ack":"7.1"}` + "\n"
			io.WriteString(conn, "POST /v1/queues/q/stream?credit=0 "+tc.proto+"\r\nHost: x\r\nContent-Length: "+
				strconv.Itoa(len(body))+"\r\n\r\n"+body)
			status, h := readHead(t, br)
			if status != tc.status || h.Get("Transfer-Encoding") != tc.te {
				t.Fatalf("response head %q %v", status, h)
			}
			var r io.Reader = br
			if tc.te != "" {
				r = httputil.NewChunkedReader(br)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("reading the stream: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(string(got), "\n"), "\n")
			if len(lines) != 2 || !strings.Contains(lines[0], `"code":"invalid_request"`) ||
				!strings.Contains(lines[1], `{"receipt":"7.1","error":{"code":"message_not_found"`) {
				t.Fatalf("stream said %q, want the two commands answered", got)
			}
			if c := e.counts(t); c.Ready != 1 || c.Leased != 0 {
				t.Fatalf("credit 0 delivered: %+v", c)
			}
		})
	}
}

// TestStreamHTTP1ShutdownReturnsLeases: Server.Shutdown ends the HTTP/1.1
// streams, whose connections http.Server no longer tracks, and EndStreams
// returns only once their leases are back in the queue.
func TestStreamHTTP1ShutdownReturnsLeases(t *testing.T) {
	e := newStreamEnv(t, "http1")
	e.enqueue(t, 2)
	s, err := e.c.Queue("q").Stream(context.Background(), api.StreamOptions{Credit: 2, Visibility: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	next(t, s)
	next(t, s)
	if c := e.counts(t); c.Leased != 2 {
		t.Fatalf("with the stream open: %+v", c)
	}
	e.srv.Shutdown()
	if !e.srv.EndStreams(5 * time.Second) {
		t.Fatal("EndStreams: the stream still runs")
	}
	if c := e.counts(t); c.Leased != 0 || c.Ready != 2 {
		t.Fatalf("once EndStreams returned: %+v, want both leases ready again", c)
	}
	select {
	case _, ok := <-s.Messages():
		if ok {
			t.Fatal("a message after shutdown")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end with the shutdown")
	}
}
