package api

// Tests of the topic and subscription routes over real HTTP, in the style
// of server_test.go (its srv helpers), paths spelled out by hand.

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

func (f *srvFixture) createTopic(name, config string) TopicInfo {
	f.t.Helper()
	var info TopicInfo
	srvWantJSON(f.t, f.postJSON("/v1/topics/"+name, config), http.StatusCreated, &info)
	return info
}

func (f *srvFixture) topicInfo(name string) TopicInfo {
	f.t.Helper()
	var info TopicInfo
	srvWantJSON(f.t, f.get("/v1/topics/"+name), http.StatusOK, &info)
	return info
}

func subPath(topic, sub, route string) string {
	return "/v1/topics/" + topic + "/subscriptions/" + sub + route
}

func (f *srvFixture) createSub(topic, sub, config string) SubscriptionInfo {
	f.t.Helper()
	var info SubscriptionInfo
	srvWantJSON(f.t, f.postJSON(subPath(topic, sub, ""), config), http.StatusCreated, &info)
	return info
}

func (f *srvFixture) subInfo(topic, sub string) SubscriptionInfo {
	f.t.Helper()
	var info SubscriptionInfo
	srvWantJSON(f.t, f.get(subPath(topic, sub, "")), http.StatusOK, &info)
	return info
}

// publish sends one raw body to a topic and returns its id.
func (f *srvFixture) publish(topic, body, query string) string {
	f.t.Helper()
	var out Enqueued
	srvWantJSON(f.t, f.post("/v1/topics/"+topic+"/messages"+query, body, "Content-Type", "application/octet-stream"), http.StatusCreated, &out)
	if len(out.IDs) != 1 {
		f.t.Fatalf("publish answered %d ids, want 1", len(out.IDs))
	}
	return out.IDs[0]
}

// subReceive expects 200 from a subscription's receive.
func (f *srvFixture) subReceive(topic, sub, query string) []Message {
	f.t.Helper()
	var out Messages
	srvWantJSON(f.t, f.post(subPath(topic, sub, "/receive")+query, ""), http.StatusOK, &out)
	return out.Messages
}

// seekTo seeks path to and returns the id the reply gives.
func (f *srvFixture) seekTo(path, to string) string {
	f.t.Helper()
	r := f.postJSON(path, `{"to":"`+to+`"}`)
	var out SeekResult
	srvWantJSON(f.t, r, http.StatusOK, &out)
	srvWantKeys(f.t, r.body, "id")
	return out.ID
}

