package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolq/spool/queue"
)

func TestAQueueThatDidNotOpenAnswers503WhileTheOthersServe(t *testing.T) {
	dir := t.TempDir()
	opts := queue.Options{MaintenanceInterval: -1, Logger: srvQuiet}
	b, err := queue.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"broken", "fine"} {
		if _, _, err := b.Create(name, queue.ConfigUpdate{}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	cfg := filepath.Join(dir, "queues", "broken", "queue.json")
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(data), "30s", "31s", 1)), 0o644)

	b, err = queue.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open with one damaged queue: %v", err)
	}
	defer b.Close()
	m := NewMetrics()
	ts := httptest.NewServer(New(b, Config{Logger: srvQuiet}, m).Handler())
	defer ts.Close()
	f := &srvFixture{t: t, ts: ts}

	e := srvWantError(t, f.get("/v1/queues/broken"), http.StatusServiceUnavailable, CodeQueueUnavailable)
	if !strings.Contains(e.Message, "queue.json is damaged") || strings.Contains(e.Message, dir) {
		t.Fatalf("message %q: want the reason, without the data directory's path", e.Message)
	}
	srvWantError(t, f.post("/v1/queues/broken/messages", "x"), http.StatusServiceUnavailable, CodeQueueUnavailable)
	if r := f.post("/v1/queues/fine/messages", "x"); r.status != http.StatusCreated {
		t.Fatalf("enqueue to the healthy queue: %d %s", r.status, r.body)
	}
	var list QueueList
	srvWantJSON(t, f.get("/v1/queues"), http.StatusOK, &list)
	if len(list.Queues) != 2 || list.Queues[0].Name != "broken" || !strings.Contains(list.Queues[0].Unavailable, "queue.json") ||
		list.Queues[1].Name != "fine" || list.Queues[1].Unavailable != "" || list.Queues[1].Counts.Ready != 1 {
		t.Fatalf("GET /v1/queues = %+v", list.Queues)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	text, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(text), "\nspool_queues_unavailable 1\n") {
		t.Fatalf("/metrics lacks spool_queues_unavailable 1:\n%s", text)
	}
}

func TestAListingThatFailsMidwayIsCutNotEndedShort(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", "")
	f.enqueue("q", "first", "")
	f.enqueue("q", strings.Repeat("X", 4000), "")
	f.enqueue("q", "third", "")
	// Damage the second message's frame on disk: the listing reads the
	// first, then finds the damage after its reply has begun.
	segs, _ := filepath.Glob(filepath.Join(f.dir, "queues", "q", "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), "XXXX")
	if i < 0 {
		t.Fatal("the second body is not in the segment as written (compressed?)")
	}
	data[i+100] ^= 0xff
	os.WriteFile(segs[0], data, 0o644)

	// The cut may come before the first bytes leave (they sit in the
	// response buffer) or after: either way the client must see a broken
	// reply, never a whole one that is short.
	resp, err := http.Get(f.ts.URL + "/v1/queues/q/messages")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	var m Messages
	if err == nil && resp.StatusCode == http.StatusOK && json.Unmarshal(body, &m) == nil {
		t.Fatalf("a listing that hit damage ended as a whole reply: status %d, %d messages", resp.StatusCode, len(m.Messages))
	}
}
