package queue

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/spoolq/spool/log"
)

// Topic is one message log that many named subscriptions read, each at
// its own offset with the queue semantics (see Subscription). Its methods
// are safe for concurrent use.
type Topic struct {
	b    *Broker
	name string
	dir  string
	log  *log.Log
	// published is the newest id whose record is durable (under
	// Sync=always) and readable: subscriptions read up to it, never
	// further, so none ever delivers a message whose publish could still
	// be lost.
	published atomic.Uint64

	// woken is the subscriptions as a list Publish walks without a lock,
	// replaced (under mu) whenever subs changes.
	woken atomic.Pointer[[]*Subscription]

	mu     sync.RWMutex // guards what follows
	cfg    TopicConfig
	subs   map[string]*Subscription
	failed map[string]error // subscriptions whose directories did not open
	closed bool

	retention topicRetention // the maintenance goroutine's alone
	repairs   int            // problems opening found (each logged)

	stats struct{ published atomic.Uint64 }
}

// File and directory names inside a topic's directory.
const (
	topicFileName        = "topic.json"
	subscriptionsDirName = "subscriptions"
	subscriptionFileName = "sub.json"
)

// TopicInfo describes a topic.
type TopicInfo struct {
	Name   string
	Config TopicConfig
	// HeadID is the oldest id the topic may still hold (every id below it
	// was removed by retention); TailID the newest published.
	HeadID, TailID uint64
	Bytes          int64 // message-log bytes on disk
	Published      uint64
	Subscriptions  []SubscriptionInfo
	// Err, in Broker.Topics, is why a topic did not open; the other
	// fields are then zero.
	Err error
}

// Name returns the topic's name.
func (t *Topic) Name() string { return t.name }

// Config returns the topic's configuration.
func (t *Topic) Config() TopicConfig {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.cfg
}

func (t *Topic) lockOpen() error {
	t.mu.RLock()
	if t.closed {
		t.mu.RUnlock()
		return fmt.Errorf("%w: %q", ErrTopicNotFound, t.name)
	}
	return nil
}

// Publish appends msgs to the topic, all or nothing, and returns their
// ids; every subscription sees them. It returns once they are durable
// (under Sync=always). A message's delay holds it back on every
// subscription.
func (t *Topic) Publish(msgs []NewMessage) ([]uint64, error) {
	if err := t.b.checkNewMessages(msgs); err != nil {
		return nil, err
	}
	for i, m := range msgs {
		if m.Priority != nil {
			return nil, fmt.Errorf("%w: message %d has a priority: a topic delivers in publish order (priorities are a queue's)", ErrInvalid, i)
		}
		if m.Group != "" || m.DedupID != "" {
			return nil, fmt.Errorf("%w: message %d has a group or deduplication id: those are an ordered queue's", ErrInvalid, i)
		}
	}
	if err := t.lockOpen(); err != nil {
		return nil, err
	}
	t.mu.RUnlock()
	appendedAt := t.b.opts.Now().UnixNano()
	batch := newRecords(msgs, 0, appendedAt)
	first, _, err := t.log.Append(batch.recs)
	batch.release()
	if errors.Is(err, log.ErrClosed) {
		return nil, fmt.Errorf("%w: %q", ErrTopicNotFound, t.name)
	}
	if err != nil {
		return nil, appendError("publish to", t.name, err)
	}
	ids := make([]uint64, len(msgs))
	ready := 0
	for i := range ids {
		ids[i] = first + uint64(i)
		if msgs[i].readyAt(0, appendedAt) == 0 {
			ready++
		}
	}
	// Appends complete in id order (one committer, rounds in order), but
	// their callers may get here out of it.
	last := ids[len(ids)-1]
	for cur := t.published.Load(); cur < last && !t.published.CompareAndSwap(cur, last); cur = t.published.Load() {
	}
	t.stats.published.Add(uint64(len(msgs)))
	if subs := t.woken.Load(); subs != nil {
		for _, s := range *subs {
			s.q.live().wake(ready)
		}
	}
	return ids, nil
}

// subsChangedLocked refreshes the list Publish walks; the caller holds mu
// and has just changed subs.
func (t *Topic) subsChangedLocked() {
	list := make([]*Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		list = append(list, s)
	}
	t.woken.Store(&list)
}

// subscriptionList returns the open subscriptions, by name.
func (t *Topic) subscriptionList() []*Subscription {
	t.mu.RLock()
	defer t.mu.RUnlock()
	subs := make([]*Subscription, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s)
	}
	slices.SortFunc(subs, func(a, b *Subscription) int { return strings.Compare(a.q.sub.name, b.q.sub.name) })
	return subs
}

// Subscription returns the named subscription, or ErrSubscriptionNotFound.
func (t *Topic) Subscription(name string) (*Subscription, error) {
	if err := t.lockOpen(); err != nil {
		return nil, err
	}
	defer t.mu.RUnlock()
	if s := t.subs[name]; s != nil {
		return s, nil
	}
	if err := t.failed[name]; err != nil {
		return nil, fmt.Errorf("%w: subscription %s/%s: %s", ErrQueueDamaged, t.name, name, openFailureReason(err))
	}
	if !ValidName(name) {
		return nil, checkName(name)
	}
	return nil, fmt.Errorf("%w: %s/%s (create it first)", ErrSubscriptionNotFound, t.name, name)
}

