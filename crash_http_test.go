package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// crashCycles is how many SIGKILL/restart cycles TestCrashHTTP runs. The
// default keeps a plain `go test ./...` (and CI) to the bounded run; the
// long run is
//
//	go test -run TestCrashHTTP -crash.cycles=50 .
var crashCycles = flag.Int("crash.cycles", 10, "SIGKILL/restart cycles of TestCrashHTTP (CI: 10; long run: -crash.cycles=50)")

const crashQueue = "crash"

// crashAfter waits until d has passed: a timer that chooses a kill moment,
// never a synchronization.
func crashAfter(d time.Duration) {
	timer := time.NewTimer(d)
	<-timer.C
}

// crashLedger is what the clients were told, across every cycle.
type crashLedger struct {
	mu sync.Mutex
	// sent holds every body ever sent, acknowledged or not (bodies are
	// unique), so anything the server returns can be traced to a send.
	sent map[string]bool
	// durable maps id to body for every message that must exist until it
	// is acked: acknowledged enqueues, plus messages an unacknowledged
	// enqueue left behind once a restarted server has shown them.
	durable map[string]string
	// acked holds the ids whose ack returned ok: none may come back.
	acked map[string]bool
	// ackMaybe holds ids whose ack failed other than as a stale receipt
	// (the server died or was stopping): it may or may not have happened.
	// The next verification settles it.
	ackMaybe map[string]bool
	// deliveries counts receives per id.
	deliveries map[string]int

	ackedEnqueues    int // enqueues that returned ids
	ackMaybeDone     int // uncertain acks that turned out to have happened
	backlog          int // about how many messages wait: acked enqueues - acked acks
	adopted          int // unacknowledged enqueues found after a restart
	ackedAcks        int
	received         int // messages received, redeliveries included
	redelivered      int // receives of a message received before (fine)
	ackedRedelivered int // receives of an acked message (must be 0)
	losses           int // durable messages missing or changed (must be 0)
	ghosts           int // acked messages present after a restart (must be 0)
	stale            int // per-receipt ack errors
	unexpected       int // request errors while the server was up
}

func newCrashLedger() *crashLedger {
	return &crashLedger{
		sent:       map[string]bool{},
		durable:    map[string]string{},
		acked:      map[string]bool{},
		ackMaybe:   map[string]bool{},
		deliveries: map[string]int{},
	}
}

// crashBody returns a unique body: the text "c<cycle>-p<g>-<n>", and for
// some messages binary bytes (invalid UTF-8, so sent as base64 in batches)
// or a larger payload after it.
func crashBody(rng *rand.Rand, cycle, g, n int) []byte {
	b := []byte(fmt.Sprintf("c%d-p%d-%d", cycle, g, n))
	switch r := rng.IntN(100); {
	case r < 25: // binary: NUL, 0xff and random bytes
		b = append(b, 0, 0xff, 0xfe, '\n')
		for range rng.IntN(64) {
			b = append(b, byte(rng.Uint32()))
		}
	case r < 27: // large
		b = append(b, bytes.Repeat([]byte{byte(rng.Uint32())}, 4<<10+rng.IntN(28<<10))...)
	}
	return b
}

