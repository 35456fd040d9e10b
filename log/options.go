package log

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended bytes are fsynced.
type SyncPolicy int

// The sync policies. The zero value is the safe one.
const (
	// SyncAlways: Append returns only after its frame is fsynced. Concurrent
	// appends share one write and one fsync (group commit).
	SyncAlways SyncPolicy = iota
	// SyncInterval: Append returns after the write; a timer fsyncs every
	// Options.SyncInterval. A power loss can lose that much acknowledged data.
	SyncInterval
	// SyncNone: Append returns after the write; fsync happens only at
	// rotation and Close. A power loss can lose any acknowledged data the
	// kernel had not yet written back. Process crashes lose nothing.
	SyncNone
)

// String returns the policy's flag spelling.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses "always", "interval" or "none".
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNone} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown sync policy %q (want always, interval or none)", s)
}

// Defaults for zero Options fields.
const (
	DefaultSegmentSize   = 16 << 20
	DefaultMaxRecordSize = 256 << 10
	DefaultSyncInterval  = 100 * time.Millisecond
	DefaultCompressMin   = 4 << 10
)

// Options configure a Log. The zero value is usable: 16 MiB segments,
// 256 KiB records, SyncAlways, s2 for payloads of 4 KiB and more.
type Options struct {
	// SegmentSize is the size at which the newest segment is sealed and a
	// new one started. A single frame larger than it gets a segment of its own.
	SegmentSize int64
	// MaxRecordSize bounds len(Meta)+len(Body) of one record.
	MaxRecordSize int
	// Sync is the fsync policy; SyncInterval uses SyncInterval.
	Sync         SyncPolicy
	SyncInterval time.Duration
	// Compression is the codec tried for appended frames whose payload is
	// at least CompressMin bytes; it is kept only when it saves ≥ 1/8.
	// Zero means CodecS2; CodecNone disables compression.
	Compression Codec
	CompressMin int
	// FS is the file system; nil means OS.
	FS FS
	// Logger receives recovery reports and background sync errors; nil
	// means slog.Default().
	Logger *slog.Logger
	// OnCommit, if set, is called by the committer after every commit round
	// (for metrics). It must be fast and must not call the Log.
	OnCommit func(Commit)
	// Now returns the time stamped into new segment headers; nil means time.Now.
	Now func() time.Time
}

// Commit describes one commit round, for metrics.
type Commit struct {
	Appends  int           // Append calls served
	Records  int           // records written
	Bytes    int           // bytes written
	Synced   bool          // whether the round ended with an fsync
	SyncTime time.Duration // how long that fsync took
	Err      error         // the error returned to the round's callers
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.MaxRecordSize == 0 {
		o.MaxRecordSize = DefaultMaxRecordSize
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.Compression == 0 {
		o.Compression = CodecS2
	}
	if o.CompressMin == 0 {
		o.CompressMin = DefaultCompressMin
	}
	if o.FS == nil {
		o.FS = OS
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.SegmentSize < fileHeaderSize+frameHeaderSize:
		return o, fmt.Errorf("log: segment size %d is too small", o.SegmentSize)
	case o.MaxRecordSize < 0 || o.MaxRecordSize > MaxFramePayload-maxRecordOverhead:
		return o, fmt.Errorf("log: max record size %d out of range (1..%d)", o.MaxRecordSize, MaxFramePayload-maxRecordOverhead)
	case o.Sync < SyncAlways || o.Sync > SyncNone:
		return o, fmt.Errorf("log: unknown sync policy %d", o.Sync)
	case !o.Compression.valid():
		return o, fmt.Errorf("log: unknown codec %d", o.Compression)
	case o.SyncInterval < 0:
		return o, fmt.Errorf("log: negative sync interval %s", o.SyncInterval)
	}
	return o, nil
}
