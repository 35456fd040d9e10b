package faultfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
)

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

// checkLocked reports why h cannot be used; the caller holds fs.mu.
func (h *file) checkLocked(op string) error {
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
	if err := h.checkLocked("read"); err != nil {
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
	if err := h.checkLocked("write"); err != nil {
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
		h.writeLocked(p[:n], off)
		err := sw.Err
		if err == nil && n < len(p) {
			err = io.ErrShortWrite
		}
		return n, err
	}
	h.writeLocked(p, off)
	h.fs.counts[OpWrite]++
	return len(p), nil
}

// writeLocked applies p at off, zero-filling any gap past the end; the
// caller holds fs.mu.
func (h *file) writeLocked(p []byte, off int64) {
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
	if err := h.checkLocked("sync"); err != nil {
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
	if err := h.checkLocked("truncate"); err != nil {
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
	if err := h.checkLocked("size"); err != nil {
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
	if err := h.checkLocked("close"); err != nil {
		return err
	}
	h.closed = true
	h.fs.counts[OpClose]++
	return nil
}
