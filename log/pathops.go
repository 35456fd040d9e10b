package log

import (
	"errors"
	"os"
)

// PathOps adapts an FS to the path-based steps that code beside the log
// takes on files it does not write through a File: the state log (package
// index) repairs and fsyncs the segments tidwall/wal writes. Passing one
// built on the queue's FS puts those steps behind the same seam, and the
// same fault injection, as everything else spool persists.
type PathOps struct{ FS }

// TruncateSync cuts the file at path to size and makes that durable.
func (p PathOps) TruncateSync(path string, size int64) error {
	f, err := p.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

// SyncFile fsyncs the file at path through a descriptor of its own: fsync
// flushes a file's pages whichever descriptor wrote them.
func (p PathOps) SyncFile(path string) error {
	f, err := p.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// WriteZeros writes zeros over [from, to) of the file at path, without
// fsyncing them: the state log preallocates past tidwall's writes with it.
func (p PathOps) WriteZeros(path string, from, to int64) error {
	f, err := p.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	for off := from; off < to && err == nil; {
		n := min(int64(len(zeroBlock)), to-off)
		_, err = f.WriteAt(zeroBlock[:n], off)
		off += n
	}
	return errors.Join(err, f.Close())
}