func TestServerTopicRoutes(t *testing.T) {
	f := srvStart(t, Config{})

	t.Run("listing no topics answers 200 with an empty array", func(t *testing.T) {
		r := f.get("/v1/topics")
		srvWantStatus(t, r, http.StatusOK)
		if got := string(r.body); got != "{\"topics\":[]}\n" {
			t.Fatalf("body %q", got)
		}
	})

	t.Run("creating a topic answers 201 with its config, ids and no subscriptions", func(t *testing.T) {
		r := f.postJSON("/v1/topics/orders", `{"retention":"24h","max_bytes":1048576}`)
		var info TopicInfo
		srvWantJSON(t, r, http.StatusCreated, &info)
		srvWantKeys(t, r.body, "name", "retention", "max_bytes", "head_id", "tail_id", "bytes", "subscriptions")
		want := TopicInfo{Name: "orders", Retention: "24h0m0s", MaxBytes: 1 << 20, HeadID: "1", TailID: "0", Bytes: info.Bytes, Subscriptions: []SubscriptionInfo{}}
		if !reflect.DeepEqual(info, want) {
			t.Fatalf("info %+v, want %+v", info, want)
		}
	})

	t.Run("creating with no body gives a week of retention and no byte limit", func(t *testing.T) {
		var info TopicInfo
		srvWantJSON(t, f.post("/v1/topics/plain", ""), http.StatusCreated, &info)
		if info.Retention != "168h0m0s" || info.MaxBytes != 0 {
			t.Fatalf("defaults: %+v", info)
		}
	})

	t.Run("posting to an existing topic answers 200 and changes only the given fields", func(t *testing.T) {
		var info TopicInfo
		srvWantJSON(t, f.postJSON("/v1/topics/orders", `{"max_bytes":0}`), http.StatusOK, &info)
		if info.Retention != "24h0m0s" || info.MaxBytes != 0 {
			t.Fatalf("updated: %+v", info)
		}
		if got := f.topicInfo("orders"); got.Retention != "24h0m0s" || got.MaxBytes != 0 {
			t.Fatalf("GET after update: %+v", got)
		}
		srvWantJSON(t, f.post("/v1/topics/orders", ""), http.StatusOK, &info)
		if info.Retention != "24h0m0s" {
			t.Fatalf("an empty update changed the topic: %+v", info)
		}
	})

	t.Run("publishing answers 201 with the ids, raw, delayed and in a batch, as a queue's enqueue", func(t *testing.T) {
		if id := f.publish("orders", "first", ""); id != "1" {
			t.Fatalf("id %s, want 1", id)
		}
		var out Enqueued
		srvWantJSON(t, f.postJSON("/v1/topics/orders/batch", `{"messages":[{"body":"second"},{"body_base64":"3q2+7w==","attributes":{"k":"v"}}]}`), http.StatusCreated, &out)
		if !reflect.DeepEqual(out.IDs, []string{"2", "3"}) {
			t.Fatalf("batch ids %v", out.IDs)
		}
		if id := f.publish("orders", "later", "?delay=1h"); id != "4" {
			t.Fatalf("id %s, want 4", id)
		}
		info := f.topicInfo("orders")
		if info.HeadID != "1" || info.TailID != "4" || info.Bytes <= 0 {
			t.Fatalf("after publishing: %+v", info)
		}
	})

	t.Run("a subscription created at earliest has every message ready, counted in its lag", func(t *testing.T) {
		r := f.postJSON("/v1/topics/orders/subscriptions/billing", `{"start":"earliest","visibility_timeout":"1m","max_attempts":3}`)
		var info SubscriptionInfo
		srvWantJSON(t, r, http.StatusCreated, &info)
		srvWantKeys(t, r.body, "topic", "name", "visibility_timeout", "max_attempts", "dead_letter_queue", "counts", "lag", "skipped", "next_id")
		want := SubscriptionInfo{Topic: "orders", Name: "billing", VisibilityTimeout: "1m0s", MaxAttempts: 3,
			Counts: Counts{Ready: 4, Total: 4}, Lag: 4, NextID: "1"}
		if !reflect.DeepEqual(info, want) {
			t.Fatalf("info %+v, want %+v", info, want)
		}
	})

	t.Run("a subscription created with no start starts at latest, with a queue's defaults", func(t *testing.T) {
		info := f.createSub("orders", "audit", "")
		want := SubscriptionInfo{Topic: "orders", Name: "audit", VisibilityTimeout: "30s", MaxAttempts: 5, NextID: "5"}
		if !reflect.DeepEqual(info, want) {
			t.Fatalf("info %+v, want %+v", info, want)
		}
	})

	t.Run("a subscription created at an id or a time starts there", func(t *testing.T) {
		if info := f.createSub("orders", "from3", `{"start":"3"}`); info.NextID != "3" || info.Counts.Ready != 2 {
			t.Fatalf("at id 3: %+v", info)
		}
		if info := f.createSub("orders", "past", `{"start":"2000-01-01T00:00:00Z"}`); info.NextID != "1" {
			t.Fatalf("at a time before every message: %+v", info)
		}
		if info := f.createSub("orders", "future", `{"start":"2100-01-01T00:00:00Z"}`); info.NextID != "5" {
			t.Fatalf("at a time after every message: %+v", info)
		}
	})

	t.Run("posting to an existing subscription changes only the given fields, and a start there is a warning", func(t *testing.T) {
		r := f.postJSON("/v1/topics/orders/subscriptions/audit", `{"start":"earliest","max_attempts":7}`)
		var info SubscriptionInfo
		srvWantJSON(t, r, http.StatusOK, &info)
		if info.MaxAttempts != 7 || info.VisibilityTimeout != "30s" || info.NextID != "5" {
			t.Fatalf("updated: %+v", info)
		}
		if len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "POST /v1/topics/orders/subscriptions/audit/seek") {
			t.Fatalf("warnings %q, want the one saying start applies at creation", info.Warnings)
		}
		if got := f.subInfo("orders", "audit"); got.MaxAttempts != 7 || got.NextID != "5" || got.Warnings != nil {
			t.Fatalf("GET after update: %+v", got)
		}
	})

	t.Run("a missing dead-letter queue is a warning, as for a queue", func(t *testing.T) {
		var info SubscriptionInfo
		srvWantJSON(t, f.postJSON("/v1/topics/orders/subscriptions/audit", `{"dead_letter_queue":"orders.dead"}`), http.StatusOK, &info)
		if info.DeadLetterQueue != "orders.dead" || len(info.Warnings) != 1 || !strings.Contains(info.Warnings[0], "stay in this subscription") {
			t.Fatalf("info %+v", info)
		}
	})

	t.Run("getting a topic lists its subscriptions by name with their counts", func(t *testing.T) {
		info := f.topicInfo("orders")
		var names []string
		for _, s := range info.Subscriptions {
			names = append(names, s.Name)
		}
		if !reflect.DeepEqual(names, []string{"audit", "billing", "from3", "future", "past"}) {
			t.Fatalf("subscriptions %v", names)
		}
		if b := info.Subscriptions[1]; b.Counts != (Counts{Ready: 4, Total: 4}) || b.Lag != 4 {
			t.Fatalf("billing in the topic: %+v", b)
		}
		r := f.get("/v1/topics")
		var list TopicList
		srvWantJSON(t, r, http.StatusOK, &list)
		if len(list.Topics) != 2 || list.Topics[0].Name != "orders" || list.Topics[1].Name != "plain" || !reflect.DeepEqual(list.Topics[0], info) {
			t.Fatalf("list %+v", list)
		}
	})

	t.Run("a subscription's counts follow its receives", func(t *testing.T) {
		f.subReceive("orders", "billing", "?max=2")
		info := f.subInfo("orders", "billing")
		if info.Counts.Leased != 2 || info.Counts.Ready+info.Counts.Delayed != 2 || info.Lag != 4 || info.NextID == "1" {
			t.Fatalf("after leasing 2: %+v", info)
		}
		if other := f.subInfo("orders", "from3"); other.Counts.Leased != 0 {
			t.Fatalf("another subscription's leases changed: %+v", other)
		}
	})

	t.Run("deleting a subscription answers {} and it is gone, the topic's messages stay", func(t *testing.T) {
		r := f.post("/v1/topics/orders/subscriptions/past/delete", "")
		srvWantStatus(t, r, http.StatusOK)
		if string(r.body) != "{}\n" {
			t.Fatalf("body %q", r.body)
		}
		srvWantError(t, f.get(subPath("orders", "past", "")), http.StatusNotFound, CodeSubscriptionNotFound)
		if info := f.topicInfo("orders"); info.TailID != "4" || len(info.Subscriptions) != 4 {
			t.Fatalf("topic after the delete: %+v", info)
		}
	})

	t.Run("deleting a topic answers {} and it and its subscriptions are gone", func(t *testing.T) {
		r := f.post("/v1/topics/orders/delete", "")
		srvWantStatus(t, r, http.StatusOK)
		srvWantError(t, f.get("/v1/topics/orders"), http.StatusNotFound, CodeTopicNotFound)
		srvWantError(t, f.get(subPath("orders", "billing", "")), http.StatusNotFound, CodeTopicNotFound)
		if _, err := f.b.Topic("orders"); err == nil {
			t.Fatal("the broker still has the topic")
		}
	})
}

