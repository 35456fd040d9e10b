package api_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// streamEnv is a broker with queue "q" behind an HTTP server speaking one
// protocol: HTTP/1.1 in the clear or over TLS, h2c (HTTP/2 with prior
// knowledge) or h2 over TLS.
type streamEnv struct {
	b   *queue.Broker
	q   *queue.Queue
	c   *api.Client
	hc  *http.Client
	ts  *httptest.Server
	srv *api.Server
}

var streamProtocols = []string{"http1", "http1-tls", "h2c", "h2-tls"}

func newStreamEnv(t *testing.T, proto string) *streamEnv {
	t.Helper()
	b, err := queue.Open(t.TempDir(), queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	q, _, err := b.Create("q", queue.ConfigUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(b, api.Config{Logger: slog.New(slog.DiscardHandler)}, nil)
	// Runs before b.Close: the HTTP/1.1 streams end and return their
	// leases while the queue is open.
	t.Cleanup(func() {
		srv.Shutdown()
		if !srv.EndStreams(5 * time.Second) {
			t.Error("EndStreams: streams still running")
		}
	})
	ts := httptest.NewUnstartedServer(srv.Handler())
	var hc *http.Client
	switch proto {
	case "http1":
		ts.Start()
		hc = &http.Client{Transport: &http.Transport{}}
	case "h2c":
		ts.Config.Protocols = new(http.Protocols)
		ts.Config.Protocols.SetHTTP1(true)
		ts.Config.Protocols.SetUnencryptedHTTP2(true)
		ts.Start()
		tr := &http.Transport{Protocols: new(http.Protocols)}
		tr.Protocols.SetUnencryptedHTTP2(true)
		hc = &http.Client{Transport: tr}
	case "http1-tls":
		ts.StartTLS()
		hc = ts.Client()
	case "h2-tls":
		ts.EnableHTTP2 = true
		ts.StartTLS()
		hc = ts.Client()
	}
	t.Cleanup(ts.Close)
	t.Cleanup(hc.CloseIdleConnections)
	return &streamEnv{b: b, q: q, c: api.NewClient(ts.URL, "", hc), hc: hc, ts: ts, srv: srv}
}

func (e *streamEnv) enqueue(t *testing.T, n int) {
	t.Helper()
	msgs := make([]queue.NewMessage, n)
	for i := range msgs {
		msgs[i] = queue.NewMessage{Body: fmt.Appendf(nil, "m%d", i+1)}
	}
	if _, err := e.q.Enqueue(msgs); err != nil {
		t.Fatal(err)
	}
}

func (e *streamEnv) counts(t *testing.T) queue.Counts {
	t.Helper()
	info, err := e.q.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Counts
}

// next receives one message from s within a deadline.
func next(t *testing.T, s *api.Stream) api.Message {
	t.Helper()
	select {
	case m, ok := <-s.Messages():
		if !ok {
			t.Fatalf("stream ended: %v", s.Err())
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10s")
	}
	return api.Message{}
}

func TestStreamConsumesEveryMessageOnceAcrossConcurrentStreams(t *testing.T) {
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			const n, streams, creditN = 200, 3, 4
			e.enqueue(t, n)
			ctx := context.Background()
			var mu sync.Mutex
			seen := map[string]int{}
			all := make(chan struct{}) // closed once every message was seen
			var wg sync.WaitGroup
			for range streams {
				s, err := e.c.Queue("q").Stream(ctx, api.StreamOptions{Credit: creditN})
				if err != nil {
					t.Fatal(err)
				}
				wg.Go(func() {
					defer s.Close()
					// Hold up to credit messages unacked: the server must
					// send no more until one is acked.
					var held []api.Message
					for {
						if len(held) == creditN {
							select {
							case m := <-s.Messages():
								t.Errorf("a message (%s) beyond the credit of %d arrived", m.ID, creditN)
								return
							case <-time.After(20 * time.Millisecond): // absence check: no more may come
							}
							for _, m := range held {
								if err := s.Ack(ctx, m.Receipt); err != nil {
									t.Error(err)
									return
								}
							}
							held = held[:0]
						}
						select {
						case m := <-s.Messages():
							mu.Lock()
							seen[m.ID]++
							if seen[m.ID] == 1 && len(seen) == n {
								close(all)
							}
							mu.Unlock()
							held = append(held, m)
						case <-all:
							for _, m := range held {
								if err := s.Ack(ctx, m.Receipt); err != nil {
									t.Error(err)
								}
							}
							return
						case <-time.After(10 * time.Second):
							t.Error("no message for 10s before all were seen")
							return
						}
					}
				})
			}
			wg.Wait()
			if len(seen) != n {
				t.Fatalf("%d of %d messages received", len(seen), n)
			}
			for id, k := range seen {
				if k != 1 {
					t.Fatalf("message %s received %d times", id, k)
				}
			}
			if c := e.counts(t); c.Total != 0 {
				t.Fatalf("after every ack: %+v", c)
			}
		})
	}
}

