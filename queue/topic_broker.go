package queue

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spoolq/spool/log"
)

// The broker's topics: opened at start, created, looked up, listed,
// deleted and closed as queues are; subscriptions likewise inside a topic.

// openTopics opens every topic in the data directory; one that does not
// open is recorded (and logged) while the others serve.
func (b *Broker) openTopics() error {
	root := b.topicsDir()
	if err := log.MkdirDurable(b.opts.FS, root); err != nil { // new in round 2: older directories lack it
		return fmt.Errorf("open data directory: %w", err)
	}
	toOpen, err := b.namedDirs(root, "topic", b.opts.Logger)
	if err != nil {
		return fmt.Errorf("open data directory: %w", err)
	}
	var mu sync.Mutex
	eachParallel(len(toOpen), func(i int) {
		t, err := openTopic(b, toOpen[i])
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			b.failedTopics[toOpen[i]] = err
			b.opts.Logger.Error("queue: topic cannot open; it answers 503, the rest serve on", "topic", toOpen[i], "err", err)
			return
		}
		b.topics[toOpen[i]] = t
	})
	return nil
}

// CreateTopic creates the topic with the given settings over
// DefaultTopicConfig, or, if it exists, applies the settings to it.
// created says which happened. A create that fails leaves nothing behind.
func (b *Broker) CreateTopic(name string, u TopicUpdate) (t *Topic, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, ErrClosed
	}
	if t := b.topics[name]; t != nil {
		return t, false, t.Update(u)
	}
	if err := b.failedTopics[name]; err != nil {
		return nil, false, fmt.Errorf("%w: topic %q: %s", ErrQueueDamaged, name, openFailureReason(err))
	}
	cfg, err := DefaultTopicConfig.apply(u)
	if err != nil {
		return nil, false, err
	}
	root := b.topicsDir()
	dir, err := b.createDir(root, name, topicFileName, cfg)
	if err != nil {
		return nil, false, fmt.Errorf("create topic %s: %w", name, err)
	}
	if t, err = openTopic(b, name); err != nil {
		return nil, false, errors.Join(err, b.removeQueueDir(root, dir, name))
	}
	b.topics[name] = t
	b.opts.Logger.Info("queue: topic created", "topic", name)
	return t, true, nil
}

// Topic returns the named topic, or ErrTopicNotFound.
func (b *Broker) Topic(name string) (*Topic, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	if t := b.topics[name]; t != nil {
		return t, nil
	}
	if err := b.failedTopics[name]; err != nil {
		return nil, fmt.Errorf("%w: topic %q: %s", ErrQueueDamaged, name, openFailureReason(err))
	}
	if !ValidName(name) {
		return nil, checkName(name)
	}
	return nil, fmt.Errorf("%w: %q (create it first)", ErrTopicNotFound, name)
}

// DeleteTopic removes the topic, its subscriptions and all their data.
func (b *Broker) DeleteTopic(name string) error {
	b.mu.Lock()
	t := b.topics[name]
	if t == nil {
		defer b.mu.Unlock()
		if err := b.failedTopics[name]; err != nil {
			delete(b.failedTopics, name)
			return b.removeQueueDir(b.topicsDir(), filepath.Join(b.topicsDir(), name), name)
		}
		if !ValidName(name) {
			return checkName(name)
		}
		return fmt.Errorf("%w: %q", ErrTopicNotFound, name)
	}
	delete(b.topics, name)
	b.mu.Unlock()
	if err := errors.Join(t.close(false), b.removeQueueDir(b.topicsDir(), t.dir, name)); err != nil {
		return err
	}
	b.opts.Logger.Info("queue: topic deleted", "topic", name)
	return nil
}

// Topics returns every topic's Info, sorted by name; a topic that did not
// open is listed with only its Name and Err.
func (b *Broker) Topics() []TopicInfo {
	var infos []TopicInfo
	b.mu.RLock()
	for name, err := range b.failedTopics {
		infos = append(infos, TopicInfo{Name: name, Err: fmt.Errorf("%w: topic %q: %s", ErrQueueDamaged, name, openFailureReason(err))})
	}
	b.mu.RUnlock()
	for _, t := range b.topicList() {
		if info, err := t.Info(); err == nil {
			infos = append(infos, info)
		}
	}
	slices.SortFunc(infos, func(a, b TopicInfo) int { return strings.Compare(a.Name, b.Name) })
	return infos
}

