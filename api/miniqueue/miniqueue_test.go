package miniqueue

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

func TestPublishAndConsume(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			t.Run("every message exactly once, in order, with ACK", func(t *testing.T) {
				e := newEnv(t, proto, envOptions{})
				msgs := bodies(100)
				for _, m := range msgs {
					e.publish(t, "jobs", m)
				}
				s := e.subscribe(t, "jobs")
				for i, want := range msgs {
					s.wantMsg(t, want, 0)
					if i < len(msgs)-1 {
						s.send(t, "ACK")
					}
				}
				// The last ACK: the stream then waits for more; the queue
				// holds nothing once it is durable.
				s.send(t, "ACK")
				eventually(t, "the queue is empty", func() bool { return e.counts(t, "jobs").Total == 0 })
				s.close()
				e.idle(t)
			})
			t.Run("a message published while the subscriber waits is delivered at once", func(t *testing.T) {
				e := newEnv(t, proto, envOptions{})
				s := e.subscribe(t, "late")
				e.publish(t, "late", "hello")
				s.wantMsg(t, "hello", 0)
			})
			t.Run("the echo example: INIT and ACK in one request body", func(t *testing.T) {
				// examples/echo: a bytes.Buffer body holding "INIT" and
				// "ACK", one payload decoded, the body closed.
				e := newEnv(t, proto, envOptions{})
				for _, m := range []string{"one", "two"} {
					e.publish(t, "echo", m)
					var buf bytes.Buffer
					enc := json.NewEncoder(&buf)
					enc.Encode("INIT")
					enc.Encode("ACK")
					res, err := e.hc.Post(e.url+"/subscribe/echo", "application/json", &buf)
					if err != nil {
						t.Fatal(err)
					}
					if res.StatusCode != http.StatusOK {
						t.Fatalf("status %d", res.StatusCode)
					}
					var r reply
					if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
						t.Fatal(err)
					}
					res.Body.Close()
					if got := r.body(t); got != m || r.Error != "" {
						t.Fatalf("consumed %q (error %q), want %q", got, r.Error, m)
					}
				}
				e.idle(t)
				if c := e.counts(t, "echo"); c.Total != 0 {
					t.Fatalf("counts %+v, want every message acked", c)
				}
			})
		})
	}
}

func TestPayloads(t *testing.T) {
	t.Run("a message is base64 with dackCount omitted at zero, newline-terminated", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		e.publish(t, "raw", "test")
		// Not e.open: its reader would race this one for the bytes. The
		// body stays open, as a subscriber's does.
		pr, pw := io.Pipe()
		t.Cleanup(func() { pw.Close() })
		go io.WriteString(pw, `"INIT"`)
		res, err := e.hc.Post(e.url+"/subscribe/raw", "application/json", pr)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		line := make([]byte, 64)
		n, err := io.ReadAtLeast(res.Body, line, len(`{"msg":"dGVzdA=="}`+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(line[:n]); got != `{"msg":"dGVzdA=="}`+"\n" {
			t.Fatalf("payload %q", got)
		}
	})
	t.Run("an empty message is {} as miniqueue encodes it", func(t *testing.T) {
		if got := string(appendMsg(nil, nil, 0)); got != "{}\n" {
			t.Fatalf("got %q", got)
		}
		if got := string(appendMsg(nil, []byte{0xff}, 3)); got != `{"msg":"/w==","dackCount":3}`+"\n" {
			t.Fatalf("got %q", got)
		}
	})
	t.Run("binary bodies arrive byte for byte", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		body := string([]byte{0, 1, 0xff, '\n', '"'})
		e.publish(t, "bin", body)
		e.subscribe(t, "bin").wantMsg(t, body, 0)
	})
}

