package faultfs

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/spoolq/spool/log"
)

var (
	_ log.FS   = (*FS)(nil)
	_ log.File = (*file)(nil)
)

// FS is an in-memory log.FS with power-loss simulation and fault hooks.
// The zero value is not usable; call [New].
//
// mu guards the fields below, every inode and every handle's closed flag.
// Exported methods take it; the unexported helpers named ...Locked expect
// it held; callHook must run without it, so that a hook may call back in.
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

// ReadFile returns the current bytes of name, bypassing hooks and
// counters, so a test can inspect what the code under test wrote.
func (f *FS) ReadFile(name string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, clean, err := f.fileAtLocked(name, false)
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
	n, clean, err := f.fileAtLocked(name, true)
	if err != nil {
		return nil, pathErr("durable", clean, err)
	}
	return bytes.Clone(n.durable), nil
}

// WriteFile sets name's current and durable bytes to data and makes its
// directory entry durable, creating the file if needed; the parent
// directory must exist. It bypasses hooks and counters: it is for setting
// up a scenario or corrupting a file behind the code's back, and open
// handles to the file see the new bytes.
func (f *FS) WriteFile(name string, data []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	clean, parent, base, err := f.lookupLocked(name)
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

// walkLocked follows parts from the root through current entries, or
// durable ones, and returns the directory they name. The caller holds f.mu.
func (f *FS) walkLocked(parts []string, durable bool) (*inode, error) {
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

// lookupLocked resolves name to its parent directory and base name
// (current entries). For the root, parent is nil and base is empty. The
// caller holds f.mu.
func (f *FS) lookupLocked(name string) (clean string, parent *inode, base string, err error) {
	clean, parts, err := split(name)
	if err != nil || len(parts) == 0 {
		return clean, nil, "", err
	}
	parent, err = f.walkLocked(parts[:len(parts)-1], false)
	if err != nil {
		return clean, nil, "", err
	}
	return clean, parent, parts[len(parts)-1], nil
}

// fileAtLocked resolves name to a file's inode through current entries, or
// durable ones, and returns the cleaned name for errors. The caller holds
// f.mu.
func (f *FS) fileAtLocked(name string, durable bool) (*inode, string, error) {
	clean, parts, err := split(name)
	if err != nil {
		return nil, clean, err
	}
	if len(parts) == 0 {
		return nil, clean, syscall.EISDIR
	}
	d, err := f.walkLocked(parts[:len(parts)-1], durable)
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

func pathErr(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}
