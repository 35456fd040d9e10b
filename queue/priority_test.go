package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// put enqueues one message per body at priority pri (nil: the default).
func put(tb testing.TB, q *Queue, pri *uint32, bodies ...string) []uint64 {
	tb.Helper()
	msgs := make([]NewMessage, len(bodies))
	for i, b := range bodies {
		msgs[i] = NewMessage{Body: []byte(b), Priority: pri}
	}
	ids, err := q.Enqueue(msgs)
	if err != nil {
		tb.Fatalf("Enqueue: %v", err)
	}
	return ids
}

func TestReceiveTakesTheLowestPriorityFirstThenFIFO(t *testing.T) {
	for _, restart := range []string{"none", "replay", "snapshot"} {
		t.Run(restart, func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := testOptions(clk)
			if restart == "snapshot" {
				opts.SnapshotEvery = 1
			}
			b := mustOpen(t, dir, opts)
			q := mustCreate(t, b, "q", ConfigUpdate{})
			put(t, q, nil, "default-1")
			put(t, q, ptr(uint32(5)), "five-1", "five-2")
			put(t, q, ptr(uint32(0)), "zero")
			put(t, q, nil, "default-2")
			put(t, q, ptr(uint32(5000)), "late")
			if restart != "none" {
				b.Maintain()
				b.Close()
				b = mustOpen(t, dir, opts)
				q = mustQueue(t, b, "q")
			}
			got := receive(t, q, 10)
			wantBodies(t, got, "zero", "five-1", "five-2", "default-1", "default-2", "late")
			for i, want := range []uint32{0, 5, 5, DefaultPriority, DefaultPriority, 5000} {
				if got[i].Priority != want {
					t.Errorf("%s has priority %d, want %d", got[i].Body, got[i].Priority, want)
				}
			}
		})
	}
}

func TestReleaseInPlaceGoesBackAheadOfYoungerMessagesAtItsPriority(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	q := mustCreate(t, b, "q", ConfigUpdate{MaxAttempts: ptr(100)}) // every case leases each message again
	put(t, q, nil, "a", "b", "c")
	first := receive(t, q, 1)
	for _, tt := range []struct {
		name string
		o    NackOptions
		want []string
	}{
		{"in place", NackOptions{InPlace: true}, []string{"a", "b", "c"}},
		{"back", NackOptions{}, []string{"b", "c", "a"}},
		{"in place overrides front", NackOptions{InPlace: true, Front: true}, []string{"a", "b", "c"}},
		{"in place at a new priority", NackOptions{InPlace: true, Priority: ptr(uint32(2000))}, []string{"b", "c", "a"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := one(q.Nack(receipts(first), tt.o)); err != nil {
				t.Fatal(err)
			}
			all := receive(t, q, 10)
			wantBodies(t, all, tt.want...)
			// Everything back where it started: a at the default priority
			// and ready in place, b and c nacked in place too.
			for _, m := range all {
				if err := one(q.Nack([]Receipt{m.Receipt}, NackOptions{InPlace: true, Priority: ptr(DefaultPriority)})); err != nil {
					t.Fatal(err)
				}
			}
			first = receive(t, q, 1)
			wantBodies(t, first, "a")
		})
	}
}

