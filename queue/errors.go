package queue

import (
	"errors"

	"github.com/spoolq/spool/log"
)

var (
	// ErrQueueNotFound is returned for a queue that does not exist (never
	// created, or deleted), by every Broker method that names one and by
	// every method of a deleted Queue.
	ErrQueueNotFound = errors.New("queue not found")

	// ErrQueueExists is returned by Broker.CreateNew for a queue that
	// exists already.
	ErrQueueExists = errors.New("queue exists")

	// ErrTopicNotFound is returned for a topic that does not exist (never
	// created, or deleted).
	ErrTopicNotFound = errors.New("topic not found")

	// ErrSubscriptionNotFound is returned for a subscription that does not
	// exist in its topic.
	ErrSubscriptionNotFound = errors.New("subscription not found")

	// ErrNotFound is returned per receipt or id for a message the queue
	// does not hold: never enqueued, or already acked, purged or removed.
	ErrNotFound = errors.New("message not found")

	// ErrStaleReceipt is returned per receipt by Ack, Nack, Extend and Fail
	// when the receipt's lease is over: it expired (and the message may
	// have been leased again under a new receipt) or the message went dead.
	// Nothing changes: a slow worker can never ack someone else's lease.
	ErrStaleReceipt = errors.New("stale receipt")

	// ErrLeased is returned per id by the operations on a message by id
	// (Remove, LeaseID) for a message under a lease: only its receipt
	// can ack, nack or fail it.
	ErrLeased = errors.New("message is leased")

	// ErrQueueFull is returned by Enqueue when the messages would take the
	// queue past its max length. Nothing is written.
	ErrQueueFull = errors.New("queue full")

	// ErrInvalidName is returned for a queue, topic or subscription name
	// outside [A-Za-z0-9_.-]{1,80} or starting with a dot.
	ErrInvalidName = errors.New("invalid name")

	// ErrInvalid is returned for bad arguments (a negative delay, a bad
	// receipt, an out-of-range config value, too many attributes, ...).
	// Nothing changes.
	ErrInvalid = errors.New("invalid argument")

	// ErrTooLarge is returned by Enqueue for a message body over
	// Options.MaxMessageBytes. Nothing is written.
	ErrTooLarge = errors.New("message too large")

	// ErrLocked is returned by Open when another process holds the data
	// directory (a running server).
	ErrLocked = errors.New("data directory in use")

	// ErrUnavailable is returned by calls that reach a queue after its
	// state log failed (an fsync error, say), until maintenance has
	// reloaded it from disk (within a second). Nothing was done; retry
	// shortly. The calls that were committing when the failure happened
	// get the failure itself, and may or may not have taken effect.
	// Handles to the queue stay valid: they follow the reloaded queue.
	ErrUnavailable = errors.New("queue temporarily unavailable")

	// ErrNotDataDir is returned by Open and Check for a directory that
	// holds files spool did not create: spool never writes into, or
	// removes anything from, a tree that is not its own.
	ErrNotDataDir = errors.New("not a spool data directory")

	// ErrQueueDamaged is returned for a queue whose directory exists but
	// could not be opened: a damaged queue.json, too many open files, a
	// directory spool did not create. The other queues serve on; the
	// error says why, Broker.List shows it, and maintenance's retries (every
	// 30s) pick the queue up once it opens.
	ErrQueueDamaged = errors.New("queue cannot be opened")

	// ErrClosed is returned by every call after Broker.Close, and to
	// long-poll receivers waiting when it happens.
	ErrClosed = errors.New("closed: spool is shutting down")

	// ErrCorrupt is returned for stored data that fails its checks: a
	// message record whose frame or metadata (DecodeMeta) is damaged. It
	// is the log's own ErrCorrupt, so one errors.Is covers both.
	ErrCorrupt = log.ErrCorrupt
)
