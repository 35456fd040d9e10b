package fuzz

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// httpDir is the data directory of this process's httpTarget, removed by
// TestMain. Fuzzing workers can be killed before TestMain's cleanup runs,
// so each new process also removes what old ones left behind.
var httpDir string

func TestMain(m *testing.M) {
	if old, _ := filepath.Glob(filepath.Join(os.TempDir(), "spool-fuzz-http-*")); len(old) > 0 {
		for _, dir := range old {
			if st, err := os.Stat(dir); err == nil && time.Since(st.ModTime()) > time.Hour {
				os.RemoveAll(dir)
			}
		}
	}
	code := m.Run()
	if httpDir != "" {
		os.RemoveAll(httpDir)
	}
	os.Exit(code)
}

// httpTarget is one server shared by every input of a fuzzing process: a
// broker per input would spend the budget on fsyncs and directories.
var httpTarget = sync.OnceValues(func() (http.Handler, error) {
	dir, err := os.MkdirTemp("", "spool-fuzz-http-")
	if err != nil {
		return nil, err
	}
	httpDir = dir
	b, err := queue.Open(dir, queue.Options{MaintenanceInterval: -1, SegmentSize: 64 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	for _, name := range []string{"q", "dlq"} {
		if _, _, err := b.Create(name, queue.ConfigUpdate{}); err != nil {
			return nil, err
		}
	}
	q, _ := b.Queue("q")
	if _, err := q.Enqueue([]queue.NewMessage{{Body: []byte("a")}, {Body: []byte{0xff, 0}}}); err != nil {
		return nil, err
	}
	tp, _, err := b.CreateTopic("t", queue.TopicUpdate{})
	if err != nil {
		return nil, err
	}
	if _, _, err := tp.CreateSubscription("s", queue.SubscriptionUpdate{}, queue.Earliest()); err != nil {
		return nil, err
	}
	if _, err := tp.Publish([]queue.NewMessage{{Body: []byte("a")}, {Body: []byte("b")}}); err != nil {
		return nil, err
	}
	return api.New(b, api.Config{MaxBatch: 50, MaxMessageBytes: 4 << 10}, api.NewMetrics()).Handler(), nil
})

// FuzzHTTP sends arbitrary method, path, query, content type and body to
// an in-process server. Whatever the input, the server must answer: never
// panic (the router would turn a panic into a 500), never a 5xx but 503
// and 507, and every 4xx with the JSON error body clients parse.
func FuzzHTTP(f *testing.F) {
	seeds := []struct {
		method      byte
		path, query string
		ctype       string
		body        string
	}{
		{'P', "/v1/queues/q/messages", "delay=1s", "text/plain", "hello"},
		{'P', "/v1/queues/q/batch", "", "application/json", `{"messages":[{"body":"x"},{"body_base64":"AAE=","delay":"1s","attributes":{"k":"v"}}]}`},
		{'P', "/v1/queues/q/receive", "max=5&wait=0s&visibility=1s", "", ""},
		{'P', "/v1/queues/q/receive", "raw=1", "", ""},
		{'P', "/v1/queues/q/ack", "", "application/json", `{"receipts":["1.1","2.1"]}`},
		{'P', "/v1/queues/q/nack", "", "application/json", `{"receipts":["1.1"],"position":"front","delay":"1s"}`},
		{'P', "/v1/queues/q/extend", "", "application/json", `{"receipts":["1.1"],"visibility":"1m"}`},
		{'P', "/v1/queues/new", "", "application/json", `{"visibility_timeout":"10s","max_attempts":3,"dead_letter_queue":"dlq"}`},
		{'G', "/v1/queues/q/messages", "after=0&limit=10", "", ""},
		{'G', "/v1/queues/q/dead", "limit=1", "", ""},
		{'P', "/v1/queues/q/redrive", "limit=2", "", ""},
		{'G', "/v1/queues", "", "", ""},
		{'P', "/v1/queues/%2e%2e/purge", "", "", ""},
		{'G', "/metrics", "", "", ""},
		{'P', "/v1/topics/t/messages", "delay=1s", "text/plain", "hello"},
		{'P', "/v1/topics/t/batch", "", "application/json", `{"messages":[{"body":"x"},{"body_base64":"AAE="}]}`},
		{'P', "/v1/topics/t", "", "application/json", `{"retention":"1h","max_bytes":1000000}`},
		{'P', "/v1/topics/t/seek", "", "application/json", `{"to":"earliest"}`},
		{'P', "/v1/topics/t/subscriptions/s/seek", "", "application/json", `{"to":"2026-12-02T05:00:00Z"}`},
		{'P', "/v1/topics/t/subscriptions/new", "", "application/json", `{"start":"2","visibility_timeout":"5s","max_attempts":2,"dead_letter_queue":"dlq"}`},
		{'P', "/v1/topics/t/subscriptions/s/receive", "max=5&visibility=1s", "", ""},
		{'P', "/v1/topics/t/subscriptions/s/ack", "", "application/json", `{"receipts":["1.1"]}`},
		{'G', "/v1/topics/t/subscriptions/s/messages", "after=0&limit=10", "", ""},
		{'G', "/v1/topics/t/subscriptions/s", "", "", ""},
		{'G', "/v1/topics", "", "", ""},
		{'P', "/v1/topics/t/subscriptions/%2e%2e/delete", "", "", ""},
		{'P', "/v1/queues/q/stream", "credit=2&visibility=1s", "application/x-ndjson", "{\"ack\":\"1.1\"}\n{\"credit\":0}\nnot json\n{\"nack\":\"2.1\",\"position\":\"front\"}\n"},
		{'P', "/v1/topics/t/subscriptions/s/stream", "credit=1", "", "{\"extend\":\"1.1\",\"visibility\":\"1m\"}\n{\"fail\":\"1.1\"}"},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, s.query, s.ctype, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, method byte, path, query, ctype string, body []byte) {
		h, err := httpTarget()
		if err != nil {
			t.Fatal(err)
		}
		if len(body) > 1<<20 || len(path) > 4096 || len(query) > 4096 {
			return
		}
		m := map[byte]string{'G': http.MethodGet, 'P': http.MethodPost, 'D': http.MethodDelete, 'H': http.MethodHead}[method]
		if m == "" {
			m = http.MethodPut
		}
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		target := "http://spool.test" + path
		if query != "" {
			target += "?" + query
		}
		req, err := http.NewRequest(m, target, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		status := rec.Code
		if status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusInsufficientStorage {
			t.Fatalf("%s %s: status %d: %s", m, target, status, rec.Body.String())
		}
		if status >= 400 && m != http.MethodHead {
			var e api.ErrorReply
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Fatalf("%s %s: status %d without a JSON error body: %q", m, target, status, rec.Body.String())
			}
		}
	})
}
