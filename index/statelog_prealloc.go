package index

import (
	"bytes"
	"fmt"
)

// Preallocation: the state log keeps zeros written past tidwall's writes
// in its newest segment file, as package log does for message segments
// (log/doc.go, "Writing"). A queue's deletes, acks and nacks are durable
// once the state log's fsync returns, and an fsync of writes into space
// the file already has changes no file length, so the file system has no
// new length to journal: on this project's disk such an fsync is 20-30%
// faster, which is what every durable state event waits for.
//
// tidwall/wal must never see the zeros: it reads a segment file to its
// end and would take every zero byte for an empty entry. So they are cut
// off (trimZeros) before tidwall seals the segment (its next write would
// start a new one), before it rewrites it (TruncateFront), and before it
// opens it again (open, after Release); Release and Close cut them too,
// and OpenStateLog cuts an all-zero tail a crash left without calling it
// damage. The cuts rely on tailBytes, the mirror of tidwall's segment
// size, being exact: it is read from the file only when the file has no
// zeros, and counted by Append from tidwall's own framing rule.

// stateZeroChunk is how far past tidwall's writes the newest segment is
// filled with zeros at a time: a few thousand state events, and never
// past StateLogSegmentSize (where tidwall starts the next segment).
const stateZeroChunk = 64 << 10

// newestPath returns the path of tidwall's newest segment file, looked up
// once per segment: the lookup lists the directory, and PrepareSync needs
// the path on every group commit. "" means tidwall has not created one.
func (s *StateLog) newestPath() (string, error) {
	if s.tailPath != "" {
		return s.tailPath, nil
	}
	path, err := newestSegment(s.dir)
	if err != nil {
		return "", err
	}
	s.tailPath = path
	return path, nil
}

// newSegment forgets the newest segment's path and zeros: tidwall has
// started another newest segment, or may have replaced its file.
func (s *StateLog) newSegment() {
	s.tailPath, s.zeroEnd = "", 0
}

// preallocate fills the next chunk past tidwall's writes with zeros when
// the writes reached the end of the last one. The zeros only make later
// fsyncs cheaper: if writing them fails (a full disk), nothing is lost,
// and whatever part was written is cut like the rest.
func (s *StateLog) preallocate() {
	end := int64(s.tailBytes)
	to := min(end+stateZeroChunk, StateLogSegmentSize)
	if end < s.zeroEnd || to <= end {
		return
	}
	path, err := s.newestPath()
	if err != nil || path == "" {
		return
	}
	s.zeroEnd = to
	_ = s.files.WriteZeros(path, end, to)
}

// trimZeros cuts the newest segment file back to tidwall's writes if it
// has zeros past them, and fsyncs the cut.
func (s *StateLog) trimZeros() error {
	if s.zeroEnd <= int64(s.tailBytes) {
		return nil
	}
	path, err := s.newestPath()
	if err == nil && path != "" {
		err = s.files.TruncateSync(path, int64(s.tailBytes))
	}
	if err != nil {
		return fmt.Errorf("state log %s: cut preallocated space: %w", s.dir, err)
	}
	s.zeroEnd = 0
	return nil
}

// allZero reports whether b holds only zero bytes.
func allZero(b []byte) bool {
	var zero [4096]byte
	for len(b) > 0 {
		n := min(len(b), len(zero))
		if !bytes.Equal(b[:n], zero[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}
