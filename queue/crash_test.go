//go:build unix

package queue

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/log/crashtest"
	"github.com/spoolq/spool/queue/queuetest"
)

// The queue crash test runs its own test binary as a child that enqueues,
// receives, acks and nacks on one broker until the parent kills it with
// SIGKILL, then checks in the parent that nothing acknowledged was lost
// and nothing acked came back. The data directory lives on across cycles,
// so every child starts from the backlog, leases and snapshots the ones
// before it left behind.
const (
	qcrashEnvDir   = "SPOOL_QUEUE_CRASH_DIR"
	qcrashEnvCycle = "SPOOL_QUEUE_CRASH_CYCLE"
	// qcrashEnvDelays, set to 1, makes the child nack with delays too.
	qcrashEnvDelays = "SPOOL_QUEUE_CRASH_DELAYS"

	qcrashCycles     = 32
	qcrashProducers  = 3
	qcrashConsumers  = 5
	qcrashMaxBatch   = 5
	qcrashMaxReceive = 10
	qcrashVisibility = 2 * time.Second
	qcrashMaxLength  = 5000
	qcrashMinKill    = 50 * time.Millisecond
	qcrashMaxKill    = 250 * time.Millisecond
	// qcrashLineWait bounds how long a child may take to print its first
	// line; it only fails a hung child, it never paces the test.
	qcrashLineWait = 20 * time.Second
)

// qcrashOptions are the child's: fsync always, small segments, and
// maintenance often enough that snapshots, state-log truncation and
// compaction all run within the child's short life (with the default 1s
// interval a child killed after 250ms would never get there).
func qcrashOptions() Options {
	return Options{
		Sync:                log.SyncAlways,
		SegmentSize:         64 << 10,
		SnapshotEvery:       200,
		MaintenanceInterval: 10 * time.Millisecond,
		Logger:              quiet,
	}
}

func qcrashBody(cycle, g, seq int) string { return fmt.Sprintf("c%d-p%d-%d", cycle, g, seq) }

// parseQcrashBody returns the cycle a body names, if it is one a child writes.
func parseQcrashBody(body string) (cycle int, ok bool) {
	var g, seq int
	n, err := fmt.Sscanf(body, "c%d-p%d-%d", &cycle, &g, &seq)
	return cycle, err == nil && n == 3 && body == qcrashBody(cycle, g, seq)
}

// TestQueueCrashChild is the child side of TestQueueCrashSIGKILL; it does
// nothing unless started by it. Producers and consumers run concurrently
// until the process is killed. E, R, A and S lines are printed only after
// the call they report returned, a lines before the Ack they announce, and
// every batch of lines is flushed before that goroutine's next call:
//
//	E <id> <body>            Enqueue returned the id
//	R <id> <attempt> <body>  Receive returned the lease
//	a <id> <attempt>         an Ack of this receipt is about to be called
//	A <id> <attempt>         the Ack returned nil for this receipt
//	S <id> <reason>          the Ack returned an error for this receipt
func TestQueueCrashChild(t *testing.T) {
	dir := crashtest.Child(t, qcrashEnvDir)
	cycle, err := strconv.Atoi(os.Getenv(qcrashEnvCycle))
	if err != nil {
		crashtest.Die("bad %s: %v", qcrashEnvCycle, err)
	}
	delays := os.Getenv(qcrashEnvDelays) == "1"
	b, err := Open(dir, qcrashOptions())
	if err != nil {
		crashtest.Die("Open: %v", err)
	}
	// A bounded backlog: consumers keep up, old segments empty out and
	// compaction removes them.
	q, _, err := b.Create("q", ConfigUpdate{MaxLength: ptr(qcrashMaxLength)})
	if err != nil {
		crashtest.Die("Create: %v", err)
	}

	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	emit := func(lines []string) {
		if len(lines) == 0 {
			return
		}
		mu.Lock()
		for _, l := range lines {
			out.WriteString(l)
			out.WriteByte('\n')
		}
		err := out.Flush()
		mu.Unlock()
		if err != nil {
			crashtest.Die("stdout: %v", err)
		}
	}

	var wg sync.WaitGroup
	for g := range qcrashProducers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(g)))
			for seq := 0; ; {
				msgs := make([]NewMessage, 1+rng.IntN(qcrashMaxBatch))
				for i := range msgs {
					msgs[i] = NewMessage{Body: []byte(qcrashBody(cycle, g, seq+i))}
				}
				ids, err := q.Enqueue(msgs)
				if errors.Is(err, ErrQueueFull) {
					time.Sleep(time.Millisecond) // pacing, not synchronization
					continue
				}
				if err != nil {
					crashtest.Die("Enqueue: %v", err)
				}
				lines := make([]string, len(ids))
				for i, id := range ids {
					if i > 0 && id != ids[0]+uint64(i) {
						crashtest.Die("batch ids %v are not consecutive", ids)
					}
					lines[i] = fmt.Sprintf("E %d %s", id, msgs[i].Body)
				}
				emit(lines)
				seq += len(msgs)
			}
		})
	}
	for g := range qcrashConsumers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), 1000+uint64(g)))
			for {
				if rng.IntN(100) == 0 {
					// Failed messages go dead; now and then bring them back
					// so they do not pin old segments forever.
					if _, err := q.Redrive(0); err != nil {
						crashtest.Die("Redrive: %v", err)
					}
				}
				msgs, err := q.Receive(context.Background(), ReceiveOptions{
					Max: 1 + rng.IntN(qcrashMaxReceive), Visibility: qcrashVisibility, Wait: 50 * time.Millisecond,
				})
				if err != nil {
					crashtest.Die("Receive: %v", err)
				}
				if len(msgs) == 0 {
					continue
				}
				var lines []string
				var ack, back, front, fail []Receipt
				for _, m := range msgs {
					if m.Receipt.ID != m.ID || int(m.Receipt.Attempt) != m.Attempts || m.Attempts < 1 {
						crashtest.Die("message %d received with receipt %s and attempts %d", m.ID, m.Receipt, m.Attempts)
					}
					lines = append(lines, fmt.Sprintf("R %d %d %s", m.ID, m.Attempts, m.Body))
					switch p := rng.IntN(100); {
					case p < 80:
						ack = append(ack, m.Receipt)
						lines = append(lines, fmt.Sprintf("a %d %d", m.ID, m.Attempts))
					case p < 88:
						back = append(back, m.Receipt)
					case p < 94:
						front = append(front, m.Receipt)
					case p < 96:
						fail = append(fail, m.Receipt)
					default:
						// Abandoned: the lease runs out, perhaps in a later child.
					}
				}
				emit(lines) // ack intents reach the pipe before the Ack starts
				lines = lines[:0]
				if len(ack) > 0 {
					errs, err := q.Ack(ack)
					if err != nil {
						crashtest.Die("Ack: %v", err)
					}
					for i, r := range ack {
						switch {
						case errs[i] == nil:
							lines = append(lines, fmt.Sprintf("A %d %d", r.ID, r.Attempt))
						case errors.Is(errs[i], ErrStaleReceipt):
							lines = append(lines, fmt.Sprintf("S %d stale", r.ID))
						case errors.Is(errs[i], ErrNotFound):
							lines = append(lines, fmt.Sprintf("S %d notfound", r.ID))
						default:
							lines = append(lines, fmt.Sprintf("S %d other", r.ID))
						}
					}
					emit(lines)
				}
				var delay time.Duration
				if delays && rng.IntN(2) == 0 {
					delay = time.Duration(10+rng.IntN(40)) * time.Millisecond
				}
				if len(back) > 0 {
					if _, err := q.Nack(back, NackOptions{Delay: delay}); err != nil {
						crashtest.Die("Nack: %v", err)
					}
				}
				if len(front) > 0 {
					if _, err := q.Nack(front, NackOptions{Front: true, Delay: delay}); err != nil {
						crashtest.Die("Nack front: %v", err)
					}
				}
				if len(fail) > 0 {
					if _, err := q.Fail(fail); err != nil {
						crashtest.Die("Fail: %v", err)
					}
				}
			}
		})
	}
	wg.Wait()
}

