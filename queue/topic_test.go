package queue

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func mustTopic(tb testing.TB, b *Broker, name string, u TopicUpdate) *Topic {
	tb.Helper()
	t, _, err := b.CreateTopic(name, u)
	if err != nil {
		tb.Fatalf("CreateTopic(%s): %v", name, err)
	}
	return t
}

func mustSub(tb testing.TB, t *Topic, name string, start Position) *Subscription {
	tb.Helper()
	s, _, err := t.CreateSubscription(name, SubscriptionUpdate{}, start)
	if err != nil {
		tb.Fatalf("CreateSubscription(%s): %v", name, err)
	}
	return s
}

func publish(tb testing.TB, t *Topic, bodies ...string) []uint64 {
	tb.Helper()
	msgs := make([]NewMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = NewMessage{Body: []byte(b)}
	}
	ids, err := t.Publish(msgs)
	if err != nil {
		tb.Fatalf("Publish: %v", err)
	}
	return ids
}

func subReceive(tb testing.TB, s *Subscription, max int) []Message {
	tb.Helper()
	msgs, err := s.Receive(context.Background(), ReceiveOptions{Max: max})
	if err != nil {
		tb.Fatalf("Receive(%s): %v", s.Name(), err)
	}
	return msgs
}

func subAck(tb testing.TB, s *Subscription, msgs []Message) {
	tb.Helper()
	errs, err := s.Ack(receipts(msgs))
	if err := errors.Join(append(errs, err)...); err != nil {
		tb.Fatalf("Ack(%s): %v", s.Name(), err)
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i+1)
	}
	return out
}

func reopenTopic(tb testing.TB, b *Broker, dir string, opts Options, name string) (*Broker, *Topic) {
	tb.Helper()
	if err := b.Close(); err != nil {
		tb.Fatalf("Close: %v", err)
	}
	b = mustOpen(tb, dir, opts)
	t, err := b.Topic(name)
	if err != nil {
		tb.Fatalf("Topic(%s) after reopen: %v", name, err)
	}
	return b, t
}

func sub(tb testing.TB, t *Topic, name string) *Subscription {
	tb.Helper()
	s, err := t.Subscription(name)
	if err != nil {
		tb.Fatalf("Subscription(%s): %v", name, err)
	}
	return s
}

func TestTopicFansOutToEverySubscriptionInOrderAndSurvivesARestart(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	opts := testOptions(clk)
	b := mustOpen(t, dir, opts)
	tp := mustTopic(t, b, "events", TopicUpdate{})
	names := []string{"mailer", "indexer", "audit"}
	for _, n := range names {
		mustSub(t, tp, n, Earliest())
	}
	publish(t, tp, numbered("m", 10)...)
	for _, n := range names {
		s := sub(t, tp, n)
		got := subReceive(t, s, 4)
		if want := numbered("m", 4); !slices.Equal(bodies(got), want) {
			t.Fatalf("%s received %v, want %v", n, bodies(got), want)
		}
		subAck(t, s, got)
	}
	// mailer leaves m5..m7 leased, unacked, across the restart.
	leased := subReceive(t, sub(t, tp, "mailer"), 3)

	b, tp = reopenTopic(t, b, dir, opts, "events")
	for _, n := range names {
		info, err := sub(t, tp, n).Info()
		if err != nil {
			t.Fatal(err)
		}
		want := Counts{Ready: 6, Total: 6}
		if n == "mailer" {
			want = Counts{Ready: 3, Leased: 3, Total: 6}
		}
		if info.Counts != want || info.Lag != 6 || info.Next != 5+uint64(want.Leased) {
			t.Fatalf("%s after restart: counts %+v lag %d next %d; want %+v lag 6 next %d", n, info.Counts, info.Lag, info.Next, want, 5+want.Leased)
		}
	}
	// The leases held across the restart are still good.
	subAck(t, sub(t, tp, "mailer"), leased)
	for _, n := range names {
		s := sub(t, tp, n)
		got := subReceive(t, s, 10)
		want := numbered("m", 10)[4:]
		if n == "mailer" {
			want = want[3:]
		}
		if !slices.Equal(bodies(got), want) {
			t.Fatalf("%s after restart received %v, want %v", n, bodies(got), want)
		}
		subAck(t, s, got)
		if more := subReceive(t, s, 10); len(more) != 0 {
			t.Fatalf("%s: acked messages delivered again: %v", n, bodies(more))
		}
	}
	info, err := tp.Info()
	if err != nil {
		t.Fatal(err)
	}
	if info.TailID != 10 || info.HeadID != 1 || len(info.Subscriptions) != 3 || info.Subscriptions[0].Name != "audit" {
		t.Fatalf("topic info %+v", info)
	}
}

