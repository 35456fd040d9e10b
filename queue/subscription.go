package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// A subscription is a Queue whose messages are its topic's log: the same
// table, state log, snapshots, leases, timers, receipts, dead letters and
// commit path as a queue, with the table as a window over the topic. Ids
// up to the table's read position (index.Table.ReadUpTo) are in the
// table; ids past it, up to what the topic has published, are unread:
// ready, in id order, costing nothing. Receive reads unread records into
// the table as it goes (a few hundred at a time, read ahead outside the
// lock), and no event records the read itself: replay reads the same
// records again when an event names an id past the read position
// (replaySubscription), so the events alone rebuild the window.

// Subscription is one named reader of a topic, with the semantics of a
// queue (see the package doc). Its methods are safe for concurrent use.
type Subscription struct {
	q *Queue
}

// subscription is what a Queue that is a subscription keeps besides a
// queue's state.
type subscription struct {
	topic *Topic
	name  string
	start uint64 // the id it was created at: its table when there is no snapshot

	// Records read ahead from the topic (under q.mu): ids from aheadFrom,
	// the table's next unread id, up to aheadTo, of which ahead holds
	// those the log has (a missing id was lost to damage or retention).
	ahead              []unreadRecord
	aheadFrom, aheadTo uint64
	// hint, the frame of record hintID, is where the next read-ahead
	// starts looking (under q.readMu).
	hint   log.Position
	hintID uint64
}

// dropAhead forgets what was read ahead (a seek or skip moved the read
// position; or it is used up). The caller holds mu.
func (s *subscription) dropAhead() {
	s.ahead, s.aheadFrom, s.aheadTo = nil, 0, 0
}

// unreadRecord is what the table needs of a record to read it in.
type unreadRecord struct {
	id      uint64
	offset  uint32
	readyAt int64
}

// A read-ahead takes at least readAheadRecords records, then the rest of
// the frame it is in (a batch publish is one frame, and decoding it again
// for its next records cost more than the records), but never more than
// maxReadAhead: its buffer is 24 bytes a record.
const (
	readAheadRecords = 256
	maxReadAhead     = 4096
)

// SubscriptionInfo describes a subscription.
type SubscriptionInfo struct {
	Topic, Name string
	Config      SubscriptionConfig
	// Counts are its messages by state; unread messages count as ready
	// (one published with a delay counts as ready until it is read).
	Counts Counts
	// Lag is its backlog: ready, delayed and leased, everything published
	// since its offset that it has not finished.
	Lag int
	// Skipped is how many of its messages retention removed before it
	// finished them.
	Skipped uint64
	// Next is the id of the next message it reads from the topic.
	Next  uint64
	Stats Stats
	// Err, in TopicInfo, is why a subscription did not open
	// (ErrQueueDamaged); the other fields but its names are then zero.
	Err error
}

// Name returns the subscription's name.
func (s *Subscription) Name() string { return s.q.sub.name }

// Topic returns the name of the subscription's topic.
func (s *Subscription) Topic() string { return s.q.sub.topic.name }

// Config returns the subscription's configuration.
func (s *Subscription) Config() SubscriptionConfig { return s.q.Config().subscriptionConfig() }

// Receive leases up to o.Max messages, as Queue.Receive does.
func (s *Subscription) Receive(ctx context.Context, o ReceiveOptions) ([]Message, error) {
	return s.q.Receive(ctx, o)
}

// ReceiveEach is Queue.ReceiveEach.
func (s *Subscription) ReceiveEach(ctx context.Context, o ReceiveOptions, fn func(Message) error) (int, error) {
	return s.q.ReceiveEach(ctx, o, fn)
}

// NotifyReady calls fn when a message may be ready, as
// Queue.NotifyReady does.
func (s *Subscription) NotifyReady(fn func()) (stop func() bool, err error) {
	return s.q.NotifyReady(fn)
}

// Ack finishes leased messages, as Queue.Ack does.
func (s *Subscription) Ack(receipts []Receipt) ([]error, error) { return s.q.Ack(receipts) }

// Nack returns leased messages, as Queue.Nack does. A message nacked to
// the back goes after every message published before the nack, read or
// not.
func (s *Subscription) Nack(receipts []Receipt, o NackOptions) ([]error, error) {
	return s.q.Nack(receipts, o)
}

