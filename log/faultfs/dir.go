package faultfs

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"syscall"

	"github.com/spoolq/spool/log"
)

// The log.FS methods. Each changes only current directory entries (and
// MkdirAll durable ones too, see the package documentation); SyncDir is
// what makes a directory's entries durable.

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
	clean, parent, base, err := f.lookupLocked(name)
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
	d, err := f.walkLocked(parts, false)
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
	oldClean, oldParent, oldBase, err := f.lookupLocked(oldpath)
	newClean, newParent, newBase, nerr := f.lookupLocked(newpath)
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
	clean, parent, base, err := f.lookupLocked(name)
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
	clean, parent, base, err := f.lookupLocked(path)
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
	d, err := f.walkLocked(parts, false)
	if err != nil {
		return pathErr("syncdir", clean, err)
	}
	d.durableEntries = cloneEntries(d.entries)
	f.counts[OpSyncDir]++
	return nil
}