func TestStreamCommandsAreAnsweredOnceDurable(t *testing.T) {
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			e.enqueue(t, 4)
			ctx := context.Background()
			s, err := e.c.Queue("q").Stream(ctx, api.StreamOptions{Credit: 4, Visibility: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ms := []api.Message{next(t, s), next(t, s), next(t, s), next(t, s)}
			if err := s.Extend(ctx, ms[0].Receipt, time.Hour); err != nil {
				t.Fatalf("extend: %v", err)
			}
			if err := s.Ack(ctx, ms[0].Receipt); err != nil {
				t.Fatalf("ack: %v", err)
			}
			if err := s.Ack(ctx, ms[0].Receipt); !errors.Is(err, queue.ErrStaleReceipt) {
				t.Fatalf("a second ack: %v, want stale", err)
			}
			if err := s.Fail(ctx, ms[1].Receipt); err != nil {
				t.Fatalf("fail: %v", err)
			}
			if err := s.Nack(ctx, ms[2].Receipt, api.NackOptions{Delay: time.Hour}); err != nil {
				t.Fatalf("nack with a delay: %v", err)
			}
			if err := s.Nack(ctx, ms[3].Receipt, api.NackOptions{Front: true}); err != nil {
				t.Fatalf("nack to the front: %v", err)
			}
			// Each outcome came after its change: the queue says so now.
			if c := e.counts(t); c.Dead != 1 || c.Delayed != 1 || c.Total != 3 {
				t.Fatalf("counts after the commands: %+v", c)
			}
			// The nacked message comes back on the stream (credit freed).
			if m := next(t, s); m.ID != ms[3].ID || m.Attempts != 2 {
				t.Fatalf("redelivered %s attempt %d, want %s attempt 2", m.ID, m.Attempts, ms[3].ID)
			}
		})
	}
}

func TestStreamEndReturnsItsLeasesAtOnce(t *testing.T) {
	for _, proto := range streamProtocols {
		t.Run(proto, func(t *testing.T) {
			e := newStreamEnv(t, proto)
			e.enqueue(t, 5)
			ctx := context.Background()
			s, err := e.c.Queue("q").Stream(ctx, api.StreamOptions{Credit: 3, Visibility: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			first := []api.Message{next(t, s), next(t, s), next(t, s)}
			if c := e.counts(t); c.Leased != 3 {
				t.Fatalf("with the stream open: %+v", c)
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for e.counts(t).Leased != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond) // polling a condition, with a deadline
			}
			if c := e.counts(t); c.Leased != 0 || c.Ready != 5 {
				t.Fatalf("after the stream ended: %+v, want its 3 leases ready again (visibility was an hour)", c)
			}
			// Back at the front, counted as a nack: the next receive gets them first.
			got, err := e.q.Receive(ctx, queue.ReceiveOptions{Max: 3})
			if err != nil || len(got) != 3 {
				t.Fatal(got, err)
			}
			for i, m := range got {
				if fmt.Sprint(m.ID) != first[i].ID && !slicesContainID(first, m.ID) {
					t.Fatalf("after the stream: received %d, want the stream's messages first", m.ID)
				}
			}
			if info, _ := e.q.Info(); info.Stats.Nacked != 3 {
				t.Fatalf("nacked %d, want 3", info.Stats.Nacked)
			}
		})
	}
}

func slicesContainID(ms []api.Message, id uint64) bool {
	for _, m := range ms {
		if m.ID == fmt.Sprint(id) {
			return true
		}
	}
	return false
}

// TestStreamRawProtocol drives a stream by hand, line by line over
// HTTP/1.1 full duplex: bad lines get an error line and the stream goes
// on; credit 0 pauses delivery.
func TestStreamRawProtocol(t *testing.T) {
	e := newStreamEnv(t, "http1")
	e.enqueue(t, 3)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/v1/queues/q/stream?credit=1", pr)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := bufio.NewScanner(resp.Body)
	read := func() string {
		t.Helper()
		if !lines.Scan() {
			t.Fatalf("the stream ended: %v", lines.Err())
		}
		return lines.Text()
	}
	send := func(s string) {
		t.Helper()
		if _, err := io.WriteString(pw, s); err != nil {
			t.Fatal(err)
		}
	}
	first := read()
	if !strings.Contains(first, `"receipt":"1.1"`) {
		t.Fatalf("first line %s", first)
	}
	for _, tc := range []struct{ send, want string }{
		{"not json\n", `"code":"invalid_request"`},
		{`{"ack":"1.1","fail":"1.1"}` + "\n", "exactly one of"},
		{`{"ack":"1.1","colour":"red"}` + "\n", "unknown field"},
		{`{"nack":"x"}` + "\n", "receipt"},
		{`{"credit":5000}` + "\n", "credit 5000"},
		{strings.Repeat("x", 5000) + "\n", `"code":"too_large"`},
		{`{"ack":"9.1"}` + "\n", `{"receipt":"9.1","error":{"code":"message_not_found"`},
	} {
		send(tc.send)
		if got := read(); !strings.Contains(got, tc.want) {
			t.Fatalf("after %.40q: got %s, want it to contain %s", tc.send, got, tc.want)
		}
	}
	send(`{"credit":0}` + "\n" + `{"ack":"1.1"}` + "\n")
	if got := read(); got != `{"ok":"1.1"}` {
		t.Fatalf("ack answered %s", got)
	}
	if c := e.counts(t); c.Leased != 0 || c.Ready != 2 {
		t.Fatalf("with credit 0 after the ack: %+v (nothing may be leased)", c)
	}
	send(`{"credit":1}` + "\n")
	if got := read(); !strings.Contains(got, `"receipt":"2.1"`) {
		t.Fatalf("after credit 1: %s", got)
	}
	pw.Close() // the end of the body ends the stream
	if lines.Scan() {
		t.Fatalf("a line after the body ended: %s", lines.Text())
	}
}

func TestStreamErrorsBeforeItStartsAreOrdinaryReplies(t *testing.T) {
	e := newStreamEnv(t, "http1")
	ctx := context.Background()
	if _, err := e.c.Queue("missing").Stream(ctx, api.StreamOptions{}); !errors.Is(err, queue.ErrQueueNotFound) {
		t.Fatalf("stream of a missing queue: %v", err)
	}
	pr, _ := io.Pipe() // a body that never ends: the reply must not wait for it
	req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/v1/queues/q/stream?credit=-1", pr)
	resp, err := e.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("credit=-1: status %d", resp.StatusCode)
	}
}

