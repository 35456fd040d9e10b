package api

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

// serviceOpen opens a Service on a free port over a fresh directory with a
// JSON log into logs, DEBUG lines (the access log) included, and closes it
// at cleanup.
func serviceOpen(t *testing.T, logs *srvLogBuffer, cfg ServiceConfig) *Service {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Queue.MaintenanceInterval = -1
	s, err := Open(t.TempDir(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// serviceLogged returns the JSON log lines whose msg is msg.
func serviceLogged(t *testing.T, logs *srvLogBuffer, msg string) []map[string]any {
	t.Helper()
	var recs []map[string]any
	for line := range strings.Lines(logs.String()) {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == msg {
			recs = append(recs, r)
		}
	}
	return recs
}

func TestService(t *testing.T) {
	t.Run("serves at Addr with every timeout set and says where it listens", func(t *testing.T) {
		logs := &srvLogBuffer{}
		s := serviceOpen(t, logs, ServiceConfig{API: Config{MaxWait: 5 * time.Second}, MaxConnections: 7})
		resp, err := http.Get(s.URL() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || s.URL() != "http://"+s.Addr() {
			t.Fatalf("GET %s/healthz = %d", s.URL(), resp.StatusCode)
		}
		hs := s.hs
		if hs.ReadHeaderTimeout != readHeaderTimeout || hs.ReadTimeout != readTimeout || hs.WriteTimeout != 5*time.Second+time.Minute ||
			hs.IdleTimeout != idleTimeout || hs.MaxHeaderBytes != maxHeaderBytes || hs.ErrorLog == nil {
			t.Fatalf("http.Server limits: header %v, read %v, write %v, idle %v, header bytes %d, error log %v",
				hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes, hs.ErrorLog)
		}
		recs := serviceLogged(t, logs, "spool: listening")
		if len(recs) != 1 || recs[0]["addr"] != s.Addr() || recs[0]["sync"] != "always" || recs[0]["max_connections"] != 7.0 || recs[0]["data"] == "" {
			t.Fatalf("listening lines %v, want one with addr %s, sync always, max_connections 7 and the data directory", recs, s.Addr())
		}
		if v := ReadBuild().Version; recs[0]["version"] != v {
			t.Fatalf("listening line %v, want version %q", recs[0], v)
		}
	})

	t.Run("Close stops in order, closes the queues and returns the same again", func(t *testing.T) {
		logs := &srvLogBuffer{}
		s := serviceOpen(t, logs, ServiceConfig{})
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		select {
		case <-s.Done():
		default:
			t.Fatal("Done not closed after Close")
		}
		if _, _, err := s.Broker().Create("q", queue.ConfigUpdate{}); !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("Create after Close = %v, want queue.ErrClosed", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if len(serviceLogged(t, logs, "spool: shutting down")) != 1 || len(serviceLogged(t, logs, "spool: stopped cleanly")) != 1 {
			t.Fatalf("want one shutting-down and one stopped-cleanly line:\n%s", logs.String())
		}
	})

	t.Run("Close returns an HTTP/1.1 stream's leases before it closes the queues", func(t *testing.T) {
		dir := t.TempDir()
		logs := &srvLogBuffer{}
		s, err := Open(dir, ServiceConfig{Addr: "127.0.0.1:0", Logger: slog.New(slog.NewJSONHandler(logs, nil)),
			Queue: queue.Options{MaintenanceInterval: -1}})
		if err != nil {
			t.Fatal(err)
		}
		q, _, err := s.Broker().Create("q", queue.ConfigUpdate{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := q.Enqueue([]queue.NewMessage{{Body: []byte("a")}, {Body: []byte("b")}}); err != nil {
			t.Fatal(err)
		}
		st, err := NewClient(s.Addr(), "", nil).Queue("q").Stream(t.Context(), StreamOptions{Credit: 2, Visibility: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		for range 2 {
			select {
			case <-st.Messages():
			case <-time.After(10 * time.Second):
				t.Fatal("no message on the stream")
			}
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		// The stream ran on a connection http.Server no longer tracks: had
		// the queues closed first, its leases (an hour long) would still
		// be out after a restart.
		b, err := queue.Open(dir, queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		q, err = b.Queue("q")
		if err != nil {
			t.Fatal(err)
		}
		if info, err := q.Info(); err != nil || info.Counts.Ready != 2 || info.Counts.Leased != 0 {
			t.Fatalf("after a restart: %+v, %v; want both messages ready\nlog:\n%s", info.Counts, err, logs.String())
		}
	})

	t.Run("Close releases a long poll with 503, logged below WARN", func(t *testing.T) {
		logs := &srvLogBuffer{}
		s := serviceOpen(t, logs, ServiceConfig{})
		cl := NewClient(s.Addr(), "", nil)
		if _, _, err := cl.PutQueue(t.Context(), "q", QueueConfig{}); err != nil {
			t.Fatal(err)
		}
		polled := make(chan error, 1)
		go func() {
			_, err := cl.Receive(t.Context(), "q", ReceiveOptions{Wait: 20 * time.Second})
			polled <- err
		}()
		// The receive must be waiting in its handler before Close, or it
		// would meet a closed listener instead of the 503.
		deadline := time.Now().Add(10 * time.Second)
		for s.running.count() == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the long poll never reached its handler")
			}
			time.Sleep(time.Millisecond) // polling with a deadline
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close = %v", err)
		}
		var ae *Error
		if err := <-polled; !errors.As(err, &ae) || ae.Status != http.StatusServiceUnavailable || ae.Code != CodeShuttingDown {
			t.Fatalf("long poll across Close = %v, want 503 %s", err, CodeShuttingDown)
		}
		// The 503 is how a graceful stop ends a long poll: the access log
		// has it at DEBUG, and nothing about it is a WARN or an ERROR.
		for line := range strings.Lines(logs.String()) {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Errorf("shutdown logged %s", line)
			}
		}
		var logged bool
		for _, r := range serviceLogged(t, logs, "api: request") {
			logged = logged || (r["route"] == "/v1/queues/:queue/receive" && r["status"] == 503.0 && r["level"] == "DEBUG")
		}
		if !logged {
			t.Errorf("no DEBUG access line for the 503 receive:\n%s", logs.String())
		}
	})

	t.Run("the caller's commit hooks run after the metrics count", func(t *testing.T) {
		var fsyncs atomic.Int64
		s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{Queue: queue.Options{
			OnCommit: func(_ string, c queue.Commit) {
				if c.Err == nil && c.Synced {
					fsyncs.Add(1)
				}
			},
			OnStateSync: func(string, int, time.Duration) { fsyncs.Add(1) },
		}})
		cl := NewClient(s.Addr(), "", nil)
		if _, _, err := cl.PutQueue(t.Context(), "q", QueueConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Send(t.Context(), "q", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		msgs, err := cl.Receive(t.Context(), "q", ReceiveOptions{})
		if err != nil || len(msgs) != 1 {
			t.Fatalf("receive = %v, %v; want one message", msgs, err)
		}
		if _, err := cl.Ack(t.Context(), "q", msgs[0].Receipt); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil { // every hook has run
			t.Fatal(err)
		}
		if got, counted := fsyncs.Load(), int64(s.api.metrics.fsyncs.Get()); got == 0 || got != counted {
			t.Fatalf("the caller counted %d fsyncs, the metrics %d: want the same, above 0", got, counted)
		}
	})

	t.Run("MaxDisk walks the data directory for the quota", func(t *testing.T) {
		s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{API: Config{MaxDisk: 256 << 10}})
		cl := NewClient(s.Addr(), "", nil)
		if _, _, err := cl.PutQueue(t.Context(), "q", QueueConfig{}); err != nil {
			t.Fatal(err)
		}
		// Enqueues fit at first; once the walker (once a second) sees the
		// data directory past the quota, they get 507.
		body := make([]byte, 32<<10)
		rand.Read(body) // incompressible, so the log grows by its size
		sent := 0
		deadline := time.Now().Add(10 * time.Second)
		for {
			_, err := cl.Send(t.Context(), "q", body, 0)
			if errors.Is(err, ErrQuotaExceeded) && sent > 0 {
				break
			}
			if err != nil || time.Now().After(deadline) {
				t.Fatalf("enqueue %d under a 256 KiB quota = %v, want successes, then 507 within 10s", sent, err)
			}
			sent++
			time.Sleep(20 * time.Millisecond) // polling the quota with a deadline
		}
	})
}

func TestOpenOnABusyPortLeavesNoDataDirectory(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := filepath.Join(t.TempDir(), "spool-data")
	s, err := Open(dir, ServiceConfig{Addr: busy.Addr().String(), Logger: slog.New(slog.DiscardHandler)})
	var opErr *net.OpError
	if !errors.As(err, &opErr) || opErr.Op != "listen" {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open on a busy port = %v, want the listen error", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after a failed listen the data directory exists (stat: %v); want nothing created", err)
	}
}

func TestOpenFitsMaxConnectionsToTheOpenFileLimit(t *testing.T) {
	limit, err := openFileLimit()
	if err != nil || limit > 1<<30 {
		t.Skipf("no finite open-file limit here (%d, %v)", limit, err)
	}
	dir := t.TempDir()
	quiet := slog.New(slog.DiscardHandler)
	over := int(limit) + 1
	_, err = Open(dir, ServiceConfig{Addr: "127.0.0.1:0", MaxConnections: over, ExplicitMaxConnections: true, Logger: quiet})
	var cle *ConnectionLimitError
	if !errors.As(err, &cle) || cle.Want != over || cle.Limit != int(limit) {
		t.Fatalf("Open with an explicit cap over the limit = %v, want a *ConnectionLimitError for %d under %d", err, over, limit)
	}
	// Nothing was left open: the directory opens again, and the same cap
	// not asked for explicitly is lowered to fit instead.
	logs := &srvLogBuffer{}
	s, err := Open(dir, ServiceConfig{Addr: "127.0.0.1:0", MaxConnections: over, Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatalf("Open after the refusal: %v", err)
	}
	defer s.Close()
	lowered := serviceLogged(t, logs, "spool: lowered --max-connections to fit the open-file limit; raise ulimit -n to allow more")
	if len(lowered) != 1 || lowered[0]["level"] != "WARN" || lowered[0]["max_connections"].(float64) >= float64(over) {
		t.Fatalf("lowered-cap lines %v, want one WARN with a max_connections under %d", lowered, over)
	}
}

func TestBaseURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:7070":              "http://127.0.0.1:7070",
		"http://127.0.0.1:7070/":      "http://127.0.0.1:7070",
		"https://queue.example/spool": "https://queue.example/spool",
		"[::1]:7070":                  "http://[::1]:7070",
	} {
		if got := BaseURL(addr); got != want {
			t.Errorf("BaseURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
