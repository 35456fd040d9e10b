//go:build unix

package api

import "syscall"

// openFileLimit returns this process's open-file limit (RLIMIT_NOFILE).
// Go raises the soft limit to the hard one at start, so the soft limit is
// the one the process has.
func openFileLimit() (int64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, err
	}
	return int64(min(uint64(rl.Cur), 1<<40)), nil
}
