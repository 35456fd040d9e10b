package queue

// TestModel is a model-based test: random operations run against a real
// Broker (fake clock, 4 KiB segments and a snapshot every 50 events, so
// rotation, compaction, snapshots and chunk release all happen) and
// against a small in-memory model of the documented semantics (mQueue,
// plain maps and sorting, nothing shared with the implementation). After
// every operation the counts (Info) are compared, and so is everything an
// operation returns: received ids, bodies, attributes, attempts and
// receipts in order, each receipt's outcome (ok, ErrStaleReceipt,
// ErrNotFound, ErrInvalid), enqueued ids, ErrQueueFull, redrive counts,
// Peek and Dead pages; every 97 operations, Peek(0, 1000) and
// Dead(0, 1000) in full. A second queue serves as the dead-letter queue in
// two of three runs (from the start, or created midway).
//
// In two of three runs a topic with two subscriptions runs beside the
// queues (topic_model_test.go says how it is modelled).
//
// Restarts come in three kinds: Close and Open; a crash after every event
// was written (snapshot plus state-log replay); and a crash that loses the
// events not yet written (Receive, Extend and due changes are written only
// with the next Ack, Nack, Fail, Redrive, Purge or maintenance run).
//
// Semantics the model pins down (where doc.go leaves room):
//
//   - Ready order: messages nacked to the front first, in the order they
//     became ready; then the rest by id, where a message nacked to the
//     back sorts right after the id that was newest when it became ready
//     (before every later id), several there in the order they became
//     ready.
//   - A nack with a delay places the message (front or back) when the
//     delay runs out, not when the nack happened: a delayed nack to the
//     back goes after the newest id at the moment its delay runs out, and
//     delayed nacks to the front enter the front in the order their delays
//     run out. (doc.go says so only for a delay that runs out after a
//     restart; "goes after every message enqueued before the nack" could
//     be read as the nack's moment.)
//   - What becomes due at the same instant is applied in (due time, id)
//     order: leases that run out together return to ready by id (their
//     place is by id anyway), delays that run out together enter the front
//     or back in id order, not in nack order. Due delays go before due
//     leases (it makes no difference).
//   - Due changes are applied before every operation at its clock reading.
//     The queue applies them lazily (at the start of most operations) and
//     from a real-time timer that may fire at any moment; the test reads
//     Info after every operation, clock moves included, so nothing is
//     ever left due and the timer cannot make a difference. That would
//     hide an operation that skipped this step: see
//     TestModelDueChangesBeforeEnqueueAndRedrive.
//   - Receipts follow Queue.checkReceiptLocked: an id never enqueued or an
//     attempt the message has not reached → ErrNotFound; a message that is
//     finished (acked, purged, removed, moved to the dead-letter queue),
//     or any other attempt that is not the live lease's → ErrStaleReceipt;
//     id or attempt 0 →
//     ErrInvalid. Several receipts in one call are applied in order, so a
//     repeated receipt is stale the second time. A redrive keeps the
//     attempts counting (tries since the redrive count against max
//     attempts), so a receipt from before it stays stale forever.
//   - Nack of the last allowed attempt kills the message (delay and front
//     are ignored). MaxAttempts is read when a lease runs out or is nacked,
//     so a lowered MaxAttempts applies to existing leases.
//   - A dead message moved to the dead-letter queue (on Maintain, when it
//     exists) becomes a new message there: ready at once by id, attempts
//     0, same body and attributes, enqueued at the move, in id order.
//   - A crash that loses pending events goes back to the messages as of
//     the queue's last state-log write, plus the messages enqueued since
//     as enqueued; what was due is applied again at the next operation
//     (so a lost lease is delivered again under the same receipt).
//
// Reproduce a failure with the seed it prints:
//
//	go test ./queue/ -run 'TestModel$' -model.seed=N [-model.ops=M] [-model.v]

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

var (
	modelSeed    = flag.Uint64("model.seed", 0, "TestModel: run only this seed")
	modelOps     = flag.Int("model.ops", 0, "TestModel: operations per seed (0: default)")
	modelVerbose = flag.Bool("model.v", false, "TestModel: log every operation")
)

// ---------------------------------------------------------------------
// The model.

type mState int

const (
	mReady mState = iota + 1
	mDelayed
	mLeased
	mDead
)

func (s mState) String() string {
	return [...]string{"?", "ready", "delayed", "leased", "dead"}[s]
}

func (s mState) index() index.State {
	return [...]index.State{index.StateNone, index.StateReady, index.StateDelayed, index.StateLeased, index.StateDead}[s]
}

// mRequeue is where a message enters the ready order.
type mRequeue int

const (
	mByID mRequeue = iota
	mFront
	mBack
)

type mMsg struct {
	id       uint64
	body     string
	attrs    map[string]string
	enqueued int64
	state    mState
	attempts int
	base     int      // attempts at the last redrive: tries are attempts - base
	at       int64    // delayed: when it becomes ready; leased: lease deadline
	requeue  mRequeue // ready or delayed: where it (will) enter the ready order
	after    uint64   // ready, mBack: the newest id when it became ready
	seq      int      // ready, mFront/mBack: order of becoming ready
}

type mQueue struct {
	name        string
	exists      bool
	maxAttempts int
	vis         time.Duration
	delay       time.Duration
	maxLength   int
	dlq         *mQueue // configured dead-letter queue, nil if none
	msgs        map[uint64]*mMsg
	maxID       uint64
	seq         int

	// What a crash that loses the events not yet written leaves: the
	// messages as of the queue's last state-log write (every Ack, Nack,
	// Fail, Redrive, Purge, Maintain, clean Close and every Receive that
	// leases something writes all pending events; Extend and due changes
	// do not), plus the messages
	// enqueued since, as enqueued (their records are in the message log).
	flushed map[uint64]mMsg
	since   []mMsg

	// A topic's subscription (see topic_model_test.go): its messages are
	// the topic's from its offset on; maxID is the topic's newest id. top
	// is the highest attempt it ever handed out, floor what messages start
	// at since its last seek (top then).
	sub        bool
	top, floor int
}