// qcrashLine is one line a child printed.
type qcrashLine struct {
	kind    byte
	id      uint64
	attempt int
	text    string // body (E, R) or reason (S)
}

func parseQcrashLine(s string) (qcrashLine, bool) {
	f := strings.Fields(s)
	if len(f) < 3 || len(f[0]) != 1 {
		return qcrashLine{}, false
	}
	l := qcrashLine{kind: f[0][0]}
	id, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil || id == 0 {
		return qcrashLine{}, false
	}
	l.id = id
	want := 3
	switch l.kind {
	case 'E', 'S':
		l.text = f[2]
	case 'R':
		want = 4
		if len(f) == 4 {
			l.text = f[3]
		}
		fallthrough
	case 'a', 'A':
		if l.attempt, err = strconv.Atoi(f[2]); err != nil || l.attempt < 1 {
			return qcrashLine{}, false
		}
	default:
		return qcrashLine{}, false
	}
	return l, len(f) == want
}

// qcrashListAll returns every live (ready, delayed, leased) and every dead
// message of q, by id.
func qcrashListAll(q *Queue) (live, dead map[uint64]Message, err error) {
	live, dead = map[uint64]Message{}, map[uint64]Message{}
	for _, l := range []struct {
		list func(after uint64, limit int) ([]Message, error)
		into map[uint64]Message
	}{{q.Peek, live}, {q.Dead, dead}} {
		for after := uint64(0); ; {
			msgs, err := l.list(after, MaxList)
			if err != nil {
				return nil, nil, err
			}
			for _, m := range msgs {
				if m.ID <= after {
					return nil, nil, fmt.Errorf("listing after %d returned id %d", after, m.ID)
				}
				l.into[m.ID] = m
				after = m.ID
			}
			if len(msgs) < MaxList {
				break
			}
		}
	}
	return live, dead, nil
}

// TestQueueCrashSIGKILL kills a real producing and consuming process with
// SIGKILL over and over on one data directory and checks after every kill,
// without disturbing the backlog, that:
//   - every message whose Enqueue returned is still there (ready, delayed,
//     leased or dead) with its body, unless an Ack of it was called: a
//     message is only ever gone through an ack;
//   - no message whose Ack returned nil is there, or is ever received
//     again (in a later child or by the final drain);
//   - a message once gone never comes back, and no id changes its body;
//   - each child continues after the ids already in the queue;
//   - the queue holds at most MaxLength messages, give or take the acks
//     the kill cut short (an ack frees its place before it is durable).
//
// At the end it drains the queue and checks that every message that must
// be there is received exactly once with its body.
//
// The child nacks without delays: TestQueueCrashSIGKILLDelayedNacks is the
// same test with delayed nacks.
func TestQueueCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills child processes; skipped in -short mode")
	}
	testQueueCrash(t, false)
}

// TestQueueCrashSIGKILLDelayedNacks is TestQueueCrashSIGKILL with half the
// nacks delayed by 10-50ms.
func TestQueueCrashSIGKILLDelayedNacks(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills child processes; skipped in -short mode")
	}
	testQueueCrash(t, true)
}

