package main

// Starting `spool serve` for the root tests, two ways: in-process through
// run, where the address comes from the api.Service itself (cmdEnv's
// listening hook), and the built binary as a child process that a test may
// SIGKILL, where it comes from the JSON "spool: listening" log line.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
)

// startTimeout bounds how long a server may take to listen: a restart
// replays the data directory, which under -race is slow.
const startTimeout = 20 * time.Second

// syncBuffer is a bytes.Buffer safe to write from the server's goroutines
// (or a child's stderr copier) while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// inProcServer is `spool serve` run in-process through run.
type inProcServer struct {
	addr string      // host:port
	base string      // http://host:port
	logs *syncBuffer // its log, in the default text format
	// stop stops it as SIGTERM would and returns run's error; it may be
	// called again (and is, at cleanup) and returns the same.
	stop func() error
}

// startServe runs `spool serve --addr 127.0.0.1:0 --data data args...`
// in-process and returns once it listens.
func startServe(tb testing.TB, data string, args ...string) *inProcServer {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	listening := make(chan *api.Service, 1)
	env := &cmdEnv{ctx: ctx, stdin: strings.NewReader(""), stdout: io.Discard, stderr: logs,
		listening: func(svc *api.Service) { listening <- svc }}
	done := make(chan error, 1)
	go func() { done <- env.run(append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, args...)) }()
	var once sync.Once
	var stopErr error
	stop := func() error {
		once.Do(func() { cancel(); stopErr = <-done })
		return stopErr
	}
	// Registered after the caller's t.TempDir (and a mount, in the
	// disk-full test), so it runs before they are removed.
	tb.Cleanup(func() { stop() })
	timer := time.NewTimer(startTimeout)
	defer timer.Stop()
	select {
	case svc := <-listening:
		return &inProcServer{addr: svc.Addr(), base: svc.URL(), logs: logs, stop: stop}
	case err := <-done:
		done <- err // for stop
		tb.Fatalf("serve exited early: %v\n%s", err, logs.String())
	case <-timer.C:
		tb.Fatalf("serve did not listen within %s:\n%s", startTimeout, logs.String())
	}
	return nil
}

// serveArgs is the command line of a child `spool serve` on a free port.
// Its log is JSON, so the test reads the listening address (and any line
// it checks) as fields, not by matching text.
func serveArgs(data string, args ...string) []string {
	return append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-format", "json"}, args...)
}

// serveUnderLimit is a child `spool serve` under an open-file limit of
// limit, hard and soft (sh's ulimit -n without -H or -S sets both; Go
// raises the soft limit to the hard one at start). ctx bounds it.
func serveUnderLimit(ctx context.Context, limit int, bin, data string, args ...string) *exec.Cmd {
	sh := []string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, limit), bin}
	return exec.CommandContext(ctx, "sh", append(sh, serveArgs(data, args...)...)...)
}

// childServer is one run of the spool binary.
type childServer struct {
	cmd  *exec.Cmd
	addr string        // host:port, once waitListening returned
	base string        // http://host:port, likewise
	logs *syncBuffer   // stderr: JSON log lines, and a race report if any
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, once done is closed
}

// startBinary starts `spool serve` of bin on data and returns once it
// listens.
// waitLog waits, polling with a deadline, until the child's log has a
// line holding text (a SIGHUP's reload line, say).
func (s *childServer) waitLog(tb testing.TB, text string) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(s.logs.String(), text); {
		if time.Now().After(deadline) {
			tb.Fatalf("no %q in the log within 10s:\n%s", text, s.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startBinary(tb testing.TB, bin, data string, args ...string) *childServer {
	tb.Helper()
	s := startChild(tb, exec.Command(bin, serveArgs(data, args...)...))
	s.waitListening(tb)
	return s
}

// startChild starts cmd, a spool serve command line (perhaps behind a
// shell that sets limits) without waiting for it to listen, keeping its
// log and exit status. It is killed at cleanup if still running.
func startChild(tb testing.TB, cmd *exec.Cmd) *childServer {
	tb.Helper()
	s := &childServer{logs: &syncBuffer{}, done: make(chan struct{}), cmd: cmd}
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { s.err = s.cmd.Wait(); close(s.done) }()
	tb.Cleanup(func() { s.cmd.Process.Kill(); <-s.done })
	return s
}

// waitListening waits until the server logs where it listens.
func (s *childServer) waitListening(tb testing.TB) {
	tb.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		for _, r := range s.records("INFO") {
			if r.Msg == "spool: listening" && r.Addr != "" {
				s.addr, s.base = r.Addr, api.BaseURL(r.Addr)
				return
			}
		}
		select {
		case <-s.done:
			tb.Fatalf("spool serve exited before listening: %v\n%s", s.err, s.logs.String())
		default:
		}
		time.Sleep(5 * time.Millisecond) // polling the log with a deadline
	}
	tb.Fatalf("spool serve did not report its address:\n%s", s.logs.String())
}

// logRecord is one JSON log line of a child server: the fields the tests
// read, and the whole line.
type logRecord struct {
	Level          string `json:"level"`
	Msg            string `json:"msg"`
	Addr           string `json:"addr"`
	MaxConnections int    `json:"max_connections"`
	line           string
}

// records returns the server's log lines at level so far (every line
// when level is ""). Lines that are not JSON (a race report) are skipped.
func (s *childServer) records(level string) []logRecord {
	var recs []logRecord
	for line := range strings.Lines(s.logs.String()) {
		r := logRecord{line: line}
		if json.Unmarshal([]byte(line), &r) == nil && (level == "" || r.Level == level) {
			recs = append(recs, r)
		}
	}
	return recs
}

// kill SIGKILLs the server and waits for it to be gone. It may have
// exited already, but only cleanly (after a SIGTERM).
func (s *childServer) kill(tb testing.TB) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		tb.Fatalf("SIGKILL: %v", err)
	}
	<-s.done
	s.checkRace(tb)
	if st, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && !st.Signaled() && st.ExitStatus() != 0 {
		tb.Errorf("spool serve exited on its own with status %d before the SIGKILL:\n%s", st.ExitStatus(), s.logs.String())
	}
}

// stop SIGTERMs the server and requires a clean exit (status 0) within
// 30 s.
func (s *childServer) stop(tb testing.TB) { s.stopWithin(tb, 30*time.Second) }

// stopWithin SIGTERMs the server and requires a clean exit (status 0)
// within d.
func (s *childServer) stopWithin(tb testing.TB, d time.Duration) {
	tb.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("SIGTERM: %v", err)
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-s.done:
	case <-timer.C:
		tb.Fatalf("spool serve did not stop within %s of SIGTERM:\n%s", d, s.logs.String())
	}
	s.checkRace(tb)
	if s.err != nil {
		tb.Fatalf("spool serve exited with %v after SIGTERM:\n%s", s.err, s.logs.String())
	}
}

// checkRace fails the test if the server (built with -race) reported a
// data race.
func (s *childServer) checkRace(tb testing.TB) {
	tb.Helper()
	if l := s.logs.String(); strings.Contains(l, "WARNING: DATA RACE") {
		tb.Errorf("the server reported a data race:\n%s", l)
	}
}

// tornTailRepairs counts the torn tails the server says it cut off at
// startup (message log and state log).
func (s *childServer) tornTailRepairs() int {
	n := 0
	for _, r := range s.records("WARN") {
		if strings.Contains(r.Msg, "cut off torn tail") || strings.Contains(r.Msg, "cut torn tail off") {
			n++
		}
	}
	return n
}