func newMQueue(name string) *mQueue {
	return &mQueue{name: name, msgs: map[uint64]*mMsg{}}
}

// sorted returns the messages pred accepts, by id.
func (q *mQueue) sorted(pred func(*mMsg) bool) []*mMsg {
	var out []*mMsg
	for _, m := range q.msgs {
		if pred(m) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b *mMsg) int { return cmp.Compare(a.id, b.id) })
	return out
}

func (q *mQueue) inState(s mState) []*mMsg {
	return q.sorted(func(m *mMsg) bool { return m.state == s })
}

func (q *mQueue) counts() Counts {
	var c Counts
	for _, m := range q.msgs {
		switch m.state {
		case mReady:
			c.Ready++
		case mDelayed:
			c.Delayed++
		case mLeased:
			c.Leased++
		case mDead:
			c.Dead++
		}
	}
	c.Total = len(q.msgs)
	return c
}

// becomeReady makes m ready (or delayed until readyAt, if that is later
// than now), entering the ready order as mode says.
func (q *mQueue) becomeReady(m *mMsg, mode mRequeue, readyAt, now int64) {
	m.requeue, m.after, m.seq, m.at = mode, 0, 0, 0
	if readyAt > now {
		m.state, m.at = mDelayed, readyAt
		return
	}
	m.state = mReady
	if mode != mByID {
		q.seq++
		m.seq = q.seq
	}
	if mode == mBack {
		m.after = q.maxID
	}
}

func (q *mQueue) kill(m *mMsg) {
	m.state, m.requeue, m.at, m.after, m.seq = mDead, mByID, 0, 0, 0
}

// mByDue orders by due time, then id.
func mByDue(a, b *mMsg) int {
	if c := cmp.Compare(a.at, b.at); c != 0 {
		return c
	}
	return cmp.Compare(a.id, b.id)
}

// settle applies what the clock says happened by now: delays run out,
// then leases run out (back to ready by id, or dead when the lease was the
// last allowed attempt).
func (q *mQueue) settle(now int64) {
	due := q.sorted(func(m *mMsg) bool { return m.state == mDelayed && m.at <= now })
	slices.SortStableFunc(due, mByDue)
	for _, m := range due {
		q.becomeReady(m, m.requeue, 0, now)
	}
	due = q.sorted(func(m *mMsg) bool { return m.state == mLeased && m.at <= now })
	slices.SortStableFunc(due, mByDue)
	for _, m := range due {
		if m.attempts-m.base >= q.maxAttempts {
			q.kill(m)
		} else {
			q.becomeReady(m, mByID, 0, now)
		}
	}
}

// mReadyKey places a ready message: front ones first by seq; then by
// position, where a message placed by id sits at its id and one nacked to
// the back right after its after id (several there by seq).
func mReadyKey(m *mMsg) [4]uint64 {
	switch m.requeue {
	case mFront:
		return [4]uint64{0, 0, 0, uint64(m.seq)}
	case mBack:
		return [4]uint64{1, m.after, 1, uint64(m.seq)}
	}
	return [4]uint64{1, m.id, 0, 0}
}

// readyOrder returns the ready messages in the order Receive takes them.
func (q *mQueue) readyOrder() []*mMsg {
	ready := q.inState(mReady)
	slices.SortStableFunc(ready, func(a, b *mMsg) int {
		ka, kb := mReadyKey(a), mReadyKey(b)
		return slices.Compare(ka[:], kb[:])
	})
	return ready
}

func (q *mQueue) enqueue(now int64, msgs []NewMessage) ([]uint64, error) {
	if q.maxLength > 0 && len(q.msgs)+len(msgs) > q.maxLength {
		return nil, ErrQueueFull
	}
	var ids []uint64
	for _, nm := range msgs {
		delay := q.delay
		if nm.Delay != nil {
			delay = *nm.Delay
		}
		var readyAt int64
		if delay > 0 {
			readyAt = now + int64(delay)
		}
		q.maxID++
		m := &mMsg{id: q.maxID, body: string(nm.Body), attrs: maps.Clone(nm.Attributes), enqueued: now}
		q.msgs[m.id] = m
		q.becomeReady(m, mByID, readyAt, now)
		q.since = append(q.since, *m)
		ids = append(ids, m.id)
	}
	return ids, nil
}

// mLease is what a receive hands out.
type mLease struct {
	m       mMsg // copy at lease time
	receipt Receipt
}

func (q *mQueue) receive(now int64, max int, vis time.Duration) []mLease {
	q.settle(now)
	if vis == 0 {
		vis = q.vis
	}
	var out []mLease
	for _, m := range q.readyOrder() {
		if len(out) == max {
			break
		}
		m.attempts++
		if m.attempts > q.top {
			q.top = m.attempts
		}
		m.state, m.at, m.requeue, m.after, m.seq = mLeased, now+int64(vis), mByID, 0, 0
		out = append(out, mLease{m: *m, receipt: Receipt{ID: m.id, Attempt: uint16(m.attempts)}})
	}
	return out
}

// check classifies a receipt the way the documentation (and
// Queue.checkReceiptLocked) does; nil means it names the live lease.
func (q *mQueue) check(r Receipt) error {
	if r.ID == 0 || r.Attempt == 0 {
		return ErrInvalid
	}
	m := q.msgs[r.ID]
	switch {
	case r.ID > q.maxID:
		return ErrNotFound
	case m == nil:
		return ErrStaleReceipt // finished
	case m.state == mLeased && m.attempts == int(r.Attempt):
		return nil
	case int(r.Attempt) > m.attempts:
		return ErrNotFound
	}
	return ErrStaleReceipt
}

