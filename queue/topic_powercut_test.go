//go:build unix

package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
)

// TestTopicPowerCutAtEveryStep runs random topic operations (publish,
// receive, ack, nack, fail, seek of one subscription or the whole topic,
// subscriptions created and deleted, maintenance with its snapshots and
// retention, the clock moving) and cuts the power after every one of them
// (lossyFS): what no fsync covered is lost, every create, rename and
// remove no directory fsync covered is undone. After each cut the broker
// opens again and every subscription must hold exactly what the
// acknowledged operations say: every message published since its offset
// that it did not ack, with its body, and none that it acked or seeked
// past; subscriptions created are there, deleted ones are not.
func TestTopicPowerCutAtEveryStep(t *testing.T) {
	steps := 120
	if testing.Short() {
		steps = 40
	}
	for seed := uint64(1); seed <= 3; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			newPowerCutRun(t, seed).run(steps)
		})
	}
}

type powerCutRun struct {
	t    *testing.T
	rng  *rand.Rand
	clk  *clock
	fs   *lossyFS
	dir  string
	opts Options
	b    *Broker

	bodies    map[uint64]string
	times     map[uint64]int64 // publish times, to seek by
	tail      uint64
	head      uint64                     // the topic's oldest kept id, as of the last check
	want      map[string]map[uint64]bool // subscription → id → must be there (true) or gone (false)
	history   []string
	nextBody  int
	deletedC  bool
	subsEver  []string
	leased    map[string][]Message // leases held, by subscription
	published int
}

func newPowerCutRun(t *testing.T, seed uint64) *powerCutRun {
	root := t.TempDir()
	stash := filepath.Join(root, "stash")
	if err := os.Mkdir(stash, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "data")
	r := &powerCutRun{
		t: t, rng: rand.New(rand.NewPCG(seed, 7)), clk: newClock(), dir: dir, fs: newLossyFS(dir, stash),
		bodies: map[uint64]string{}, times: map[uint64]int64{}, want: map[string]map[uint64]bool{}, leased: map[string][]Message{}, head: 1,
	}
	r.opts = Options{Sync: log.SyncAlways, FS: r.fs, Now: r.clk.Now, Logger: quiet, MaintenanceInterval: -1, SegmentSize: 4 << 10, SnapshotEvery: 20}
	r.b = mustOpen(t, dir, r.opts)
	zero := time.Duration(0)
	tp, _, err := r.b.CreateTopic("t", TopicUpdate{Retention: &zero})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"a", "b"} {
		if _, _, err := tp.CreateSubscription(s, SubscriptionUpdate{MaxAttempts: ptr(3)}, Earliest()); err != nil {
			t.Fatal(err)
		}
		r.want[s] = map[uint64]bool{}
	}
	return r
}

func (r *powerCutRun) fail(format string, args ...any) {
	r.t.Helper()
	r.t.Fatalf("%s\nafter: %v", fmt.Sprintf(format, args...), r.history[max(0, len(r.history)-15):])
}

func (r *powerCutRun) topic() *Topic {
	tp, err := r.b.Topic("t")
	if err != nil {
		r.fail("Topic: %v", err)
	}
	return tp
}

func (r *powerCutRun) subNames() []string {
	var names []string
	for s := range r.want {
		names = append(names, s)
	}
	slices.Sort(names)
	return names
}

func (r *powerCutRun) sub(name string) *Subscription {
	s, err := r.topic().Subscription(name)
	if err != nil {
		r.fail("Subscription(%s): %v", name, err)
	}
	return s
}

func (r *powerCutRun) run(steps int) {
	for i := range steps {
		op := r.step()
		r.history = append(r.history, fmt.Sprintf("#%d %s", i, op))
		r.powerCut()
		r.check()
	}
	r.t.Logf("%d steps, %d messages published, topic head %d, tail %d", steps, r.published, r.head, r.tail)
}

func (r *powerCutRun) step() string {
	names := r.subNames()
	s := names[r.rng.IntN(len(names))]
	switch x := r.rng.IntN(100); {
	case x < 25:
		return r.publish()
	case x < 50:
		return r.consume(s, "ack")
	case x < 60:
		return r.consume(s, "nack")
	case x < 65:
		return r.consume(s, "fail")
	case x < 70:
		return r.consume(s, "hold")
	case x < 77:
		return r.seek(s)
	case x < 80:
		return r.seek("")
	case x < 88:
		if err := r.b.Maintain(); err != nil {
			r.fail("Maintain: %v", err)
		}
		return "maintain"
	case x < 94:
		r.clk.Advance(time.Duration(1+r.rng.IntN(40)) * time.Second)
		return "advance"
	}
	return r.toggleC()
}

func (r *powerCutRun) publish() string {
	n := 1 + r.rng.IntN(3)
	msgs := make([]NewMessage, n)
	for i := range msgs {
		r.nextBody++
		msgs[i] = NewMessage{Body: fmt.Appendf(nil, "body-%d-%0*d", r.nextBody, r.rng.IntN(300), 0)}
	}
	r.clk.Advance(time.Millisecond)
	ids, err := r.topic().Publish(msgs)
	if err != nil {
		r.fail("Publish: %v", err)
	}
	for i, id := range ids {
		r.bodies[id], r.times[id] = string(msgs[i].Body), r.clk.Now().UnixNano()
		r.tail = id
		for _, want := range r.want {
			want[id] = true // every subscription is at or before it
		}
	}
	r.published += n
	return fmt.Sprintf("publish %v", ids)
}