// TestCrashHTTP is the crash harness: it starts the real binary, drives
// mixed load through the HTTP API from several goroutines while recording
// every acknowledged enqueue and ack, SIGKILLs the server at a random
// moment, restarts it, and verifies that every acknowledged enqueue is
// there with identical bytes, that no acknowledged ack is delivered again,
// and that `spool check` is clean after each restart (a graceful stop
// after the verification, then queue.Check). -crash.cycles sets the number
// of cycles (10 by default, the CI-sized run).
func TestCrashHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and SIGKILLs it many times")
	}
	cycles := *crashCycles
	if cycles < 1 {
		t.Skip("-crash.cycles < 1")
	}
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d, %d cycles", seed, cycles)
	rng := rand.New(rand.NewPCG(seed, 0))

	bin := buildSpool(t)
	data := t.TempDir()
	led := newCrashLedger()
	var completed, tornSeen, tornRepaired, longRuns, termKills, recoveryKills int
	// The totals are printed however the test ends.
	defer func() {
		led.mu.Lock()
		defer led.mu.Unlock()
		t.Logf("crash totals: cycles %d of %d (%d ran 1-2.5 s, %d killed in a graceful shutdown, +%d kills during recovery), acked enqueues %d (+%d unacknowledged found after restarts), acked acks %d (+%d uncertain that happened), received %d (redelivered %d), torn tails seen %d / repaired by restart %d, stale ack receipts %d, elapsed %s",
			completed, cycles, longRuns, termKills, recoveryKills, led.ackedEnqueues, led.adopted, led.ackedAcks, led.ackMaybeDone, led.received, led.redelivered, tornSeen, tornRepaired, led.stale, time.Since(start).Round(time.Millisecond))
		t.Logf("crash totals: losses %d (must be 0), acked redelivered %d (must be 0), acked present after restart %d (must be 0), unexpected errors %d (must be 0)",
			led.losses, led.ackedRedelivered, led.ghosts, led.unexpected)
		if led.losses != 0 || led.ackedRedelivered != 0 || led.ghosts != 0 || led.unexpected != 0 {
			t.Errorf("crash harness found %d losses, %d acked redeliveries, %d acked messages present after restart, %d unexpected errors",
				led.losses, led.ackedRedelivered, led.ghosts, led.unexpected)
		}
	}()
	// afterKill requires that a SIGKILL left nothing but torn tails
	// (writes that never completed) for the next start to cut off.
	afterKill := func(cycle int, when string) {
		for _, p := range crashCheck(t, data) {
			if p.Repairable {
				tornSeen++
			} else {
				t.Errorf("cycle %d: check after SIGKILL %s: %s: %s", cycle, when, p.Queue, p.What)
			}
		}
	}

	srv := startBinary(t, bin, data)
	cl := api.NewClient(srv.addr, "", nil)
	maxAttempts := queue.MaxMaxAttempts // leases that run out must not send messages dead
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_, _, err := cl.PutQueue(ctx, crashQueue, api.QueueConfig{MaxAttempts: &maxAttempts})
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	for cycle := range cycles {
		// The kill moment: mostly 100-400 ms into the load; one cycle in
		// four runs 1-2.5 s so background maintenance (state-log flush of
		// leases, expiries) runs too; one in four is a SIGTERM with the
		// SIGKILL 0-30 ms behind it, landing in the graceful shutdown
		// (draining requests, the closing snapshot).
		killAfter := time.Duration(100+rng.IntN(301)) * time.Millisecond
		if rng.IntN(4) == 0 {
			killAfter = time.Duration(1000+rng.IntN(1501)) * time.Millisecond
			longRuns++
		}
		termFirst := time.Duration(-1)
		if rng.IntN(4) == 0 {
			termFirst = time.Duration(rng.IntN(31)) * time.Millisecond
			termKills++
		}
		crashLoad(t, srv, led, cycle, rng.Uint64(), killAfter, termFirst)
		if t.Failed() {
			break
		}
		// The server is dead and the lock free.
		afterKill(cycle, "under load")

		// One cycle in four also SIGKILLs a start 0-60 ms in, during
		// recovery.
		if rng.IntN(4) == 0 {
			s := startChild(t, exec.Command(bin, serveArgs(data)...))
			crashAfter(time.Duration(rng.IntN(61)) * time.Millisecond)
			s.kill(t)
			tornRepaired += s.tornTailRepairs()
			recoveryKills++
			afterKill(cycle, "during recovery")
		}

		// Restart: every acknowledged enqueue is there, no acked message is.
		srv = startBinary(t, bin, data)
		tornRepaired += srv.tornTailRepairs()
		crashVerify(t, api.NewClient(srv.addr, "", nil), led, cycle)

		// `spool check` is clean after the restart.
		srv.stop(t)
		for _, p := range crashCheck(t, data) {
			t.Errorf("cycle %d: check after restart and clean stop: %s: %s (repairable %v)", cycle, p.Queue, p.What, p.Repairable)
		}
		if t.Failed() {
			break
		}
		completed++
		srv = startBinary(t, bin, data)
	}

	if !t.Failed() {
		crashDrain(t, api.NewClient(srv.addr, "", nil), led)
		srv.stop(t)
		for _, p := range crashCheck(t, data) {
			t.Errorf("check after the final drain: %s: %s", p.Queue, p.What)
		}
	}
}

