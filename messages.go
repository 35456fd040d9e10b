package main

// The message commands: send, recv, the receipt commands and the
// listings (peek, dead), with the one way they print a message.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// defaultFollowCredit is recv --follow's --credit: the server's default.
const defaultFollowCredit = 10

// Defaults of send --batch: lines per request (under serve's default
// --max-batch of 1000) and the longest line (serve's default
// --max-message-bytes).
const (
	defaultPerRequest = 500
	defaultMaxLine    = queue.DefaultMaxMessageBytes
)

// producers are the commands that add messages: send to a queue, publish
// to a topic. They are one command with two targets.
var producers = map[string]struct {
	what, help string
	one        func(c *api.Client, ctx context.Context, name string, body []byte, delay time.Duration) (string, error)
	batch      func(c *api.Client, ctx context.Context, name string, msgs []api.NewMessage) ([]string, error)
}{
	"send": {"a queue name", `Enqueue a message: the BODY argument, or stdin if it is - or missing.
Prints the new message's id (one per line with --batch).

Examples:
  spool send emails '{"to":"ada@example.com"}'
  spool send emails < job.json
  spool send emails --delay 10m 'remind me'
  seq 1 1000 | spool send numbers --batch
  spool send logs --batch --per-request 100 --max-line 1MiB < lines.txt
`, (*api.Client).Send, (*api.Client).SendBatch},
	"publish": {"a topic name", `Publish a message to a topic, for every subscription to receive: the BODY
argument, or stdin if it is - or missing. Prints the new message's id
(one per line with --batch). A --delay holds it back on every
subscription.

Examples:
  spool publish orders '{"order":42}'
  spool publish orders < order.json
  tail -n 100 events.log | spool publish events --batch
`, (*api.Client).Publish, (*api.Client).PublishBatch},
}

// produceCommand is send or publish.
func produceCommand(kind string) command {
	return func(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
		p := producers[kind]
		var c clientFlags
		c.register(fs)
		delay := fs.Duration("delay", 0, "deliver no sooner than this")
		batch := fs.Bool("batch", false, "send each line of stdin as its own message, in batches")
		perRequest := fs.Int("per-request", defaultPerRequest, "with --batch: lines per request, at most the server's --max-batch")
		maxLine := defaultMaxLine
		sizeVar(fs, &maxLine, "max-line", defaultMaxLine, "with --batch: the longest line read, like the server's --max-message-bytes")
		helpFor(fs, env, p.help)
		return func(args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usageError{fmt.Sprintf("%s takes %s and an optional body, got %q", kind, p.what, args)}
			}
			name, cl := args[0], c.client()
			if *batch {
				if len(args) == 2 {
					return usageError{kind + " --batch reads its messages from stdin, not from an argument"}
				}
				if *perRequest <= 0 || maxLine <= 0 {
					return usageError{"--per-request and --max-line must be positive"}
				}
				send := func(msgs []api.NewMessage) ([]string, error) { return p.batch(cl, env.ctx, name, msgs) }
				return sendLines(env, send, *delay, *perRequest, maxLine)
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
			id, err := p.one(cl, env.ctx, name, body, *delay)
			if err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, id)
			return nil
		}
	}
}

