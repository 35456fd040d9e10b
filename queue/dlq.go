package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Dead-letter moves: dead messages copied to the queue's dead-letter
// queue and then removed here, idempotent across a crash (EvMoving).

// Dead-letter moves go in batches: at most maxMovesPerBatch messages and
// maxMoveBytes of bodies held at once, and maxMovesPerRun per run.
const (
	maxMovesPerRun   = 1000
	maxMovesPerBatch = 100
	maxMoveBytes     = 4 << 20
)

// moveDead moves dead messages to the dead-letter queue, a batch at a
// time, idempotently across a crash:
//
//  1. mark each message "moving from" the dead-letter queue's next id
//     (EvMoving, fsynced);
//  2. enqueue the copies there (fsynced), each carrying its origin;
//  3. remove the messages here (fsynced).
//
// A crash after 2 leaves marked messages here whose copies exist: the
// next move finds them (by origin, from the marked id on) and only does 3.
// A crash before 2 leaves marks and no copies: the next move copies. So a
// message is in one of the two queues, never in neither and never twice.
func (q *Queue) moveDead(dlqName string) error {
	dlq, err := q.b.Queue(dlqName)
	if err != nil {
		return nil // not created (yet): messages stay dead here
	}
	q.mu.Lock()
	var dead []moveItem
	q.t.Scan(0, index.StateDead, func(id uint64, e index.Entry) bool {
		dead = append(dead, moveItem{id: id, offset: e.Offset, from: q.t.Moving(id), priority: q.t.Priority(id)})
		return len(dead) < maxMovesPerRun
	})
	q.mu.Unlock()
	for len(dead) > 0 {
		n, err := q.moveBatch(dlq, dead)
		if err != nil {
			return fmt.Errorf("dead-letter %s to %s: %w", q.name, dlqName, err)
		}
		dead = dead[n:]
	}
	return nil
}

type moveItem struct {
	id     uint64
	offset uint32
	from   uint64 // Table.Moving: where a copy may stand, 0 if unmarked
	// priority is the message's, which its copy keeps (a bury may have
	// given it one).
	priority uint32
}

// moveBatch moves the first messages of items (as many as a batch holds)
// and returns how many it took.
func (q *Queue) moveBatch(dlq *Queue, items []moveItem) (int, error) {
	var batch []moveItem
	var msgs []NewMessage
	bytes := 0
	for _, it := range items {
		if len(batch) == maxMovesPerBatch || (len(batch) > 0 && bytes >= maxMoveBytes) {
			break
		}
		m, err := q.read(it.id, it.offset)
		if err != nil {
			return 0, fmt.Errorf("message %d: %w", it.id, err)
		}
		zero := time.Duration(0)
		batch = append(batch, it)
		moved := NewMessage{Body: m.Body, Attributes: m.Attributes, Delay: &zero, VisibilityTimeout: m.VisibilityTimeout, origin: &Origin{Queue: q.name, ID: it.id}}
		if it.priority != DefaultPriority {
			moved.Priority = &it.priority
		}
		if dlq.ordered != nil {
			moved.Group = m.Group // an ordered dead-letter queue keeps the groups; another has none
		}
		msgs = append(msgs, moved)
		bytes += len(m.Body)
	}
	copied, err := dlq.copiesOf(q.name, batch)
	if err != nil {
		return 0, err
	}
	// Mark the ones without a copy, then copy them.
	var toCopy []NewMessage
	q.mu.Lock()
	from := dlq.live().log.LastID() + 1 // every copy enqueued from now on gets an id ≥ from
	for i, it := range batch {
		if !copied[it.id] && q.applyLocked(index.Event{Type: index.EvMoving, ID: it.id, After: from}, 0) == nil {
			toCopy = append(toCopy, msgs[i])
		}
	}
	seq := q.seq
	q.mu.Unlock()
	if len(toCopy) > 0 {
		if err := q.commit(seq, true); err != nil {
			return 0, err
		}
		if _, err := dlq.Enqueue(toCopy); err != nil {
			return 0, err
		}
	}
	q.mu.Lock()
	for _, it := range batch {
		// Redriven or purged meanwhile: its copy (if any) stays a
		// dead letter there, the message lives on here.
		if q.t.Get(it.id).State == index.StateDead && q.applyLocked(index.Event{Type: index.EvRemove, ID: it.id}, 0) == nil {
			q.stats.deadLettered.Add(1)
		}
	}
	seq = q.seq
	q.mu.Unlock()
	return len(batch), q.commit(seq, true)
}

// copiesOf returns which of the marked items (from ≠ 0) already have a copy
// in q, the dead-letter queue, enqueued by an earlier move of origin that
// a crash cut short: a record with their origin, at or after their mark.
func (q *Queue) copiesOf(origin string, items []moveItem) (map[uint64]bool, error) {
	from := uint64(0)
	for _, it := range items {
		if it.from != 0 && (from == 0 || it.from < from) {
			from = it.from
		}
	}
	if from == 0 {
		return nil, nil
	}
	q = q.live()
	it := q.log.Iter(from)
	copied := map[uint64]bool{}
	for it.Next() {
		meta, err := DecodeMeta(it.Record().Meta)
		if err == nil && meta.Origin != nil && meta.Origin.Queue == origin {
			copied[meta.Origin.ID] = true
		}
	}
	if err := it.Err(); err != nil && !errors.Is(err, log.ErrCorrupt) {
		return nil, fmt.Errorf("look for copies in %s: %w", q.name, err)
	}
	return copied, nil
}
