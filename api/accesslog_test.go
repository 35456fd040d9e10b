package api

import (
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestAccessLog(t *testing.T) {
	t.Run("at DEBUG each request is one line with method, route pattern, status, time and queue", func(t *testing.T) {
		logs := &srvLogBuffer{}
		f := srvStart(t, Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		f.create("jobs", "")
		f.enqueue("jobs", "secret body", "?delay=0s")
		f.get("/v1/nothing/here")
		f.get("/healthz")
		recs := serviceLogged(t, logs, "api: request")
		if len(recs) != 4 {
			t.Fatalf("%d access lines, want 4:\n%s", len(recs), logs.String())
		}
		for i, want := range []struct {
			method, route string
			status        float64
			queue         any
		}{
			{"POST", "/v1/queues/:queue", 201, "jobs"},
			{"POST", "/v1/queues/:queue/messages", 201, "jobs"},
			{"GET", "none", 404, nil},
			{"GET", "/healthz", 200, nil},
		} {
			r := recs[i]
			if r["level"] != "DEBUG" || r["method"] != want.method || r["route"] != want.route || r["status"] != want.status || r["queue"] != want.queue {
				t.Errorf("line %d = %v, want %+v", i, r, want)
			}
			if _, ok := r["took"].(float64); !ok {
				t.Errorf("line %d = %v: no took", i, r)
			}
		}
		if text := logs.String(); strings.Contains(text, "secret body") || strings.Contains(text, "delay=0s") || strings.Contains(text, "/v1/nothing") {
			t.Fatalf("the access log holds a body, a query or a raw path:\n%s", text)
		}
	})

	t.Run("above DEBUG there is none", func(t *testing.T) {
		logs := &srvLogBuffer{}
		f := srvStart(t, Config{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
		f.create("jobs", "")
		if recs := serviceLogged(t, logs, "api: request"); len(recs) != 0 {
			t.Fatalf("access lines at INFO: %v", recs)
		}
	})

	t.Run("a refused token is a WARN with the remote address and route, never the token", func(t *testing.T) {
		logs := &srvLogBuffer{}
		f := srvStart(t, Config{Token: "s3cret-token", Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		srvWantError(t, f.post("/v1/queues/jobs/receive", "", "Authorization", "Bearer guess-1234"), http.StatusUnauthorized, CodeUnauthorized)
		recs := serviceLogged(t, logs, "api: unauthorized request refused")
		if len(recs) != 1 {
			t.Fatalf("%d warnings, want 1:\n%s", len(recs), logs.String())
		}
		r := recs[0]
		if r["level"] != "WARN" || r["route"] != "/v1/queues/:queue/receive" || r["reason"] != "wrong token" || !strings.HasPrefix(r["remote"].(string), "127.0.0.1:") {
			t.Fatalf("warning %v", r)
		}
		if text := logs.String(); strings.Contains(text, "guess-1234") || strings.Contains(text, "s3cret-token") || strings.Contains(text, "Bearer") {
			t.Fatalf("the log holds a token or the Authorization header:\n%s", text)
		}
	})
}

func TestRateLimitLetsOneEventThroughASecondAndCountsTheRest(t *testing.T) {
	var l rateLimit
	t0 := time.Unix(1000, 0)
	for i, step := range []struct {
		at      time.Duration
		ok      bool
		skipped int64
	}{{0, true, 0}, {100 * time.Millisecond, false, 0}, {900 * time.Millisecond, false, 0}, {time.Second, true, 2}, {1500 * time.Millisecond, false, 0}, {3 * time.Second, true, 1}} {
		skipped, ok := l.allow(t0.Add(step.at))
		if ok != step.ok || skipped != step.skipped {
			t.Fatalf("event %d at +%v: allow = %d, %v; want %d, %v", i, step.at, skipped, ok, step.skipped, step.ok)
		}
	}
}
