// Command spool is a restart-durable job and message queue in one binary.
//
// main only wires signals to runMain and run, which tests drive
// in-process; each subcommand parses its flags (every flag mirrored by an
// env var, SPOOL_<FLAG> unless it says otherwise) and hands off to the api
// and queue packages. The commands live in serve.go, client.go,
// messages.go, follow.go, work.go, topics.go, check.go, benchcmd.go and version.go; errors.go says how a
// failure reads, size.go and addr.go are the flag types with units and
// forms of their own.
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
	code := runMain(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitInterrupted is the shell's status for a command ended by SIGINT.
const exitInterrupted = 130

// runMain is main short of the process: it runs one command line, prints
// an error as the user sees it (one line: "spool: " and the error) and
// returns the exit status. Tests that check what a user reads, exit status
// included, call it.
func runMain(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := run(ctx, args, stdin, stdout, stderr)
	if err == nil {
		return 0
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return exitInterrupted // Ctrl-C during a long poll, say: the user knows why
	}
	fmt.Fprintln(stderr, "spool:", err)
	return exitCode(err)
}

const usage = `spool: a restart-durable job and message queue

Usage:
  spool [--addr HOST:PORT] [--token TOKEN] COMMAND [ARGS] [FLAGS]

Server:
  spool serve [flags]                 run the server (data in ./spool-data)
  spool check [DIR] [--repair]        verify a data directory offline (default: --data)
  spool bench [flags]                 measure throughput and latency
  spool version                       print the version (or: spool --version)

Queues:
  spool create QUEUE [flags]          create or update a queue
  spool queues                        list queues with their counts
  spool stats QUEUE                   one queue's config and counts
  spool purge QUEUE                   remove every message, keep the queue
  spool delete QUEUE                  remove the queue and its messages

Messages:
  spool send QUEUE [BODY|-]           enqueue a message (- or nothing: stdin)
  spool recv QUEUE [flags]            receive (lease) messages (--follow: as
                                      they come, until interrupted)
  spool work QUEUE [flags] -- CMD [ARGS]
                                      run CMD per message, body on stdin: ack
                                      on exit 0, else nack with a backoff
  spool ack|nack|extend|fail QUEUE RECEIPT...
                                      finish, return, prolong or kill leases
  spool peek QUEUE [flags]            list messages without leasing them
  spool dead QUEUE [flags]            list dead messages
  spool redrive QUEUE [--limit N]     move dead messages back to ready

Topics (fan-out: every subscription gets every message):
  spool topic create|update TOPIC [--retention D] [--max-bytes SIZE]
  spool topic list | info TOPIC | delete TOPIC
                                      manage topics; list them; show one
  spool publish TOPIC [BODY|-]        publish a message (like send)
  spool subscribe TOPIC SUB [--start earliest|latest|ID|TIME] [flags]
                                      create or update a subscription
  spool seek TOPIC[/SUB] TO           move a subscription (or every one of
                                      the topic) to earliest, latest, an id
                                      or a time
  A subscription is TOPIC/SUB to recv, work, ack, nack, extend, fail,
  peek, dead, redrive, stats and delete: spool recv orders/billing

Operators:
  spool health                        exit 0 if the server answers
  spool metrics                       print the server's Prometheus metrics
  spool backup DEST                   copy a running server's data (online)
  spool keys add NAME --scope S --keys F | list --keys F
                                      make API keys for serve --keys

Global flags, before the command or among its own flags:
  --addr HOST:PORT    the server a client command talks to (default
                      127.0.0.1:7070; or a URL like https://host/prefix);
                      for serve, the address to listen on
  --token TOKEN       the bearer token the server wants (serve: requires)
  -h, --help          this text (spool COMMAND --help: a command's)
  --version           the version, as spool version prints it

Environment: every flag of a command is also read from SPOOL_<FLAG>
(--max-batch from SPOOL_MAX_BATCH); a flag on the command line wins, one
after the command over one before it. The client commands read SPOOL_ADDR
and SPOOL_TOKEN; serve reads its listen address from SPOOL_LISTEN, never
SPOOL_ADDR, so exporting SPOOL_ADDR for the CLI does not move the server.

Run 'spool COMMAND --help' (or 'spool help COMMAND') for a command's flags
and examples.
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
	// fromEnv maps each flag that applyEnv set to its variable.
	fromEnv map[string]string
}

var commands = map[string]command{
	"serve":   serveCommand,
	"check":   checkCommand,
	"bench":   benchCommand,
	"version": versionCommand,
	"create":  createCommand,
	"queues":  queuesCommand,
	"stats":   statsCommand,
	"purge":   queueActionCommand("purge"),
	"delete":  queueActionCommand("delete"),
	"send":    produceCommand("send"),
	"recv":    recvCommand,
	"work":    workCommand,
	"ack":     receiptCommand("ack"),
	"nack":    receiptCommand("nack"),
	"extend":  receiptCommand("extend"),
	"fail":    receiptCommand("fail"),
	"peek":    listCommand("peek"),
	"dead":    listCommand("dead"),
	"redrive": redriveCommand,
	"health":  healthCommand,
	"keys":    keysCommand,
	"backup":  backupCommand,
	"metrics": metricsCommand,

	"topic":     topicCommand,
	"publish":   produceCommand("publish"),
	"subscribe": subscribeCommand,
	"seek":      seekCommand,
}

// run executes one spool command line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return (&cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr}).run(args)
}

// globalFlags are the flags that may come before the command (spool
// --addr H:P send q x). They are handed to the command's flag of the same
// name, so they mean what that command's flag means; a command without
// such a flag refuses them.
type globalFlags struct {
	fs      *pflag.FlagSet
	help    bool
	version bool
}

func newGlobalFlags() *globalFlags {
	g := &globalFlags{fs: pflag.NewFlagSet("spool", pflag.ContinueOnError)}
	g.fs.SetInterspersed(false) // the first argument that is not a flag is the command
	g.fs.SetOutput(io.Discard)  // errors are returned; the usage is printed by run
	g.fs.String("addr", "", "")
	g.fs.String("token", "", "")
	g.fs.BoolVarP(&g.help, "help", "h", false, "")
	g.fs.BoolVar(&g.version, "version", false, "")
	return g
}

// applyTo sets each global flag given on cmd's flag set fs, unless the
// command line gives that flag after the command too.
func (g *globalFlags) applyTo(fs *pflag.FlagSet, cmd string) error {
	var err error
	g.fs.Visit(func(gf *pflag.Flag) {
		if err != nil || gf.Name == "help" || gf.Name == "version" {
			return
		}
		f := fs.Lookup(gf.Name)
		switch {
		case f == nil:
			err = usageError{fmt.Sprintf("--%s is not a flag of %s ('spool %s --help' lists its flags)", gf.Name, cmd, cmd)}
		case !f.Changed:
			err = flagError(fs.Set(gf.Name, gf.Value.String()))
		}
	})
	return err
}

// run executes one spool command line in env.
func (env *cmdEnv) run(args []string) error {
	g := newGlobalFlags()
	if err := g.fs.Parse(args); err != nil {
		fmt.Fprint(env.stderr, usage)
		return flagError(err)
	}
	args = g.fs.Args()
	switch {
	case g.help:
		fmt.Fprint(env.stdout, usage)
		return nil
	case g.version:
		return printVersion(env.stdout)
	case len(args) == 0:
		fmt.Fprint(env.stderr, usage)
		return usageError{"no command given"}
	case args[0] == "help" && len(args) == 1:
		fmt.Fprint(env.stdout, usage)
		return nil
	case args[0] == "help":
		return env.run([]string{args[1], "--help"})
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
			return nil // fs.Usage printed the help, as asked
		}
		return usageError{fmt.Sprintf("%v (spool %s --help lists its flags)", flagError(err), args[0])}
	}
	if err := g.applyTo(fs, args[0]); err != nil {
		return err
	}
	if err := env.applyEnv(fs); err != nil {
		return err
	}
	return explain(exec(fs.Args()), fs)
}

// flagError makes a flag parsing error a usage error, naming the flag
// and the value as given ("--max-disk \"lots\": want a size ...").
func flagError(err error) error {
	if err == nil {
		return nil
	}
	var bad *pflag.InvalidValueError
	if errors.As(err, &bad) {
		return usageError{fmt.Sprintf("--%s %q: %s", bad.GetFlag().Name, bad.GetValue(), bad.Unwrap())}
	}
	return usageError{err.Error()}
}

// envAnnotation, set on a flag, names the environment variable that
// mirrors it when SPOOL_<FLAG> would be the wrong one (serve's --addr is
// SPOOL_LISTEN: SPOOL_ADDR is the client commands' server).
const envAnnotation = "spool-env"

// envName returns the variable that mirrors f: SPOOL_<NAME>, dashes as
// underscores, unless envAnnotation names another.
func envName(f *pflag.Flag) string {
	if v := f.Annotations[envAnnotation]; len(v) == 1 {
		return v[0]
	}
	return "SPOOL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
}

// applyEnv sets every flag not given on the command line from its
// environment variable, and records which, so that errors about a value
// name the variable the user set rather than a flag they never typed.
func (env *cmdEnv) applyEnv(fs *pflag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		name := envName(f)
		v, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = usageError{fmt.Sprintf("%s=%q (for --%s): %s", name, v, f.Name, errors.Unwrap(serr))}
			return
		}
		if env.fromEnv == nil {
			env.fromEnv = map[string]string{}
		}
		env.fromEnv[f.Name] = name
	})
	return err
}

// flagRef names where flag's value came from, for an error about it:
// "--sync", or "SPOOL_SYNC (for --sync)" when the environment set it.
func (env *cmdEnv) flagRef(flag string) string {
	if name, ok := env.fromEnv[flag]; ok {
		return fmt.Sprintf("%s (for --%s)", name, flag)
	}
	return "--" + flag
}

// helpFor sets a command's --help text: a summary, examples, then flags.
// Help goes to stdout and exits 0, as asked for, not as an error.
func helpFor(fs *pflag.FlagSet, env *cmdEnv, text string) {
	fs.Usage = func() { fmt.Fprint(env.stdout, text+"\nFlags:\n"+fs.FlagUsages()) }
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
