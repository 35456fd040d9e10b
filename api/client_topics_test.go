package api_test

import (
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

func TestClientManagesTopicsAndSubscriptions(t *testing.T) {
	e := clientTestServer(t, clientSetup{})
	ctx := t.Context()

	info, created, err := e.c.PutTopic(ctx, "orders", api.TopicConfig{Retention: clientPtr("24h")})
	if err != nil || !created || info.Name != "orders" || info.Retention != "24h0m0s" || info.TailID != "0" {
		t.Fatalf("PutTopic = %+v, %v, %v; want a created topic with 24h retention", info, created, err)
	}
	info, created, err = e.c.PutTopic(ctx, "orders", api.TopicConfig{MaxBytes: clientPtr(int64(1 << 20))})
	if err != nil || created || info.Retention != "24h0m0s" || info.MaxBytes != 1<<20 {
		t.Fatalf("PutTopic again = %+v, %v, %v; want only max_bytes changed", info, created, err)
	}

	id, err := e.c.Publish(ctx, "orders", []byte("\x00binary\xff"), 0)
	if err != nil || id != "1" {
		t.Fatalf("Publish = %q, %v", id, err)
	}
	ids, err := e.c.PublishBatch(ctx, "orders", []api.NewMessage{api.BodyMessage([]byte("two")), api.BodyMessage([]byte("three"))})
	if err != nil || !slices.Equal(ids, []string{"2", "3"}) {
		t.Fatalf("PublishBatch = %v, %v", ids, err)
	}
	if _, err := e.c.Publish(ctx, "orders", []byte("later"), time.Hour); err != nil {
		t.Fatal(err)
	}

	sub, created, err := e.c.PutSubscription(ctx, "orders", "billing", api.SubscriptionConfig{Start: clientPtr("earliest"), MaxAttempts: clientPtr(3)})
	if err != nil || !created || sub.NextID != "1" || sub.MaxAttempts != 3 || sub.Counts.Ready != 4 || sub.Lag != 4 {
		t.Fatalf("PutSubscription = %+v, %v, %v", sub, created, err)
	}
	sub, created, err = e.c.PutSubscription(ctx, "orders", "billing", api.SubscriptionConfig{Start: clientPtr("latest")})
	if err != nil || created || sub.NextID != "1" || len(sub.Warnings) != 1 {
		t.Fatalf("PutSubscription with a start on an existing one = %+v, %v, %v; want it unmoved with a warning", sub, created, err)
	}
	if _, _, err := e.c.PutSubscription(ctx, "orders", "audit", api.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	got, err := e.c.GetSubscription(ctx, "orders", "audit")
	if err != nil || got.NextID != "5" || got.Lag != 0 || got.Topic != "orders" {
		t.Fatalf("GetSubscription = %+v, %v; want one at latest", got, err)
	}

	info, err = e.c.GetTopic(ctx, "orders")
	if err != nil || info.TailID != "4" || len(info.Subscriptions) != 2 || info.Subscriptions[0].Name != "audit" {
		t.Fatalf("GetTopic = %+v, %v", info, err)
	}
	list, err := e.c.ListTopics(ctx)
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], info) {
		t.Fatalf("ListTopics = %+v, %v; want [%+v]", list, err, info)
	}

	if id, err := e.c.SeekSubscription(ctx, "orders", "billing", "3"); err != nil || id != "3" {
		t.Fatalf("SeekSubscription = %q, %v", id, err)
	}
	if id, err := e.c.SeekTopic(ctx, "orders", "earliest"); err != nil || id != "1" {
		t.Fatalf("SeekTopic = %q, %v", id, err)
	}
	if got, _ := e.c.GetSubscription(ctx, "orders", "audit"); got.NextID != "1" {
		t.Fatalf("after the topic seek audit is at %s", got.NextID)
	}
	if _, err := e.c.SeekTopic(ctx, "orders", "someday"); !errors.Is(err, queue.ErrInvalid) {
		t.Fatalf("a bad seek = %v, want ErrInvalid", err)
	}

	if err := e.c.DeleteSubscription(ctx, "orders", "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.GetSubscription(ctx, "orders", "audit"); !errors.Is(err, queue.ErrSubscriptionNotFound) {
		t.Fatalf("GetSubscription of a deleted one = %v, want ErrSubscriptionNotFound", err)
	}
	if err := e.c.DeleteSubscription(ctx, "orders", "audit"); !errors.Is(err, queue.ErrSubscriptionNotFound) {
		t.Fatalf("DeleteSubscription twice = %v, want ErrSubscriptionNotFound", err)
	}
	if err := e.c.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"GetTopic":        func() error { _, err := e.c.GetTopic(ctx, "orders"); return err }(),
		"Publish":         func() error { _, err := e.c.Publish(ctx, "orders", []byte("x"), 0); return err }(),
		"GetSubscription": func() error { _, err := e.c.GetSubscription(ctx, "orders", "billing"); return err }(),
		"Receive": func() error {
			_, err := e.c.Subscription("orders", "billing").Receive(ctx, api.ReceiveOptions{})
			return err
		}(),
		"DeleteTopic": e.c.DeleteTopic(ctx, "orders"),
	} {
		var ae *api.Error
		if !errors.Is(err, queue.ErrTopicNotFound) || !errors.As(err, &ae) || ae.Status != http.StatusNotFound || ae.Code != api.CodeTopicNotFound {
			t.Errorf("%s on a deleted topic = %v, want ErrTopicNotFound (404 topic_not_found)", name, err)
		}
	}
	if topics, err := e.c.ListTopics(ctx); err != nil || len(topics) != 0 {
		t.Fatalf("ListTopics after the delete = %+v, %v", topics, err)
	}
}

