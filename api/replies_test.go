package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestServerWarnsOfAMissingDeadLetterQueue(t *testing.T) {
	f := srvStart(t, Config{})
	want := []string{`dead-letter queue "dlq" does not exist yet: dead messages stay in this queue until it is created`}

	// The WARN line is the queue's own (queue.TestTheLogSaysWhatHappensToQueues).
	t.Run("create answers 201 with the warning", func(t *testing.T) {
		info := f.create("jobs", `{"dead_letter_queue":"dlq"}`)
		if !slices.Equal(info.Warnings, want) || info.DeadLetterQueue != "dlq" {
			t.Fatalf("create = %+v, want dead_letter_queue dlq and warnings %q", info, want)
		}
	})
	t.Run("an update of another field warns again while it is missing", func(t *testing.T) {
		var info QueueInfo
		srvWantJSON(t, f.postJSON("/v1/queues/jobs", `{"max_attempts":3}`), http.StatusOK, &info)
		if !slices.Equal(info.Warnings, want) {
			t.Fatalf("update warnings %q, want %q", info.Warnings, want)
		}
	})
	t.Run("once it exists the reply has no warnings field", func(t *testing.T) {
		f.create("dlq", "")
		r := f.postJSON("/v1/queues/jobs", `{"max_attempts":4}`)
		srvWantStatus(t, r, http.StatusOK)
		if strings.Contains(string(r.body), "warnings") {
			t.Fatalf("reply %s: want no warnings field", r.body)
		}
	})
	t.Run("GET has no warnings field", func(t *testing.T) {
		f.create("other", `{"dead_letter_queue":"nowhere"}`)
		if r := f.get("/v1/queues/other"); strings.Contains(string(r.body), "warnings") {
			t.Fatalf("GET %s: want no warnings field", r.body)
		}
	})
}

func TestServerQueueFullSaysWhatToDo(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("small", `{"max_length":1}`)
	f.enqueue("small", "a", "")
	for _, r := range []srvResp{
		f.post("/v1/queues/small/messages", "b"),
		f.postJSON("/v1/queues/small/batch", `{"messages":[{"body":"b"}]}`),
	} {
		e := srvWantError(t, r, http.StatusTooManyRequests, CodeQueueFull)
		for _, w := range []string{`"small" holds 1 of at most 1 messages and cannot take 1 more`, "raise its max_length with POST /v1/queues/small"} {
			if !strings.Contains(e.Message, w) {
				t.Errorf("message %q lacks %q", e.Message, w)
			}
		}
	}
}

func TestListingsSayWhenMessagesBecomeReadyAndLeasesEnd(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("q", `{"visibility_timeout":"45s","max_attempts":1}`)
	f.enqueue("q", "leased", "")
	f.enqueue("q", "ready", "")
	f.enqueue("q", "later", "?delay=10m")
	f.receive("q", "?max=1")
	rfc := func(d time.Duration) string { return srvT0.Add(d).Format(time.RFC3339Nano) }

	check := func(t *testing.T, msgs []Message) {
		t.Helper()
		if len(msgs) != 3 {
			t.Fatalf("peek = %+v, want 3 messages", msgs)
		}
		for i, want := range []struct{ ready, lease string }{{"", rfc(45 * time.Second)}, {"", ""}, {rfc(10 * time.Minute), ""}} {
			if m := msgs[i]; m.ReadyAt != want.ready || m.LeaseEnds != want.lease {
				t.Errorf("message %s (%s): ready_at %q, lease_ends %q; want %q, %q", m.ID, m.State, m.ReadyAt, m.LeaseEnds, want.ready, want.lease)
			}
		}
	}
	t.Run("peek shows ready_at for a delayed message and lease_ends for a leased one, in UTC", func(t *testing.T) {
		r := f.get("/v1/queues/q/messages")
		var out struct{ Messages []json.RawMessage }
		srvWantJSON(t, r, http.StatusOK, &out)
		srvWantKeys(t, out.Messages[1], "id", "attempts", "state", "enqueued_at", "priority", "body") // a ready message has neither
		var msgs Messages
		srvDecode(t, r.body, &msgs)
		check(t, msgs.Messages)
	})
	t.Run("the client returns them", func(t *testing.T) {
		msgs, err := NewClient(f.ts.URL, "", nil).Peek(t.Context(), "q", "", 0)
		if err != nil {
			t.Fatal(err)
		}
		check(t, msgs)
	})
	t.Run("a dead message has neither", func(t *testing.T) {
		f.clock.Advance(time.Minute) // the lease of its only attempt runs out
		dead := f.list("/v1/queues/q/dead")
		if len(dead) != 1 || dead[0].ReadyAt != "" || dead[0].LeaseEnds != "" {
			t.Fatalf("dead = %+v, want the one message without ready_at or lease_ends", dead)
		}
	})
}