// A subscription's consumer routes are a queue's: every one of them, with
// its query parameters, bodies and replies.
func TestServerSubscriptionConsumerRoutes(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("t", "")
	f.createSub("t", "s", `{"start":"earliest","max_attempts":2}`)
	for _, body := range []string{"one", "two", "three", "four"} {
		f.publish("t", body, "")
	}
	sp := func(route string) string { return subPath("t", "s", route) }

	t.Run("receive leases in id order with receipts, as a queue's", func(t *testing.T) {
		msgs := f.subReceive("t", "s", "?max=2&visibility=10s")
		if len(msgs) != 2 || msgs[0].ID != "1" || msgs[0].Receipt != "1.1" || srvBody(t, msgs[1]) != "two" || msgs[0].LeaseEnds == "" {
			t.Fatalf("received %+v", msgs)
		}
	})
	t.Run("ack, nack, extend and fail take receipts and answer results", func(t *testing.T) {
		var res Results
		srvWantJSON(t, f.postJSON(sp("/ack"), srvReceipts("1.1")), http.StatusOK, &res)
		if len(res.Results) != 1 || !res.Results[0].OK {
			t.Fatalf("ack %+v", res)
		}
		srvWantJSON(t, f.postJSON(sp("/extend"), `{"receipts":["2.1"],"visibility":"1m"}`), http.StatusOK, &res)
		srvWantJSON(t, f.postJSON(sp("/nack"), `{"receipts":["2.1"],"position":"front"}`), http.StatusOK, &res)
		if m := f.subReceive("t", "s", ""); len(m) != 1 || m[0].Receipt != "2.2" {
			t.Fatalf("after a nack to the front, received %+v", m)
		}
		srvWantJSON(t, f.postJSON(sp("/fail"), srvReceipts("2.2")), http.StatusOK, &res)
		srvWantError(t, f.postJSON(sp("/ack"), srvReceipts("1.1")), http.StatusConflict, CodeStaleReceipt)
	})
	t.Run("peek lists without leasing and dead lists the failed message", func(t *testing.T) {
		peeked := f.list(sp("/messages?after=0&limit=10"))
		if got := srvIDs(peeked); !reflect.DeepEqual(got, []string{"3", "4"}) || peeked[0].State != "ready" {
			t.Fatalf("peek %v (%+v)", got, peeked)
		}
		dead := f.list(sp("/dead"))
		if len(dead) != 1 || dead[0].ID != "2" || dead[0].State != "dead" {
			t.Fatalf("dead %+v", dead)
		}
	})
	t.Run("redrive returns the dead to ready", func(t *testing.T) {
		var out Redriven
		srvWantJSON(t, f.post(sp("/redrive?limit=5"), ""), http.StatusOK, &out)
		if out.Redriven != 1 {
			t.Fatalf("redriven %d", out.Redriven)
		}
		if c := f.subInfo("t", "s").Counts; c.Dead != 0 || c.Ready != 3 {
			t.Fatalf("counts after redrive %+v", c)
		}
	})
	t.Run("raw receive answers one body with the lease in Spool-* headers", func(t *testing.T) {
		r := f.post(sp("/receive?raw=1"), "")
		srvWantStatus(t, r, http.StatusOK)
		if string(r.body) != "two" || r.header.Get("Spool-Id") != "2" || r.header.Get("Spool-Receipt") != "2.3" {
			t.Fatalf("raw receive: %s, headers %v", r, r.header)
		}
	})
	t.Run("a receive with nothing ready answers 204", func(t *testing.T) {
		f.subReceive("t", "s", "?max=10")
		srvWantStatus(t, f.post(sp("/receive"), ""), http.StatusNoContent)
	})
}

// Publish once, three subscriptions each get every message and ack it on
// their own.
func TestServerTopicFanOut(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("events", "")
	subs := []string{"mail", "search", "stats"}
	for _, s := range subs {
		f.createSub("events", s, "")
	}
	var out Enqueued
	srvWantJSON(t, f.postJSON("/v1/topics/events/batch", `{"messages":[{"body":"a"},{"body":"b"},{"body":"c"}]}`), http.StatusCreated, &out)
	for _, s := range subs {
		t.Run(s+" receives every message once and acks it", func(t *testing.T) {
			msgs := f.subReceive("events", s, "?max=10")
			var bodies, receipts []string
			for _, m := range msgs {
				bodies = append(bodies, srvBody(t, m))
				receipts = append(receipts, m.Receipt)
			}
			if !reflect.DeepEqual(bodies, []string{"a", "b", "c"}) {
				t.Fatalf("bodies %v", bodies)
			}
			var res Results
			srvWantJSON(t, f.postJSON(subPath("events", s, "/ack"), srvReceipts(receipts...)), http.StatusOK, &res)
			for _, r := range res.Results {
				if !r.OK {
					t.Fatalf("ack %+v", res)
				}
			}
			if info := f.subInfo("events", s); info.Counts != (Counts{}) || info.Lag != 0 || info.NextID != "4" {
				t.Fatalf("%s after acking: %+v", s, info)
			}
		})
	}
	t.Run("one subscription's acks leave nothing for it, and nothing more for the others either", func(t *testing.T) {
		for _, s := range subs {
			srvWantStatus(t, f.post(subPath("events", s, "/receive"), ""), http.StatusNoContent)
		}
		if info := f.topicInfo("events"); info.TailID != "3" {
			t.Fatalf("topic %+v", info)
		}
	})
}

