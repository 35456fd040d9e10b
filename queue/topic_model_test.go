package queue

// TestModel's topic (model_test.go): a topic "t" with two subscriptions,
// "t/a" (dead letters to the run's dead-letter queue, if it has one) and
// "t/b", each modelled as an mQueue whose messages are the topic's from
// its offset on. Publish adds a message to every subscription; a seek
// replaces a subscription's messages with the topic's from the id it
// lands on, all ready by id, their attempts starting at the highest the
// subscription ever handed out (no receipt is reused) and their tries at
// zero. The topic keeps what any subscription has not finished (its
// retention is 0): after every maintenance run the test checks that no
// subscription lost a message it had not finished, and the model drops
// what the topic no longer holds.
//
// Semantics pinned down beyond a queue's:
//
//   - A message nacked to the back goes after every message published
//     before the nack (becomeReady's after = the topic's newest id).
//   - Seek: earliest is the topic's oldest kept id; an id below it lands
//     there; a time lands on the first message published at or after it,
//     or past the newest.
//   - A receipt for a message not read since a seek is stale if its
//     attempt was reached before the seek, not found if not (as for any
//     message: attempts start at the floor).

import (
	"fmt"
	"maps"
	"strings"
	"time"
)

type mTopic struct {
	first uint64 // oldest id the topic keeps
	maxID uint64
	msgs  []mPublished // ids first..maxID
	subs  []*mQueue
}

type mPublished struct {
	id    uint64
	body  string
	attrs map[string]string
	at    int64
}

// publish adds a published message to a subscription.
func (q *mQueue) publish(now int64, id uint64, nm NewMessage) {
	q.maxID = id
	m := &mMsg{id: id, body: string(nm.Body), attrs: maps.Clone(nm.Attributes), enqueued: now, attempts: q.floor, base: q.floor}
	q.msgs[id] = m
	q.becomeReady(m, mByID, 0, now)
	q.since = append(q.since, *m)
}

// seek moves a subscription to id to.
func (q *mQueue) seek(to uint64, tp *mTopic, now int64) {
	q.floor = q.top
	q.msgs = map[uint64]*mMsg{}
	for _, p := range tp.msgs {
		if p.id >= to {
			m := &mMsg{id: p.id, body: p.body, attrs: maps.Clone(p.attrs), enqueued: p.at, attempts: q.floor, base: q.floor}
			q.msgs[m.id] = m
			q.becomeReady(m, mByID, 0, now)
		}
	}
}

func (r *modelRun) createTopic() {
	zero := time.Duration(0)
	tp, created, err := r.b.CreateTopic("t", TopicUpdate{Retention: &zero})
	if err != nil || !created {
		r.failf("CreateTopic = %v, %v", created, err)
	}
	r.topic = &mTopic{first: 1}
	for _, name := range []string{"a", "b"} {
		mq := newMQueue("t/" + name)
		mq.sub = true
		mq.maxAttempts = modelPick(r.rng, 1, 2, 3, 5)
		mq.vis = modelPick(r.rng, 5*time.Second, 10*time.Second, 30*time.Second)
		u := SubscriptionUpdate{MaxAttempts: ptr(mq.maxAttempts), VisibilityTimeout: ptr(mq.vis)}
		if name == "a" && r.dlq != nil {
			mq.dlq = r.dlq
			u.DeadLetterQueue = ptr(r.dlq.name)
		}
		s, created, err := tp.CreateSubscription(name, u, Earliest())
		if err != nil || !created {
			r.failf("CreateSubscription(%s) = %v, %v", name, created, err)
		}
		mq.exists = true
		r.real[mq.name] = s.q
		r.topic.subs = append(r.topic.subs, mq)
	}
}

func (r *modelRun) realTopic() *Topic {
	tp, err := r.b.Topic("t")
	if err != nil {
		r.failf("Topic(t): %v", err)
	}
	return tp
}

func (r *modelRun) subscription(mq *mQueue) *Subscription {
	s, err := r.realTopic().Subscription(strings.TrimPrefix(mq.name, "t/"))
	if err != nil {
		r.failf("Subscription(%s): %v", mq.name, err)
	}
	return s
}

// info returns a queue's or a subscription's counts and config as an Info.
func (r *modelRun) info(mq *mQueue) (Info, error) {
	if !mq.sub {
		return r.real[mq.name].Info()
	}
	si, err := r.subscription(mq).Info()
	if err == nil && si.Lag != si.Counts.Ready+si.Counts.Delayed+si.Counts.Leased {
		r.failf("%s: lag %d for counts %+v", mq.name, si.Lag, si.Counts)
	}
	q := r.real[mq.name].live()
	q.mu.Lock()
	top := int(q.t.MaxAttempt())
	q.mu.Unlock()
	if top != mq.top {
		r.failf("%s: highest attempt handed out %d, want %d", mq.name, top, mq.top)
	}
	return Info{Name: mq.name, Counts: si.Counts, Config: si.Config.queueConfig()}, err
}