func TestNackBackDack(t *testing.T) {
	t.Run("NACK returns the message to the front", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		for _, m := range []string{"a", "b", "c"} {
			e.publish(t, "q", m)
		}
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "NACK")
		s.wantMsg(t, "a", 1)
		s.send(t, "ACK")
		s.wantMsg(t, "b", 0)
	})
	t.Run("BACK returns the message to the back", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		for _, m := range []string{"a", "b", "c"} {
			e.publish(t, "q", m)
		}
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "BACK")
		s.wantMsg(t, "b", 0)
		e.publish(t, "q", "d") // published after the BACK: after a
		s.send(t, "ACK")
		s.wantMsg(t, "c", 0)
		s.send(t, "ACK")
		s.wantMsg(t, "a", 1)
		s.send(t, "ACK")
		s.wantMsg(t, "d", 0)
	})
	t.Run("DACK n delays by n seconds, then the message goes first", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{fake: true})
		for _, m := range []string{"a", "b", "c"} {
			e.publish(t, "q", m)
		}
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "DACK 10")
		s.wantMsg(t, "b", 0) // a is delayed; b is out now
		if c := e.counts(t, "q"); c.Delayed != 1 || c.Leased != 1 || c.Ready != 1 {
			t.Fatalf("after DACK 10: %+v, want a delayed, b leased, c ready", c)
		}
		e.clock.Advance(10*time.Second - time.Millisecond)
		e.b.Maintain()
		if c := e.counts(t, "q"); c.Delayed != 1 {
			t.Fatalf("a millisecond before the delay ends: %+v, want a still delayed", c)
		}
		e.clock.Advance(time.Millisecond)
		e.b.Maintain()
		if c := e.counts(t, "q"); c.Delayed != 0 || c.Ready != 2 {
			t.Fatalf("at the delay's end: %+v, want a ready", c)
		}
		s.send(t, "ACK")
		s.wantMsg(t, "a", 1) // ahead of c: to the front
		s.send(t, "DACK 1")
		s.wantMsg(t, "c", 0)
		e.clock.Advance(time.Second)
		s.send(t, "ACK")
		s.wantMsg(t, "a", 2)
		s.send(t, "ACK")
		eventually(t, "the queue is empty", func() bool { return e.counts(t, "q").Total == 0 })
	})
	t.Run("DACK with zero or negative seconds returns the message to the front at once", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{fake: true})
		e.publish(t, "q", "a")
		e.publish(t, "q", "b")
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "DACK 0")
		s.wantMsg(t, "a", 1)
		s.send(t, "DACK -5")
		s.wantMsg(t, "a", 2)
	})
	t.Run("DACK past the longest delay waits queue.MaxDelay", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{fake: true})
		e.publish(t, "q", "a")
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "DACK 999999999999")
		eventually(t, "a is delayed", func() bool { return e.counts(t, "q").Delayed == 1 })
		e.clock.Advance(queue.MaxDelay - time.Second)
		e.b.Maintain()
		if c := e.counts(t, "q"); c.Delayed != 1 {
			t.Fatalf("before MaxDelay: %+v", c)
		}
		e.clock.Advance(time.Second)
		e.b.Maintain()
		s.wantMsg(t, "a", 1)
	})
	t.Run("dackCount counts every return, whatever gave the message back", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		e.publish(t, "q", "a")
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		s.send(t, "NACK")
		s.wantMsg(t, "a", 1)
		s.send(t, "BACK")
		s.wantMsg(t, "a", 2)
		s.abort()
		e.subscribe(t, "q").wantMsg(t, "a", 3)
	})
}