func testQueueCrash(t *testing.T, delays bool) {
	start := time.Now()
	dir := t.TempDir()
	qdir := filepath.Join(dir, "queues", "q")
	delayFlag := "0"
	if delays {
		delayFlag = "1"
	}

	var (
		known    = map[uint64]string{} // id → body, of every message ever seen
		leasedAs = map[uint64]int{}    // id → the highest attempt an R line showed
		byBody   = map[string]uint64{}
		acked    = map[uint64]int{}  // id → attempt whose Ack returned nil
		maybe    = map[uint64]bool{} // Ack called, outcome unknown (killed)
		gone     = map[uint64]bool{} // absent at some check
		maxID    uint64              // highest id seen before the current child
		lastSnap []byte              // snapshot file the last parent Close left

		enqueued, ackLines, receives, redeliveries  int
		unloggedEnq, maybeApplied, maybeNotApplied  int
		stale, partials, childSnapshots             int
		losses, ackedAgain, maxBacklog, maxSegments int
		reusedReceipts                              int
		prevSegs                                    = map[uint64]int64{} // base → size at the last check
		segsRewritten, segsRemoved, prevBacklog     int
	)
	// addKnown records a message first seen in a listing or an R line
	// (its E line was cut off by the kill).
	addKnown := func(cycle int, id uint64, body string) {
		t.Helper()
		c, ok := parseQcrashBody(body)
		if !ok || c > cycle {
			t.Fatalf("cycle %d: message %d has body %q, which no child wrote", cycle, id, body)
		}
		if other, dup := byBody[body]; dup && other != id {
			t.Fatalf("cycle %d: body %q enqueued once but found at ids %d and %d", cycle, body, other, id)
		}
		known[id], byBody[body] = body, id
	}
	for cycle := 1; cycle <= qcrashCycles; cycle++ {
		// Run a child until a random moment after its first line, then kill it.
		env := []string{qcrashEnvDir + "=" + dir, qcrashEnvCycle + "=" + strconv.Itoa(cycle), qcrashEnvDelays + "=" + delayFlag}
		printed, cut, stderr := crashtest.Kill(t, "TestQueueCrashChild", env, qcrashLineWait, qcrashMinKill, qcrashMaxKill)
		if len(stderr) > 0 { // a race report, a log line: nothing belongs there
			t.Fatalf("cycle %d: child wrote to stderr:\n%s", cycle, stderr)
		}
		lines := make([]qcrashLine, len(printed))
		for i, text := range printed {
			var ok bool
			if lines[i], ok = parseQcrashLine(text); !ok {
				t.Fatalf("cycle %d: child printed an unparsable line %q", cycle, text)
			}
		}
		// A line without its newline was cut off by the kill: what it
		// reports may well have happened, but nothing claims it.
		if cut {
			partials++
		}

		// What the child says it did. E lines first: an R line may come
		// before the E line of the same message.
		for _, l := range lines {
			if l.kind != 'E' {
				continue
			}
			c, ok := parseQcrashBody(l.text)
			if !ok || c != cycle {
				t.Fatalf("cycle %d: E line for id %d has body %q", cycle, l.id, l.text)
			}
			if l.id <= maxID {
				t.Fatalf("cycle %d: child enqueued id %d (%s), but the queue already held ids up to %d before it started", cycle, l.id, l.text, maxID)
			}
			if _, dup := known[l.id]; dup {
				t.Fatalf("cycle %d: id %d enqueued twice: %q and %q", cycle, l.id, known[l.id], l.text)
			}
			addKnown(cycle, l.id, l.text)
			enqueued++
		}
		// The rest in the order printed. For one message that order is the
		// order the calls happened in: a lease's R line is printed before
		// the lease can end, so before any later lease's lines, and before
		// the a and A lines of its own ack.
		intents := map[uint64]int{}
		for _, l := range lines {
			switch l.kind {
			case 'R':
				receives++
				if body, ok := known[l.id]; !ok {
					addKnown(cycle, l.id, l.text)
				} else if body != l.text {
					t.Fatalf("cycle %d: message %d received with body %q, enqueued with %q", cycle, l.id, l.text, body)
				}
				if l.attempt > 1 {
					redeliveries++
				}
				// Receipts are id.attempt: an attempt not above every one
				// handed out before is a receipt handed out twice.
				if prev, ok := leasedAs[l.id]; ok && l.attempt <= prev {
					t.Errorf("cycle %d: message %d leased as attempt %d after attempt %d: receipt %d.%d handed out twice", cycle, l.id, l.attempt, prev, l.id, l.attempt)
					reusedReceipts++
				}
				leasedAs[l.id] = max(leasedAs[l.id], l.attempt)
				if gone[l.id] {
					t.Errorf("cycle %d: message %d (%s) was gone at an earlier check and was received again as attempt %d", cycle, l.id, l.text, l.attempt)
					ackedAgain++
				}
				if att, ok := acked[l.id]; ok {
					t.Errorf("cycle %d: message %d (%s) was acked as attempt %d and received again as attempt %d", cycle, l.id, l.text, att, l.attempt)
					ackedAgain++
				}
			case 'a':
				intents[l.id] = l.attempt
			case 'A':
				if att, ok := intents[l.id]; !ok || att != l.attempt {
					t.Fatalf("cycle %d: ack of %d.%d returned without an intent line", cycle, l.id, l.attempt)
				}
				if prev, dup := acked[l.id]; dup {
					t.Fatalf("cycle %d: message %d acked twice: attempts %d and %d", cycle, l.id, prev, l.attempt)
				}
				delete(intents, l.id)
				acked[l.id] = l.attempt
				ackLines++
			case 'S':
				if _, ok := intents[l.id]; !ok {
					t.Fatalf("cycle %d: ack error for %d without an intent line", cycle, l.id)
				}
				if l.text != "stale" {
					t.Fatalf("cycle %d: ack of a message this child leased returned %s", cycle, l.text)
				}
				delete(intents, l.id)
				stale++
			}
		}
		for id := range intents { // the kill came while these acks ran
			maybe[id] = true
		}

		// Did the child write a snapshot of its own?
		snap, _ := os.ReadFile(filepath.Join(qdir, snapshotName))
		if lastSnap != nil && !bytes.Equal(snap, lastSnap) {
			childSnapshots++
		}

		notAppliedBefore := maybeNotApplied
		// Recover and check, without changing what the next child finds
		// (beyond expiring leases that ran out). The clock stands still
		// while we look, so no lease runs out between Info and the listing.
		frozen := time.Now()
		b, err := Open(dir, Options{Sync: log.SyncAlways, SegmentSize: 64 << 10, MaintenanceInterval: -1, Logger: quiet, Now: func() time.Time { return frozen }})
		if err != nil {
			t.Fatalf("cycle %d: Open after kill: %v", cycle, err)
		}
		q, err := b.Queue("q")
		if err != nil {
			b.Close()
			t.Fatalf("cycle %d: %v", cycle, err)
		}
		info, err := q.Info()
		if err != nil {
			b.Close()
			t.Fatalf("cycle %d: Info: %v", cycle, err)
		}
		live, dead, err := qcrashListAll(q)
		if err != nil {
			b.Close()
			t.Fatalf("cycle %d: listing: %v", cycle, err)
		}
		segs := q.log.Segments()
		segments := len(segs)
		if err := b.Close(); err != nil {
			t.Fatalf("cycle %d: Close: %v", cycle, err)
		}
		if lastSnap, err = os.ReadFile(filepath.Join(qdir, snapshotName)); err != nil {
			t.Fatalf("cycle %d: no snapshot after Close: %v", cycle, err)
		}
		if len(live) != info.Counts.Ready+info.Counts.Delayed+info.Counts.Leased || len(dead) != info.Counts.Dead {
			t.Fatalf("cycle %d: listed %d live and %d dead messages, counts say %+v", cycle, len(live), len(dead), info.Counts)
		}
		maps := []map[uint64]Message{live, dead}
		for _, m := range maps {
			for id, msg := range m {
				if dead[id].ID != 0 && live[id].ID != 0 {
					t.Fatalf("cycle %d: message %d listed both live and dead", cycle, id)
				}
				if att, ok := acked[id]; ok {
					t.Errorf("cycle %d: message %d (%s) acked as attempt %d is still there: %s, attempts %d", cycle, id, msg.Body, att, msg.State, msg.Attempts)
					ackedAgain++
				}
				if gone[id] {
					t.Errorf("cycle %d: message %d (%s) was gone at an earlier check and is back", cycle, id, msg.Body)
					ackedAgain++
				}
				if body, ok := known[id]; ok && body != string(msg.Body) {
					t.Fatalf("cycle %d: message %d holds body %q, enqueued with %q", cycle, id, msg.Body, body)
				} else if !ok {
					addKnown(cycle, id, string(msg.Body))
					unloggedEnq++
				}
				if maybe[id] {
					delete(maybe, id) // its ack never happened
					maybeNotApplied++
				}
				maxID = max(maxID, id)
			}
		}
		var lost []string
		for id, body := range known {
			maxID = max(maxID, id)
			if gone[id] || live[id].ID != 0 || dead[id].ID != 0 {
				continue
			}
			_, ok := acked[id]
			switch {
			case ok:
				gone[id] = true
			case maybe[id]:
				gone[id] = true
				delete(maybe, id)
				maybeApplied++
			default:
				lost = append(lost, fmt.Sprintf("%d (%s)", id, body))
			}
		}
		if len(lost) > 0 {
			losses += len(lost)
			slices.Sort(lost)
			t.Errorf("cycle %d: %d acknowledged messages lost (never acked): %s", cycle, len(lost), strings.Join(lost[:min(len(lost), 20)], ", "))
		}
		maxSegments = max(maxSegments, segments)
		// What the child's compaction did.
		nowSegs := map[uint64]int64{}
		for _, sg := range segs {
			nowSegs[sg.Base] = sg.Size
			if size, ok := prevSegs[sg.Base]; ok && sg.Size < size {
				segsRewritten++
			}
		}
		for base := range prevSegs {
			if _, ok := nowSegs[base]; !ok {
				segsRemoved++
			}
		}
		prevSegs = nowSegs
		// MaxLength holds, but for acks the kill cut short: an ack frees
		// its message's place before it is durable.
		backlog := len(live) + len(dead)
		if limit := max(qcrashMaxLength, prevBacklog) + maybeNotApplied - notAppliedBefore; backlog > limit {
			t.Errorf("cycle %d: %d messages in a queue of max length %d (%d before this child, %d of its acks undone by the kill)", cycle, backlog, qcrashMaxLength, prevBacklog, maybeNotApplied-notAppliedBefore)
		}
		prevBacklog = backlog
		maxBacklog = max(maxBacklog, backlog)
		if t.Failed() {
			t.FailNow()
		}
	}

	// Drain everything once, on a clock an hour ahead so every lease and
	// delay has run out, to be sure what the listings showed is receivable.
	clk := queuetest.NewClock(time.Now().Add(time.Hour))
	opts := testOptions(clk)
	opts.Sync = log.SyncAlways
	b := mustOpen(t, dir, opts)
	q, err := b.Queue("q")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := q.Info(); err != nil { // expire every lease (out-of-attempts ones go dead)
		t.Fatal(err)
	}
	redriven, err := q.Redrive(0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64]int{}
	for {
		msgs, err := q.Receive(context.Background(), ReceiveOptions{Max: MaxReceive, Visibility: time.Hour})
		if err != nil {
			t.Fatalf("final drain: Receive: %v", err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs { // record before acking
			got[m.ID]++
			if body, ok := known[m.ID]; !ok || body != string(m.Body) {
				t.Errorf("final drain: message %d has body %q, want %q", m.ID, m.Body, body)
			}
			if att, ok := acked[m.ID]; ok {
				t.Errorf("final drain: message %d acked as attempt %d received again", m.ID, att)
				ackedAgain++
			}
			if gone[m.ID] {
				t.Errorf("final drain: message %d gone at an earlier check received again", m.ID)
				ackedAgain++
			}
		}
		errs, err := q.Ack(receipts(msgs))
		if err != nil {
			t.Fatalf("final drain: Ack: %v", err)
		}
		for i, e := range errs {
			if e != nil {
				t.Fatalf("final drain: Ack %s: %v", msgs[i].Receipt, e)
			}
		}
	}
	drained := 0
	for id, body := range known {
		if gone[id] {
			continue
		}
		drained++
		if got[id] != 1 {
			t.Errorf("final drain: message %d (%s) received %d times, want once", id, body, got[id])
			if got[id] == 0 {
				losses++
			}
		}
	}
	if len(got) != drained {
		t.Errorf("final drain received %d messages, want %d", len(got), drained)
	}
	if info, err := q.Info(); err != nil || info.Counts.Total != 0 {
		t.Errorf("after the final drain: %+v, %v", info.Counts, err)
	}

	t.Logf("%d cycles in %s: %d enqueues acknowledged (+%d found unacknowledged), %d acks acknowledged, %d receives (%d redeliveries), %d acks cut by the kill (%d had happened, %d had not), %d stale acks, %d lines cut by the kill, %d child snapshots, backlog up to %d, up to %d segments (%d rewritten, %d removed by compaction); final drain %d (%d redriven from dead)",
		qcrashCycles, time.Since(start).Round(time.Millisecond), enqueued, unloggedEnq, ackLines, receives, redeliveries,
		maybeApplied+maybeNotApplied+len(maybe), maybeApplied, maybeNotApplied, stale, partials, childSnapshots, maxBacklog, maxSegments, segsRewritten, segsRemoved, drained, redriven)
	t.Logf("losses: %d (must be 0), acked messages delivered or present again: %d (must be 0), receipts handed out twice: %d (must be 0)", losses, ackedAgain, reusedReceipts)
	if losses != 0 || ackedAgain != 0 || reusedReceipts != 0 {
		t.Fail()
	}
	if childSnapshots == 0 {
		t.Errorf("no child wrote a snapshot in %d cycles: the test did not cover snapshots under load", qcrashCycles)
	}
}

// ---------------------------------------------------------------------------
// Restart at every step

// rsRun is one run of the restart scenario.
type rsRun struct {
	t    *testing.T
	clk  *clock
	dir  string
	opts Options
	b    *Broker
	held map[string][]Message // leases the scenario keeps by name
	// crash makes restart skip Close (and its snapshot).
	crash bool
}

func (r *rsRun) q(name string) *Queue {
	r.t.Helper()
	q, err := r.b.Queue(name)
	if err != nil {
		r.t.Fatalf("Queue(%s): %v", name, err)
	}
	return q
}

func (r *rsRun) open() {
	r.t.Helper()
	b, err := Open(r.dir, r.opts)
	if err != nil {
		r.t.Fatalf("Open: %v", err)
	}
	r.b = b
}

// restart closes the broker and opens it again on the same directory and
// clock. With crash set it does not Close: each queue writes (without
// fsync) the events it has applied, as a maintenance run does, and its
// files are closed without a snapshot, as a process killed right after
// that run would leave them. (Lease and extend events not yet written are
// lost to a crash by design, so a crash before that write may differ.)
func (r *rsRun) restart() {
	r.t.Helper()
	if r.crash {
		crashBroker(r.t, r.b)
	} else if err := r.b.Close(); err != nil {
		r.t.Fatalf("Close: %v", err)
	}
	r.open()
}

// crashBroker leaves b's directory as a process killed right after a
// maintenance run's write would: every event applied so far written (not
// fsynced: a process crash keeps what was written), no snapshot, files
// closed. b must not be used again.
func crashBroker(tb testing.TB, b *Broker) {
	tb.Helper()
	if err := simulateCrash(b, true); err != nil {
		tb.Fatalf("simulated crash: %v", err)
	}
}

func rsMsgs(msgs []Message) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, m := range msgs {
		if i > 0 {
			sb.WriteByte(' ')
		}
		body := fmt.Sprintf("%q", m.Body)
		if len(m.Body) > 32 { // the bulk bodies
			body = fmt.Sprintf("%d bytes crc %08x", len(m.Body), log.Checksum(m.Body))
		}
		fmt.Fprintf(&sb, "%d(%s att=%d %s %s", m.ID, m.Receipt, m.Attempts, m.State, body)
		if len(m.Attributes) > 0 {
			fmt.Fprintf(&sb, " %v", m.Attributes)
		}
		fmt.Fprintf(&sb, " @%d)", m.EnqueuedAt.UnixNano())
	}
	sb.WriteByte(']')
	return sb.String()
}

func rsErrs(errs []error, err error) string {
	if err != nil {
		return "call failed: " + err.Error()
	}
	return fmt.Sprint(errs)
}

// receive leases up to max messages of queue and keeps them as name.
func (r *rsRun) receive(queue, name string, max int) string {
	msgs, err := r.q(queue).Receive(context.Background(), ReceiveOptions{Max: max})
	if err != nil {
		r.t.Fatalf("Receive(%s): %v", queue, err)
	}
	r.held[name] = msgs
	return rsMsgs(msgs)
}

// pick returns the receipts of the named lease at the given positions
// (all of them if none are given); positions past the end are skipped, so
// a diverging run shows up as a state difference, not a crash.
func (r *rsRun) pick(name string, at ...int) []Receipt {
	msgs := r.held[name]
	if len(at) == 0 {
		return receipts(msgs)
	}
	var out []Receipt
	for _, i := range at {
		if i < len(msgs) {
			out = append(out, msgs[i].Receipt)
		}
	}
	return out
}

func (r *rsRun) enqueue(queue string, msgs ...NewMessage) string {
	ids, err := r.q(queue).Enqueue(msgs)
	return fmt.Sprint(ids, err)
}

func (r *rsRun) maintain() string {
	if err := r.b.Maintain(); err != nil {
		return "maintain: " + err.Error()
	}
	return "maintained"
}

// rsObserve is everything observable about the broker's queues, in a
// form two runs can compare: config, counts, every message with its state
// and attempts, and each message log's segments.
func rsObserve(t *testing.T, b *Broker) string {
	t.Helper()
	var sb strings.Builder
	for _, info := range b.List() {
		fmt.Fprintf(&sb, "queue %s %+v counts %+v\n", info.Name, info.Config, info.Counts)
		q, err := b.Queue(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		live, dead, err := qcrashListAll(q)
		if err != nil {
			t.Fatalf("listing %s: %v", info.Name, err)
		}
		for _, set := range []map[uint64]Message{live, dead} {
			ids := make([]uint64, 0, len(set))
			for id := range set {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				fmt.Fprintf(&sb, "  %s\n", rsMsgs([]Message{set[id]}))
			}
		}
		var segs []string
		for _, s := range q.log.Segments() {
			segs = append(segs, fmt.Sprintf("%d-%d:%dB:sealed=%v", s.Base, s.LastID, s.Size, s.Sealed))
		}
		fmt.Fprintf(&sb, "  segments %v\n", segs)
	}
	return sb.String()
}

type rsStep struct {
	name string
	do   func(r *rsRun) string
}

// rsCrashDiffers names the steps after which a crash is known to change
// what follows, and why; the crash variants do not crash there.
var rsCrashDiffers = map[string]string{
	// j4's nack to the back after 5s has run out, and j7 and j8 were
	// enqueued after the nack.
	"advance 6s": "BUG: replayed, j4's delayed nack to the back is placed before j7 and j8 (TestCrashKeepsDelayedBackNackOrder)",
}

func rsAttrs(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// rsScenario covers every kind of change a queue records. Only steps
// named "advance" move the clock, and the state is observed (which
// applies due delays and expiries) after every step, with or without a
// restart, so both runs apply the clock's effects at the same points.
func rsScenario() []rsStep {
	d := func(x time.Duration) *time.Duration { return &x }
	msg := func(body string) NewMessage { return NewMessage{Body: []byte(body)} }
	// Incompressible bodies, so each batch of ten fills a segment.
	bulk := make([]NewMessage, 60)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range bulk {
		body := make([]byte, 1000)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		bulk[i] = NewMessage{Body: body}
	}
	steps := []rsStep{
		{"create jobs.dlq", func(r *rsRun) string {
			_, created, err := r.b.Create("jobs.dlq", ConfigUpdate{})
			return fmt.Sprint(created, err)
		}},
		{"create jobs", func(r *rsRun) string {
			_, created, err := r.b.Create("jobs", ConfigUpdate{MaxAttempts: ptr(3), DeadLetterQueue: ptr("jobs.dlq"), VisibilityTimeout: ptr(30 * time.Second)})
			return fmt.Sprint(created, err)
		}},
		{"create bulk", func(r *rsRun) string {
			_, created, err := r.b.Create("bulk", ConfigUpdate{})
			return fmt.Sprint(created, err)
		}},
		{"enqueue j1-j6 with a delay and attributes", func(r *rsRun) string {
			return r.enqueue("jobs", msg("j1"), NewMessage{Body: []byte("j2"), Delay: d(10 * time.Second)},
				NewMessage{Body: []byte("j3"), Attributes: rsAttrs("k", "v", "n", "3")}, msg("j4"),
				NewMessage{Body: []byte("j5"), Delay: d(0), Attributes: rsAttrs("only", "")}, msg("j6"))
		}},
		{"receive 3", func(r *rsRun) string { return r.receive("jobs", "r1", 3) }},
		{"ack the first", func(r *rsRun) string { return rsErrs(r.q("jobs").Ack(r.pick("r1", 0))) }},
		{"nack the second to the front", func(r *rsRun) string {
			return rsErrs(r.q("jobs").Nack(r.pick("r1", 1), NackOptions{Front: true}))
		}},
		{"nack the third to the back after 5s", func(r *rsRun) string {
			return rsErrs(r.q("jobs").Nack(r.pick("r1", 2), NackOptions{Delay: 5 * time.Second}))
		}},
		{"enqueue j7 j8", func(r *rsRun) string { return r.enqueue("jobs", msg("j7"), msg("j8")) }},
		{"receive 2", func(r *rsRun) string { return r.receive("jobs", "r2", 2) }},
		{"extend the first by 60s", func(r *rsRun) string {
			return rsErrs(r.q("jobs").Extend(r.pick("r2", 0), time.Minute))
		}},
		{"update jobs visibility to 20s", func(r *rsRun) string {
			_, created, err := r.b.Create("jobs", ConfigUpdate{VisibilityTimeout: ptr(20 * time.Second)})
			return fmt.Sprint(created, err)
		}},
		{"advance 6s", func(r *rsRun) string { r.clk.Advance(6 * time.Second); return "" }},
		{"receive 3", func(r *rsRun) string { return r.receive("jobs", "r3", 3) }},
		{"fail the first", func(r *rsRun) string { return rsErrs(r.q("jobs").Fail(r.pick("r3", 0))) }},
		{"nack the second to the back, the third to the front after 2s", func(r *rsRun) string {
			a := rsErrs(r.q("jobs").Nack(r.pick("r3", 1), NackOptions{}))
			return a + " " + rsErrs(r.q("jobs").Nack(r.pick("r3", 2), NackOptions{Front: true, Delay: 2 * time.Second}))
		}},
		{"advance 5s", func(r *rsRun) string { r.clk.Advance(5 * time.Second); return "" }},
		{"receive 10", func(r *rsRun) string { return r.receive("jobs", "r4", 10) }},
		{"nack two of them to the back", func(r *rsRun) string {
			return rsErrs(r.q("jobs").Nack(r.pick("r4", 0, 2), NackOptions{}))
		}},
		{"advance 31s", func(r *rsRun) string { r.clk.Advance(31 * time.Second); return "" }},
		{"receive 10 after expiry", func(r *rsRun) string { return r.receive("jobs", "r5", 10) }},
		{"nack them all to the back (the last attempts go dead)", func(r *rsRun) string {
			return rsErrs(r.q("jobs").Nack(r.pick("r5"), NackOptions{}))
		}},
		{"receive 10 again", func(r *rsRun) string { return r.receive("jobs", "r6", 10) }},
		{"enqueue 60 KiB to bulk, a segment per batch", func(r *rsRun) string {
			var res []string
			for i := 0; i < len(bulk); i += 10 {
				res = append(res, r.enqueue("bulk", bulk[i:i+10]...))
			}
			return strings.Join(res, " ")
		}},
		{"receive bulk, ack all but every sixth", func(r *rsRun) string {
			res := r.receive("bulk", "b1", 100)
			var ack []Receipt
			for i, m := range r.held["b1"] {
				if i%6 != 0 {
					ack = append(ack, m.Receipt)
				}
			}
			return res + " " + rsErrs(r.q("bulk").Ack(ack))
		}},
		{"advance 61s (leases run out, last attempts go dead)", func(r *rsRun) string { r.clk.Advance(61 * time.Second); return "" }},
		{"maintain: dead-letter moves, snapshot, compaction rewrites a segment", func(r *rsRun) string { return r.maintain() }},
		{"receive 2 from the dead-letter queue", func(r *rsRun) string { return r.receive("jobs.dlq", "d1", 2) }},
		{"ack one, fail the other", func(r *rsRun) string {
			return rsErrs(r.q("jobs.dlq").Ack(r.pick("d1", 0))) + " " + rsErrs(r.q("jobs.dlq").Fail(r.pick("d1", 1)))
		}},
		{"redrive the dead-letter queue", func(r *rsRun) string {
			n, err := r.q("jobs.dlq").Redrive(0)
			return fmt.Sprint(n, err)
		}},
		{"maintain again: compaction rewrites another segment", func(r *rsRun) string { return r.maintain() }},
		{"receive the rest of bulk and ack it", func(r *rsRun) string {
			res := r.receive("bulk", "b2", 100)
			return res + " " + rsErrs(r.q("bulk").Ack(r.pick("b2")))
		}},
		{"maintain: bulk's segments go", func(r *rsRun) string { return r.maintain() }},
		{"maintain: bulk's last segment goes", func(r *rsRun) string { return r.maintain() }},
		{"purge jobs", func(r *rsRun) string { return fmt.Sprint(r.q("jobs").Purge()) }},
		{"enqueue j9 and j10 after 1s", func(r *rsRun) string {
			return r.enqueue("jobs", msg("j9"), NewMessage{Body: []byte("j10"), Delay: d(time.Second)})
		}},
		{"receive 10 after purge", func(r *rsRun) string { return r.receive("jobs", "r7", 10) }},
		{"advance 1s", func(r *rsRun) string { r.clk.Advance(time.Second); return "" }},
		{"receive 10 and ack all", func(r *rsRun) string {
			res := r.receive("jobs", "r8", 10)
			return res + " " + rsErrs(r.q("jobs").Ack(append(r.pick("r7"), r.pick("r8")...)))
		}},
		{"enqueue to bulk after compaction", func(r *rsRun) string { return r.enqueue("bulk", msg("last")) }},
		{"maintain", func(r *rsRun) string { return r.maintain() }},
	}
	return steps
}

// runScenario runs the scenario in a fresh directory, restarting the
// broker right after step restartAfter (none if negative), and returns
// what each step returned and the state after it.
func runScenario(t *testing.T, steps []rsStep, opts Options, restartAfter int, crash bool) (results, states []string) {
	t.Helper()
	r := &rsRun{t: t, clk: newClock(), dir: t.TempDir(), held: map[string][]Message{}, crash: crash}
	r.opts = opts
	r.opts.Now = r.clk.Now
	r.open()
	defer func() { r.b.Close() }()
	for i, s := range steps {
		results = append(results, s.do(r))
		if i == restartAfter {
			r.restart()
		}
		states = append(states, rsObserve(t, r.b))
	}
	return results, states
}

// TestRestartAtEveryStep runs a scenario once without restarts and then
// once per step with a restart (Close, Open on the same directory and
// clock) right after that step, and checks that every later step returns
// the same results (same ids, attempts, receipts, order) and leaves the
// same state (counts, every message with its state and attempts) as the
// run without restarts. The crash variants restart without Close, from
// the state log instead of a fresh snapshot (see crashBroker).
func TestRestartAtEveryStep(t *testing.T) {
	steps := rsScenario()
	for _, v := range []struct {
		name          string
		snapshotEvery int
		crash         bool
	}{
		{"snapshot every event", 1, false},
		{"default snapshots", 0, false},
		{"snapshot every event, crash", 1, true},
		{"default snapshots, crash", 0, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			if v.crash && testing.Short() {
				t.Skip("the crash variants are skipped in -short mode")
			}
			t.Parallel()
			// No fsyncs: a restart, even the crash kind, keeps what was
			// written, and the test runs the scenario 4×42 times.
			opts := Options{Sync: log.SyncNone, MaintenanceInterval: -1, Logger: quiet, SegmentSize: 8 << 10, SnapshotEvery: v.snapshotEvery}
			wantRes, wantStates := runScenario(t, steps, opts, -1, false)
			rsCheckCoverage(t, wantRes, wantStates)
			for k := range steps {
				if why := rsCrashDiffers[steps[k].name]; v.crash && why != "" {
					t.Logf("not crashing after step %d (%s): %s", k, steps[k].name, why)
					continue
				}
				gotRes, gotStates := runScenario(t, steps, opts, k, v.crash)
				for i := range steps {
					if gotRes[i] != wantRes[i] {
						t.Errorf("restart after step %d (%s): step %d (%s) returned\n%s\nwithout the restart:\n%s", k, steps[k].name, i, steps[i].name, gotRes[i], wantRes[i])
						break
					}
					if rsMessages(gotStates[i]) != rsMessages(wantStates[i]) {
						t.Errorf("restart after step %d (%s): state after step %d (%s):\n%s\nwithout the restart:\n%s", k, steps[k].name, i, steps[i].name, gotStates[i], wantStates[i])
						break
					}
				}
			}
		})
	}
}

// rsMessages drops the segment layout from an observed state. Where the
// message log's segments stand is not queue state, and it does differ
// after a restart: see TestRestartCompactionForgetsRewrites.
func rsMessages(state string) string {
	lines := strings.SplitAfter(state, "\n")
	lines = slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, "  segments ") })
	return strings.Join(lines, "")
}