// A subscription's consumer calls are a queue's, through the same
// Consumer.
func TestClientConsumesASubscription(t *testing.T) {
	e := clientTestServer(t, clientSetup{})
	ctx := t.Context()
	if _, _, err := e.c.PutTopic(ctx, "t", api.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.PutSubscription(ctx, "t", "s", api.SubscriptionConfig{Start: clientPtr("earliest"), MaxAttempts: clientPtr(2)}); err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"a", "b", "c"} {
		if _, err := e.c.Publish(ctx, "t", []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
	s := e.c.Subscription("t", "s")

	msgs, err := s.Receive(ctx, api.ReceiveOptions{Max: 2, Visibility: time.Minute})
	if err != nil || len(msgs) != 2 || clientBody(t, msgs[0]) != "a" || msgs[1].Receipt != "2.1" {
		t.Fatalf("Receive = %+v, %v", msgs, err)
	}
	res, err := s.Ack(ctx, "1.1")
	clientWantOK(t, res, err, "1.1")
	res, err = s.Extend(ctx, 2*time.Minute, "2.1")
	clientWantOK(t, res, err, "2.1")
	res, err = s.Nack(ctx, api.NackOptions{Front: true}, "2.1")
	clientWantOK(t, res, err, "2.1")
	raw, ok, err := s.ReceiveRaw(ctx, 0, 0)
	if err != nil || !ok || string(raw.Body) != "b" || raw.Receipt != "2.2" {
		t.Fatalf("ReceiveRaw = %+v, %v, %v", raw, ok, err)
	}
	res, err = s.Fail(ctx, "2.2")
	clientWantOK(t, res, err, "2.2")
	if dead, err := s.Dead(ctx, "", 0); err != nil || len(dead) != 1 || dead[0].ID != "2" {
		t.Fatalf("Dead = %+v, %v", dead, err)
	}
	if peeked, err := s.Peek(ctx, "", 10); err != nil || len(peeked) != 1 || peeked[0].ID != "3" {
		t.Fatalf("Peek = %+v, %v", peeked, err)
	}
	if n, err := s.Redrive(ctx, 0); err != nil || n != 1 {
		t.Fatalf("Redrive = %d, %v", n, err)
	}

	held := clientMustReceiveFrom(t, s)
	if _, err := e.c.SeekSubscription(ctx, "t", "s", "earliest"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ack(ctx, held.Receipt); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Fatalf("acking a receipt held across a seek = %v, want ErrStaleReceipt", err)
	}
	if _, err := e.c.Subscription("t", "nope").Receive(ctx, api.ReceiveOptions{}); !errors.Is(err, queue.ErrSubscriptionNotFound) {
		t.Fatalf("Receive from a missing subscription = %v, want ErrSubscriptionNotFound", err)
	}
	// The queue calls still reach queues, not the subscription.
	if _, err := e.c.Receive(ctx, "s", api.ReceiveOptions{}); !errors.Is(err, queue.ErrQueueNotFound) {
		t.Fatalf("Receive from queue s = %v, want ErrQueueNotFound", err)
	}
}

func clientMustReceiveFrom(t *testing.T, c *api.Consumer) api.Message {
	t.Helper()
	msgs, err := c.Receive(t.Context(), api.ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive = %+v, %v; want one message", msgs, err)
	}
	return msgs[0]
}

func TestClientRefusesTopicNamesThatWouldChangeTheRoute(t *testing.T) {
	var requests atomic.Int32
	e := clientTestServer(t, clientSetup{wrap: func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests.Add(1)
			h.ServeHTTP(w, r)
		})
	}})
	ctx := t.Context()
	if _, _, err := e.c.PutTopic(ctx, "a", api.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.c.PutSubscription(ctx, "a", "s", api.SubscriptionConfig{}); err != nil {
		t.Fatal(err)
	}
	before := requests.Load()
	for _, name := range []string{"", ".", "..", "a/delete", "../a", "a/"} {
		t.Run("refuses "+name, func(t *testing.T) {
			calls := map[string]error{}
			_, calls["GetTopic"] = e.c.GetTopic(ctx, name)
			_, _, calls["PutTopic"] = e.c.PutTopic(ctx, name, api.TopicConfig{})
			calls["DeleteTopic"] = e.c.DeleteTopic(ctx, name)
			_, calls["Publish"] = e.c.Publish(ctx, name, []byte("x"), 0)
			_, calls["PublishBatch"] = e.c.PublishBatch(ctx, name, []api.NewMessage{api.BodyMessage([]byte("x"))})
			_, calls["SeekTopic"] = e.c.SeekTopic(ctx, name, "earliest")
			_, _, calls["PutSubscription topic"] = e.c.PutSubscription(ctx, name, "s", api.SubscriptionConfig{})
			_, _, calls["PutSubscription sub"] = e.c.PutSubscription(ctx, "a", name, api.SubscriptionConfig{})
			_, calls["GetSubscription"] = e.c.GetSubscription(ctx, "a", name)
			calls["DeleteSubscription"] = e.c.DeleteSubscription(ctx, "a", name)
			_, calls["SeekSubscription"] = e.c.SeekSubscription(ctx, "a", name, "earliest")
			_, calls["Subscription.Ack"] = e.c.Subscription("a", name).Ack(ctx, "1.1")
			_, calls["Subscription.Receive topic"] = e.c.Subscription(name, "s").Receive(ctx, api.ReceiveOptions{})
			for call, err := range calls {
				var ae *api.Error
				if !errors.Is(err, queue.ErrInvalidName) || !errors.As(err, &ae) || ae.Code != api.CodeInvalidName || !strings.Contains(ae.Message, "not sent") {
					t.Errorf("%s(%q) = %v, want invalid_name", call, name, err)
				}
			}
		})
	}
	if n := requests.Load() - before; n != 0 {
		t.Errorf("%d requests reached the server", n)
	}
	if _, err := e.c.GetSubscription(ctx, "a", "s"); err != nil {
		t.Errorf("subscription a/s is gone: %v", err)
	}
}