func TestDisconnect(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			for _, how := range []string{"drops the connection", "ends its body"} {
				t.Run("a client that "+how+" gives its message back at once", func(t *testing.T) {
					// A lease far longer than the test: only the
					// disconnect can give the message back.
					e := newEnv(t, proto, envOptions{cfg: Config{Lease: time.Hour}})
					e.publish(t, "q", "a")
					e.publish(t, "q", "b")
					first := e.subscribe(t, "q")
					first.wantMsg(t, "a", 0)
					second := e.subscribe(t, "q")
					second.wantMsg(t, "b", 0)
					if how == "drops the connection" {
						first.abort()
					} else {
						first.close()
					}
					second.send(t, "ACK")
					second.wantMsg(t, "a", 1)
					second.close()
					e.idle(t)
					if c := e.counts(t, "q"); c.Leased != 0 || c.Ready != 1 {
						t.Fatalf("counts %+v: a is back, ready", c)
					}
				})
			}
			t.Run("a client that leaves while waiting leases nothing", func(t *testing.T) {
				e := newEnv(t, proto, envOptions{})
				s := e.subscribe(t, "q")
				eventually(t, "the stream is open", func() bool { return e.active.Load() == 1 })
				s.abort()
				e.idle(t)
				e.publish(t, "q", "a")
				if c := e.counts(t, "q"); c.Ready != 1 {
					t.Fatalf("counts %+v", c)
				}
			})
			t.Run("a body that ends gets a ready message for its last command, then it goes back", func(t *testing.T) {
				// As `curl -d '"INIT" "ACK"'`: the client half-closes and reads.
				e := newEnv(t, proto, envOptions{})
				e.publish(t, "q", "a")
				e.publish(t, "q", "b")
				s := e.open(t, "q", `"INIT" "ACK"`)
				s.pw.Close()
				s.wantMsg(t, "a", 0)
				s.wantMsg(t, "b", 0)
				s.wantEnd(t)
				e.idle(t)
				if c := e.counts(t, "q"); c.Ready != 1 || c.Total != 1 {
					t.Fatalf("counts %+v, want a acked and b ready again", c)
				}
			})
			t.Run("a body that ends does not wait for a message", func(t *testing.T) {
				e := newEnv(t, proto, envOptions{})
				s := e.subscribe(t, "q")
				s.pw.Close()
				s.wantEnd(t)
				e.idle(t)
			})
		})
	}
}

func TestSubscribersShareATopic(t *testing.T) {
	for _, proto := range protocols {
		t.Run(proto, func(t *testing.T) {
			e := newEnv(t, proto, envOptions{})
			const n, subs = 200, 4
			for _, m := range bodies(n) {
				e.publish(t, "shared", m)
			}
			var mu sync.Mutex
			seen := map[string]int{}
			var wg sync.WaitGroup
			for range subs {
				s := e.subscribe(t, "shared")
				wg.Go(func() {
					for {
						r, ok := <-s.replies
						if !ok {
							return
						}
						mu.Lock()
						seen[r.Msg]++
						done := len(seen) == n
						mu.Unlock()
						if done {
							return
						}
						if err := s.enc.Encode("ACK"); err != nil {
							return
						}
					}
				})
			}
			eventually(t, "every message is consumed", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(seen) == n
			})
			// Close every stream: the one message each may hold goes back;
			// nothing is delivered twice before that.
			mu.Lock()
			for m, c := range seen {
				if c != 1 {
					t.Errorf("message %s delivered %d times", m, c)
				}
			}
			mu.Unlock()
		})
	}
}

