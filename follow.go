package main

// recv --follow: one stream of leases (api.Stream), printed as they come;
// and what it shares with work: the credit a stream keeps, the lease
// length a consumer has, and how a stream is closed.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// followOptions are recv's flags as --follow reads them.
type followOptions struct {
	name   string
	max    int // stop after printing this many (0: never)
	credit int
	vis    time.Duration
	ack    bool
	asJSON bool
}

// followMargin is how long after a printed message's lease should have
// ended follow looks at it again: the server's clock and timers are not
// ours.
const followMargin = 500 * time.Millisecond

// closeTimeout bounds Stream.Close: a server that does not end the stream
// in this long is cut off (its leases then return when they run out).
const closeTimeout = 10 * time.Second

// follow is recv --follow: print each message the stream delivers until
// ctx ends (context.Canceled, which runMain makes exit 130), the stream
// ends (an error: the server went away) or o.max were printed.
//
// With o.ack each message is acked over the stream once printed, and its
// place goes to the next. Without, it stays leased: the user acks it with
// the receipt commands; the stream learns nothing of those, so once its
// lease should have ended follow looks at the message (peek) and, unless
// the lease was extended, answers it on the stream with a nack, which the
// server refuses as stale when it was acked or its lease ran out, and
// which frees its place either way. Leases still out when follow returns
// go back to the queue's front at once (Stream.Close).
func follow(env *cmdEnv, cl *api.Client, o followOptions) error {
	cons := consumerOf(cl, o.name)
	sctx, cancel := context.WithCancel(context.WithoutCancel(env.ctx))
	defer cancel()
	b := &budget{per: o.credit, max: o.max}
	st, err := cons.Stream(sctx, api.StreamOptions{Credit: b.target(), Visibility: o.vis})
	if err != nil {
		return err
	}
	b.st = st
	defer closeStream(st, cancel)

	var lease time.Duration // known once the first message needs it
	var held []heldLease    // printed, unacked, oldest due first
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for !b.exhausted() {
		var due <-chan time.Time
		if len(held) > 0 {
			timer.Reset(time.Until(held[0].due))
			due = timer.C
		}
		select {
		case <-env.ctx.Done():
			return env.ctx.Err()
		case m, ok := <-st.Messages():
			if !ok {
				return streamEnded(st)
			}
			b.take()
			if err := printMessage(env, m, o.asJSON, !o.ack); err != nil {
				return err
			}
			if o.ack {
				b.done()
				actx, stop := context.WithTimeout(context.WithoutCancel(env.ctx), closeTimeout)
				err := st.Ack(actx, m.Receipt)
				stop()
				if err != nil {
					return fmt.Errorf("ack %s: %w", m.Receipt, err)
				}
				continue
			}
			if b.exhausted() {
				continue // the last: its lease returns at Close
			}
			if lease == 0 {
				if lease, err = leaseLength(env.ctx, cl, o.name, o.vis); err != nil {
					return err
				}
			}
			h, err := newHeldLease(m, time.Now().Add(lease+followMargin))
			if err != nil {
				return err
			}
			held = insertHeld(held, h)
		case <-due:
			h := held[0]
			held = held[1:]
			later, err := h.extended(env.ctx, cons)
			if err != nil {
				return err
			}
			if later > 0 {
				h.due = time.Now().Add(later + followMargin)
				held = insertHeld(held, h)
				continue
			}
			b.done()
			// Stale (acked, or its lease ran out) is the answer expected;
			// any answer frees the place.
			if err := st.Nack(env.ctx, h.receipt, api.NackOptions{}); err != nil && !isReceiptError(err) {
				return fmt.Errorf("nack %s after its lease: %w", h.receipt, err)
			}
		}
	}
	return nil
}

// printMessage prints m as recv does: its body (bodyFormat) on stdout,
// and its receipt on stderr when withReceipt; or, asJSON, the message.
func printMessage(env *cmdEnv, m api.Message, asJSON, withReceipt bool) error {
	if asJSON {
		return printJSON(env.stdout, m)
	}
	text, err := messageText(m)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, text)
	if withReceipt {
		fmt.Fprintf(env.stderr, "receipt %s\n", m.Receipt)
	}
	return nil
}

// heldLease is a message recv --follow printed without acking it.
type heldLease struct {
	receipt   string
	id        uint64
	attempt   int
	leaseEnds time.Time // as the server gave it: its clock, not ours
	due       time.Time // when to look at it again, by ours
}

func newHeldLease(m api.Message, due time.Time) (heldLease, error) {
	r, err := queue.ParseReceipt(m.Receipt)
	if err != nil {
		return heldLease{}, fmt.Errorf("spool: the server sent receipt %q: %w", m.Receipt, err)
	}
	ends, _ := time.Parse(time.RFC3339Nano, m.LeaseEnds) // zero if absent: any later end counts as extended
	return heldLease{receipt: m.Receipt, id: r.ID, attempt: int(r.Attempt), leaseEnds: ends, due: due}, nil
}

// insertHeld adds h to held, kept in order of due.
func insertHeld(held []heldLease, h heldLease) []heldLease {
	i := len(held)
	for i > 0 && held[i-1].due.After(h.due) {
		i--
	}
	held = append(held, heldLease{})
	copy(held[i+1:], held[i:])
	held[i] = h
	return held
}