func (r *modelRun) opPublish() string {
	n := 1 + r.rng.IntN(5)
	msgs := make([]NewMessage, n)
	for i := range msgs {
		r.bodyN++
		body := fmt.Sprintf("t-%d:", r.bodyN) + strings.Repeat(string(rune('a'+r.rng.IntN(26))), r.rng.IntN(300))
		msgs[i] = NewMessage{Body: []byte(body)}
		if r.rng.IntN(3) == 0 {
			msgs[i].Attributes = map[string]string{"k": fmt.Sprint(r.rng.IntN(100))}
		}
	}
	now := r.now()
	got, err := r.realTopic().Publish(msgs)
	s := fmt.Sprintf("publish t %d messages -> %v %v", n, got, err)
	var want []uint64
	for _, m := range msgs {
		tp := r.topic
		tp.maxID++
		tp.msgs = append(tp.msgs, mPublished{id: tp.maxID, body: string(m.Body), attrs: maps.Clone(m.Attributes), at: now})
		for _, mq := range tp.subs {
			mq.publish(now, tp.maxID, m)
		}
		want = append(want, tp.maxID)
	}
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		r.failf("%s\npublish: want ids %v", s, want)
	}
	return s
}

// randomPosition picks a seek target and the id the model says it lands on.
func (r *modelRun) randomPosition() (Position, uint64) {
	tp := r.topic
	switch r.rng.IntN(4) {
	case 0:
		return Earliest(), tp.first
	case 1:
		return Latest(), tp.maxID + 1
	case 2:
		id := 1 + r.rng.Uint64N(tp.maxID+3)
		return AtID(id), max(id, tp.first)
	}
	at := r.now() + int64(time.Second) // past every message: lands past the newest
	if len(tp.msgs) > 0 && r.rng.IntN(4) > 0 {
		at = tp.msgs[r.rng.IntN(len(tp.msgs))].at - int64(r.rng.IntN(2))
	}
	to := tp.maxID + 1
	for _, p := range tp.msgs {
		if p.at >= at {
			to = p.id
			break
		}
	}
	return AtTime(time.Unix(0, at)), to
}

func (r *modelRun) opSeek(mq *mQueue) string {
	if !mq.sub {
		return r.opPeek(mq) // queues do not seek
	}
	pos, want := r.randomPosition()
	now := r.now()
	mq.settle(now)
	got, err := r.subscription(mq).Seek(pos)
	s := fmt.Sprintf("seek %s to %s -> %d %v", mq.name, pos, got, err)
	if err != nil || got != want {
		r.failf("%s\nseek: want %d", s, want)
	}
	mq.seek(want, r.topic, now)
	mq.flush()
	return s
}

func (r *modelRun) opSeekTopic() string {
	pos, want := r.randomPosition()
	now := r.now()
	got, err := r.realTopic().Seek(pos)
	s := fmt.Sprintf("seek topic t to %s -> %d %v", pos, got, err)
	if err != nil || got != want {
		r.failf("%s\nseek topic: want %d", s, want)
	}
	for _, mq := range r.topic.subs {
		mq.settle(now)
		mq.seek(want, r.topic, now)
		mq.flush()
	}
	return s
}

// checkRetention, after a maintenance run, checks that the topic removed
// only what every subscription had finished, and drops it from the model.
func (r *modelRun) checkRetention() {
	info, err := r.realTopic().Info()
	if err != nil {
		r.failf("topic info: %v", err)
	}
	head := info.HeadID
	if head < r.topic.first {
		r.failf("topic head went back from %d to %d", r.topic.first, head)
	}
	for _, mq := range r.topic.subs {
		for id, m := range mq.msgs {
			if id < head {
				r.failf("retention removed up to %d, yet %s had not finished message %d (%s)", head-1, mq.name, id, m.state)
			}
		}
	}
	for len(r.topic.msgs) > 0 && r.topic.msgs[0].id < head {
		r.topic.msgs = r.topic.msgs[1:]
	}
	r.topic.first = head
	if info.TailID != r.topic.maxID {
		r.failf("topic tail %d, want %d", info.TailID, r.topic.maxID)
	}
}

func (r *modelRun) configSub(mq *mQueue, u ConfigUpdate) {
	_, created, err := r.realTopic().CreateSubscription(strings.TrimPrefix(mq.name, "t/"),
		SubscriptionUpdate{MaxAttempts: u.MaxAttempts, VisibilityTimeout: u.VisibilityTimeout}, Latest())
	if err != nil || created {
		r.failf("config %s: %v, %v", mq.name, created, err)
	}
}

// reopenSub finds a subscription again after a reopen.
func (r *modelRun) reopenSub(what string, mq *mQueue, checked map[string]Counts) {
	q := r.subscription(mq).q
	r.real[mq.name] = q
	q.mu.Lock()
	loaded := countsOf(q.t)
	q.mu.Unlock()
	if c, ok := checked[mq.name]; !ok || c.Total != loaded.Total {
		r.failf("%s: check counted %+v in %s, Open loaded %+v", what, c, mq.name, loaded)
	}
}
