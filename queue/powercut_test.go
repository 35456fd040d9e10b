//go:build unix

package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/spoolq/spool/log"
)

// lossyFS is the real file system with a power switch, for power-cut
// tests of a whole broker. log/faultfs keeps files in memory, which the
// broker cannot run on: tidwall/wal (the state log) writes through package
// os. lossyFS remembers, for every file written through it, how many bytes
// its last fsync covered, and every create, rename and remove that no
// fsync of its directory has made durable yet. Cut switches it off (every
// call fails from then on, as the disk does for a process that lost its
// power); Restore then leaves on disk what a power cut at that moment
// would have kept:
//
//   - the creates, renames and removes not made durable are undone, the
//     newest first (a file renamed over or removed comes back);
//   - every file written through it is cut back to what its last fsync
//     covered (nothing, if it was never fsynced), and the zeros it ended
//     in at that fsync are zeros again: spool preallocates zeros past its
//     appends, and an unsynced write over them is lost like any other;
//   - each state log's newest segment, which tidwall writes directly, is
//     cut back to what its last fsync covered: the state log fsyncs it
//     through this FS (index.Files). Its older segments stay whole, as
//     tidwall fsyncs a segment before starting the next.
//
// Simplifications: spool never overwrites durable bytes other than those
// zeros, except by truncating, so no other overwrite is undone; RemoveAll is durable at once, and so are the renames
// and removes tidwall makes itself (state-log truncation after a
// snapshot, which fsyncs the directory right after).
type lossyFS struct {
	mu      sync.Mutex
	root    string
	stash   string // replaced and removed files wait here, to be put back
	nstash  int
	off     bool
	synced  map[string]durableExtent // path → what its last fsync covered
	written map[string]bool          // files written through this FS since the last Restore
	pending []lossyOp
	// beforeSync, if set, runs at the start of every file fsync, outside
	// mu: a test holds an fsync there.
	beforeSync func(path string)
}

type lossyOp struct {
	kind       string // "create", "mkdir", "rename", "remove"
	dir        string // the directory whose fsync makes it durable
	path, from string
	saved      string         // for rename over a file and remove: the stashed file
	savedExt   *durableExtent // what of it was durable; nil: nothing
}

// durableExtent is what a file's last fsync made durable: its first size
// bytes, those from zeroFrom on all zeros.
type durableExtent struct{ size, zeroFrom int64 }

// durableNow is what an fsync of the file at path, size bytes long, makes
// durable: it finds where the zeros it ends in begin.
func durableNow(path string, size int64) (durableExtent, error) {
	f, err := os.Open(path)
	if err != nil {
		return durableExtent{}, err
	}
	defer f.Close()
	var buf [4096]byte
	end := size
	for end > 0 {
		from := max(end-int64(len(buf)), 0)
		b := buf[:end-from]
		if _, err := f.ReadAt(b, from); err != nil {
			return durableExtent{}, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] != 0 {
				return durableExtent{size: size, zeroFrom: from + int64(i) + 1}, nil
			}
		}
		end = from
	}
	return durableExtent{size: size, zeroFrom: end}, nil
}

var errPowerOff = fmt.Errorf("power cut: %w", syscall.EIO)

func newLossyFS(root, stash string) *lossyFS {
	return &lossyFS{root: root, stash: stash, synced: map[string]durableExtent{}, written: map[string]bool{}}
}

func (l *lossyFS) check() error {
	if l.off {
		return errPowerOff
	}
	return nil
}

type lossyFile struct {
	log.File
	l    *lossyFS
	path string
}

func (f lossyFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.l.locked(f.l.check); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f lossyFile) Truncate(size int64) error {
	if err := f.l.locked(f.l.check); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

func (f lossyFile) Sync() error {
	if f.l.beforeSync != nil {
		f.l.beforeSync(f.path)
	}
	f.l.mu.Lock()
	defer f.l.mu.Unlock()
	if err := f.l.check(); err != nil {
		return err
	}
	if err := f.File.Sync(); err != nil {
		return err
	}
	size, err := f.File.Size()
	if err != nil {
		return err
	}
	ext, err := durableNow(f.path, size)
	if err != nil {
		return err
	}
	f.l.synced[f.path] = ext
	return nil
}

func (l *lossyFS) locked(fn func() error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fn()
}

func (l *lossyFS) OpenFile(name string, flag int, perm fs.FileMode) (log.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return nil, err
	}
	_, statErr := os.Lstat(name)
	f, err := log.OS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	if flag&os.O_CREATE != 0 && errors.Is(statErr, fs.ErrNotExist) {
		l.pending = append(l.pending, lossyOp{kind: "create", dir: filepath.Dir(name), path: name})
		delete(l.synced, name)
	}
	if flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		l.written[name] = true
	}
	return lossyFile{File: f, l: l, path: name}, nil
}

func (l *lossyFS) ReadDir(dir string) ([]string, error) {
	if err := l.locked(l.check); err != nil {
		return nil, err
	}
	return log.OS.ReadDir(dir)
}

// stashLocked hard-links the file at path into the stash, returning the
// stashed path ("" if there is no file there).
func (l *lossyFS) stashLocked(path string) (string, error) {
	if st, err := os.Lstat(path); err != nil || !st.Mode().IsRegular() {
		return "", nil
	}
	l.nstash++
	saved := filepath.Join(l.stash, fmt.Sprint(l.nstash))
	return saved, os.Link(path, saved)
}

func (l *lossyFS) syncedExtent(path string) *durableExtent {
	if ext, ok := l.synced[path]; ok {
		return &ext
	}
	return nil
}

