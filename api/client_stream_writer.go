package api

import (
	"io"
	"sync"
)

// commandWriter writes a stream's command lines to its request body, the
// lines of callers that send while a write is under way together in the
// next write. Many goroutines acking on one stream then share a write (a
// chunk, a system call each side) instead of taking one each, and the
// server reads them as one group that shares one fsync. A caller alone
// is written at once: grouping costs no latency.
//
// Whoever finds no write under way writes, its own line and every line
// queued while it wrote; the others wait until the write holding their
// line has ended, so each send still returns that write's error. At most
// maxQueuedCommandBytes wait to be written: a sender past that waits.
type commandWriter struct {
	w io.Writer

	mu      sync.Mutex
	changed sync.Cond // a write ended
	queued  []byte    // the lines for the next write
	spare   []byte    // the last write's buffer, for the next lines
	writing bool      // a sender is writing
	next    uint64    // the number of the write queued will go in
	written uint64    // the last write that ended; writes are numbered from 1
	failed  uint64    // the write that failed, 0 while none has
	err     error     // its error: every later send fails with it too
}

// maxQueuedCommandBytes bounds the lines waiting for a write (a command
// line is at most maxStreamLine).
const maxQueuedCommandBytes = 64 << 10

func newCommandWriter(w io.Writer) *commandWriter {
	cw := &commandWriter{w: w, next: 1}
	cw.changed.L = &cw.mu
	return cw
}

// send writes line (which ends with a newline) and returns once it is
// written, or why it could not be.
func (cw *commandWriter) send(line []byte) error {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	for cw.failed == 0 && cw.writing && len(cw.queued) > 0 && len(cw.queued)+len(line) > maxQueuedCommandBytes {
		cw.changed.Wait()
	}
	if cw.failed != 0 {
		return cw.err
	}
	cw.queued = append(cw.queued, line...)
	mine := cw.next
	if !cw.writing {
		cw.writeQueued()
	}
	for cw.written < mine && cw.failed == 0 {
		cw.changed.Wait()
	}
	if cw.failed != 0 && cw.failed <= mine {
		return cw.err // this write failed, or an earlier one and this line was never sent
	}
	return nil
}

// writeQueued writes what is queued until nothing is, or a write fails;
// the caller holds mu, which is let go during each write.
func (cw *commandWriter) writeQueued() {
	cw.writing = true
	defer func() {
		cw.writing = false
		cw.changed.Broadcast()
	}()
	for len(cw.queued) > 0 {
		b := cw.queued
		cw.queued, cw.spare = cw.spare[:0], nil
		n := cw.next
		cw.next++
		cw.mu.Unlock()
		_, err := cw.w.Write(b)
		cw.mu.Lock()
		cw.spare = b[:0]
		cw.written = n
		if err != nil {
			cw.err, cw.failed = err, n
			cw.queued = nil
			return
		}
		cw.changed.Broadcast()
	}
}
