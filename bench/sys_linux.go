//go:build linux

package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processCPU returns the CPU time (user + system) this process has used.
func processCPU() (time.Duration, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), true
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports (the kernel ABI fixes it).
const clockTicks = 100

// pidCPU returns the CPU time (user + system) process pid has used, from
// /proc/PID/stat.
func pidCPU(pid int) (time.Duration, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted after its closing one.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}

// vmRSS returns VmRSS of /proc/<pid>/status ("self" for this process).
func vmRSS(pid string) (int64, bool) { return ProcStatusBytes(pid, "VmRSS") }

// ProcStatusBytes returns a field of /proc/<pid>/status given in kB
// (VmRSS, VmHWM, ...) in bytes, for pid ("self" for this process).
func ProcStatusBytes(pid, field string) (int64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			f := strings.Fields(rest)
			if len(f) != 2 || f[1] != "kB" {
				return 0, false
			}
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return 0, false
			}
			return kb << 10, true
		}
	}
	return 0, false
}

// tmpfsMagic is TMPFS_MAGIC of statfs(2).
const tmpfsMagic = 0x01021994

// isTmpfs reports whether dir is on tmpfs, where fsync costs nothing.
func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false
	}
	return int64(st.Type) == tmpfsMagic
}

// diskFlushes returns a reader of the "flush requests completed" counter
// (field 16 of /sys/block/DEV/stat, Linux ≥ 5.5) of the disk holding dir,
// and the disk's name. The counter is the whole disk's: every process,
// and the filesystem's own journal flushes, count. ok is false when dir
// is not on a block device (tmpfs, overlay) or the kernel lacks the field.
func diskFlushes(dir string) (read func() (int64, bool), name string, ok bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil, "", false
	}
	dev := uint64(st.Dev) // a uint32 on some architectures
	major := (dev>>8)&0xfff | (dev>>32)&^0xfff
	minor := dev&0xff | (dev>>12)&^0xff
	sys, err := filepath.EvalSymlinks(fmt.Sprintf("/sys/dev/block/%d:%d", major, minor))
	if err != nil {
		return nil, "", false
	}
	if _, err := os.Stat(filepath.Join(sys, "partition")); err == nil {
		sys = filepath.Dir(sys) // flushes are counted on the whole disk
	}
	path := filepath.Join(sys, "stat")
	read = func() (int64, bool) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, false
		}
		f := strings.Fields(string(b))
		if len(f) < 17 {
			return 0, false
		}
		n, err := strconv.ParseInt(f[15], 10, 64)
		return n, err == nil
	}
	if _, ok := read(); !ok {
		return nil, "", false
	}
	return read, filepath.Base(sys), true
}
