// Command spool is a restart-durable job and message queue in one binary.
//
// main only wires signals to run, which tests drive in-process; each
// subcommand parses its flags (every flag mirrored by an env var
// SPOOL_<FLAG>) and hands off to the api and queue packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/queue"
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

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, pflag.ErrHelp) {
		return 2
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

Every command takes --addr and --token (env SPOOL_ADDR, SPOOL_TOKEN).
Run 'spool COMMAND --help' for a command's flags and examples.
`

// command is one subcommand: it registers its flags on fs and returns
// the function that runs once they are parsed.
type command func(fs *pflag.FlagSet, env *cmdEnv) func(args []string) error

type cmdEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

var commands = map[string]struct {
	summary string
	cmd     command
}{
	"serve": {"run the server", serveCommand},
}

// run executes one spool command line.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return usageError{"no command given"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprint(stderr, usage)
		return usageError{fmt.Sprintf("unknown command %q", args[0])}
	}
	fs := pflag.NewFlagSet(args[0], pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.SortFlags = false
	exec := c.cmd(fs, &cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr})
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

type serveFlags struct {
	addr            string
	data            string
	token           string
	allowAnonymous  bool
	sync            string
	syncInterval    time.Duration
	maxMessageBytes int
	maxBatch        int
	maxWait         time.Duration
	maxDisk         int64
	logLevel        string
	logFormat       string
}

const serveHelp = `Run the spool server.

With no flags it listens on 127.0.0.1:7070 and keeps its data in
./spool-data. Every flag can also be set by an environment variable:
--max-batch is SPOOL_MAX_BATCH, and so on.

Durability (--sync):
  always    (default) every 2xx for enqueue, ack, nack, fail, purge or a
            config change means the change is fsynced; concurrent requests
            share fsyncs, so throughput grows with concurrency.
  interval  fsync every --sync-interval: a power cut can lose that much
            acknowledged data (a crash of the process loses nothing).
  none      never fsync except at rotation and shutdown: faster, and a
            power cut can lose acknowledged data.

Examples:
  spool serve
  spool serve --addr 0.0.0.0:7070 --token "$(cat /etc/spool/token)"
  SPOOL_DATA=/var/lib/spool SPOOL_SYNC=interval spool serve

Flags:
`

func serveCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var f serveFlags
	fs.Usage = func() { fmt.Fprint(env.stderr, serveHelp+fs.FlagUsages()) }
	fs.StringVar(&f.addr, "addr", "127.0.0.1:7070", "address to listen on")
	fs.StringVar(&f.data, "data", "./spool-data", "data directory")
	fs.StringVar(&f.token, "token", "", "require Authorization: Bearer <token> (all routes but /healthz)")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "allow listening on a non-loopback address without --token")
	fs.StringVar(&f.sync, "sync", "always", "fsync policy: always, interval or none (see above)")
	fs.DurationVar(&f.syncInterval, "sync-interval", log.DefaultSyncInterval, "fsync period for --sync=interval")
	fs.IntVar(&f.maxMessageBytes, "max-message-bytes", queue.DefaultMaxMessageBytes, "largest message body in bytes")
	fs.IntVar(&f.maxBatch, "max-batch", 1000, "most messages per batch enqueue, receive or receipt call")
	fs.DurationVar(&f.maxWait, "max-wait", 20*time.Second, "longest long-poll wait a receive may ask for")
	fs.Int64Var(&f.maxDisk, "max-disk", 0, "disk quota for the data directory in bytes; enqueues beyond it get 507 (0: none)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("serve takes no arguments, got %q", args)}
		}
		return serve(env, f)
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError{fmt.Sprintf("--log-level %q: want debug, info, warn or error", level)}
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageError{fmt.Sprintf("--log-format %q: want text or json", format)}
}

// checkExposure refuses to serve beyond loopback without a token: an open
// queue on a public address is a gift to anyone who finds it.
func checkExposure(addr, token string, allowAnonymous bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usageError{fmt.Sprintf("--addr %q: %v", addr, err)}
	}
	if token != "" || allowAnonymous || host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usageError{fmt.Sprintf("refusing to listen on %s without a token: set --token (or SPOOL_TOKEN) so clients must authenticate, or pass --allow-anonymous if the network is trusted", addr)}
}

func serve(env *cmdEnv, f serveFlags) error {
	logger, err := newLogger(env.stderr, f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	policy, err := log.ParseSyncPolicy(f.sync)
	if err != nil {
		return usageError{"--sync: " + err.Error()}
	}
	if err := checkExposure(f.addr, f.token, f.allowAnonymous); err != nil {
		return err
	}
	if f.maxMessageBytes <= 0 || f.maxBatch <= 0 || f.maxWait < 0 || f.maxDisk < 0 || f.syncInterval <= 0 {
		return usageError{"--max-message-bytes, --max-batch and --sync-interval must be positive; --max-wait and --max-disk not negative"}
	}
	metrics := api.NewMetrics()
	b, err := queue.Open(filepath.Join(f.data), queue.Options{
		Sync:            policy,
		SyncInterval:    f.syncInterval,
		MaxMessageBytes: f.maxMessageBytes,
		Logger:          logger,
		OnCommit:        metrics.OnCommit,
	})
	if err != nil {
		return err
	}
	var used atomic.Int64
	if f.maxDisk > 0 {
		used.Store(dirSize(f.data))
		go trackDiskUsage(env.ctx, f.data, &used)
	}
	srv := api.New(b, api.Config{
		Token:           f.token,
		MaxMessageBytes: f.maxMessageBytes,
		MaxBatch:        f.maxBatch,
		MaxWait:         f.maxWait,
		MaxDisk:         f.maxDisk,
		DiskUsage:       used.Load,
		Logger:          logger,
	}, metrics)
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return errors.Join(err, b.Close())
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      f.maxWait + time.Minute, // a long poll must fit
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("spool: listening", "addr", ln.Addr().String(), "data", f.data, "sync", policy.String())
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return errors.Join(err, b.Close())
	case <-env.ctx.Done():
	}
	logger.Info("spool: shutting down")
	srv.Shutdown() // release long polls with 503 first
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	err = hs.Shutdown(ctx)
	if cerr := b.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err == nil {
		logger.Info("spool: stopped cleanly")
	}
	return err
}

// trackDiskUsage refreshes the data directory's size every second for the
// --max-disk quota: walking per request would cost more than the enqueue.
func trackDiskUsage(ctx context.Context, dir string, used *atomic.Int64) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			used.Store(dirSize(dir))
		}
	}
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}