func TestStreamOnASubscription(t *testing.T) {
	e := newStreamEnv(t, "h2c")
	tp, _, err := e.b.CreateTopic("t", queue.TopicUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tp.CreateSubscription("s", queue.SubscriptionUpdate{}, queue.Earliest()); err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Publish([]queue.NewMessage{{Body: []byte("a")}, {Body: []byte("b")}}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	s, err := e.c.Subscription("t", "s").Stream(ctx, api.StreamOptions{Credit: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, want := range []string{"a", "b"} {
		m := next(t, s)
		if m.Body == nil || *m.Body != want {
			t.Fatalf("got %v, want %q", m.Body, want)
		}
		if err := s.Ack(ctx, m.Receipt); err != nil {
			t.Fatal(err)
		}
	}
	sub, _ := tp.Subscription("s")
	if info, _ := sub.Info(); info.Lag != 0 || info.Stats.Acked != 2 {
		t.Fatalf("after acking both on the stream: %+v", info)
	}
	// A message published while the stream is open arrives on it.
	if _, err := tp.Publish([]queue.NewMessage{{Body: []byte("c")}}); err != nil {
		t.Fatal(err)
	}
	if m := next(t, s); m.Body == nil || *m.Body != "c" {
		t.Fatalf("published while open: got %v", m.Body)
	}
}

// TestStreamCreditFreesAsLeasesRunOut: a client that answers nothing gets
// credit messages, then, once their leases have run out, the same again
// (they are back in the queue, not out on the stream).
func TestStreamCreditFreesAsLeasesRunOut(t *testing.T) {
	e := newStreamEnv(t, "http1")
	e.enqueue(t, 1)
	ctx := context.Background()
	s, err := e.c.Queue("q").Stream(ctx, api.StreamOptions{Credit: 1, Visibility: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	first := next(t, s)
	again := next(t, s) // only once the first lease has run out
	if again.ID != first.ID || again.Attempts != 2 {
		t.Fatalf("after the lease ran out: %s attempt %d, want %s attempt 2", again.ID, again.Attempts, first.ID)
	}
	if err := s.Ack(ctx, first.Receipt); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Fatalf("ack of the lease that ran out: %v, want stale", err)
	}
	// An extend keeps its message out: nothing more arrives meanwhile.
	if err := s.Extend(ctx, again.Receipt, time.Hour); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-s.Messages():
		t.Fatalf("%s arrived while the extended lease held the credit", m.ID)
	case <-time.After(600 * time.Millisecond): // past the old lease end: absence check
	}
	if err := s.Ack(ctx, again.Receipt); err != nil {
		t.Fatal(err)
	}
}
