package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/index"
)

// faultScenario drives a small workload through every kind of state event
// (leases, ack, nack, extend, fail, redrive, snapshots) on one handle, the
// way an embedding program keeps one. A failed call is reported to
// failed and followed by a maintenance run, which reloads a broken queue;
// the scenario then goes on with the same handle.
type faultScenario struct {
	t      *testing.T
	b      *Broker
	q      *Queue
	failed func(what string, err error)

	enqueued map[uint64]string // enqueues that succeeded
	acked    map[uint64]bool   // acks that succeeded
	maybe    map[uint64]bool   // acks whose call failed: done or not
}

func (s *faultScenario) call(what string, err error) bool {
	if err == nil {
		return true
	}
	s.failed(what, err)
	if merr := s.b.Maintain(); merr != nil {
		s.t.Logf("maintenance after %s: %v", what, merr)
	}
	return false
}

func (s *faultScenario) enqueue(bodies ...string) {
	msgs := make([]NewMessage, len(bodies))
	for i, body := range bodies {
		msgs[i] = NewMessage{Body: []byte(body)}
	}
	ids, err := s.q.Enqueue(msgs)
	if s.call("enqueue", err) {
		for i, id := range ids {
			s.enqueued[id] = bodies[i]
		}
	}
}

func (s *faultScenario) receive(n int) []Receipt {
	msgs, err := s.q.Receive(context.Background(), ReceiveOptions{Max: n})
	s.call("receive", err)
	return receipts(msgs)
}

// ack acks rs, noting which are surely gone and which may be.
func (s *faultScenario) ack(rs []Receipt) {
	if len(rs) == 0 {
		return
	}
	errs, err := s.q.Ack(rs)
	if !s.call("ack", err) {
		for _, r := range rs {
			s.maybe[r.ID] = true
		}
		return
	}
	for i, r := range rs {
		if errs[i] == nil {
			s.acked[r.ID] = true
		}
	}
}

func (s *faultScenario) run() {
	s.enqueue("a", "b", "c", "d", "e", "f")
	rs := s.receive(4)
	if len(rs) == 4 {
		s.ack(rs[:1])
		_, err := s.q.Nack(rs[1:2], NackOptions{})
		s.call("nack", err)
		_, err = s.q.Extend(rs[2:3], 0)
		s.call("extend", err)
		_, err = s.q.Fail(rs[3:4])
		s.call("fail", err)
	}
	s.call("maintain", s.b.Maintain()) // writes the leases, snapshots
	_, err := s.q.Redrive(0)
	s.call("redrive", err)
	s.enqueue("g", "h")
	s.ack(s.receive(3))
	s.call("maintain", s.b.Maintain())
	s.ack(s.receive(1))
	// End with a message in every state: a delayed one, a dead one, a
	// leased one (from above) and ready ones.
	delay := time.Hour
	ids, err := s.q.Enqueue([]NewMessage{{Body: []byte("later"), Delay: &delay}})
	if s.call("enqueue delayed", err) {
		s.enqueued[ids[0]] = "later"
	}
	_, err = s.q.Fail(s.receive(1))
	s.call("fail", err)
}

// TestStateLogFaults fails each state-log write, short write, fsync and
// directory fsync of a small scenario in turn, one fault per run. Every
// failure must reach the caller as an error (the injected one, or
// ErrUnavailable while the queue reloads), the same handle must keep
// working once the fault has passed, and what the queue holds in memory
// must be exactly what a restart finds on disk: nothing acknowledged lost,
// no acked message back, no torn entry left behind.
func TestStateLogFaults(t *testing.T) {
	kinds := []struct {
		name string
		op   index.FaultOp
		torn int
		err  error
	}{
		{"write fails (disk full)", index.OpWrite, 0, syscall.ENOSPC},
		{"short write (disk full mid-entry)", index.OpWrite, 7, syscall.ENOSPC},
		{"fsync fails", index.OpFsync, 0, syscall.EIO},
		{"directory fsync fails", index.OpDirSync, 0, syscall.EIO},
	}
	// A clean run counts the operations each kind can fail.
	counts := map[index.FaultOp]int{}
	runFaultScenario(t, func(op index.FaultOp) (int, error) { counts[op]++; return 0, nil }, func(what string, err error) {
		t.Fatalf("clean run: %s: %v", what, err)
	})
	t.Logf("state-log operations in a clean run: %v", counts)
	if counts[index.OpWrite] < 5 || counts[index.OpFsync] < 5 {
		t.Fatalf("the scenario writes too little to test: %v", counts)
	}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			if counts[k.op] == 0 {
				t.Skipf("the scenario does no %s (the state log's first segment is %d bytes)", k.op, index.StateLogSegmentSize)
			}
			for n := 1; n <= counts[k.op]; n++ {
				seen, failures := 0, 0
				fault := func(op index.FaultOp) (int, error) {
					if op != k.op {
						return 0, nil
					}
					if seen++; seen == n {
						return k.torn, k.err
					}
					return 0, nil
				}
				runFaultScenario(t, fault, func(what string, err error) {
					failures++
					if !errors.Is(err, k.err) && !errors.Is(err, ErrUnavailable) {
						t.Errorf("%s #%d: %s failed with %v, want the injected %v or ErrUnavailable", k.op, n, what, err, k.err)
					}
				})
				if failures == 0 {
					t.Errorf("%s #%d: no call reported the fault", k.op, n)
				}
			}
		})
	}
}