func TestBadCommands(t *testing.T) {
	long := `"` + strings.Repeat("x", DefaultMaxCommandBytes+1) + `"`
	cases := []struct {
		name    string
		send    string
		payload string
		ends    bool
	}{
		{"an unknown command gets an error and the stream goes on", `"HELLO"`, "unrecognised command received", false},
		{"a lower-case command is unknown", `"ack"`, "unrecognised command received", false},
		{"an empty command is unknown", `""`, "unrecognised command received", false},
		{"an over-long command gets an error and the stream goes on", long, "command too long", false},
		{"INIT with a message out gets an error and the stream goes on", `"INIT"`, "error getting next value for consumer", false},
		{"a JSON object ends the stream", `{"cmd":"ACK"}`, "error decoding command", true},
		{"a number ends the stream", `42`, "error decoding command", true},
		{"a bare word ends the stream", `ACK`, "error decoding command", true},
		{"DACK without seconds ends the stream", `"DACK"`, "too few arguments provided to DACK", true},
		{"DACK with bad seconds ends the stream", `"DACK soon"`, "invalid DACK duration argument at position [1]", true},
		{"DACK with two spaces ends the stream", `"DACK  5"`, "invalid DACK duration argument at position [1]", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "h2c", envOptions{cfg: Config{Lease: time.Hour}})
			e.publish(t, "q", "a")
			e.publish(t, "q", "b")
			s := e.subscribe(t, "q")
			s.wantMsg(t, "a", 0)
			s.sendRaw(t, tc.send+"\n")
			if r := s.next(t); r.Error != tc.payload || r.Msg != "" {
				t.Fatalf("reply %+v, want error %q", r, tc.payload)
			}
			if tc.ends {
				s.wantEnd(t)
				// Ending the stream gives a back, to the front.
				e.subscribe(t, "q").wantMsg(t, "a", 1)
				return
			}
			if c := e.counts(t, "q"); c.Leased != 1 || c.Ready != 1 {
				t.Fatalf("counts %+v: the command changed something", c)
			}
			s.send(t, "ACK") // a is still out on this stream
			s.wantMsg(t, "b", 0)
		})
	}
	t.Run("a command with nothing out ends the stream and changes nothing", func(t *testing.T) {
		for _, cmd := range []string{"ACK", "NACK", "BACK", "DACK 5"} {
			e := newEnv(t, "h2c", envOptions{})
			s := e.open(t, "q", "")
			s.send(t, cmd)
			want := map[string]string{"ACK": "error ACKing message", "NACK": "error NACKing message", "BACK": "error BACKing message", "DACK 5": "error DACKing message"}[cmd]
			if r := s.next(t); r.Error != want {
				t.Fatalf("%s: reply %+v, want error %q", cmd, r, want)
			}
			s.wantEnd(t)
		}
	})
	t.Run("commands back to back without separators are read one by one", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		for _, m := range []string{"a", "b", "c"} {
			e.publish(t, "q", m)
		}
		s := e.open(t, "q", `"INIT""ACK" "ACK ignored words"`)
		s.wantMsg(t, "a", 0)
		s.wantMsg(t, "b", 0)
		s.wantMsg(t, "c", 0)
	})
	t.Run("a huge garbage string is skipped without being kept", func(t *testing.T) {
		e := newEnv(t, "h2c", envOptions{})
		e.publish(t, "q", "a")
		s := e.subscribe(t, "q")
		s.wantMsg(t, "a", 0)
		go func() {
			io.WriteString(s.pw, `"`)
			chunk := strings.Repeat(`x\"`, 1<<14)
			for range 64 { // 3 MiB in one string
				io.WriteString(s.pw, chunk)
			}
			io.WriteString(s.pw, `"`+"\n"+`"ACK"`+"\n")
		}()
		if r := s.next(t); r.Error != "command too long" {
			t.Fatalf("reply %+v", r)
		}
		eventually(t, "the ACK after it applies", func() bool { return e.counts(t, "q").Total == 0 })
	})
}

func TestTopicNames(t *testing.T) {
	bad := []string{".hidden", "a%20b", "a%2Fb", strings.Repeat("x", 81), "%C3%A9t%C3%A9", "..", "-%00"}
	e := newEnv(t, "h2c", envOptions{})
	for _, name := range bad {
		for _, path := range []string{"/publish/", "/subscribe/"} {
			t.Run(path+name+" is refused and creates nothing", func(t *testing.T) {
				res, err := e.hc.Post(e.url+path+name, "application/json", strings.NewReader(`"INIT"`))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				res.Body.Close()
				if res.StatusCode/100 != 4 {
					t.Fatalf("status %d, want 4xx", res.StatusCode)
				}
				if res.StatusCode == http.StatusBadRequest && string(body) != `{"error":"invalid topic value"}`+"\n" {
					t.Fatalf("body %q", body)
				}
			})
		}
	}
	if qs := e.b.List(); len(qs) != 0 {
		t.Fatalf("queues %v, want none", qs)
	}
	t.Run("a valid name makes a queue on first use, with miniqueue's unlimited retries", func(t *testing.T) {
		e.publish(t, "Orders_2026.v1-x", "a")
		q := e.queue(t, "Orders_2026.v1-x")
		if got := q.Config().MaxAttempts; got != queue.MaxMaxAttempts {
			t.Fatalf("max attempts %d", got)
		}
	})
	t.Run("an existing queue keeps its config", func(t *testing.T) {
		three := 3
		if _, _, err := e.b.Create("mine", queue.ConfigUpdate{MaxAttempts: &three}); err != nil {
			t.Fatal(err)
		}
		e.publish(t, "mine", "a")
		e.subscribe(t, "mine").wantMsg(t, "a", 0)
		if got := e.queue(t, "mine").Config().MaxAttempts; got != 3 {
			t.Fatalf("max attempts %d", got)
		}
	})
}

