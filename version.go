package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
)

func versionCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	helpFor(fs, env, `Print spool's version: the module version, the VCS revision and time it
was built from ("modified" if the tree had uncommitted changes) and the Go
version, as the binary records them (runtime/debug.ReadBuildInfo). The
server logs the same at start-up and exports it as spool_build_info.

Examples:
  spool version
  spool --version
`)
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{"version takes no arguments"}
		}
		return printVersion(env.stdout)
	}
}

// printVersion prints the one line both spool version and spool
// --version print.
func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, api.ReadBuild()) // its String starts with "spool "
	return err
}