func TestSubscriptionStartsWhereItIsTold(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	tp := mustTopic(t, b, "t", TopicUpdate{})
	publish(t, tp, "a", "b")
	clk.Advance(time.Minute)
	mid := clk.Now()
	publish(t, tp, "c", "d")
	tests := []struct {
		start Position
		want  []string
	}{
		{Earliest(), []string{"a", "b", "c", "d", "e"}},
		{Latest(), []string{"e"}},
		{AtID(2), []string{"b", "c", "d", "e"}},
		{AtID(9), nil}, // past the tail: from id 9 on
		{AtTime(mid), []string{"c", "d", "e"}},
		{AtTime(mid.Add(time.Hour)), []string{"e"}},
	}
	for i, tt := range tests {
		mustSub(t, tp, fmt.Sprintf("s%d", i), tt.start)
	}
	publish(t, tp, "e")
	for i, tt := range tests {
		got := bodies(subReceive(t, sub(t, tp, fmt.Sprintf("s%d", i)), 10))
		if !slices.Equal(got, tt.want) && !(len(got) == 0 && len(tt.want) == 0) {
			t.Fatalf("start %s: received %v, want %v", tt.start, got, tt.want)
		}
	}
}

func TestSeekRedeliversAndMakesHeldLeasesStale(t *testing.T) {
	dir, clk := t.TempDir(), newClock()
	opts := testOptions(clk)
	b := mustOpen(t, dir, opts)
	tp := mustTopic(t, b, "t", TopicUpdate{})
	s := mustSub(t, tp, "s", Earliest())
	publish(t, tp, numbered("m", 5)...)
	first := subReceive(t, s, 2)
	subAck(t, s, first)
	held := subReceive(t, s, 1) // m3, attempt 1
	if id, err := s.Seek(Earliest()); err != nil || id != 1 {
		t.Fatalf("Seek(earliest) = %d, %v", id, err)
	}
	errs, err := s.Ack(receipts(held))
	if err != nil || !errors.Is(errs[0], ErrStaleReceipt) {
		t.Fatalf("ack of a lease held across a seek: %v, %v; want stale", errs, err)
	}
	again := subReceive(t, s, 5)
	if want := numbered("m", 5); !slices.Equal(bodies(again), want) {
		t.Fatalf("after the seek: %v, want %v", bodies(again), want)
	}
	// Attempts keep counting: no receipt handed out before is reused.
	for _, m := range again {
		if slices.Contains(receipts(first), m.Receipt) || slices.Contains(receipts(held), m.Receipt) {
			t.Fatalf("receipt %s handed out again after the seek", m.Receipt)
		}
	}
	subAck(t, s, again)
	b, tp = reopenTopic(t, b, dir, opts, "t")
	s = sub(t, tp, "s")
	if got := subReceive(t, s, 5); len(got) != 0 {
		t.Fatalf("after restart: %v delivered again", bodies(got))
	}
	// A seek of the whole topic moves every subscription.
	other := mustSub(t, tp, "other", Latest())
	if id, err := tp.Seek(AtID(4)); err != nil || id != 4 {
		t.Fatalf("topic Seek(4) = %d, %v", id, err)
	}
	for _, x := range []*Subscription{s, other} {
		if got := bodies(subReceive(t, x, 5)); !slices.Equal(got, []string{"m4", "m5"}) {
			t.Fatalf("%s after the topic seek: %v", x.Name(), got)
		}
	}
}

func TestSubscriptionNackOrderAmongUnreadMessages(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	tp := mustTopic(t, b, "t", TopicUpdate{})
	s := mustSub(t, tp, "s", Earliest())
	publish(t, tp, numbered("m", 4)...)
	got := subReceive(t, s, 2)                                          // m1, m2
	if _, err := s.Nack(receipts(got[:1]), NackOptions{}); err != nil { // m1 to the back: after m4
		t.Fatal(err)
	}
	if _, err := s.Nack(receipts(got[1:]), NackOptions{Front: true}); err != nil { // m2 first
		t.Fatal(err)
	}
	publish(t, tp, "m5") // after the nack: goes after m1
	order := bodies(subReceive(t, s, 10))
	if want := []string{"m2", "m3", "m4", "m1", "m5"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v", order, want)
	}
}

