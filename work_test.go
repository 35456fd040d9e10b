package main

// spool work against an in-process server, with real shell commands; the
// second-signal test runs the built binary. The helpers are in
// follow_test.go.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
)

// jobLine is one job's log line of spool work.
var jobLine = regexp.MustCompile(`(?m)^spool work: id=(\d+) attempts=(\d+) exit=(\S+) took=\S+: (.*)$`)

func TestWork(t *testing.T) {
	t.Run("exit 0 acks, with the body on stdin and the SPOOL_ variables set", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		dir := t.TempDir()
		mustSend(t, cl, "hello\nworld")
		r := startCLI(t, srv, "work", "q", "--max", "1", "--", "sh", "-c",
			`cat > "$1/body"; env | grep '^SPOOL_[IARQ]' | sort > "$1/env"; echo out; echo err >&2`, "sh", dir)
		if code := r.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.errOut)
		}
		if got := readFile(t, filepath.Join(dir, "body")); got != "hello\nworld" {
			t.Errorf("stdin %q, want the body", got)
		}
		want := "SPOOL_ATTEMPTS=1\nSPOOL_ID=1\nSPOOL_QUEUE=q\nSPOOL_RECEIPT=1.1\n"
		if got := readFile(t, filepath.Join(dir, "env")); got != want {
			t.Errorf("environment:\n%s\nwant:\n%s", got, want)
		}
		if r.out.String() != "out\n" {
			t.Errorf("stdout %q, want the command's", r.out)
		}
		if l := jobLine.FindAllStringSubmatch(r.errOut.String(), -1); len(l) != 1 || l[0][1] != "1" || l[0][2] != "1" || l[0][3] != "0" || l[0][4] != "acked" ||
			!strings.HasPrefix(r.errOut.String(), "err\n") {
			t.Errorf("stderr %q, want the command's, then one job line that says acked", r.errOut)
		}
		if c := counts(t, cl); c.Total != 0 {
			t.Fatalf("queue after: %+v, want it empty", c)
		}
	})

	t.Run("a failure nacks with a backoff and the last attempt sends it dead", func(t *testing.T) {
		attempts := 2
		srv, cl := newQueue(t, api.QueueConfig{MaxAttempts: &attempts})
		dir := t.TempDir()
		mustSend(t, cl, "doomed")
		r := startCLI(t, srv, "work", "q", "--max", "2", "--backoff", "1s", "--", "sh", "-c",
			`echo "$SPOOL_ATTEMPTS" >> "$1/attempts"; exit 3`, "sh", dir)
		waitUntil(t, 5*time.Second, "the message delayed after its first run", func() bool {
			msgs := peekAll(t, cl)
			return len(msgs) == 1 && msgs[0].State == "delayed" && msgs[0].Attempts == 1
		})
		if code := r.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.errOut)
		}
		if got := readFile(t, filepath.Join(dir, "attempts")); got != "1\n2\n" {
			t.Errorf("SPOOL_ATTEMPTS of the runs: %q, want 1 then 2", got)
		}
		l := jobLine.FindAllStringSubmatch(r.errOut.String(), -1)
		if len(l) != 2 || l[0][3] != "3" || l[0][4] != "nacked, ready again in 1s" || l[1][2] != "2" || l[1][4] != "nacked on its last attempt: dead" {
			t.Errorf("job lines:\n%s\nwant a nack with a 1s delay, then one that sends it dead", r.errOut)
		}
		if c := counts(t, cl); c.Dead != 1 || c.Total != 1 {
			t.Fatalf("queue after: %+v, want the message dead", c)
		}
	})

	t.Run("a run longer than the visibility timeout keeps its message", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		dir := t.TempDir()
		mustSend(t, cl, "slow")
		r := startCLI(t, srv, "work", "q", "--max", "1", "--visibility", "1s", "--", "sh", "-c",
			`echo run >> "$1/runs"; sleep 2.5`, "sh", dir)
		runs := filepath.Join(dir, "runs")
		waitUntil(t, 5*time.Second, "the run started", func() bool { return readFile(t, runs) != "" })
		// Another worker, asking for as long as the run lasts, gets nothing.
		msgs, err := cl.Queue("q").Receive(t.Context(), api.ReceiveOptions{Max: 1, Wait: 2 * time.Second})
		if err != nil || len(msgs) != 0 {
			t.Fatalf("another receive while it runs: %+v, %v; want nothing", msgs, err)
		}
		if code := r.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.errOut)
		}
		if got := readFile(t, runs); got != "run\n" {
			t.Errorf("runs %q, want one", got)
		}
		if l := jobLine.FindAllStringSubmatch(r.errOut.String(), -1); len(l) != 1 || l[0][4] != "acked" {
			t.Errorf("stderr:\n%s\nwant one job line, acked", r.errOut)
		}
		if c := counts(t, cl); c.Total != 0 {
			t.Fatalf("queue after: %+v, want it empty", c)
		}
	})

	t.Run("at most --concurrency run, and are leased, at once", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		dir := t.TempDir()
		mustSend(t, cl, "1", "2", "3", "4", "5", "6")
		r := startCLI(t, srv, "work", "q", "--concurrency", "2", "--max", "6", "--", "sh", "-c",
			`echo "start $SPOOL_ID" >> "$1/log"; while [ ! -e "$1/go" ]; do sleep 0.01; done; echo "end $SPOOL_ID" >> "$1/log"`, "sh", dir)
		logPath := filepath.Join(dir, "log")
		waitUntil(t, 5*time.Second, "two runs started", func() bool { return strings.Count(readFile(t, logPath), "start") == 2 })
		if c := counts(t, cl); c.Leased != 2 || c.Ready != 4 {
			t.Errorf("with two running: %+v, want two leased and four ready", c)
		}
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if code := r.exit(t, 10*time.Second); code != 0 {
			t.Fatalf("exit %d; stderr:\n%s", code, r.errOut)
		}
		running, most, ends := 0, 0, 0
		for line := range strings.Lines(readFile(t, logPath)) {
			if strings.HasPrefix(line, "start") {
				running++
				most = max(most, running)
			} else {
				running--
				ends++
			}
		}
		if most != 2 || ends != 6 {
			t.Errorf("at most %d running, %d ended; want 2 and 6:\n%s", most, ends, readFile(t, logPath))
		}
		if c := counts(t, cl); c.Total != 0 {
			t.Fatalf("queue after: %+v, want it empty", c)
		}
	})

	t.Run("an interrupt lets the run under way finish and be acked, and starts no other", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		dir := t.TempDir()
		mustSend(t, cl, "first", "second")
		r := startCLI(t, srv, "work", "q", "--", "sh", "-c",
			`echo "start $SPOOL_ID" >> "$1/log"; while [ ! -e "$1/go" ]; do sleep 0.01; done; echo "end $SPOOL_ID" >> "$1/log"`, "sh", dir)
		logPath := filepath.Join(dir, "log")
		waitUntil(t, 5*time.Second, "the first run started", func() bool { return readFile(t, logPath) == "start 1\n" })
		r.cancel()
		waitUntil(t, 5*time.Second, "work says it is stopping", func() bool {
			return strings.Contains(r.errOut.String(), "stopping: waiting for 1 running command to end")
		})
		if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if code := r.exit(t, 10*time.Second); code != exitInterrupted {
			t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInterrupted, r.errOut)
		}
		if got := readFile(t, logPath); got != "start 1\nend 1\n" {
			t.Errorf("runs %q, want the first alone, to its end", got)
		}
		if l := jobLine.FindAllStringSubmatch(r.errOut.String(), -1); len(l) != 1 || l[0][4] != "acked" {
			t.Errorf("stderr:\n%s\nwant one job line, acked", r.errOut)
		}
		msgs := peekAll(t, cl)
		if len(msgs) != 1 || msgs[0].ID != "2" || msgs[0].State != "ready" || msgs[0].Attempts != 0 {
			t.Fatalf("left %+v, want message 2 alone, ready and never delivered", msgs)
		}
	})

	t.Run("a subscription works as TOPIC/SUB", func(t *testing.T) {
		srv := startServe(t, t.TempDir())
		cl := api.NewClient(srv.base, "", nil)
		if _, _, err := cl.PutTopic(t.Context(), "orders", api.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := cl.PutSubscription(t.Context(), "orders", "billing", api.SubscriptionConfig{}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Publish(t.Context(), "orders", []byte("o1"), 0); err != nil {
			t.Fatal(err)
		}
		r := startCLI(t, srv, "work", "orders/billing", "--max", "1", "--", "sh", "-c", `echo "$SPOOL_QUEUE $(cat)"`)
		if code := r.exit(t, 10*time.Second); code != 0 || r.out.String() != "orders/billing o1\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.out, r.errOut)
		}
		if s, err := cl.GetSubscription(t.Context(), "orders", "billing"); err != nil || s.Counts.Total != 0 {
			t.Fatalf("subscription after: %+v, %v; want it empty", s.Counts, err)
		}
	})

	t.Run("a bad command line exits 2 and leases nothing", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		mustSend(t, cl, "x")
		for _, args := range [][]string{
			{"work", "q", "sh", "-c", "true"},                   // no --
			{"work", "q", "--"},                                 // no command
			{"work", "q", "--", "spool-no-such-command-really"}, // not found
			{"work", "q", "--concurrency", "0", "--", "true"},
		} {
			if code, _, errOut := runAsMain(t, nil, append([]string{"--addr", srv.base}, args...)...); code != 2 {
				t.Errorf("spool %q: exit %d (%s), want 2", args, code, errOut)
			}
		}
		if c := counts(t, cl); c.Ready != 1 {
			t.Fatalf("queue after: %+v, want the message untouched", c)
		}
	})
}

