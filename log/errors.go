package log

import "errors"

var (
	// ErrCorrupt is returned (wrapped, with segment and offset) when bytes
	// on disk fail their checksum or do not parse, anywhere but the torn
	// tail Open repairs: by Read and Cursor.Read for a record inside damaged
	// bytes, by Iterator.Err at a damaged range, by Rewrite of a segment
	// with damage, and in the problems of Verify and Recovery.
	ErrCorrupt = errors.New("log: corrupt data")

	// ErrTooLarge is returned by Append when a record exceeds
	// Options.MaxRecordSize or one call's records exceed MaxFramePayload.
	// Nothing is written.
	ErrTooLarge = errors.New("log: record too large")

	// ErrClosed is returned by every call on a closed Log.
	ErrClosed = errors.New("log: closed")

	// ErrNotFound is returned by Read for an id that is not in the log:
	// never written yet, removed with its segment, or dropped by Rewrite.
	ErrNotFound = errors.New("log: id not found")

	// ErrUnsupportedVersion is returned by Open and Verify for a segment
	// written by a newer format version than this build reads.
	ErrUnsupportedVersion = errors.New("log: unsupported segment format version")

	// ErrActiveSegment is returned by Remove and Rewrite for the newest
	// segment, which is still being appended to.
	ErrActiveSegment = errors.New("log: segment is still active")

	// ErrFailed wraps the write or fsync error that left the log unable to
	// re-establish a known-good tail. Append returns it until a later
	// commit round manages to truncate the tail back and sync it.
	ErrFailed = errors.New("log: failed")
)