func TestSubscriptionLongPollWakesOnPublish(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	tp := mustTopic(t, b, "t", TopicUpdate{})
	subs := []*Subscription{mustSub(t, tp, "a", Latest()), mustSub(t, tp, "b", Latest())}
	done := make(chan []Message, len(subs))
	for _, s := range subs {
		go func() {
			msgs, err := s.Receive(context.Background(), ReceiveOptions{Wait: time.Minute})
			if err != nil {
				t.Error(err)
			}
			done <- msgs
		}()
	}
	// Publish until both have it: a receiver may not have parked yet.
	deadline := time.Now().Add(10 * time.Second)
	got := 0
	for got < len(subs) && time.Now().Before(deadline) {
		publish(t, tp, "wake")
		select {
		case msgs := <-done:
			if len(msgs) != 1 || string(msgs[0].Body) != "wake" {
				t.Fatalf("woke with %v", bodies(msgs))
			}
			got++
		case <-time.After(50 * time.Millisecond):
		}
	}
	if got != len(subs) {
		t.Fatalf("%d of %d long polls woke", got, len(subs))
	}
}

func TestSubscriptionPeekShowsUnreadMessages(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	tp := mustTopic(t, b, "t", TopicUpdate{})
	s := mustSub(t, tp, "s", Earliest())
	publish(t, tp, numbered("m", 4)...)
	leased := subReceive(t, s, 1)
	peeked, err := s.Peek(0, 10)
	if err != nil {
		t.Fatal(err)
	}
	var states []string
	for _, m := range peeked {
		states = append(states, fmt.Sprintf("%s:%s", m.Body, m.State))
	}
	if want := []string{"m1:leased", "m2:ready", "m3:ready", "m4:ready"}; !slices.Equal(states, want) {
		t.Fatalf("peek %v, want %v", states, want)
	}
	if peeked, _ := s.Peek(2, 1); len(peeked) != 1 || string(peeked[0].Body) != "m3" {
		t.Fatalf("peek after 2, limit 1: %v", bodies(peeked))
	}
	subAck(t, s, leased)
}