// receiptOp applies fn to each receipt that names a live lease, in order.
func (q *mQueue) receiptOp(now int64, rs []Receipt, fn func(m *mMsg)) []error {
	q.settle(now)
	errs := make([]error, len(rs))
	for i, r := range rs {
		if errs[i] = q.check(r); errs[i] == nil {
			fn(q.msgs[r.ID])
		}
	}
	return errs
}

func (q *mQueue) ack(now int64, rs []Receipt) []error {
	return q.receiptOp(now, rs, func(m *mMsg) { delete(q.msgs, m.id) })
}

func (q *mQueue) nack(now int64, rs []Receipt, o NackOptions) []error {
	return q.receiptOp(now, rs, func(m *mMsg) {
		if m.attempts-m.base >= q.maxAttempts {
			q.kill(m)
			return
		}
		mode := mBack
		if o.Front {
			mode = mFront
		}
		var readyAt int64
		if o.Delay > 0 {
			readyAt = now + int64(o.Delay)
		}
		q.becomeReady(m, mode, readyAt, now)
	})
}

func (q *mQueue) extend(now int64, rs []Receipt, vis time.Duration) []error {
	if vis == 0 {
		vis = q.vis
	}
	return q.receiptOp(now, rs, func(m *mMsg) { m.at = now + int64(vis) })
}

func (q *mQueue) fail(now int64, rs []Receipt) []error {
	return q.receiptOp(now, rs, q.kill)
}

func (q *mQueue) redrive(now int64, limit int) int {
	q.settle(now)
	dead := q.inState(mDead)
	if limit > 0 && len(dead) > limit {
		dead = dead[:limit]
	}
	for _, m := range dead {
		m.base = m.attempts // attempts keep counting; tries start again
		q.becomeReady(m, mByID, 0, now)
	}
	return len(dead)
}

func (q *mQueue) purge() { clear(q.msgs) }

// flushed records that the queue wrote every pending event.
func (q *mQueue) flush() {
	q.flushed = make(map[uint64]mMsg, len(q.msgs))
	for id, m := range q.msgs {
		q.flushed[id] = *m
	}
	q.since = q.since[:0]
}

// crash goes back to what the state log and message log hold. Changes
// that were due and applied but not written are applied again by the
// next settle; config changes are written at once and stay.
func (q *mQueue) crash() {
	q.msgs = map[uint64]*mMsg{}
	for _, m := range q.flushed {
		q.msgs[m.id] = &m
	}
	for _, m := range q.since {
		q.msgs[m.id] = &m
	}
}

// moveDead moves dead messages to the dead-letter queue, if it exists.
func (q *mQueue) moveDead(now int64) {
	if q.dlq == nil || !q.dlq.exists {
		return
	}
	for _, m := range q.inState(mDead) {
		zero := time.Duration(0)
		q.dlq.enqueue(now, []NewMessage{{Body: []byte(m.body), Attributes: m.attrs, Delay: &zero}})
		delete(q.msgs, m.id)
	}
}

// ---------------------------------------------------------------------
// The test.

func TestModel(t *testing.T) {
	seeds, ops := 20, 15_000
	race := modelRaceBuild()
	switch {
	case race:
		seeds, ops = 4, 5_000
	case testing.Short():
		seeds, ops = 5, 5_000
	}
	if *modelOps > 0 {
		ops = *modelOps
	}
	list := make([]uint64, seeds)
	for i := range list {
		list[i] = uint64(i + 1)
	}
	if *modelSeed != 0 {
		list = []uint64{*modelSeed}
	}
	for _, seed := range list {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Parallel()
			r := newModelRun(t, seed, ops)
			defer r.close()
			r.run()
		})
	}
}

func modelRaceBuild() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" && s.Value == "true" {
				return true
			}
		}
	}
	return false
}

type modelRun struct {
	t    *testing.T
	seed uint64
	ops  int
	rng  *rand.Rand
	clk  *clock
	dir  string
	opts Options
	b    *Broker
	main *mQueue
	dlq  *mQueue // nil: no dead-letter queue in this run
	// topic, with two subscriptions (their Queues in real, by
	// "topic/sub"), in two of three runs.
	topic *mTopic
	real  map[string]*Queue
	hist  map[string][]Receipt // receipts handed out, per queue
	// issued is every receipt ever handed out, per queue: none may be
	// handed out twice, crashes and restarts included.
	issued map[string]map[Receipt]bool
	step   int
	tail   []string // the last operations, for failure messages
	bodyN  int
	stats  map[string]int
}

func newModelRun(t *testing.T, seed uint64, ops int) *modelRun {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	clk := newClock()
	r := &modelRun{
		t: t, seed: seed, ops: ops, rng: rng, clk: clk, dir: modelDir(t),
		real: map[string]*Queue{}, hist: map[string][]Receipt{}, stats: map[string]int{},
		issued: map[string]map[Receipt]bool{},
	}
	r.opts = Options{
		Now: clk.Now, MaintenanceInterval: -1, Logger: quiet,
		SegmentSize: 4 << 10, SnapshotEvery: 50, Sync: log.SyncNone,
	}
	if seed%5 == 0 {
		r.opts.Sync = log.SyncAlways
	}
	b, err := Open(r.dir, r.opts)
	if err != nil {
		t.Fatalf("seed %d: Open: %v", seed, err)
	}
	r.b = b

	r.main = newMQueue("main")
	r.main.maxAttempts = modelPick(rng, 1, 2, 3, 5)
	r.main.vis = modelPick(rng, 5*time.Second, 10*time.Second, 30*time.Second)
	r.main.delay = modelPick(rng, 0, 0, 2*time.Second)
	r.main.maxLength = modelPick(rng, 0, 0, 0, 40)
	u := ConfigUpdate{
		MaxAttempts: ptr(r.main.maxAttempts), VisibilityTimeout: ptr(r.main.vis),
		Delay: ptr(r.main.delay), MaxLength: ptr(r.main.maxLength),
	}
	dlqMode := rng.IntN(3) // 0: none, 1: DLQ exists from the start, 2: created later
	if dlqMode > 0 {
		r.dlq = newMQueue("dlq")
		r.dlq.maxAttempts, r.dlq.vis = 3, 10*time.Second
		r.main.dlq = r.dlq
		u.DeadLetterQueue = ptr("dlq")
	}
	r.createReal(r.main, u)
	if dlqMode == 1 {
		r.createDLQ()
	}
	if seed%3 != 0 {
		r.createTopic()
	}
	return r
}

