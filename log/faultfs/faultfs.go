package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/spoolq/spool/log"
)

var (
	_ log.FS   = (*FS)(nil)
	_ log.File = (*file)(nil)
)

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

// ErrNoSpace is what a full disk returns; it is the real errno so code
// under test that checks for ENOSPC sees the same value it would in
// production.
var ErrNoSpace = syscall.ENOSPC

// ErrPowerCut is returned by every method of a handle opened before
// [FS.PowerCut]: after a real power loss no file descriptor survives. It
// wraps os.ErrClosed, so code that already treats a closed file as fatal
// needs no special case.
var ErrPowerCut = fmt.Errorf("faultfs: file handle opened before a power cut: %w", os.ErrClosed)

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

// FS is an in-memory log.FS with power-loss simulation and fault hooks.
// The zero value is not usable; call [New].
type FS struct {
	mu     sync.Mutex
	root   *inode
	gen    uint64 // bumped by PowerCut; handles remember the one they saw
	counts [numOps]int
	hook   func(Op, string) error
}

// inode is a file or a directory. A directory's inodes are reachable from
// two tables, so one inode can be the current target of one name and the
// durable target of another: that is how an unsynced rename is undone.
type inode struct {
	dir bool

	data    []byte // file: current bytes
	durable []byte // file: bytes as of the last successful Sync

	entries        map[string]*inode // dir: names now
	durableEntries map[string]*inode // dir: names as of the last SyncDir
}

func newDir() *inode {
	return &inode{dir: true, entries: map[string]*inode{}, durableEntries: map[string]*inode{}}
}

// New returns an empty file system holding only the root directory.
func New() *FS {
	return &FS{root: newDir()}
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

// PowerCut throws away everything not yet durable, as described in the
// package documentation, and invalidates every open handle.
func (f *FS) PowerCut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen++
	seen := map[*inode]bool{}
	var reset func(n *inode)
	reset = func(n *inode) {
		if seen[n] {
			return // renames can leave one inode durably under two names
		}
		seen[n] = true
		if !n.dir {
			n.data = bytes.Clone(n.durable)
			return
		}
		n.entries = cloneEntries(n.durableEntries)
		for _, c := range n.durableEntries {
			reset(c)
		}
	}
	reset(f.root)
}

