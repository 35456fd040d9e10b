package log

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
)

// FS is the file system the log writes through. Production code uses OS;
// tests inject faults (failed writes, failed fsyncs, a full disk) and
// simulate power loss with log/faultfs. Everything spool persists goes
// through an FS, so one fault layer covers it all.
type FS interface {
	// OpenFile opens name with os.OpenFile flags.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// ReadDir returns the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	// Rename renames oldpath to newpath, replacing newpath. It is not
	// durable until SyncDir of the directory returns.
	Rename(oldpath, newpath string) error
	// Remove deletes a file or an empty directory; not durable until SyncDir.
	Remove(name string) error
	// RemoveAll deletes path and everything below it.
	RemoveAll(path string) error
	// MkdirAll creates dir and any missing parents.
	MkdirAll(dir string, perm fs.FileMode) error
	// SyncDir makes the creates, renames and removes in dir durable.
	SyncDir(dir string) error
}

// File is an open file. Writes are positional: the log never depends on a
// shared file offset, so readers and the writer can use one handle.
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes every byte written so far durable.
	Sync() error
	Truncate(size int64) error
	Size() (int64, error)
	Close() error
}

// OS is the real file system.
var OS FS = osFS{}

type osFS struct{}

var (
	_ FS   = osFS{}
	_ File = osFile{}
)

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) ReadDir(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	slices.Sort(names)
	return names, nil
}

func (osFS) Rename(oldpath, newpath string) error        { return os.Rename(oldpath, newpath) }
func (osFS) Remove(name string) error                    { return os.Remove(name) }
func (osFS) RemoveAll(path string) error                 { return os.RemoveAll(path) }
func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// MkdirDurable creates dir and any missing parents, and fsyncs the
// directory holding each one it created, so that the new directories
// survive power loss (a file fsynced inside a directory whose own entry
// was never made durable is lost with it). A dir that exists costs one
// ReadDir and nothing else.
func MkdirDurable(fsys FS, dir string) error {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := fsys.ReadDir(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	for _, d := range slices.Backward(missing) {
		if err := fsys.SyncDir(filepath.Dir(d)); err != nil {
			return fmt.Errorf("create directory %s: %w", dir, err)
		}
	}
	return nil
}

// WriteFileAtomic replaces path with data so that after a crash or power
// loss the file holds either the old or the new bytes, never a mix: write a
// temp file, fsync it, rename it over path, fsync the directory. (Skipping
// the last step is the classic bug: the rename may not survive power loss.)
func WriteFileAtomic(fsys FS, path string, data []byte) error {
	tmp := path + tempSuffix
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = f.WriteAt(data, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err == nil {
		err = fsys.SyncDir(filepath.Dir(path))
	}
	if err != nil {
		return errors.Join(fmt.Errorf("write %s: %w", path, err), removeIfExists(fsys, tmp))
	}
	return nil
}

func removeIfExists(fsys FS, name string) error {
	if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
