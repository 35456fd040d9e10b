// Command spool is a restart-durable job and message queue in one binary.
//
// main only wires signals to run, which tests drive in-process; each
// subcommand parses its flags (every flag mirrored by an env var
// SPOOL_<FLAG>) and hands off to the api and queue packages.
package main

import (
	"bufio"
	"context"
	"encoding/json"
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
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/bench"
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

type cmdEnv struct {
	ctx    context.Context
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
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
	exec := c(fs, &cmdEnv{ctx: ctx, stdin: stdin, stdout: stdout, stderr: stderr})
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
	minFree         int64
	maxConnections  int
	// maxConnectionsSet: --max-connections was given (flag or env), so it
	// is refused rather than lowered when it does not fit the fd limit.
	maxConnectionsSet bool
	logLevel          string
	logFormat         string
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

Connections (--max-connections):
  At most this many client connections are open at once; one beyond it
  is answered 503 (code "unavailable", Retry-After: 1) and closed, so a
  client sees a refusal, not a hang. Each connection is a file
  descriptor, and so is every segment and state-log file the queues hold
  open, so at start the server checks the open-file limit (ulimit -n):
  the connections, the files the data directory holds open and a reserve
  (64 plus a quarter of those files, for new segments and queues) must
  fit under it. A --max-connections you set (or SPOOL_MAX_CONNECTIONS)
  that does not fit stops the server with exit status 2: raise ulimit -n
  (LimitNOFILE= in a systemd unit) or lower --max-connections. The
  default is lowered to fit instead, with a warning, so a plain
  'spool serve' starts anywhere.

Shutdown (SIGTERM or Ctrl-C): stop accepting, release long polls with
  503, give requests in flight 3s to finish, then close the connections
  still busy (a stalled upload was never acknowledged, so nothing
  acknowledged is lost), fsync and close the queues, exit 0.

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
	fs.DurationVar(&f.syncInterval, "sync-interval", queue.DefaultSyncInterval, "fsync period for --sync=interval")
	fs.IntVar(&f.maxMessageBytes, "max-message-bytes", queue.DefaultMaxMessageBytes, "largest message body in bytes")
	fs.IntVar(&f.maxBatch, "max-batch", 1000, "most messages per batch enqueue, receive or receipt call")
	fs.DurationVar(&f.maxWait, "max-wait", 20*time.Second, "longest long-poll wait a receive may ask for")
	fs.Int64Var(&f.maxDisk, "max-disk", 0, "disk quota for the data directory in bytes; enqueues beyond it get 507 (0: none)")
	fs.Int64Var(&f.minFree, "min-free", 32<<20, "free bytes kept in reserve: enqueues get 507 below it, so acks still work on a full disk (0: none)")
	fs.IntVar(&f.maxConnections, "max-connections", defaultMaxConnections, "most client connections open at once; more get 503 (see above)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{fmt.Sprintf("serve takes no arguments, got %q", args)}
		}
		f.maxConnectionsSet = fs.Changed("max-connections") // applyEnv's Set counts as a change too
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

// checkToken refuses a token no client could present. HTTP strips white
// space around a header value, so with a token of "abc " (a file read with
// its newline, say) every request gets 401; control and non-ASCII bytes are
// not carried reliably in a header either. The token itself is not echoed:
// it is a secret and may sit in a log.
func checkToken(token string) error {
	if strings.TrimSpace(token) != token {
		return usageError{"--token (or SPOOL_TOKEN) has leading or trailing white space, which HTTP strips from the Authorization header, so no client could present it: remove it (a token read from a file often ends in a newline; \"$(cat file)\" drops it)"}
	}
	for i := 0; i < len(token); i++ {
		if c := token[i]; c < 0x20 || c > 0x7e {
			return usageError{fmt.Sprintf("--token (or SPOOL_TOKEN) has a control or non-ASCII byte (0x%02x at byte %d), which an HTTP header cannot carry reliably: use printable ASCII only (openssl rand -hex 32 makes one)", c, i)}
		}
	}
	return nil
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
	policy, err := queue.ParseSyncPolicy(f.sync)
	if err != nil {
		return usageError{"--sync: " + err.Error()}
	}
	if err := checkToken(f.token); err != nil {
		return err
	}
	if err := checkExposure(f.addr, f.token, f.allowAnonymous); err != nil {
		return err
	}
	if f.maxMessageBytes <= 0 || f.maxBatch <= 0 || f.maxConnections <= 0 || f.maxWait < 0 || f.maxDisk < 0 || f.minFree < 0 || f.syncInterval <= 0 {
		return usageError{"--max-message-bytes, --max-batch, --max-connections and --sync-interval must be positive; --max-wait, --max-disk and --min-free not negative"}
	}
	metrics := api.NewMetrics()
	b, err := queue.Open(filepath.Join(f.data), queue.Options{
		Sync:            policy,
		SyncInterval:    f.syncInterval,
		MaxMessageBytes: f.maxMessageBytes,
		Logger:          logger,
		OnCommit:        metrics.OnCommit,
		OnStateSync:     metrics.OnStateSync,
	})
	if err != nil {
		return err
	}
	// After queue.Open, so the files the data directory holds open count.
	maxConns, err := fitConnections(f.maxConnections, f.maxConnectionsSet, b.MaxOpenFiles(), logger)
	if err != nil {
		return errors.Join(err, b.Close())
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
		MinFree:         f.minFree,
		DiskFree:        func() int64 { return api.FreeBytes(f.data) },
		Logger:          logger,
	}, metrics)
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return errors.Join(err, b.Close())
	}
	ln = newLimitListener(ln, maxConns, logger)
	var running requestTracker
	hs := &http.Server{
		Handler:           running.wrap(srv.Handler()),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      f.maxWait + time.Minute, // a long poll must fit
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	logger.Info("spool: listening", "addr", ln.Addr().String(), "data", f.data, "sync", policy.String(), "max_connections", maxConns)
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	select {
	case err := <-served:
		return errors.Join(err, b.Close())
	case <-env.ctx.Done():
	}
	logger.Info("spool: shutting down")
	srv.Shutdown() // release long polls with 503 first
	if err := drain(hs, &running, logger); err != nil {
		return errors.Join(err, b.Close())
	}
	if err := b.Close(); err != nil {
		return fmt.Errorf("closing the queues: %w", err)
	}
	logger.Info("spool: stopped cleanly")
	return nil
}

// Shutdown deadlines. Requests in flight get drainTimeout to finish; that
// is ample for any request that is making progress (an enqueue waits for
// one fsync), so what is left is stalled: an upload that stopped sending,
// say. Closing its connection ends its handler's read at once; handlers
// get cutTimeout more to return (one may be waiting on a slow fsync)
// before the queues are closed under them anyway.
const (
	drainTimeout = 3 * time.Second
	cutTimeout   = 3 * time.Second
)

// drain stops the HTTP server: it lets requests in flight finish for up
// to drainTimeout, then cuts the connections still busy. Cutting is the
// expected end of a stalled request, not a failure: nothing it sent was
// acknowledged, so it logs at WARN and returns nil.
func drain(hs *http.Server, running *requestTracker, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	err := hs.Shutdown(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		if err != nil {
			return fmt.Errorf("stopping the HTTP server: %w", err)
		}
		return nil
	}
	logger.Warn("spool: requests still running at the drain deadline; closing their connections (none of them was acknowledged)",
		"deadline", drainTimeout, "requests", running.count())
	if err := hs.Close(); err != nil {
		return fmt.Errorf("closing the HTTP server's connections: %w", err)
	}
	if !running.wait(cutTimeout) {
		logger.Warn("spool: requests still running after their connections were closed; closing the queues anyway",
			"waited", cutTimeout, "requests", running.count())
	}
	return nil
}

// requestTracker counts the handlers running, so shutdown can wait for
// the ones it cut before closing the queues under them. (A WaitGroup
// cannot: a request may start while shutdown waits, and WaitGroup forbids
// Add from zero concurrently with Wait.)
type requestTracker struct {
	mu   sync.Mutex
	n    int
	idle chan struct{} // closed while n == 0; nil means closed
}

func (t *requestTracker) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.mu.Lock()
		if t.n == 0 {
			t.idle = make(chan struct{})
		}
		t.n++
		t.mu.Unlock()
		defer func() {
			t.mu.Lock()
			if t.n--; t.n == 0 {
				close(t.idle)
			}
			t.mu.Unlock()
		}()
		h.ServeHTTP(w, r)
	})
}

