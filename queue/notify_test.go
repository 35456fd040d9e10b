package queue

import (
	"context"
	"testing"
	"time"
)

// notified is a NotifyReady callback that reports each call.
func notified() (func(), chan struct{}) {
	ch := make(chan struct{}, 8)
	return func() { ch <- struct{}{} }, ch
}

func waitCall(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("NotifyReady's fn was not called %s", what)
	}
}

func enqueueOne(t *testing.T, q *Queue, body string) {
	t.Helper()
	if _, err := q.Enqueue([]NewMessage{{Body: []byte(body)}}); err != nil {
		t.Fatal(err)
	}
}

// TestNotifyReady: fn runs at once for a ready message, else on the
// next one; stop withdraws it (nothing is left parked) or, once fn ran,
// passes the wake on to the next waiter.
func TestNotifyReady(t *testing.T) {
	t.Run("ready now", func(t *testing.T) {
		q := mustCreate(t, mustOpen(t, t.TempDir(), Options{Logger: quiet}), "q", ConfigUpdate{})
		enqueueOne(t, q, "a")
		fn, ch := notified()
		stop, err := q.NotifyReady(fn)
		if err != nil {
			t.Fatal(err)
		}
		waitCall(t, ch, "for a ready message")
		if stop() {
			t.Fatal("stop after fn ran said it withdrew fn")
		}
	})
	t.Run("on enqueue", func(t *testing.T) {
		q := mustCreate(t, mustOpen(t, t.TempDir(), Options{Logger: quiet}), "q", ConfigUpdate{})
		fn, ch := notified()
		stop, err := q.NotifyReady(fn)
		if err != nil {
			t.Fatal(err)
		}
		if n := q.waiting.Load(); n != 1 {
			t.Fatalf("%d waiters parked, want 1", n)
		}
		enqueueOne(t, q, "a")
		waitCall(t, ch, "on an enqueue")
		if stop() {
			t.Fatal("stop after fn ran said it withdrew fn")
		}
	})
	t.Run("stopped", func(t *testing.T) {
		q := mustCreate(t, mustOpen(t, t.TempDir(), Options{Logger: quiet}), "q", ConfigUpdate{})
		fn, ch := notified()
		stop, err := q.NotifyReady(fn)
		if err != nil {
			t.Fatal(err)
		}
		if !stop() {
			t.Fatal("stop before any message did not withdraw fn")
		}
		if n := q.waiting.Load(); n != 0 {
			t.Fatalf("%d waiters parked after stop, want 0", n)
		}
		enqueueOne(t, q, "a") // notifies synchronously: fn would be started by now
		select {
		case <-ch:
			t.Fatal("fn ran after stop withdrew it")
		default:
		}
	})
	t.Run("stop passes the wake on", func(t *testing.T) {
		q := mustCreate(t, mustOpen(t, t.TempDir(), Options{Logger: quiet}), "q", ConfigUpdate{})
		fn, ch := notified()
		stop, err := q.NotifyReady(fn) // the oldest waiter
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan []Message, 1)
		go func() {
			msgs, _ := q.Receive(context.Background(), ReceiveOptions{Wait: MaxWait})
			got <- msgs
		}()
		deadline := time.After(10 * time.Second)
		for q.waiting.Load() != 2 { // polling until the receive is parked behind fn
			select {
			case <-deadline:
				t.Fatal("the Receive did not park")
			case <-got:
				t.Fatal("Receive returned before a message")
			case <-time.After(time.Millisecond):
			}
		}
		enqueueOne(t, q, "a") // wakes fn, the oldest, alone
		waitCall(t, ch, "on an enqueue")
		if stop() { // fn will not receive: the parked Receive must get it now, not after MaxWait
			t.Fatal("stop after fn ran said it withdrew fn")
		}
		select {
		case msgs := <-got:
			if len(msgs) != 1 || string(msgs[0].Body) != "a" {
				t.Fatalf("the parked Receive got %v, want message a", msgs)
			}
		case <-time.After(MaxWait / 2):
			t.Fatal("the parked Receive was not woken in fn's place")
		}
	})
	t.Run("queue deleted", func(t *testing.T) {
		b := mustOpen(t, t.TempDir(), Options{Logger: quiet})
		q := mustCreate(t, b, "q", ConfigUpdate{})
		fn, ch := notified()
		if _, err := q.NotifyReady(fn); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete("q"); err != nil {
			t.Fatal(err)
		}
		waitCall(t, ch, "when its queue was deleted")
		if _, err := q.NotifyReady(fn); err == nil {
			t.Fatal("NotifyReady on a deleted queue succeeded")
		}
	})
	t.Run("subscription publish", func(t *testing.T) {
		b := mustOpen(t, t.TempDir(), Options{Logger: quiet})
		tp, _, err := b.CreateTopic("t", TopicUpdate{})
		if err != nil {
			t.Fatal(err)
		}
		s, _, err := tp.CreateSubscription("s", SubscriptionUpdate{}, Earliest())
		if err != nil {
			t.Fatal(err)
		}
		fn, ch := notified()
		if _, err := s.NotifyReady(fn); err != nil {
			t.Fatal(err)
		}
		if _, err := tp.Publish([]NewMessage{{Body: []byte("a")}}); err != nil {
			t.Fatal(err)
		}
		waitCall(t, ch, "on a publish to its topic")
	})
}