// modelDir returns a temporary directory for a run's broker, in RAM when
// the machine has /dev/shm: the run fsyncs tens of thousands of times
// (4 KiB segments rotate, snapshots every 50 events, Sync=always in some
// seeds), which takes minutes on a disk, and what the model checks is not
// power-loss durability. SPOOL_MODEL_DISK=1 uses t.TempDir() instead.
func modelDir(t *testing.T) string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() && os.Getenv("SPOOL_MODEL_DISK") == "" {
		if dir, err := os.MkdirTemp("/dev/shm", "spool-model-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

func modelPick[T any](rng *rand.Rand, choices ...T) T { return choices[rng.IntN(len(choices))] }

func (r *modelRun) createReal(mq *mQueue, u ConfigUpdate) {
	q, created, err := r.b.Create(mq.name, u)
	if err != nil || !created {
		r.failf("Create(%s) = %v, %v", mq.name, created, err)
	}
	mq.exists = true
	r.real[mq.name] = q
}

func (r *modelRun) createDLQ() string {
	r.createReal(r.dlq, ConfigUpdate{MaxAttempts: ptr(r.dlq.maxAttempts), VisibilityTimeout: ptr(r.dlq.vis)})
	return "create dlq"
}

func (r *modelRun) close() {
	if r.b != nil {
		r.b.Close()
	}
}

func (r *modelRun) now() int64 { return r.clk.Now().UnixNano() }

func (r *modelRun) queues() []*mQueue {
	qs := []*mQueue{r.main}
	if r.dlq != nil && r.dlq.exists {
		qs = append(qs, r.dlq)
	}
	if r.topic != nil {
		qs = append(qs, r.topic.subs...)
	}
	return qs
}

func (r *modelRun) failf(format string, args ...any) {
	r.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d, step %d: %s\n", r.seed, r.step, fmt.Sprintf(format, args...))
	fmt.Fprintf(&b, "reproduce: go test ./queue/ -run 'TestModel$' -model.seed=%d -model.ops=%d -model.v\n", r.seed, r.step+1)
	fmt.Fprintf(&b, "last %d operations:\n", len(r.tail))
	for _, s := range r.tail {
		b.WriteString("  " + s + "\n")
	}
	r.t.Fatal(b.String())
}

func (r *modelRun) logOp(s string) {
	s = fmt.Sprintf("#%d t=%s %s", r.step, time.Duration(r.now()-newClock().Now().UnixNano()), s)
	if *modelVerbose {
		r.t.Log(s)
	}
	const keep = 40
	if len(r.tail) == keep {
		r.tail = r.tail[1:]
	}
	r.tail = append(r.tail, s)
}

func (r *modelRun) run() {
	start := time.Now()
	for r.step = 0; r.step < r.ops; r.step++ {
		name, desc := r.randomOp()
		r.stats[name]++
		r.logOp(desc)
		r.checkCounts()
		if r.step%97 == 0 {
			r.checkLists()
		}
	}
	r.step = r.ops
	r.checkLists()
	r.logOp(r.restart())
	r.checkCounts()
	r.checkLists()
	ids := fmt.Sprintf("main ids %d", r.main.maxID)
	if r.dlq != nil {
		ids += fmt.Sprintf(", dlq ids %d", r.dlq.maxID)
	}
	if r.topic != nil {
		ids += fmt.Sprintf(", topic ids %d from %d", r.topic.maxID, r.topic.first)
	}
	r.t.Logf("seed %d: %d ops in %v (%s): %v", r.seed, r.ops, time.Since(start).Round(time.Millisecond), ids, r.stats)
}

// randomOp picks and runs one operation; it returns the operation's kind
// and a description with its outcome.
func (r *modelRun) randomOp() (string, string) {
	mq := r.main
	if r.dlq != nil && r.dlq.exists && r.rng.IntN(100) < min(25+len(r.dlq.msgs)/4, 75) {
		mq = r.dlq // more often the more it holds, so that it drains
	} else if r.topic != nil && r.rng.IntN(2) == 0 {
		mq = modelPick(r.rng, r.topic.subs...)
	}
	live := len(mq.msgs)
	// Enqueue a lot while the queue is small, so that ids run past the
	// table's first chunks (4096 ids each) and chunks get released.
	enqW := 32
	switch {
	case live > 150:
		enqW = 1
	case live > 60:
		enqW = 12
	}
	type op struct {
		name string
		w    int
		run  func() string
	}
	ops := []op{
		{"enqueue", enqW, func() string { return r.opEnqueue(mq) }},
		{"seek", 1, func() string { return r.opSeek(mq) }},
		{"receive", 22, func() string { s, _ := r.opReceive(mq); return s }},
		{"consume", 10, func() string { return r.opConsume(mq) }},
		{"ack", 18, func() string { return r.opReceipts(mq, "ack") }},
		{"nack", 12, func() string { return r.opReceipts(mq, "nack") }},
		{"extend", 5, func() string { return r.opReceipts(mq, "extend") }},
		{"fail", 3, func() string { return r.opReceipts(mq, "fail") }},
		{"advance", 14, r.opAdvance},
		{"redrive", 2, func() string { return r.opRedrive(mq) }},
		{"peek", 3, func() string { return r.opPeek(mq) }},
		{"maintain", 4, r.opMaintain},
	}
	// Rare ones are drawn per mille.
	switch x := r.rng.IntN(1000); {
	case (x < 2 || (live > 400 && x < 20)) && mq.sub:
		return "seek-topic", r.opSeekTopic()
	case x < 2 || (live > 400 && x < 20):
		return "purge", r.opPurge(mq)
	case x < 7:
		return "restart", r.restart()
	case x < 8:
		return "crash-flushed", r.crashRestart(true)
	case x < 10:
		return "crash", r.crashRestart(false)
	case x < 13:
		return "config", r.opConfig(mq)
	case x < 17 && r.dlq != nil && !r.dlq.exists:
		return "create-dlq", r.createDLQ()
	}
	total := 0
	for _, o := range ops {
		total += o.w
	}
	x := r.rng.IntN(total)
	for _, o := range ops {
		if x < o.w {
			return o.name, o.run()
		}
		x -= o.w
	}
	panic("unreachable")
}

var (
	modelDelays       = []time.Duration{time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 20 * time.Second}
	modelVisibilities = []time.Duration{time.Second, 3 * time.Second, 10 * time.Second, 45 * time.Second}
	modelSteps        = []time.Duration{time.Millisecond, 100 * time.Millisecond, time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 30 * time.Second, 61 * time.Second}
)

func (r *modelRun) opEnqueue(mq *mQueue) string {
	if mq.sub {
		return r.opPublish()
	}
	n := 1 + r.rng.IntN(5)
	msgs := make([]NewMessage, n)
	var desc []string
	for i := range msgs {
		r.bodyN++
		body := fmt.Sprintf("%s-%d:", mq.name, r.bodyN)
		body += strings.Repeat(string(rune('a'+r.rng.IntN(26))), r.rng.IntN(300))
		m := NewMessage{Body: []byte(body)}
		d := "default"
		switch x := r.rng.IntN(10); {
		case x < 2:
			m.Delay = ptr(time.Duration(0))
		case x < 5:
			m.Delay = ptr(modelPick(r.rng, modelDelays...))
		}
		if m.Delay != nil {
			d = m.Delay.String()
		}
		if r.rng.IntN(3) == 0 {
			m.Attributes = map[string]string{}
			for j := range 1 + r.rng.IntN(3) {
				m.Attributes[fmt.Sprintf("k%d", j)] = fmt.Sprintf("v%d", r.rng.IntN(100))
			}
		}
		msgs[i] = m
		desc = append(desc, fmt.Sprintf("{%d bytes, delay %s, %d attrs}", len(body), d, len(m.Attributes)))
	}
	want, wantErr := mq.enqueue(r.now(), msgs)
	got, err := r.real[mq.name].Enqueue(msgs)
	s := fmt.Sprintf("enqueue %s %s -> %v %v", mq.name, strings.Join(desc, " "), got, err)
	switch {
	case wantErr != nil && !errors.Is(err, wantErr):
		r.failf("%s\nenqueue: got %v, %v; want %v", s, got, err, wantErr)
	case wantErr == nil && (err != nil || !slices.Equal(got, want)):
		r.failf("%s\nenqueue: got ids %v, %v; want ids %v", s, got, err, want)
	}
	return s
}

func (r *modelRun) opReceive(mq *mQueue) (string, []Receipt) {
	max := 1 + r.rng.IntN(5)
	var vis time.Duration
	if r.rng.IntN(2) == 0 {
		vis = modelPick(r.rng, modelVisibilities...)
	}
	want := mq.receive(r.now(), max, vis)
	got, err := r.real[mq.name].Receive(context.Background(), ReceiveOptions{Max: max, Visibility: vis})
	var gotR, wantR []string
	for _, m := range got {
		gotR = append(gotR, m.Receipt.String())
	}
	for _, l := range want {
		wantR = append(wantR, l.receipt.String())
		r.remember(mq, l.receipt)
	}
	s := fmt.Sprintf("receive %s max=%d vis=%s -> %v", mq.name, max, vis, gotR)
	if err != nil || len(got) != len(want) {
		r.failf("%s\nreceive: got %v, %v; want %v", s, gotR, err, wantR)
	}
	for i := range got {
		if got[i].Receipt != want[i].receipt {
			r.failf("%s\nreceive: got %v; want %v", s, gotR, wantR)
		}
		r.sameMsg(s, "received", got[i], &want[i].m)
		issued := r.issued[mq.name]
		if issued == nil {
			issued = map[Receipt]bool{}
			r.issued[mq.name] = issued
		}
		if issued[got[i].Receipt] {
			r.failf("%s\nreceive: receipt %s was handed out before", s, got[i].Receipt)
		}
		issued[got[i].Receipt] = true
	}
	if len(want) > 0 {
		mq.flush() // a receive writes its leases before they leave
	}
	return s, receipts(got)
}

// opConsume is a worker's loop: receive, then ack what came (or most of it).
func (r *modelRun) opConsume(mq *mQueue) string {
	s, rs := r.opReceive(mq)
	if len(rs) == 0 {
		return s
	}
	if r.rng.IntN(4) == 0 {
		rs = rs[:r.rng.IntN(len(rs))+1]
	}
	return s + "; " + r.receiptOp(mq, "ack", rs)
}

func (r *modelRun) remember(mq *mQueue, rc Receipt) {
	h := append(r.hist[mq.name], rc)
	if len(h) > 400 {
		h = slices.Clone(h[200:])
	}
	r.hist[mq.name] = h
}

// sameMsg compares a message the queue returned with the model's.
func (r *modelRun) sameMsg(s, what string, got Message, want *mMsg) {
	r.t.Helper()
	switch {
	case got.ID != want.id:
		r.failf("%s\n%s message: id %d, want %d", s, what, got.ID, want.id)
	case string(got.Body) != want.body:
		r.failf("%s\n%s message %d: body %.40q, want %.40q", s, what, got.ID, got.Body, want.body)
	case !maps.Equal(got.Attributes, want.attrs):
		r.failf("%s\n%s message %d: attributes %v, want %v", s, what, got.ID, got.Attributes, want.attrs)
	case got.Attempts != want.attempts:
		r.failf("%s\n%s message %d: attempts %d, want %d", s, what, got.ID, got.Attempts, want.attempts)
	case got.State != want.state.index():
		r.failf("%s\n%s message %d: state %s, want %s", s, what, got.ID, got.State, want.state)
	case got.EnqueuedAt.UnixNano() != want.enqueued:
		r.failf("%s\n%s message %d: enqueued at %v, want %v", s, what, got.ID, got.EnqueuedAt, time.Unix(0, want.enqueued))
	}
}

// chooseReceipts picks 1-4 receipts: live leases, receipts handed out
// before (mostly stale or gone by now), random ones, rarely invalid ones.
func (r *modelRun) chooseReceipts(mq *mQueue) []Receipt {
	leased := mq.inState(mLeased)
	hist := r.hist[mq.name]
	n := 1 + r.rng.IntN(4)
	var out []Receipt
	for range n {
		x := r.rng.IntN(100)
		switch {
		case x < 55 && len(leased) > 0:
			m := leased[r.rng.IntN(len(leased))]
			out = append(out, Receipt{ID: m.id, Attempt: uint16(m.attempts)})
		case x < 85 && len(hist) > 0:
			out = append(out, hist[r.rng.IntN(len(hist))])
		case x < 98:
			out = append(out, Receipt{ID: 1 + r.rng.Uint64N(mq.maxID+3), Attempt: uint16(1 + r.rng.IntN(5))})
		default:
			out = append(out, modelPick(r.rng, Receipt{ID: 0, Attempt: 1}, Receipt{ID: 1, Attempt: 0}))
		}
	}
	return out
}

func modelErrName(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrStaleReceipt):
		return "stale"
	case errors.Is(err, ErrNotFound):
		return "notfound"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	}
	return "error(" + err.Error() + ")"
}

