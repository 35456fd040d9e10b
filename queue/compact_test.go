package queue

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// churn drives a queue the way the load did: producers enqueue,
// consumers receive and ack everything ready, and a twentieth of the
// messages are delayed by an hour. It keeps the model of what the queue
// must still hold (every message enqueued and not acked, with its body)
// and checks each delivered body against it.
type churn struct {
	tb  testing.TB
	q   *Queue
	rng *rand.Rand

	bodies    map[uint64][]byte // enqueued and not acked
	attrs     map[uint64]map[string]string
	delayed   map[uint64]bool // delayed at enqueue: nacked for another hour a quarter of the times it comes due
	liveBytes int64           // body bytes of bodies
	enqueued  int
	seq       uint64

	// Set by the caller: a fraction of the other deliveries get nacked
	// or failed (dead) instead of acked.
	nackShare, failShare float64
}

const (
	churnBody  = 1000 // bytes: incompressible, so disk bytes track body bytes
	churnDelay = time.Hour
)

func newChurn(tb testing.TB, q *Queue, seed uint64) *churn {
	return &churn{tb: tb, q: q, rng: rand.New(rand.NewPCG(seed, 11)),
		bodies: map[uint64][]byte{}, attrs: map[uint64]map[string]string{}, delayed: map[uint64]bool{}}
}

// body returns churnBody random bytes that start with a serial number, so
// no two bodies are alike.
func (c *churn) body() []byte {
	b := make([]byte, churnBody)
	for i := 0; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], c.rng.Uint64())
	}
	c.seq++
	binary.LittleEndian.PutUint64(b, c.seq)
	return b
}

// round enqueues n messages in batches of 20, then receives every ready
// message and settles it.
func (c *churn) round(n int) {
	c.tb.Helper()
	for n > 0 {
		batch := make([]NewMessage, min(n, 20))
		n -= len(batch)
		for i := range batch {
			batch[i].Body = c.body()
			if c.rng.IntN(20) == 0 {
				batch[i].Delay = ptr(churnDelay)
			}
			if c.rng.IntN(10) == 0 {
				batch[i].Attributes = map[string]string{"k": fmt.Sprint(c.seq)}
			}
		}
		ids, err := c.q.Enqueue(batch)
		if err != nil {
			c.tb.Fatalf("Enqueue: %v", err)
		}
		for i, id := range ids {
			c.bodies[id] = batch[i].Body
			c.liveBytes += int64(len(batch[i].Body))
			if batch[i].Attributes != nil {
				c.attrs[id] = batch[i].Attributes
			}
			if batch[i].Delay != nil {
				c.delayed[id] = true
			}
		}
		c.enqueued += len(ids)
	}
	c.drain()
}

// drain receives until nothing is ready and settles each message: acked,
// except that a quarter of the once-delayed ones are nacked for another
// hour, and nackShare and failShare of the others are nacked (to the back)
// and failed.
func (c *churn) drain() {
	c.tb.Helper()
	for {
		msgs, err := c.q.Receive(context.Background(), ReceiveOptions{Max: MaxReceive})
		if err != nil {
			c.tb.Fatalf("Receive: %v", err)
		}
		if len(msgs) == 0 {
			return
		}
		var ack, fail, nack, renack []Receipt
		for _, m := range msgs {
			c.check(m)
			switch r := c.rng.Float64(); {
			case c.delayed[m.ID] && c.rng.IntN(4) == 0:
				renack = append(renack, m.Receipt)
			case c.delayed[m.ID]:
				ack = append(ack, m.Receipt)
			case r < c.failShare:
				fail = append(fail, m.Receipt)
			case r < c.failShare+c.nackShare:
				nack = append(nack, m.Receipt)
			default:
				ack = append(ack, m.Receipt)
			}
		}
		c.settle(ack, func(rs []Receipt) ([]error, error) { return c.q.Ack(rs) })
		c.settle(fail, func(rs []Receipt) ([]error, error) { return c.q.Fail(rs) })
		c.settle(nack, func(rs []Receipt) ([]error, error) { return c.q.Nack(rs, NackOptions{}) })
		c.settle(renack, func(rs []Receipt) ([]error, error) { return c.q.Nack(rs, NackOptions{Delay: churnDelay}) })
		for _, r := range ack {
			c.liveBytes -= int64(len(c.bodies[r.ID]))
			delete(c.bodies, r.ID)
			delete(c.attrs, r.ID)
			delete(c.delayed, r.ID)
		}
	}
}