func (t *requestTracker) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.n
}

// wait reports whether no handler was running within timeout.
func (t *requestTracker) wait(timeout time.Duration) bool {
	t.mu.Lock()
	idle := t.idle
	t.mu.Unlock()
	if idle == nil {
		return true
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-idle:
		return true
	case <-timer.C:
		return false
	}
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

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr  string
	token string
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7070", "server address (host:port or URL)")
	fs.StringVar(&c.token, "token", "", "bearer token, if the server wants one")
}

func (c *clientFlags) client() *api.Client {
	base := c.addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return api.NewClient(base, c.token, nil)
}

// helpFor sets a command's --help text: a summary, examples, then flags.
func helpFor(fs *pflag.FlagSet, env *cmdEnv, text string) {
	fs.Usage = func() { fmt.Fprint(env.stderr, text+"\nFlags:\n"+fs.FlagUsages()) }
}

func oneQueue(args []string, name string) (string, error) {
	if len(args) != 1 {
		return "", usageError{fmt.Sprintf("%s takes exactly one queue name, got %q", name, args)}
	}
	return args[0], nil
}

func createCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	vis := fs.Duration("visibility", 0, "lease length of a receive (default 30s)")
	attempts := fs.Int("max-attempts", 0, "deliveries before a message goes dead (default 5)")
	dlq := fs.String("dead-letter", "", "queue that receives dead messages")
	maxLen := fs.Int("max-length", 0, "most messages the queue holds (0: unlimited)")
	retention := fs.Duration("retention", 0, "drop messages older than this (0: keep)")
	delay := fs.Duration("delay", 0, "default delay of new messages")
	helpFor(fs, env, `Create a queue, or update the settings given of an existing one.

Examples:
  spool create emails
  spool create emails --visibility 2m --max-attempts 10 --dead-letter emails.dead
`)
	return func(args []string) error {
		name, err := oneQueue(args, "create")
		if err != nil {
			return err
		}
		var cfg api.QueueConfig
		durations := []struct {
			flag string
			v    *time.Duration
			out  **string
		}{{"visibility", vis, &cfg.VisibilityTimeout}, {"retention", retention, &cfg.Retention}, {"delay", delay, &cfg.Delay}}
		for _, d := range durations {
			if fs.Changed(d.flag) {
				text := d.v.String()
				*d.out = &text
			}
		}
		if fs.Changed("max-attempts") {
			cfg.MaxAttempts = attempts
		}
		if fs.Changed("dead-letter") {
			cfg.DeadLetterQueue = dlq
		}
		if fs.Changed("max-length") {
			cfg.MaxLength = maxLen
		}
		info, created, err := c.client().PutQueue(env.ctx, name, cfg)
		if err != nil {
			return err
		}
		verb := "updated"
		if created {
			verb = "created"
		}
		fmt.Fprintf(env.stdout, "%s %s: visibility %s, max attempts %d, dead letters to %q, max length %d, retention %s, delay %s\n",
			verb, info.Name, info.VisibilityTimeout, info.MaxAttempts, info.DeadLetterQueue, info.MaxLength, info.Retention, info.Delay)
		return nil
	}
}

func queuesCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	helpFor(fs, env, "List the queues with their message counts.\n\nExample:\n  spool queues\n")
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{"queues takes no arguments"}
		}
		qs, err := c.client().ListQueues(env.ctx)
		if err != nil {
			return err
		}
		tw := newTable(env.stdout, "QUEUE", "READY", "DELAYED", "LEASED", "DEAD", "TOTAL", "BYTES")
		for _, q := range qs {
			tw.row(q.Name, q.Counts.Ready, q.Counts.Delayed, q.Counts.Leased, q.Counts.Dead, q.Counts.Total, q.Bytes)
		}
		return tw.flush()
	}
}

func statsCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	asJSON := fs.Bool("json", false, "print the server's JSON")
	helpFor(fs, env, "Show one queue's settings and counts.\n\nExample:\n  spool stats emails\n")
	return func(args []string) error {
		name, err := oneQueue(args, "stats")
		if err != nil {
			return err
		}
		q, err := c.client().GetQueue(env.ctx, name)
		if err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, q)
		}
		tw := newTable(env.stdout)
		for _, kv := range [][2]any{
			{"queue", q.Name}, {"ready", q.Counts.Ready}, {"delayed", q.Counts.Delayed}, {"leased", q.Counts.Leased},
			{"dead", q.Counts.Dead}, {"total", q.Counts.Total}, {"bytes", q.Bytes},
			{"visibility_timeout", q.VisibilityTimeout}, {"max_attempts", q.MaxAttempts},
			{"dead_letter_queue", q.DeadLetterQueue}, {"max_length", q.MaxLength}, {"retention", q.Retention}, {"delay", q.Delay},
		} {
			tw.row(kv[0], kv[1])
		}
		return tw.flush()
	}
}

