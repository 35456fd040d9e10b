package queue

import (
	"fmt"
	"maps"
)

// A queue's attributes are small string pairs kept in its queue.json
// beside the config: what a protocol adapter needs to keep with a queue
// and spool's config has no field for (an SQS queue's tags and its
// default receive wait, say). spool gives them no meaning of its own; by
// convention an adapter's keys start with its name ("sqs:"), so adapters
// never clash.
const (
	MaxQueueAttributes     = 128      // pairs
	MaxQueueAttributeBytes = 32 << 10 // keys and values together
)

// Attributes returns a copy of the queue's attributes (nil if it has
// none).
func (q *Queue) Attributes() map[string]string {
	q = q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	return maps.Clone(q.attrs)
}

// SetAttributes sets the pairs of set and removes the keys of remove (a
// key in both is set), in one durable write of queue.json: it returns once
// the change is fsynced, or with an error and nothing changed. Keys are
// 1 to 255 bytes; values may be empty. A subscription keeps none
// (ErrInvalid).
func (q *Queue) SetAttributes(set map[string]string, remove []string) error {
	q = q.live()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.goneError()
	}
	if q.sub != nil {
		return fmt.Errorf("%w: subscription %s keeps no attributes", ErrInvalid, q.name)
	}
	next := maps.Clone(q.attrs)
	if next == nil {
		next = map[string]string{}
	}
	for _, k := range remove {
		delete(next, k)
	}
	maps.Copy(next, set)
	if len(next) == 0 {
		next = nil
	}
	if maps.Equal(next, q.attrs) {
		return nil
	}
	if err := checkQueueAttributes(next); err != nil {
		return err
	}
	f := q.fileLocked()
	f.Attributes = next
	if err := writeConfig(q.b.opts.FS, q.dir, f); err != nil {
		return err
	}
	q.attrs = next
	return nil
}

// checkQueueAttributes applies the limits on a queue's attributes.
func checkQueueAttributes(attrs map[string]string) error {
	if len(attrs) > MaxQueueAttributes {
		return fmt.Errorf("%w: %d queue attributes, at most %d", ErrInvalid, len(attrs), MaxQueueAttributes)
	}
	size := 0
	for k, v := range attrs {
		if len(k) == 0 || len(k) > 255 {
			return fmt.Errorf("%w: a queue attribute key of %d bytes (1 to 255)", ErrInvalid, len(k))
		}
		size += len(k) + len(v)
	}
	if size > MaxQueueAttributeBytes {
		return fmt.Errorf("%w: queue attributes of %d bytes, at most %d", ErrInvalid, size, MaxQueueAttributeBytes)
	}
	return nil
}