// Extend moves leases' deadlines, as Queue.Extend does.
func (s *Subscription) Extend(receipts []Receipt, visibility time.Duration) ([]error, error) {
	return s.q.Extend(receipts, visibility)
}

// Fail sends leased messages dead, as Queue.Fail does.
func (s *Subscription) Fail(receipts []Receipt) ([]error, error) { return s.q.Fail(receipts) }

// Peek returns up to limit messages with id > after that are ready
// (unread ones included), delayed or leased, without leasing them.
func (s *Subscription) Peek(after uint64, limit int) ([]Message, error) {
	return s.q.Peek(after, limit)
}

// PeekEach is Queue.PeekEach.
func (s *Subscription) PeekEach(after uint64, limit int, fn func(Message) error) error {
	return s.q.PeekEach(after, limit, fn)
}

// Dead returns up to limit dead messages with id > after.
func (s *Subscription) Dead(after uint64, limit int) ([]Message, error) {
	return s.q.Dead(after, limit)
}

// DeadEach is Queue.DeadEach.
func (s *Subscription) DeadEach(after uint64, limit int, fn func(Message) error) error {
	return s.q.DeadEach(after, limit, fn)
}

// Redrive returns up to limit dead messages (all if limit ≤ 0) to ready.
func (s *Subscription) Redrive(limit int) (int, error) { return s.q.Redrive(limit) }

// Update changes the subscription's configuration. Its start is not a
// setting: Seek moves it.
func (s *Subscription) Update(u SubscriptionUpdate) error {
	q := s.q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.goneError()
	}
	cur := q.cfg.subscriptionConfig()
	cfg, err := cur.apply(u, q.name)
	if err != nil || cfg == cur {
		return err
	}
	if err := writeConfigFile(q.b.opts.FS, filepath.Join(q.dir, subscriptionFileName), subscriptionFile{Config: cfg, StartID: q.sub.start}); err != nil {
		return err
	}
	q.cfg = cfg.queueConfig()
	return nil
}

// Seek moves the subscription to p and returns the id it moved to:
// messages before it count as done, those from it on are delivered again
// (or for the first time), in id order. Every lease held across the seek
// becomes a stale receipt; attempts keep counting (no receipt is reused),
// and what counts against max attempts starts again, as after a redrive.
// It returns once the seek is durable (under Sync=always).
func (s *Subscription) Seek(p Position) (uint64, error) {
	id, err := s.q.sub.topic.resolve(p)
	if err != nil {
		return 0, err
	}
	return id, s.seekTo(id)
}

func (s *Subscription) seekTo(id uint64) error {
	q := s.q.live()
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.applyLocked(index.Event{Type: index.EvSeek, ID: id}, 0) // a seek cannot fail
	q.sub.dropAhead()
	q.notifyLocked(q.waiters.Len()) // what is unread now may be theirs
	seq := q.seq
	q.mu.Unlock()
	return q.commit(seq, true)
}

// Info returns the subscription's config and counts.
func (s *Subscription) Info() (SubscriptionInfo, error) {
	q := s.q.live()
	if err := q.lockOpen(); err != nil {
		return SubscriptionInfo{}, err
	}
	defer q.mu.Unlock()
	q.processDueLocked(q.now())
	c := countsOf(q.t)
	next := q.t.ReadUpTo() + 1
	if published := q.publishedNow(); published >= next {
		c.Ready += int(published - next + 1)
		c.Total += int(published - next + 1)
	}
	return SubscriptionInfo{
		Topic: q.sub.topic.name, Name: q.sub.name,
		Config:  q.cfg.subscriptionConfig(),
		Counts:  c,
		Lag:     c.Ready + c.Delayed + c.Leased,
		Skipped: q.t.Skipped(),
		Next:    next,
		Stats:   q.statsNow(),
	}, nil
}

// publishedNow returns, for a subscription, the topic's newest published
// id; 0 for a queue.
func (q *Queue) publishedNow() uint64 {
	if q.sub == nil {
		return 0
	}
	return q.sub.topic.published.Load()
}

// newestLocked is the id a message nacked to the back now goes after: the
// newest in the queue, or for a subscription the newest published (read
// or not). The caller holds mu.
func (q *Queue) newestLocked() uint64 {
	if q.sub != nil {
		return max(q.sub.topic.published.Load(), q.t.MaxID())
	}
	return q.t.MaxID()
}