// crashCheck runs `spool check`'s verification in-process.
func crashCheck(t *testing.T, data string) []queue.Problem {
	t.Helper()
	rep, err := queue.Check(data)
	if err != nil {
		t.Fatalf("check: %v", err)
	}
	return rep.Problems()
}

// crashLoad drives producers and consumers against srv and SIGKILLs it
// after killAfter, then waits for the process and every client to finish.
// With termFirst ≥ 0 it sends SIGTERM at that moment and the SIGKILL
// termFirst later, so the kill lands in the graceful shutdown.
func crashLoad(t *testing.T, srv *childServer, led *crashLedger, cycle int, seed uint64, killAfter, termFirst time.Duration) {
	cl := api.NewClient(srv.addr, "", nil)
	var killed atomic.Bool
	// fail records an error from a request: after the SIGKILL it is the
	// crash (the worker stops); before, it is a failure of the test.
	fail := func(who string, err error) {
		if killed.Load() {
			return
		}
		led.mu.Lock()
		led.unexpected++
		led.mu.Unlock()
		t.Errorf("cycle %d: %s while the server was up: %v", cycle, who, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var wg sync.WaitGroup
	const producers, consumers = 3, 3
	// backlogCap bounds the messages waiting: above it a producer
	// consumes instead, so verification stays quick in long runs.
	const backlogCap = 3000
	// consume receives up to 10 messages, checks them, and acks 80% of
	// them, nacks 10% and lets the leases of the rest run out. It returns
	// false when the server is gone.
	consume := func(rng *rand.Rand) bool {
		msgs, err := cl.Receive(ctx, crashQueue, api.ReceiveOptions{Max: 1 + rng.IntN(10), Wait: 100 * time.Millisecond, Visibility: 2 * time.Second})
		if err != nil {
			fail("receive", err)
			return false
		}
		var toAck, toNack, ackIDs []string
		led.mu.Lock()
		for _, m := range msgs {
			body, err := api.Body(m)
			if err != nil {
				t.Errorf("cycle %d: received %s: %v", cycle, m.ID, err)
				continue
			}
			crashSeen(t, led, fmt.Sprintf("cycle %d: receive", cycle), m.ID, string(body))
			if led.acked[m.ID] {
				led.ackedRedelivered++
				t.Errorf("cycle %d: received message %s (%q), whose ack was acknowledged (receipt %s, attempts %d)", cycle, m.ID, body, m.Receipt, m.Attempts)
			}
			led.received++
			if led.deliveries[m.ID] > 0 {
				led.redelivered++
			}
			led.deliveries[m.ID]++
			switch r := rng.IntN(10); {
			case r < 8:
				toAck = append(toAck, m.Receipt)
				ackIDs = append(ackIDs, m.ID)
			case r < 9:
				toNack = append(toNack, m.Receipt)
			default: // let the lease run out
			}
		}
		led.mu.Unlock()
		if len(toNack) > 0 {
			if _, err := cl.Nack(ctx, crashQueue, api.NackOptions{}, toNack...); err != nil && !errors.Is(err, queue.ErrStaleReceipt) {
				fail("nack", err)
				return false
			}
		}
		if len(toAck) == 0 {
			return true
		}
		res, err := cl.Ack(ctx, crashQueue, toAck...)
		led.mu.Lock()
		switch {
		case errors.Is(err, queue.ErrStaleReceipt): // every receipt refused alike
			led.stale += len(toAck)
		case err != nil: // the server died or is stopping: each ack may or may not have happened
			for _, id := range ackIDs {
				led.ackMaybe[id] = true
			}
		case len(res) != len(toAck):
			t.Errorf("cycle %d: ack of %d receipts returned %d results", cycle, len(toAck), len(res))
		default:
			for i, r := range res {
				if r.Receipt != toAck[i] {
					t.Errorf("cycle %d: ack result %d is for receipt %s, sent %s", cycle, i, r.Receipt, toAck[i])
				}
				switch rerr := r.Err(); {
				case rerr == nil:
					led.acked[ackIDs[i]] = true
					led.ackedAcks++
					led.backlog--
				case errors.Is(rerr, queue.ErrStaleReceipt):
					led.stale++
				default:
					led.ackMaybe[ackIDs[i]] = true
					if !killed.Load() {
						led.unexpected++
						t.Errorf("cycle %d: ack of %s while the server was up: %v", cycle, r.Receipt, rerr)
					}
				}
			}
		}
		led.mu.Unlock()
		if err != nil && !errors.Is(err, queue.ErrStaleReceipt) {
			fail("ack", err)
			return false
		}
		return true
	}
	for g := range consumers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(producers+g)+1))
			for consume(rng) {
			}
		})
	}
	for g := range producers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)+1))
			for n := 0; ; {
				led.mu.Lock()
				backlog := led.backlog
				led.mu.Unlock()
				if backlog > backlogCap {
					if !consume(rng) {
						return
					}
					continue
				}
				if rng.IntN(10) < 7 {
					body := crashBody(rng, cycle, g, n)
					n++
					led.mu.Lock()
					led.sent[string(body)] = true
					led.mu.Unlock()
					id, err := cl.Send(ctx, crashQueue, body, 0)
					if err != nil {
						fail("send", err)
						return
					}
					led.mu.Lock()
					led.ackedEnqueues++
					led.backlog++
					if prev, ok := led.durable[id]; ok {
						t.Errorf("cycle %d: send returned id %s, already given to %q", cycle, id, prev)
					}
					led.durable[id] = string(body)
					led.mu.Unlock()
					continue
				}
				var bodies [][]byte
				var msgs []api.NewMessage
				for range 2 + rng.IntN(19) {
					body := crashBody(rng, cycle, g, n)
					n++
					bodies = append(bodies, body)
					msgs = append(msgs, api.BodyMessage(body))
				}
				led.mu.Lock()
				for _, b := range bodies {
					led.sent[string(b)] = true
				}
				led.mu.Unlock()
				ids, err := cl.SendBatch(ctx, crashQueue, msgs)
				if err != nil {
					fail("send batch", err)
					return
				}
				led.mu.Lock()
				for i, id := range ids {
					led.ackedEnqueues++
					led.backlog++
					if prev, ok := led.durable[id]; ok {
						t.Errorf("cycle %d: send batch returned id %s, already given to %q", cycle, id, prev)
					}
					led.durable[id] = string(bodies[i])
				}
				led.mu.Unlock()
			}
		})
	}
	crashAfter(killAfter)
	killed.Store(true)
	if termFirst >= 0 {
		if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatalf("SIGTERM: %v", err)
		}
		crashAfter(termFirst)
	}
	srv.kill(t)
	wg.Wait()
}