// extended looks at h's message: if it is still leased at h's attempt
// with a later end than h had (spool extend), it returns how much later,
// and h.leaseEnds becomes that end; else 0.
func (h *heldLease) extended(ctx context.Context, cons *api.Consumer) (time.Duration, error) {
	msgs, err := cons.Peek(ctx, strconv.FormatUint(h.id-1, 10), 1)
	if err != nil {
		return 0, err
	}
	if len(msgs) == 0 || msgs[0].ID != strconv.FormatUint(h.id, 10) || msgs[0].State != "leased" || msgs[0].Attempts != h.attempt {
		return 0, nil
	}
	ends, err := time.Parse(time.RFC3339Nano, msgs[0].LeaseEnds)
	if err != nil || !ends.After(h.leaseEnds) {
		return 0, nil
	}
	later := ends.Sub(h.leaseEnds)
	h.leaseEnds = ends
	return later, nil
}

// isReceiptError reports whether err is the server's answer about one
// receipt (stale, not found) rather than a failure of the stream.
func isReceiptError(err error) bool {
	return errors.Is(err, queue.ErrStaleReceipt) || errors.Is(err, queue.ErrNotFound)
}

// budget keeps a stream's credit: per messages out at once, and, when
// max is set, no more delivered in all than max, so that none is leased
// only to be handed back at Close (which counts as a delivery). Its
// methods are safe for concurrent use; SetCredit is sent under its lock,
// so the server sees the credits in the order they were decided, each
// before the ack or nack that done precedes.
type budget struct {
	st   *api.Stream
	per  int // credit: most out at once
	max  int // most in all (0: no limit)
	mu   sync.Mutex
	sent int // the credit last sent (or opened with)
	// taken is how many were taken off the stream, open how many of
	// those are not answered yet.
	taken, open int
	stopped     bool
}

// target is the credit wanted now: per, less what max has left to give.
func (b *budget) target() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sent = b.targetLocked()
	return b.sent
}

func (b *budget) targetLocked() int {
	switch {
	case b.stopped:
		return 0
	case b.max == 0:
		return b.per
	}
	return min(b.per, b.open+b.max-b.taken)
}

// take counts a message taken off the stream.
func (b *budget) take() {
	b.mu.Lock()
	b.taken++
	b.open++
	b.mu.Unlock()
}

// done counts a taken message about to be answered (ack, nack): call it
// before sending the answer, so a lower credit reaches the server first.
func (b *budget) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open--
	b.setLocked()
}

// stop sets the credit to 0 for good: nothing more is delivered.
func (b *budget) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.setLocked()
}

func (b *budget) setLocked() {
	if t := b.targetLocked(); t != b.sent {
		b.sent = t
		b.st.SetCredit(t) // if it fails the stream has ended, and Messages says so
	}
}

// exhausted reports whether max messages were taken.
func (b *budget) exhausted() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.max > 0 && b.taken >= b.max
}

// leaseLength is how long a lease of name (a queue, or TOPIC/SUB) lasts:
// vis if set, else the queue's or subscription's visibility timeout.
func leaseLength(ctx context.Context, cl *api.Client, name string, vis time.Duration) (time.Duration, error) {
	if vis > 0 {
		return vis, nil
	}
	cfg, err := consumerConfig(ctx, cl, name)
	return cfg.visibility, err
}

// consumerSettings are the settings of a queue or subscription that its
// consumers work by.
type consumerSettings struct {
	visibility  time.Duration
	maxAttempts int
}

// consumerConfig returns the settings of name (a queue, or TOPIC/SUB).
func consumerConfig(ctx context.Context, cl *api.Client, name string) (consumerSettings, error) {
	var text string
	var cfg consumerSettings
	if topic, sub, ok := strings.Cut(name, "/"); ok {
		s, err := cl.GetSubscription(ctx, topic, sub)
		if err != nil {
			return cfg, err
		}
		text, cfg.maxAttempts = s.VisibilityTimeout, s.MaxAttempts
	} else {
		q, err := cl.GetQueue(ctx, name)
		if err != nil {
			return cfg, err
		}
		text, cfg.maxAttempts = q.VisibilityTimeout, q.MaxAttempts
	}
	d, err := time.ParseDuration(text)
	if err != nil || d <= 0 {
		return cfg, fmt.Errorf("spool: %s has visibility timeout %q, not a duration", name, text)
	}
	cfg.visibility = d
	return cfg, nil
}

// closeStream closes st, and cuts it off (cancel, its context's) if the
// server has not ended it within closeTimeout.
func closeStream(st *api.Stream, cancel context.CancelFunc) error {
	t := time.AfterFunc(closeTimeout, cancel)
	defer t.Stop()
	return st.Close()
}

// streamEnded is the error for a stream that ended while it was wanted:
// why, if the client knows, else that the server ended it (a restart).
func streamEnded(st *api.Stream) error {
	if err := st.Err(); err != nil {
		return fmt.Errorf("the stream ended: %w", err)
	}
	return errors.New("the server ended the stream (shutting down?); run the command again once it is back")
}