// nextReadyLocked returns the message Receive should lease next. A
// subscription reads unread records into its table from what was read
// ahead; when that runs out with unread messages left, readMore says so
// (the caller reads ahead without mu and looks again). The caller holds
// mu.
func (q *Queue) nextReadyLocked(now int64, published uint64) (id uint64, ok, readMore bool) {
	if q.ordered != nil {
		id, ok = q.nextOrderedLocked()
		return id, ok, false
	}
	if q.sub == nil {
		id, ok = q.t.NextReady()
		return id, ok, false
	}
	for {
		next := q.t.ReadUpTo() + 1
		if id, ok := q.t.NextReadyBefore(next); ok {
			return id, true, false
		}
		if next > published {
			id, ok = q.t.NextReady() // nacked to the back, after everything published
			return id, ok, false
		}
		if !q.readNextLocked(now) {
			return 0, false, true
		}
	}
}

// readyLeftLocked says whether a receive now would find a message. The
// caller holds mu.
func (q *Queue) readyLeftLocked(published uint64) bool {
	if q.ordered != nil {
		return q.anyOrderedLocked()
	}
	if _, ok := q.t.NextReady(); ok {
		return true
	}
	return q.sub != nil && published > q.t.ReadUpTo()
}

// readNextLocked reads the next unread record into the table from what
// was read ahead, and reports false if there is none to read in. The
// caller holds mu.
func (q *Queue) readNextLocked(now int64) bool {
	s := q.sub
	next := q.t.ReadUpTo() + 1
	if s.aheadFrom != next || s.aheadTo < next {
		s.dropAhead() // used up, or from before a seek or skip
		return false
	}
	if len(s.ahead) == 0 {
		q.t.SealHoles(s.aheadTo) // ids the log does not have
		s.aheadFrom = s.aheadTo + 1
		return true
	}
	r := s.ahead[0]
	s.ahead = s.ahead[1:]
	if r.id > next {
		q.t.SealHoles(r.id - 1)
	}
	q.t.Insert(r.id, r.offset, r.readyAt, now)
	s.aheadFrom = r.id + 1
	return true
}

// readAheadUnlocked is readAhead for a caller holding mu: it lets go of
// mu while it reads, and holds it again when it returns.
func (q *Queue) readAheadUnlocked(published uint64) error {
	q.mu.Unlock()
	defer q.mu.Lock()
	return q.readAhead(published)
}

