package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Options configure a Broker. The zero value is usable.
type Options struct {
	// Sync is the fsync policy of every queue's message and state logs.
	Sync         log.SyncPolicy
	SyncInterval time.Duration
	// SegmentSize is the message-log segment size (default 16 MiB; at most
	// 1 GiB, so a frame offset fits the index's 32 bits).
	SegmentSize int64
	// MaxMessageBytes bounds a message body (default 256 KiB).
	MaxMessageBytes int
	// SnapshotEvery is how many state events a queue writes between
	// snapshots (default 100,000).
	SnapshotEvery int
	// MaintenanceInterval is how often the background goroutine runs
	// (default 1s); negative disables it, and tests call Maintain instead.
	MaintenanceInterval time.Duration
	// CompactEvery is how often a maintenance run also compacts (default 30s).
	CompactEvery time.Duration
	// Now is the clock; nil means time.Now. Tests inject a fake one.
	Now func() time.Time
	// Logger gets recovery reports and background errors; nil: slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after every commit round of a queue's
	// message log (for metrics: fsync latency, records per commit). It
	// must be fast and must not call the broker.
	OnCommit func(queue string, c log.Commit)
	// OnStateSync, if set, is called after every fsync of a queue's state
	// log: a group commit of acks, nacks and the like (under Sync=always)
	// or a snapshot's, with how many events it made durable and how long
	// it took. Same rules as OnCommit.
	OnStateSync func(queue string, events int, took time.Duration)

	// stateFault, set by tests, fails state-log operations (index.Fault).
	stateFault index.Fault
}

// Default option values.
const (
	DefaultMaxMessageBytes = 256 << 10
	DefaultSnapshotEvery   = 100_000
	maxSegmentSize         = 1 << 30
)

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = log.DefaultSegmentSize
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = time.Second
	}
	if o.CompactEvery == 0 {
		o.CompactEvery = 30 * time.Second
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = log.DefaultSyncInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	switch {
	case o.SegmentSize < 0 || o.SegmentSize > maxSegmentSize:
		return o, fmt.Errorf("%w: segment size %d (at most %d)", ErrInvalid, o.SegmentSize, maxSegmentSize)
	case o.MaxMessageBytes < 0 || o.MaxMessageBytes > log.MaxFramePayload/2:
		return o, fmt.Errorf("%w: max message bytes %d", ErrInvalid, o.MaxMessageBytes)
	}
	return o, nil
}

// Broker owns the queues of one data directory. Its methods are safe for
// concurrent use.
type Broker struct {
	dir  string
	opts Options

	mu     sync.RWMutex
	queues map[string]*Queue
	closed bool

	maintMu sync.Mutex
	stop    chan struct{}
	done    chan struct{}
	unlock  func() error // releases the data directory's lock
}

// Open opens the broker in dir (creating it), opening every queue found.
func Open(dir string, opts Options) (*Broker, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Broker{dir: dir, opts: opts, queues: map[string]*Queue{}, stop: make(chan struct{}), done: make(chan struct{})}
	root := b.queuesDir()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, fmt.Errorf("open broker: %w", err)
	}
	if b.unlock, err = lockDir(filepath.Join(dir, "LOCK")); err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			b.unlock()
		}
	}()
	names, err := log.OS.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("open broker: %w", err)
	}
	for _, name := range names {
		if !ValidName(name) {
			opts.Logger.Warn("queue: ignoring entry that is not a queue name", "path", filepath.Join(root, name))
			continue
		}
		qdir := filepath.Join(root, name)
		if _, err := os.Stat(filepath.Join(qdir, queueFileName)); errors.Is(err, fs.ErrNotExist) {
			// Create writes queue.json last and acknowledges only after it:
			// without one, this is a create that never completed.
			opts.Logger.Warn("queue: removing half-created queue", "path", qdir)
			if err := os.RemoveAll(qdir); err != nil {
				b.closeQueues()
				return nil, fmt.Errorf("open broker: remove half-created queue %s: %w", qdir, err)
			}
			continue
		}
		q, err := openQueue(b, name)
		if err != nil {
			b.closeQueues()
			return nil, err
		}
		b.queues[name] = q
	}
	if opts.MaintenanceInterval > 0 {
		go b.maintain()
	} else {
		close(b.done)
	}
	opened = true
	return b, nil
}

