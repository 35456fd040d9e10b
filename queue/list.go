package queue

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Looking without leasing (peek, the dead list) and redriving the dead.

// Peek returns up to limit messages with id > after that are ready,
// delayed or leased, without leasing them.
func (q *Queue) Peek(after uint64, limit int) ([]Message, error) {
	return collect(func(fn func(Message) error) error { return q.PeekEach(after, limit, fn) })
}

// Dead returns up to limit dead messages with id > after.
func (q *Queue) Dead(after uint64, limit int) ([]Message, error) {
	return collect(func(fn func(Message) error) error { return q.DeadEach(after, limit, fn) })
}

// PeekEach is Peek that hands each message to fn as its body is read, so
// a caller streaming a reply holds one body at a time. An error of fn
// stops it and is returned.
func (q *Queue) PeekEach(after uint64, limit int, fn func(Message) error) error {
	return q.list(after, limit, func(s index.State) bool { return s != index.StateDead }, fn)
}

// DeadEach is Dead as PeekEach is Peek.
func (q *Queue) DeadEach(after uint64, limit int, fn func(Message) error) error {
	return q.list(after, limit, func(s index.State) bool { return s == index.StateDead }, fn)
}

func collect(each func(fn func(Message) error) error) ([]Message, error) {
	msgs := []Message{}
	err := each(func(m Message) error {
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

func (q *Queue) list(after uint64, limit int, want func(index.State) bool, fn func(Message) error) error {
	q = q.live()
	if limit <= 0 || limit > MaxList {
		return fmt.Errorf("%w: limit %d must be between 1 and %d", ErrInvalid, limit, MaxList)
	}
	if err := q.lockOpen(); err != nil {
		return err
	}
	q.processDueLocked(q.now())
	type found struct {
		id  uint64
		e   index.Entry
		pri uint32
	}
	var ids []found
	if after < math.MaxUint64 {
		q.t.Scan(after+1, index.StateNone, func(id uint64, e index.Entry) bool {
			if want(e.State) {
				ids = append(ids, found{id, e, q.t.Priority(id)})
			}
			return len(ids) < limit
		})
	}
	readUpTo, floor := q.t.ReadUpTo(), q.t.AttemptFloor()
	q.mu.Unlock()
	if q.sub != nil && want(index.StateReady) && len(ids) < limit && after < math.MaxUint64 {
		// A subscription's unread messages, past everything in its table.
		unread, err := q.peekUnread(max(after+1, readUpTo+1), limit-len(ids))
		if err != nil {
			return err
		}
		for _, u := range unread {
			e := index.Entry{Offset: u.offset, Attempts: floor, State: index.StateReady}
			if u.readyAt > q.now() {
				e.State, e.Time = index.StateDelayed, u.readyAt
			}
			ids = append(ids, found{u.id, e, DefaultPriority})
		}
	}
	for _, f := range ids {
		m, err := q.readEntry(f.id, f.e, f.pri)
		if err != nil {
			return err
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// readEntry reads message id, whose table entry and priority were e and
// pri, as peek shows it.
func (q *Queue) readEntry(id uint64, e index.Entry, pri uint32) (Message, error) {
	m, err := q.read(id, e.Offset)
	if err != nil {
		return Message{}, fmt.Errorf("%s: message %d: %w", q.name, id, err)
	}
	m.Attempts, m.State, m.Priority = int(e.Attempts), e.State, pri
	switch e.State {
	case index.StateDelayed:
		m.ReadyAt = time.Unix(0, e.Time)
	case index.StateLeased:
		m.LeaseEnds = time.Unix(0, e.Time)
	}
	return m, nil
}

// Redrive returns up to limit dead messages (all if limit ≤ 0) to ready
// and reports how many. Each gets MaxAttempts more deliveries; its
// attempts keep counting, so no receipt is ever handed out twice.
func (q *Queue) Redrive(limit int) (int, error) {
	q = q.live()
	if err := q.lockOpen(); err != nil {
		return 0, err
	}
	q.processDueLocked(q.now())
	var ids []uint64
	q.t.Scan(0, index.StateDead, func(id uint64, _ index.Entry) bool {
		ids = append(ids, id)
		return limit <= 0 || len(ids) < limit
	})
	for _, id := range ids {
		q.applyLocked(index.Event{Type: index.EvRedrive, ID: id}, 0) // Scan found it dead
	}
	q.notifyLocked(len(ids))
	seq := q.seq
	q.mu.Unlock()
	return len(ids), q.commit(seq, true)
}

// peekUnread returns up to limit of a subscription's unread records from
// id from on, up to what its topic has published.
func (q *Queue) peekUnread(from uint64, limit int) ([]unreadRecord, error) {
	published := q.publishedNow()
	var recs []unreadRecord
	it := q.log.Iter(from)
	for len(recs) < limit {
		for len(recs) < limit && it.Next() {
			r := it.Record()
			if r.ID > published {
				return recs, nil
			}
			meta, _ := DecodeMeta(r.Meta)
			recs = append(recs, unreadRecord{id: r.ID, offset: uint32(it.Position().Offset), readyAt: meta.ReadyAt})
		}
		if err := it.Err(); err == nil {
			break
		} else if !errors.Is(err, log.ErrCorrupt) {
			return nil, fmt.Errorf("%s: read the topic: %w", q.name, err)
		}
	}
	return recs, nil
}
