package api

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// failingConn takes its first writes, then fails every one after.
type failingConn struct {
	net.Conn
	ok     int // writes to take
	writes []string
	closed bool
}

var errWireBroke = errors.New("wire broke")

func (c *failingConn) Write(p []byte) (int, error) {
	if len(c.writes) >= c.ok {
		return 0, errWireBroke
	}
	c.writes = append(c.writes, string(p))
	return len(p), nil
}

func (c *failingConn) Close() error                     { c.closed = true; return nil }
func (c *failingConn) SetWriteDeadline(time.Time) error { return nil }
func (c *failingConn) SetReadDeadline(time.Time) error  { return nil }

// TestHTTP1WireKeepsItsFirstError: once a write has failed, the response
// is broken: every later Write and Flush returns that error without
// writing, and the end writes no last chunk, which would read as a
// complete response to a client that got the earlier chunks.
func TestHTTP1WireKeepsItsFirstError(t *testing.T) {
	c := &failingConn{ok: 1}
	w := &http1Wire{conn: c, chunked: true}
	if _, err := w.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("two\n")); err != nil { // buffered: not sent yet
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, errWireBroke) {
		t.Fatalf("Flush over a broken conn = %v", err)
	}
	c.ok = 10 // the conn would take writes again; the response must not
	if _, err := w.Write([]byte("three\n")); !errors.Is(err, errWireBroke) {
		t.Fatalf("Write after a failed one = %v, want its error", err)
	}
	if err := w.Flush(); !errors.Is(err, errWireBroke) {
		t.Fatalf("Flush after a failed one = %v, want its error", err)
	}
	w.end()
	w.linger()
	if want := []string{"4\r\none\n\r\n"}; strings.Join(c.writes, "|") != strings.Join(want, "|") {
		t.Fatalf("wrote %q, want only %q", c.writes, want)
	}
	if !c.closed {
		t.Fatal("linger left the connection open")
	}
}

func TestExpectsContinue(t *testing.T) {
	for _, tc := range []struct {
		name   string
		proto  int // minor version
		length int64
		expect []string
		want   bool
	}{
		{"curl's upload of unknown length", 1, -1, []string{"100-continue"}, true},
		{"any case", 1, 10, []string{"100-Continue"}, true},
		{"a token in a list", 1, -1, []string{"foo, 100-continue"}, true},
		{"in a second header line", 1, -1, []string{"foo", "100-continue"}, true},
		{"no Expect", 1, -1, nil, false},
		{"not the token", 1, -1, []string{"100-continued"}, false},
		{"HTTP/1.0 never waits", 0, -1, []string{"100-continue"}, false},
		{"no body", 1, 0, []string{"100-continue"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{ProtoMajor: 1, ProtoMinor: tc.proto, ContentLength: tc.length, Header: http.Header{}}
			for _, v := range tc.expect {
				r.Header.Add("Expect", v)
			}
			if got := expectsContinue(r); got != tc.want {
				t.Fatalf("expectsContinue = %v, want %v", got, tc.want)
			}
		})
	}
}
