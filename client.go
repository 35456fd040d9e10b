package main

// The client commands, which talk to a running server through api.Client:
// their shared flags, and the queue and operator commands (the message
// commands are in messages.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// clientFlags are the flags every client command takes.
type clientFlags struct {
	addr  string
	token string
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	addrVar(fs, &c.addr, true, "addr", "127.0.0.1:7070", "the server to talk to, or its URL (env SPOOL_ADDR)")
	fs.StringVar(&c.token, "token", "", "bearer token, if the server wants one (env SPOOL_TOKEN)")
}

func (c *clientFlags) client() *api.Client {
	return api.NewClient(c.addr, c.token, nil) // it takes host:port or a URL
}

func oneQueue(args []string, name string) (string, error) {
	if len(args) != 1 {
		return "", usageError{fmt.Sprintf("%s takes exactly one queue name, got %q", name, args)}
	}
	return args[0], nil
}

// oneConsumer is oneQueue for the commands that also take a subscription,
// as TOPIC/SUB.
func oneConsumer(args []string, name string) (string, error) {
	if len(args) != 1 {
		return "", usageError{fmt.Sprintf("%s takes exactly one queue name (or TOPIC/SUB for a subscription), got %q", name, args)}
	}
	return args[0], nil
}

// subscriptionNote says, in the help of the consumer commands, how they
// name a subscription.
const subscriptionNote = `QUEUE may be TOPIC/SUB, for subscription SUB of topic TOPIC
(a queue name never holds a slash).`

// consumerOf returns the consumer calls of name: the subscription SUB of
// topic TOPIC when it is TOPIC/SUB, else the queue. A name with more
// slashes is a subscription name with a slash, which the client refuses.
func consumerOf(cl *api.Client, name string) *api.Consumer {
	if topic, sub, ok := strings.Cut(name, "/"); ok {
		return cl.Subscription(topic, sub)
	}
	return cl.Queue(name)
}

func noArgs(args []string, name string) error {
	if len(args) > 0 {
		return usageError{fmt.Sprintf("%s takes no arguments, got %q", name, args)}
	}
	return nil
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
		for _, w := range info.Warnings {
			fmt.Fprintf(env.stderr, "spool: warning: %s\n", w)
		}
		return nil
	}
}

func queuesCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	helpFor(fs, env, "List the queues with their message counts.\n\nExample:\n  spool queues\n")
	return func(args []string) error {
		if err := noArgs(args, "queues"); err != nil {
			return err
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
	helpFor(fs, env, `Show one queue's settings and counts, or a subscription's (TOPIC/SUB):
its counts, lag (ready, delayed and leased: what it has not finished),
skipped (messages retention removed before it finished them), the id it
reads next, and its settings. A name that is no queue but a topic shows
the topic, as 'spool topic info TOPIC' does.

Examples:
  spool stats emails
  spool stats orders/billing
`)
	return func(args []string) error {
		name, err := oneConsumer(args, "stats")
		if err != nil {
			return err
		}
		if topic, sub, ok := strings.Cut(name, "/"); ok {
			return subscriptionStats(env, c.client(), topic, sub, *asJSON)
		}
		q, err := c.client().GetQueue(env.ctx, name)
		if errors.Is(err, queue.ErrQueueNotFound) {
			// Not a queue: a topic of that name, if there is one (queues
			// and topics have names of their own; a queue wins).
			if t, terr := c.client().GetTopic(env.ctx, name); terr == nil {
				if *asJSON {
					return printJSON(env.stdout, t)
				}
				return printTopic(env, t)
			}
		}
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

// queueActions are the commands that act on a whole queue with one POST
// and no reply to show but that it happened; onSub, if set, is the same
// for a subscription (TOPIC/SUB).
var queueActions = map[string]struct {
	help  string
	done  string
	do    func(*api.Client, context.Context, string) error
	onSub func(*api.Client, context.Context, string, string) error
}{
	"purge": {`Remove every message of a queue (ready, delayed, leased and dead) and
keep the queue and its settings. Leases held on it become stale receipts.
A subscription has no purge: 'spool seek TOPIC/SUB latest' finishes
everything it has not.

Example:
  spool purge emails
`, "purged", (*api.Client).PurgeQueue, nil},
	"delete": {`Delete a queue: its settings and every message, for good; or, given
TOPIC/SUB, the subscription SUB of topic TOPIC and its state (the topic's
messages stay for the others). Nothing asks first; 'spool stats QUEUE'
shows what it holds. 'spool topic delete TOPIC' deletes a topic.

Examples:
  spool delete emails
  spool delete orders/billing
`, "deleted", (*api.Client).DeleteQueue, (*api.Client).DeleteSubscription},
}

func queueActionCommand(kind string) command {
	return func(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
		var c clientFlags
		c.register(fs)
		action := queueActions[kind]
		helpFor(fs, env, action.help)
		return func(args []string) error {
			name, err := oneQueue(args, kind)
			if err != nil {
				return err
			}
			if topic, sub, ok := strings.Cut(name, "/"); ok {
				if action.onSub == nil {
					return usageError{fmt.Sprintf("%s takes a queue; %q names a subscription (see spool %s --help)", kind, name, kind)}
				}
				err = action.onSub(c.client(), env.ctx, topic, sub)
			} else {
				err = action.do(c.client(), env.ctx, name)
			}
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, action.done, name)
			return nil
		}
	}
}

func redriveCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	limit := fs.Int("limit", 0, "redrive at most this many, oldest first (0: all)")
	helpFor(fs, env, `Move a queue's dead messages back to ready, with their attempts reset,
and print how many moved. 'spool dead QUEUE' lists them first. `+subscriptionNote+`

Examples:
  spool redrive emails
  spool redrive emails --limit 10
  spool redrive orders/billing
`)
	return func(args []string) error {
		name, err := oneConsumer(args, "redrive")
		if err != nil {
			return err
		}
		n, err := consumerOf(c.client(), name).Redrive(env.ctx, *limit)
		if err != nil {
			return err
		}
		noun := "messages"
		if n == 1 {
			noun = "message"
		}
		fmt.Fprintf(env.stdout, "redrove %d dead %s of %s to ready\n", n, noun, name)
		return nil
	}
}

func healthCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	helpFor(fs, env, `Ask the server whether it is up (GET /healthz, which needs no token):
print "ok" and exit 0 if it answers, else say why and exit 1. For
scripts, container health checks and systemd.

Example:
  spool health --addr 127.0.0.1:7070
`)
	return func(args []string) error {
		if err := noArgs(args, "health"); err != nil {
			return err
		}
		if err := c.client().Health(env.ctx); err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, "ok")
		return nil
	}
}

func metricsCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	helpFor(fs, env, `Print the server's metrics (GET /metrics) in the Prometheus text format.

Example:
  spool metrics | grep '^spool_messages'
`)
	return func(args []string) error {
		if err := noArgs(args, "metrics"); err != nil {
			return err
		}
		text, err := c.client().Metrics(env.ctx)
		if err != nil {
			return err
		}
		_, err = io.WriteString(env.stdout, text)
		return err
	}
}

func printJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}
