//go:build unix

package api

import "syscall"

// FreeBytes returns the bytes available to unprivileged writers on the
// filesystem holding path, or -1 if it cannot tell.
func FreeBytes(path string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert // field types differ by platform
}
