package index

import (
	"cmp"
	"container/heap"
)

// Deadlines: the delay and lease heaps behind the queue's one timer, and
// the heap of requeued messages that keeps nacks in their place.

// DueDelay returns the earliest delayed message whose time has come,
// without changing it: the caller applies EvReady (Ready), with the newest
// id, MaxID, as its After, so that a replay puts it where it went live.
func (t *Table) DueDelay(now int64) (uint64, bool) {
	id, at, ok := t.NextDelayed()
	if !ok || at > now {
		return 0, false
	}
	return id, true
}

// NextDelayed returns the delayed message that becomes ready first, and
// when (beanstalkd's peek-delayed).
func (t *Table) NextDelayed() (id uint64, at int64, ok bool) {
	for t.delays.Len() > 0 {
		top := t.delays[0]
		e := t.entry(top.id)
		if e == nil || e.state() != StateDelayed || e.time != top.at {
			heap.Pop(&t.delays)
			continue
		}
		return top.id, top.at, true
	}
	return 0, 0, false
}

// DueLease returns a leased message whose lease has run out, without
// changing it: the queue decides between Expire and Dead and logs it.
func (t *Table) DueLease(now int64) (uint64, bool) {
	for t.leases.Len() > 0 {
		top := t.leases[0]
		e := t.entry(top.id)
		if e == nil || e.state() != StateLeased || e.time != top.at {
			heap.Pop(&t.leases)
			continue
		}
		return top.id, top.at <= now
	}
	return 0, false
}

// NextDeadline returns the earliest time a delayed message becomes ready
// or a lease runs out, for the queue's single timer.
func (t *Table) NextDeadline() (int64, bool) {
	var at int64
	found := false
	for _, h := range []*deadlineHeap{&t.delays, &t.leases} {
		for h.Len() > 0 {
			top := (*h)[0]
			e := t.entry(top.id)
			if e != nil && (e.state() == StateDelayed || e.state() == StateLeased) && e.time == top.at {
				if !found || top.at < at {
					at, found = top.at, true
				}
				break
			}
			heap.Pop(h)
		}
	}
	return at, found
}

type deadline struct {
	at int64
	id uint64
}

type deadlineHeap []deadline

func (h deadlineHeap) Len() int { return len(h) }

func (h deadlineHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].id < h[j].id)
}

func (h deadlineHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *deadlineHeap) Push(x any) { *h = append(*h, x.(deadline)) }

func (h *deadlineHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// requeued is a ready message outside the bitmaps, ordered by priority,
// then within one priority: front ones (after == 0) first in nack order,
// then back ones by the id they follow. A message ready by id at
// levelOverflow is one too, with after its own id and seq 0: that sorts it
// after the back ones that follow the id before it and before those that
// follow it, which is where the bitmap would have put it.
type requeued struct {
	id    uint64
	after uint64
	seq   int64
	pri   uint32
}

type requeueHeap []requeued

func (h requeueHeap) Len() int { return len(h) }

func (h requeueHeap) Less(i, j int) bool { return compareRequeued(h[i], h[j]) < 0 }

// compareRequeued orders requeued items: by priority, then front ones in
// nack order, then by the id they follow.
func compareRequeued(a, b requeued) int {
	return cmp.Or(cmp.Compare(a.pri, b.pri), cmp.Compare(a.after, b.after), cmp.Compare(a.seq, b.seq))
}

func (h requeueHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }

func (h *requeueHeap) Push(x any) { *h = append(*h, x.(requeued)) }

func (h *requeueHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// NextReadyBefore is NextReady for a subscription, whose ids from unread
// on are not in the table yet (not read from the topic): it returns the
// next ready message unless the unread ones go first. Only a message
// nacked to the back after an id ≥ unread sorts after them. Subscriptions
// deliver in id order: their messages all have one priority.
func (t *Table) NextReadyBefore(unread uint64) (uint64, bool) {
	id, ok := t.NextReady()
	if ok && t.entry(id).requeue() == Back && t.requeued[0].after >= unread {
		return 0, false
	}
	return id, ok
}