func TestSubscriptionDeadLettersGoToAQueue(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	dlq := mustCreate(t, b, "dead", ConfigUpdate{})
	tp := mustTopic(t, b, "t", TopicUpdate{})
	one, name := 1, "dead"
	s, _, err := tp.CreateSubscription("s", SubscriptionUpdate{MaxAttempts: &one, DeadLetterQueue: &name}, Earliest())
	if err != nil {
		t.Fatal(err)
	}
	keep := mustSub(t, tp, "keep", Earliest())
	publish(t, tp, "poison", "fine")
	got := subReceive(t, s, 1)
	if _, err := s.Nack(receipts(got), NackOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Maintain(); err != nil {
		t.Fatal(err)
	}
	moved := receive(t, dlq, 10)
	if !slices.Equal(bodies(moved), []string{"poison"}) {
		t.Fatalf("dead-letter queue holds %v", bodies(moved))
	}
	// The other subscription is untouched.
	if got := bodies(subReceive(t, keep, 10)); !slices.Equal(got, []string{"poison", "fine"}) {
		t.Fatalf("keep received %v", got)
	}
	if info, _ := s.Info(); info.Counts.Dead != 0 || info.Stats.DeadLettered != 1 || info.Counts.Ready != 1 {
		t.Fatalf("s after the move: %+v", info)
	}
}

func TestSubscriptionMemoryDoesNotGrowWithTheBacklog(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	tp := mustTopic(t, b, "t", TopicUpdate{})
	var subs []*Subscription
	for i := range 20 {
		subs = append(subs, mustSub(t, tp, fmt.Sprintf("s%d", i), Earliest()))
	}
	batch := make([]NewMessage, 1000)
	for i := range batch {
		batch[i] = NewMessage{Body: []byte("x")}
	}
	for range 20 {
		if _, err := tp.Publish(batch); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range subs {
		q := s.q.live()
		q.mu.Lock()
		live, read := q.t.Live(), q.t.ReadUpTo()
		q.mu.Unlock()
		if live != 0 || read != 0 {
			t.Fatalf("%s holds %d entries (read to %d) for an unread backlog", s.Name(), live, read)
		}
		if info, _ := s.Info(); info.Counts.Ready != 20_000 || info.Lag != 20_000 {
			t.Fatalf("%s: %+v", s.Name(), info)
		}
	}
}

func TestTopicRetention(t *testing.T) {
	// Segments of 1 KiB hold about 8 messages of 100 bytes.
	setup := func(t *testing.T, u TopicUpdate) (*Broker, *Topic, *clock) {
		clk := newClock()
		opts := testOptions(clk)
		opts.SegmentSize = 1 << 10
		b := mustOpen(t, t.TempDir(), opts)
		return b, mustTopic(t, b, "t", u), clk
	}
	body := string(make([]byte, 100))
	publishN := func(t *testing.T, tp *Topic, n int) {
		for range n {
			publish(t, tp, body)
		}
	}
	t.Run("a segment every subscription finished goes at once", func(t *testing.T) {
		zero := time.Duration(0)
		b, tp, _ := setup(t, TopicUpdate{Retention: &zero})
		fast, slow := mustSub(t, tp, "fast", Earliest()), mustSub(t, tp, "slow", Earliest())
		publishN(t, tp, 40)
		subAck(t, fast, subReceive(t, fast, 40))
		must(t, b.Maintain())
		if info, _ := tp.Info(); info.HeadID != 1 {
			t.Fatalf("removed while slow had read nothing: head %d", info.HeadID)
		}
		subAck(t, slow, subReceive(t, slow, 20))
		must(t, b.Maintain())
		info, _ := tp.Info()
		if info.HeadID <= 1 || info.HeadID > 21 {
			t.Fatalf("head %d after both finished 1..20", info.HeadID)
		}
		if si, _ := slow.Info(); si.Skipped != 0 || si.Lag != 20 {
			t.Fatalf("slow: skipped %d lag %d; want 0 and 20", si.Skipped, si.Lag)
		}
	})
	t.Run("max bytes wins over a slow subscription, which counts what it skipped", func(t *testing.T) {
		max := int64(4 << 10)
		b, tp, _ := setup(t, TopicUpdate{MaxBytes: &max})
		slow := mustSub(t, tp, "slow", Earliest())
		publishN(t, tp, 100)
		held := subReceive(t, slow, 3) // leased when retention takes them
		must(t, b.Maintain())
		info, _ := tp.Info()
		if info.Bytes > max+2<<10 || info.HeadID <= 1 {
			t.Fatalf("after retention: %d bytes, head %d (max %d)", info.Bytes, info.HeadID, max)
		}
		si, _ := slow.Info()
		if si.Skipped != info.HeadID-1 || si.Lag != int(info.TailID-info.HeadID+1) {
			t.Fatalf("slow: skipped %d lag %d; want %d and %d", si.Skipped, si.Lag, info.HeadID-1, info.TailID-info.HeadID+1)
		}
		errs, err := slow.Ack(receipts(held))
		if err != nil || !errors.Is(errs[0], ErrStaleReceipt) {
			t.Fatalf("ack of a lease retention took: %v %v", errs, err)
		}
		got := subReceive(t, slow, 1)
		if len(got) != 1 || got[0].ID != info.HeadID {
			t.Fatalf("next delivery %v, want id %d", got, info.HeadID)
		}
	})
	t.Run("time retention removes old segments, with or without subscriptions", func(t *testing.T) {
		hour := time.Hour
		b, tp, clk := setup(t, TopicUpdate{Retention: &hour})
		publishN(t, tp, 30)
		clk.Advance(2 * time.Hour)
		publishN(t, tp, 10)
		must(t, b.Maintain())
		info, _ := tp.Info()
		if info.HeadID <= 30-8 || info.HeadID > 31 {
			t.Fatalf("head %d: the old segments should be gone, the new kept", info.HeadID)
		}
		s := mustSub(t, tp, "late", Earliest())
		if got := subReceive(t, s, 100); len(got) == 0 || got[0].ID != info.HeadID {
			t.Fatalf("earliest after retention starts at %v, want %d", got, info.HeadID)
		}
	})
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

func TestTopicAndSubscriptionLifecycle(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	if _, _, err := b.CreateTopic("bad/name", TopicUpdate{}); !errors.Is(err, ErrInvalidName) {
		t.Fatalf("CreateTopic(bad/name) = %v", err)
	}
	neg := -time.Second
	if _, _, err := b.CreateTopic("t", TopicUpdate{Retention: &neg}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative retention: %v", err)
	}
	if _, err := b.Topic("t"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("a refused create left a topic: %v", err)
	}
	tp := mustTopic(t, b, "t", TopicUpdate{})
	if tp.Config() != DefaultTopicConfig {
		t.Fatalf("config %+v", tp.Config())
	}
	day := 24 * time.Hour
	if _, created, err := b.CreateTopic("t", TopicUpdate{Retention: &day}); err != nil || created || tp.Config().Retention != day {
		t.Fatalf("update: created %v, %v, %+v", created, err, tp.Config())
	}
	if _, err := tp.Subscription("s"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("missing subscription: %v", err)
	}
	zero := 0
	if _, _, err := tp.CreateSubscription("s", SubscriptionUpdate{MaxAttempts: &zero}, Latest()); !errors.Is(err, ErrInvalid) {
		t.Fatalf("max_attempts 0: %v", err)
	}
	s := mustSub(t, tp, "s", Latest())
	vis := time.Minute
	if _, created, err := tp.CreateSubscription("s", SubscriptionUpdate{VisibilityTimeout: &vis}, Earliest()); err != nil || created || s.Config().VisibilityTimeout != vis {
		t.Fatalf("subscription update: %v %v %+v", created, err, s.Config())
	}
	// A queue may have a topic's name: they are separate namespaces.
	mustCreate(t, b, "t", ConfigUpdate{})
	b, tp = reopenTopic(t, b, dir, opts, "t")
	if tp.Config().Retention != day || sub(t, tp, "s").Config().VisibilityTimeout != vis {
		t.Fatalf("after reopen: %+v, %+v", tp.Config(), sub(t, tp, "s").Config())
	}
	must(t, tp.DeleteSubscription("s"))
	if _, err := tp.Subscription("s"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("deleted subscription: %v", err)
	}
	must(t, b.DeleteTopic("t"))
	if _, err := tp.Publish([]NewMessage{{Body: []byte("x")}}); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("publish to a deleted topic: %v", err)
	}
	if len(b.Topics()) != 0 {
		t.Fatalf("topics after delete: %+v", b.Topics())
	}
	if _, err := b.Queue("t"); err != nil {
		t.Fatalf("deleting the topic took the queue: %v", err)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	if _, err := b.Topic("t"); !errors.Is(err, ErrTopicNotFound) {
		t.Fatalf("deleted topic came back: %v", err)
	}
}

func TestADamagedSubscriptionIsListedAndTheOthersServe(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	tp := mustTopic(t, b, "t", TopicUpdate{})
	mustSub(t, tp, "bad", Earliest())
	mustSub(t, tp, "good", Earliest())
	publish(t, tp, "m")
	b.Close()
	if err := os.WriteFile(filepath.Join(dir, "topics", "t", "subscriptions", "bad", subscriptionFileName), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir, opts)
	tp, err := b.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Subscription("bad"); !errors.Is(err, ErrQueueDamaged) {
		t.Fatalf("damaged subscription: %v", err)
	}
	info, err := tp.Info()
	if err != nil || len(info.Subscriptions) != 2 || info.Subscriptions[0].Name != "bad" || !errors.Is(info.Subscriptions[0].Err, ErrQueueDamaged) || info.Subscriptions[1].Err != nil {
		t.Fatalf("topic info lists %+v, %v", info.Subscriptions, err)
	}
	if got := bodies(subReceive(t, sub(t, tp, "good"), 5)); !slices.Equal(got, []string{"m"}) {
		t.Fatalf("the good subscription received %v", got)
	}
	must(t, tp.DeleteSubscription("bad"))
	if _, err := tp.Subscription("bad"); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("after deleting the damaged subscription: %v", err)
	}
	// A deleted subscription's handle says so.
	good := sub(t, tp, "good")
	must(t, tp.DeleteSubscription("good"))
	if _, err := good.Receive(context.Background(), ReceiveOptions{}); !errors.Is(err, ErrSubscriptionNotFound) {
		t.Fatalf("receive on a deleted subscription: %v", err)
	}
}
