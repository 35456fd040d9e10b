package queue

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// The values the Queue's methods take and return, and their limits.

// Receipt identifies one lease: the message id and the attempt number it
// was leased with. Its text form is "id.attempt", e.g. "42.3".
type Receipt struct {
	ID      uint64
	Attempt uint16
}

func (r Receipt) String() string {
	return strconv.FormatUint(r.ID, 10) + "." + strconv.FormatUint(uint64(r.Attempt), 10)
}

// ParseReceipt parses "id.attempt".
func ParseReceipt(s string) (Receipt, error) {
	idText, attText, ok := strings.Cut(s, ".")
	id, err1 := strconv.ParseUint(idText, 10, 64)
	att, err2 := strconv.ParseUint(attText, 10, 16)
	if !ok || err1 != nil || err2 != nil || id == 0 || att == 0 {
		return Receipt{}, fmt.Errorf("%w: receipt %q (want id.attempt, e.g. 42.3)", ErrInvalid, s)
	}
	return Receipt{ID: id, Attempt: uint16(att)}, nil
}

// NewMessage is a message to enqueue.
type NewMessage struct {
	Body []byte
	// Delay before the message can be received; nil means the queue's
	// default delay.
	Delay *time.Duration
	// Attributes are small string pairs carried with the message (at most
	// MaxAttributes, MaxAttributeBytes in all).
	Attributes map[string]string
	// Priority orders the ready messages: 0 first, then by id within one
	// priority. nil means DefaultPriority. A queue's only (a topic
	// delivers in publish order and refuses one).
	Priority *uint32
	// VisibilityTimeout is the message's own lease length, for a receive
	// that gives none (beanstalkd's TTR); 0 means the queue's.
	VisibilityTimeout time.Duration
	// Group is the message's group in an ordered queue (see
	// CreateOptions.Ordered): a group's messages are received one lease
	// at a time, in order. A message without one is in the group "".
	// Other queues refuse a group (ErrInvalid).
	Group string
	// DedupID, in an ordered queue, makes the enqueue idempotent: a
	// message whose DedupID was enqueued less than DedupWindow before is
	// not enqueued again, and its id is the first one's. Other queues
	// refuse one (ErrInvalid).
	DedupID string

	origin *Origin // set by dead-letter moves (see moveDead)
}

// DefaultPriority is the priority of a message enqueued without one
// (beanstalkd's default too).
const DefaultPriority = index.DefaultPriority

// Message is a message as received, peeked or listed.
type Message struct {
	ID         uint64
	Receipt    Receipt // set by Receive only
	Attempts   int
	State      State
	EnqueuedAt time.Time
	// ReadyAt is, for a delayed message (Peek), when it becomes ready;
	// zero otherwise.
	ReadyAt time.Time
	// Delay is the delay it was enqueued with (0: none).
	Delay time.Duration
	// LeaseEnds is, for a leased message (Receive, Peek), when its lease
	// runs out; zero otherwise.
	LeaseEnds time.Time
	// Priority is its place in the ready order: the one it was enqueued
	// at, or the one a nack or a bury gave it.
	Priority uint32
	// VisibilityTimeout is its own lease length, 0 if it has none.
	VisibilityTimeout time.Duration
	Body              []byte
	Attributes        map[string]string
	// Origin is, for a copy a dead-letter move made, the queue and id it
	// was copied from (what an SQS message move task returns it to); nil
	// otherwise.
	Origin *Origin
	// Group and DedupID are what the message was enqueued with.
	Group, DedupID string
}

// Counts are a queue's messages by state.
type Counts struct {
	Ready, Delayed, Leased, Dead, Total int
}

func (c Counts) plus(o Counts) Counts {
	return Counts{c.Ready + o.Ready, c.Delayed + o.Delayed, c.Leased + o.Leased, c.Dead + o.Dead, c.Total + o.Total}
}

// Info describes a queue.
type Info struct {
	Name string
	// Label is the label the queue was created with (CreateLabeled).
	Label string
	// Serial is the queue's number (Queue.Serial), 0 if it has none yet.
	Serial uint32
	// Ordered says whether the queue orders its messages by group
	// (CreateOptions.Ordered).
	Ordered bool
	Config  Config
	Counts  Counts
	Bytes   int64 // message-log bytes on disk
	// OldestReady is the enqueue time of the oldest ready message (zero if
	// none is ready): how long the queue's consumers are behind.
	OldestReady time.Time
	Stats       Stats
	// Err, in Broker.List, is why a queue did not open (ErrQueueDamaged);
	// the other fields are then zero.
	Err error
}

func countsOf(t *index.Table) Counts {
	c := Counts{
		Ready:   t.Count(index.StateReady),
		Delayed: t.Count(index.StateDelayed),
		Leased:  t.Count(index.StateLeased),
		Dead:    t.Count(index.StateDead),
	}
	c.Total = c.Ready + c.Delayed + c.Leased + c.Dead
	return c
}

// Stats are running totals since the queue was opened.
type Stats struct {
	Enqueued, Acked, Nacked, Expired, Dead, DeadLettered, Removed uint64
}

// ReceiveOptions tune Receive.
type ReceiveOptions struct {
	Max        int           // messages at most (default 1, at most MaxReceive)
	Wait       time.Duration // long poll: wait this long for a first message
	Visibility time.Duration // lease length; 0 means the queue's visibility timeout
}

// MaxBatchBytes bounds one Enqueue's bodies and metadata together: a batch
// is written as one frame of the log, so it is durable all or nothing.
const MaxBatchBytes = log.MaxFramePayload

// Receive limits.
const (
	MaxReceive = 1000
	MaxWait    = 20 * time.Minute
)

// NackOptions tune Nack.
type NackOptions struct {
	Front bool          // to the front of the queue instead of the back
	Delay time.Duration // ready again only after this
	// InPlace returns the message to where its id puts it among the ready
	// messages of its priority, as if never leased (beanstalkd's release:
	// ready order is priority, then id). It overrides Front.
	InPlace bool
	// Priority, if set, is the message's new priority; nil keeps it.
	Priority *uint32
}

// MaxList bounds Peek and Dead.
const MaxList = 1000
