package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --token-file gives serve its token from a file (a systemd credential, a
// Docker secret): the first line, its line ending dropped.
func TestServeTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("token", "s3cret-token\r\n")
	for _, tc := range []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"an empty file", []string{"--token-file", write("empty", "\n")}, "holds no token"},
		{"a missing file", []string{"--token-file", filepath.Join(dir, "absent")}, "--token-file"},
		{"a file too big", []string{"--token-file", write("big", strings.Repeat("x", 5000))}, "over 4096 bytes"},
		{"white space around the token", []string{"--token-file", write("spaced", " tok \n")}, "white space"},
		{"both --token and --token-file", []string{"--token", "t", "--token-file", good}, "not both"},
	} {
		var stderr strings.Builder
		code := runMain(t.Context(), append([]string{"serve", "--addr", "127.0.0.1:0", "--data", t.TempDir()}, tc.args...), strings.NewReader(""), &stderr, &stderr)
		if code == 0 || !strings.Contains(stderr.String(), tc.wantErr) {
			t.Errorf("%s: exit %d, %q; want a failure naming %q", tc.name, code, stderr.String(), tc.wantErr)
		}
	}

	s := startServe(t, t.TempDir(), "--token-file", good)
	for _, tc := range []struct {
		token string
		want  int
	}{
		{"", http.StatusUnauthorized},
		{"wrong", http.StatusUnauthorized},
		{"s3cret-token", http.StatusOK},
	} {
		req, err := http.NewRequest(http.MethodGet, s.base+"/v1/queues", nil)
		if err != nil {
			t.Fatal(err)
		}
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("token %q: status %d, want %d", tc.token, resp.StatusCode, tc.want)
		}
	}
}
