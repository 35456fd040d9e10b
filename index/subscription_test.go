package index

import (
	"slices"
	"testing"
)

// A subscription's table: Seek, Skip and NextReadyBefore.

func TestSeekForgetsEveryStateAndKeepsAttemptsCounting(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= 5; id++ {
		tb.Insert(id, 0, 0, 0)
	}
	must(t, tb.Lease(1, 1, far))
	must(t, tb.Ack(1))
	must(t, tb.Lease(2, 1, far))
	must(t, tb.Expire(2))
	must(t, tb.Lease(2, 2, far))
	must(t, tb.Lease(3, 1, far))
	must(t, tb.Dead(3))

	tb.Seek(2)
	if tb.Live() != 0 || tb.ReadUpTo() != 1 || tb.MaxID() != 0 || tb.MaxAttempt() != 2 {
		t.Fatalf("after Seek(2): live %d, ReadUpTo %d, MaxID %d, MaxAttempt %d; want 0, 1, 0, 2", tb.Live(), tb.ReadUpTo(), tb.MaxID(), tb.MaxAttempt())
	}
	if s := tb.Get(1).State; s != StateDone {
		t.Fatalf("id 1 below the seek is %s, want done", s)
	}
	if s := tb.Get(2).State; s != StateNone {
		t.Fatalf("id 2 at the seek is %s, want none (unread)", s)
	}
	if at, ok := tb.NextDeadline(); ok {
		t.Fatalf("a lease held across the seek still has a deadline (%d)", at)
	}
	// Read again: attempts go on from 2, tries start from 0.
	for id := uint64(2); id <= 4; id++ {
		if !tb.Insert(id, 0, 0, 0) {
			t.Fatalf("Insert(%d) after the seek = false", id)
		}
	}
	if e := tb.Get(2); e.Attempts != 2 || tb.Tries(2) != 0 || e.State != StateReady {
		t.Fatalf("id 2 read again: %+v, tries %d; want ready at attempts 2, tries 0", e, tb.Tries(2))
	}
	must(t, tb.Lease(2, 3, far))
	if tb.Tries(2) != 1 {
		t.Fatalf("tries after one lease since the seek = %d", tb.Tries(2))
	}
	// A seek forward past anything read.
	tb.Seek(100)
	if tb.Insert(50, 0, 0, 0) {
		t.Fatal("an id below a forward seek was inserted")
	}
	if !tb.Insert(100, 0, 0, 0) || tb.Get(100).Attempts != 3 {
		t.Fatalf("id 100 after the forward seek: %+v", tb.Get(100))
	}
}

func TestSkipFinishesReadAndUnreadIdsAndCountsThem(t *testing.T) {
	tests := []struct {
		name        string
		read        uint64 // ids 1..read are read
		upTo        uint64
		wantSkipped uint64
		wantReadTo  uint64
	}{
		{"past everything read", 5, 8, 4 + 3, 8}, // 2..5 live (1 acked), 6..8 unread
		{"within what was read", 5, 3, 2, 5},     // 2, 3
		{"below everything live", 5, 1, 0, 5},    // 1 is acked already
		{"nothing read", 0, 4, 4, 4},             // 1..4 unread
		{"again at the same place", 5, 5, 4, 5},  // 2..5
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := NewTable()
			for id := uint64(1); id <= tt.read; id++ {
				tb.Insert(id, 0, 0, 0)
			}
			if tt.read > 0 {
				must(t, tb.Lease(1, 1, far))
				must(t, tb.Ack(1))
			}
			tb.Skip(tt.upTo)
			if tb.Skipped() != tt.wantSkipped || tb.ReadUpTo() != tt.wantReadTo {
				t.Fatalf("Skipped %d, ReadUpTo %d; want %d, %d", tb.Skipped(), tb.ReadUpTo(), tt.wantSkipped, tt.wantReadTo)
			}
			tb.Skip(tt.upTo) // idempotent: replay may apply it again
			if tb.Skipped() != tt.wantSkipped {
				t.Fatalf("a second Skip counted again: %d", tb.Skipped())
			}
			for id := uint64(1); id <= tt.upTo; id++ {
				if s := tb.Get(id).State; s != StateDone {
					t.Fatalf("id %d is %s after the skip", id, s)
				}
			}
			if !tb.Insert(tt.wantReadTo+1, 0, 0, 0) {
				t.Fatalf("the id after the skip cannot be read")
			}
			checkCounts(t, tb)
		})
	}
}

func TestNextReadyBeforeLetsUnreadIdsPassABackNack(t *testing.T) {
	tb := NewTable()
	for id := uint64(1); id <= 3; id++ {
		tb.Insert(id, 0, 0, 0)
	}
	must(t, tb.Lease(1, 1, far))
	must(t, tb.Nack(1, false, 10, 0, 0)) // to the back, after the topic's id 10
	must(t, tb.Lease(2, 1, far))
	must(t, tb.Nack(2, true, 0, 0, 0)) // to the front
	var order []uint64
	for {
		id, ok := tb.NextReadyBefore(4) // 4..10 are unread
		if !ok {
			break
		}
		order = append(order, id)
		must(t, tb.Lease(id, tb.Get(id).Attempts+1, far))
	}
	if want := []uint64{2, 3}; !slices.Equal(order, want) {
		t.Fatalf("order before the unread ids %v, want %v", order, want)
	}
	if id, ok := tb.NextReadyBefore(11); !ok || id != 1 {
		t.Fatalf("once ids to 10 are read, NextReadyBefore(11) = %d, %v; want 1", id, ok)
	}
}
