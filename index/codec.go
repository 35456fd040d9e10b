package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
)

// This file owns the bytes of the state log entries.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is returned (wrapped) by the decoders here for bytes that fail
// their checksum or do not parse.
var ErrCorrupt = errors.New("index: corrupt data")

// EventType says what a state event records. Zero is invalid.
type EventType uint8

// The state events. Every change to a message after it is enqueued is one
// of these; replaying them over the enqueued records rebuilds the table.
const (
	EvLease   EventType = 1  // leased: attempt number and lease deadline
	EvAck     EventType = 2  // done by its consumer
	EvNack    EventType = 3  // back to ready, front or back, maybe after a delay
	EvExtend  EventType = 4  // lease deadline moved
	EvDead    EventType = 5  // out of attempts or failed: kept as dead
	EvRedrive EventType = 6  // dead back to ready, attempts reset
	EvRemove  EventType = 7  // gone without an ack: moved to a dead-letter queue or past retention
	EvPurge   EventType = 8  // every message with id ≤ ID is gone
	EvExpire  EventType = 9  // a lease ran out: back to ready
	EvReady   EventType = 10 // a delay ran out: ready, placed after After if sent to the back
	EvMoving  EventType = 11 // a dead message's copy to the dead-letter queue gets an id ≥ After
	EvSeek    EventType = 12 // a subscription starts again at ID: below it done, from it unread
	EvSkip    EventType = 13 // a subscription's ids up to ID are gone (retention), read or not
	evLimit   EventType = 14
)

var eventNames = [...]string{"", "lease", "ack", "nack", "extend", "dead", "redrive", "remove", "purge", "expire", "ready", "moving", "seek", "skip"}

func (t EventType) String() string {
	if t > 0 && t < evLimit {
		return eventNames[t]
	}
	return fmt.Sprintf("event(%d)", uint8(t))
}

// Event is one state change.
type Event struct {
	Type EventType
	ID   uint64
	// Attempt is the lease's attempt number (EvLease).
	Attempt uint16
	// Time is the lease deadline (EvLease, EvExtend) or, for EvNack, when
	// the message becomes ready again (0: at once); unix nanoseconds.
	Time int64
	// Front puts a nacked message at the front of the queue (EvNack).
	Front bool
	// After is, for a nack to the back (EvNack) or a delayed one becoming
	// ready (EvReady), the newest id at the time: the message goes after
	// every message up to it and before later ones. For EvMoving it is the
	// dead-letter queue's id from which a copy of the message may stand.
	After uint64
	// SetPriority gives the message Priority as its new priority (EvNack,
	// EvDead: beanstalkd's release and bury); without it the message keeps
	// its own.
	SetPriority bool
	Priority    uint32
	// InPlace returns a nacked message (EvNack) to where its id places
	// it among the ready messages of its priority, as if never leased
	// (beanstalkd's release: ready order is priority, then id). It
	// overrides Front and After.
	InPlace bool
}

const (
	// entryVersion 2 added the priority a nack or a dead event may set.
	// EncodeEntry still writes version 1 for an entry that sets none, so
	// a queue that uses no priorities stays readable by the build before.
	entryVersion    = 2
	entryHeaderSize = 5 // crc32c + version
	flagFront       = 1
	flagPriority    = 2 // version 2: a priority follows
	flagInPlace     = 4 // version 2: back in its place by id (nack)
)

// EncodeEntry appends one state-log entry holding events to dst: a CRC32C
// of everything after it, a version byte, then the events. The version is
// 1 unless an event sets a priority or nacks in place.
//
//	crc32c uint32 | version uint8 | event...
//	event: type uint8 | uvarint id | by type:
//	  lease:  uvarint attempt | varint deadline
//	  extend: varint deadline
//	  nack:   flags uint8 (1 = front, 2 = priority, 4 = in place) | varint ready-at |
//	          uvarint after | (flag 2) uvarint priority
//	  dead:   (version 2) flags uint8 (2 = priority) | (flag 2) uvarint priority
//	  ready:  uvarint after
//	  moving: uvarint after
//	  others: nothing
func EncodeEntry(dst []byte, events []Event) []byte {
	at := len(dst)
	version := byte(1)
	for _, e := range events {
		if e.SetPriority && (e.Type == EvNack || e.Type == EvDead) || e.InPlace && e.Type == EvNack {
			version = 2
			break
		}
	}
	dst = append(dst, 0, 0, 0, 0, version)
	for _, e := range events {
		dst = append(dst, byte(e.Type))
		dst = binary.AppendUvarint(dst, e.ID)
		switch e.Type {
		case EvLease:
			dst = binary.AppendUvarint(dst, uint64(e.Attempt))
			dst = binary.AppendVarint(dst, e.Time)
		case EvExtend:
			dst = binary.AppendVarint(dst, e.Time)
		case EvNack:
			var flags byte
			if e.Front {
				flags |= flagFront
			}
			if e.SetPriority {
				flags |= flagPriority
			}
			if e.InPlace {
				flags |= flagInPlace
			}
			dst = append(dst, flags)
			dst = binary.AppendVarint(dst, e.Time)
			dst = binary.AppendUvarint(dst, e.After)
			if e.SetPriority {
				dst = binary.AppendUvarint(dst, uint64(e.Priority))
			}
		case EvDead:
			if version == 2 {
				dst = appendPriority(dst, e)
			}
		case EvReady, EvMoving:
			dst = binary.AppendUvarint(dst, e.After)
		}
	}
	binary.LittleEndian.PutUint32(dst[at:], crc32.Checksum(dst[at+4:], castagnoli))
	return dst
}