func TestAMessageLeasesForItsOwnVisibilityUnlessTheReceiveSaysOtherwise(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreate(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(time.Minute)})
	if _, err := q.Enqueue([]NewMessage{
		{Body: []byte("own"), VisibilityTimeout: 5 * time.Second},
		{Body: []byte("queue's")},
		{Body: []byte("receive's"), VisibilityTimeout: 5 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()
	got := receive(t, q, 2)
	if want := now.Add(5 * time.Second); !got[0].LeaseEnds.Equal(want) || got[0].VisibilityTimeout != 5*time.Second {
		t.Errorf("own: lease ends %v (visibility %s), want %v", got[0].LeaseEnds, got[0].VisibilityTimeout, want)
	}
	if want := now.Add(time.Minute); !got[1].LeaseEnds.Equal(want) || got[1].VisibilityTimeout != 0 {
		t.Errorf("queue's: lease ends %v (visibility %s), want %v", got[1].LeaseEnds, got[1].VisibilityTimeout, want)
	}
	explicit, err := q.Receive(t.Context(), ReceiveOptions{Visibility: 2 * time.Hour})
	if err != nil || len(explicit) != 1 || !explicit[0].LeaseEnds.Equal(now.Add(2*time.Hour)) {
		t.Fatalf("receive's: %+v, %v; want a lease of 2h", explicit, err)
	}
	// The table has the own lease length too: the lease runs out then.
	clk.Advance(6 * time.Second)
	again := receive(t, q, 10)
	wantBodies(t, again, "own")
	if _, err := q.Enqueue([]NewMessage{{Body: []byte("x"), VisibilityTimeout: MaxVisibility + 1}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("visibility over the limit: %v, want ErrInvalid", err)
	}
}

func TestFailWithPriorityBuriesAtItAndRedriveKeepsIt(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	put(t, q, nil, "buried", "other")
	got := receive(t, q, 1)
	if err := one(q.FailWithPriority(receipts(got), 1)); err != nil {
		t.Fatal(err)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	q = mustQueue(t, b, "q")
	dead, err := q.Dead(0, 10)
	if err != nil || len(dead) != 1 || dead[0].Priority != 1 {
		t.Fatalf("Dead = %+v, %v; want buried at priority 1", dead, err)
	}
	if n, err := q.Redrive(0); n != 1 || err != nil {
		t.Fatalf("Redrive = %d, %v", n, err)
	}
	wantBodies(t, receive(t, q, 10), "buried", "other")
}

func TestMessagesByID(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreate(t, b, "q", ConfigUpdate{})
	ids := put(t, q, ptr(uint32(7)), "ready", "leased", "dead")
	delay := time.Minute
	later, err := q.Enqueue([]NewMessage{{Body: []byte("delayed"), Delay: &delay}, {Body: []byte("delayed-longer"), Delay: ptr(2 * delay)}})
	if err != nil {
		t.Fatal(err)
	}
	leased := receive(t, q, 2) // ready, leased
	if err := one(q.Nack(receipts(leased[:1]), NackOptions{InPlace: true})); err != nil {
		t.Fatal(err)
	}
	if err := one(q.Fail([]Receipt{receive(t, q, 2)[1].Receipt})); err != nil { // ready again, then dead
		t.Fatal(err)
	}
	// ids[0] was leased again by that receive: nack it back.
	if m, _ := q.Get(ids[0]); m.State == StateLeased {
		if _, err := q.Nack([]Receipt{{ID: ids[0], Attempt: uint16(m.Attempts)}}, NackOptions{InPlace: true}); err != nil {
			t.Fatal(err)
		}
	}

	for _, tt := range []struct {
		id    uint64
		state State
		body  string
	}{
		{ids[0], StateReady, "ready"},
		{ids[1], StateLeased, "leased"},
		{ids[2], StateDead, "dead"},
		{later[0], StateDelayed, "delayed"},
	} {
		m, err := q.Get(tt.id)
		if err != nil || m.State != tt.state || string(m.Body) != tt.body || (tt.body != "delayed" && m.Priority != 7) {
			t.Errorf("Get(%d) = %s %q priority %d, %v; want %s %q", tt.id, m.State, m.Body, m.Priority, err, tt.state, tt.body)
		}
	}
	if _, err := q.Get(99); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(99): %v, want ErrNotFound", err)
	}
	if m, err := q.PeekReady(); err != nil || m.ID != ids[0] {
		t.Errorf("PeekReady = %d, %v; want %d", m.ID, err, ids[0])
	}
	if id, pri, ok, err := q.NextReady(); id != ids[0] || pri != 7 || !ok || err != nil {
		t.Errorf("NextReady = %d %d %v %v", id, pri, ok, err)
	}
	if m, err := q.PeekDelayed(); err != nil || m.ID != later[0] || !m.ReadyAt.Equal(clk.Now().Add(delay)) {
		t.Errorf("PeekDelayed = %d at %v, %v; want %d", m.ID, m.ReadyAt, err, later[0])
	}
	if n, err := q.ReadyBelow(DefaultPriority); n != 1 || err != nil {
		t.Errorf("ReadyBelow = %d, %v; want 1", n, err)
	}

	// LeaseReady takes only a ready message: a dead or delayed one stays.
	for _, id := range []uint64{ids[2], later[0]} {
		if _, err := q.LeaseReady(id, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("LeaseReady(%d) of a message not ready: %v, want ErrNotFound", id, err)
		}
	}
	if m, _ := q.Get(ids[2]); m.State != StateDead {
		t.Errorf("after LeaseReady the dead message is %s", m.State)
	}

	// Kick: dead and delayed become ready; ready and leased are not kicked.
	for _, tt := range []struct {
		id   uint64
		want error
	}{{ids[0], ErrNotFound}, {ids[1], ErrNotFound}, {ids[2], nil}, {later[0], nil}, {99, ErrNotFound}} {
		if err := q.Kick(tt.id); !errors.Is(err, tt.want) {
			t.Errorf("Kick(%d) = %v, want %v", tt.id, err, tt.want)
		}
	}
	if n, err := q.KickDelayed(5); n != 1 || err != nil {
		t.Errorf("KickDelayed = %d, %v; want 1 (delayed-longer)", n, err)
	}
	if _, err := q.PeekDelayed(); !errors.Is(err, ErrNotFound) {
		t.Errorf("PeekDelayed with none delayed: %v", err)
	}

	// Remove: not a leased one; LeaseID: not a leased one either.
	errs, err := q.Remove([]uint64{ids[2], ids[1], 99})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrLeased) || !errors.Is(errs[2], ErrNotFound) {
		t.Fatalf("Remove = %v, %v", errs, err)
	}
	if _, err := q.LeaseID(ids[1], 0); !errors.Is(err, ErrLeased) {
		t.Errorf("LeaseID of a leased message: %v", err)
	}
	m, err := q.LeaseID(later[1], time.Hour)
	if err != nil || string(m.Body) != "delayed-longer" || m.State != StateLeased || !m.LeaseEnds.Equal(clk.Now().Add(time.Hour)) {
		t.Fatalf("LeaseID = %+v, %v", m, err)
	}
	if err := one(q.Ack([]Receipt{m.Receipt})); err != nil {
		t.Fatalf("ack of LeaseID's receipt: %v", err)
	}
	wantBodies(t, receive(t, q, 10), "ready", "delayed")
}

func TestSerialsAreUniqueAndKept(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	serials := map[uint32]string{}
	for i := range 3 {
		name := fmt.Sprint("q", i)
		s, err := mustCreate(t, b, name, ConfigUpdate{}).Serial()
		if err != nil || s == 0 || serials[s] != "" {
			t.Fatalf("%s: serial %d, %v (taken: %v)", name, s, err, serials)
		}
		serials[s] = name
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	for s, name := range serials {
		q, err := b.QueueBySerial(s)
		if err != nil || q.Name() != name {
			t.Fatalf("QueueBySerial(%d) = %v, %v; want %s", s, q, err, name)
		}
	}
	if _, err := b.QueueBySerial(99); !errors.Is(err, ErrQueueNotFound) {
		t.Fatalf("QueueBySerial(99): %v", err)
	}
}

func TestALabelIsKeptAndNeverChanged(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	if _, _, err := b.CreateLabeled("t1", "a/b", ConfigUpdate{}); err != nil {
		t.Fatal(err)
	}
	if q, created, err := b.CreateLabeled("t1", "other", ConfigUpdate{MaxAttempts: ptr(9)}); err != nil || created || q.Label() != "a/b" {
		t.Fatalf("CreateLabeled of an existing queue = %v, %v; want its label kept", created, err)
	}
	if _, _, err := b.CreateLabeled("t2", strings.Repeat("x", MaxLabelBytes+1), ConfigUpdate{}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a label over MaxLabelBytes: %v", err)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	if q := mustQueue(t, b, "t1"); q.Label() != "a/b" || q.Config().MaxAttempts != 9 {
		t.Fatalf("after a restart: label %q, config %+v", q.Label(), q.Config())
	}
}

// A queue.json written before serials has none: the queue gets the next
// one when first asked, and keeps it.
func TestAQueueWithoutASerialGetsOneOnFirstUse(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	mustCreate(t, b, "old", ConfigUpdate{})
	mustCreate(t, b, "new", ConfigUpdate{})
	old := mustQueue(t, b, "old")
	if err := writeConfig(b.opts.FS, old.dir, queueFile{Config: old.Config()}); err != nil {
		t.Fatal(err)
	}
	b.Close()

	b = mustOpen(t, dir, opts)
	s, err := mustQueue(t, b, "old").Serial()
	if err != nil || s != 3 {
		t.Fatalf("Serial of a queue without one = %d, %v; want 3, after new's 2", s, err)
	}
	b.Close()
	b = mustOpen(t, dir, opts)
	if q, err := b.QueueBySerial(3); err != nil || q.Name() != "old" {
		t.Fatalf("after a restart QueueBySerial(3) = %v, %v", q, err)
	}
}

func TestATopicRefusesAPriority(t *testing.T) {
	b := mustOpen(t, t.TempDir(), testOptions(newClock()))
	tp, _, err := b.CreateTopic("t", TopicUpdate{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tp.Publish([]NewMessage{{Body: []byte("x"), Priority: ptr(uint32(1))}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Publish with a priority: %v, want ErrInvalid", err)
	}
}

// A lease of a message's own length is in the state log before Receive
// hands the message out: a crash right after leaves that length, not the
// queue's.
func TestAnOwnLeaseLengthSurvivesACrash(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := testOptions(clk)
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "q", ConfigUpdate{VisibilityTimeout: ptr(time.Hour)})
	if _, err := q.Enqueue([]NewMessage{{Body: []byte("x"), VisibilityTimeout: 5 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	got := receive(t, q, 1)
	if err := simulateCrash(b, false); err != nil {
		t.Fatal(err)
	}
	b = mustOpen(t, dir, opts)
	m, err := mustQueue(t, b, "q").Get(got[0].ID)
	if err != nil || m.State != StateLeased || !m.LeaseEnds.Equal(got[0].LeaseEnds) {
		t.Fatalf("after a crash: %s until %v, %v; want leased until %v", m.State, m.LeaseEnds, err, got[0].LeaseEnds)
	}
}

// Compaction rewrites records, and priorities and lease lengths come
// through it: in the table, and in the records a restart reads again.
func TestPrioritiesSurviveCompactionAndARestart(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := testOptions(clk)
	opts.SegmentSize = 8 << 10
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	body := strings.Repeat("b", 200)
	want := map[uint64]uint32{} // the kept messages' priorities
	for i := range 400 {
		pri := uint32(i % 7)
		ids, err := q.Enqueue([]NewMessage{{Body: []byte(body), Priority: &pri, VisibilityTimeout: time.Duration(i%3+1) * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			want[ids[0]] = pri
		}
	}
	before, _ := q.Info()
	for {
		got := receive(t, q, MaxReceive)
		if len(got) == 0 {
			break
		}
		var ack []Receipt
		for _, m := range got {
			if _, keep := want[m.ID]; !keep {
				ack = append(ack, m.Receipt)
			}
		}
		if _, err := q.Ack(ack); err != nil {
			t.Fatal(err)
		}
	}
	for range 10 {
		b.Maintain()
	}
	after, _ := q.Info()
	if after.Bytes >= before.Bytes/2 {
		t.Fatalf("%d bytes on disk after compaction, from %d: nothing was rewritten", after.Bytes, before.Bytes)
	}
	b.Close()
	for _, name := range []string{snapshotName, prevSnapshotName} {
		os.Remove(filepath.Join(dir, "queues", "q", name)) // rebuild from the records and the state log
	}
	b = mustOpen(t, dir, opts)
	clk.Advance(time.Hour) // every lease has run out
	msgs, err := mustQueue(t, b, "q").Peek(0, MaxList)
	if err != nil || len(msgs) != len(want) {
		t.Fatalf("Peek = %d messages, %v; want %d", len(msgs), err, len(want))
	}
	for _, m := range msgs {
		if m.Priority != want[m.ID] || m.VisibilityTimeout == 0 {
			t.Errorf("message %d: priority %d, visibility %s; want %d and its own", m.ID, m.Priority, m.VisibilityTimeout, want[m.ID])
		}
	}
}