// topicList returns the open topics.
func (b *Broker) topicList() []*Topic {
	b.mu.RLock()
	defer b.mu.RUnlock()
	ts := make([]*Topic, 0, len(b.topics))
	for _, t := range b.topics {
		ts = append(ts, t)
	}
	return ts
}

func (b *Broker) closeTopics() error {
	ts := b.topicList()
	errs := make([]error, len(ts))
	for i, t := range ts {
		errs[i] = t.close(true)
	}
	return errors.Join(errs...)
}

// CreateSubscription creates the named subscription at start with the
// given settings over DefaultSubscriptionConfig, or, if it exists,
// applies the settings to it (start applies at creation only: Seek moves
// a subscription). created says which happened.
func (t *Topic) CreateSubscription(name string, u SubscriptionUpdate, start Position) (s *Subscription, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, false, fmt.Errorf("%w: %q", ErrTopicNotFound, t.name)
	}
	if s := t.subs[name]; s != nil {
		return s, false, s.Update(u)
	}
	if err := t.failed[name]; err != nil {
		return nil, false, fmt.Errorf("%w: subscription %s/%s: %s", ErrQueueDamaged, t.name, name, openFailureReason(err))
	}
	cfg, err := DefaultSubscriptionConfig.apply(u, t.name+"/"+name)
	if err != nil {
		return nil, false, err
	}
	startID, err := t.resolve(start)
	if err != nil {
		return nil, false, err
	}
	root := filepath.Join(t.dir, subscriptionsDirName)
	dir, err := t.b.createDir(root, name, subscriptionFileName, subscriptionFile{Config: cfg, StartID: startID})
	if err != nil {
		return nil, false, fmt.Errorf("create subscription %s/%s: %w", t.name, name, err)
	}
	q, err := openSubscription(t, name)
	if err != nil {
		return nil, false, errors.Join(err, t.b.removeQueueDir(root, dir, name))
	}
	s = &Subscription{q: q}
	t.subs[name] = s
	t.subsChangedLocked()
	t.b.opts.Logger.Info("queue: subscription created", "topic", t.name, "subscription", name, "start", start.String(), "start_id", startID)
	if dlq := cfg.DeadLetterQueue; dlq != "" {
		if _, err := t.b.Queue(dlq); err != nil {
			t.b.opts.Logger.Warn("queue: its dead-letter queue does not exist (yet): dead messages stay in the subscription until it is created",
				"subscription", q.name, "dead_letter_queue", dlq)
		}
	}
	return s, true, nil
}

// DeleteSubscription removes the named subscription and its state. The
// topic's messages stay (for its other subscriptions and its retention).
func (t *Topic) DeleteSubscription(name string) error {
	t.mu.Lock()
	s := t.subs[name]
	root := filepath.Join(t.dir, subscriptionsDirName)
	if s == nil {
		defer t.mu.Unlock()
		if err := t.failed[name]; err != nil {
			delete(t.failed, name)
			return t.b.removeQueueDir(root, filepath.Join(root, name), name)
		}
		if !ValidName(name) {
			return checkName(name)
		}
		return fmt.Errorf("%w: %s/%s", ErrSubscriptionNotFound, t.name, name)
	}
	delete(t.subs, name)
	t.subsChangedLocked()
	t.mu.Unlock()
	q := s.q.live()
	if err := errors.Join(q.close(false), t.b.removeQueueDir(root, q.dir, name)); err != nil {
		return err
	}
	t.b.opts.Logger.Info("queue: subscription deleted", "topic", t.name, "subscription", name)
	return nil
}

// reopen replaces a broken subscription with a fresh one loaded from
// disk, as Broker.reopen does a queue.
func (t *Topic) reopen(old *Queue) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.subs[old.sub.name]
	if s == nil || s.q.live() != old {
		return nil
	}
	old.mu.Lock()
	old.reloading = true
	old.mu.Unlock()
	old.close(false)
	q, err := openSubscription(t, old.sub.name)
	if err != nil {
		return fmt.Errorf("reload subscription %s: %w", old.name, err)
	}
	old.replacedBy.Store(q)
	t.b.opts.Logger.Info("queue: reloaded from disk after a state-log failure", "subscription", old.name)
	return nil
}