// Info returns the topic's config, ids, size and every subscription's
// Info; one that did not open is listed with its names and Err.
func (t *Topic) Info() (TopicInfo, error) {
	if err := t.lockOpen(); err != nil {
		return TopicInfo{}, err
	}
	cfg := t.cfg
	var failed []SubscriptionInfo
	for name, err := range t.failed {
		failed = append(failed, SubscriptionInfo{Topic: t.name, Name: name,
			Err: fmt.Errorf("%w: subscription %s/%s: %s", ErrQueueDamaged, t.name, name, openFailureReason(err))})
	}
	t.mu.RUnlock()
	var bytes int64
	for _, s := range t.log.Segments() {
		bytes += s.Size
	}
	info := TopicInfo{Name: t.name, Config: cfg, HeadID: t.firstID(), TailID: t.published.Load(), Bytes: bytes,
		Published: t.stats.published.Load(), Subscriptions: []SubscriptionInfo{}}
	for _, s := range t.subscriptionList() {
		if si, err := s.Info(); err == nil {
			info.Subscriptions = append(info.Subscriptions, si)
		}
	}
	info.Subscriptions = append(info.Subscriptions, failed...)
	slices.SortFunc(info.Subscriptions, func(a, b SubscriptionInfo) int { return strings.Compare(a.Name, b.Name) })
	return info, nil
}

// Update changes the topic's configuration.
func (t *Topic) Update(u TopicUpdate) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return fmt.Errorf("%w: %q", ErrTopicNotFound, t.name)
	}
	cfg, err := t.cfg.apply(u)
	if err != nil || cfg == t.cfg {
		return err
	}
	if err := writeConfigFile(t.b.opts.FS, filepath.Join(t.dir, topicFileName), cfg); err != nil {
		return err
	}
	t.cfg = cfg
	return nil
}

// Seek moves every subscription to p (queue-sample's reset of a topic),
// resolved once, so all of them land on the same id: see
// Subscription.Seek. It returns that id.
func (t *Topic) Seek(p Position) (uint64, error) {
	if err := t.lockOpen(); err != nil {
		return 0, err
	}
	t.mu.RUnlock()
	id, err := t.resolve(p)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, s := range t.subscriptionList() {
		if err := s.seekTo(id); err != nil {
			errs = append(errs, err)
		}
	}
	return id, errors.Join(errs...)
}

// openTopic opens a topic's log and every subscription in it.
func openTopic(b *Broker, name string) (*Topic, error) {
	tdir := filepath.Join(b.topicsDir(), name)
	data, err := os.ReadFile(filepath.Join(tdir, topicFileName))
	if err != nil {
		return nil, fmt.Errorf("open topic %s: %w", name, err)
	}
	var cfg TopicConfig
	if err := DecodeConfigFile(data, &cfg); err != nil {
		return nil, fmt.Errorf("open topic %s: %w", name, err)
	}
	t := &Topic{b: b, name: name, dir: tdir, cfg: cfg, subs: map[string]*Subscription{}, failed: map[string]error{}}
	lg := b.opts.Logger.With("topic", name)
	if t.log, err = b.openMessageLog(tdir, name, lg); err != nil {
		return nil, fmt.Errorf("open topic %s: %w", name, err)
	}
	if !t.log.Recovery().Clean() {
		t.repairs++ // the log reported it itself
	}
	t.published.Store(t.log.LastID())
	root := filepath.Join(tdir, subscriptionsDirName)
	if err := log.MkdirDurable(b.opts.FS, root); err != nil {
		t.log.Close()
		return nil, fmt.Errorf("open topic %s: %w", name, err)
	}
	names, err := b.namedDirs(root, "subscription", lg)
	if err != nil {
		t.log.Close()
		return nil, fmt.Errorf("open topic %s: %w", name, err)
	}
	for _, sub := range names {
		q, err := openSubscription(t, sub)
		if err != nil {
			t.failed[sub] = err
			lg.Error("queue: subscription cannot open; it answers 503, the others serve on", "subscription", sub, "err", err)
			continue
		}
		t.subs[sub] = &Subscription{q: q}
	}
	t.subsChangedLocked()
	return t, nil
}

// close snapshots (if asked) and closes every subscription, then the log.
func (t *Topic) close(snapshot bool) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	subs := make([]*Queue, 0, len(t.subs))
	for _, s := range t.subs {
		subs = append(subs, s.q.live())
	}
	t.mu.Unlock()
	errs := make([]error, len(subs)+1)
	eachParallel(len(subs), func(i int) { errs[i] = subs[i].close(snapshot) })
	errs[len(subs)] = t.log.Close()
	return errors.Join(errs...)
}

// wake tells a subscription that n messages were published ready: its
// long-poll receivers look again. Only a subscription with receivers
// parked takes its lock (a publish to a topic with many idle
// subscriptions costs an atomic load each); ReceiveEach looks at the
// topic again after parking, so a receiver parking as this runs misses
// nothing.
func (q *Queue) wake(n int) {
	if n == 0 || q.waiting.Load() == 0 {
		return
	}
	q.mu.Lock()
	q.notifyLocked(n)
	q.mu.Unlock()
}

// topicsDir is where the topics live.
func (b *Broker) topicsDir() string { return filepath.Join(b.dir, topicsName) }

// now is the broker's clock in unix ns.
func (b *Broker) now() int64 { return b.opts.Now().UnixNano() }
