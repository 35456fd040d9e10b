//go:build unix

package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeKeys makes keys with `spool keys add`, runs `spool serve
// --keys FILE`, checks the scopes hold over HTTP, adds a key, sends
// SIGHUP and waits for the new key to be served, then checks a file that
// no longer parses leaves the keys in use.
func TestServeKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	keys := filepath.Join(dir, "keys")
	addKey := func(name, scope string) string {
		var out, errOut strings.Builder
		if code := runMain(t.Context(), []string{"keys", "add", name, "--scope", scope, "--keys", keys}, strings.NewReader(""), &out, &errOut); code != 0 {
			t.Fatalf("keys add %s: exit %d: %s", name, code, errOut.String())
		}
		return strings.TrimSpace(out.String())
	}
	admin := addKey("admin", "admin")
	producer := addKey("producer", "produce:jobs")
	if st, err := os.Stat(keys); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the keys file: %v %v, want mode 0600", st, err)
	}
	if b, _ := os.ReadFile(keys); strings.Contains(string(b), admin) || strings.Contains(string(b), producer) {
		t.Fatal("the keys file holds a secret")
	}
	var list strings.Builder
	if code := runMain(t.Context(), []string{"keys", "list", "--keys", keys}, strings.NewReader(""), &list, &list); code != 0 || list.String() != "admin\tadmin\nproducer\tproduce:jobs\n" {
		t.Fatalf("keys list: exit %d, %q", code, list.String())
	}

	s := startBinary(t, buildSpool(t), filepath.Join(dir, "data"), "--keys", keys)
	status := func(secret, method, path string) int {
		body := ""
		if strings.HasSuffix(path, "/messages") {
			body = "x"
		}
		req, err := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		who, secret, method, path string
		want                      int
	}{
		{"admin", admin, "POST", "/v1/queues/jobs", http.StatusCreated},
		{"producer", producer, "POST", "/v1/queues/jobs/messages", http.StatusCreated},
		{"producer", producer, "POST", "/v1/queues/jobs/receive", http.StatusForbidden},
		{"producer", producer, "POST", "/v1/queues/other", http.StatusForbidden},
		{"nobody", "spool_guess", "GET", "/v1/queues", http.StatusUnauthorized},
	} {
		if got := status(tc.secret, tc.method, tc.path); got != tc.want {
			t.Errorf("%s %s as %s: %d, want %d", tc.method, tc.path, tc.who, got, tc.want)
		}
	}

	worker := addKey("worker", "consume:jobs")
	if got := status(worker, "POST", "/v1/queues/jobs/receive"); got != http.StatusUnauthorized {
		t.Fatalf("a key added before the reload: %d, want 401", got)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); status(worker, "POST", "/v1/queues/jobs/receive") == http.StatusUnauthorized; {
		if time.Now().After(deadline) {
			t.Fatalf("the new key is not served 10s after SIGHUP\n%s", s.logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the server with a deadline
	}
	if !strings.Contains(s.logs.String(), "API keys reloaded") {
		t.Fatalf("no reload line in the log:\n%s", s.logs.String())
	}
	if err := os.WriteFile(keys, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	s.waitLog(t, "API keys did not reload")
	if got := status(worker, "POST", "/v1/queues/jobs/receive"); got == http.StatusUnauthorized || got == http.StatusForbidden {
		t.Fatalf("a bad file dropped the keys in use: %d", got)
	}
	for _, secret := range []string{admin, producer, worker} {
		if strings.Contains(s.logs.String(), secret) {
			t.Fatalf("the log shows a secret:\n%s", s.logs.String())
		}
	}
	s.stop(t)
}
