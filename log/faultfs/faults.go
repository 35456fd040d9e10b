package faultfs

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// Fault injection: the operations a hook sees and counts, the hook itself,
// and the faults a hook returns.

// Op names an operation a hook can intercept and [FS.Count] reports on.
type Op int

// Operations. Handle methods report the name the file was opened with;
// Rename reports the old path; RemoveAll reports as OpRemove.
const (
	OpOpen Op = iota
	OpRead
	OpWrite
	OpSync
	OpTruncate
	OpRename
	OpRemove
	OpSyncDir
	OpMkdir
	OpReadDir
	OpSize
	OpClose
	numOps
)

var opNames = [numOps]string{
	OpOpen:     "open",
	OpRead:     "read",
	OpWrite:    "write",
	OpSync:     "sync",
	OpTruncate: "truncate",
	OpRename:   "rename",
	OpRemove:   "remove",
	OpSyncDir:  "syncdir",
	OpMkdir:    "mkdir",
	OpReadDir:  "readdir",
	OpSize:     "size",
	OpClose:    "close",
}

func (op Op) String() string {
	if op >= 0 && op < numOps {
		return opNames[op]
	}
	return fmt.Sprintf("Op(%d)", int(op))
}

// SetHook installs h to be consulted before every operation; nil removes
// it. If h returns an error the operation does nothing and returns that
// error, except for the [ShortWrite] case.
func (f *FS) SetHook(h func(op Op, path string) error) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

// Count reports how many calls of op have succeeded, so a test can assert
// that the code under test really fsynced (or did not write) at all.
func (f *FS) Count(op Op) int {
	if op < 0 || op >= numOps {
		return 0
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// callHook runs the hook outside the lock so that it may call back into f.
func (f *FS) callHook(op Op, path string) error {
	f.mu.Lock()
	h := f.hook
	f.mu.Unlock()
	if h == nil {
		return nil
	}
	return h(op, path)
}

// FailNth returns a hook that fails only the n-th (1-based) call of op with
// err and lets everything else through, so a test can walk a fault across
// every fsync of a scenario in a loop. The n-th call is counted when the
// hook runs, whether or not the operation would have succeeded. It is safe
// for concurrent use, though which concurrent call is n-th is then up to
// the scheduler.
func FailNth(op Op, n int, err error) func(Op, string) error {
	var calls atomic.Int64
	return func(o Op, _ string) error {
		if o == op && calls.Add(1) == int64(n) {
			return err
		}
		return nil
	}
}

// ShortWrite, returned by a hook for OpWrite, makes the write land only
// partially: the first N bytes are applied and WriteAt returns (N, Err).
// This is how a disk filling up mid-write looks to the caller, and the
// torn tail it leaves is what recovery code must cope with. For any other
// op it is an ordinary error.
type ShortWrite struct {
	N   int   // bytes applied, clamped to [0, len(p)]
	Err error // returned by WriteAt; nil means io.ErrShortWrite if N < len(p)
}

func (e *ShortWrite) Error() string {
	return fmt.Sprintf("faultfs: short write of %d bytes: %v", e.N, e.Err)
}

func (e *ShortWrite) Unwrap() error { return e.Err }

// ErrNoSpace is what a full disk returns; it is the real errno so code
// under test that checks for ENOSPC sees the same value it would in
// production.
var ErrNoSpace = syscall.ENOSPC

// ErrPowerCut is returned by every method of a handle opened before
// [FS.PowerCut]: after a real power loss no file descriptor survives. It
// wraps os.ErrClosed, so code that already treats a closed file as fatal
// needs no special case.
var ErrPowerCut = fmt.Errorf("faultfs: file handle opened before a power cut: %w", os.ErrClosed)
