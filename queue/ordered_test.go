package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func mustCreateOrdered(tb testing.TB, b *Broker, name string, u ConfigUpdate) *Queue {
	tb.Helper()
	q, err := b.CreateNew(name, u, CreateOptions{Ordered: true})
	if err != nil {
		tb.Fatalf("CreateNew(%s, ordered): %v", name, err)
	}
	return q
}

// enqueueGrouped enqueues "group:body" pairs, each in its group.
func enqueueGrouped(tb testing.TB, q *Queue, pairs ...string) []uint64 {
	tb.Helper()
	msgs := make([]NewMessage, len(pairs))
	for i, p := range pairs {
		g, _, _ := strings.Cut(p, ":")
		msgs[i] = NewMessage{Body: []byte(p), Group: g}
	}
	ids, err := q.Enqueue(msgs)
	if err != nil {
		tb.Fatalf("Enqueue: %v", err)
	}
	return ids
}

func TestOrderedGroupsHoldWhileLeased(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(10 * time.Second)})
	enqueueGrouped(t, q, "a:1", "a:2", "b:1", "a:3", "b:2")

	steps := []struct {
		do   func()
		max  int
		want []string
	}{
		{max: 1, want: []string{"a:1"}},
		{max: 1, want: []string{"b:1"}}, // a is held by a:1
		{max: 10, want: nil},            // both held
	}
	var held []Message
	for i, st := range steps {
		got := receive(t, q, st.max)
		if !slices.Equal(bodies(got), st.want) && !(len(got) == 0 && st.want == nil) {
			t.Fatalf("step %d: received %v, want %v", i, bodies(got), st.want)
		}
		held = append(held, got...)
	}
	// Acking a:1 frees a: its next, and only its next... unless one
	// receive takes several, in order.
	ack(t, q, held[0].Receipt)
	if got := bodies(receive(t, q, 10)); !slices.Equal(got, []string{"a:2", "a:3"}) {
		t.Fatalf("after acking a:1: %v, want a:2 a:3 (b held by b:1)", got)
	}
	// A lease that runs out gives the message back first, not the next.
	clk.Advance(11 * time.Second)
	a2 := receive(t, q, 1)
	if !slices.Equal(bodies(a2), []string{"a:2"}) {
		t.Fatalf("after the leases ran out: %v, want a:2 again", bodies(a2))
	}
	if got := bodies(receive(t, q, 10)); !slices.Equal(got, []string{"b:1", "b:2"}) {
		t.Fatalf("b after its lease ran out: %v, want b:1 b:2", got)
	}
	// A nack of the group's message returns it to the head.
	if _, err := q.Nack([]Receipt{a2[0].Receipt}, NackOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := bodies(receive(t, q, 10)); !slices.Equal(got, []string{"a:2", "a:3"}) {
		t.Fatalf("after the nack: %v, want a:2 a:3", got)
	}
}

func ack(tb testing.TB, q *Queue, r ...Receipt) {
	tb.Helper()
	errs, err := q.Ack(r)
	if err != nil {
		tb.Fatal(err)
	}
	for _, e := range errs {
		if e != nil {
			tb.Fatalf("ack: %v", e)
		}
	}
}

// A receiver parked on an ordered queue whose ready messages are all
// held is woken when the lease holding them ends.
func TestOrderedAckWakesAWaiter(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{})
	enqueueGrouped(t, q, "a:1", "a:2")
	first := receive(t, q, 1)
	got := make(chan []Message, 1)
	go func() {
		m, err := q.Receive(context.Background(), ReceiveOptions{Max: 1, Wait: MaxWait})
		if err != nil {
			t.Error(err)
		}
		got <- m
	}()
	deadline := time.Now().Add(10 * time.Second)
	for q.waiting.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the receiver never parked")
		}
		time.Sleep(time.Millisecond)
	}
	ack(t, q, first[0].Receipt)
	select {
	case m := <-got:
		if !slices.Equal(bodies(m), []string{"a:2"}) {
			t.Fatalf("the woken receiver got %v, want a:2", bodies(m))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the parked receiver was not woken by the ack")
	}
}

