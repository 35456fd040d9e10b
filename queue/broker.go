package queue

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spoolq/spool/log"
)

// Broker owns the queues of one data directory. Its methods are safe for
// concurrent use.
type Broker struct {
	dir  string
	opts Options

	mu     sync.RWMutex
	queues map[string]*Queue
	// failed holds the queues whose directories exist but did not open;
	// they answer ErrQueueDamaged while the rest serve.
	failed map[string]*failedQueue
	// topics and failedTopics are the topics, and those whose directories
	// did not open (why), as for queues.
	topics       map[string]*Topic
	failedTopics map[string]error
	closed       bool

	maintMu     sync.Mutex
	maintQueues []*Queue // runMaintenance's list, under maintMu
	// backups is held (read) by every Backup while it streams, so Close,
	// whose snapshots would replace files a backup reads, waits for it;
	// backingUp counts them, and while it is not 0 maintenance leaves the
	// files alone (no snapshot, compaction or segment removal).
	backups   sync.RWMutex
	backingUp atomic.Int32
	// serialHigh is the highest serial given out or deleted since Open,
	// under mu, so a deleted queue's number is not given again while the
	// broker runs (an SQS receipt handle names its queue by it).
	serialHigh uint32
	stop       chan struct{}
	done       chan struct{}
	unlock     func() error // releases the data directory's lock
}

// failedQueue is a queue directory that did not open, and why.
type failedQueue struct {
	err error
	// foreign: no queue.json, so spool did not make it. It is never
	// retried, and never deleted: its files are someone else's.
	foreign bool
}

func (f *failedQueue) error(name string) error {
	if f.foreign {
		return fmt.Errorf("%w: %q: queues/%s has no queue.json, so spool did not create it; move it out of the data directory", ErrQueueDamaged, name, name)
	}
	return fmt.Errorf("%w: %q: %s", ErrQueueDamaged, name, openFailureReason(f.err))
}

// openFailureReason says in a line, without paths, why a queue did not
// open: what an API client may be shown.
func openFailureReason(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE):
		return "too many open files (raise the file limit, ulimit -n); the server retries it"
	case errors.Is(err, errConfigFile):
		return "its queue.json is damaged (spool check says more)"
	}
	return "its files did not open (the server log and spool check say why); the server retries it"
}

// Open opens the broker in dir, opening every queue found. A missing or
// empty dir becomes a data directory; one that holds anything spool did
// not create is ErrNotDataDir. A queue that does not open is reported
// (logged, and by List and ErrQueueDamaged) while the others serve.
func Open(dir string, opts Options) (*Broker, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	kind, err := inspectDataDir(dir)
	if err != nil {
		return nil, err
	}
	b := &Broker{dir: dir, opts: opts, queues: map[string]*Queue{}, failed: map[string]*failedQueue{},
		topics: map[string]*Topic{}, failedTopics: map[string]error{}, stop: make(chan struct{}), done: make(chan struct{})}
	root := b.queuesDir()
	if err := log.MkdirDurable(opts.FS, root); err != nil {
		return nil, fmt.Errorf("open data directory: %w", err)
	}
	if b.unlock, err = lockDir(filepath.Join(dir, lockName)); err != nil {
		return nil, err
	}
	opened := false
	defer func() {
		if !opened {
			b.unlock()
		}
	}()
	if kind != dataDirMarked {
		if err := b.markDataDir(); err != nil {
			return nil, err
		}
	}
	names, err := b.namedDirs(root, "queue", opts.Logger)
	if err != nil {
		return nil, fmt.Errorf("open data directory: %w", err)
	}
	var toOpen []string
	for _, name := range names {
		path := filepath.Join(root, name)
		if _, err := os.Stat(filepath.Join(path, queueFileName)); errors.Is(err, fs.ErrNotExist) {
			b.failed[name] = &failedQueue{foreign: true}
			opts.Logger.Error("queue: directory has no queue.json; spool did not create it and leaves it alone", "path", path)
			continue
		}
		toOpen = append(toOpen, name)
	}
	// A few at a time: with thousands of queues, opening them one by one
	// was most of the start-up time.
	var mu sync.Mutex
	eachParallel(len(toOpen), func(i int) {
		q, err := openQueue(b, toOpen[i])
		mu.Lock()
		defer mu.Unlock()
		b.recordOpen(toOpen[i], q, err)
	})
	if err := b.openTopics(); err != nil {
		return nil, err
	}
	b.logOpened(time.Since(start))
	if opts.MaintenanceInterval > 0 {
		go b.maintain()
	} else {
		close(b.done)
	}
	opened = true
	return b, nil
}