// crashSeen checks a message the server returned against the ledger: its
// body was sent, and if it is durable, it is unchanged. led.mu is held.
func crashSeen(t *testing.T, led *crashLedger, where, id, body string) {
	t.Helper()
	if !led.sent[body] {
		led.losses++
		t.Errorf("%s: message %s has a body that was never sent: %q", where, id, body)
		return
	}
	if want, ok := led.durable[id]; ok && want != body {
		led.losses++
		t.Errorf("%s: message %s is %q, was enqueued as %q", where, id, body, want)
	}
}

// crashList returns every message of the queue, live and dead, by id.
func crashList(t *testing.T, cl *api.Client) map[string]api.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	all := map[string]api.Message{}
	for _, list := range []func(context.Context, string, string, int) ([]api.Message, error){cl.Peek, cl.Dead} {
		for after := ""; ; {
			msgs, err := list(ctx, crashQueue, after, queue.MaxList)
			if err != nil {
				t.Fatalf("listing messages after %q: %v", after, err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				if _, dup := all[m.ID]; dup {
					t.Errorf("message %s listed twice", m.ID)
				}
				all[m.ID] = m
			}
			after = msgs[len(msgs)-1].ID
		}
	}
	return all
}

// crashVerify checks a restarted server's messages against the ledger and
// settles the acks whose outcome was unknown.
func crashVerify(t *testing.T, cl *api.Client, led *crashLedger, cycle int) {
	t.Helper()
	present := crashList(t, cl)
	led.mu.Lock()
	defer led.mu.Unlock()
	where := fmt.Sprintf("cycle %d: after restart", cycle)
	byBody := map[string]string{}
	for id, m := range present {
		b, err := api.Body(m)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		body := string(b)
		crashSeen(t, led, where, id, body)
		if other, ok := byBody[body]; ok {
			t.Errorf("%s: messages %s and %s have the same body %q (sent once)", where, other, id, body)
		}
		byBody[body] = id
		if led.acked[id] {
			led.ghosts++
			t.Errorf("%s: message %s (%q, state %s) is present, but its ack was acknowledged", where, id, body, m.State)
		}
		if _, ok := led.durable[id]; !ok && !led.acked[id] {
			led.durable[id] = body // the server has shown it: it must stay until acked
			led.adopted++
		}
	}
	var lost []string
	for id, body := range led.durable {
		if led.acked[id] {
			continue
		}
		if _, ok := present[id]; ok {
			continue
		}
		if led.ackMaybe[id] {
			// The ack was in flight when the server died, and happened.
			delete(led.durable, id)
			led.ackMaybeDone++
			continue
		}
		lost = append(lost, fmt.Sprintf("%s (%q, delivered %d times)", id, body, led.deliveries[id]))
	}
	sort.Strings(lost)
	led.losses += len(lost)
	for i, l := range lost {
		if i == 20 {
			t.Errorf("%s: ... and %d more", where, len(lost)-i)
			break
		}
		t.Errorf("%s: acknowledged message %s is missing", where, l)
	}
	clear(led.ackMaybe) // settled: present means the ack did not happen
}