// TestWorkSecondSignalKillsTheRuns runs the binary, as a shell or systemd
// would: SIGTERM drains, a second SIGTERM kills the run (and what it
// started), and its message is back at once.
func TestWorkSecondSignalKillsTheRuns(t *testing.T) {
	bin := buildSpool(t)
	srv, cl := newQueue(t, api.QueueConfig{})
	dir := t.TempDir()
	mustSend(t, cl, "forever")
	w := startChild(t, exec.Command(bin, "work", "q", "--addr", srv.base, "--", "sh", "-c", `sleep 60 & echo $! > "$1/pid"; wait`, "sh", dir))
	pidPath := filepath.Join(dir, "pid")
	waitUntil(t, 10*time.Second, "the run started", func() bool { return strings.HasSuffix(readFile(t, pidPath), "\n") })
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, pidPath)))
	if err != nil {
		t.Fatal(err)
	}
	w.cmd.Process.Signal(syscall.SIGTERM)
	waitUntil(t, 5*time.Second, "work says it is stopping", func() bool { return strings.Contains(w.logs.String(), "stopping:") })
	w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("work still running 10s after a second SIGTERM:\n%s", w.logs)
	}
	if code := w.cmd.ProcessState.ExitCode(); code != exitInterrupted {
		t.Errorf("exit %d, want %d:\n%s", code, exitInterrupted, w.logs)
	}
	if l := jobLine.FindAllStringSubmatch(w.logs.String(), -1); len(l) != 1 || l[0][3] != "signal:killed" || l[0][4] != "killed, back to the queue" {
		t.Errorf("stderr:\n%s\nwant one job line: killed", w.logs)
	}
	if c := counts(t, cl); c.Ready != 1 || c.Leased != 0 {
		t.Errorf("queue after: %+v, want the message ready at once", c)
	}
	// The sleep the run started was killed with its group: gone, or a
	// zombie nobody reaps.
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err == nil && !strings.Contains(string(stat), ") Z ") {
		t.Errorf("the run's process %d is still alive: %s", pid, stat)
	}
}
