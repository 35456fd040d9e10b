package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

func TestRun(t *testing.T) {
	// serve cases that should be refused get a real data directory and a
	// free port, so one wrongly accepted starts, sees the cancelled
	// context and returns instead of serving forever.
	data := t.TempDir()
	serve := func(args ...string) []string {
		return append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, args...)
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantErr  string
		wantCode int
		wantOut  string
	}{
		{"no command prints usage and fails", nil, nil, "no command given", 2, "Usage:"},
		{"unknown command is a usage error", []string{"frobnicate"}, nil, `unknown command "frobnicate"`, 2, "Usage:"},
		{"help succeeds", []string{"help"}, nil, "", 0, "spool serve"},
		{"serve --help explains durability", []string{"serve", "--help"}, nil, "", 0, "--sync=interval"},
		{"serve rejects unknown flags", []string{"serve", "--nope"}, nil, "unknown flag", 2, ""},
		{"a flag error points at the command's help", []string{"create", "q", "--dead-letter-queue", "x"}, nil, "unknown flag: --dead-letter-queue (spool create --help lists its flags)", 2, ""},
		{"serve rejects arguments", []string{"serve", "extra"}, nil, "serve takes no arguments", 2, ""},
		{"serve refuses a public address without a token", []string{"serve", "--addr", "0.0.0.0:0"}, nil, "--allow-anonymous", 2, ""},
		{"serve refuses a public beanstalk address even with a token", serve("--token", "t", "--beanstalk-addr", "0.0.0.0:0"), nil, "no authentication", 2, ""},
		{"serve refuses a beanstalk address that is no host:port", serve("--beanstalk-addr", "11300"), nil, "--beanstalk-addr", 2, ""},
		{"serve refuses a bad sync policy", []string{"serve", "--sync", "sometimes"}, nil, "--sync", 2, ""},
		{"serve refuses a bad log level", []string{"serve", "--log-level", "loud"}, nil, "--log-level", 2, ""},
		{"env vars mirror flags", []string{"serve"}, map[string]string{"SPOOL_SYNC": "sometimes"}, "--sync", 2, ""},
		{"a bad env value is a usage error", []string{"serve"}, map[string]string{"SPOOL_MAX_BATCH": "many"}, "SPOOL_MAX_BATCH", 2, ""},
		{"serve --help explains the connection cap", []string{"serve", "--help"}, nil, "", 0, "ulimit -n"},
		{"serve refuses a token with trailing white space", serve("--token", "abc "), nil, "white space", 2, ""},
		{"serve refuses a token with leading white space", serve("--token", " abc"), nil, "white space", 2, ""},
		{"serve refuses a token ending in a newline from the environment", serve(), map[string]string{"SPOOL_TOKEN": "abc\n"}, "white space", 2, ""},
		{"serve refuses a token with a control character", serve("--token", "ab\x01c"), nil, "control or non-ASCII", 2, ""},
		{"serve refuses a token with an inner tab", serve("--token", "ab\tc"), nil, "control or non-ASCII", 2, ""},
		{"serve refuses a token with DEL", serve("--token", "abc\x7f"), nil, "control or non-ASCII", 2, ""},
		{"serve refuses a non-ASCII token", serve("--token", "abcé"), nil, "control or non-ASCII", 2, ""},
		{"serve refuses a zero connection cap", serve("--max-connections", "0"), nil, "--max-connections", 2, ""},
		{"serve refuses a connection cap over the open-file limit", serve("--max-connections", "100000000"), nil, "ulimit -n", 2, ""},
		{"an env error names the variable, not only the flag", []string{"serve"}, map[string]string{"SPOOL_SYNC": "sometimes"}, "SPOOL_SYNC", 2, ""},
		{"an env log level names the variable", serve(), map[string]string{"SPOOL_LOG_LEVEL": "loud"}, "SPOOL_LOG_LEVEL", 2, ""},
		{"an env value out of range names the variable", serve(), map[string]string{"SPOOL_MAX_BATCH": "0"}, "SPOOL_MAX_BATCH (for --max-batch) must be positive", 2, ""},
		{"a flag value out of range names the flag", serve("--max-batch", "0"), nil, "--max-batch must be positive", 2, ""},
		{"sizes take units", serve("--max-disk", "1G", "--min-free", "512M", "--max-message-bytes", "1M"), nil, "", 0, ""},
		{"sizes take plain bytes", serve("--max-disk", "1073741824", "--min-free", "0"), nil, "", 0, ""},
		{"env sizes take units", serve(), map[string]string{"SPOOL_MAX_DISK": "10GiB", "SPOOL_MIN_FREE": "1MB"}, "", 0, ""},
		{"a junk size names the flag", serve("--max-disk", "lots"), nil, `--max-disk "lots": want a size`, 2, ""},
		{"a junk env size names the variable", serve(), map[string]string{"SPOOL_MIN_FREE": "1.5G"}, `SPOOL_MIN_FREE="1.5G" (for --min-free): want a size`, 2, ""},
		{"serve --help documents the units", []string{"serve", "--help"}, nil, "", 0, "K, M, G or T"},
		{"serve refuses a bare port with the fix", []string{"serve", "--addr", "17075"}, nil, "want host:port, e.g. 127.0.0.1:17075 or :17075", 2, ""},
		{"a client command refuses a bare port with the fix", []string{"queues", "--addr", "17075"}, nil, "127.0.0.1:17075", 2, ""},
		{"serve does not listen where SPOOL_ADDR, the client commands' address, points",
			[]string{"serve", "--data", data}, map[string]string{"SPOOL_ADDR": "0.0.0.0:0", "SPOOL_LISTEN": "127.0.0.1:0"}, "", 0, "serve ignores SPOOL_ADDR"},
		{"serve listens where SPOOL_LISTEN points", []string{"serve", "--data", data}, map[string]string{"SPOOL_LISTEN": "0.0.0.0:0"}, "SPOOL_LISTEN", 2, ""},
		{"serve --help names its listen variable", []string{"serve", "--help"}, nil, "", 0, "SPOOL_LISTEN"},
		{"a number flag says it wants a number", serve("--max-batch", "many"), nil, `--max-batch "many": must be an integer`, 2, ""},
		{"recv --help says how long a long poll may be", []string{"recv", "--help"}, nil, "", 0, "--max-wait, 20s"},
		{"version prints the Go version", []string{"version"}, nil, "", 0, runtime.Version()},
		{"--version prints the version", []string{"--version"}, nil, "", 0, "spool "},
		{"a global flag before a command without it is refused", []string{"--addr", "127.0.0.1:7070", "check"}, nil, "--addr is not a flag of check", 2, ""},
		{"help COMMAND is COMMAND --help", []string{"help", "send"}, nil, "", 0, "seq 1 1000 | spool send numbers --batch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			err := run(ctx, tc.args, strings.NewReader(""), &out, &errOut)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("run(%q) = %v", tc.args, err)
				}
			} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("run(%q) = %v, want error containing %q", tc.args, err, tc.wantErr)
			}
			if err != nil && exitCode(err) != tc.wantCode {
				t.Fatalf("exit code %d, want %d", exitCode(err), tc.wantCode)
			}
			if !strings.Contains(out.String()+errOut.String(), tc.wantOut) {
				t.Fatalf("output %q does not contain %q", out.String()+errOut.String(), tc.wantOut)
			}
		})
	}
}