// rsCheckCoverage makes sure the run without restarts did what the
// scenario is meant to cover, so a change in behaviour cannot quietly
// turn the comparison into one of empty states.
func rsCheckCoverage(t *testing.T, res, states []string) {
	t.Helper()
	all := strings.Join(res, "\n")
	for _, want := range []string{
		"stale receipt", // none expected: listed to fail loudly below if present
	} {
		if strings.Contains(all, want) {
			t.Errorf("the scenario hit %q:\n%s", want, all)
		}
	}
	joined := strings.Join(states, "\n")
	for _, want := range []string{"leased", "delayed", "dead", "att=3", "map[k:v n:3]"} {
		if !strings.Contains(joined, want) {
			t.Errorf("no state in the scenario shows %q", want)
		}
	}
}

// TestRestartCompactionForgetsRewrites: after a restart, compaction must
// not rewrite an already compacted segment again (its live share by id
// range is still under a quarter, though every record its file holds is
// live). It once remembered its rewrites only in memory; it now counts the
// records a file holds.
func TestRestartCompactionForgetsRewrites(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := testOptions(clk)
			opts.SegmentSize = 8 << 10
			b, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { b.Close() }()
			q := mustCreate(t, b, "q", ConfigUpdate{})
			rng := rand.New(rand.NewPCG(1, 2))
			for range 3 { // three segments of ten incompressible 1000-byte messages
				msgs := make([]NewMessage, 10)
				for i := range msgs {
					msgs[i].Body = make([]byte, 1000)
					for j := range msgs[i].Body {
						msgs[i].Body[j] = byte(rng.Uint32())
					}
				}
				if _, err := q.Enqueue(msgs); err != nil {
					t.Fatal(err)
				}
			}
			var ack []Receipt
			for _, m := range receive(t, q, 100) {
				if m.ID%10 != 1 { // keep one in ten
					ack = append(ack, m.Receipt)
				}
			}
			if _, err := q.Ack(ack); err != nil {
				t.Fatal(err)
			}
			if err := b.Maintain(); err != nil { // rewrites segments 1-10 and 11-20
				t.Fatal(err)
			}
			segs := q.log.Segments()
			if segs[0].Size > 2<<10 || segs[1].Size > 2<<10 {
				t.Fatalf("after one compaction, with one message in ten live: %+v", segs[:2])
			}
			if restart {
				b, q = reopenQueue(t, b, dir, opts, "q")
			}
			var before []os.FileInfo
			for _, s := range q.log.Segments()[:2] {
				fi, err := os.Stat(s.Path)
				if err != nil {
					t.Fatal(err)
				}
				before = append(before, fi)
			}
			if err := b.Maintain(); err != nil { // should leave both alone
				t.Fatal(err)
			}
			for i, s := range q.log.Segments()[:2] {
				again, err := os.Stat(s.Path)
				if err != nil {
					t.Fatal(err)
				}
				if !os.SameFile(before[i], again) {
					t.Errorf("the second compaction rewrote segment %d-%d again, though every record in it is live", s.Base, s.LastID)
				}
			}
		})
	}
}

