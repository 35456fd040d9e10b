package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolq/spool/queue"
)

// spool backup against a running server writes a checked copy that opens
// with the server's messages; it refuses a DEST in use and leaves nothing
// behind when refused.
func TestBackupCommand(t *testing.T) {
	s := startServe(t, t.TempDir())
	ctx := context.Background()
	for _, args := range [][]string{{"create", "jobs"}, {"send", "jobs", "a"}, {"send", "jobs", "b"}, {"send", "jobs", "c"}} {
		var out strings.Builder
		if code := runMain(ctx, append([]string{"--addr", s.addr}, args...), strings.NewReader(""), &out, &out); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, out.String())
		}
	}
	parent := t.TempDir()
	dest := filepath.Join(parent, "copy")
	var out, errOut strings.Builder
	if code := runMain(ctx, []string{"--addr", s.addr, "backup", dest}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("backup: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "clean") || !strings.Contains(out.String(), "1 queues, 0 topics") {
		t.Fatalf("backup printed:\n%s", out.String())
	}
	b, err := queue.Open(dest, queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	q, err := b.Queue("jobs")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := q.Info(); info.Counts.Ready != 3 {
		t.Fatalf("the copy holds %+v, want 3 ready", info.Counts)
	}
	// A DEST in use is refused before anything is downloaded.
	out.Reset()
	errOut.Reset()
	if code := runMain(ctx, []string{"--addr", s.addr, "backup", dest}, strings.NewReader(""), &out, &errOut); code == 0 || !strings.Contains(errOut.String(), "not empty") {
		t.Fatalf("a second backup into %s: exit %d, %q", dest, code, errOut.String())
	}
	entries, err := os.ReadDir(parent)
	if err != nil || len(entries) != 1 {
		t.Fatalf("beside DEST: %v %v, want only DEST (no .partial left)", entries, err)
	}
}