func TestPublishLimits(t *testing.T) {
	e := newEnv(t, "h2c", envOptions{cfg: Config{MaxMessageBytes: 10}})
	res, err := e.hc.Post(e.url+"/publish/q", "", strings.NewReader("01234567890"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge || string(body) != `{"error":"message too large"}`+"\n" {
		t.Fatalf("%d %q", res.StatusCode, body)
	}
	if len(e.b.List()) != 0 {
		t.Fatal("a refused publish created its queue")
	}
	e.publish(t, "q", "0123456789")
	e.publish(t, "q", "") // an empty message is a message
	if c := e.counts(t, "q"); c.Ready != 2 {
		t.Fatalf("counts %+v", c)
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/publish/q"}, {"PUT", "/subscribe/q"}} {
		req, _ := http.NewRequest(tc.method, e.url+tc.path, nil)
		res, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d", tc.method, tc.path, res.StatusCode)
		}
	}
}

func TestDeleteTopic(t *testing.T) {
	e := newEnv(t, "h2c", envOptions{})
	for _, m := range bodies(3) {
		e.publish(t, "q", m)
	}
	del := func(name string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodDelete, e.url+"/"+name, nil)
		res, err := e.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("DELETE /%s: %d", name, res.StatusCode)
		}
	}
	del("q")
	if c := e.counts(t, "q"); c.Total != 0 {
		t.Fatalf("after DELETE: %+v", c)
	}
	e.publish(t, "q", "after")
	e.subscribe(t, "q").wantMsg(t, "after", 0)
	del("unknown")
	if _, err := e.b.Queue("unknown"); err == nil {
		t.Fatal("DELETE created its topic")
	}
	t.Run("a message out is purged too, and its ACK then fails", func(t *testing.T) {
		e.publish(t, "held", "a")
		s := e.subscribe(t, "held")
		s.wantMsg(t, "a", 0)
		del("held")
		s.send(t, "ACK")
		if r := s.next(t); r.Error != "error ACKing message" {
			t.Fatalf("reply %+v", r)
		}
		s.wantEnd(t)
		if c := e.counts(t, "held"); c.Total != 0 {
			t.Fatalf("counts %+v", c)
		}
	})
}

func TestLeaseIsExtendedWhileTheMessageIsOut(t *testing.T) {
	// The broker's clock is fake, the stream's renewal ticker real: each
	// renewal moves the lease to the fake now + Lease, which Peek shows.
	const lease = 90 * time.Millisecond
	e := newEnv(t, "h2c", envOptions{fake: true, cfg: Config{Lease: lease}})
	e.publish(t, "q", "a")
	s := e.subscribe(t, "q")
	s.wantMsg(t, "a", 0)
	leaseEnds := func() time.Time {
		msgs, err := e.queue(t, "q").Peek(0, 1)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("peek: %v %v", msgs, err)
		}
		return msgs[0].LeaseEnds
	}
	for range 3 {
		e.clock.Advance(2 * lease / 3)
		want := e.clock.Now().Add(lease)
		eventually(t, "the lease is renewed to now + lease", func() bool { return leaseEnds().Equal(want) })
	}
	// Two leases past the first deadline, the message is still out here.
	s.send(t, "ACK")
	eventually(t, "the ACK applies", func() bool { return e.counts(t, "q").Total == 0 })
}

func TestNothingIsCreatedOutsideTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	b, err := queue.Open(filepath.Join(dir, "data"), queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := New(b, nil)
	for _, p := range []string{"/publish/..%2F..%2Fescape", "/publish/%2E%2E", "/subscribe/..%2Fx"} {
		req, _ := http.NewRequest(http.MethodPost, "http://spool"+p, strings.NewReader("x"))
		w := &recorder{header: http.Header{}}
		h.ServeHTTP(w, req)
		if w.status/100 != 4 {
			t.Errorf("%s: %d", p, w.status)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("entries %v", entries)
	}
}

// recorder is a minimal ResponseWriter for requests that never stream.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = 200
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(s int) { r.status = s }