// newRepro starts a minimal reproduction: a broker with testOptions on a
// fresh directory, closed when t ends, and its empty queue "q". Its
// restart reopens the broker on the same directory and clock, after
// crashBroker if crash is set and after Close if not.
func newRepro(t *testing.T) (*rsRun, *Queue) {
	t.Helper()
	r := &rsRun{t: t, clk: newClock(), dir: t.TempDir()}
	r.opts = testOptions(r.clk)
	r.open()
	t.Cleanup(func() { r.b.Close() })
	return r, mustCreate(t, r.b, "q", ConfigUpdate{})
}

// TestCrashKeepsDelayedBackNackOrder is a minimal reproduction: a message
// nacked to the back with a delay is placed, when its delay runs out,
// after the newest id at that moment, but nothing records that moment.
// After a crash (no snapshot since) the state log replays the nack with
// the newest id at nack time, so messages enqueued between the nack and
// the end of its delay, which were ahead of it before the crash, now come
// after it. The documented guarantee (after everything enqueued before
// the nack) holds either way; the ready order changes across the crash.
func TestCrashKeepsDelayedBackNackOrder(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(fmt.Sprintf("crash=%v", crash), func(t *testing.T) {
			r, q := newRepro(t)
			enqueue(t, q, "a", "b")
			if err := one(q.Nack(receipts(receive(t, q, 1)), NackOptions{Delay: 5 * time.Second})); err != nil {
				t.Fatal(err)
			}
			enqueue(t, q, "c")
			r.clk.Advance(6 * time.Second)
			if err := r.b.Maintain(); err != nil { // a's delay ran out: a goes after c
				t.Fatal(err)
			}
			if crash {
				r.crash = true
				r.restart()
				q = r.q("q")
			}
			wantBodies(t, receive(t, q, 10), "b", "c", "a")
		})
	}
}

