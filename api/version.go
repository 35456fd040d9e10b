package api

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// Build says which spool this is: what `spool version` prints, the
// spool_build_info metric exposes and the "spool: listening" line logs.
// It comes from the build information the Go toolchain embeds (ReadBuild),
// so no release step has to stamp it with -ldflags and a binary built any
// way at all can say what it is.
type Build struct {
	// Version is the main module's version: a release tag (v1.2.3), the
	// pseudo-version go build derives from the commit, or "(devel)" when
	// the toolchain knew none (go run, go test).
	Version string
	// Revision is the commit the binary was built from and Time its
	// commit time (RFC 3339); both empty when built outside a checkout.
	Revision string
	Time     string
	// Modified reports that the checkout had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary, like "go1.26.1".
	GoVersion string
}

// develVersion is what the toolchain reports, and ReadBuild keeps, when it
// knows no version of the main module.
const develVersion = "(devel)"

// ReadBuild returns the build information embedded in the running binary
// (runtime/debug.ReadBuildInfo): the main module's version and the vcs.*
// settings go build records from the checkout. Fields it cannot learn
// stay empty, except Version ("(devel)") and GoVersion (the runtime's).
func ReadBuild() Build {
	b := Build{Version: develVersion, GoVersion: runtime.Version()}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return b
	}
	if v := info.Main.Version; v != "" {
		b.Version = v
	}
	if info.GoVersion != "" {
		b.GoVersion = info.GoVersion
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.time":
			b.Time = s.Value
		case "vcs.modified":
			b.Modified = s.Value == "true"
		}
	}
	return b
}

// shortRevision is how many characters of a commit String shows, as git
// log --oneline does.
const shortRevision = 7

// String returns b as one line for people, like
// "spool v1.2.3 (rev abc1234 2026-12-01T10:00:00Z, modified) go1.26.1";
// the parenthesis holds only what is known and is left out when nothing is.
func (b Build) String() string {
	var vcs []string
	if b.Revision != "" {
		rev := b.Revision
		if len(rev) > shortRevision {
			rev = rev[:shortRevision]
		}
		vcs = append(vcs, "rev "+rev)
	}
	if b.Time != "" {
		vcs = append(vcs, b.Time)
	}
	detail := strings.Join(vcs, " ")
	if b.Modified {
		if detail != "" {
			detail += ", "
		}
		detail += "modified"
	}
	line := "spool " + b.Version
	if detail != "" {
		line += " (" + detail + ")"
	}
	if b.GoVersion != "" {
		line += " " + b.GoVersion
	}
	return line
}