// readAhead reads the next unread records of a subscription, up to
// published, for readNextLocked, without mu. It reads through the cursor
// receives read bodies through (under readMu): the frame it decodes is
// the one the bodies of what it reads in come from next.
func (q *Queue) readAhead(published uint64) error {
	s := q.sub
	q.readMu.Lock()
	defer q.readMu.Unlock()
	q.mu.Lock()
	from := q.t.ReadUpTo() + 1
	q.mu.Unlock()
	if from > published {
		return nil
	}
	hint := log.Position{}
	if s.hintID != 0 && s.hintID <= from {
		hint = s.hint
	}
	recs := make([]unreadRecord, 0, min(published-from+1, maxReadAhead))
	covered := published
	for id := from; id <= published; id++ {
		if len(recs) >= maxReadAhead {
			covered = id - 1
			break
		}
		if _, _, last, ok := q.cursor.Frame(); len(recs) >= readAheadRecords && (!ok || id > last) {
			covered = id - 1 // enough, and the next frame: read on from it next time
			break
		}
		rec, err := q.cursor.ReadAt(id, hint)
		if errors.Is(err, log.ErrNotFound) || errors.Is(err, log.ErrCorrupt) {
			// Ids the log does not have (damage it reported at open).
			if len(recs) > 0 {
				covered = id - 1 // the next read-ahead starts at the gap
				break
			}
			if covered, err = q.nextRecordAfterGap(id, published); err != nil {
				return err
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%s: read the topic: %w", q.name, err)
		}
		hint, _, _, _ = q.cursor.Frame()
		s.hint, s.hintID = hint, id
		// Unreadable metadata: ready at once; it goes dead when received,
		// as damaged messages do.
		meta, _ := DecodeMeta(rec.Meta)
		recs = append(recs, unreadRecord{id: id, offset: uint32(hint.Offset), readyAt: meta.ReadyAt})
	}
	q.mu.Lock()
	if q.t.ReadUpTo()+1 == from { // no seek or skip meanwhile
		s.ahead, s.aheadFrom, s.aheadTo = recs, from, covered
	}
	q.mu.Unlock()
	return nil
}

// nextRecordAfterGap returns the id before the first record from id on
// (up to published) that the log has: every id from id to it is missing.
func (q *Queue) nextRecordAfterGap(id, published uint64) (uint64, error) {
	it := q.log.Iter(id)
	for {
		if it.Next() {
			return min(it.Record().ID-1, published), nil
		}
		if err := it.Err(); err == nil {
			return published, nil
		} else if !errors.Is(err, log.ErrCorrupt) {
			return 0, fmt.Errorf("%s: read the topic: %w", q.name, err)
		}
	}
}

// statsNow returns the queue's running totals.
func (q *Queue) statsNow() Stats {
	return Stats{
		Enqueued: q.stats.enqueued.Load(), Acked: q.stats.acked.Load(), Nacked: q.stats.nacked.Load(),
		Expired: q.stats.expired.Load(), Dead: q.stats.dead.Load(), DeadLettered: q.stats.deadLettered.Load(),
		Removed: q.stats.removed.Load(),
	}
}

// openSubscription opens subscription name of topic t: its config, state
// log and snapshot, over the topic's log.
func openSubscription(t *Topic, name string) (*Queue, error) {
	sdir := filepath.Join(t.dir, subscriptionsDirName, name)
	full := t.name + "/" + name
	data, err := os.ReadFile(filepath.Join(sdir, subscriptionFileName))
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", full, err)
	}
	var f subscriptionFile
	if err := DecodeConfigFile(data, &f); err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", full, err)
	}
	q := &Queue{b: t.b, name: full, dir: sdir, cfg: f.Config.queueConfig(), log: t.log,
		sub: &subscription{topic: t, name: name, start: max(f.StartID, 1)}}
	q.cursor = t.log.NewCursor()
	state, repair, err := q.openStateLog()
	if err != nil {
		return nil, fmt.Errorf("open subscription %s: %w", full, err)
	}
	q.state = state
	if repair != nil {
		q.repairs++
		t.b.opts.Logger.Warn("queue: cut torn tail off the state log (an unacknowledged write)", "subscription", full, "path", repair.Path, "offset", repair.Offset, "bytes", repair.Truncated)
	}
	if err := q.replaySubscription(); err != nil {
		q.state.Close()
		return nil, fmt.Errorf("open subscription %s: %w", full, err)
	}
	q.mu.Lock()
	q.armTimerLocked()
	q.mu.Unlock()
	return q, nil
}

// replaySubscription rebuilds a subscription's table: its snapshot (or
// its start), then the state log after it (replaySubscriptionTable). Then
// it reconciles the table with the topic: ids retention removed are
// skipped, and a read position past the topic's end (a publish lost with
// Sync=none or interval) is pulled back.
func (q *Queue) replaySubscription() error {
	lg := q.b.opts.Logger.With("subscription", q.name)
	snap, _, err := q.loadSnapshot()
	if err != nil {
		return err
	}
	q.t, q.snapIndex = snap.Table, snap.StateIndex
	skipped, err := replaySubscriptionTable(q.t, q.snapIndex, q.sub.start, subSource{
		records: &logRecords{log: q.log, now: q.now()},
		events:  q.replayStateLog(lg),
	})
	if err != nil {
		return err
	}
	if skipped > 0 {
		q.repairs++
		lg.Warn("queue: state events about messages the topic no longer holds were skipped", "count", skipped)
	}
	q.written = 0
	q.synced.Store(0)
	if last := q.log.LastID(); q.t.MaxID() > last { // read, not just seeked past the end
		q.repairs++
		lg.Warn("queue: the subscription had read past the topic's end (publishes lost in a crash with a relaxed sync policy); it reads on from the end", "read", q.t.MaxID(), "tail", last)
		q.applyLocked(index.Event{Type: index.EvSeek, ID: last + 1}, 0)
	}
	q.skipRemovedLocked(q.sub.topic.firstID())
	return nil
}

// subSource is where a subscription's durable state comes from besides
// its snapshot: opening it reads the topic's open log and its state log,
// Check read-only walks of the files.
type subSource struct {
	records recordSource
	// events calls apply for every state-log entry after index after.
	events func(after uint64, apply func([]index.Event)) error
}