// logOpened writes Open's one summary line: what was loaded, how long it
// took, and how many problems recovery found (each was logged above it).
func (b *Broker) logOpened(took time.Duration) {
	var c Counts
	repairs := 0
	for _, q := range b.queues {
		q.mu.Lock() // its timer may be firing already
		c = c.plus(countsOf(q.t))
		repairs += q.repairs
		q.mu.Unlock()
	}
	subs := 0
	for _, t := range b.topics {
		for _, s := range t.subs {
			q := s.q
			q.mu.Lock()
			c = c.plus(countsOf(q.t))
			repairs += q.repairs
			q.mu.Unlock()
			subs++
		}
		repairs += t.repairs
	}
	b.opts.Logger.Info("queue: data directory opened", "dir", b.dir, "queues", len(b.queues), "topics", len(b.topics), "subscriptions", subs,
		"unavailable", len(b.failed)+len(b.failedTopics),
		"messages", c.Total, "ready", c.Ready, "delayed", c.Delayed, "leased", c.Leased, "dead", c.Dead,
		"repairs", repairs, "took", took.Round(time.Millisecond))
}

// openOrRecord opens the named queue into b.queues, or records in
// b.failed why it did not open. The caller holds mu (or is Open).
func (b *Broker) openOrRecord(name string) bool {
	q, err := openQueue(b, name)
	return b.recordOpen(name, q, err)
}

// recordOpen records the outcome of opening the named queue, as
// openOrRecord does.
func (b *Broker) recordOpen(name string, q *Queue, err error) bool {
	if err != nil {
		b.failed[name] = &failedQueue{err: err}
		b.opts.Logger.Error("queue: cannot open; it answers 503 until it does, the other queues serve on", "queue", name, "err", err)
		return false
	}
	delete(b.failed, name)
	b.queues[name] = q
	return true
}

// retryFailed tries again to open the queues that failed for a reason
// that may pass (too many open files, a read error), as maintenance does
// every retryFailedEvery.
func (b *Broker) retryFailed() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	for name, f := range b.failed {
		if f.foreign || errors.Is(f.err, errConfigFile) {
			continue
		}
		if b.openOrRecord(name) {
			b.opts.Logger.Info("queue: opened after an earlier failure", "queue", name)
		}
	}
}

func (b *Broker) queuesDir() string { return filepath.Join(b.dir, queuesName) }

// Create creates the queue with the given settings over DefaultConfig, or,
// if it exists, applies the settings to it. created says which happened.
// A create that fails leaves nothing behind.
func (b *Broker) Create(name string, u ConfigUpdate) (q *Queue, created bool, err error) {
	return b.CreateLabeled(name, "", u)
}

// MaxLabelBytes bounds a queue's label.
const MaxLabelBytes = 255

// CreateLabeled is Create that gives a queue it creates a label: a
// protocol's own name for it, which may be outside the queue-name rule
// (a beanstalkd tube named "a/b" is a queue with a name made from it,
// labelled "a/b"). The label is kept in queue.json and never changes; an
// existing queue keeps its own.
func (b *Broker) CreateLabeled(name, label string, u ConfigUpdate) (q *Queue, created bool, err error) {
	return b.create(name, newQueue{label: label, u: u})
}