func TestServerSeek(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("t", "")
	f.createSub("t", "a", `{"start":"earliest"}`)
	f.createSub("t", "b", `{"start":"earliest"}`)
	for i := 1; i <= 3; i++ {
		f.publish("t", fmt.Sprint("m", i), "")
	}

	t.Run("a receipt held across a seek is 409 stale_receipt, and the message comes again", func(t *testing.T) {
		m := f.subReceive("t", "a", "")[0]
		if m.Receipt != "1.1" {
			t.Fatalf("receipt %s", m.Receipt)
		}
		if id := f.seekTo(subPath("t", "a", "/seek"), "earliest"); id != "1" {
			t.Fatalf("seek answered %s, want 1", id)
		}
		srvWantError(t, f.postJSON(subPath("t", "a", "/ack"), srvReceipts("1.1")), http.StatusConflict, CodeStaleReceipt)
		again := f.subReceive("t", "a", "")[0]
		if again.ID != "1" || again.Receipt != "1.2" || again.Attempts != 2 {
			t.Fatalf("after the seek %+v, want message 1 at attempt 2", again)
		}
	})

	t.Run("seeking to an id counts what is before it as done", func(t *testing.T) {
		if id := f.seekTo(subPath("t", "a", "/seek"), "3"); id != "3" {
			t.Fatalf("seek answered %s", id)
		}
		if info := f.subInfo("t", "a"); info.NextID != "3" || info.Counts != (Counts{Ready: 1, Total: 1}) || info.Lag != 1 {
			t.Fatalf("after seeking to 3: %+v", info)
		}
		if info := f.subInfo("t", "b"); info.Counts.Ready != 3 {
			t.Fatalf("the other subscription moved: %+v", info)
		}
	})

	t.Run("seeking to a time finds the first message published at or after it", func(t *testing.T) {
		if id := f.seekTo(subPath("t", "a", "/seek"), srvT0.Add(-time.Hour).Format(time.RFC3339)); id != "1" {
			t.Fatalf("seek to an hour before answered %s", id)
		}
		if id := f.seekTo(subPath("t", "a", "/seek"), srvT0.Add(time.Hour).Format(time.RFC3339)); id != "4" {
			t.Fatalf("seek to an hour after answered %s", id)
		}
	})

	t.Run("seeking the topic moves every subscription to the same id", func(t *testing.T) {
		if id := f.seekTo("/v1/topics/t/seek", "latest"); id != "4" {
			t.Fatalf("topic seek answered %s", id)
		}
		for _, s := range []string{"a", "b"} {
			if info := f.subInfo("t", s); info.NextID != "4" || info.Lag != 0 {
				t.Fatalf("%s after the topic seek: %+v", s, info)
			}
		}
		if id := f.seekTo("/v1/topics/t/seek", "earliest"); id != "1" {
			t.Fatalf("topic seek to earliest answered %s", id)
		}
		for _, s := range []string{"a", "b"} {
			if info := f.subInfo("t", s); info.Lag != 3 {
				t.Fatalf("%s after seeking to earliest: %+v", s, info)
			}
		}
	})
}

