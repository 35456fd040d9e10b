package main

import (
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolq/spool/api/sqs"
)

func TestLoadSQSKeys(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "keys")
	if err := os.WriteFile(file, []byte("# the CI's\nAKIDA:secret-a\nAKIDB:secret-b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("AKIDA-topsecret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		in   string
		want sqs.StaticKeys
		ok   bool
	}{
		{"", nil, true},
		{"AKIDA:secret-a", sqs.StaticKeys{"AKIDA": "secret-a"}, true},
		{file, sqs.StaticKeys{"AKIDA": "secret-a", "AKIDB": "secret-b"}, true},
		{bad, nil, false},
		{"AKIDA-topsecret", nil, false},
	} {
		got, err := loadSQSKeys(tc.in, "--sqs-keys")
		if (err == nil) != tc.ok || !maps.Equal(got, tc.want) {
			t.Errorf("loadSQSKeys(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("the error echoes the secret: %v", err)
		}
	}
}
