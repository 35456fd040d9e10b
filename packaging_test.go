package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The systemd unit passes systemd-analyze verify, which reports unknown
// keys and values it cannot parse (it exits 0 for those, so any output
// fails the test). The unit's ExecStart points at /usr/local/bin/spool,
// which verify wants to exist: the copy checked points at this test's
// binary instead.
func TestSystemdUnitVerifies(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not found (Debian package systemd): the unit is not checked")
	}
	unit, err := os.ReadFile(filepath.Join("packaging", "spool.service"))
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	text := string(unit)
	for _, want := range []string{"ExecStart=/usr/local/bin/spool serve", "DynamicUser=yes", "StateDirectory=spool", "ProtectSystem=strict",
		"NoNewPrivileges=yes", "LoadCredential=token:", "--token-file ${CREDENTIALS_DIRECTORY}/token", "--data ${STATE_DIRECTORY}"} {
		if !strings.Contains(text, want) {
			t.Errorf("the unit has no %q", want)
		}
	}
	path := filepath.Join(t.TempDir(), "spool.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(text, "/usr/local/bin/spool", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