// sendLines sends stdin's lines perRequest at a time with send, none over
// maxLine bytes (the scanner's buffer grows to that and no further).
func sendLines(env *cmdEnv, send func([]api.NewMessage) ([]string, error), delay time.Duration, perRequest, maxLine int) error {
	sc := bufio.NewScanner(env.stdin)
	sc.Buffer(make([]byte, min(64<<10, maxLine+1)), maxLine+1)
	var msgs []api.NewMessage
	flush := func() error {
		if len(msgs) == 0 {
			return nil
		}
		ids, err := send(msgs)
		if apiErr := (*api.Error)(nil); errors.As(err, &apiErr) && strings.Contains(apiErr.Message, "--max-batch") {
			return fmt.Errorf("%w; send fewer lines a request with --per-request", err)
		}
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
		if delay != 0 { // a negative one too: the server says why it is refused
			m.Delay = delay.String()
		}
		msgs = append(msgs, m)
		if len(msgs) == perRequest {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("reading stdin: a line is longer than --max-line %s", formatSize(int64(maxLine)))
	} else if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	return flush()
}

// bodyFormat documents, for --help, how recv, peek and dead print a body.
const bodyFormat = `A body prints as it is when it is one line of printable UTF-8 text not
starting with a double quote; any other body (a newline or tab in it,
other control characters, bytes that are not UTF-8, or empty) prints
Go-quoted on one line, like "a\nb" or "\xff\x00", so one line is always
one message, and a line starting with " is always quoted (Go's
strconv.Unquote gives the bytes back). --json prints each message whole
instead, one JSON object per line, its bytes in "body" (UTF-8) or
"body_base64" (anything else): spool recv QUEUE --json | jq -r .body`

// bodyText returns body as bodyFormat says.
func bodyText(body []byte) string {
	if len(body) == 0 || body[0] == '"' || !utf8.Valid(body) {
		return strconv.Quote(string(body))
	}
	for _, r := range string(body) {
		if !strconv.IsPrint(r) {
			return strconv.Quote(string(body))
		}
	}
	return string(body)
}

// messageText returns m's body as bodyFormat says.
func messageText(m api.Message) (string, error) {
	body, err := api.Body(m)
	if err != nil {
		return "", err
	}
	return bodyText(body), nil
}

func recvCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	maxN := fs.Int("max", 1, "most messages to receive (with --follow: stop after this many; default: never)")
	wait := fs.Duration("wait", 0, fmt.Sprintf("long poll: wait up to this long for a message (at most the server's --max-wait, %s by default)", defaultMaxWait))
	vis := fs.Duration("visibility", 0, "lease length (default: the queue's)")
	ack := fs.Bool("ack", false, "ack each message once printed")
	asJSON := fs.Bool("json", false, "print messages as JSON (with receipts), one per line")
	followFlag := fs.Bool("follow", false, "keep receiving: print messages as they come, over one stream, until interrupted")
	credit := fs.Int("credit", defaultFollowCredit, "with --follow: most messages leased to it and not yet acked at once (at most the server's --max-batch)")
	helpFor(fs, env, fmt.Sprintf(`Receive (lease) messages and print their bodies, one message per line.
Without --ack, each message's receipt goes to stderr as "receipt
ID.ATTEMPT" so you can ack it later; unacked messages come back when their
lease ends. Prints nothing (exit 0) when no message is ready; --wait
waits for one, up to the server's --max-wait (%s unless the server
was started with another). %s

--follow keeps one stream open (POST .../stream) and prints each message
as it arrives, in the same format, until Ctrl-C or SIGTERM (exit 130),
until --max messages if given (exit 0), or until the server ends the
stream (exit 1). It leases at most --credit messages at a time. With
--ack it acks each message once printed, and the ack is durable before
the next line prints. Without --ack it only leases, as recv does: ack,
nack, extend or fail the receipts with those commands while it runs; a
message's place on the stream goes to the next one once it is acked or
its lease ends. When it exits, every lease it still holds (printed and
unacked, or delivered and not printed yet) returns to the front of the
queue at once, counted as a delivery; for leases that outlive the
command, use recv without --follow.

%s

Examples:
  spool recv emails --ack
  spool recv emails --max 10 --wait 20s --json
  spool ack emails "$(spool recv emails 2>&1 >/dev/null | cut -d' ' -f2)"
  spool recv orders/billing --wait 20s
  spool recv emails --follow --ack --json | jq -r .body
  spool recv emails --follow --credit 100 --visibility 5m
`, defaultMaxWait, subscriptionNote, bodyFormat))
	return func(args []string) error {
		name, err := oneConsumer(args, "recv")
		if err != nil {
			return err
		}
		if *followFlag {
			if onCommandLine(fs, env, "wait") {
				return usageError{"--wait is for a single recv; --follow waits until interrupted"}
			}
			if *credit < 1 || (fs.Changed("max") && *maxN < 1) {
				return usageError{"--credit and --max must be at least 1"}
			}
			o := followOptions{name: name, credit: *credit, vis: *vis, ack: *ack, asJSON: *asJSON}
			if fs.Changed("max") {
				o.max = *maxN
			}
			return follow(env, c.client(), o)
		}
		if onCommandLine(fs, env, "credit") {
			return usageError{"--credit is for --follow"}
		}
		cons := consumerOf(c.client(), name)
		msgs, err := cons.Receive(env.ctx, api.ReceiveOptions{Max: *maxN, Wait: *wait, Visibility: *vis})
		if err != nil {
			return waitError(err, *wait)
		}
		var receipts []string
		for _, m := range msgs {
			if *asJSON {
				if err := printJSON(env.stdout, m); err != nil {
					return err
				}
			} else {
				text, err := messageText(m)
				if err != nil {
					return err
				}
				fmt.Fprintln(env.stdout, text)
				if !*ack {
					fmt.Fprintf(env.stderr, "receipt %s\n", m.Receipt)
				}
			}
			receipts = append(receipts, m.Receipt)
		}
		if *ack && len(receipts) > 0 {
			results, err := cons.Ack(env.ctx, receipts...)
			if err != nil {
				return fmt.Errorf("ack: %w", err)
			}
			return resultsError(results)
		}
		return nil
	}
}

// onCommandLine reports whether flag was given on the command line, not
// by its environment variable (which may be exported for other uses).
func onCommandLine(fs *pflag.FlagSet, env *cmdEnv, flag string) bool {
	_, fromEnv := env.fromEnv[flag]
	return fs.Changed(flag) && !fromEnv
}

