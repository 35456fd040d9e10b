//go:build unix

package crashtest

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

const envMode = "SPOOL_CRASHTEST_MODE"

// TestChild is the child of the tests below; what it does is up to them.
func TestChild(t *testing.T) {
	switch mode := Child(t, envMode); mode {
	case "run": // two lines and a cut one, then wait for the kill
		os.Stdout.WriteString("one\ntwo\nthr")
		select {}
	case "exit":
		fmt.Println("first")
		Die("gave up")
	case "silent":
		select {}
	default:
		Die("unknown mode %q", mode)
	}
}

func TestKill(t *testing.T) {
	lines, cut, stderr := Kill(t, "TestChild", []string{envMode + "=run"}, 20*time.Second, time.Millisecond, 10*time.Millisecond)
	if !slices.Equal(lines, []string{"one", "two"}) || !cut || len(stderr) != 0 {
		t.Errorf("Kill = %q, cut %v, stderr %q; want [one two], cut, no stderr", lines, cut, stderr)
	}
}

// fakeTB records the failure Kill reports and stops Kill's goroutine, as
// testing.T's FailNow does.
type fakeTB struct {
	testing.TB
	msg string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestKillFails(t *testing.T) {
	for _, c := range []struct{ mode, want string }{
		{"exit", "exited on its own (exit status 2)"},
		{"silent", "no line within 200ms"},
	} {
		f := &fakeTB{TB: t}
		done := make(chan struct{})
		go func() {
			defer close(done)
			Kill(f, "TestChild", []string{envMode + "=" + c.mode}, 200*time.Millisecond, time.Second, time.Second)
		}()
		<-done
		if !strings.Contains(f.msg, c.want) {
			t.Errorf("mode %s: Kill failed with %q; want %q", c.mode, f.msg, c.want)
		}
	}
}