func (r *powerCutRun) consume(s, how string) string {
	sub := r.sub(s)
	msgs, err := sub.Receive(context.Background(), ReceiveOptions{Max: 1 + r.rng.IntN(4)})
	if err != nil {
		r.fail("Receive(%s): %v", s, err)
	}
	rs := receipts(msgs)
	if len(rs) == 0 {
		return "receive " + s + " -> nothing"
	}
	var errs []error
	switch how {
	case "ack":
		errs, err = sub.Ack(rs)
	case "nack":
		errs, err = sub.Nack(rs, NackOptions{Front: r.rng.IntN(2) == 0})
	case "fail":
		errs, err = sub.Fail(rs)
	case "hold":
		r.leased[s] = append(r.leased[s], msgs...)
	}
	if err := errors.Join(append(errs, err)...); err != nil {
		r.fail("%s %s %v: %v", how, s, rs, err)
	}
	if how == "ack" {
		for _, m := range msgs {
			r.want[s][m.ID] = false
		}
	}
	return fmt.Sprintf("%s %s %v", how, s, rs)
}

// seek seeks subscription s, or the whole topic if s is "".
func (r *powerCutRun) seek(s string) string {
	var p Position
	switch r.rng.IntN(4) {
	case 0:
		p = Earliest()
	case 1:
		p = Latest()
	case 2:
		p = AtID(1 + r.rng.Uint64N(r.tail+2))
	default:
		p = AtTime(time.Unix(0, r.times[max(1, r.rng.Uint64N(r.tail+1))]))
	}
	var to uint64
	var err error
	subs := []string{s}
	if s == "" {
		to, err = r.topic().Seek(p)
		subs = r.subNames()
	} else {
		to, err = r.sub(s).Seek(p)
	}
	if err != nil {
		r.fail("Seek(%q, %s): %v", s, p, err)
	}
	for _, name := range subs {
		for id := range r.bodies {
			r.want[name][id] = id >= to && id >= r.head
		}
		r.leased[name] = nil
	}
	return fmt.Sprintf("seek %q to %s -> %d", s, p, to)
}

// toggleC creates subscription c (at latest) or deletes it.
func (r *powerCutRun) toggleC() string {
	tp := r.topic()
	if _, ok := r.want["c"]; ok {
		if err := tp.DeleteSubscription("c"); err != nil {
			r.fail("DeleteSubscription: %v", err)
		}
		delete(r.want, "c")
		r.deletedC = true
		return "delete c"
	}
	if _, _, err := tp.CreateSubscription("c", SubscriptionUpdate{}, Latest()); err != nil {
		r.fail("CreateSubscription: %v", err)
	}
	r.want["c"] = map[uint64]bool{}
	for id := range r.bodies {
		r.want["c"][id] = false
	}
	return "create c"
}

// powerCut cuts the power, stops the broker as a crash would, restores the
// disk to what the cut left, and opens the broker again.
func (r *powerCutRun) powerCut() {
	r.fs.Cut()
	simulateCrash(r.b, false) // its errors are the power cut's
	if err := r.fs.Restore(); err != nil {
		r.fail("restore after the power cut: %v", err)
	}
	b, err := Open(r.dir, r.opts)
	if err != nil {
		r.fail("Open after the power cut: %v", err)
	}
	r.b = b
	r.t.Cleanup(func() { b.Close() })
	r.leased = map[string][]Message{} // leases may be lost: never relied on
}

func (r *powerCutRun) check() {
	tp := r.topic()
	info, err := tp.Info()
	if err != nil {
		r.fail("topic Info: %v", err)
	}
	if info.TailID != r.tail {
		r.fail("topic tail %d, want %d: an acknowledged publish was lost", info.TailID, r.tail)
	}
	r.head = info.HeadID
	if _, err := tp.Subscription("c"); r.deletedC && r.want["c"] == nil && !errors.Is(err, ErrSubscriptionNotFound) {
		r.fail("deleted subscription c: %v", err)
	}
	for _, name := range r.subNames() {
		held := map[uint64]string{}
		s := r.sub(name)
		for _, list := range []func(uint64, int) ([]Message, error){s.Peek, s.Dead} {
			msgs, err := list(0, MaxList)
			if err != nil {
				r.fail("%s: list: %v", name, err)
			}
			for _, m := range msgs {
				held[m.ID] = string(m.Body)
			}
		}
		for id, there := range r.want[name] {
			body, ok := held[id]
			switch {
			case there && !ok:
				r.fail("%s lost message %d after a power cut (head %d)", name, id, r.head)
			case there && body != r.bodies[id]:
				r.fail("%s holds message %d with body %q, want %q", name, id, body, r.bodies[id])
			case !there && ok:
				r.fail("%s holds message %d, which it acked or seeked past", name, id)
			}
		}
		if len(held) > MaxList-10 {
			r.fail("the scenario outgrew one listing")
		}
	}
}