// DecodeEntry verifies and decodes one state-log entry, appending its
// events to dst.
func DecodeEntry(dst []Event, b []byte) ([]Event, error) {
	if len(b) < entryHeaderSize {
		return dst, fmt.Errorf("%w: state entry of %d bytes", ErrCorrupt, len(b))
	}
	if got, want := crc32.Checksum(b[4:], castagnoli), binary.LittleEndian.Uint32(b); got != want {
		return dst, fmt.Errorf("%w: state entry crc %08x, want %08x", ErrCorrupt, got, want)
	}
	version := b[4]
	if version != 1 && version != entryVersion {
		return dst, fmt.Errorf("%w: state entry version %d (this build reads 1 and %d)", ErrCorrupt, version, entryVersion)
	}
	known := byte(flagFront) // the nack flags this version knows
	if version >= 2 {
		known |= flagPriority | flagInPlace
	}
	r := reader{b: b[entryHeaderSize:]}
	for len(r.b) > 0 && r.err == nil {
		e := Event{Type: EventType(r.byte()), ID: r.uvarint()}
		switch e.Type {
		case EvLease:
			a := r.uvarint()
			if a == 0 || a > math.MaxUint16 {
				r.fail("lease attempt %d out of range", a)
			}
			e.Attempt = uint16(a)
			e.Time = r.varint()
		case EvExtend:
			e.Time = r.varint()
		case EvNack:
			flags := r.byte()
			if flags&^known != 0 {
				r.fail("unknown nack flags %#x", flags)
			}
			e.Front = flags&flagFront != 0
			e.InPlace = flags&flagInPlace != 0
			e.Time = r.varint()
			e.After = r.uvarint()
			if flags&flagPriority != 0 {
				e.SetPriority, e.Priority = true, r.priority()
			}
		case EvDead:
			if version < 2 {
				break
			}
			if flags := r.byte(); flags&^flagPriority != 0 {
				r.fail("unknown dead flags %#x", flags)
			} else if flags != 0 {
				e.SetPriority, e.Priority = true, r.priority()
			}
		case EvReady:
			e.After = r.uvarint()
		case EvMoving:
			if e.After = r.uvarint(); e.After == 0 || e.After > math.MaxInt64 {
				r.fail("moving: dead-letter id %d out of range", e.After)
			}
		case EvAck, EvRedrive, EvRemove, EvPurge, EvExpire, EvSeek, EvSkip:
		default:
			r.fail("unknown event type %d", e.Type)
		}
		if e.ID == 0 {
			r.fail("event with id 0")
		}
		if r.err == nil {
			dst = append(dst, e)
		}
	}
	if r.err != nil {
		return dst, fmt.Errorf("%w: state entry: %v", ErrCorrupt, r.err)
	}
	return dst, nil
}

// appendPriority appends a dead event's version-2 fields: flags, then the
// priority it sets, if it sets one.
func appendPriority(dst []byte, e Event) []byte {
	if !e.SetPriority {
		return append(dst, 0)
	}
	dst = append(dst, flagPriority)
	return binary.AppendUvarint(dst, uint64(e.Priority))
}

// reader decodes varints from a byte slice, remembering the first error so
// decoders read as a straight sequence of fields.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) < 1 {
		r.fail("truncated")
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

// priority reads a uvarint priority, which must fit 32 bits.
func (r *reader) priority() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.fail("priority %d out of range", v)
	}
	return uint32(v)
}

func (r *reader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes(limit int) []byte {
	n := r.uvarint()
	if n > uint64(len(r.b)) || n > uint64(limit) {
		r.fail("length %d out of range", n)
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) uint32() uint32 {
	if len(r.b) < 4 {
		r.fail("truncated")
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}
