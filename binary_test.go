package main

import (
	"debug/buildinfo"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"testing"
)

// The tests that run the real binary share one build of it per test run:
// building takes seconds, and every such test wants the same program.
// It is built as the README says to build it, CGO_ENABLED=0, so the tests
// run the one static binary users get (net links libc through cgo
// otherwise). Under -race it is built with -race too, which needs cgo, so
// a data race the server reports fails the test that ran it.
var spoolBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// buildSpool returns the path of the spool binary built from this tree.
func buildSpool(t testing.TB) string {
	t.Helper()
	spoolBuild.once.Do(func() {
		spoolBuild.dir, spoolBuild.err = os.MkdirTemp("", "spool-test-bin-")
		if spoolBuild.err != nil {
			return
		}
		spoolBuild.bin = filepath.Join(spoolBuild.dir, "spool")
		// -buildvcs=auto as a plain go build has it (a GOFLAGS of
		// -buildvcs=false would hide what spool version prints).
		build := []string{"build", "-buildvcs=auto", "-o", spoolBuild.bin}
		cgo := "CGO_ENABLED=0"
		if raceEnabled() {
			build, cgo = append(build, "-race"), "CGO_ENABLED=1"
		}
		cmd := exec.Command("go", append(build, ".")...)
		cmd.Env = append(os.Environ(), cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			spoolBuild.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if spoolBuild.err != nil {
		t.Fatal(spoolBuild.err)
	}
	return spoolBuild.bin
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "-race" {
				return s.Value == "true"
			}
		}
	}
	return false
}

func TestMain(m *testing.M) {
	code := m.Run()
	if spoolBuild.dir != "" {
		os.RemoveAll(spoolBuild.dir)
	}
	os.Exit(code)
}

// TestBinaryIsStatic checks the README's promise of one static binary:
// the built spool has no ELF interpreter and no dynamic section, so it
// runs on a host (or in a scratch container) without libc.
func TestBinaryIsStatic(t *testing.T) {
	switch {
	case runtime.GOOS != "linux":
		t.Skip("checks an ELF binary")
	case raceEnabled():
		t.Skip("the race detector needs cgo, so a -race build links dynamically")
	case testing.Short():
		t.Skip("builds the binary")
	}
	f, err := elf.Open(buildSpool(t))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary has a %v program header: it is dynamically linked", p.Type)
		}
	}
	if s := f.Section(".dynamic"); s != nil {
		t.Errorf("the binary has a .dynamic section: it is dynamically linked")
	}
}

// TestBinaryVersion checks that spool version and spool --version print,
// on one line, the build information the binary carries (module version,
// commit and its time, "modified", Go version), and that a binary built
// from a checkout carries its commit.
func TestBinaryVersion(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSpool(t)
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	vcs := map[string]string{}
	for _, s := range info.Settings {
		vcs[s.Key] = s.Value
	}
	rev := vcs["vcs.revision"]
	if err := exec.Command("git", "rev-parse", "HEAD").Run(); err == nil && rev == "" {
		t.Errorf("the binary built from a git checkout records no vcs.revision: is go build stamping it?")
	}
	want := []string{"spool " + info.Main.Version, info.GoVersion}
	if rev != "" {
		want = append(want, "rev "+rev[:7], vcs["vcs.time"])
	}
	if vcs["vcs.modified"] == "true" {
		want = append(want, "modified")
	}
	for _, arg := range []string{"version", "--version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("spool %s: %v", arg, err)
		}
		if strings.Count(string(out), "\n") != 1 {
			t.Errorf("spool %s printed %q, want one line", arg, out)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("spool %s printed %q, which lacks %q", arg, out, w)
			}
		}
	}
}