func (b *Broker) queuesDir() string { return filepath.Join(b.dir, "queues") }

// Create creates the queue with the given settings over DefaultConfig, or,
// if it exists, applies the settings to it. created says which happened.
func (b *Broker) Create(name string, u ConfigUpdate) (q *Queue, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, false, ErrClosed
	}
	if q := b.queues[name]; q != nil {
		return q, false, q.update(u)
	}
	cfg, err := DefaultConfig.apply(u, name)
	if err != nil {
		return nil, false, err
	}
	qdir := filepath.Join(b.queuesDir(), name)
	if err := os.MkdirAll(qdir, 0o755); err != nil {
		return nil, false, fmt.Errorf("create queue %s: %w", name, err)
	}
	if err := writeConfig(qdir, cfg); err != nil {
		return nil, false, errors.Join(err, os.RemoveAll(qdir))
	}
	if err := log.OS.SyncDir(b.queuesDir()); err != nil {
		return nil, false, fmt.Errorf("create queue %s: %w", name, err)
	}
	q, err = openQueue(b, name)
	if err != nil {
		return nil, false, err
	}
	b.queues[name] = q
	return q, true, nil
}

// Queue returns the named queue, or ErrQueueNotFound.
func (b *Broker) Queue(name string) (*Queue, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	q := b.queues[name]
	if q == nil {
		if !ValidName(name) {
			return nil, checkName(name)
		}
		return nil, fmt.Errorf("%w: %q (create it first)", ErrQueueNotFound, name)
	}
	return q, nil
}

// Delete removes the queue and all its data from disk.
func (b *Broker) Delete(name string) error {
	b.mu.Lock()
	q := b.queues[name]
	if q == nil {
		b.mu.Unlock()
		if !ValidName(name) {
			return checkName(name)
		}
		return fmt.Errorf("%w: %q", ErrQueueNotFound, name)
	}
	delete(b.queues, name)
	b.mu.Unlock()
	closeErr := q.close(false)
	if err := os.RemoveAll(q.dir); err != nil {
		return errors.Join(closeErr, fmt.Errorf("delete queue %s: %w", name, err))
	}
	if err := log.OS.SyncDir(b.queuesDir()); err != nil {
		return fmt.Errorf("delete queue %s: %w", name, err)
	}
	return nil
}

// List returns every queue's Info, sorted by name.
func (b *Broker) List() []Info {
	b.mu.RLock()
	qs := make([]*Queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	b.mu.RUnlock()
	infos := make([]Info, 0, len(qs))
	for _, q := range qs {
		if info, err := q.Info(); err == nil {
			infos = append(infos, info)
		}
	}
	slices.SortFunc(infos, func(a, b Info) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return infos
}

// Close stops background work, snapshots and closes every queue.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrClosed
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return errors.Join(b.closeQueues(), b.unlock())
}

func (b *Broker) closeQueues() error {
	var errs []error
	for _, q := range b.queues {
		errs = append(errs, q.close(true))
	}
	return errors.Join(errs...)
}

func (b *Broker) snapshotQueues() []*Queue {
	b.mu.RLock()
	defer b.mu.RUnlock()
	qs := make([]*Queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	return qs
}

// maintain is the broker's one background goroutine.
func (b *Broker) maintain() {
	defer close(b.done)
	interval := b.opts.MaintenanceInterval
	if b.opts.Sync == log.SyncInterval {
		interval = min(interval, b.opts.SyncInterval)
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastCompact time.Time
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			compact := now.Sub(lastCompact) >= b.opts.CompactEvery
			if compact {
				lastCompact = now
			}
			b.runMaintenance(compact)
		}
	}
}

// Maintain runs one pass of background work now: expiries, dead-letter
// moves, retention, state-log flush, snapshots and compaction. The
// background goroutine calls it every MaintenanceInterval; tests with it
// disabled call it directly.
func (b *Broker) Maintain() error {
	return b.runMaintenance(true)
}

func (b *Broker) runMaintenance(compact bool) error {
	b.maintMu.Lock() // one run at a time: Maintain may race the goroutine
	defer b.maintMu.Unlock()
	var errs []error
	for _, q := range b.snapshotQueues() {
		if err := q.maintain(compact); err != nil && !errors.Is(err, ErrQueueNotFound) {
			b.opts.Logger.Error("queue: maintenance failed", "queue", q.name, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
