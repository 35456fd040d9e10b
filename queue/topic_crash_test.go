//go:build unix

package queue

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/log/crashtest"
	"github.com/spoolq/spool/queue/queuetest"
)

// The topic crash test: a child publishes to a topic and consumes it on
// three subscriptions, concurrently, until the parent kills it with
// SIGKILL; the parent then checks every subscription against what the
// child said it did, and the next child goes on from there. Retention is
// 0, so segments every subscription finished are removed as it runs.
const (
	tcrashEnvDir   = "SPOOL_TOPIC_CRASH_DIR"
	tcrashEnvCycle = "SPOOL_TOPIC_CRASH_CYCLE"

	tcrashCycles     = 24
	tcrashPublishers = 2
	tcrashMaxBatch   = 5
	tcrashMaxLag     = 3000 // publishers pause while a subscription lags more
	tcrashVisibility = 2 * time.Second
)

var tcrashSubs = []string{"s0", "s1", "s2"}

func tcrashOptions() Options {
	o := qcrashOptions()
	o.SegmentSize = 32 << 10
	return o
}

func tcrashBody(cycle, g, seq int) string { return fmt.Sprintf("c%d-p%d-%d", cycle, g, seq) }

// TestTopicCrashChild is the child side of TestTopicCrashSIGKILL; it does
// nothing unless started by it. Lines are printed after the call they
// report returned (a lines before the Ack they announce):
//
//	P <id> <body>                 Publish returned the id
//	R <sub> <id> <attempt> <body> Receive on sub returned the lease
//	a <sub> <id> <attempt>        an Ack is about to be called
//	A <sub> <id> <attempt>        the Ack returned nil for this receipt
func TestTopicCrashChild(t *testing.T) {
	dir := crashtest.Child(t, tcrashEnvDir)
	cycle, err := strconv.Atoi(os.Getenv(tcrashEnvCycle))
	if err != nil {
		crashtest.Die("bad %s: %v", tcrashEnvCycle, err)
	}
	b, err := Open(dir, tcrashOptions())
	if err != nil {
		crashtest.Die("Open: %v", err)
	}
	zero := time.Duration(0)
	tp, _, err := b.CreateTopic("t", TopicUpdate{Retention: &zero})
	if err != nil {
		crashtest.Die("CreateTopic: %v", err)
	}
	var subs []*Subscription
	for _, name := range tcrashSubs {
		s, _, err := tp.CreateSubscription(name, SubscriptionUpdate{}, Earliest())
		if err != nil {
			crashtest.Die("CreateSubscription: %v", err)
		}
		subs = append(subs, s)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(lines []string) {
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			out.WriteString(l + "\n")
		}
		if err := out.Flush(); err != nil {
			crashtest.Die("stdout: %v", err)
		}
	}
	var wg sync.WaitGroup
	for g := range tcrashPublishers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(g)))
			for seq := 0; ; {
				if info, err := subs[rng.IntN(len(subs))].Info(); err == nil && info.Lag > tcrashMaxLag {
					time.Sleep(time.Millisecond) // pacing, not synchronization
					continue
				}
				msgs := make([]NewMessage, 1+rng.IntN(tcrashMaxBatch))
				for i := range msgs {
					msgs[i] = NewMessage{Body: []byte(tcrashBody(cycle, g, seq+i))}
				}
				ids, err := tp.Publish(msgs)
				if err != nil {
					crashtest.Die("Publish: %v", err)
				}
				lines := make([]string, len(ids))
				for i, id := range ids {
					lines[i] = fmt.Sprintf("P %d %s", id, msgs[i].Body)
				}
				emit(lines)
				seq += len(msgs)
			}
		})
	}
	for i, s := range subs {
		for c := range 2 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(cycle), 1000+uint64(i*10+c)))
				for {
					msgs, err := s.Receive(context.Background(), ReceiveOptions{Max: 1 + rng.IntN(8), Visibility: tcrashVisibility, Wait: 50 * time.Millisecond})
					if err != nil {
						crashtest.Die("Receive: %v", err)
					}
					var lines []string
					var ack, nack []Receipt
					for _, m := range msgs {
						lines = append(lines, fmt.Sprintf("R %s %d %d %s", s.Name(), m.ID, m.Attempts, m.Body))
						if rng.IntN(100) < 85 {
							ack = append(ack, m.Receipt)
							lines = append(lines, fmt.Sprintf("a %s %d %d", s.Name(), m.ID, m.Attempts))
						} else {
							nack = append(nack, m.Receipt)
						}
					}
					emit(lines)
					if len(ack) > 0 {
						errs, err := s.Ack(ack)
						if err != nil {
							crashtest.Die("Ack: %v", err)
						}
						lines = lines[:0]
						for j, r := range ack {
							if errs[j] == nil {
								lines = append(lines, fmt.Sprintf("A %s %d %d", s.Name(), r.ID, r.Attempt))
							}
						}
						emit(lines)
					}
					if len(nack) > 0 {
						if _, err := s.Nack(nack, NackOptions{Front: rng.IntN(2) == 0}); err != nil {
							crashtest.Die("Nack: %v", err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
}

// tcrashState is what the parent knows, across cycles.
type tcrashState struct {
	published map[uint64]string          // id → body of every acknowledged publish
	acked     map[string]map[uint64]bool // sub → ids whose Ack returned nil
	maybe     map[string]map[uint64]bool // sub → ids whose Ack was cut short
	leasedAs  map[string]map[uint64]int  // sub → id → highest attempt seen
	maxID     uint64
}

// TestTopicCrashSIGKILL kills a publishing and consuming child over and
// over and checks after every kill that on every subscription:
//   - every message whose Publish returned is there (unread, ready,
//     leased or dead) with its body, unless that subscription acked it;
//   - no message that subscription acked is there or is received again,
//     on it (the other subscriptions still have it);
//   - no receipt is handed out twice;
//
// and, at the end, that draining each subscription receives every message
// it has not acked exactly once.
func TestTopicCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills child processes; skipped in -short mode")
	}
	start := time.Now()
	dir := t.TempDir()
	st := tcrashState{published: map[uint64]string{}, acked: map[string]map[uint64]bool{}, maybe: map[string]map[uint64]bool{}, leasedAs: map[string]map[uint64]int{}}
	for _, s := range tcrashSubs {
		st.acked[s], st.maybe[s], st.leasedAs[s] = map[uint64]bool{}, map[uint64]bool{}, map[uint64]int{}
	}
	var publishes, acks, receives, cut, removedSegments int
	for cycle := 1; cycle <= tcrashCycles; cycle++ {
		env := []string{tcrashEnvDir + "=" + dir, tcrashEnvCycle + "=" + strconv.Itoa(cycle)}
		printed, partial, stderr := crashtest.Kill(t, "TestTopicCrashChild", env, qcrashLineWait, qcrashMinKill, qcrashMaxKill)
		if len(stderr) > 0 {
			t.Fatalf("cycle %d: child wrote to stderr:\n%s", cycle, stderr)
		}
		if partial {
			cut++
		}
		intents := map[string]map[uint64]bool{}
		for _, line := range printed {
			f := strings.Fields(line)
			switch {
			case len(f) == 3 && f[0] == "P":
				id, _ := strconv.ParseUint(f[1], 10, 64)
				if id <= st.maxID || st.published[id] != "" {
					t.Fatalf("cycle %d: published id %d again (ids up to %d were taken before this child)", cycle, id, st.maxID)
				}
				st.published[id] = f[2]
				publishes++
			case len(f) == 5 && f[0] == "R":
				id, _ := strconv.ParseUint(f[2], 10, 64)
				att, _ := strconv.Atoi(f[3])
				receives++
				if st.acked[f[1]][id] {
					t.Errorf("cycle %d: %s received message %d again (attempt %d) after acking it", cycle, f[1], id, att)
				}
				if prev := st.leasedAs[f[1]][id]; att <= prev {
					t.Errorf("cycle %d: %s leased message %d as attempt %d after attempt %d: a receipt handed out twice", cycle, f[1], id, att, prev)
				}
				st.leasedAs[f[1]][id] = att
				if body, ok := st.published[id]; ok && body != f[4] {
					t.Fatalf("cycle %d: %s received message %d with body %q, published as %q", cycle, f[1], id, f[4], body)
				}
			case len(f) == 4 && f[0] == "a":
				id, _ := strconv.ParseUint(f[2], 10, 64)
				if intents[f[1]] == nil {
					intents[f[1]] = map[uint64]bool{}
				}
				intents[f[1]][id] = true
			case len(f) == 4 && f[0] == "A":
				id, _ := strconv.ParseUint(f[2], 10, 64)
				if !intents[f[1]][id] {
					t.Fatalf("cycle %d: ack of %s %d returned without an intent line", cycle, f[1], id)
				}
				delete(intents[f[1]], id)
				st.acked[f[1]][id] = true
				acks++
			default:
				t.Fatalf("cycle %d: child printed an unparsable line %q", cycle, line)
			}
		}
		for sub, ids := range intents {
			for id := range ids {
				st.maybe[sub][id] = true
			}
		}
		removedSegments = tcrashCheck(t, cycle, dir, &st)
		if t.Failed() {
			t.FailNow()
		}
	}
	drained := tcrashDrain(t, dir, &st)
	t.Logf("%d cycles in %s: %d publishes acknowledged, %d receives, %d acks acknowledged, %d lines cut by a kill, topic head past %d removed ids; final drain %d deliveries",
		tcrashCycles, time.Since(start).Round(time.Millisecond), publishes, receives, acks, cut, removedSegments, drained)
}

// tcrashCheck opens the data directory (the clock frozen) and checks every
// subscription; it returns the topic's head id minus one (ids removed).
func tcrashCheck(t *testing.T, cycle int, dir string, st *tcrashState) int {
	t.Helper()
	frozen := time.Now()
	b, err := Open(dir, Options{Sync: log.SyncAlways, SegmentSize: 32 << 10, MaintenanceInterval: -1, Logger: quiet, Now: func() time.Time { return frozen }})
	if err != nil {
		t.Fatalf("cycle %d: Open after kill: %v", cycle, err)
	}
	defer b.Close()
	tp, err := b.Topic("t")
	if err != nil {
		t.Fatalf("cycle %d: %v", cycle, err)
	}
	info, err := tp.Info()
	if err != nil {
		t.Fatalf("cycle %d: topic info: %v", cycle, err)
	}
	for id := range st.published {
		st.maxID = max(st.maxID, id)
	}
	st.maxID = max(st.maxID, info.TailID)
	for _, name := range tcrashSubs {
		s, err := tp.Subscription(name)
		if err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		held := map[uint64]string{}
		for _, list := range []func(uint64, int) ([]Message, error){s.Peek, s.Dead} {
			for after := uint64(0); ; {
				msgs, err := list(after, MaxList)
				if err != nil {
					t.Fatalf("cycle %d: %s: listing: %v", cycle, name, err)
				}
				for _, m := range msgs {
					held[m.ID] = string(m.Body)
					after = m.ID
				}
				if len(msgs) < MaxList {
					break
				}
			}
		}
		for id, body := range held {
			if st.acked[name][id] {
				t.Errorf("cycle %d: %s acked message %d, yet holds it again", cycle, name, id)
			}
			if want, ok := st.published[id]; ok && want != body {
				t.Fatalf("cycle %d: %s holds message %d with body %q, published as %q", cycle, name, id, body, want)
			}
			delete(st.maybe[name], id) // its ack did not happen
		}
		var lost []uint64
		for id := range st.published {
			if _, ok := held[id]; !ok && !st.acked[name][id] {
				if st.maybe[name][id] {
					st.acked[name][id] = true // the cut-short ack happened
					delete(st.maybe[name], id)
					continue
				}
				lost = append(lost, id)
			}
		}
		if len(lost) > 0 {
			sort.Slice(lost, func(i, j int) bool { return lost[i] < lost[j] })
			t.Errorf("cycle %d: %s lost %d acknowledged publishes it never acked (head %d): %v", cycle, name, len(lost), info.HeadID, lost[:min(len(lost), 20)])
		}
	}
	return int(info.HeadID - 1)
}

// tcrashDrain receives everything left on every subscription, on a clock
// an hour ahead so every lease has run out, and checks each message a
// subscription has not acked comes exactly once.
func tcrashDrain(t *testing.T, dir string, st *tcrashState) int {
	clk := queuetest.NewClock(time.Now().Add(time.Hour))
	opts := testOptions(clk)
	opts.Sync = log.SyncAlways
	b := mustOpen(t, dir, opts)
	tp, err := b.Topic("t")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, name := range tcrashSubs {
		s := sub(t, tp, name)
		if _, err := s.Redrive(0); err != nil {
			t.Fatal(err)
		}
		got := map[uint64]int{}
		for {
			msgs, err := s.Receive(context.Background(), ReceiveOptions{Max: MaxReceive, Visibility: time.Hour})
			if err != nil {
				t.Fatalf("final drain %s: %v", name, err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				got[m.ID]++
				if st.acked[name][m.ID] {
					t.Errorf("final drain: %s received message %d it had acked", name, m.ID)
				}
			}
			if errs, err := s.Ack(receipts(msgs)); err != nil || errors.Join(errs...) != nil {
				t.Fatalf("final drain %s: ack: %v %v", name, err, errs)
			}
		}
		for id := range st.published {
			if !st.acked[name][id] && got[id] != 1 {
				t.Errorf("final drain: %s received message %d %d times, want once", name, id, got[id])
			}
		}
		total += len(got)
	}
	return total
}