// runFaultScenario runs faultScenario with fault installed, then checks the
// queue against the scenario's record and against a restart.
func runFaultScenario(t *testing.T, fault index.Fault, failed func(what string, err error)) {
	t.Helper()
	dir := t.TempDir()
	opts := testOptions(newClock())
	opts.SnapshotEvery = 4
	opts.stateFault = fault
	// A receive whose lease events fail to be written still hands its
	// messages out (consumers must drain a full disk) and says so in the
	// log; the events go with the next commit.
	opts.Logger = slog.New(logHook{func(r slog.Record) {
		if strings.Contains(r.Message, "lease events not written yet") {
			failed("receive (its lease events, logged)", errorAttr(r))
		}
	}})
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &faultScenario{t: t, b: b, q: mustCreate(t, b, "jobs", ConfigUpdate{MaxAttempts: ptr(5)}), failed: failed,
		enqueued: map[uint64]string{}, acked: map[uint64]bool{}, maybe: map[uint64]bool{}}
	s.run()
	// The fault has passed: the handle from the start works, and the
	// state it shows is what a restart must find.
	for attempt := 1; ; attempt++ {
		err := b.Maintain() // reloads the queue if the last call broke it
		if err == nil {
			break
		}
		if failed("maintenance after the scenario", err); attempt == 3 {
			t.Fatalf("maintenance keeps failing after the fault: %v", err)
		}
	}
	before := s.contents()
	if err := b.Close(); err != nil {
		failed("close (its snapshot)", err) // the fault can land here too
	}
	rep, err := Check(dir)
	if err != nil || len(rep.Problems()) > 0 {
		t.Fatalf("check after the scenario: %v %v", err, rep.Problems())
	}
	var want Counts // check's offline replay must count what the queue held
	for _, m := range before {
		switch m[strings.LastIndex(m, "/")+1:] {
		case index.StateReady.String():
			want.Ready++
		case index.StateDelayed.String():
			want.Delayed++
		case index.StateLeased.String():
			want.Leased++
		case index.StateDead.String():
			want.Dead++
		}
	}
	want.Total = len(before)
	if got := rep.Queues[0].Counts; got != want {
		t.Fatalf("check counts %+v, the queue held %+v", got, want)
	}
	opts.stateFault = nil
	b = mustOpen(t, dir, opts)
	q, err := b.Queue("jobs")
	if err != nil {
		t.Fatal(err)
	}
	s.q = q
	after := s.contents()
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("a restart found\n%v\nwhere the queue held\n%v", after, before)
	}
	for id, body := range s.enqueued {
		_, present := after[id]
		switch {
		case s.acked[id] && present:
			t.Fatalf("message %d (%q) was acked and is back after a restart", id, body)
		case !s.acked[id] && !s.maybe[id] && !present:
			t.Fatalf("message %d (%q) was enqueued, never acked, and is gone", id, body)
		}
	}
	for id := range after {
		if _, ok := s.enqueued[id]; !ok {
			t.Fatalf("message %d is present but no enqueue of it succeeded", id)
		}
	}
}

// contents is every message the queue holds, by id, with its state.
func (s *faultScenario) contents() map[uint64]string {
	out := map[uint64]string{}
	for _, list := range []func(uint64, int) ([]Message, error){s.q.Peek, s.q.Dead} {
		msgs, err := list(0, MaxList)
		if err != nil {
			s.t.Fatalf("listing the queue through the scenario's handle: %v", err)
		}
		for _, m := range msgs {
			out[m.ID] = fmt.Sprintf("%s/%s", m.Body, m.State)
		}
	}
	return out // fmt prints maps sorted by key, so two print alike iff equal
}

// TestBrokenQueueGoneIsNotFound: a queue whose state log failed answers
// ErrUnavailable (retry) while it waits for its reload, but once it is
// deleted, or its broker closed, its handles say ErrQueueNotFound: a
// retry would never succeed.
func TestBrokenQueueGoneIsNotFound(t *testing.T) {
	for _, gone := range []string{"deleted", "broker closed"} {
		t.Run(gone, func(t *testing.T) {
			opts := testOptions(newClock())
			var failing bool
			opts.stateFault = func(op index.FaultOp) (int, error) {
				if failing && op == index.OpFsync {
					return 0, syscall.EIO
				}
				return 0, nil
			}
			b := mustOpen(t, t.TempDir(), opts)
			q := mustCreate(t, b, "jobs", ConfigUpdate{})
			enqueue(t, q, "a")
			failing = true
			if _, err := q.Ack(receipts(receive(t, q, 1))); !errors.Is(err, syscall.EIO) {
				t.Fatalf("ack with a failing fsync: %v, want EIO", err)
			}
			if _, err := q.Info(); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("broken queue: %v, want ErrUnavailable", err)
			}
			if gone == "deleted" {
				if err := b.Delete("jobs"); err != nil {
					t.Fatal(err)
				}
			} else {
				b.Close() // its error is the broken queue's, reported
			}
			if _, err := q.Info(); !errors.Is(err, ErrQueueNotFound) || errors.Is(err, ErrUnavailable) {
				t.Fatalf("queue %s: %v, want ErrQueueNotFound", gone, err)
			}
		})
	}
}

// logHook is a slog.Handler that hands every record to fn.
type logHook struct{ fn func(slog.Record) }

func (h logHook) Enabled(context.Context, slog.Level) bool      { return true }
func (h logHook) Handle(_ context.Context, r slog.Record) error { h.fn(r); return nil }
func (h logHook) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h logHook) WithGroup(string) slog.Handler                 { return h }

// errorAttr returns the record's "err" attribute.
func errorAttr(r slog.Record) error {
	var err error
	r.Attrs(func(a slog.Attr) bool {
		if e, ok := a.Value.Any().(error); ok && a.Key == "err" {
			err = e
			return false
		}
		return true
	})
	return err
}