// CreateNew creates the queue name with config u and what o gives, all
// in its first queue.json, or fails with ErrQueueExists, changing
// nothing, when the queue exists. It is for a protocol whose create must
// never alter an existing queue: SQS's CreateQueue answers for an
// existing queue only if it matches what was asked, and Create's update
// would race with a check made before it.
func (b *Broker) CreateNew(name string, u ConfigUpdate, o CreateOptions) (*Queue, error) {
	q, _, err := b.create(name, newQueue{u: u, attrs: o.Attributes, ordered: o.Ordered, only: true})
	return q, err
}

// CreateOptions are what CreateNew gives a queue beside its config.
type CreateOptions struct {
	// Attributes are the queue's first attributes (Queue.SetAttributes).
	Attributes map[string]string
	// Ordered makes an ordered queue (ordered.go): messages received in
	// order within their groups, one lease of a group at a time, and
	// enqueues deduplicated by DedupID. It is fixed at creation.
	Ordered bool
}

// newQueue is what create makes a queue from.
type newQueue struct {
	label   string
	u       ConfigUpdate
	attrs   map[string]string
	ordered bool
	only    bool // fail with ErrQueueExists rather than update an existing queue
}

// create is the work of Create, CreateLabeled and CreateNew.
func (b *Broker) create(name string, nq newQueue) (q *Queue, created bool, err error) {
	if err := checkName(name); err != nil {
		return nil, false, err
	}
	if len(nq.label) > MaxLabelBytes {
		return nil, false, fmt.Errorf("%w: a label of %d bytes, at most %d", ErrInvalid, len(nq.label), MaxLabelBytes)
	}
	if len(nq.attrs) == 0 {
		nq.attrs = nil
	}
	if err := checkQueueAttributes(nq.attrs); err != nil {
		return nil, false, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	q, created, err = b.createLocked(name, nq)
	switch {
	case err != nil:
		return q, created, err
	case created:
		b.opts.Logger.Info("queue: created", "queue", name)
	}
	b.warnMissingDeadLetterQueueLocked(q)
	return q, created, nil
}

// warnMissingDeadLetterQueueLocked logs when q's dead-letter queue does
// not exist: its dead messages stay where they are until it does. The
// caller holds b.mu.
func (b *Broker) warnMissingDeadLetterQueueLocked(q *Queue) {
	if dlq := q.Config().DeadLetterQueue; dlq != "" && b.queues[dlq] == nil {
		b.opts.Logger.Warn("queue: its dead-letter queue does not exist (yet): dead messages stay in this queue until it is created",
			"queue", q.name, "dead_letter_queue", dlq)
	}
}

// createLocked is create's work; the caller holds b.mu.
func (b *Broker) createLocked(name string, nq newQueue) (q *Queue, created bool, err error) {
	if b.closed {
		return nil, false, ErrClosed
	}
	if q := b.queues[name]; q != nil {
		if nq.only {
			return q, false, fmt.Errorf("%w: %q", ErrQueueExists, name)
		}
		return q, false, q.Change(Change{Config: nq.u})
	}
	if f := b.failed[name]; f != nil {
		return nil, false, f.error(name)
	}
	cfg, err := DefaultConfig.apply(nq.u, name)
	if err != nil {
		return nil, false, err
	}
	root := b.queuesDir()
	qdir, err := b.createDir(root, name, queueFileName, queueFile{Config: cfg, Serial: b.nextSerialLocked(), Label: nq.label, Attributes: nq.attrs, Ordered: nq.ordered})
	if err != nil {
		return nil, false, fmt.Errorf("create queue %s: %w", name, err)
	}
	q, err = openQueue(b, name)
	if err != nil {
		return nil, false, errors.Join(err, b.removeQueueDir(root, qdir, name))
	}
	b.queues[name] = q
	return q, true, nil
}

// createDir makes the directory root/name holding the config file
// fileName (cfg) and returns its path. It is staged under a name no
// queue, topic or subscription can have, then renamed into place and the
// rename fsynced: a crash before the rename leaves only a .creating-
// directory, which the next start removes. A failure leaves nothing.
func (b *Broker) createDir(root, name, fileName string, cfg any) (string, error) {
	dir := filepath.Join(root, name)
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		// Appeared since Open (someone else's): never write into it.
		return "", fmt.Errorf("%s is in the way: %w", dir, cmp.Or(err, fs.ErrExist))
	}
	staged := transientDir(root, creatingPrefix, name)
	if err := b.opts.FS.MkdirAll(staged, 0o755); err != nil {
		return "", err
	}
	if err := writeConfigFile(b.opts.FS, filepath.Join(staged, fileName), cfg); err != nil {
		return "", errors.Join(err, b.opts.FS.RemoveAll(staged))
	}
	if err := b.opts.FS.Rename(staged, dir); err != nil {
		return "", errors.Join(err, b.opts.FS.RemoveAll(staged))
	}
	if err := b.opts.FS.SyncDir(root); err != nil {
		return "", errors.Join(err, b.removeQueueDir(root, dir, name))
	}
	return dir, nil
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
		if f := b.failed[name]; f != nil {
			return nil, f.error(name)
		}
		if !ValidName(name) {
			return nil, checkName(name)
		}
		return nil, fmt.Errorf("%w: %q (create it first)", ErrQueueNotFound, name)
	}
	return q, nil
}

