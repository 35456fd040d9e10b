// Command spool is a restart-durable job and message queue in one binary.
//
// main only wires signals to run, which tests drive in-process; each
// subcommand parses its flags (every flag mirrored by an env var
// SPOOL_<FLAG>) and hands off to the api and queue packages. The commands
// live in serve.go, client.go, check.go and benchcmd.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
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

// exitStatus carries an exit code other than the usual 1.
type exitStatus struct {
	code int
	err  error
}

func (e exitStatus) Error() string { return e.err.Error() }
func (e exitStatus) Unwrap() error { return e.err }

func exitCode(err error) int {
	var ue usageError
	var es exitStatus
	switch {
	case errors.As(err, &ue) || errors.Is(err, pflag.ErrHelp):
		return 2
	case errors.As(err, &es):
		return es.code
	}
	return 1
}

const usage = `spool: a restart-durable job and message queue

Usage:
  spool serve [flags]                 run the server (data in ./spool-data)
  spool create QUEUE [flags]          create or update a queue
  spool queues                        list queues with their counts
  spool stats QUEUE                   one queue's config and counts
  spool send QUEUE [BODY|-]           enqueue a message (- or nothing: stdin)
  spool recv QUEUE [flags]            receive (lease) messages
  spool ack|nack|extend QUEUE RECEIPT...
  spool bench [flags]                 measure throughput and latency
  spool check DIR [--repair]          verify a data directory offline

Every command takes --addr and --token (env SPOOL_ADDR, SPOOL_TOKEN).
Run 'spool COMMAND --help' for a command's flags and examples.
`

// command is one subcommand: it registers its flags on fs and returns
// the function that runs once they are parsed.
type command func(fs *pflag.FlagSet, env *cmdEnv) func(args []string) error

// cmdEnv is what a command runs with: run's arguments, and hooks tests set.
type cmdEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// listening, if set, gets serve's api.Service once it listens, so a
	// test learns the address from the service itself, not from the log.
	listening func(*api.Service)
}

var commands = map[string]command{
	"serve":  serveCommand,
	"create": createCommand,
	"queues": queuesCommand,
	"stats":  statsCommand,
	"send":   sendCommand,
	"recv":   recvCommand,
	"ack":    receiptCommand("ack"),
	"nack":   receiptCommand("nack"),
	"extend": receiptCommand("extend"),
	"bench":  benchCommand,
	"check":  checkCommand,
}

// run executes one spool command line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return (&cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}).run(args)
}

// run executes one spool command line in env.
func (env *cmdEnv) run(args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(env.stdout, usage)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(env.stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	fs := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.SortFlags = false
	exec := c(fs, env)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if err := applyEnv(fs); err != nil {
		return usageError{err.Error()}
	}
	return exec(fs.Args())
}

// applyEnv sets every flag not given on the command line from its
// environment variable SPOOL_<NAME> (dashes become underscores).
func applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envName(f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if serr := fs.Set(f.Name, v); serr != nil {
				err = fmt.Errorf("%s=%q: %v", name, v, serr)
			}
		}
	})
	return err
}

func envName(flag string) string {
	return "SPOOL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// helpFor sets a command's --help text: a summary, examples, then flags.
func helpFor(fs *pflag.FlagSet, env *cmdEnv, text string) {
	fs.Usage = func() { fmt.Fprint(env.stderr, text+"\nFlags:\n"+fs.FlagUsages()) }
}

// table prints aligned columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...any) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	if len(header) > 0 {
		t.row(header...)
	}
	return t
}

func (t *table) row(cells ...any) {
	for i, c := range cells {
		if i > 0 {
			fmt.Fprint(t.tw, "\t")
		}
		fmt.Fprint(t.tw, c)
	}
	fmt.Fprintln(t.tw)
}

func (t *table) flush() error { return t.tw.Flush() }
