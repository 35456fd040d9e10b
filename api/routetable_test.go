package api

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServerRefusesUnknownQueryParameters(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", "")
	f.enqueue("q", "keep", "")

	for _, tt := range []struct {
		name, method, path string
		want               []string // in the message
	}{
		{"a typo of max names it and what receive takes", "POST", "/v1/queues/q/receive?mx=10",
			[]string{`"mx"`, "POST /v1/queues/q/receive takes only max, wait, visibility, raw"}},
		{"a typo of wait is refused, not a receive that does not wait", "POST", "/v1/queues/q/receive?wiat=20s",
			[]string{`"wiat"`, "max, wait, visibility, raw"}},
		{"several unknown ones are all named", "GET", "/v1/queues/q/messages?limit=1&b=1&a=2",
			[]string{`parameters "a", "b"`, "takes only after, limit"}},
		{"a route that takes none says so", "GET", "/v1/queues/q?verbose=1",
			[]string{`"verbose"`, "takes no query parameters"}},
		{"enqueue takes delay alone", "POST", "/v1/queues/q/messages?dealy=5s",
			[]string{`"dealy"`, "takes only delay"}},
		{"the queue list too", "GET", "/v1/queues?all=1", []string{`"all"`, "GET /v1/queues takes no query parameters"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := srvWantError(t, f.do(tt.method, tt.path, ""), http.StatusBadRequest, CodeInvalidRequest)
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
		})
	}
	t.Run("nothing was received or enqueued by the refused requests", func(t *testing.T) {
		if c := f.counts("q"); c.Ready != 1 || c.Total != 1 {
			t.Fatalf("counts %+v, want the one ready message", c)
		}
	})
	t.Run("a missing queue is still 404 first", func(t *testing.T) {
		srvWantError(t, f.post("/v1/queues/nope/receive?mx=1", ""), http.StatusNotFound, CodeQueueNotFound)
	})
	t.Run("the parameters a route takes still work", func(t *testing.T) {
		if msgs := f.receive("q", "?max=2&wait=0s&visibility=1m"); len(msgs) != 1 {
			t.Fatalf("received %d, want 1", len(msgs))
		}
	})
}

func TestServerWrongMethodSaysWhichCallToMake(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", "")
	for _, tt := range []struct {
		name, method, path string
		allow              []string
		want               []string
	}{
		{"DELETE on a queue points to POST .../delete", "DELETE", "/v1/queues/q", []string{"GET", "POST"},
			[]string{"to delete a queue, POST /v1/queues/q/delete", "DELETE /v1/queues/q is not a call"}},
		{"PUT on a queue points to POST to create or update", "PUT", "/v1/queues/q", []string{"GET", "POST"},
			[]string{"to create a queue or change its config, POST /v1/queues/q", "to read a queue's config and counts, GET /v1/queues/q"}},
		{"GET on receive points to POST", "GET", "/v1/queues/q/receive", []string{"POST"},
			[]string{"to lease messages, POST /v1/queues/q/receive"}},
		{"POST on dead points to GET", "POST", "/v1/queues/q/dead", []string{"GET"},
			[]string{"to list the dead messages, GET /v1/queues/q/dead"}},
		{"POST on the queue list points to GET", "POST", "/v1/queues", []string{"GET"},
			[]string{"to list the queues, GET /v1/queues"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(tt.method, tt.path, "")
			e := srvWantError(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			allow := r.header.Get("Allow")
			for _, m := range tt.allow {
				if !strings.Contains(allow, m) {
					t.Errorf("Allow %q lacks %s", allow, m)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
		})
	}
	t.Run("the queue is still there after DELETE", func(t *testing.T) {
		f.info("q")
	})
}

// HEAD answers as GET does, without a body: a health checker's HEAD
// /healthz must not read as down.
func TestHeadAnswersLikeGetWithoutABody(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("jobs", "")
	for _, path := range []string{HealthPath, QueuesPath, "/v1/queues/jobs", "/v1/queues/jobs/messages", "/v1/queues/nope"} {
		get, err := http.Get(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		get.Body.Close()
		head, err := http.Head(f.ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(head.Body)
		head.Body.Close()
		if head.StatusCode != get.StatusCode || len(body) != 0 {
			t.Errorf("HEAD %s = %d with %d body bytes; GET = %d", path, head.StatusCode, len(body), get.StatusCode)
		}
	}
	if r, err := http.Head(f.ts.URL + "/v1/queues/jobs/receive"); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("HEAD of a POST route = %v, %v; want 405", r, err)
	}
}
