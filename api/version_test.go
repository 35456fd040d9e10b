package api

import (
	"runtime"
	"testing"
)

func TestBuildString(t *testing.T) {
	for _, tt := range []struct {
		name string
		b    Build
		want string
	}{
		{"a release built from a modified checkout says all of it",
			Build{Version: "v1.2.3", Revision: "abc1234def5678", Time: "2026-12-01T10:00:00Z", Modified: true, GoVersion: "go1.26.1"},
			"spool v1.2.3 (rev abc1234 2026-12-01T10:00:00Z, modified) go1.26.1"},
		{"a clean checkout leaves out modified",
			Build{Version: "v1.2.3", Revision: "abc1234def5678", Time: "2026-12-01T10:00:00Z", GoVersion: "go1.26.1"},
			"spool v1.2.3 (rev abc1234 2026-12-01T10:00:00Z) go1.26.1"},
		{"a build outside a checkout has no parenthesis",
			Build{Version: "(devel)", GoVersion: "go1.26.1"},
			"spool (devel) go1.26.1"},
		{"modified alone still shows",
			Build{Version: "(devel)", Modified: true, GoVersion: "go1.26.1"},
			"spool (devel) (modified) go1.26.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReadBuildKnowsTheToolchainAndAVersion(t *testing.T) {
	b := ReadBuild()
	if b.GoVersion != runtime.Version() || b.Version == "" {
		t.Fatalf("ReadBuild() = %+v, want GoVersion %s and a Version", b, runtime.Version())
	}
}
