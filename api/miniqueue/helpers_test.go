package miniqueue

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
	"github.com/spoolq/spool/queue/queuetest"
)

// protocols are the ways a miniqueue client reaches the handler.
var protocols = []string{"http1", "h2c", "h2-tls"}

// waitFor bounds every wait for something that should happen: a failing
// test fails at it instead of hanging.
const waitFor = 10 * time.Second

type env struct {
	b      *queue.Broker
	clock  *queuetest.Clock
	url    string
	hc     *http.Client
	proto  string
	active atomic.Int64 // requests in the handler
}

type envOptions struct {
	cfg  Config
	opts queue.Options
	fake bool // a fake clock (env.clock) instead of the wall clock
}

func newEnv(t testing.TB, proto string, o envOptions) *env {
	t.Helper()
	e := &env{proto: proto}
	o.opts.MaintenanceInterval = -1
	o.opts.Logger = slog.New(slog.DiscardHandler)
	if o.fake {
		e.clock = queuetest.NewClock(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		o.opts.Now = e.clock.Now
	}
	b, err := queue.Open(t.TempDir(), o.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.b = b
	t.Cleanup(func() { b.Close() })
	o.cfg.Broker = b
	o.cfg.Logger = slog.New(slog.DiscardHandler)
	h := NewHandler(o.cfg)
	counted := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.active.Add(1)
		defer e.active.Add(-1)
		h.ServeHTTP(w, r)
	})
	ts := httptest.NewUnstartedServer(counted)
	switch proto {
	case "http1":
		ts.Config.Protocols = new(http.Protocols)
		ts.Config.Protocols.SetHTTP1(true)
		ts.Start()
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetHTTP1(true)
		e.hc = &http.Client{Transport: tr}
	case "h2c":
		ts.Config.Protocols = new(http.Protocols)
		ts.Config.Protocols.SetHTTP1(true)
		ts.Config.Protocols.SetUnencryptedHTTP2(true)
		ts.Start()
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		e.hc = &http.Client{Transport: tr}
	case "h2-tls":
		ts.EnableHTTP2 = true
		ts.StartTLS()
		e.hc = ts.Client()
	default:
		t.Fatalf("protocol %q", proto)
	}
	e.url = ts.URL
	t.Cleanup(ts.Close)
	t.Cleanup(e.hc.CloseIdleConnections)
	return e
}

// wantProto checks that a response came over the env's protocol.
func (e *env) wantProto(t testing.TB, res *http.Response) {
	t.Helper()
	if want := map[string]int{"http1": 1, "h2c": 2, "h2-tls": 2}[e.proto]; res.ProtoMajor != want {
		t.Fatalf("response over %s, want HTTP/%d", res.Proto, want)
	}
}

