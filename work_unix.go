//go:build unix

package main

import (
	"os/exec"
	"syscall"
)

// ownGroup puts cmd in a process group of its own, so the Ctrl-C a
// terminal sends spool's group does not reach it: spool lets it finish.
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// killGroup SIGKILLs cmd's process group: the command and whatever it
// started (sh -c 'sleep 60' leaves a sleep holding spool's stdout).
func killGroup(cmd *exec.Cmd) {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // gone already: nothing to do
}