func (r *modelRun) opReceipts(mq *mQueue, kind string) string {
	return r.receiptOp(mq, kind, r.chooseReceipts(mq))
}

func (r *modelRun) receiptOp(mq *mQueue, kind string, rs []Receipt) string {
	q := r.real[mq.name]
	now := r.now()
	var want, got []error
	var err error
	var opt string
	switch kind {
	case "ack":
		want = mq.ack(now, rs)
		got, err = q.Ack(rs)
	case "nack":
		o := NackOptions{Front: r.rng.IntN(2) == 0}
		if r.rng.IntN(5) < 2 {
			o.Delay = modelPick(r.rng, modelDelays...)
		}
		opt = fmt.Sprintf(" front=%v delay=%s", o.Front, o.Delay)
		want = mq.nack(now, rs, o)
		got, err = q.Nack(rs, o)
	case "extend":
		var vis time.Duration
		if r.rng.IntN(3) > 0 {
			vis = modelPick(r.rng, modelVisibilities...)
		}
		opt = fmt.Sprintf(" vis=%s", vis)
		want = mq.extend(now, rs, vis)
		got, err = q.Extend(rs, vis)
	case "fail":
		want = mq.fail(now, rs)
		got, err = q.Fail(rs)
	}
	var gotS, wantS []string
	for _, e := range got {
		gotS = append(gotS, modelErrName(e))
	}
	for _, e := range want {
		wantS = append(wantS, modelErrName(e))
	}
	s := fmt.Sprintf("%s %s %v%s -> %v", kind, mq.name, rs, opt, gotS)
	if err != nil || !slices.Equal(gotS, wantS) {
		r.failf("%s\n%s: got %v (call error %v); want %v", s, kind, gotS, err, wantS)
	}
	if kind != "extend" {
		mq.flush() // the durable ones write every pending event
	}
	return s
}

