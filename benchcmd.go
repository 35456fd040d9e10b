package main

import (
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/bench"
)

func benchCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	cfg := bench.DefaultConfig()
	fs.StringVar(&cfg.Scenario, "scenario", cfg.Scenario, "one of: "+strings.Join(bench.Scenarios(), ", "))
	fs.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "requests in flight (one worker each)")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "measured time")
	sizeVar(fs, &cfg.Size, "size", cfg.Size, "message body size (bytes, or like 4K)")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "messages per request in the *-batch scenarios")
	fs.StringVar(&cfg.Sync, "sync", cfg.Sync, "in-process server's fsync policy: always, interval or none")
	// --target, not --addr: SPOOL_ADDR, set for the client commands, must
	// never silently aim a load test at a real server.
	fs.StringVar(&cfg.Addr, "target", "", "load a running server instead of an in-process one (host:port or URL; for beanstalk-* and redis-lpush, a beanstalkd-protocol or redis host:port)")
	fs.StringVar(&cfg.Token, "token", "", "bearer token for --target (HTTP scenarios only)")
	fs.IntVar(&cfg.PID, "pid", 0, "the --target server's process id, to report its RSS and CPU")
	fs.StringVar(&cfg.Queue, "queue", cfg.Queue, "queue to load (a remote one is purged: never use a queue in use)")
	fs.StringVar(&cfg.Dir, "dir", "", "where the in-process server's data and the fsync probe go (default: the temp dir)")
	noBaselines := fs.Bool("no-baselines", false, "skip the raw fsync and trivial-server baselines")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	helpFor(fs, env, `Measure spool's throughput and latency over HTTP or beanstalkd's
protocol, next to baselines measured in the same run: the disk's raw
fsync rate, and the request rate of a server that does no work (a Go
HTTP handler; for the beanstalkd and redis scenarios a responder with
fixed replies) under the same client and concurrency. beanstalk-put and
beanstalk-reserve-delete also load a real beanstalkd given as --target,
and redis-lpush a redis server, so spool is compared in one harness.

By default it starts a server in this process on a temporary directory,
so client and server share the CPUs; --target loads a running server.

Examples:
  spool bench
  spool bench --scenario receive-ack --concurrency 64 --duration 30s
  spool bench --scenario enqueue-batch --size 4K --sync none --json
  spool bench --target 127.0.0.1:7070 --pid "$(pidof spool)"
  spool bench --scenario beanstalk-put --concurrency 64
  spool bench --scenario beanstalk-put --target 127.0.0.1:11300 --pid "$(pidof beanstalkd)"
  spool bench --scenario redis-lpush --target 127.0.0.1:6379 --pid "$(pidof redis-server)" --concurrency 64
`)
	return func(args []string) error {
		if err := noArgs(args, "bench"); err != nil {
			return err
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