func TestOrderedSurvivesARestart(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := testOptions(clk)
	b := mustOpen(t, dir, opts)
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(time.Minute)})
	enqueueGrouped(t, q, "a:1", "b:1", "a:2")
	ids, err := q.Enqueue([]NewMessage{{Body: []byte("c:1"), Group: "c", DedupID: "k1"}})
	if err != nil {
		t.Fatal(err)
	}
	leased := receive(t, q, 1) // a:1
	b.Close()

	b = mustOpen(t, dir, opts)
	q, err = b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := q.Info(); !info.Ordered {
		t.Fatal("the reopened queue is not ordered")
	}
	// The key is still in its window: no second c:1.
	again, err := q.Enqueue([]NewMessage{{Body: []byte("c:1 again"), Group: "c", DedupID: "k1"}})
	if err != nil || again[0] != ids[0] {
		t.Fatalf("a duplicate after the restart: %v %v, want the id %d", again, err, ids[0])
	}
	// a is still held by a:1's lease.
	if got := bodies(receive(t, q, 10)); !slices.Equal(got, []string{"b:1", "c:1"}) {
		t.Fatalf("after the restart: %v, want b:1 c:1", got)
	}
	ack(t, q, leased[0].Receipt)
	m := receive(t, q, 10)
	if !slices.Equal(bodies(m), []string{"a:2"}) || m[0].Group != "a" {
		t.Fatalf("after acking a:1: %v, want a:2 of group a", bodies(m))
	}
	// Past the window the key is new again.
	clk.Advance(DedupWindow + time.Second)
	fresh, err := q.Enqueue([]NewMessage{{Body: []byte("c:2"), Group: "c", DedupID: "k1"}})
	if err != nil || fresh[0] == ids[0] {
		t.Fatalf("the key after its window: %v %v, want a new id", fresh, err)
	}
}

func TestOrderedDedup(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{})
	ids, err := q.Enqueue([]NewMessage{
		{Body: []byte("1"), DedupID: "x"},
		{Body: []byte("2"), DedupID: "y"},
		{Body: []byte("1 again"), DedupID: "x"}, // the same key within the batch
		{Body: []byte("3")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ids[0] != ids[2] || ids[0] == ids[1] || ids[3] == ids[1] || ids[3] == ids[0] {
		t.Fatalf("ids %v: want the third the first's, the rest distinct", ids)
	}
	clk.Advance(DedupWindow - time.Second)
	again, err := q.Enqueue([]NewMessage{{Body: []byte("2 again"), DedupID: "y"}, {Body: []byte("4"), DedupID: "z"}})
	if err != nil || again[0] != ids[1] || again[1] <= ids[3] {
		t.Fatalf("second enqueue: %v %v", again, err)
	}
	if got := bodies(receive(t, q, 10)); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("received %v, want each message once", got)
	}
	// A queue that is not ordered refuses groups and keys.
	plain := mustCreate(t, b, "plain", ConfigUpdate{})
	for _, m := range []NewMessage{{Body: []byte("x"), Group: "g"}, {Body: []byte("x"), DedupID: "d"}} {
		if _, err := plain.Enqueue([]NewMessage{m}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("a plain queue took %+v: %v", m, err)
		}
	}
}

// Concurrent enqueues of one key: one message, one id for all.
func TestOrderedDedupConcurrent(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{})
	const n = 16
	ids := make(chan uint64, n)
	for i := range n {
		go func() {
			got, err := q.Enqueue([]NewMessage{{Body: []byte(fmt.Sprint(i)), DedupID: "same"}})
			if err != nil {
				t.Error(err)
				ids <- 0
				return
			}
			ids <- got[0]
		}()
	}
	first := <-ids
	for range n - 1 {
		if id := <-ids; id != first {
			t.Fatalf("ids %d and %d for one key", first, id)
		}
	}
	if info, _ := q.Info(); info.Counts.Total != 1 {
		t.Fatalf("the queue holds %d messages, want 1", info.Counts.Total)
	}
}