func (c *churn) settle(rs []Receipt, op func([]Receipt) ([]error, error)) {
	c.tb.Helper()
	if len(rs) == 0 {
		return
	}
	errs, err := op(rs)
	if err != nil {
		c.tb.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			c.tb.Fatalf("receipt %s: %v", rs[i], err)
		}
	}
}

// check fails unless m is a message the model holds, with its body and
// attributes.
func (c *churn) check(m Message) {
	c.tb.Helper()
	want, ok := c.bodies[m.ID]
	switch {
	case !ok:
		c.tb.Fatalf("message %d delivered, but it was acked or never enqueued", m.ID)
	case !bytes.Equal(m.Body, want):
		c.tb.Fatalf("message %d: body of %d bytes starting %x, want %d bytes starting %x", m.ID, len(m.Body), m.Body[:min(8, len(m.Body))], len(want), want[:8])
	case !maps.Equal(m.Attributes, c.attrs[m.ID]):
		c.tb.Fatalf("message %d: attributes %v, want %v", m.ID, m.Attributes, c.attrs[m.ID])
	}
}

// checkAll lists every message the queue holds (Peek, Dead) and compares
// them with the model: the same ids, bodies and attributes.
func (c *churn) checkAll(q *Queue) {
	c.tb.Helper()
	seen := map[uint64]bool{}
	for _, list := range []func(after uint64, limit int) ([]Message, error){q.Peek, q.Dead} {
		for after := uint64(0); ; {
			msgs, err := list(after, MaxList)
			if err != nil {
				c.tb.Fatalf("listing: %v", err)
			}
			if len(msgs) == 0 {
				break
			}
			for _, m := range msgs {
				c.check(m)
				seen[m.ID] = true
			}
			after = msgs[len(msgs)-1].ID
		}
	}
	if len(seen) != len(c.bodies) {
		var missing []uint64
		for id := range c.bodies {
			if !seen[id] {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
		c.tb.Fatalf("the queue lists %d messages, %d were enqueued and not acked; missing: %v", len(seen), len(c.bodies), missing[:min(len(missing), 20)])
	}
}

// diskBytes is the message log's size on disk, as Info reports it.
func diskBytes(tb testing.TB, q *Queue) int64 {
	tb.Helper()
	info, err := q.Info()
	if err != nil {
		tb.Fatal(err)
	}
	return info.Bytes
}

// TestCompactKeepsUpWithChurn is issue 11's churn in simulated time: each
// round (one maintenance run) appends about three segments, a twentieth of
// the messages wait an hour, and the clock moves a minute. Once the first
// delayed messages have come due (round 60) the queue is in steady state,
// and the log must stay within twice the live bodies' bytes. Compacting
// one segment per run fell ever further behind (the 15x); and a
// rewritten segment whose messages are then mostly acked (three quarters
// of the delayed ones when they come due) must be rewritten again.
func TestCompactKeepsUpWithChurn(t *testing.T) {
	clk := newClock()
	opts := testOptions(clk) // 64 KiB segments, maintenance by hand
	b := mustOpen(t, t.TempDir(), opts)
	q := mustCreate(t, b, "churn", ConfigUpdate{MaxAttempts: ptr(MaxMaxAttempts)})
	c := newChurn(t, q, 1)
	const rounds, steady, perRound = 120, 70, 200
	worst := 0.0
	for r := range rounds {
		c.round(perRound)
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
		disk := diskBytes(t, q)
		ratio := float64(disk) / float64(c.liveBytes)
		if r >= steady {
			worst = max(worst, ratio)
			if disk > 2*c.liveBytes {
				t.Fatalf("round %d: %d bytes on disk for %d bytes of live bodies (%.1fx, want at most 2x); %d segments",
					r, disk, c.liveBytes, ratio, len(q.log.Segments()))
			}
		}
		clk.Advance(time.Minute)
	}
	t.Logf("%d messages in %d rounds; steady state: at most %.2fx live (%d live bytes, %d on disk at the end, %d segments)",
		c.enqueued, rounds, worst, c.liveBytes, diskBytes(t, q), len(q.log.Segments()))
}

// TestCompactRewritesRewrittenSegments: a segment rewritten once (to a
// fifth of its size) whose messages are then mostly acked is rewritten
// again, also after a restart, when only the file can say how many
// records it holds; the untouched full segment beside it stays as it is.
func TestCompactRewritesRewrittenSegments(t *testing.T) {
	for _, restart := range []bool{false, true} {
		t.Run(fmt.Sprintf("restart=%v", restart), func(t *testing.T) {
			clk := newClock()
			dir := t.TempDir()
			opts := testOptions(clk) // 64 KiB segments
			b, err := Open(dir, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { b.Close() }()
			q := mustCreate(t, b, "q", ConfigUpdate{})
			c := newChurn(t, q, 2)
			for range 3 { // three segments of forty 1000-byte messages: one frame each
				batch := make([]NewMessage, 40)
				for i := range batch {
					batch[i].Body = c.body()
				}
				ids, err := q.Enqueue(batch)
				if err != nil {
					t.Fatal(err)
				}
				for i, id := range ids {
					c.bodies[id] = batch[i].Body
				}
			}
			ackWhere := func(q *Queue, drop func(id uint64) bool) {
				t.Helper()
				clk.Advance(time.Hour) // leases of an earlier receive run out
				var ack []Receipt
				for _, m := range receive(t, q, MaxReceive) {
					c.check(m)
					if drop(m.ID) {
						ack = append(ack, m.Receipt)
						delete(c.bodies, m.ID)
					}
				}
				if _, err := q.Ack(ack); err != nil {
					t.Fatal(err)
				}
			}
			// Keep every fifth message of segment 1-40: 8 of 40.
			ackWhere(q, func(id uint64) bool { return id <= 40 && id%5 != 0 })
			if err := b.Maintain(); err != nil {
				t.Fatal(err)
			}
			segs := q.log.Segments()
			if segs[0].Size > 10<<10 || segs[1].Size < 39<<10 {
				t.Fatalf("after the first compaction: %+v", segs[:2])
			}
			if restart {
				b, q = reopenQueue(t, b, dir, opts, "q")
			}
			second, err := os.Stat(q.log.Segments()[1].Path)
			if err != nil {
				t.Fatal(err)
			}
			// Now keep one of those eight: the rewritten file is 7/8 dead.
			ackWhere(q, func(id uint64) bool { return id <= 40 && id != 20 })
			if err := b.Maintain(); err != nil {
				t.Fatal(err)
			}
			segs = q.log.Segments()
			if segs[0].Size > 2<<10 {
				t.Errorf("segment %d-%d holds one live message of 1000 bytes in %d bytes: not rewritten again", segs[0].Base, segs[0].LastID, segs[0].Size)
			}
			if again, err := os.Stat(segs[1].Path); err != nil || !os.SameFile(second, again) {
				t.Errorf("the full segment %d-%d was rewritten (%v)", segs[1].Base, segs[1].LastID, err)
			}
			c.checkAll(q)
			// Its one record is live: no run rewrites it again, before or
			// after a restart (its id range alone would say 1 in 40).
			first, err := os.Stat(segs[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				if i == 1 {
					b, q = reopenQueue(t, b, dir, opts, "q")
				}
				if err := b.Maintain(); err != nil {
					t.Fatal(err)
				}
				if again, err := os.Stat(q.log.Segments()[0].Path); err != nil || !os.SameFile(first, again) {
					t.Fatalf("run %d rewrote segment %d-%d, whose one record is live, again (%v)", i, segs[0].Base, segs[0].LastID, err)
				}
			}
			c.checkAll(q)
		})
	}
}

// TestCompactKeepsEveryLiveMessage: under churn with every kind of
// settlement (acks, nacks, delays, dead messages, attributes) and
// compaction at every run, every message not acked is still listed and
// delivered with its body and attributes, before and after a reopen, and
// compaction did rewrite segments (else this would prove nothing).
func TestCompactKeepsEveryLiveMessage(t *testing.T) {
	clk := newClock()
	dir := t.TempDir()
	opts := testOptions(clk)
	opts.SegmentSize = 32 << 10
	b, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { b.Close() }()
	q := mustCreate(t, b, "q", ConfigUpdate{MaxAttempts: ptr(3)})
	c := newChurn(t, q, 3)
	c.nackShare, c.failShare = 0.05, 0.02
	for range 40 {
		c.round(100)
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
		clk.Advance(7 * time.Minute)
	}
	rewritten := 0
	for _, s := range q.log.Segments() {
		if !s.Sealed {
			continue
		}
		n, err := q.log.Records(s.Base)
		if err != nil {
			t.Fatal(err)
		}
		if n < int(s.LastID-s.Base+1) {
			rewritten++
		}
	}
	if rewritten == 0 {
		t.Fatalf("no segment was rewritten: %+v", q.log.Segments())
	}
	c.checkAll(q)
	b, q = reopenQueue(t, b, dir, opts, "q")
	c.q = q
	c.checkAll(q)
	// Deliver all of it: delays run out, and every delivery is acked.
	clk.Advance(2 * churnDelay)
	c.nackShare, c.failShare = 0, 0
	c.delayed = map[uint64]bool{}
	dead, err := q.Redrive(0)
	if err != nil {
		t.Fatal(err)
	}
	c.drain()
	if len(c.bodies) != 0 {
		t.Fatalf("%d messages (%d redriven from dead) not delivered after the reopen", len(c.bodies), dead)
	}
	// Removals are budgeted too (a sixteenth of a segment each, at least a
	// segment's worth per run), so the hundred-odd files go over a few runs.
	runs := 0
	for disk := diskBytes(t, q); disk > 4<<10; disk = diskBytes(t, q) {
		if runs++; runs > 20 {
			t.Fatalf("%d bytes left on disk with every message acked, after %d maintenance runs", disk, runs)
		}
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d messages; %d segments rewritten at the end of the churn; %d dead redriven; disk given back in %d runs", c.enqueued, rewritten, dead, runs)
}

// TestCompactConcurrentWithTraffic: compaction runs back to back while
// producers and consumers work, so rewrites swap files under readers that
// hold the old offsets. Every body comes back intact (it is derived from
// its serial number), and every message is delivered and acked.
func TestCompactConcurrentWithTraffic(t *testing.T) {
	clk := newClock()
	opts := testOptions(clk)
	opts.SegmentSize = 32 << 10
	b := mustOpen(t, t.TempDir(), opts)
	q := mustCreate(t, b, "q", ConfigUpdate{})
	const producers, perProducer, batch = 2, 1500, 10
	bodyOf := func(serial uint64) []byte {
		rng := rand.New(rand.NewPCG(serial, 7))
		body := make([]byte, 8+rng.IntN(churnBody))
		binary.LittleEndian.PutUint64(body, serial)
		for i := 8; i < len(body); i++ {
			body[i] = byte(rng.Uint32())
		}
		return body
	}
	delayed := func(serial uint64) bool { return serial%20 == 7 }
	var mu sync.Mutex
	acked := map[uint64]int{} // serial → acks
	var readyLeft atomic.Int64
	for s := range uint64(producers * perProducer) {
		if !delayed(s) {
			readyLeft.Add(1)
		}
	}
	consume := func(ctx context.Context, wait time.Duration) error {
		msgs, err := q.Receive(ctx, ReceiveOptions{Max: 50, Wait: wait})
		if err != nil {
			return err
		}
		for _, m := range msgs {
			serial := binary.LittleEndian.Uint64(m.Body)
			if !bytes.Equal(m.Body, bodyOf(serial)) {
				return fmt.Errorf("message %d: body of %d bytes does not match serial %d", m.ID, len(m.Body), serial)
			}
			mu.Lock()
			acked[serial]++
			mu.Unlock()
			if !delayed(serial) {
				readyLeft.Add(-1)
			}
		}
		if len(msgs) > 0 {
			if _, err := q.Ack(receipts(msgs)); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, producers+2)
	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := 0; i < perProducer; i += batch {
				msgs := make([]NewMessage, batch)
				for j := range msgs {
					serial := uint64(p*perProducer + i + j)
					msgs[j].Body = bodyOf(serial)
					if delayed(serial) {
						msgs[j].Delay = ptr(churnDelay)
					}
				}
				if _, err := q.Enqueue(msgs); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for range 2 {
		wg.Go(func() {
			for readyLeft.Load() > 0 && ctx.Err() == nil {
				if err := consume(ctx, time.Second); err != nil && ctx.Err() == nil {
					errc <- err
					cancel()
					return
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	runs := 0
	for running := true; running; runs++ {
		select {
		case <-done:
			running = false
		default:
		}
		if err := b.Maintain(); err != nil {
			t.Fatal(err)
		}
	}
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	rewritten := 0
	for _, s := range q.log.Segments() {
		if n, err := q.log.Records(s.Base); s.Sealed && err == nil && n < int(s.LastID-s.Base+1) {
			rewritten++
		}
	}
	if rewritten == 0 {
		t.Fatalf("no segment was rewritten during the traffic: %+v", q.log.Segments())
	}
	clk.Advance(2 * churnDelay)
	for {
		before := len(acked)
		if err := consume(context.Background(), 0); err != nil {
			t.Fatal(err)
		}
		if len(acked) == before {
			break
		}
	}
	for s := range uint64(producers * perProducer) {
		if acked[s] != 1 {
			t.Fatalf("message with serial %d acked %d times, want once", s, acked[s])
		}
	}
	t.Logf("%d maintenance runs during the traffic; %d segments rewritten", runs, rewritten)
}

// BenchmarkCompactChurn replays issue 11's measurement at a smaller
// scale: 75 seconds (simulated, one maintenance run per second) of churn
// at 1.4 segments a second (the 22 MB/s over 16 MiB segments;
// here 360 KB/s of 1000-byte bodies over 256 KiB segments), a twentieth
// of the messages delayed by an hour. One op is the whole 75 seconds;
// run it with -benchtime=1x. It reports the log's bytes on disk over the
// live bodies' bytes at the end, and messages churned per second of real
// time. (Before compaction was budgeted by bytes and ran every
// maintenance run, this measured 19.7x.)
func BenchmarkCompactChurn(b *testing.B) {
	const seconds, perSecond = 75, 360
	var ratio, diskMiB float64
	msgs := 0
	for range b.N {
		clk := newClock()
		br, err := Open(b.TempDir(), Options{SegmentSize: 256 << 10, MaintenanceInterval: -1, Now: clk.Now, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		q, _, err := br.Create("churn", ConfigUpdate{})
		if err != nil {
			b.Fatal(err)
		}
		c := newChurn(b, q, 4)
		for range seconds {
			c.round(perSecond)
			clk.Advance(time.Second)
			if err := br.runMaintenance(false); err != nil {
				b.Fatal(err)
			}
		}
		disk := diskBytes(b, q)
		ratio = float64(disk) / float64(c.liveBytes)
		diskMiB = float64(disk) / (1 << 20)
		msgs += c.enqueued
		if err := br.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(ratio, "disk/live")
	b.ReportMetric(diskMiB, "disk-MiB")
	b.ReportMetric(float64(msgs)/b.Elapsed().Seconds(), "msgs/s")
}
