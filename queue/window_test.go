package queue

import (
	"testing"
	"time"
)

func TestCommitWindowEnds(t *testing.T) {
	cases := []struct {
		name          string
		last, callers int32
		syncTime      time.Duration
	}{
		{"a lone caller never waits", 1, 1, time.Hour},
		{"enough callers already queued", 3, 6, time.Hour},
		{"no one comes: the wait ends (half an fsync, at most maxCommitWindow)", 8, 1, time.Hour},
		{"no fsync timed yet", 8, 1, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := commitWindow{last: int(tc.last), syncTime: tc.syncTime}
			w.callers.Store(tc.callers)
			done := make(chan struct{})
			go func() { w.wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second): // a deadline for a hang, not a timing assertion
				t.Fatal("wait did not return")
			}
			if w.last != int(tc.callers) {
				t.Fatalf("last = %d after a round of %d callers", w.last, tc.callers)
			}
		})
	}
}