func cloneEntries(m map[string]*inode) map[string]*inode {
	c := make(map[string]*inode, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// split cleans name and returns its components; the root has none.
func split(name string) (string, []string, error) {
	clean := filepath.Clean(name)
	rel := strings.TrimLeft(clean, string(filepath.Separator))
	if rel == "" || rel == "." {
		return clean, nil, nil
	}
	parts := strings.Split(rel, string(filepath.Separator))
	if parts[0] == ".." {
		return clean, nil, fs.ErrInvalid
	}
	return clean, parts, nil
}

// walk follows parts from the root through current entries, or durable
// ones, and returns the directory they name.
func (f *FS) walk(parts []string, durable bool) (*inode, error) {
	n := f.root
	for _, p := range parts {
		m := n.entries
		if durable {
			m = n.durableEntries
		}
		c, ok := m[p]
		if !ok {
			return nil, fs.ErrNotExist
		}
		if !c.dir {
			return nil, syscall.ENOTDIR
		}
		n = c
	}
	return n, nil
}

// lookup resolves name to its parent directory and base name (current
// entries). For the root, parent is nil and base is empty.
func (f *FS) lookup(name string) (clean string, parent *inode, base string, err error) {
	clean, parts, err := split(name)
	if err != nil || len(parts) == 0 {
		return clean, nil, "", err
	}
	parent, err = f.walk(parts[:len(parts)-1], false)
	if err != nil {
		return clean, nil, "", err
	}
	return clean, parent, parts[len(parts)-1], nil
}

func pathErr(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}

// OpenFile opens name with os.OpenFile flags. Only the access mode,
// O_CREATE, O_EXCL and O_TRUNC mean anything; perm and other flags are
// ignored.
func (f *FS) OpenFile(name string, flag int, perm fs.FileMode) (log.File, error) {
	clean, _, _ := split(name)
	if err := f.callHook(OpOpen, clean); err != nil {
		return nil, err
	}
	var rd, wr bool
	switch flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR) {
	case os.O_RDONLY:
		rd = true
	case os.O_WRONLY:
		wr = true
	case os.O_RDWR:
		rd, wr = true, true
	default:
		return nil, pathErr("open", clean, syscall.EINVAL)
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	clean, parent, base, err := f.lookup(name)
	if err != nil {
		return nil, pathErr("open", clean, err)
	}
	if parent == nil {
		return nil, pathErr("open", clean, syscall.EISDIR)
	}
	n, ok := parent.entries[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", clean, fs.ErrExist)
	case ok && n.dir:
		return nil, pathErr("open", clean, syscall.EISDIR)
	case ok && flag&os.O_TRUNC != 0:
		n.data = nil
	case !ok && flag&os.O_CREATE == 0:
		return nil, pathErr("open", clean, fs.ErrNotExist)
	case !ok:
		n = &inode{}
		parent.entries[base] = n
	}
	f.counts[OpOpen]++
	return &file{fs: f, n: n, name: clean, gen: f.gen, rd: rd, wr: wr}, nil
}

// ReadDir returns the names of the files and directories in dir, sorted.
func (f *FS) ReadDir(dir string) ([]string, error) {
	clean, parts, err := split(dir)
	if herr := f.callHook(OpReadDir, clean); herr != nil {
		return nil, herr
	}
	if err != nil {
		return nil, pathErr("readdir", clean, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.walk(parts, false)
	if err != nil {
		return nil, pathErr("readdir", clean, err)
	}
	names := make([]string, 0, len(d.entries))
	for name := range d.entries {
		names = append(names, name)
	}
	slices.Sort(names)
	f.counts[OpReadDir]++
	return names, nil
}

// Rename renames oldpath to newpath, replacing newpath (a file, or an empty
// directory when renaming a directory). Neither directory changes durably
// until it is synced.
func (f *FS) Rename(oldpath, newpath string) error {
	oldClean, _, _ := split(oldpath)
	if err := f.callHook(OpRename, oldClean); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	oldClean, oldParent, oldBase, err := f.lookup(oldpath)
	newClean, newParent, newBase, nerr := f.lookup(newpath)
	linkErr := func(err error) error {
		return &os.LinkError{Op: "rename", Old: oldClean, New: newClean, Err: err}
	}
	if err == nil {
		err = nerr
	}
	if err != nil {
		return linkErr(err)
	}
	if oldParent == nil || newParent == nil {
		return linkErr(syscall.EBUSY) // the root cannot move or be replaced
	}
	src, ok := oldParent.entries[oldBase]
	if !ok {
		return linkErr(fs.ErrNotExist)
	}
	if oldParent == newParent && oldBase == newBase {
		f.counts[OpRename]++
		return nil
	}
	if dst, ok := newParent.entries[newBase]; ok {
		switch {
		case src.dir && !dst.dir:
			return linkErr(syscall.ENOTDIR)
		case !src.dir && dst.dir:
			return linkErr(syscall.EISDIR)
		case dst.dir && len(dst.entries) > 0:
			return linkErr(syscall.ENOTEMPTY)
		}
	}
	if src.dir {
		// Moving a directory below itself would detach a cycle.
		_, parts, _ := split(newClean)
		n := f.root
		for _, p := range parts[:len(parts)-1] {
			n = n.entries[p]
			if n == src {
				return linkErr(syscall.EINVAL)
			}
		}
	}
	newParent.entries[newBase] = src
	delete(oldParent.entries, oldBase)
	f.counts[OpRename]++
	return nil
}

// Remove deletes a file or an empty directory; the removal is undone by a
// power cut unless the parent is synced first.
func (f *FS) Remove(name string) error {
	clean, _, _ := split(name)
	if err := f.callHook(OpRemove, clean); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clean, parent, base, err := f.lookup(name)
	if err != nil {
		return pathErr("remove", clean, err)
	}
	if parent == nil {
		return pathErr("remove", clean, syscall.EBUSY)
	}
	n, ok := parent.entries[base]
	if !ok {
		return pathErr("remove", clean, fs.ErrNotExist)
	}
	if n.dir && len(n.entries) > 0 {
		return pathErr("remove", clean, syscall.ENOTEMPTY)
	}
	delete(parent.entries, base)
	f.counts[OpRemove]++
	return nil
}

// RemoveAll deletes path and everything below it, returning nil if path
// does not exist. Only the entry in path's parent changes, so a power cut
// before the parent is synced brings the whole subtree back. RemoveAll of
// the root empties it.
func (f *FS) RemoveAll(path string) error {
	clean, _, _ := split(path)
	if err := f.callHook(OpRemove, clean); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	clean, parent, base, err := f.lookup(path)
	if errors.Is(err, fs.ErrNotExist) {
		f.counts[OpRemove]++
		return nil
	}
	if err != nil {
		return pathErr("removeall", clean, err)
	}
	if parent == nil {
		f.root.entries = map[string]*inode{}
	} else {
		delete(parent.entries, base)
	}
	f.counts[OpRemove]++
	return nil
}

// MkdirAll creates dir and any missing parents. Unlike every other change
// to a directory, a new directory is durable at once (see the package
// documentation for why).
func (f *FS) MkdirAll(dir string, perm fs.FileMode) error {
	clean, parts, err := split(dir)
	if herr := f.callHook(OpMkdir, clean); herr != nil {
		return herr
	}
	if err != nil {
		return pathErr("mkdir", clean, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.root
	for _, p := range parts {
		c, ok := n.entries[p]
		if !ok {
			c = newDir()
			n.entries[p] = c
			n.durableEntries[p] = c
		} else if !c.dir {
			return pathErr("mkdir", clean, syscall.ENOTDIR)
		}
		n = c
	}
	f.counts[OpMkdir]++
	return nil
}

// SyncDir makes dir's current names durable: creates, renames and
// removes in dir survive a later power cut.
func (f *FS) SyncDir(dir string) error {
	clean, parts, err := split(dir)
	if herr := f.callHook(OpSyncDir, clean); herr != nil {
		return herr
	}
	if err != nil {
		return pathErr("syncdir", clean, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	d, err := f.walk(parts, false)
	if err != nil {
		return pathErr("syncdir", clean, err)
	}
	d.durableEntries = cloneEntries(d.entries)
	f.counts[OpSyncDir]++
	return nil
}

// ReadFile returns the current bytes of name, bypassing hooks and
// counters, so a test can inspect what the code under test wrote.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, clean, err := f.fileAt(name, false)
	if err != nil {
		return nil, pathErr("readfile", clean, err)
	}
	return bytes.Clone(n.data), nil
}

// Durable returns the bytes name would hold after a power cut now: it
// resolves name through durable directory entries and returns that inode's
// durable bytes. It bypasses hooks and counters.
func (f *FS) Durable(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, clean, err := f.fileAt(name, true)
	if err != nil {
		return nil, pathErr("durable", clean, err)
	}
	return bytes.Clone(n.durable), nil
}

func (f *FS) fileAt(name string, durable bool) (*inode, string, error) {
	clean, parts, err := split(name)
	if err != nil {
		return nil, clean, err
	}
	if len(parts) == 0 {
		return nil, clean, syscall.EISDIR
	}
	d, err := f.walk(parts[:len(parts)-1], durable)
	if err != nil {
		return nil, clean, err
	}
	m := d.entries
	if durable {
		m = d.durableEntries
	}
	n, ok := m[parts[len(parts)-1]]
	switch {
	case !ok:
		return nil, clean, fs.ErrNotExist
	case n.dir:
		return nil, clean, syscall.EISDIR
	}
	return n, clean, nil
}

// WriteFile sets name's current and durable bytes to data and makes its
// directory entry durable, creating the file if needed; the parent
// directory must exist. It bypasses hooks and counters: it is for setting
// up a scenario or corrupting a file behind the code's back, and open
// handles to the file see the new bytes.
func (f *FS) WriteFile(name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clean, parent, base, err := f.lookup(name)
	if err == nil && parent == nil {
		err = syscall.EISDIR
	}
	if err != nil {
		return pathErr("writefile", clean, err)
	}
	n, ok := parent.entries[base]
	if ok && n.dir {
		return pathErr("writefile", clean, syscall.EISDIR)
	}
	if !ok {
		n = &inode{}
		parent.entries[base] = n
	}
	parent.durableEntries[base] = n
	n.data = bytes.Clone(data)
	n.durable = bytes.Clone(data)
	return nil
}

// file is an open handle. It points at the inode, not the name, so it keeps
// working after the name is renamed or removed, as on POSIX.
type file struct {
	fs     *FS
	n      *inode
	name   string
	gen    uint64
	rd, wr bool
	closed bool // guarded by fs.mu
}

// check reports why h cannot be used; the caller holds fs.mu.
func (h *file) check(op string) error {
	switch {
	case h.closed:
		return pathErr(op, h.name, os.ErrClosed)
	case h.gen != h.fs.gen:
		return pathErr(op, h.name, ErrPowerCut)
	}
	return nil
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	if err := h.fs.callHook(OpRead, h.name); err != nil {
		return 0, err
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("read"); err != nil {
		return 0, err
	}
	if !h.rd {
		return 0, pathErr("read", h.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("read", h.name, syscall.EINVAL)
	}
	h.fs.counts[OpRead]++
	if len(p) == 0 {
		return 0, nil
	}
	if off >= int64(len(h.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, h.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (h *file) WriteAt(p []byte, off int64) (int, error) {
	herr := h.fs.callHook(OpWrite, h.name)
	var sw *ShortWrite
	if herr != nil && !errors.As(herr, &sw) {
		return 0, herr
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("write"); err != nil {
		return 0, err
	}
	if !h.wr {
		return 0, pathErr("write", h.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("write", h.name, syscall.EINVAL)
	}
	if sw != nil {
		n := min(max(sw.N, 0), len(p))
		h.write(p[:n], off)
		err := sw.Err
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		return n, err
	}
	h.write(p, off)
	h.fs.counts[OpWrite]++
	return len(p), nil
}

// write applies p at off, zero-filling any gap past the end.
func (h *file) write(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	if end := int(off) + len(p); end > len(h.n.data) {
		h.n.data = append(h.n.data, make([]byte, end-len(h.n.data))...)
	}
	copy(h.n.data[off:], p)
}

func (h *file) Sync() error {
	if err := h.fs.callHook(OpSync, h.name); err != nil {
		return err
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("sync"); err != nil {
		return err
	}
	h.n.durable = bytes.Clone(h.n.data)
	h.fs.counts[OpSync]++
	return nil
}

func (h *file) Truncate(size int64) error {
	if err := h.fs.callHook(OpTruncate, h.name); err != nil {
		return err
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("truncate"); err != nil {
		return err
	}
	if !h.wr {
		return pathErr("truncate", h.name, syscall.EBADF)
	}
	if size < 0 {
		return pathErr("truncate", h.name, syscall.EINVAL)
	}
	if size <= int64(len(h.n.data)) {
		h.n.data = h.n.data[:size]
	} else {
		h.n.data = append(h.n.data, make([]byte, int(size)-len(h.n.data))...)
	}
	h.fs.counts[OpTruncate]++
	return nil
}

func (h *file) Size() (int64, error) {
	if err := h.fs.callHook(OpSize, h.name); err != nil {
		return 0, err
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("size"); err != nil {
		return 0, err
	}
	h.fs.counts[OpSize]++
	return int64(len(h.n.data)), nil
}

func (h *file) Close() error {
	if err := h.fs.callHook(OpClose, h.name); err != nil {
		return err
	}
	h.fs.mu.Lock()
	defer h.fs.mu.Unlock()
	if err := h.check("close"); err != nil {
		return err
	}
	h.closed = true
	h.fs.counts[OpClose]++
	return nil
}