// crashDrain receives and acks everything left and checks that it is
// exactly the durable messages not yet acked.
func crashDrain(t *testing.T, cl *api.Client, led *crashLedger) {
	t.Helper()
	led.mu.Lock()
	want := map[string]string{}
	for id, body := range led.durable {
		if !led.acked[id] {
			want[id] = body
		}
	}
	led.mu.Unlock()
	got := map[string]bool{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		info, err := cl.GetQueue(ctx, crashQueue)
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		if info.Counts.Total == 0 {
			cancel()
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("drain: %+v left after 30s", info.Counts)
		}
		msgs, err := cl.Receive(ctx, crashQueue, api.ReceiveOptions{Max: 100, Wait: 500 * time.Millisecond, Visibility: time.Second})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		var receipts, ids []string
		led.mu.Lock()
		for _, m := range msgs {
			body, err := api.Body(m)
			if err != nil {
				t.Errorf("drain: %v", err)
				continue
			}
			crashSeen(t, led, "drain", m.ID, string(body))
			if led.acked[m.ID] {
				led.ackedRedelivered++
				t.Errorf("drain: received message %s (%q), whose ack was acknowledged", m.ID, body)
			}
			led.received++
			if led.deliveries[m.ID] > 0 {
				led.redelivered++
			}
			led.deliveries[m.ID]++
			got[m.ID] = true
			receipts = append(receipts, m.Receipt)
			ids = append(ids, m.ID)
		}
		led.mu.Unlock()
		if len(receipts) > 0 {
			res, err := cl.Ack(ctx, crashQueue, receipts...)
			if err != nil {
				cancel()
				t.Fatalf("drain: ack: %v", err)
			}
			led.mu.Lock()
			for i, r := range res {
				if r.OK {
					led.acked[ids[i]] = true
					led.ackedAcks++
				} else {
					led.stale++
				}
			}
			led.mu.Unlock()
		}
		cancel()
	}
	led.mu.Lock()
	defer led.mu.Unlock()
	for id, body := range want {
		if !got[id] {
			led.losses++
			t.Errorf("drain: acknowledged message %s (%q) never came", id, body)
		}
	}
	t.Logf("drain: %d messages received and acked", len(got))
}