// sendBatchSize is how many stdin lines `send --batch` puts in one request.
const sendBatchSize = 500

func sendCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	delay := fs.Duration("delay", 0, "deliver no sooner than this")
	batch := fs.Bool("batch", false, "send each line of stdin as its own message, in batches")
	helpFor(fs, env, `Enqueue a message: the BODY argument, or stdin if it is - or missing.
Prints the new message's id (one per line with --batch).

Examples:
  spool send emails '{"to":"ada@example.com"}'
  spool send emails < job.json
  spool send emails --delay 10m 'remind me'
  seq 1 1000 | spool send numbers --batch
`)
	return func(args []string) error {
		if len(args) < 1 || len(args) > 2 {
			return usageError{fmt.Sprintf("send takes a queue name and an optional body, got %q", args)}
		}
		name, cl := args[0], c.client()
		if *batch {
			if len(args) == 2 {
				return usageError{"send --batch reads its messages from stdin, not from an argument"}
			}
			return sendLines(env, cl, name, *delay)
		}
		var body []byte
		if len(args) == 2 && args[1] != "-" {
			body = []byte(args[1])
		} else {
			var err error
			if body, err = io.ReadAll(env.stdin); err != nil {
				return fmt.Errorf("reading stdin: %w", err)
			}
		}
		id, err := cl.Send(env.ctx, name, body, *delay)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, id)
		return nil
	}
}

func sendLines(env *cmdEnv, cl *api.Client, name string, delay time.Duration) error {
	sc := bufio.NewScanner(env.stdin)
	sc.Buffer(make([]byte, 64<<10), queue.DefaultMaxMessageBytes+1)
	var msgs []api.NewMessage
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		ids, err := cl.SendBatch(env.ctx, name, msgs)
		if err != nil {
			return err
		}
		for _, id := range ids {
			fmt.Fprintln(env.stdout, id)
		}
		msgs = msgs[:0]
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		m := api.NewMessage{Body: &line}
		if delay > 0 {
			m.Delay = delay.String()
		}
		msgs = append(msgs, m)
		if len(msgs) == sendBatchSize {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return flush()
}

func recvCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	maxN := fs.Int("max", 1, "most messages to receive")
	wait := fs.Duration("wait", 0, "wait this long for a message (long poll, up to the server's --max-wait)")
	vis := fs.Duration("visibility", 0, "lease length (default: the queue's)")
	ack := fs.Bool("ack", false, "ack each message once printed")
	asJSON := fs.Bool("json", false, "print messages as JSON (with receipts), one per line")
	helpFor(fs, env, `Receive (lease) messages and print their bodies, one per line. Without
--ack, each message's receipt goes to stderr as "receipt ID.ATTEMPT" so
you can ack it later; unacked messages come back when their lease ends.
Prints nothing (exit 0) when no message is ready.

Examples:
  spool recv emails --ack
  spool recv emails --max 10 --wait 20s --json
  spool ack emails "$(spool recv emails 2>&1 >/dev/null | cut -d' ' -f2)"
`)
	return func(args []string) error {
		name, err := oneQueue(args, "recv")
		if err != nil {
			return err
		}
		cl := c.client()
		msgs, err := cl.Receive(env.ctx, name, api.ReceiveOptions{Max: *maxN, Wait: *wait, Visibility: *vis})
		if err != nil {
			return err
		}
		var receipts []string
		for _, m := range msgs {
			if *asJSON {
				if err := printJSON(env.stdout, m); err != nil {
					return err
				}
			} else {
				body, err := api.Body(m)
				if err != nil {
					return err
				}
				env.stdout.Write(append(body, '\n'))
				if !*ack {
					fmt.Fprintf(env.stderr, "receipt %s\n", m.Receipt)
				}
			}
			receipts = append(receipts, m.Receipt)
		}
		if *ack && len(receipts) > 0 {
			results, err := cl.Ack(env.ctx, name, receipts...)
			if err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			return resultsError(results)
		}
		return nil
	}
}

