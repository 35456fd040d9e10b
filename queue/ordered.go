package queue

import (
	"cmp"
	"container/heap"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Ordered queues (CreateOptions.Ordered) are what SQS's FIFO queues
// need: each message is in a group (NewMessage.Group), and a group's
// messages are received in id order, the next only once none of the
// group's is leased. Messages of different groups are received oldest
// head first, so many groups are consumed at once. A receive may take
// several messages of one group, in order (as SQS's does); the group is
// then held until all of them are acked, nacked, expired or dead. The
// order ignores priorities. An enqueue may carry a deduplication key
// (NewMessage.DedupID): for DedupWindow after a key's first enqueue,
// another with it is not enqueued again.
//
// All of it is memory built from the table and the log: a group's live
// ids (8 bytes a message), a heap of the groups that may have a message
// to give, the ids whose change can free a group (its leased messages,
// a delayed head), and the keys of the window with their ids. Nothing
// more is written: a restart rebuilds the groups from the live messages'
// records and the window from the records of its last DedupWindow, and
// compaction leaves alone the segments holding those. Most structures are
// lazy: an entry is checked against the table when used, so most state
// changes cost nothing here; those that can free a group (ordering.watch)
// re-check it, and the rare bulk ones (a purge, a redrive) have the
// groups rebuilt on the next receive.

// Limits of ordered queues.
const (
	// DedupWindow is how long an ordered queue remembers a DedupID.
	DedupWindow = 5 * time.Minute
	// MaxDedupEntries bounds the keys an ordered queue remembers at once
	// (about 100 bytes each): past it the oldest are forgotten before
	// their DedupWindow is out, which the log reports. It covers 870
	// deduplicated messages a second.
	MaxDedupEntries = 1 << 18
	// MaxGroupBytes and MaxDedupBytes bound a message's group and key.
	MaxGroupBytes = 128
	MaxDedupBytes = 512
)

// ordering is an ordered queue's group and deduplication state, under
// the queue's mu.
type ordering struct {
	groups map[string]*group
	avail  groupHeap         // groups that may have a message to give, by head id
	watch  map[uint64]*group // leased messages and delayed heads: a change may free their group
	stale  bool              // a bulk change happened: rebuild the groups before the next receive
	turn   uint64            // the receive under way; its own leases do not hold a group
	taking *group            // the group of the id next returned, for leased

	dedup      map[string]*dedupEntry
	dedupOrder []dedupSlot // settled keys in the order they settled, from dedupHead
	dedupHead  int
	forgotten  int // keys dropped early (MaxDedupEntries) since the last log line
}

type group struct {
	name   string
	ids    []uint64 // live ids in order; ids gone since are dropped from the front when seen
	leased []uint64 // ids leased from it that may still be leased
	queued bool     // in avail
	turn   uint64   // the receive that last leased from it
}

// dedupSlot is a key in dedupOrder, with the id it was settled with: a
// key enqueued again once its window was over has a second slot, and the
// first no longer stands for the entry.
type dedupSlot struct {
	key string
	id  uint64
}

type dedupEntry struct {
	id uint64
	at int64 // enqueue time, unix ns
	// done is closed once a pending enqueue of the key settles: a
	// duplicate waits for the id. nil when settled.
	done chan struct{}
}

func newOrdering() *ordering {
	return &ordering{groups: map[string]*group{}, watch: map[uint64]*group{}, dedup: map[string]*dedupEntry{}}
}

type groupItem struct {
	head uint64
	g    *group
}

type groupHeap []groupItem

func (h groupHeap) Len() int           { return len(h) }
func (h groupHeap) Less(i, j int) bool { return h[i].head < h[j].head }
func (h groupHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *groupHeap) Push(x any)        { *h = append(*h, x.(groupItem)) }
func (h *groupHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

func liveState(s index.State) bool {
	return s == index.StateReady || s == index.StateDelayed || s == index.StateLeased
}

// group returns the group name, made if it has no message yet.
func (o *ordering) group(name string) *group {
	g := o.groups[name]
	if g == nil {
		g = &group{name: name}
		o.groups[name] = g
	}
	return g
}

// add puts a freshly inserted message in its group.
func (o *ordering) add(t *index.Table, id uint64, name string) {
	g := o.group(name)
	g.ids = append(g.ids, id)
	if len(g.ids) == 1 {
		o.settle(t, g)
	}
}

// settle brings g up to date with the table: drops its gone ids, and
// puts it in avail if it has a message to give, else watches what holds
// it. It reports whether g went into avail. An empty group is forgotten.
func (o *ordering) settle(t *index.Table, g *group) bool {
	for len(g.ids) > 0 && !liveState(t.Get(g.ids[0]).State) {
		g.ids = g.ids[1:]
	}
	g.leased = slices.DeleteFunc(g.leased, func(id uint64) bool { return t.Get(id).State != index.StateLeased })
	if len(g.ids) == 0 {
		if len(g.leased) == 0 && !g.queued {
			delete(o.groups, g.name)
		}
		return false
	}
	for _, id := range g.leased {
		o.watch[id] = g
	}
	head := g.ids[0]
	switch t.Get(head).State {
	case index.StateDelayed:
		o.watch[head] = g
		return false
	case index.StateLeased:
		if !slices.Contains(g.leased, head) { // leased by id, not by a receive
			g.leased = append(g.leased, head)
			o.watch[head] = g
		}
	}
	if (len(g.leased) > 0 && g.turn != o.turn) || g.queued {
		return false
	}
	next := o.headReady(t, g)
	if next == 0 {
		return false // the rest waits behind a delayed message: watched, or gone
	}
	g.queued = true
	heap.Push(&o.avail, groupItem{head: next, g: g})
	return true
}

// headReady is the first ready id of g that a receive may take: its head,
// or within the receive that leased the head, the next after those it
// leased; 0 if there is none.
func (o *ordering) headReady(t *index.Table, g *group) uint64 {
	if g.turn != o.turn {
		for _, id := range g.leased {
			if t.Get(id).State == index.StateLeased {
				return 0 // held by an earlier receive's lease
			}
		}
	}
	for _, id := range g.ids {
		switch t.Get(id).State {
		case index.StateReady:
			return id
		case index.StateLeased:
			if g.turn == o.turn {
				continue // leased by this receive: the next may go with it
			}
			return 0
		case index.StateDelayed:
			return 0
		}
	}
	return 0
}

// next returns the ready message a receive takes next, or false.
func (o *ordering) next(t *index.Table) (uint64, bool) {
	for o.avail.Len() > 0 {
		it := heap.Pop(&o.avail).(groupItem)
		g := it.g
		g.queued = false
		if head := o.headReady(t, g); head == it.head && head != 0 {
			o.taking = g
			return head, true
		}
		o.settle(t, g) // its head moved on (back in at its new place), or it is held or empty

	}
	return 0, false
}

// any reports whether a receive now would find a message, dropping what
// is stale at the top of avail.
func (o *ordering) any(t *index.Table) bool {
	for o.avail.Len() > 0 {
		it := o.avail[0]
		if head := o.headReady(t, it.g); head == it.head && head != 0 {
			return true
		}
		heap.Pop(&o.avail)
		it.g.queued = false
		o.settle(t, it.g)
	}
	return false
}

// leased records that the id next returned was leased by this receive,
// and puts its group back in avail if its next message may go with it.
func (o *ordering) leased(t *index.Table, id uint64) {
	g := o.taking
	o.taking = nil
	if g == nil {
		return
	}
	g.turn = o.turn
	g.leased = append(g.leased, id)
	o.watch[id] = g
	o.settle(t, g)
}

// notTaken says the id next returned was not leased after all (it had
// no attempt left): its group is looked at again.
func (o *ordering) notTaken(t *index.Table) {
	if g := o.taking; g != nil {
		o.taking = nil
		o.settle(t, g)
	}
}

// changed is told of every event the queue applies: one that may free a
// group re-checks it, and reports whether a message became available.
func (o *ordering) changed(t *index.Table, ev index.Event) bool {
	switch ev.Type {
	case index.EvPurge, index.EvRedrive:
		o.stale = true
		return true
	}
	g := o.watch[ev.ID]
	if g == nil {
		return false
	}
	delete(o.watch, ev.ID)
	return o.settle(t, g)
}

// nextOrderedLocked is nextReadyLocked for an ordered queue. The caller
// holds mu.
func (q *Queue) nextOrderedLocked() (uint64, bool) {
	q.freshGroupsLocked()
	return q.ordered.next(q.t)
}

// anyOrderedLocked is readyLeftLocked for an ordered queue. The caller
// holds mu.
func (q *Queue) anyOrderedLocked() bool {
	q.freshGroupsLocked()
	return q.ordered.any(q.t)
}

// freshGroupsLocked rebuilds the groups if a bulk change made them stale.
// A failed rebuild (the disk) is logged and tried again at the next look;
// meanwhile the groups as they were serve. The caller holds mu.
func (q *Queue) freshGroupsLocked() {
	if !q.ordered.stale {
		return
	}
	if err := q.rebuildGroupsLocked(); err != nil {
		q.b.opts.Logger.Error("queue: cannot rebuild the message groups; delivering by the groups as they were", "queue", q.name, "err", err)
	}
}

// rebuildGroupsLocked makes the groups afresh from the table and the live
// messages' records: on open, and after a bulk change. Every leased
// message holds its group, wherever it is in it (a receive that took a:1
// and a:2, then a nack of a:1, leaves a held by a:2). A message whose
// record cannot be read or decoded gets a group of its own: the receive
// that leases it finds the damage and fails it, as for any queue. Only a
// read that fails for another reason (the disk) fails the rebuild. The
// caller holds mu.
func (q *Queue) rebuildGroupsLocked() error {
	type idAt struct {
		id     uint64
		offset uint32
	}
	var ids []idAt
	for _, s := range []index.State{index.StateReady, index.StateDelayed, index.StateLeased} {
		q.t.Scan(q.t.FirstID(), s, func(id uint64, e index.Entry) bool {
			ids = append(ids, idAt{id, e.Offset})
			return true
		})
	}
	slices.SortFunc(ids, func(a, b idAt) int { return cmp.Compare(a.id, b.id) })
	o := q.ordered
	fresh := newOrdering()
	fresh.dedup, fresh.dedupOrder, fresh.dedupHead, fresh.forgotten = o.dedup, o.dedupOrder, o.dedupHead, o.forgotten
	fresh.turn = o.turn + 1 // no group is this turn's: every lease holds its group
	q.readMu.Lock()
	defer q.readMu.Unlock()
	for _, m := range ids {
		name, err := q.groupOfLocked(m.id, m.offset)
		if err != nil {
			return err
		}
		g := fresh.group(name)
		g.ids = append(g.ids, m.id)
		if q.t.Get(m.id).State == index.StateLeased {
			g.leased = append(g.leased, m.id)
		}
	}
	for _, g := range fresh.groups {
		fresh.settle(q.t, g)
	}
	*o = *fresh
	return nil
}

// groupOfLocked reads message id's group from its record. A damaged record
// gets a group no message can have, of its own. The caller holds readMu.
func (q *Queue) groupOfLocked(id uint64, offset uint32) (string, error) {
	rec, err := q.readLocked(id, offset)
	if err == nil {
		var meta Meta
		if meta, err = DecodeMeta(rec.Meta); err == nil {
			return meta.Group, nil
		}
	}
	if !errors.Is(err, log.ErrCorrupt) && !errors.Is(err, log.ErrNotFound) {
		return "", fmt.Errorf("read message %d for its group: %w", id, err)
	}
	q.b.opts.Logger.Warn("queue: a message's record is damaged; it is in no group", "queue", q.name, "id", id, "err", err)
	return fmt.Sprintf("\x00damaged %d", id), nil // no adapter gives a group starting with NUL (SQS's are printable)
}

// dedupLookup looks key up in the window at now: the id it was enqueued
// under, or a pending enqueue's done channel to wait on, or neither. The
// caller holds mu.
func (o *ordering) dedupLookup(key string, now int64) (id uint64, wait chan struct{}, found bool) {
	e := o.dedup[key]
	switch {
	case e == nil:
		return 0, nil, false
	case e.done != nil:
		return 0, e.done, true
	case e.at < now-int64(DedupWindow):
		return 0, nil, false
	}
	return e.id, nil, true
}

// reserve marks key as being enqueued.
func (o *ordering) reserve(key string) {
	o.dedup[key] = &dedupEntry{done: make(chan struct{})}
}

// settleKey ends key's pending enqueue: with its id and time, or with
// id 0 (the enqueue failed) forgetting it.
func (o *ordering) settleKey(key string, id uint64, at int64) {
	e := o.dedup[key]
	if e == nil || e.done == nil {
		return
	}
	close(e.done)
	e.done = nil
	if id == 0 {
		delete(o.dedup, key)
		return
	}
	e.id, e.at = id, at
	o.dedupOrder = append(o.dedupOrder, dedupSlot{key, id})
}

// remember adds a key found in the log on open.
func (o *ordering) remember(key string, id uint64, at int64) {
	if _, ok := o.dedup[key]; ok {
		return // a duplicate was never written: the first is what counts
	}
	o.dedup[key] = &dedupEntry{id: id, at: at}
	o.dedupOrder = append(o.dedupOrder, dedupSlot{key, id})
}

// expire forgets the keys whose window is over at now, and the oldest
// beyond MaxDedupEntries. The slots it passes are dropped by moving the
// head; the slice is compacted once the head is past half of it, so an
// enqueue costs O(1) however big the window.
func (o *ordering) expire(now int64) {
	for ; o.dedupHead < len(o.dedupOrder); o.dedupHead++ {
		slot := o.dedupOrder[o.dedupHead]
		e := o.dedup[slot.key]
		if e == nil || e.done != nil || e.id != slot.id {
			continue // the key was enqueued again: the entry is the new slot's
		}
		over := len(o.dedupOrder)-o.dedupHead > MaxDedupEntries
		inWindow := e.at >= now-int64(DedupWindow)
		if !over && inWindow {
			break
		}
		if inWindow {
			o.forgotten++
		}
		delete(o.dedup, slot.key)
	}
	if o.dedupHead > 64 && o.dedupHead*2 > len(o.dedupOrder) {
		o.dedupOrder = slices.Delete(o.dedupOrder, 0, o.dedupHead)
		o.dedupHead = 0
	}
}

// dedupFloor is the lowest id whose record the window needs, so
// compaction keeps the segments from the one holding it; 0 for none.
// Keys settle in about id order, not exactly (two enqueues may settle
// in the other order than they appended), so it is the least of all.
func (o *ordering) dedupFloor() uint64 {
	var floor uint64
	for _, slot := range o.dedupOrder[o.dedupHead:] {
		if floor == 0 || slot.id < floor {
			floor = slot.id
		}
	}
	return floor
}

// loadDedupLocked fills the window from the log's records of the last
// DedupWindow: from the newest segment whose first record is older than
// that (or the first segment). The caller holds mu.
func (q *Queue) loadDedupLocked(now int64) error {
	since := now - int64(DedupWindow)
	segs := q.log.Segments()
	from := uint64(0)
	for i := len(segs) - 1; i >= 0; i-- {
		from = segs[i].Base
		it := q.log.Iter(segs[i].Base)
		if it.Next() && it.Record().Time < since {
			break
		}
		if err := it.Err(); err != nil && !isDamage(err) {
			return err
		}
	}
	if from == 0 {
		return nil
	}
	// Past a damaged range the iterator goes on with the next good record,
	// as the table's rebuild does (which reports the damage).
	it := q.log.Iter(from)
	for {
		for it.Next() {
			rec := it.Record()
			if rec.Time < since {
				continue
			}
			meta, err := DecodeMeta(rec.Meta)
			if err != nil || meta.DedupID == "" {
				continue
			}
			q.ordered.remember(meta.DedupID, rec.ID, rec.Time)
		}
		if err := it.Err(); err == nil || !isDamage(err) {
			return err
		}
	}
}

func isDamage(err error) bool { return errors.Is(err, log.ErrCorrupt) }

// dedupBatch is one Enqueue's view of the window: the messages it
// appends (fresh), whose keys it reserved, and which of the rest repeat a
// key of the batch. A message that repeats a key of the window is in
// neither: its id is set at once.
type dedupBatch struct {
	fresh   []NewMessage
	freshAt []int       // index in msgs of each fresh message
	sameAs  map[int]int // message index → index in fresh of the same key earlier in the batch
}

// dedupLocked sorts msgs into those to append and duplicates, reserving
// the fresh ones' keys. A key another enqueue has reserved is waited for
// (mu released meanwhile, then everything looked at again). The caller
// holds mu; on an error it is released.
func (q *Queue) dedupLocked(msgs []NewMessage, ids []uint64) (*dedupBatch, error) {
	for {
		o := q.ordered
		now := q.now()
		o.expire(now)
		if o.forgotten > 0 {
			q.b.opts.Logger.Warn("queue: deduplication ids forgotten before their window was out (too many at once)", "queue", q.name, "ids", o.forgotten, "max", MaxDedupEntries)
			o.forgotten = 0
		}
		d := &dedupBatch{}
		var wait chan struct{}
		inBatch := map[string]int{}
		for i, m := range msgs {
			if m.DedupID != "" {
				if j, ok := inBatch[m.DedupID]; ok {
					if d.sameAs == nil {
						d.sameAs = map[int]int{}
					}
					d.sameAs[i] = j
					continue
				}
				id, w, found := o.dedupLookup(m.DedupID, now)
				if w != nil {
					wait = w
					break
				}
				if found {
					ids[i] = id
					continue
				}
				inBatch[m.DedupID] = len(d.fresh)
			}
			d.freshAt = append(d.freshAt, i)
			d.fresh = append(d.fresh, m)
		}
		if wait == nil {
			for _, m := range d.fresh {
				if m.DedupID != "" {
					o.reserve(m.DedupID)
				}
			}
			return d, nil
		}
		q.mu.Unlock()
		<-wait
		if err := q.lockOpen(); err != nil {
			return nil, err
		}
	}
}

// settle ends the batch's reservations: with the fresh messages' ids
// from first, or with first 0 (the append failed) giving the keys up.
// The caller holds mu. A nil batch does nothing.
func (d *dedupBatch) settle(q *Queue, first uint64, at int64) {
	if d == nil {
		return
	}
	for j, m := range d.fresh {
		if m.DedupID == "" {
			continue
		}
		id := uint64(0)
		if first != 0 {
			id = first + uint64(j)
		}
		q.ordered.settleKey(m.DedupID, id, at)
	}
}

// fill sets ids for every message of the batch once the fresh ones were
// appended from first.
func (d *dedupBatch) fill(ids []uint64, first uint64) {
	for j, i := range d.freshAt {
		ids[i] = first + uint64(j)
	}
	for i, j := range d.sameAs {
		ids[i] = first + uint64(j)
	}
}

// Ordered says whether q is an ordered queue (CreateOptions.Ordered).
func (q *Queue) Ordered() bool { return q.live().ordered != nil }