// publish is miniqueue's publish, as its examples call it: the body is
// the message, 201 is success.
func (e *env) publish(t testing.TB, topic, msg string) {
	t.Helper()
	res, err := e.hc.Post(e.url+"/publish/"+topic, "application/json", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusCreated || len(body) != 0 {
		t.Fatalf("publish %q to %s: %d %q, want 201 and no body", msg, topic, res.StatusCode, body)
	}
}

func (e *env) queue(t testing.TB, name string) *queue.Queue {
	t.Helper()
	q, err := e.b.Queue(name)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func (e *env) counts(t testing.TB, name string) queue.Counts {
	t.Helper()
	info, err := e.queue(t, name).Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Counts
}

// idle waits until no request is in the handler: every stream has ended.
func (e *env) idle(t testing.TB) {
	t.Helper()
	eventually(t, "every stream ends", func() bool { return e.active.Load() == 0 })
}

// eventually polls cond until it holds, failing the test at waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: not yet: %s", waitFor, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// reply is a payload of the subscribe stream, decoded as miniqueue's
// example clients decode it.
type reply struct {
	Msg       string `json:"msg"`
	Error     string `json:"error"`
	DackCount int    `json:"dackCount"`
}

func (r reply) body(t testing.TB) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(r.Msg)
	if err != nil {
		t.Fatalf("msg %q: %v", r.Msg, err)
	}
	return string(b)
}

// subscriber is a miniqueue client written after the README and the
// examples (bench_consume, workers): the body is a pipe of JSON-encoded
// commands, "INIT" written from a goroutine while the request starts, the
// response decoded with a json.Decoder.
type subscriber struct {
	res     *http.Response
	pw      *io.PipeWriter
	enc     *json.Encoder
	replies chan reply // closed when the response ends
	raw     *bytes.Buffer
	errc    chan error // the response's end: nil at a clean EOF
}

func (e *env) subscribe(t testing.TB, topic string) *subscriber {
	t.Helper()
	s := e.open(t, topic, `"INIT"`+"\n")
	return s
}

// open starts a subscribe stream whose body begins with first (raw bytes).
func (e *env) open(t testing.TB, topic, first string) *subscriber {
	t.Helper()
	pr, pw := io.Pipe()
	s := &subscriber{pw: pw, enc: json.NewEncoder(pw), replies: make(chan reply, 100), errc: make(chan error, 1)}
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(pw, first)
		wrote <- err
	}()
	res, err := e.hc.Post(e.url+"/subscribe/"+topic, "application/json", pr)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		t.Fatalf("subscribe %s: %d %s", topic, res.StatusCode, b)
	}
	e.wantProto(t, res)
	if first != "" {
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	s.res = res
	t.Cleanup(s.abort)
	go func() {
		defer close(s.replies)
		dec := json.NewDecoder(res.Body)
		for {
			var r reply
			if err := dec.Decode(&r); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				s.errc <- err
				return
			}
			s.replies <- r
		}
	}()
	return s
}

// send writes one command as the examples do: enc.Encode(cmd).
func (s *subscriber) send(t testing.TB, cmd string) {
	t.Helper()
	if err := s.enc.Encode(cmd); err != nil {
		t.Fatalf("send %q: %v", cmd, err)
	}
}

// sendRaw writes bytes as they are.
func (s *subscriber) sendRaw(t testing.TB, b string) {
	t.Helper()
	if _, err := io.WriteString(s.pw, b); err != nil {
		t.Fatalf("send %q: %v", b, err)
	}
}

// next waits for the next payload.
func (s *subscriber) next(t testing.TB) reply {
	t.Helper()
	select {
	case r, ok := <-s.replies:
		if !ok {
			t.Fatalf("stream ended (%v), want a reply", <-s.errc)
		}
		return r
	case <-time.After(waitFor):
		t.Fatalf("no reply after %s", waitFor)
	}
	panic("unreachable")
}

// nextMsg waits for a message payload and returns its body.
func (s *subscriber) nextMsg(t testing.TB) (string, int) {
	t.Helper()
	r := s.next(t)
	if r.Error != "" {
		t.Fatalf("error payload %q, want a message", r.Error)
	}
	return r.body(t), r.DackCount
}

// wantMsg waits for a message and checks its body and dackCount.
func (s *subscriber) wantMsg(t testing.TB, body string, dackCount int) {
	t.Helper()
	got, n := s.nextMsg(t)
	if got != body || n != dackCount {
		t.Fatalf("got message %q dackCount %d, want %q dackCount %d", got, n, body, dackCount)
	}
}

// wantEnd waits for the server to end the stream.
func (s *subscriber) wantEnd(t testing.TB) {
	t.Helper()
	select {
	case r, ok := <-s.replies:
		if ok {
			t.Fatalf("got %+v, want the stream to end", r)
		}
	case <-time.After(waitFor):
		t.Fatalf("stream still open after %s", waitFor)
	}
}

// close ends the request body cleanly (EOF) and the response.
func (s *subscriber) close() {
	s.pw.Close()
	s.res.Body.Close()
}

// abort drops the stream without ending the body: the client went away.
func (s *subscriber) abort() {
	s.pw.CloseWithError(errors.New("client went away"))
	s.res.Body.Close()
}

func bodies(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("message %d", i)
	}
	return out
}