// Delete removes the queue and all its data from disk. A queue that did
// not open can be deleted too, unless spool did not create its directory.
func (b *Broker) Delete(name string) error {
	b.mu.Lock()
	q := b.queues[name]
	if q == nil {
		defer b.mu.Unlock()
		switch f := b.failed[name]; {
		case f != nil && f.foreign:
			return f.error(name)
		case f != nil:
			delete(b.failed, name)
			return b.removeQueueDir(b.queuesDir(), filepath.Join(b.queuesDir(), name), name)
		case !ValidName(name):
			return checkName(name)
		}
		return fmt.Errorf("%w: %q", ErrQueueNotFound, name)
	}
	delete(b.queues, name)
	b.serialHigh = max(b.serialHigh, q.serial.Load())
	b.mu.Unlock()
	if err := errors.Join(q.close(false), b.removeQueueDir(b.queuesDir(), q.dir, name)); err != nil {
		return err
	}
	b.opts.Logger.Info("queue: deleted", "queue", name)
	return nil
}

// List returns every queue's Info, sorted by name; a queue that did not
// open is listed with only its Name and Err.
func (b *Broker) List() []Info {
	b.mu.RLock()
	qs := make([]*Queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	b.mu.RUnlock()
	infos := make([]Info, 0, len(qs)+len(b.failed))
	b.mu.RLock()
	for name, f := range b.failed {
		infos = append(infos, Info{Name: name, Err: f.error(name)})
	}
	b.mu.RUnlock()
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

// MaxOpenFiles is how many files the queues would hold open if every one
// of them were busy at once: every segment of every message log, and every
// state log. Idle queues hold none (see Options.IdleTimeout), so the files
// a process has open after Open say little about what its queues may need
// later: this is the bound to budget file descriptors against.
func (b *Broker) MaxOpenFiles() int {
	n := 0
	for _, q := range b.snapshotQueues() {
		n += len(q.live().log.Segments()) + 1
	}
	for _, t := range b.topicList() {
		n += len(t.log.Segments()) + len(t.subscriptionList())
	}
	return n
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
	b.backups.Lock() // a backup streaming reads files closing replaces
	defer b.backups.Unlock()
	return errors.Join(b.closeQueues(), b.closeTopics(), b.unlock())
}

func (b *Broker) closeQueues() error {
	qs := make([]*Queue, 0, len(b.queues))
	for _, q := range b.queues {
		qs = append(qs, q)
	}
	errs := make([]error, len(qs))
	eachParallel(len(qs), func(i int) { errs[i] = qs[i].close(true) })
	return errors.Join(errs...)
}

func (b *Broker) snapshotQueues() []*Queue { return b.appendQueues(nil) }

// appendQueues appends the open queues to qs.
func (b *Broker) appendQueues(qs []*Queue) []*Queue {
	b.mu.RLock()
	defer b.mu.RUnlock()
	qs = slices.Grow(qs, len(b.queues))
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
	var lastRetry time.Time
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			retry := now.Sub(lastRetry) >= retryFailedEvery
			if retry {
				lastRetry = now
			}
			b.runMaintenance(retry)
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

// retryFailedEvery is how often maintenance tries again to open the
// queues that did not open.
const retryFailedEvery = 30 * time.Second

func (b *Broker) runMaintenance(retryFailed bool) error {
	b.maintMu.Lock() // one run at a time: Maintain may race the goroutine
	defer b.maintMu.Unlock()
	if retryFailed {
		b.retryFailed()
	}
	var errs []error
	// The list is kept between runs (under maintMu): with thousands of
	// queues, a new one every second was most of an idle broker's garbage.
	b.maintQueues = b.appendQueues(b.maintQueues[:0])
	for _, q := range b.maintQueues {
		if err := q.maintain(); err != nil && !errors.Is(err, ErrQueueNotFound) {
			b.opts.Logger.Error("queue: maintenance failed", "queue", q.name, "err", err)
			errs = append(errs, err)
		}
	}
	clear(b.maintQueues) // hold no closed queue until the next run
	for _, t := range b.topicList() {
		if err := t.maintain(); err != nil {
			b.opts.Logger.Error("queue: topic maintenance failed", "topic", t.name, "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// monotonicClock returns a clock that reads start plus elapsed(), the
// monotonic time since start (time.Since uses the monotonic reading). Lease and delay deadlines are kept as wall-clock
// instants (they must mean the same after a restart), but while the
// broker runs they must not jump when NTP steps the wall clock: a step
// forward would expire every lease at once, a step back stretch them all.
// The wall clock is read once, at Open; across a restart it is read anew.
func monotonicClock(start time.Time, elapsed func() time.Duration) func() time.Time {
	start = start.Round(0) // the wall reading alone: what the clock adds to
	return func() time.Time { return start.Add(elapsed()) }
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// Serial returns the queue's number: unique among the broker's queues and
// kept across restarts, so a protocol whose message ids span queues
// (beanstalkd's job ids) can make them from it and the queue's own ids.
// A queue gets its number at creation; one created before numbers
// existed gets the next free one the first time it is asked, written to
// its queue.json. The number of a deleted queue is not given again while
// the broker runs; after a restart the highest one's can be, to a queue
// created later (numbers are kept only in the queues' queue.json).
func (q *Queue) Serial() (uint32, error) {
	q = q.live()
	if err := q.queueOnly("serial"); err != nil {
		return 0, err
	}
	if s := q.serial.Load(); s != 0 {
		return s, nil
	}
	b := q.b
	b.mu.Lock()
	defer b.mu.Unlock()
	q = q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return 0, q.goneError()
	case q.serial.Load() != 0:
		return q.serial.Load(), nil
	}
	serial := b.nextSerialLocked()
	f := q.fileLocked()
	f.Serial = serial
	if err := writeConfig(b.opts.FS, q.dir, f); err != nil {
		return 0, fmt.Errorf("number queue %s: %w", q.name, err)
	}
	q.serial.Store(serial)
	return serial, nil
}

// nextSerialLocked returns the number after the highest a queue holds.
// The caller holds b.mu.
func (b *Broker) nextSerialLocked() uint32 {
	top := b.serialHigh
	for _, q := range b.queues {
		top = max(top, q.serial.Load())
	}
	b.serialHigh = top + 1
	return top + 1
}

// QueueBySerial returns the queue whose Serial is serial, or
// ErrQueueNotFound.
func (b *Broker) QueueBySerial(serial uint32) (*Queue, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return nil, ErrClosed
	}
	for _, q := range b.queues {
		if serial != 0 && q.serial.Load() == serial {
			return q, nil
		}
	}
	return nil, fmt.Errorf("%w: no queue numbered %d", ErrQueueNotFound, serial)
}