func (r *modelRun) opAdvance() string {
	d := modelPick(r.rng, modelSteps...)
	r.clk.Advance(d)
	// The counts check after every operation settles the real queues at
	// this clock reading; settle the model at the same moment.
	for _, mq := range r.queues() {
		mq.settle(r.now())
	}
	return "advance " + d.String()
}

func (r *modelRun) opRedrive(mq *mQueue) string {
	limit := 0
	if r.rng.IntN(2) == 0 {
		limit = 1 + r.rng.IntN(3)
	}
	want := mq.redrive(r.now(), limit)
	got, err := r.real[mq.name].Redrive(limit)
	s := fmt.Sprintf("redrive %s limit=%d -> %d", mq.name, limit, got)
	if err != nil || got != want {
		r.failf("%s\nredrive: got %d, %v; want %d", s, got, err, want)
	}
	mq.flush()
	return s
}

func (r *modelRun) opPurge(mq *mQueue) string {
	mq.purge()
	if err := r.real[mq.name].Purge(); err != nil {
		r.failf("purge %s: %v", mq.name, err)
	}
	mq.flush()
	return "purge " + mq.name
}

func (r *modelRun) opPeek(mq *mQueue) string {
	after := uint64(0)
	if mq.maxID > 0 {
		after = r.rng.Uint64N(mq.maxID + 1)
	}
	limit := 1 + r.rng.IntN(10)
	dead := r.rng.IntN(3) == 0
	now := r.now()
	mq.settle(now)
	var want []*mMsg
	for _, m := range mq.sorted(func(m *mMsg) bool { return m.id > after && (m.state == mDead) == dead }) {
		if len(want) < limit {
			want = append(want, m)
		}
	}
	var got []Message
	var err error
	what := "peek"
	if dead {
		what = "dead"
		got, err = r.real[mq.name].Dead(after, limit)
	} else {
		got, err = r.real[mq.name].Peek(after, limit)
	}
	s := fmt.Sprintf("%s %s after=%d limit=%d -> %v", what, mq.name, after, limit, modelIDs(got))
	r.sameList(s, what, got, err, want)
	return s
}