func TestServeStartsServesAndStopsCleanly(t *testing.T) {
	srv := startServe(t, t.TempDir())
	base := srv.base
	// The text log users read names the address the service listens on.
	if want := `msg="spool: listening" addr=` + srv.addr + " "; !strings.Contains(srv.logs.String(), want) {
		t.Fatalf("log lacks %q:\n%s", want, srv.logs.String())
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Fatalf("/healthz = %d %q", resp.StatusCode, body)
	}
	resp, err = http.Post(base+"/v1/queues/jobs", "application/json", strings.NewReader(`{"max_attempts":3}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create queue = %d", resp.StatusCode)
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("serve returned %v after a clean stop", err)
	}
}

// TestEndToEnd builds the binary, starts `spool serve`, drives it with the
// CLI, SIGKILLs it, restarts it on the same data and checks that every
// acknowledged message is still there and nothing acked comes back.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSpool(t)
	data := t.TempDir()
	server := startBinary(t, bin, data)
	cli := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append(args, "--addr", server.addr)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("spool %q: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	cli("", "create", "jobs", "--max-attempts", "3")
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf("job %d", i))
	}
	ids := strings.Fields(cli(strings.Join(lines, "\n")+"\n", "send", "jobs", "--batch"))
	if len(ids) != 50 {
		t.Fatalf("send --batch printed %d ids", len(ids))
	}
	cli("", "send", "jobs", "binary-safe? yes")
	acked := strings.Split(strings.TrimSpace(cli("", "recv", "jobs", "--max", "10", "--ack")), "\n")
	if len(acked) != 10 || acked[0] != "job 0" || acked[9] != "job 9" {
		t.Fatalf("recv --ack printed %q", acked)
	}

	// SIGKILL: no shutdown, no snapshot, no flush beyond what was acknowledged.
	server.kill(t)
	server = startBinary(t, bin, data) // cli follows server
	rest := strings.Split(strings.TrimSpace(cli("", "recv", "jobs", "--max", "100", "--ack")), "\n")
	want := append(lines[10:], "binary-safe? yes")
	if strings.Join(rest, "|") != strings.Join(want, "|") {
		t.Fatalf("after SIGKILL and restart received %d messages %q, want the %d unacked ones", len(rest), rest, len(want))
	}
	if out := cli("", "stats", "jobs"); !strings.Contains(out, "total               0") {
		t.Fatalf("stats after draining:\n%s", out)
	}
}

// TestGracefulShutdownLosesNothingAcknowledged stops the server (as
// SIGTERM does) while clients are enqueueing, restarts it on the same data
// and checks that every enqueue that got a 201 is there.
func TestGracefulShutdownLosesNothingAcknowledged(t *testing.T) {
	data := t.TempDir()
	srv := startServe(t, data)
	cl := api.NewClient(srv.base, "", nil)
	ctx := context.Background()
	if _, _, err := cl.PutQueue(ctx, "jobs", api.QueueConfig{}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]string{}
	started := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Go(func() {
			for i := 0; ; i++ {
				body := fmt.Sprintf("w%d-%d", w, i)
				id, err := cl.Send(ctx, "jobs", []byte(body), 0)
				if err != nil {
					return // the server is going away: unacknowledged, may or may not exist
				}
				mu.Lock()
				acked[id] = body
				n := len(acked)
				mu.Unlock()
				if n == 200 {
					close(started)
				}
			}
		})
	}
	select {
	case <-started:
	case <-time.After(30 * time.Second):
		t.Fatal("200 enqueues did not succeed within 30s")
	}
	if err := srv.stop(); err != nil {
		t.Fatalf("graceful stop returned %v", err)
	}
	wg.Wait()

	srv = startServe(t, data)
	cl = api.NewClient(srv.base, "", nil)
	found := map[string]string{}
	for after := ""; ; {
		msgs, err := cl.Peek(ctx, "jobs", after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			body, _ := api.Body(m)
			found[m.ID] = string(body)
		}
		after = msgs[len(msgs)-1].ID
	}
	for id, body := range acked {
		if found[id] != body {
			t.Fatalf("acknowledged message %s (%q) is %q after a graceful restart", id, body, found[id])
		}
	}
	t.Logf("%d acknowledged enqueues, %d messages after restart", len(acked), len(found))
}

func TestCLICommands(t *testing.T) {
	srv := startServe(t, t.TempDir())
	cli := func(stdin string, args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append(args, "--addr", srv.base), strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), err
	}
	must := func(stdin string, args ...string) (string, string) {
		t.Helper()
		out, errOut, err := cli(stdin, args...)
		if err != nil {
			t.Fatalf("spool %q: %v\n%s", args, err, errOut)
		}
		return out, errOut
	}
	if out, errOut := must("", "create", "q", "--visibility", "1m", "--max-attempts", "2", "--dead-letter", "q.dead"); !strings.HasPrefix(out, "created q: visibility 1m0s, max attempts 2") ||
		!strings.Contains(errOut, `spool: warning: dead-letter queue "q.dead" does not exist yet`) {
		t.Fatalf("create printed %q, and on stderr %q (want the missing dead-letter queue's warning)", out, errOut)
	}
	if out, _ := must("", "create", "q", "--max-length", "10"); !strings.Contains(out, "updated q") || !strings.Contains(out, "max attempts 2") || !strings.Contains(out, "max length 10") {
		t.Fatalf("update printed %q (settings not given must stay)", out)
	}
	if out, _ := must("from stdin\n", "send", "q", "-"); strings.TrimSpace(out) != "1" {
		t.Fatalf("send - printed %q", out)
	}
	must("", "send", "q", "second", "--delay", "0s")
	body, receiptLine := must("", "recv", "q")
	// The body's own newline prints quoted, so one line is one message.
	if body != `"from stdin\n"`+"\n" {
		t.Fatalf("recv printed %q: stdin is sent byte for byte", body)
	}
	receipt := strings.TrimSpace(strings.TrimPrefix(receiptLine, "receipt "))
	if receipt != "1.1" {
		t.Fatalf("recv put %q on stderr, want the receipt", receiptLine)
	}
	if out, _ := must("", "extend", "q", receipt, "--visibility", "5m"); out != "1.1 ok\n" {
		t.Fatalf("extend printed %q", out)
	}
	if out, _ := must("", "nack", "q", receipt, "--front"); out != "1.1 ok\n" {
		t.Fatalf("nack printed %q", out)
	}
	out, _, err := cli("", "ack", "q", receipt)
	if err == nil || exitCode(err) != 1 || !strings.Contains(out+err.Error(), "stale_receipt") {
		t.Fatalf("ack of a nacked lease = %q, %v; want a stale receipt and exit 1", out, err)
	}
	out, _ = must("", "recv", "q", "--max", "5", "--json")
	var n int
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, `"receipt":"1.2"`) || strings.Contains(line, `"receipt":"2.1"`) {
			n++
		}
	}
	if n != 2 {
		t.Fatalf("recv --json printed %q", out)
	}
	out, _ = must("", "stats", "q")
	if !strings.Contains(out, "leased              2") {
		t.Fatalf("stats printed %q", out)
	}
	if out, _ = must("", "queues"); !strings.Contains(out, "QUEUE") || !strings.Contains(out, "q ") {
		t.Fatalf("queues printed %q", out)
	}
	if _, _, err := cli("", "stats", "nope"); err == nil || !strings.Contains(err.Error(), "queue_not_found") || exitCode(err) != 1 {
		t.Fatalf("stats of a missing queue = %v", err)
	}
	if _, _, err := cli("", "ack", "q"); exitCode(err) != 2 {
		t.Fatalf("ack with no receipt = %v, want a usage error", err)
	}

	// The commands the HTTP API had and the CLI lacked: peek, fail, dead,
	// redrive, purge, delete. Bodies with a newline or bytes that are not
	// UTF-8 print quoted, one line each.
	must("", "create", "m")
	must("", "send", "m", "a\nb")
	must("\xff\x00", "send", "m")
	must("", "send", "m", "plain")
	out, _ = must("", "peek", "m")
	if lines := strings.Split(out, "\n"); len(lines) != 5 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasSuffix(lines[1], ` "a\nb"`) || !strings.HasSuffix(lines[2], ` "\xff\x00"`) || !strings.HasSuffix(lines[3], " plain") {
		t.Fatalf("peek printed %q, want a header and one line per message", out)
	}
	out, _ = must("", "peek", "m", "--after", "1", "--limit", "1", "--json")
	var peeked api.Message
	if err := json.Unmarshal([]byte(out), &peeked); err != nil || peeked.ID != "2" || peeked.BodyBase64 == nil || *peeked.BodyBase64 != "/wA=" {
		t.Fatalf("peek --after 1 --limit 1 --json printed %q (%v)", out, err)
	}
	out, _ = must("", "recv", "m", "--max", "3")
	if out != `"a\nb"`+"\n"+`"\xff\x00"`+"\nplain\n" {
		t.Fatalf("recv printed %q", out)
	}
	if out, _ = must("", "fail", "m", "1.1", "2.1"); out != "1.1 ok\n2.1 ok\n" {
		t.Fatalf("fail printed %q", out)
	}
	out, _ = must("", "dead", "m")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.Contains(lines[1], "dead") || !strings.HasSuffix(lines[1], ` "a\nb"`) {
		t.Fatalf("dead printed %q", out)
	}
	if out, _ = must("", "redrive", "m", "--limit", "1"); out != "redrove 1 dead message of m to ready\n" {
		t.Fatalf("redrive printed %q", out)
	}
	if out, _ = must("", "stats", "m"); !strings.Contains(out, "dead                1") || !strings.Contains(out, "ready               1") {
		t.Fatalf("after failing two and redriving one, stats printed %q", out)
	}
	if out, _ = must("", "purge", "m"); out != "purged m\n" {
		t.Fatalf("purge printed %q", out)
	}
	if out, _ = must("", "peek", "m"); strings.Count(out, "\n") != 1 {
		t.Fatalf("peek after purge printed %q, want only the header", out)
	}
	if out, _ = must("", "delete", "m"); out != "deleted m\n" {
		t.Fatalf("delete printed %q", out)
	}
	if _, _, err := cli("", "stats", "m"); !errors.Is(err, queue.ErrQueueNotFound) {
		t.Fatalf("stats after delete = %v, want queue_not_found", err)
	}
	if out, _ = must("", "health"); out != "ok\n" {
		t.Fatalf("health printed %q", out)
	}
	if out, _ = must("", "metrics"); !strings.Contains(out, "# TYPE spool_") {
		t.Fatalf("metrics printed %q", out)
	}
}

func TestBenchCommandRunsAShortScenario(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "200ms", "--concurrency", "2", "--no-baselines", "--json", "--dir", t.TempDir()}, strings.NewReader(""), &out, &errOut)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, errOut.String())
	}
	if !strings.Contains(out.String(), `"scenario": "enqueue"`) || !strings.Contains(out.String(), `"msgs_per_sec"`) {
		t.Fatalf("bench --json printed %s", out.String())
	}
}

func TestCheckCommand(t *testing.T) {
	// A data directory with a queue holding messages, closed cleanly.
	data := t.TempDir()
	b, err := queue.Open(data, queue.Options{MaintenanceInterval: -1, SegmentSize: 4 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	q, _, _ := b.Create("jobs", queue.ConfigUpdate{})
	for i := 0; i < 100; i++ {
		if _, err := q.Enqueue([]queue.NewMessage{{Body: bytes.Repeat([]byte{byte(i)}, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := q.Receive(context.Background(), queue.ReceiveOptions{Max: 10})
	rs := make([]queue.Receipt, len(msgs))
	for i, m := range msgs {
		rs[i] = m.Receipt
	}
	q.Ack(rs)
	q.Receive(context.Background(), queue.ReceiveOptions{Max: 5})
	b.Close()
	check := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), append([]string{"check"}, args...), strings.NewReader(""), &out, &errOut)
		return out.String(), err
	}

	out, err := check(data)
	if err != nil || !strings.Contains(out, "clean") {
		t.Fatalf("check of a clean directory = %v:\n%s", err, out)
	}
	// The summary counts what a server would load: 90 messages, 85 ready
	// and 5 leased.
	var row []string
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == "jobs" {
			row = f
		}
	}
	if want := []string{"jobs", "90", "85", "0", "5", "0"}; len(row) < len(want) || !slices.Equal(row[:len(want)], want) {
		t.Fatalf("check summary row %q, want it to start %q:\n%s", row, want, out)
	}
	logDir := filepath.Join(data, "queues", "jobs", "log")
	segs, _ := filepath.Glob(filepath.Join(logDir, "*.seg"))
	newest := segs[len(segs)-1]

	// A torn tail, as SIGKILL leaves: noted but not a failure (exit 0),
	// since the server cuts it at start-up; cut by --repair, then clean.
	f, _ := os.OpenFile(newest, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte("half a frame that never completed"))
	f.Close()
	out, err = check(data)
	if err != nil || !strings.Contains(out, "note: jobs:") || !strings.Contains(out, "torn tail") ||
		!strings.Contains(out, "start-up") || !strings.Contains(out, "--repair") || strings.Contains(out, "problem:") {
		t.Fatalf("check with a torn tail = %v (exit %d), want exit 0 and a note on how it gets cut:\n%s", err, exitCode(err), out)
	}
	out, err = check("--repair", data)
	if err != nil || !strings.Contains(out, "will cut:") || !strings.Contains(out, "after repair:") || !strings.HasSuffix(strings.TrimSpace(out), "clean") {
		t.Fatalf("check --repair = %v:\n%s", err, out)
	}

	// Damage in a sealed segment: reported, never "repaired" away.
	sealed, _ := os.ReadFile(segs[0])
	sealed[len(sealed)/2] ^= 0x55
	os.WriteFile(segs[0], sealed, 0o644)
	out, err = check("--repair", data)
	if exitCode(err) != 1 || !strings.Contains(out, "problem: jobs:") || strings.Contains(out, "will cut:") {
		t.Fatalf("check --repair with a corrupt sealed segment = %v:\n%s", err, out)
	}
	if after, _ := os.ReadFile(segs[0]); !bytes.Equal(after, sealed) {
		t.Fatal("--repair changed a damaged sealed segment")
	}

	// A directory a server holds: refused with exit 2.
	b, err = queue.Open(data, queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = check(data); exitCode(err) != 2 || !errors.Is(err, queue.ErrLocked) {
		t.Fatalf("check of a held directory = %v (exit %d), want ErrLocked and exit 2", err, exitCode(err))
	}
	b.Close()
	if _, err = check(filepath.Join(data, "missing")); exitCode(err) != 2 {
		t.Fatalf("check of a missing directory = %v (exit %d), want exit 2", err, exitCode(err))
	}
}

func TestCheckCommandCoversTopics(t *testing.T) {
	data := t.TempDir()
	b, err := queue.Open(data, queue.Options{MaintenanceInterval: -1, SegmentSize: 4 << 10, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tp, _, _ := b.CreateTopic("events", queue.TopicUpdate{})
	s, _, _ := tp.CreateSubscription("mailer", queue.SubscriptionUpdate{}, queue.Earliest())
	tp.CreateSubscription("audit", queue.SubscriptionUpdate{}, queue.Earliest())
	for i := 0; i < 50; i++ {
		if _, err := tp.Publish([]queue.NewMessage{{Body: bytes.Repeat([]byte{byte(i)}, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	msgs, _ := s.Receive(context.Background(), queue.ReceiveOptions{Max: 8})
	s.Ack([]queue.Receipt{msgs[0].Receipt, msgs[1].Receipt}) // 6 stay leased
	b.Close()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"check", data}, strings.NewReader(""), &out, io.Discard); err != nil || !strings.Contains(out.String(), "clean") {
		t.Fatalf("check = %v:\n%s", err, out.String())
	}
	rows := map[string][]string{}
	for _, line := range strings.Split(out.String(), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			rows[f[0]] = f
		}
	}
	for name, want := range map[string][]string{
		"events":        {"events", "2", "2", "50"},            // topic: subscriptions, segments (of 4 KiB), records
		"events/mailer": {"events/mailer", "6", "0", "0", "6"}, // read and not finished: 6 leased
		"events/audit":  {"events/audit", "0"},
	} {
		if got := rows[name]; len(got) < len(want) || !slices.Equal(got[:len(want)], want) {
			t.Errorf("check row %q, want it to start %q:\n%s", got, want, out.String())
		}
	}
}

// TestCheckDefaultsToTheDataDirectory checks that a plain spool check
// checks what a plain spool serve wrote: --data, SPOOL_DATA, else
// ./spool-data.
func TestCheckDefaultsToTheDataDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	for _, data := range []string{"spool-data", "elsewhere"} {
		b, err := queue.Open(filepath.Join(dir, data), queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.Create("in-"+data, queue.ConfigUpdate{}); err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	cases := []struct {
		name     string
		args     []string
		env      map[string]string
		wantCode int
		want     string
	}{
		{"no argument checks ./spool-data, serve's default", []string{"check"}, nil, 0, "in-spool-data"},
		{"--data names the directory", []string{"check", "--data", "elsewhere"}, nil, 0, "in-elsewhere"},
		{"SPOOL_DATA names the directory", []string{"check"}, map[string]string{"SPOOL_DATA": "elsewhere"}, 0, "in-elsewhere"},
		{"DIR wins over SPOOL_DATA", []string{"check", "spool-data"}, map[string]string{"SPOOL_DATA": "elsewhere"}, 0, "in-spool-data"},
		{"DIR and a different --data are refused", []string{"check", "--data", "elsewhere", "spool-data"}, nil, 2, "two data directories"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runAsMain(t, tc.env, tc.args...)
			if code != tc.wantCode || !strings.Contains(out+errOut, tc.want) {
				t.Fatalf("spool %q exited %d, want %d and %q in:\n%s%s", tc.args, code, tc.wantCode, tc.want, out, errOut)
			}
		})
	}
}
