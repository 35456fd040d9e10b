package api

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"
)

// promtoolCheck runs `promtool check metrics` on text and fails the test
// on any error or lint warning; without promtool it skips, saying so (CI
// installs it: .ci/run).
func promtoolCheck(t *testing.T, text string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian package prometheus); skipping the /metrics format check")
	}
	cmd := exec.CommandContext(t.Context(), path, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "" {
		t.Fatalf("promtool check metrics: %v\n%s\nmetrics:\n%s", err, out.String(), text)
	}
}

func TestMetricsPassPromtool(t *testing.T) {
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{})
	cl := NewClient(s.Addr(), "", nil)
	ctx := t.Context()
	if _, _, err := cl.PutQueue(ctx, "jobs", QueueConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cl.PutQueue(ctx, "mail", QueueConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"jobs", "jobs", "mail"} {
		if _, err := cl.Send(ctx, q, []byte("work"), 0); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := cl.Receive(ctx, "jobs", ReceiveOptions{})
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive = %v, %v; want one message", msgs, err)
	}
	if _, err := cl.Ack(ctx, "jobs", msgs[0].Receipt); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.GetQueue(ctx, "missing"); err == nil {
		t.Fatal("GET of a missing queue succeeded")
	}
	text, err := cl.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, family := range []string{"spool_messages", "spool_http_requests_total", "spool_fsync_seconds", "process_resident_memory_bytes", "process_open_fds", "process_max_fds"} {
		if !strings.Contains(text, "# HELP "+family+" ") || !strings.Contains(text, "# TYPE "+family+" ") {
			t.Errorf("metrics lack HELP and TYPE for %s", family)
		}
	}
	promtoolCheck(t, text)
}

func TestMetricsOldestReadyAgeAndBuildInfo(t *testing.T) {
	f := srvStart(t, Config{})
	f.create("behind", "")
	f.create("idle", "")
	f.enqueue("behind", "first", "")
	f.clock.Advance(30 * time.Second)
	f.enqueue("behind", "second", "")
	f.enqueue("idle", "later", "?delay=1h")
	f.clock.Advance(60 * time.Second)

	text := string(f.get("/metrics").body)
	b := ReadBuild()
	for _, line := range []string{
		`spool_queue_oldest_ready_age_seconds{queue="behind"} 90`, // the oldest ready message, not the newest
		`spool_queue_oldest_ready_age_seconds{queue="idle"} 0`,    // a delayed message is not ready
		fmt.Sprintf(`spool_build_info{version=%q,revision=%q,go_version=%q} 1`, b.Version, b.Revision, runtime.Version()),
	} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %s", line)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", text)
	}
	promtoolCheck(t, text)
}
