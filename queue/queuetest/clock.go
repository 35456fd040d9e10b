// Package queuetest holds helpers for tests of spool's queue and of what
// is built on it: a fake clock to drive leases and delays by moving time
// instead of waiting for it.
package queuetest

import (
	"sync/atomic"
	"time"
)

// Clock is a fake clock safe for concurrent use; pass its Now to
// queue.Options.Now.
type Clock struct{ ns atomic.Int64 }

// NewClock returns a clock reading t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.ns.Store(t.UnixNano())
	return c
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