func modelIDs(msgs []Message) []uint64 {
	ids := make([]uint64, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	return ids
}

func (r *modelRun) sameList(s, what string, got []Message, err error, want []*mMsg) {
	r.t.Helper()
	wantIDs := make([]uint64, len(want))
	for i, m := range want {
		wantIDs[i] = m.id
	}
	if err != nil || !slices.Equal(modelIDs(got), wantIDs) {
		r.failf("%s\n%s: got %v, %v; want %v", s, what, modelIDs(got), err, wantIDs)
	}
	for i := range got {
		r.sameMsg(s, what, got[i], want[i])
	}
}

func (r *modelRun) opMaintain() string {
	now := r.now()
	for _, mq := range r.queues() {
		mq.settle(now)
	}
	r.main.moveDead(now)
	if r.topic != nil {
		for _, mq := range r.topic.subs { // after the queues, as Maintain does
			mq.moveDead(now)
		}
	}
	if err := r.b.Maintain(); err != nil {
		r.failf("maintain: %v", err)
	}
	for _, mq := range r.queues() {
		mq.flush()
	}
	if r.topic != nil {
		r.checkRetention()
	}
	return "maintain"
}

func (r *modelRun) opConfig(mq *mQueue) string {
	u := ConfigUpdate{}
	if r.rng.IntN(2) == 0 {
		mq.maxAttempts = modelPick(r.rng, 1, 2, 3, 5)
		u.MaxAttempts = ptr(mq.maxAttempts)
	} else {
		mq.vis = modelPick(r.rng, 5*time.Second, 10*time.Second, 30*time.Second)
		u.VisibilityTimeout = ptr(mq.vis)
	}
	if mq.sub {
		r.configSub(mq, u)
	} else if _, created, err := r.b.Create(mq.name, u); err != nil || created {
		r.failf("config %s: %v, %v", mq.name, created, err)
	}
	return fmt.Sprintf("config %s max_attempts=%d visibility=%s", mq.name, mq.maxAttempts, mq.vis)
}

func (r *modelRun) restart() string {
	if err := r.b.Close(); err != nil {
		r.failf("restart: close: %v", err)
	}
	r.b = nil
	for _, mq := range r.queues() {
		mq.flush() // the snapshot covers everything
	}
	return r.reopen("restart")
}

// reopen opens the broker again. First `spool check` replays the files
// offline: it must count as many messages as Open loads. (Only the total
// compares: the queue's timer may already have expired leases that check
// counts as leased.)
func (r *modelRun) reopen(what string) string {
	rep, err := Check(r.dir)
	if err != nil || len(rep.Problems()) > 0 {
		r.failf("%s: check: %v %v", what, err, rep.Problems())
	}
	checked := map[string]Counts{}
	for _, qc := range rep.Queues {
		checked[qc.Name] = qc.Counts
	}
	for _, tc := range rep.Topics {
		for _, sc := range tc.Subscriptions {
			checked[sc.Name] = sc.Counts
		}
	}
	b, err := Open(r.dir, r.opts)
	if err != nil {
		r.failf("%s: open: %v", what, err)
	}
	r.b = b
	for _, mq := range r.queues() {
		if mq.sub {
			r.reopenSub(what, mq, checked)
			continue
		}
		q, err := b.Queue(mq.name)
		if err != nil {
			r.failf("%s: %v", what, err)
		}
		r.real[mq.name] = q
		q.mu.Lock()
		loaded := countsOf(q.t)
		q.mu.Unlock()
		if checked[mq.name].Total != loaded.Total {
			r.failf("%s: check counted %+v in %s, Open loaded %+v", what, checked[mq.name], mq.name, loaded)
		}
	}
	return what
}

// crashRestart stops the broker as a crash would (modelCrashClose) and
// opens it again: the snapshot is loaded and the state log replayed. With
// flush, nothing changes; without, the queues go back to what the logs
// hold (mQueue.crash).
func (r *modelRun) crashRestart(flush bool) string {
	if err := simulateCrash(r.b, flush); err != nil {
		r.failf("crash-restart: %v", err)
	}
	r.b = nil
	if !flush {
		for _, mq := range r.queues() {
			mq.crash()
		}
		return r.reopen("crash-restart (pending events lost)")
	}
	for _, mq := range r.queues() {
		mq.flush()
	}
	return r.reopen("crash-restart (after a flush)")
}

// checkCounts compares every queue's counts and config with the model's.
func (r *modelRun) checkCounts() {
	r.t.Helper()
	now := r.now()
	for _, mq := range r.queues() {
		mq.settle(now)
		info, err := r.info(mq)
		if err != nil {
			r.failf("info %s: %v", mq.name, err)
		}
		if want := mq.counts(); info.Counts != want {
			r.failf("%s counts %+v, want %+v", mq.name, info.Counts, want)
		}
		if c := info.Config; c.MaxAttempts != mq.maxAttempts || c.VisibilityTimeout != mq.vis {
			r.failf("%s config %+v, want max attempts %d, visibility %s", mq.name, c, mq.maxAttempts, mq.vis)
		}
	}
}

// checkLists compares Peek(0, 1000) and Dead(0, 1000) with the model.
func (r *modelRun) checkLists() {
	r.t.Helper()
	now := r.now()
	for _, mq := range r.queues() {
		mq.settle(now)
		q := r.real[mq.name]
		first := func(ms []*mMsg) []*mMsg { return ms[:min(len(ms), MaxList)] }
		got, err := q.Peek(0, MaxList)
		r.sameList("check lists", mq.name+" peek", got, err, first(mq.sorted(func(m *mMsg) bool { return m.state != mDead })))
		got, err = q.Dead(0, MaxList)
		r.sameList("check lists", mq.name+" dead", got, err, first(mq.inState(mDead)))
	}
}

// TestModelCrashKeepsDelayedFrontNackOrder: a crash (no snapshot since)
// keeps the ready order of messages nacked to the front with a delay. Found
// by TestModel's crash restarts before delays running out were logged
// (EvReady): replay put a nack whose delay had run out at the front when
// it replayed the nack (in nack order, before the delays the snapshot
// held), while the live queue put it there when its delay ran out.
func TestModelCrashKeepsDelayedFrontNackOrder(t *testing.T) {
	// Each scenario starts with a, b, c enqueued and returns the queue.
	scenarios := []struct {
		name string
		run  func(t *testing.T, clk *clock, b **Broker, dir string, opts Options) *Queue
	}{
		{"replayed nacks", func(t *testing.T, clk *clock, b **Broker, dir string, opts Options) *Queue {
			// a's delay is longer than b's: b reaches the front first.
			q, _ := (*b).Queue("q")
			got := receive(t, q, 2) // a, b
			if err := one(q.Nack(receipts(got[:1]), NackOptions{Front: true, Delay: 5 * time.Second})); err != nil {
				t.Fatal(err)
			}
			if err := one(q.Nack(receipts(got[1:]), NackOptions{Front: true, Delay: time.Second})); err != nil {
				t.Fatal(err)
			}
			clk.Advance(6 * time.Second)
			return q
		}},
		{"snapshot and replay", func(t *testing.T, clk *clock, b **Broker, dir string, opts Options) *Queue {
			// a's delay, held by the snapshot, runs out before b is nacked.
			q, _ := (*b).Queue("q")
			got := receive(t, q, 2) // a, b
			if err := one(q.Nack(receipts(got[:1]), NackOptions{Front: true, Delay: time.Second})); err != nil {
				t.Fatal(err)
			}
			(*b).Close() // the snapshot holds a delayed
			*b = mustOpen(t, dir, opts)
			q, _ = (*b).Queue("q")
			clk.Advance(2 * time.Second)
			if _, err := q.Info(); err != nil { // a's delay runs out: a goes to the front
				t.Fatal(err)
			}
			if err := one(q.Nack(receipts(got[1:]), NackOptions{Front: true})); err != nil {
				t.Fatal(err)
			}
			return q
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			order := map[bool][]string{}
			for _, crash := range []bool{false, true} {
				clk := newClock()
				dir := t.TempDir()
				opts := testOptions(clk)
				b := mustOpen(t, dir, opts)
				enqueue(t, mustCreate(t, b, "q", ConfigUpdate{}), "a", "b", "c")
				q := sc.run(t, clk, &b, dir, opts)
				if _, err := q.Info(); err != nil { // due delays run out
					t.Fatal(err)
				}
				if crash {
					if err := simulateCrash(b, true); err != nil {
						t.Fatal(err)
					}
					b = mustOpen(t, dir, opts)
					q, _ = b.Queue("q")
				}
				order[crash] = bodies(receive(t, q, 10))
			}
			if !slices.Equal(order[false], order[true]) {
				t.Errorf("ready order %q without a crash, %q after one", order[false], order[true])
			}
		})
	}
}

// TestModelDueChangesBeforeEnqueueAndRedrive: Enqueue and Redrive must
// first apply what the clock says happened (delays and leases that ran
// out), like every other operation (found while pinning the model's
// semantics: they once did not). Otherwise a nack to the back whose delay
// ran out before an enqueue is placed after the enqueued message, and
// Redrive(0) misses a message whose last lease ran out. TestModel cannot
// see it: it reads Info after every operation. The queue's timer cannot
// interfere here: the fake clock arms it 5s and 30s of real time ahead.
func TestModelDueChangesBeforeEnqueueAndRedrive(t *testing.T) {
	t.Run("a delayed nack to the back whose delay ran out goes after the newest id at that moment", func(t *testing.T) {
		clk := newClock()
		b := mustOpen(t, t.TempDir(), testOptions(clk))
		q := mustCreate(t, b, "q", ConfigUpdate{})
		enqueue(t, q, "a")
		if err := one(q.Nack(receipts(receive(t, q, 1)), NackOptions{Delay: 5 * time.Second})); err != nil {
			t.Fatal(err)
		}
		clk.Advance(6 * time.Second) // a's delay runs out; the newest id is a's
		enqueue(t, q, "b")
		got := receive(t, q, 5)
		if !slices.Equal(bodies(got), []string{"a", "b"}) {
			t.Errorf("received %q, want [a b]: a was placed when the next operation after the enqueue ran, not when its delay ran out", bodies(got))
		}
	})
	t.Run("redrive takes a message whose last lease ran out", func(t *testing.T) {
		clk := newClock()
		b := mustOpen(t, t.TempDir(), testOptions(clk))
		q := mustCreate(t, b, "q", ConfigUpdate{MaxAttempts: ptr(1)})
		enqueue(t, q, "x")
		receive(t, q, 1)
		clk.Advance(31 * time.Second) // the lease of the last attempt runs out: x is dead
		if n, err := q.Redrive(0); n != 1 || err != nil {
			info, _ := q.Info()
			t.Errorf("Redrive = %d, %v, want 1 (and then counts are %+v)", n, err, info.Counts)
		}
	})
}
