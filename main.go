// Command spool is a restart-durable job and message queue in one binary.
//
// main only wires signals to run, which tests drive in-process.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, pflag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "spool:", err)
		}
		os.Exit(exitCode(err))
	}
}

// usageError marks a bad command line: exit status 2, like flag parsing.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, pflag.ErrHelp) {
		return 2
	}
	return 1
}

const usage = `spool: a restart-durable job and message queue

Usage:
  spool serve [flags]     run the server (data in ./spool-data by default)

Run 'spool COMMAND --help' for a command's flags.
`

// run executes one spool command line.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return usageError{fmt.Sprintf("unknown command %q", args[0])}
}

func serve(_ context.Context, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "./spool-data", "data directory (env SPOOL_DATA)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if v, ok := os.LookupEnv("SPOOL_DATA"); ok && !fs.Changed("data") {
		*data = v
	}
	return fmt.Errorf("serve %s: not implemented yet: the storage engine (log/) is in place, the HTTP server lands with the api/ issue", *data)
}