// TestServerTopicBadInputChangesNothing sends every kind of bad request to
// the topic routes: each is a 4xx JSON error, and what a client can see
// (topics, subscriptions, messages, queues) and what is on disk is the
// same after it as before.
func TestServerTopicBadInputChangesNothing(t *testing.T) {
	f := srvStart(t, Config{MaxMessageBytes: 64, MaxBatch: 3})
	f.createTopic("t", `{"retention":"1h"}`)
	f.createSub("t", "s", `{"start":"earliest","max_attempts":2}`)
	f.publish("t", "held", "")
	f.publish("t", "ready", "")
	if m := f.subReceive("t", "s", ""); m[0].Receipt != "1.1" {
		t.Fatalf("receipt %s", m[0].Receipt)
	}
	snapshot := func() string {
		var sb strings.Builder
		for _, p := range []string{"/v1/topics", "/v1/queues", subPath("t", "s", ""), subPath("t", "s", "/messages"), subPath("t", "s", "/dead")} {
			r := f.get(p)
			srvWantStatus(t, r, http.StatusOK)
			fmt.Fprintf(&sb, "%s: %s", p, r.body)
		}
		fmt.Fprintf(&sb, "broker: %v", len(f.b.Topics()))
		return sb.String()
	}
	before := snapshot()
	j := "application/json"
	for _, tt := range []struct {
		name, method, path, body, contentType string
		status                                int
		code                                  string
		want                                  string // in the message
	}{
		{"a topic name with a space", "POST", "/v1/topics/bad%20name", "", j, 400, CodeInvalidName, ""},
		{"a topic name starting with a dot", "POST", "/v1/topics/.hidden", "", j, 400, CodeInvalidName, ""},
		{"a topic name over 80 characters", "POST", "/v1/topics/" + strings.Repeat("a", 81), "", j, 400, CodeInvalidName, ""},
		{"a retention that is not a duration", "POST", "/v1/topics/new", `{"retention":"forever"}`, j, 400, CodeInvalidRequest, "retention"},
		{"a negative retention", "POST", "/v1/topics/new", `{"retention":"-1h"}`, j, 400, CodeInvalidRequest, "retention"},
		{"a negative max_bytes", "POST", "/v1/topics/new", `{"max_bytes":-1}`, j, 400, CodeInvalidRequest, "max_bytes"},
		{"max_bytes as a string", "POST", "/v1/topics/new", `{"max_bytes":"1G"}`, j, 400, CodeInvalidRequest, "max_bytes must be a number"},
		{"an unknown field in a topic's config", "POST", "/v1/topics/new", `{"retentoin":"1h"}`, j, 400, CodeInvalidRequest, "retention, max_bytes"},
		{"a bad update of an existing topic", "POST", "/v1/topics/t", `{"retention":"2h","max_bytes":-5}`, j, 400, CodeInvalidRequest, "max_bytes"},
		{"a topic config that is not JSON", "POST", "/v1/topics/new", `retention=1h`, j, 400, CodeInvalidRequest, ""},
		{"a topic config labelled as text", "POST", "/v1/topics/new", `{}`, "text/plain", 415, CodeUnsupportedMedia, ""},
		{"publish to a missing topic", "POST", "/v1/topics/nope/messages", "x", "text/plain", 404, CodeTopicNotFound, "spool topic create nope"},
		{"a batch to a missing topic", "POST", "/v1/topics/nope/batch", `{"messages":[{"body":"x"}]}`, j, 404, CodeTopicNotFound, "POST /v1/topics/nope"},
		{"publish with a bad delay", "POST", "/v1/topics/t/messages?delay=soon", "x", "text/plain", 400, CodeInvalidRequest, "delay"},
		{"publish with an unknown query parameter", "POST", "/v1/topics/t/messages?dealy=1s", "x", "text/plain", 400, CodeInvalidRequest, "takes only delay"},
		{"publish a body over the limit", "POST", "/v1/topics/t/messages", strings.Repeat("x", 65), "text/plain", 413, CodeTooLarge, ""},
		{"an empty batch", "POST", "/v1/topics/t/batch", `{"messages":[]}`, j, 400, CodeInvalidRequest, "at least one"},
		{"a batch over --max-batch", "POST", "/v1/topics/t/batch", `{"messages":[{"body":"1"},{"body":"2"},{"body":"3"},{"body":"4"}]}`, j, 413, CodeTooLarge, ""},
		{"a batch with one bad message", "POST", "/v1/topics/t/batch", `{"messages":[{"body":"ok"},{"body":"x","delay":"-1s"}]}`, j, 400, CodeInvalidRequest, "messages[1].delay"},
		{"a topic seek with no body", "POST", "/v1/topics/t/seek", "", j, 400, CodeInvalidRequest, ""},
		{"a topic seek with no to", "POST", "/v1/topics/t/seek", `{}`, j, 400, CodeInvalidRequest, `{"to":"earliest"}`},
		{"a topic seek to a word it does not know", "POST", "/v1/topics/t/seek", `{"to":"yesterday"}`, j, 400, CodeInvalidRequest, "earliest, latest"},
		{"a topic seek to id 0", "POST", "/v1/topics/t/seek", `{"to":"0"}`, j, 400, CodeInvalidRequest, "to="},
		{"a topic seek to a number", "POST", "/v1/topics/t/seek", `{"to":1}`, j, 400, CodeInvalidRequest, "to must be a string"},
		{"a topic seek with an unknown field", "POST", "/v1/topics/t/seek", `{"to":"earliest","all":true}`, j, 400, CodeInvalidRequest, "it takes to"},
		{"a seek of a missing topic", "POST", "/v1/topics/nope/seek", `{"to":"earliest"}`, j, 404, CodeTopicNotFound, ""},
		{"a subscription of a missing topic", "POST", subPath("nope", "s", ""), "", j, 404, CodeTopicNotFound, ""},
		{"a subscription name with a space", "POST", subPath("t", "a%20b", ""), "", j, 400, CodeInvalidName, ""},
		{"a subscription name of dots", "POST", subPath("t", "..x", ""), "", j, 400, CodeInvalidName, ""},
		{"a subscription with a bad start", "POST", subPath("t", "new", ""), `{"start":"beginning"}`, j, 400, CodeInvalidRequest, "start="},
		{"a subscription with a start that is no time", "POST", subPath("t", "new", ""), `{"start":"2026-13-01T00:00:00Z"}`, j, 400, CodeInvalidRequest, "start="},
		{"a bad start given to an existing subscription", "POST", subPath("t", "s", ""), `{"start":"nope","max_attempts":4}`, j, 400, CodeInvalidRequest, "start="},
		{"a subscription with a bad visibility", "POST", subPath("t", "new", ""), `{"visibility_timeout":"long"}`, j, 400, CodeInvalidRequest, "visibility_timeout"},
		{"a subscription with a zero visibility", "POST", subPath("t", "new", ""), `{"visibility_timeout":"0s"}`, j, 400, CodeInvalidRequest, "visibility_timeout"},
		{"a subscription with max_attempts 0", "POST", subPath("t", "new", ""), `{"max_attempts":0}`, j, 400, CodeInvalidRequest, "max_attempts"},
		{"a bad update of an existing subscription", "POST", subPath("t", "s", ""), `{"max_attempts":5000}`, j, 400, CodeInvalidRequest, "max_attempts"},
		{"a subscription with a bad dead-letter queue name", "POST", subPath("t", "new", ""), `{"dead_letter_queue":"a b"}`, j, 400, CodeInvalidRequest, "dead_letter_queue"},
		{"a subscription config with an unknown field", "POST", subPath("t", "new", ""), `{"offset":"earliest"}`, j, 400, CodeInvalidRequest, "start, visibility_timeout"},
		{"a subscription seek with a bad to", "POST", subPath("t", "s", "/seek"), `{"to":"start"}`, j, 400, CodeInvalidRequest, "to="},
		{"a seek of a missing subscription", "POST", subPath("t", "nope", "/seek"), `{"to":"earliest"}`, j, 404, CodeSubscriptionNotFound, "spool subscribe t nope"},
		{"a receive from a missing subscription", "POST", subPath("t", "nope", "/receive"), "", "", 404, CodeSubscriptionNotFound, "POST /v1/topics/t/subscriptions/nope"},
		{"a receive from a subscription of a missing topic", "POST", subPath("nope", "s", "/receive"), "", "", 404, CodeTopicNotFound, ""},
		{"a receive with a typo in a parameter", "POST", subPath("t", "s", "/receive?mx=2"), "", "", 400, CodeInvalidRequest, "takes only max, wait, visibility, raw"},
		{"a receive of more than --max-batch", "POST", subPath("t", "s", "/receive?max=4"), "", "", 400, CodeInvalidRequest, "max"},
		{"raw with max", "POST", subPath("t", "s", "/receive?raw=1&max=2"), "", "", 400, CodeInvalidRequest, "raw=1"},
		{"an ack with a malformed receipt", "POST", subPath("t", "s", "/ack"), `{"receipts":["one"]}`, j, 400, CodeInvalidRequest, ""},
		{"an ack of no receipts", "POST", subPath("t", "s", "/ack"), `{"receipts":[]}`, j, 400, CodeInvalidRequest, "no receipts"},
		{"a nack with a bad position", "POST", subPath("t", "s", "/nack"), `{"receipts":["1.1"],"position":"middle"}`, j, 400, CodeInvalidRequest, "position"},
		{"an extend with a nack's field", "POST", subPath("t", "s", "/extend"), `{"receipts":["1.1"],"delay":"1s"}`, j, 400, CodeInvalidRequest, "belong to nack"},
		{"an ack of a message never published", "POST", subPath("t", "s", "/ack"), `{"receipts":["9.1"]}`, j, 404, CodeMessageNotFound, ""},
		{"a peek with a bad after", "GET", subPath("t", "s", "/messages?after=x"), "", "", 400, CodeInvalidRequest, "after"},
		{"a dead list with a bad limit", "GET", subPath("t", "s", "/dead?limit=0"), "", "", 400, CodeInvalidRequest, "limit"},
		{"a redrive with a bad limit", "POST", subPath("t", "s", "/redrive?limit=-1"), "", "", 400, CodeInvalidRequest, "limit"},
		{"a GET of a missing subscription", "GET", subPath("t", "nope", ""), "", "", 404, CodeSubscriptionNotFound, ""},
		{"a delete of a missing subscription", "POST", subPath("t", "nope", "/delete"), "", "", 404, CodeSubscriptionNotFound, ""},
		{"a delete of a missing topic", "POST", "/v1/topics/nope/delete", "", "", 404, CodeTopicNotFound, ""},
		{"an escaped slash in a topic name", "POST", "/v1/topics/t%2Fsubscriptions%2Fs/delete", "", "", 400, CodeInvalidName, ""},
		{"an escaped slash in a subscription name", "POST", subPath("t", "s%2Fdelete", ""), "", "", 400, CodeInvalidName, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var header []string
			if tt.contentType != "" {
				header = []string{"Content-Type", tt.contentType}
			}
			e := srvWantError(t, f.do(tt.method, tt.path, tt.body, header...), tt.status, tt.code)
			if !strings.Contains(e.Message, tt.want) {
				t.Errorf("message %q lacks %q", e.Message, tt.want)
			}
			if after := snapshot(); after != before {
				t.Fatalf("state changed:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
	t.Run("the held receipt still works after all that", func(t *testing.T) {
		var res Results
		srvWantJSON(t, f.postJSON(subPath("t", "s", "/ack"), srvReceipts("1.1")), http.StatusOK, &res)
	})
}

func TestServerTopicRoutesRefuseWrongMethods(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("t", "")
	f.createSub("t", "s", "")
	for _, tt := range []struct {
		name, method, path string
		allow              []string
		want               []string
	}{
		{"DELETE on a topic points to POST .../delete", "DELETE", "/v1/topics/t", []string{"GET", "POST"},
			[]string{"to delete a topic, POST /v1/topics/t/delete", "to read a topic's config, ids and subscriptions, GET /v1/topics/t"}},
		{"DELETE on a subscription points to POST .../delete", "DELETE", "/v1/topics/t/subscriptions/s", []string{"GET", "POST"},
			[]string{"to delete a subscription, POST /v1/topics/t/subscriptions/s/delete", "to create a subscription or change its config, POST /v1/topics/t/subscriptions/s"}},
		{"GET on a seek points to POST", "GET", "/v1/topics/t/seek", []string{"POST"},
			[]string{"to move every subscription of the topic, POST /v1/topics/t/seek"}},
		{"GET on a topic's messages points to publish", "GET", "/v1/topics/t/messages", []string{"POST"},
			[]string{"to publish one message (the raw body), POST /v1/topics/t/messages"}},
		{"GET on a subscription's receive points to POST", "GET", "/v1/topics/t/subscriptions/s/receive", []string{"POST"},
			[]string{"to lease messages, POST /v1/topics/t/subscriptions/s/receive"}},
		{"POST on a subscription's dead list points to GET", "POST", "/v1/topics/t/subscriptions/s/dead", []string{"GET"},
			[]string{"to list the dead messages, GET /v1/topics/t/subscriptions/s/dead"}},
		{"POST on the topic list points to GET", "POST", "/v1/topics", []string{"GET"},
			[]string{"to list the topics, GET /v1/topics"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := f.do(tt.method, tt.path, "")
			e := srvWantError(t, r, http.StatusMethodNotAllowed, CodeMethodNotAllowed)
			for _, m := range tt.allow {
				if !strings.Contains(r.header.Get("Allow"), m) {
					t.Errorf("Allow %q lacks %s", r.header.Get("Allow"), m)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("message %q lacks %q", e.Message, w)
				}
			}
		})
	}
	t.Run("the topic and subscription are still there", func(t *testing.T) {
		f.subInfo("t", "s")
	})
	t.Run("HEAD answers every GET of a topic without a body", func(t *testing.T) {
		for _, path := range []string{"/v1/topics", "/v1/topics/t", subPath("t", "s", ""), subPath("t", "s", "/messages"), subPath("t", "s", "/dead"), "/v1/topics/nope"} {
			get := f.get(path)
			head := f.do(http.MethodHead, path, "")
			if head.status != get.status || len(head.body) != 0 {
				t.Errorf("HEAD %s = %d with %d body bytes; GET = %d", path, head.status, len(head.body), get.status)
			}
		}
	})
}

func TestSplitPath(t *testing.T) {
	for _, tt := range []struct {
		path  string
		sc    scope
		names []string
		route Route
	}{
		{"/v1/queues/q", scopeQueue, []string{"q"}, ""},
		{"/v1/queues/q/ack", scopeQueue, []string{"q"}, "/ack"},
		{"/v1/queues/q/", scopeQueue, []string{"q"}, "/"},
		{"/v1/topics/t", scopeTopic, []string{"t"}, ""},
		{"/v1/topics/t/seek", scopeTopic, []string{"t"}, "/seek"},
		{"/v1/topics/t/subscriptions", scopeTopic, []string{"t"}, "/subscriptions"},
		{"/v1/topics/t/subscriptions/", scopeTopic, []string{"t"}, "/subscriptions/"},
		{"/v1/topics/t/subscriptions/s", scopeSubscription, []string{"t", "s"}, ""},
		{"/v1/topics/t/subscriptions/s/receive", scopeSubscription, []string{"t", "s"}, "/receive"},
		{"/v1/topics", scopeNone, nil, ""},
		{"/v1/queues/", scopeNone, nil, ""},
		{"/healthz", scopeNone, nil, ""},
	} {
		sc, names, route := splitPath(tt.path)
		if sc != tt.sc || !reflect.DeepEqual(names, tt.names) || route != tt.route {
			t.Errorf("splitPath(%q) = %v, %q, %q; want %v, %q, %q", tt.path, sc, names, route, tt.sc, tt.names, tt.route)
		}
	}
}

// A long poll on a subscription deleted under it ends with the
// subscription's 404, not a queue's.
func TestServerSubscriptionDeletedDuringLongPoll(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("t", "")
	f.createSub("t", "s", "")
	h := f.hook("wait")
	res := make(chan srvResult, 1)
	go func() {
		r, err := f.send(context.Background(), http.MethodPost, subPath("t", "s", "/receive?wait=10s"), "", "Srv-Hook", "wait")
		res <- srvResult{r, err}
	}()
	srvWithin(t, h.waiting, 5*time.Second, "receive to start waiting")
	srvWantStatus(t, f.post(subPath("t", "s", "/delete"), ""), http.StatusOK)
	got := srvWithin(t, res, 5*time.Second, "receive to return after the delete")
	if got.err != nil {
		t.Fatal(got.err)
	}
	srvWantError(t, got.r, http.StatusNotFound, CodeSubscriptionNotFound)
}

func TestMetricsTopicsAndSubscriptions(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("events", "")
	f.createSub("events", "mail", `{"start":"earliest"}`)
	f.createSub("events", "stats", "")
	f.createTopic("idle", "")
	f.publish("events", "one", "")
	f.publish("events", "two", "")
	f.publish("events", "later", "?delay=1h")
	m := f.subReceive("events", "mail", "")[0]
	srvWantJSON(t, f.postJSON(subPath("events", "mail", "/ack"), srvReceipts(m.Receipt)), http.StatusOK, &Results{})
	f.subReceive("events", "mail", "")
	f.subReceive("events", "stats", "")
	info := f.topicInfo("events")

	text := string(f.get("/metrics").body)
	for _, line := range []string{
		fmt.Sprintf(`spool_topic_bytes{topic="events"} %d`, info.Bytes),
		`spool_topic_bytes{topic="idle"} `,
		`spool_topic_published_total{topic="events"} 3`,
		`spool_topic_published_total{topic="idle"} 0`,
		// The delayed message is unread, so it counts as ready (SubscriptionInfo.Counts).
		`spool_subscription_messages{topic="events",subscription="mail",state="ready"} 1`,
		`spool_subscription_messages{topic="events",subscription="mail",state="leased"} 1`,
		`spool_subscription_messages{topic="events",subscription="stats",state="ready"} 2`,
		`spool_subscription_messages{topic="events",subscription="stats",state="leased"} 1`,
		`spool_subscription_messages{topic="events",subscription="stats",state="dead"} 0`,
		`spool_subscription_lag{topic="events",subscription="mail"} 2`,
		`spool_subscription_lag{topic="events",subscription="stats"} 3`,
		`spool_subscription_skipped_total{topic="events",subscription="mail"} 0`,
		`spool_subscription_acked_total{topic="events",subscription="mail"} 1`,
		`spool_subscription_acked_total{topic="events",subscription="stats"} 0`,
		`spool_topics_unavailable 0`,
	} {
		if !strings.Contains(text, "\n"+line) {
			t.Errorf("metrics lack %s", line)
		}
	}
	for _, family := range []string{"spool_topic_bytes", "spool_topic_published_total", "spool_subscription_messages", "spool_subscription_lag", "spool_subscription_skipped_total", "spool_topics_unavailable"} {
		if strings.Count(text, "# HELP "+family+" ") != 1 || strings.Count(text, "# TYPE "+family+" ") != 1 {
			t.Errorf("metrics lack one HELP and TYPE for %s", family)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
	promtoolCheck(t, text)
}

// The subscription's counts in GET match what the queue package says.
func TestSubscriptionJSONIsTheBrokersInfo(t *testing.T) {
	f := srvStart(t, Config{})
	f.createTopic("t", "")
	f.createSub("t", "s", `{"start":"earliest"}`)
	f.publish("t", "a", "")
	f.publish("t", "b", "?delay=1m")
	topic, err := f.b.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	sub, err := topic.Subscription("s")
	if err != nil {
		t.Fatal(err)
	}
	want, err := sub.Info()
	if err != nil {
		t.Fatal(err)
	}
	got := f.subInfo("t", "s")
	if got.Counts != Counts(want.Counts) || got.Lag != want.Lag || got.NextID != fmt.Sprint(want.Next) {
		t.Fatalf("GET %+v, broker %+v", got, want)
	}
}

func TestAccessLogNamesTopicAndSubscription(t *testing.T) {
	logs := &srvLogBuffer{}
	f := srvStart(t, Config{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	f.createTopic("t", "")
	f.createSub("t", "s", "")
	f.do(http.MethodDelete, "/v1/topics/t/subscriptions/s", "")
	recs := serviceLogged(t, logs, "api: request")
	if len(recs) != 3 {
		t.Fatalf("%d access lines, want 3:\n%s", len(recs), logs.String())
	}
	for i, want := range []struct {
		route               string
		topic, subscription any
	}{
		{"/v1/topics/:topic", "t", nil},
		{"/v1/topics/:topic/subscriptions/:subscription", "t", "s"},
		{"/v1/topics/:topic/subscriptions/:subscription", "t", "s"}, // the 405
	} {
		if r := recs[i]; r["route"] != want.route || r["topic"] != want.topic || r["subscription"] != want.subscription || r["queue"] != nil {
			t.Errorf("line %d = %v, want %+v", i, r, want)
		}
	}
}

// Every route but /healthz wants the token, the topic routes included:
// the table is walked, so a route added without auth fails here.
func TestServerEveryRouteNeedsTheToken(t *testing.T) {
	const token = "s3cret-token"
	f := srvStart(t, Config{Token: token})
	auth := []string{"Authorization", "Bearer " + token, "Content-Type", "application/json"}
	srvWantStatus(t, f.post("/v1/queues/q", "", auth...), http.StatusCreated)
	srvWantStatus(t, f.post("/v1/topics/t", "", auth...), http.StatusCreated)
	srvWantStatus(t, f.post("/v1/topics/t/subscriptions/s", `{"start":"earliest"}`, auth...), http.StatusCreated)
	srvWantStatus(t, f.post("/v1/topics/t/messages", "x", auth...), http.StatusCreated)
	state := func() string {
		var sb strings.Builder
		for _, p := range []string{"/v1/queues", "/v1/topics"} {
			sb.Write(f.get(p, auth...).body)
		}
		return sb.String()
	}
	before := state()
	tested := 0
	for _, sp := range f.srv.table {
		path := strings.NewReplacer(":"+queueParam, "q", ":"+topicParam, "t", ":"+subscriptionParam, "s").Replace(sp.path)
		r := f.do(sp.method, path, `{"receipts":["1.1"],"to":"earliest"}`, "Content-Type", "application/json")
		if sp.public {
			srvWantStatus(t, r, http.StatusOK)
			continue
		}
		tested++
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s %s without a token = %d, want 401", sp.method, path, r.status)
		}
	}
	if tested < 30 {
		t.Fatalf("only %d routes in the table", tested)
	}
	if after := state(); after != before {
		t.Fatalf("refused requests changed state:\n%s\n%s", before, after)
	}
}

func TestATopicThatDidNotOpenAnswers503WhileTheOthersServe(t *testing.T) {
	dir := t.TempDir()
	opts := queue.Options{MaintenanceInterval: -1, Logger: srvQuiet}
	b, err := queue.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"broken", "fine"} {
		if _, _, err := b.CreateTopic(name, queue.TopicUpdate{}); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	cfg := filepath.Join(dir, "topics", "broken", "topic.json")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cfg, []byte(strings.Replace(string(data), "168h", "169h", 1)), 0o644)

	b, err = queue.Open(dir, opts)
	if err != nil {
		t.Fatalf("Open with one damaged topic: %v", err)
	}
	defer b.Close()
	ts := httptest.NewServer(New(b, Config{Logger: srvQuiet}, NewMetrics()).Handler())
	defer ts.Close()
	f := &srvFixture{t: t, ts: ts}

	e := srvWantError(t, f.get("/v1/topics/broken"), http.StatusServiceUnavailable, CodeQueueUnavailable)
	if strings.Contains(e.Message, dir) {
		t.Fatalf("message %q holds the data directory's path", e.Message)
	}
	srvWantError(t, f.post("/v1/topics/broken/messages", "x"), http.StatusServiceUnavailable, CodeQueueUnavailable)
	srvWantError(t, f.post("/v1/topics/broken/subscriptions/s/receive", ""), http.StatusServiceUnavailable, CodeQueueUnavailable)
	if r := f.post("/v1/topics/fine/messages", "x"); r.status != http.StatusCreated {
		t.Fatalf("publish to the healthy topic: %d %s", r.status, r.body)
	}
	var list TopicList
	srvWantJSON(t, f.get("/v1/topics"), http.StatusOK, &list)
	if len(list.Topics) != 2 || list.Topics[0].Name != "broken" || list.Topics[0].Unavailable == "" ||
		list.Topics[1].Name != "fine" || list.Topics[1].Unavailable != "" || list.Topics[1].TailID != "1" {
		t.Fatalf("GET /v1/topics = %+v", list.Topics)
	}
	if text := string(f.get("/metrics").body); !strings.Contains(text, "\nspool_topics_unavailable 1\n") {
		t.Fatalf("metrics do not count the broken topic:\n%s", text)
	}
}

func TestServerPublishHonoursTheDiskQuota(t *testing.T) {
	var used atomic.Int64
	f := srvStart(t, Config{MaxDisk: 1 << 20, DiskUsage: used.Load})
	f.createTopic("t", "")
	used.Store(1 << 20)
	srvWantError(t, f.post("/v1/topics/t/messages", "x"), http.StatusInsufficientStorage, CodeInsufficientStorage)
	srvWantError(t, f.postJSON("/v1/topics/t/batch", `{"messages":[{"body":"a"}]}`), http.StatusInsufficientStorage, CodeInsufficientStorage)
	if info := f.topicInfo("t"); info.TailID != "0" {
		t.Fatalf("a refused publish wrote: tail %s", info.TailID)
	}
	used.Store(0)
	if id := f.publish("t", "x", ""); id != "1" {
		t.Fatalf("publish under the quota: id %s", id)
	}
}
