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
	return q.Change(Change{SetAttributes: set, RemoveAttributes: remove})
}

// Change is a change to a queue's config and attributes that Queue.Change
// makes as one.
type Change struct {
	// Config is applied over the queue's config, as Broker.Create applies
	// it to an existing queue.
	Config ConfigUpdate
	// SetAttributes are pairs to set and RemoveAttributes keys to remove,
	// as in SetAttributes.
	SetAttributes    map[string]string
	RemoveAttributes []string
}

// Change checks all of c and applies it in one durable write of
// queue.json: it returns once the change is fsynced, or with an error
// and nothing changed, so a refused config value leaves the attributes
// as they were and the other way round. A subscription has neither
// (ErrInvalid).
func (q *Queue) Change(c Change) error {
	q = q.live()
	if err := q.queueOnly("changing the config"); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return q.goneError()
	}
	cfg, err := q.cfg.apply(c.Config, q.name)
	if err != nil {
		return err
	}
	attrs := maps.Clone(q.attrs)
	if attrs == nil {
		attrs = map[string]string{}
	}
	for _, k := range c.RemoveAttributes {
		delete(attrs, k)
	}
	maps.Copy(attrs, c.SetAttributes)
	if len(attrs) == 0 {
		attrs = nil
	}
	if cfg == q.cfg && maps.Equal(attrs, q.attrs) {
		return nil
	}
	if err := checkQueueAttributes(attrs); err != nil {
		return err
	}
	f := q.fileLocked()
	f.Config, f.Attributes = cfg, attrs
	if err := writeConfig(q.b.opts.FS, q.dir, f); err != nil {
		return err
	}
	if cfg != q.cfg {
		q.b.opts.Logger.Info("queue: config updated", "queue", q.name)
	}
	q.cfg, q.attrs = cfg, attrs
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
