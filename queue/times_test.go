package queue

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Peek says when a delayed message becomes ready and when a lease ends;
// Receive says when its lease ends; Info says how old the oldest ready
// message is. All on the injected clock.
func TestMessagesAndInfoSayWhenThingsHappen(t *testing.T) {
	clk := newClock()
	b := mustOpen(t, t.TempDir(), testOptions(clk))
	q := mustCreate(t, b, "jobs", ConfigUpdate{VisibilityTimeout: ptr(30 * time.Second)})
	start := clk.Now()

	if info, err := q.Info(); err != nil || !info.OldestReady.IsZero() {
		t.Fatalf("empty queue: OldestReady = %v, %v; want zero", info.OldestReady, err)
	}
	enqueue(t, q, "first")
	clk.Advance(time.Second)
	enqueue(t, q, "second")
	delay := time.Minute
	if _, err := q.Enqueue([]NewMessage{{Body: []byte("later"), Delay: &delay}}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Second)

	got, err := q.Receive(t.Context(), ReceiveOptions{Max: 1})
	if err != nil || len(got) != 1 {
		t.Fatalf("Receive = %v, %v", got, err)
	}
	if want := start.Add(2*time.Second + 30*time.Second); !got[0].LeaseEnds.Equal(want) || !got[0].ReadyAt.IsZero() {
		t.Fatalf("received: LeaseEnds %v ReadyAt %v; want %v and zero", got[0].LeaseEnds, got[0].ReadyAt, want)
	}
	info, err := q.Info()
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(time.Second); !info.OldestReady.Equal(want) {
		t.Fatalf("OldestReady = %v, want %v (the first is leased, the second is the oldest ready)", info.OldestReady, want)
	}

	peeked, err := q.Peek(0, 10)
	if err != nil || len(peeked) != 3 {
		t.Fatalf("Peek = %v, %v", peeked, err)
	}
	for _, tt := range []struct {
		m                  Message
		readyAt, leaseEnds time.Time
	}{
		{peeked[0], time.Time{}, start.Add(32 * time.Second)}, // leased
		{peeked[1], time.Time{}, time.Time{}},                 // ready
		{peeked[2], start.Add(time.Second + time.Minute), time.Time{}},
	} {
		if !tt.m.ReadyAt.Equal(tt.readyAt) || !tt.m.LeaseEnds.Equal(tt.leaseEnds) {
			t.Errorf("peeked %d (%s): ReadyAt %v LeaseEnds %v; want %v and %v", tt.m.ID, tt.m.State, tt.m.ReadyAt, tt.m.LeaseEnds, tt.readyAt, tt.leaseEnds)
		}
	}

	// Once the oldest ready message is gone, the next one's time counts.
	if got, err := q.Receive(t.Context(), ReceiveOptions{Max: 1}); err != nil || len(got) != 1 {
		t.Fatalf("Receive = %v, %v", got, err)
	}
	if info, err := q.Info(); err != nil || !info.OldestReady.IsZero() {
		t.Fatalf("nothing ready: OldestReady = %v, %v; want zero", info.OldestReady, err)
	}
	clk.Advance(time.Minute) // the first lease runs out, the delay too
	if info, err := q.Info(); err != nil || !info.OldestReady.Equal(start) {
		t.Fatalf("first lease expired: OldestReady = %v, %v; want the first message's enqueue time %v", info.OldestReady, err, start)
	}
}

// A damaged oldest ready message costs its age, never the queue's place in
// List and /metrics: Info stays good, and the age reads zero.
func TestADamagedOldestReadyMessageDoesNotHideTheQueue(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(newClock())
	b := mustOpen(t, dir, opts)
	q := mustCreate(t, b, "jobs", ConfigUpdate{})
	for _, body := range []string{"the-oldest-body", "second", "third"} {
		enqueue(t, q, body) // a frame each, so the damage stays in the first
	}
	if err := b.Close(); err != nil { // the snapshot holds all three as ready
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(dir, "queues", "jobs", "log", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments %v", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	at := bytes.Index(data, []byte("the-oldest-body"))
	if at < 0 {
		t.Fatal("the first body is not in the segment as written")
	}
	data[at] ^= 0xff
	if err := os.WriteFile(segs[0], data, 0o644); err != nil {
		t.Fatal(err)
	}

	b = mustOpen(t, dir, opts)
	list := b.List()
	if len(list) != 1 || list[0].Name != "jobs" || list[0].Err != nil || list[0].Counts.Ready != 3 {
		t.Fatalf("List = %+v; want jobs with its 3 ready messages", list)
	}
	if !list[0].OldestReady.IsZero() {
		t.Fatalf("OldestReady = %v, want zero: the oldest ready message cannot be read", list[0].OldestReady)
	}
}
