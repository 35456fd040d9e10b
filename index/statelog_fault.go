package index

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
)

// Fault injection for the state log's tests: tidwall/wal writes through
// package os, so faults are injected here, around its calls.

// FaultOp names a state-log operation a Fault can fail.
type FaultOp string

// The operations a Fault sees.
const (
	OpWrite   FaultOp = "write"   // Append's write of an entry
	OpFsync   FaultOp = "fsync"   // Sync's fsync of the newest segment
	OpDirSync FaultOp = "dirsync" // Sync's fsync of the directory after a new segment
)

// A Fault fails state-log operations, for tests: tidwall/wal opens its own
// files, so the message log's FS seam (log.Options.FS) cannot reach them.
// It is called before each operation; a non-nil err fails the operation
// instead of doing it. For OpWrite, torn > 0 first appends that many bytes
// of the entry's framing to the newest segment, as a short write on a full
// disk leaves them; the state log must then be reopened, which cuts them.
type Fault func(op FaultOp) (torn int, err error)

// SetFault installs f (nil removes it). Not for production use.
func (s *StateLog) SetFault(f Fault) { s.fault = f }

// injected runs the installed Fault for op, writing torn bytes of framed
// (tidwall's length prefix and the entry) if it asks.
func (s *StateLog) injected(op FaultOp, entry []byte) error {
	if s.fault == nil {
		return nil
	}
	torn, err := s.fault(op)
	if err == nil {
		return nil
	}
	if op == OpWrite && torn > 0 {
		framed := binary.AppendUvarint(nil, uint64(len(entry)))
		framed = append(framed, entry...)
		// Where tidwall's write would have gone: at its end, over the
		// zeros preallocated past it.
		if path, perr := s.newestPath(); perr == nil && path != "" {
			if f, ferr := os.OpenFile(path, os.O_WRONLY, 0); ferr == nil {
				_, werr := f.WriteAt(framed[:min(torn, len(framed)-1)], int64(s.tailBytes))
				err = errors.Join(err, werr, f.Close())
			}
		}
	}
	return fmt.Errorf("injected %s fault: %w", op, err)
}