func (l *lossyFS) Rename(oldpath, newpath string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	saved, err := l.stashLocked(newpath)
	if err != nil {
		return err
	}
	op := lossyOp{kind: "rename", dir: filepath.Dir(newpath), path: newpath, from: oldpath, saved: saved, savedExt: l.syncedExtent(newpath)}
	if err := log.OS.Rename(oldpath, newpath); err != nil {
		return err
	}
	l.rekeyLocked(oldpath, newpath)
	l.pending = append(l.pending, op)
	return nil
}

// rekeyLocked moves what is known of the files at or under from to to.
func (l *lossyFS) rekeyLocked(from, to string) {
	for _, m := range []map[string]durableExtent{l.synced} {
		for p, n := range m {
			if rest, ok := under(p, from); ok {
				delete(m, p)
				m[to+rest] = n
			}
		}
	}
	for p := range l.written {
		if rest, ok := under(p, from); ok {
			delete(l.written, p)
			l.written[to+rest] = true
		}
	}
}

func under(p, dir string) (string, bool) {
	if p == dir {
		return "", true
	}
	if strings.HasPrefix(p, dir+string(filepath.Separator)) {
		return p[len(dir):], true
	}
	return "", false
}

func (l *lossyFS) Remove(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	saved, err := l.stashLocked(name)
	if err != nil {
		return err
	}
	op := lossyOp{kind: "remove", dir: filepath.Dir(name), path: name, saved: saved, savedExt: l.syncedExtent(name)}
	if err := log.OS.Remove(name); err != nil {
		return err
	}
	delete(l.synced, name)
	delete(l.written, name)
	l.pending = append(l.pending, op)
	return nil
}

func (l *lossyFS) RemoveAll(path string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	if err := log.OS.RemoveAll(path); err != nil {
		return err
	}
	l.pending = slices.DeleteFunc(l.pending, func(op lossyOp) bool {
		_, in := under(op.path, path)
		return in
	})
	for p := range l.synced {
		if _, in := under(p, path); in {
			delete(l.synced, p)
		}
	}
	for p := range l.written {
		if _, in := under(p, path); in {
			delete(l.written, p)
		}
	}
	return nil
}

func (l *lossyFS) MkdirAll(dir string, perm fs.FileMode) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		created = append(created, d)
	}
	if err := log.OS.MkdirAll(dir, perm); err != nil {
		return err
	}
	for _, d := range slices.Backward(created) {
		l.pending = append(l.pending, lossyOp{kind: "mkdir", dir: filepath.Dir(d), path: d})
	}
	return nil
}

func (l *lossyFS) SyncDir(dir string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.check(); err != nil {
		return err
	}
	if err := log.OS.SyncDir(dir); err != nil {
		return err
	}
	dir = filepath.Clean(dir)
	l.pending = slices.DeleteFunc(l.pending, func(op lossyOp) bool { return op.dir == dir })
	return nil
}

// Cut switches the power off: every call fails from now on.
func (l *lossyFS) Cut() {
	l.mu.Lock()
	l.off = true
	l.mu.Unlock()
}

// Restore makes the disk what the power cut left (see lossyFS), then
// switches the power back on, everything on disk now durable.
func (l *lossyFS) Restore() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for _, op := range slices.Backward(l.pending) {
		switch op.kind {
		case "create":
			errs = append(errs, ignoreMissing(os.Remove(op.path)))
			delete(l.synced, op.path)
			delete(l.written, op.path)
		case "mkdir":
			errs = append(errs, os.RemoveAll(op.path))
		case "rename":
			errs = append(errs, os.Rename(op.path, op.from))
			l.rekeyLocked(op.path, op.from)
			if op.saved != "" {
				errs = append(errs, os.Rename(op.saved, op.path))
				l.written[op.path] = true
				l.restoreExtent(op.path, op.savedExt)
			}
		case "remove":
			if op.saved != "" {
				errs = append(errs, os.Rename(op.saved, op.path))
				l.written[op.path] = true
				l.restoreExtent(op.path, op.savedExt)
			}
		}
	}
	l.pending = nil
	cut := func(path string) {
		st, err := os.Stat(path)
		if err != nil {
			return
		}
		ext := l.synced[path] // none: nothing was durable
		if st.Size() > ext.size {
			errs = append(errs, os.Truncate(path, ext.size))
		}
		if to := min(ext.size, st.Size()); ext.zeroFrom < to {
			errs = append(errs, log.PathOps{FS: log.OS}.WriteZeros(path, ext.zeroFrom, to))
		}
	}
	for path := range l.written {
		cut(path)
	}
	// Each state log's newest segment; the state dirs are found on disk.
	errs = append(errs, filepath.WalkDir(l.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() || d.Name() != stateDirName {
			return err
		}
		names, err := log.OS.ReadDir(path)
		if err != nil {
			return err
		}
		if n := len(names); n > 0 {
			cut(filepath.Join(path, names[n-1]))
		}
		return nil
	}))
	// What is left is durable.
	l.synced, l.written = map[string]durableExtent{}, map[string]bool{}
	errs = append(errs, filepath.WalkDir(l.root, func(path string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if st, serr := os.Stat(path); serr == nil {
				ext, eerr := durableNow(path, st.Size())
				l.synced[path] = ext
				errs = append(errs, eerr)
			}
		}
		return err
	}))
	l.off = false
	return errors.Join(errs...)
}

func (l *lossyFS) restoreExtent(path string, ext *durableExtent) {
	if ext != nil {
		l.synced[path] = *ext
	} else {
		delete(l.synced, path)
	}
}

func ignoreMissing(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