// waitError says what the bound on --wait is when the server refused a
// receive for its wait (the server's own text gives examples, "like 30s
// or 5m", that may lie past that bound).
func waitError(err error, wait time.Duration) error {
	var ae *api.Error
	if wait != 0 && errors.As(err, &ae) && ae.Code == api.CodeInvalidRequest && strings.Contains(ae.Message, "wait=") {
		return usageError{fmt.Sprintf("--wait %s: the server allows long polls from 0s up to its --max-wait, %s unless it was started with another; wait less, and run recv again if nothing came", wait, defaultMaxWait)}
	}
	return err
}

// receiptHelp is each receipt command's summary.
var receiptHelp = map[string]string{
	"ack":    "Ack leased messages: they are done and never delivered again.",
	"nack":   "Nack leased messages: back to the queue now (at the back, or --front),\nready again after --delay; one on its last attempt goes dead.",
	"extend": "Extend leases: each deadline becomes now + --visibility, for work that\ntakes longer than planned.",
	"fail":   "Fail leased messages: straight to dead (or the dead-letter queue), for\nwork that no retry can fix; 'spool redrive' brings them back.",
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
		helpFor(fs, env, fmt.Sprintf(`%s
Receipts are ID.ATTEMPT, as recv prints them. Prints one line per
receipt; exits 1 if any failed (a stale receipt means the lease ran out
and the message may have gone to someone else). %s

Examples:
  spool %[3]s emails 42.1 43.1
  spool %[3]s orders/billing 7.1
`, receiptHelp[kind], subscriptionNote, kind))
		return func(args []string) error {
			if len(args) < 2 {
				return usageError{fmt.Sprintf("%s takes a queue name (or TOPIC/SUB) and at least one receipt", kind)}
			}
			name, receipts := args[0], args[1:]
			cons := consumerOf(c.client(), name)
			var results []api.Result
			var err error
			switch kind {
			case "ack":
				results, err = cons.Ack(env.ctx, receipts...)
			case "nack":
				results, err = cons.Nack(env.ctx, api.NackOptions{Front: front, Delay: delay}, receipts...)
			case "extend":
				results, err = cons.Extend(env.ctx, vis, receipts...)
			case "fail":
				results, err = cons.Fail(env.ctx, receipts...)
			}
			if err != nil {
				return err
			}
			for _, r := range results {
				var ae *api.Error
				if errors.As(r.Err(), &ae) {
					fmt.Fprintf(env.stdout, "%s %s\n", r.Receipt, replyText(ae, false))
				} else {
					fmt.Fprintf(env.stdout, "%s ok\n", r.Receipt)
				}
			}
			return resultsError(results)
		}
	}
}

// listHelp is each listing command's summary.
var listHelp = map[string]string{
	"peek": "List a queue's messages (ready, delayed and leased) without leasing\nthem, oldest first",
	"dead": "List a queue's dead messages, oldest first ('spool redrive' returns\nthem to ready)",
}

// listCommand is peek or dead: one page of a listing, as a table.
func listCommand(kind string) command {
	return func(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
		var c clientFlags
		c.register(fs)
		after := fs.String("after", "", "start after this message id (page on with the last id shown)")
		limit := fs.Int("limit", 0, fmt.Sprintf("most messages to list (default 100, at most %d)", queue.MaxList))
		asJSON := fs.Bool("json", false, "print the messages as JSON, one per line")
		helpFor(fs, env, fmt.Sprintf(`%s: one line per message, ID, STATE, ATTEMPTS,
ENQUEUED and BODY, under a header line. %s

%s

Examples:
  spool %[4]s emails
  spool %[4]s emails --after 100 --limit 50 --json
  spool %[4]s orders/billing
`, listHelp[kind], subscriptionNote, bodyFormat, kind))
		return func(args []string) error {
			name, err := oneConsumer(args, kind)
			if err != nil {
				return err
			}
			cons := consumerOf(c.client(), name)
			list := cons.Peek
			if kind == "dead" {
				list = cons.Dead
			}
			msgs, err := list(env.ctx, *after, *limit)
			if err != nil {
				return err
			}
			if *asJSON {
				for _, m := range msgs {
					if err := printJSON(env.stdout, m); err != nil {
						return err
					}
				}
				return nil
			}
			tw := newTable(env.stdout, "ID", "STATE", "ATTEMPTS", "ENQUEUED", "BODY")
			for _, m := range msgs {
				text, err := messageText(m)
				if err != nil {
					return err
				}
				tw.row(m.ID, m.State, m.Attempts, tableTime(m.EnqueuedAt), text)
			}
			return tw.flush()
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

// tableTime prints an RFC 3339 time from the server at a fixed width
// (milliseconds, UTC), so a table's columns line up: the server's
// nanosecond form drops trailing zeros. Anything else prints as it came.
func tableTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
