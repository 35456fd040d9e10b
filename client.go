package main

// The client commands: each talks to a running server through api.Client.

import (
	"bufio"
	"encoding/json"
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
	fs.StringVar(&c.addr, "addr", "127.0.0.1:7070", "server address (host:port or URL)")
	fs.StringVar(&c.token, "token", "", "bearer token, if the server wants one")
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
