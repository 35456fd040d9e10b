//go:build !linux

package bench

import "time"

// Off Linux the bench measures what it can through the Go runtime alone:
// no process CPU times, no /proc RSS, no disk flush counters.

func processCPU() (time.Duration, bool) { return 0, false }

func pidCPU(int) (time.Duration, bool) { return 0, false }

func vmRSS(string) (int64, bool) { return 0, false }

// ProcStatusBytes: there is no /proc/<pid>/status here.
func ProcStatusBytes(string, string) (int64, bool) { return 0, false }

func isTmpfs(string) bool { return false }

func diskFlushes(string) (func() (int64, bool), string, bool) { return nil, "", false }