// recordSource reads a topic's records into a subscription's table.
type recordSource interface {
	// readInto inserts the records after t's read position up to upTo,
	// in id order, and seals the ids among them the log does not have
	// (lost to damage or retention, as they were when read live).
	readInto(t *index.Table, upTo uint64) error
}

// replaySubscriptionTable brings t, loaded from the snapshot at state
// index snapIndex (or, at 0, empty: it starts at start), up to date with
// the state events after it. No event records a read: where one names an
// id past the read position, the records up to it are read in first, as
// they were live. It returns how many events no longer applied.
func replaySubscriptionTable(t *index.Table, snapIndex, start uint64, src subSource) (skipped int, err error) {
	if snapIndex == 0 {
		t.Seek(start)
	}
	var readErr error
	err = src.events(snapIndex, func(events []index.Event) {
		for _, ev := range events {
			if readErr != nil {
				return
			}
			if ev.Type != index.EvSeek && ev.Type != index.EvSkip && ev.Type != index.EvPurge && ev.ID > t.ReadUpTo() {
				if readErr = src.records.readInto(t, ev.ID); readErr != nil {
					return
				}
			}
			// A delayed record read in after its delay ran out is ready
			// already: its EvReady finds nothing to do.
			if t.Apply(ev, 0) != nil && ev.Type != index.EvReady {
				skipped++
			}
		}
	})
	return skipped, errors.Join(err, readErr)
}

// skipRemovedLocked skips every id below first that the subscription has
// not finished: retention removed them. The caller holds mu (or is
// opening q).
func (q *Queue) skipRemovedLocked(first uint64) {
	if unfinishedBelow(q.t, first) {
		q.applyLocked(index.Event{Type: index.EvSkip, ID: first - 1}, 0) // a skip cannot fail
	}
}

// unfinishedBelow reports whether a subscription's table t has a message
// below id first that it has not finished, read or not.
func unfinishedBelow(t *index.Table, first uint64) bool {
	if first <= 1 {
		return false
	}
	pending := t.ReadUpTo() < first-1
	t.Scan(0, index.StateNone, func(id uint64, _ index.Entry) bool {
		pending = pending || id < first
		return false
	})
	return pending
}

// logRecords reads records from an open topic log, in id order, with one
// iterator while the ids go forward.
type logRecords struct {
	log  *log.Log
	now  int64 // a record read in is delayed if its delay runs past now
	it   *log.Iterator
	next uint64 // the id it reads next
	// pos is the frame of record posID, where a new iterator starts
	pos   log.Position
	posID uint64
}

func (r *logRecords) readInto(t *index.Table, upTo uint64) error {
	from := t.ReadUpTo() + 1
	if r.it == nil || r.next != from {
		hint := log.Position{}
		if r.posID != 0 && r.posID <= from {
			hint = r.pos
		}
		r.it = r.log.IterAt(from, hint)
	}
	for {
		for r.it.Next() {
			rec := r.it.Record()
			if rec.ID > upTo {
				r.it = nil // read one too many: the next call starts anew
				t.SealHoles(upTo)
				return nil
			}
			meta, _ := DecodeMeta(rec.Meta)
			t.Insert(rec.ID, uint32(r.it.Position().Offset), meta.ReadyAt, r.now)
			r.next, r.pos, r.posID = rec.ID+1, r.it.Position(), rec.ID
			if rec.ID == upTo {
				t.SealHoles(upTo)
				return nil
			}
		}
		err := r.it.Err()
		if err == nil {
			r.it = nil // the log's end: a later read starts afresh
			t.SealHoles(min(upTo, r.log.LastID()))
			return nil
		}
		if !errors.Is(err, log.ErrCorrupt) {
			return fmt.Errorf("read the topic: %w", err)
		}
	}
}

// recordList is a topic's records as Check collects them, by id.
type recordList struct {
	recs   []unreadRecord
	lastID uint64
	now    int64
}

func (l *recordList) readInto(t *index.Table, upTo uint64) error {
	from := t.ReadUpTo() + 1
	i, _ := slices.BinarySearchFunc(l.recs, from, func(r unreadRecord, id uint64) int { return cmp.Compare(r.id, id) })
	for ; i < len(l.recs) && l.recs[i].id <= upTo; i++ {
		t.Insert(l.recs[i].id, l.recs[i].offset, l.recs[i].readyAt, l.now)
	}
	t.SealHoles(min(upTo, l.lastID))
	return nil
}
