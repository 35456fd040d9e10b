//go:build unix

package crashtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Kill runs the top-level test name of the current test binary as a child
// with env added to this process's environment, waits up to firstLine for
// the first complete line on its stdout, lets it run for a random time in
// [minRun, maxRun] after that, SIGKILLs it, and returns every complete
// line it wrote to stdout (without the newline), whether stdout ended in a
// line the kill cut short (not among lines), and what it wrote to stderr.
//
// It fails tb, after killing and reaping the child, if the child cannot be
// started, exits on its own, prints no line within firstLine, cannot be
// signalled or does not die of SIGKILL, or if reading its stdout fails.
// The child is always reaped before Kill returns or fails tb. firstLine
// only bounds a hung child; it never paces the test.
func Kill(tb testing.TB, name string, env []string, firstLine, minRun, maxRun time.Duration) (lines []string, cut bool, stderr []byte) {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(name)+"$", "-test.count=1")
	cmd.Env = append(os.Environ(), env...)
	var errBuf bytes.Buffer
	cmd.Stderr = &errBuf
	pipe, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := cmd.StdinPipe(); err != nil { // closed by Wait
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start child %s %q: %v", name, env, err)
	}

	type output struct {
		stdout []byte
		err    error // reading the pipe failed
	}
	first := make(chan struct{})
	outc := make(chan output, 1)
	go func() {
		var out output
		buf := make([]byte, 32<<10)
		for lined := false; ; {
			n, err := pipe.Read(buf)
			if !lined && slices.Contains(buf[:n], '\n') {
				close(first)
				lined = true
			}
			out.stdout = append(out.stdout, buf[:n]...)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					out.err = err
				}
				outc <- out
				return
			}
		}
	}()
	// reap kills the child if kill is set, reads the rest of its stdout (to
	// EOF: a dead child's end of the pipe is closed) and reaps it.
	var out output
	reap := func(kill bool) error {
		if kill {
			cmd.Process.Kill()
		}
		out = <-outc
		return cmd.Wait()
	}
	fail := func(werr error, format string, args ...any) {
		tb.Helper()
		const most = 4 << 10
		tail := out.stdout[max(0, len(out.stdout)-most):]
		tb.Fatalf("child %s %q: "+format+" (%v)\nstdout (last %d of %d bytes): %q\nstderr:\n%s",
			append(append([]any{name, env}, args...), werr, len(tail), len(out.stdout), tail, errBuf.Bytes())...)
	}

	waitLine := time.NewTimer(firstLine)
	select {
	case <-first:
		waitLine.Stop()
	case out = <-outc:
		waitLine.Stop()
		fail(cmd.Wait(), "exited on its own")
	case <-waitLine.C:
		fail(reap(true), "no line within %s", firstLine)
	}
	// The timer only picks the moment of the kill; nothing waits on it for
	// correctness.
	run := time.NewTimer(rand.N(maxRun-minRun+1) + minRun)
	select {
	case <-run.C:
	case out = <-outc:
		run.Stop()
		fail(cmd.Wait(), "exited on its own")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		fail(reap(true), "cannot SIGKILL it: %v", err)
	}
	werr := reap(false)
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		fail(werr, "did not die of SIGKILL")
	}
	if out.err != nil {
		fail(werr, "reading stdout: %v", out.err)
	}
	lines = strings.SplitAfter(string(out.stdout), "\n")
	last := lines[len(lines)-1] // "" after a final newline
	lines = lines[:len(lines)-1]
	for i := range lines {
		lines[i] = strings.TrimSuffix(lines[i], "\n")
	}
	return lines, last != "", errBuf.Bytes()
}

// Child starts the child side of a crash test, the test Kill runs: it
// returns the value of the environment variable key and makes the process
// exit (status 3) when its stdin reaches EOF, that is when the parent is
// gone. If key is unset or empty the test was not started by Kill, and
// Child skips tb.
func Child(tb testing.TB, key string) string {
	tb.Helper()
	v := os.Getenv(key)
	if v == "" {
		tb.Skipf("child of a crash test: runs only when its parent sets %s", key)
	}
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(3)
	}()
	return v
}

// Die reports the failure of a crash test's child on stderr and exits with
// status 2, from any goroutine; the parent's Kill then fails with the
// message, as the child exited on its own.
func Die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "crash child: "+format+"\n", args...)
	os.Exit(2)
}