// Random receives, acks, nacks and lease expiries against the rules: a
// message is received only when every earlier message of its group is
// acked or taken by the same receive, never while its group has a lease
// from another receive, and every message is received in the end.
func TestOrderedRandom(t *testing.T) {
	for seed := range uint64(30) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { orderedRandom(t, seed) })
	}
}

func orderedRandom(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(10 * time.Second), MaxAttempts: ptr(MaxMaxAttempts)})
	groupOf := map[uint64]string{}
	acked := map[uint64]bool{}
	// leases: id → (receipt, deadline, receive number)
	type lease struct {
		r     Receipt
		until time.Time
		turn  int
	}
	leases := map[uint64]lease{}
	turn := 0
	expire := func() {
		for id, l := range leases {
			if !clk.Now().Before(l.until) {
				delete(leases, id)
			}
		}
	}
	for step := range 400 {
		switch op := rng.IntN(10); {
		case op < 3:
			var msgs []NewMessage
			for range 1 + rng.IntN(4) {
				msgs = append(msgs, NewMessage{Body: []byte("m"), Group: fmt.Sprint("g", rng.IntN(4))})
			}
			ids, err := q.Enqueue(msgs)
			if err != nil {
				t.Fatal(err)
			}
			for i, id := range ids {
				groupOf[id] = msgs[i].Group
			}
		case op < 6:
			turn++
			got := receive(t, q, 1+rng.IntN(5))
			expire()
			for _, m := range got {
				g := groupOf[m.ID]
				if m.Group != g {
					t.Fatalf("step %d: message %d of group %q, enqueued in %q", step, m.ID, m.Group, g)
				}
				for id, l := range leases {
					if groupOf[id] == g && l.turn != turn {
						t.Fatalf("step %d: message %d of %s received while %d of it is leased", step, m.ID, g, id)
					}
				}
				for id := range groupOf {
					if id < m.ID && groupOf[id] == g && !acked[id] {
						if l, ok := leases[id]; !ok || l.turn != turn {
							t.Fatalf("step %d: message %d of %s received before %d", step, m.ID, g, id)
						}
					}
				}
				leases[m.ID] = lease{m.Receipt, m.LeaseEnds, turn}
			}
		case op < 8:
			for id, l := range leases {
				if rng.IntN(2) == 0 {
					ack(t, q, l.r)
					acked[id] = true
					delete(leases, id)
				}
			}
		case op < 9:
			for id, l := range leases {
				if _, err := q.Nack([]Receipt{l.r}, NackOptions{}); err != nil {
					t.Fatal(err)
				}
				delete(leases, id)
				break
			}
		default:
			clk.Advance(time.Duration(rng.IntN(12)) * time.Second)
			expire()
		}
	}
	// Drain: everything not acked is received in the end.
	for range 1000 {
		clk.Advance(11 * time.Second)
		got := receive(t, q, 10)
		if len(got) == 0 {
			break
		}
		for _, m := range got {
			ack(t, q, m.Receipt)
			acked[m.ID] = true
		}
	}
	for id := range groupOf {
		if !acked[id] {
			t.Fatalf("message %d of %s was never received", id, groupOf[id])
		}
	}
}

