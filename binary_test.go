package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"sync"
	"testing"
)

// The tests that run the real binary share one build of it per test run:
// building takes seconds, and every such test wants the same program.
// Under -race it is built with -race too, so a data race the server
// reports fails the test that ran it.
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
		build := []string{"build", "-o", spoolBuild.bin}
		if raceEnabled() {
			build = append(build, "-race")
		}
		if out, err := exec.Command("go", append(build, ".")...).CombinedOutput(); err != nil {
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