func receiptCommand(kind string) command {
	return func(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
		var c clientFlags
		c.register(fs)
		var front bool
		var delay, vis time.Duration
		switch kind {
		case "nack":
			fs.BoolVar(&front, "front", false, "put the messages at the front of the queue (default: the back)")
			fs.DurationVar(&delay, "delay", 0, "make them ready again only after this")
		case "extend":
			fs.DurationVar(&vis, "visibility", 0, "new lease length from now (default: the queue's)")
		}
		helpFor(fs, env, fmt.Sprintf(`%s leased messages by their receipts (ID.ATTEMPT, as recv prints them).
Prints one line per receipt; exits 1 if any failed (a stale receipt means
the lease ran out and the message may have gone to someone else).

Example:
  spool %s emails 42.1 43.1
`, strings.ToUpper(kind[:1])+kind[1:], kind))
		return func(args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Sprintf("%s takes a queue name and at least one receipt", kind)}
			}
			name, receipts, cl := args[0], args[1:], c.client()
			var results []api.Result
			var err error
			switch kind {
			case "ack":
				results, err = cl.Ack(env.ctx, name, receipts...)
			case "nack":
				results, err = cl.Nack(env.ctx, name, api.NackOptions{Front: front, Delay: delay}, receipts...)
			case "extend":
				results, err = cl.Extend(env.ctx, name, vis, receipts...)
			}
			if err != nil {
				return err
			}
			for _, r := range results {
				if r.OK {
					fmt.Fprintf(env.stdout, "%s ok\n", r.Receipt)
				} else {
					fmt.Fprintf(env.stdout, "%s %s\n", r.Receipt, r.Err())
				}
			}
			return resultsError(results)
		}
	}
}

func resultsError(results []api.Result) error {
	failed := 0
	for _, r := range results {
		if !r.OK {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d receipts failed", failed, len(results))
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
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

func benchCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	cfg := bench.DefaultConfig()
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "one of: "+strings.Join(bench.Scenarios(), ", "))
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight (one worker each)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time")
	fs.IntVar(&cfg.Size, "size", cfg.Size, "message body bytes")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "messages per request in the *-batch scenarios")
	fs.StringVar(&cfg.Sync, "sync", cfg.Sync, "in-process server's fsync policy: always, interval or none")
	// --target, not --addr: SPOOL_ADDR, set for the client commands, must
	// never silently aim a load test at a real server.
	fs.StringVar(&cfg.Addr, "target", "", "load a running server instead of an in-process one (host:port or URL)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for --target")
	fs.IntVar(&cfg.PID, "pid", 0, "the --target server's process id, to report its RSS and CPU")
	fs.StringVar(&cfg.Queue, "queue", cfg.Queue, "queue to load (a remote one is purged: never use a queue in use)")
	fs.StringVar(&cfg.Dir, "dir", "", "where the in-process server's data and the fsync probe go (default: the temp dir)")
	noBaselines := fs.Bool("no-baselines", false, "skip the raw fsync and trivial-handler baselines")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	helpFor(fs, env, `Measure spool's throughput and latency over HTTP, next to baselines
measured in the same run: the disk's raw fsync rate and a trivial Go HTTP
handler's request rate under the same client and concurrency.

By default it starts a server in this process on a temporary directory,
so client and server share the CPUs; --target loads a running server.

Examples:
  spool bench
  spool bench --scenario receive-ack --concurrency 64 --duration 30s
  spool bench --scenario enqueue-batch --sync none --json
  spool bench --target 127.0.0.1:7070 --pid "$(pidof spool)"
`)
	return func(args []string) error {
		if len(args) > 0 {
			return usageError{"bench takes no arguments"}
		}
		cfg.Baselines = !*noBaselines
		cfg.Progress = env.stderr
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		rep, err := bench.Run(env.ctx, cfg)
		if err != nil {
			return err
		}
		if *asJSON {
			return rep.WriteJSON(env.stdout)
		}
		return rep.WriteText(env.stdout)
	}
}

func checkCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	repair := fs.Bool("repair", false, "cut torn tails (writes that never completed) after saying which; nothing else is changed")
	helpFor(fs, env, `Verify a data directory offline: every queue's config, every frame and
record of its message log, every state-log entry and its snapshots. It
needs no server, and refuses a directory a running server holds.

Per queue it prints the messages a server would load, by state (as the
files say: a lease that ran out while no server ran still counts as
leased), and the segments, records, bytes, state entries and snapshots.

A torn tail (a write that never completed, as a crash or SIGKILL
leaves; it was never acknowledged) is printed as a note and does not fail
the check: the server cuts it at start-up, and --repair cuts it now.

Exit status: 0 clean or only torn tails, 1 problems found (damage that
neither start-up nor --repair mends), 2 cannot check (unreadable, or held
by a server).

Examples:
  spool check ./spool-data
  spool check --repair /var/lib/spool
`)
	return func(args []string) error {
		if len(args) != 1 {
			return usageError{fmt.Sprintf("check takes one data directory, got %q", args)}
		}
		dir := args[0]
		rep, err := queue.Check(dir)
		if err != nil {
			return exitStatus{2, err}
		}
		problems := printCheck(env.stdout, rep)
		if *repair && len(problems) > 0 {
			repairable := 0
			for _, p := range problems {
				if p.Repairable {
					fmt.Fprintf(env.stdout, "will cut: %s: %s\n", p.Queue, p.What)
					repairable++
				}
			}
			if repairable > 0 {
				if err := queue.Repair(dir); err != nil {
					return exitStatus{2, err}
				}
				if rep, err = queue.Check(dir); err != nil {
					return exitStatus{2, err}
				}
				fmt.Fprintln(env.stdout, "after repair:")
				problems = printCheck(env.stdout, rep)
			}
		}
		if n := unrepairable(problems); n > 0 {
			return fmt.Errorf("%d problems found in %s", n, dir)
		}
		return nil
	}
}

// unrepairable counts the problems that fail a check: all but torn tails,
// which are the expected leftovers of a crash and cut at start-up.
func unrepairable(problems []queue.Problem) int {
	n := 0
	for _, p := range problems {
		if !p.Repairable {
			n++
		}
	}
	return n
}

// printCheck prints a per-queue summary, every problem and every torn
// tail (as a note), and returns them all.
func printCheck(w io.Writer, rep *queue.CheckReport) []queue.Problem {
	tw := newTable(w, "QUEUE", "MESSAGES", "READY", "DELAYED", "LEASED", "DEAD", "SEGMENTS", "RECORDS", "BYTES", "STATE ENTRIES", "SNAPSHOTS")
	for _, q := range rep.Queues {
		var segs, records int
		var bytes int64
		if q.Log != nil {
			for _, s := range q.Log.Segments {
				segs++
				records += s.Records
				bytes += s.Size
			}
		}
		entries := 0
		if q.State != nil {
			entries = q.State.Entries
		}
		c := q.Counts
		tw.row(q.Name, c.Total, c.Ready, c.Delayed, c.Leased, c.Dead, segs, records, bytes, entries, len(q.Snapshots))
	}
	tw.flush()
	problems := rep.Problems()
	for _, p := range problems {
		if p.Repairable {
			fmt.Fprintf(w, "note: %s: %s (repairable: the server cuts it at start-up, or run spool check --repair)\n", p.Queue, p.What)
		} else {
			fmt.Fprintf(w, "problem: %s: %s\n", p.Queue, p.What)
		}
	}
	switch notes := len(problems) - unrepairable(problems); {
	case len(problems) == 0:
		fmt.Fprintln(w, "clean")
	case notes == len(problems):
		fmt.Fprintf(w, "no problems; %d torn tail(s) noted above, never acknowledged, to be cut at the next start\n", notes)
	}
	return problems
}