// Compaction keeps the segments holding the deduplication window, even
// when every message in them is acked: a restart rebuilds the window from
// them. Once the window is over they go.
func TestOrderedCompactionKeepsTheDedupWindow(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := testOptions(clk) // 64 KiB segments
	b := mustOpen(t, dir, opts)
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{})
	body := strings.Repeat("x", 1000)
	const n = 300 // about five segments
	first := make([]uint64, n)
	for i := range n {
		ids, err := q.Enqueue([]NewMessage{{Body: []byte(body), Group: "g", DedupID: fmt.Sprint("k", i)}})
		if err != nil {
			t.Fatal(err)
		}
		first[i] = ids[0]
	}
	for {
		got := receive(t, q, 10)
		if len(got) == 0 {
			break
		}
		ack(t, q, receipts(got)...)
	}
	segments := func() int { return len(q.live().log.Segments()) }
	before := segments()
	if before < 4 {
		t.Fatalf("%d segments: the test wants several", before)
	}
	for range 3 {
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	if got := segments(); got < before-1 {
		t.Fatalf("compaction left %d of %d segments inside the deduplication window", got, before)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	q, err := b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, n / 2, n - 1} {
		ids, err := q.Enqueue([]NewMessage{{Body: []byte("again"), Group: "g", DedupID: fmt.Sprint("k", i)}})
		if err != nil || ids[0] != first[i] {
			t.Fatalf("key k%d after compaction and a restart: %v %v, want the id %d", i, ids, err, first[i])
		}
	}
	if got := receive(t, q, 10); len(got) != 0 {
		t.Fatalf("duplicates were enqueued: %v", bodies(got))
	}
	// Past the window the segments are compacted away.
	clk.Advance(DedupWindow + time.Second)
	for range 3 {
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	if got := segments(); got > 2 {
		t.Fatalf("%d segments left after the window, want the active one or two", got)
	}
}

// A dead-letter move into an ordered queue keeps the message's group; one
// into a plain queue drops it (a plain queue takes none).
func TestOrderedDeadLetterKeepsTheGroup(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	ordered := mustCreateOrdered(t, b, "dead-ordered", ConfigUpdate{})
	plain := mustCreate(t, b, "dead-plain", ConfigUpdate{})
	for _, dlq := range []*Queue{ordered, plain} {
		q := mustCreateOrdered(t, b, "src-"+dlq.Name(), ConfigUpdate{MaxAttempts: ptr(1), DeadLetterQueue: ptr(dlq.Name())})
		enqueueGrouped(t, q, "g:1")
		got := receive(t, q, 1)
		if _, err := q.Nack(receipts(got), NackOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
		moved := receive(t, dlq, 1)
		wantGroup := ""
		if dlq.Ordered() {
			wantGroup = "g"
		}
		if len(moved) != 1 || string(moved[0].Body) != "g:1" || moved[0].Group != wantGroup {
			t.Fatalf("in %s: %+v, want g:1 of group %q", dlq.Name(), moved, wantGroup)
		}
	}
}

// A rebuild of the groups (a restart, or a bulk change such as a purge or
// a redrive) keeps every leased message holding its group, not only a
// leased head.
func TestOrderedRebuildKeepsEveryLease(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	opts := testOptions(clk)
	b := mustOpen(t, dir, opts)
	q := mustCreateOrdered(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(time.Minute)})
	enqueueGrouped(t, q, "a:1", "a:2", "a:3")
	got := receive(t, q, 2) // a:1 and a:2
	if !slices.Equal(bodies(got), []string{"a:1", "a:2"}) {
		t.Fatalf("received %v", bodies(got))
	}
	if _, err := q.Nack(receipts(got[:1]), NackOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, q, 10); len(got) != 0 {
		t.Fatalf("a:2 is leased, yet %v was received", bodies(got))
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	q, err := b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if got := receive(t, q, 10); len(got) != 0 {
		t.Fatalf("after a restart, with a:2 still leased, %v was received", bodies(got))
	}
	clk.Advance(2 * time.Minute) // a:2's lease ends: the group goes on from its head
	if got := receive(t, q, 10); !slices.Equal(bodies(got), []string{"a:1", "a:2", "a:3"}) {
		t.Fatalf("after the lease ran out: %v", bodies(got))
	}
}