// TestCrashForgetsAckOfDelayedMessage is a minimal reproduction: a
// message that a snapshot holds as delayed, and that is then received and
// acked once its delay ran out, is back (ready, attempts as before) after
// a crash before the next snapshot. A delay running out is not a state
// event, so replay applies the lease and the ack to a message the
// snapshot says is still delayed; both fail and are skipped as events
// about messages the log no longer holds. TestQueueCrashSIGKILLDelayedNacks
// hits it within a few cycles.
func TestCrashForgetsAckOfDelayedMessage(t *testing.T) {
	for _, how := range []string{"enqueued with a delay", "nacked with a delay"} {
		t.Run(how, func(t *testing.T) {
			r, q := newRepro(t)
			delay := 5 * time.Second
			if how == "enqueued with a delay" {
				if _, err := q.Enqueue([]NewMessage{{Body: []byte("x"), Delay: &delay}}); err != nil {
					t.Fatal(err)
				}
			} else {
				enqueue(t, q, "x")
				if err := one(q.Nack(receipts(receive(t, q, 1)), NackOptions{Delay: delay})); err != nil {
					t.Fatal(err)
				}
			}
			// A clean restart: its snapshot holds x as delayed.
			r.restart()
			q = r.q("q")
			r.clk.Advance(6 * time.Second)
			got := receive(t, q, 1)
			wantBodies(t, got, "x")
			if err := one(q.Ack(receipts(got))); err != nil {
				t.Fatalf("Ack = %v", err)
			}
			// The ack returned: it is fsynced. Now the process dies.
			r.crash = true
			r.restart()
			q = r.q("q")
			if info, err := q.Info(); err != nil || info.Counts.Total != 0 {
				t.Errorf("after the crash: %+v, %v; want the acked message gone", info.Counts, err)
			}
			if again := receive(t, q, 1); len(again) != 0 {
				t.Errorf("acked message delivered again after the crash: %s", rsMsgs(again))
			}
		})
	}
}
