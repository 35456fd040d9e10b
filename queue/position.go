package queue

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/spoolq/spool/log"
)

// Position is where in its topic a subscription starts, or seeks to: the
// earliest message the topic keeps, the latest (only what is published
// from now on), a message id, or a time (the first message published at
// or after it). Its text form is "earliest", "latest", an id ("42") or an
// RFC 3339 time.
type Position struct {
	kind positionKind
	id   uint64
	at   time.Time
}

type positionKind uint8

const (
	positionLatest positionKind = iota // the zero Position: the default start
	positionEarliest
	positionID
	positionTime
)

// Earliest is the oldest message the topic keeps.
func Earliest() Position { return Position{kind: positionEarliest} }

// Latest is the message published next: a subscription there sees only
// what is published from now on. It is the zero Position.
func Latest() Position { return Position{kind: positionLatest} }

// AtID is message id (or, past the topic's newest, the message that will
// get that id).
func AtID(id uint64) Position { return Position{kind: positionID, id: id} }

// AtTime is the first message published at or after t.
func AtTime(t time.Time) Position { return Position{kind: positionTime, at: t} }

// ParsePosition parses "earliest", "latest", an id or an RFC 3339 time.
func ParsePosition(s string) (Position, error) {
	switch s {
	case "earliest":
		return Earliest(), nil
	case "latest":
		return Latest(), nil
	}
	if id, err := strconv.ParseUint(s, 10, 64); err == nil && id > 0 {
		return AtID(id), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return AtTime(t), nil
	}
	return Position{}, fmt.Errorf("%w: position %q (want earliest, latest, a message id or an RFC 3339 time)", ErrInvalid, s)
}

func (p Position) String() string {
	switch p.kind {
	case positionEarliest:
		return "earliest"
	case positionID:
		return strconv.FormatUint(p.id, 10)
	case positionTime:
		return p.at.Format(time.RFC3339Nano)
	}
	return "latest"
}

// resolve returns the id p names in t now: the first id a subscription
// there reads.
func (t *Topic) resolve(p Position) (uint64, error) {
	first, published := t.firstID(), t.published.Load()
	switch p.kind {
	case positionEarliest:
		return first, nil
	case positionID:
		return max(p.id, first), nil
	case positionTime:
		return t.idAt(p.at.UnixNano(), first, published)
	}
	return published + 1, nil
}

// firstID returns the oldest id the topic's log may hold: every id below
// it was removed by retention.
func (t *Topic) firstID() uint64 {
	if segs := t.log.Segments(); len(segs) > 0 {
		return segs[0].Base
	}
	return t.log.LastID() + 1
}

// idAt returns the id of the first record from first to published whose
// publish time is at or after at (published+1 if none is): the segments'
// first records find the segment, then that segment is read through.
func (t *Topic) idAt(at int64, first, published uint64) (uint64, error) {
	from := first
	for _, seg := range t.log.Segments() {
		if seg.Base > published {
			break
		}
		it := t.log.Iter(seg.Base)
		if !it.Next() {
			if err := it.Err(); err != nil && !errors.Is(err, log.ErrCorrupt) {
				return 0, fmt.Errorf("topic %s: find the first message at %s: %w", t.name, time.Unix(0, at).UTC().Format(time.RFC3339), err)
			}
			continue // empty, or damaged at its start: look on
		}
		if r := it.Record(); r.ID > published || r.Time >= at {
			break // this segment starts at or after at: the one before holds it
		} else {
			from = r.ID
		}
	}
	it := t.log.Iter(from)
	for {
		for it.Next() {
			r := it.Record()
			if r.ID > published {
				return published + 1, nil
			}
			if r.Time >= at {
				return r.ID, nil
			}
		}
		if it.Err() == nil {
			return published + 1, nil
		}
		if !errors.Is(it.Err(), log.ErrCorrupt) {
			return 0, fmt.Errorf("topic %s: find the first message at %s: %w", t.name, time.Unix(0, at).UTC().Format(time.RFC3339), it.Err())
		}
	}
}
