package queue

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spoolq/spool/index"
	"github.com/spoolq/spool/log"
)

// Options configure a Broker. The zero value is usable.
type Options struct {
	// Sync is the fsync policy of every queue's message and state logs.
	Sync         SyncPolicy
	SyncInterval time.Duration
	// SegmentSize is the message-log segment size (default 16 MiB; at most
	// 1 GiB, so a frame offset fits the index's 32 bits).
	SegmentSize int64
	// MaxMessageBytes bounds a message body (default 256 KiB).
	MaxMessageBytes int
	// SnapshotEvery is how many state events a queue writes between
	// snapshots (default 100,000).
	SnapshotEvery int
	// MaintenanceInterval is how often the background goroutine runs
	// (default 1s); negative disables it, and tests call Maintain instead.
	MaintenanceInterval time.Duration
	// IdleTimeout is how long a queue goes without a read or a write
	// before maintenance closes its files and frees its buffers (they
	// reopen on the next use; see idle.go). Default DefaultIdleTimeout,
	// a minute; negative: never.
	IdleTimeout time.Duration
	// Now is the clock; nil means the wall clock at Open plus the
	// monotonic time since (see monotonicClock). Tests inject a fake one.
	Now func() time.Time
	// FS is the file system every queue file is written through (segments,
	// state-log repairs, queue.json, snapshots, directory syncs); nil: the
	// real one. Tests inject faults and power cuts (log/faultfs).
	FS FS
	// Logger gets recovery reports and background errors; nil: slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called after every commit round of a queue's
	// message log (for metrics: fsync latency, records per commit). It
	// must be fast and must not call the broker.
	OnCommit func(queue string, c Commit)
	// OnStateSync, if set, is called after every fsync of a queue's state
	// log: a group commit of acks, nacks and the like (under Sync=always)
	// or a snapshot's, with how many events it made durable and how long
	// it took. Same rules as OnCommit.
	OnStateSync func(queue string, events int, took time.Duration)

	// stateFault, set by tests, fails state-log operations (index.Fault).
	stateFault index.Fault
}

// Default option values.
const (
	DefaultMaxMessageBytes = 256 << 10
	DefaultSnapshotEvery   = 100_000
	maxSegmentSize         = 1 << 30
)

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = log.DefaultSegmentSize
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if o.SnapshotEvery == 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.MaintenanceInterval == 0 {
		o.MaintenanceInterval = time.Second
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = log.DefaultSyncInterval
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	if o.Now == nil {
		start := time.Now()
		o.Now = monotonicClock(start, func() time.Duration { return time.Since(start) })
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FS == nil {
		o.FS = log.OS
	}
	switch {
	case o.SegmentSize < 0 || o.SegmentSize > maxSegmentSize:
		return o, fmt.Errorf("%w: segment size %d (at most %d)", ErrInvalid, o.SegmentSize, maxSegmentSize)
	case o.MaxMessageBytes < 0 || o.MaxMessageBytes > log.MaxFramePayload/2:
		return o, fmt.Errorf("%w: max message bytes %d", ErrInvalid, o.MaxMessageBytes)
	}
	return o, nil
}
