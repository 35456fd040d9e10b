package queue

import (
	"testing"
	"time"
)

// TestCommitWindow scripts the goroutines a waiting leader yields to: how
// long each yield takes (others ran, or nothing else wanted the CPU) and
// which callers come back meanwhile.
func TestCommitWindow(t *testing.T) {
	cases := []struct {
		name          string
		last, callers int32
		syncTime      time.Duration
		yieldTakes    time.Duration // fake time that passes in each yield
		arriveEvery   int           // a caller enters every nth yield (0: never)
		wantYields    int
		wantLast      int
	}{
		{"a lone caller never waits", 1, 1, time.Millisecond, 10 * time.Microsecond, 1, 0, 1},
		{"enough callers already queued", 3, 6, time.Millisecond, 10 * time.Microsecond, 1, 0, 6},
		{"callers come back: the leader waits for twice the last round", 4, 2, time.Millisecond, 10 * time.Microsecond, 1, 6, 8},
		{"nothing else runs: one yield, then no waiting", 4, 1, time.Millisecond, time.Microsecond, 1, 1, 2},
		{"no one comes: the wait ends after half an fsync", 4, 1, time.Millisecond, 10 * time.Microsecond, 0, 50, 1},
		{"a slow disk: the wait ends at maxCommitWindow", 4, 1, time.Second, 10 * time.Microsecond, 0, int(maxCommitWindow / (10 * time.Microsecond)), 1},
		{"no fsync timed yet: one yield", 4, 1, 0, 10 * time.Microsecond, 0, 1, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Unix(0, 0)
			yields := 0
			w := commitWindow{last: int(tc.last), syncTime: tc.syncTime}
			w.callers.Store(tc.callers)
			w.clock = func() time.Time { return now }
			w.yield = func() {
				yields++
				now = now.Add(tc.yieldTakes)
				if tc.arriveEvery > 0 && yields%tc.arriveEvery == 0 {
					w.enter()
				}
			}
			w.wait()
			if yields != tc.wantYields || w.last != tc.wantLast {
				t.Fatalf("%d yields, last round %d; want %d yields, %d", yields, w.last, tc.wantYields, tc.wantLast)
			}
		})
	}
}
