package main

// The topic commands: topic (create, update, delete, list, info),
// subscribe and seek. publish is send's twin (messages.go); the consumer
// commands take a subscription as TOPIC/SUB (consumerOf).

import (
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
)

// topicActions are the actions of spool topic, in the order its help
// lists them.
var topicActions = []string{"create", "update", "delete", "list", "info"}

func topicCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	retention := fs.Duration("retention", 0, "create, update: remove sealed segments older than this, read or not (default 168h; 0s: keep them until every subscription is past them)")
	var maxBytes int64
	sizeVar(fs, &maxBytes, "max-bytes", 0, "create, update: remove the oldest sealed segments while the topic is larger (a size; 0: no limit)")
	asJSON := fs.Bool("json", false, "list, info: print the server's JSON")
	helpFor(fs, env, `Manage topics. A topic is one message log that many subscriptions read,
each at its own offset, with a queue's leases, acks and dead letters
('spool subscribe' makes one, 'spool publish' adds messages).

  spool topic create TOPIC [--retention D] [--max-bytes SIZE]
                       create a topic, or change the settings given
  spool topic update TOPIC [--retention D] [--max-bytes SIZE]
                       change an existing topic's settings (a missing one
                       is an error, not created)
  spool topic delete TOPIC
                       delete it, its subscriptions and its messages
  spool topic list     every topic: ids, size, subscriptions, settings
  spool topic info TOPIC
                       one topic, and each subscription's counts

Retention wins over a slow subscription: messages it removes before a
subscription finished them are counted in that subscription's skipped.

Examples:
  spool topic create orders --retention 72h --max-bytes 1GiB
  spool topic info orders
  spool topic delete orders
`)
	return func(args []string) error {
		if len(args) == 0 {
			return usageError{"topic takes an action: " + strings.Join(topicActions, ", ") + " (spool topic --help)"}
		}
		action, rest := args[0], args[1:]
		if action != "create" && action != "update" {
			for _, f := range []string{"retention", "max-bytes"} {
				if fs.Changed(f) {
					return usageError{fmt.Sprintf("--%s is for topic create and update, not topic %s", f, action)}
				}
			}
		}
		if action != "list" && action != "info" && *asJSON {
			return usageError{"--json is for topic list and info, not topic " + action}
		}
		cl := c.client()
		switch action {
		case "list":
			if err := noArgs(rest, "topic list"); err != nil {
				return err
			}
			topics, err := cl.ListTopics(env.ctx)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, api.TopicList{Topics: topics})
			}
			tw := newTable(env.stdout, "TOPIC", "HEAD", "TAIL", "BYTES", "SUBSCRIPTIONS", "RETENTION", "MAX_BYTES")
			for _, t := range topics {
				if t.Unavailable != "" {
					tw.row(t.Name, "-", "-", "-", "-", "-", "unavailable: "+t.Unavailable)
					continue
				}
				tw.row(t.Name, t.HeadID, t.TailID, t.Bytes, len(t.Subscriptions), t.Retention, t.MaxBytes)
			}
			return tw.flush()
		case "info":
			name, err := oneTopic(rest, "topic info")
			if err != nil {
				return err
			}
			t, err := cl.GetTopic(env.ctx, name)
			if err != nil {
				return err
			}
			if *asJSON {
				return printJSON(env.stdout, t)
			}
			return printTopic(env, t)
		case "delete":
			name, err := oneTopic(rest, "topic delete")
			if err != nil {
				return err
			}
			if err := cl.DeleteTopic(env.ctx, name); err != nil {
				return err
			}
			fmt.Fprintln(env.stdout, "deleted topic", name)
			return nil
		case "create", "update":
			name, err := oneTopic(rest, "topic "+action)
			if err != nil {
				return err
			}
			var cfg api.TopicConfig
			if fs.Changed("retention") {
				text := retention.String()
				cfg.Retention = &text
			}
			if fs.Changed("max-bytes") {
				cfg.MaxBytes = &maxBytes
			}
			if action == "update" {
				// A typo in the name must not make a topic: update looks
				// first (the server's create is create-or-update).
				if _, err := cl.GetTopic(env.ctx, name); err != nil {
					return err
				}
			}
			t, created, err := cl.PutTopic(env.ctx, name, cfg)
			if err != nil {
				return err
			}
			verb := "updated"
			if created {
				verb = "created"
			}
			fmt.Fprintf(env.stdout, "%s topic %s: retention %s, max bytes %d\n", verb, t.Name, t.Retention, t.MaxBytes)
			return nil
		}
		return usageError{fmt.Sprintf("topic has no action %q: use %s (spool topic --help)", action, strings.Join(topicActions, ", "))}
	}
}

// printTopic prints a topic as topic info shows it: its settings and
// ids, then one line per subscription.
func printTopic(env *cmdEnv, t api.TopicInfo) error {
	tw := newTable(env.stdout)
	for _, kv := range [][2]any{
		{"topic", t.Name}, {"head_id", t.HeadID}, {"tail_id", t.TailID}, {"bytes", t.Bytes},
		{"retention", t.Retention}, {"max_bytes", t.MaxBytes}, {"subscriptions", len(t.Subscriptions)},
	} {
		tw.row(kv[0], kv[1])
	}
	if err := tw.flush(); err != nil {
		return err
	}
	if len(t.Subscriptions) == 0 {
		return nil
	}
	fmt.Fprintln(env.stdout)
	tw = newTable(env.stdout, "SUBSCRIPTION", "READY", "DELAYED", "LEASED", "DEAD", "LAG", "SKIPPED", "NEXT")
	for _, s := range t.Subscriptions {
		tw.row(s.Name, s.Counts.Ready, s.Counts.Delayed, s.Counts.Leased, s.Counts.Dead, s.Lag, s.Skipped, s.NextID)
	}
	return tw.flush()
}

func oneTopic(args []string, name string) (string, error) {
	if len(args) != 1 {
		return "", usageError{fmt.Sprintf("%s takes exactly one topic name, got %q", name, args)}
	}
	return args[0], nil
}

// subscriptionStats is spool stats TOPIC/SUB.
func subscriptionStats(env *cmdEnv, cl *api.Client, topic, sub string, asJSON bool) error {
	s, err := cl.GetSubscription(env.ctx, topic, sub)
	if err != nil {
		return err
	}
	if asJSON {
		return printJSON(env.stdout, s)
	}
	tw := newTable(env.stdout)
	for _, kv := range [][2]any{
		{"subscription", s.Topic + "/" + s.Name}, {"ready", s.Counts.Ready}, {"delayed", s.Counts.Delayed},
		{"leased", s.Counts.Leased}, {"dead", s.Counts.Dead}, {"total", s.Counts.Total}, {"lag", s.Lag},
		{"skipped", s.Skipped}, {"next_id", s.NextID}, {"visibility_timeout", s.VisibilityTimeout},
		{"max_attempts", s.MaxAttempts}, {"dead_letter_queue", s.DeadLetterQueue},
	} {
		tw.row(kv[0], kv[1])
	}
	return tw.flush()
}

func subscribeCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	start := fs.String("start", "latest", "where a new subscription starts: earliest, latest, a message id or an RFC 3339 time (creation only; 'spool seek' moves it later)")
	vis := fs.Duration("visibility", 0, "lease length of a receive (default 30s)")
	attempts := fs.Int("max-attempts", 0, "deliveries before a message goes dead (default 5)")
	dlq := fs.String("dead-letter", "", "queue that receives dead messages")
	helpFor(fs, env, `Create a subscription SUB of topic TOPIC, or update the settings given
of an existing one. A subscription sees every message published at or
after its start, in id order, and behaves as a queue: recv, ack, nack,
extend, fail, peek, dead, redrive, stats and delete take it as
TOPIC/SUB. The default start is latest: only what is published from now
on. --start applies at creation only; given to an existing subscription
it changes nothing (with a warning); 'spool seek' moves one.

Examples:
  spool subscribe orders billing --start earliest
  spool subscribe orders audit --start 2026-03-01T00:00:00Z --max-attempts 10
  spool recv orders/billing --wait 20s
`)
	return func(args []string) error {
		if len(args) != 2 {
			return usageError{fmt.Sprintf("subscribe takes a topic and a subscription name, got %q", args)}
		}
		topic, name := args[0], args[1]
		var cfg api.SubscriptionConfig
		if fs.Changed("start") {
			cfg.Start = start
		}
		if fs.Changed("visibility") {
			text := vis.String()
			cfg.VisibilityTimeout = &text
		}
		if fs.Changed("max-attempts") {
			cfg.MaxAttempts = attempts
		}
		if fs.Changed("dead-letter") {
			cfg.DeadLetterQueue = dlq
		}
		s, created, err := c.client().PutSubscription(env.ctx, topic, name, cfg)
		if err != nil {
			return err
		}
		verb := "updated"
		if created {
			verb = "created"
		}
		fmt.Fprintf(env.stdout, "%s subscription %s/%s at %s: visibility %s, max attempts %d, dead letters to %q\n",
			verb, s.Topic, s.Name, s.NextID, s.VisibilityTimeout, s.MaxAttempts, s.DeadLetterQueue)
		for _, w := range s.Warnings {
			fmt.Fprintf(env.stderr, "spool: warning: %s\n", w)
		}
		return nil
	}
}

func seekCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	helpFor(fs, env, `Move subscription SUB of topic TOPIC (or, given only TOPIC, every
subscription of it) to TO: earliest, latest, a message id, or an RFC 3339
time (the first message published at or after it). Messages before it
count as done; those from it on are delivered again, or for the first
time. Leases held across a seek become stale receipts. Prints the id it
moved to: the next message delivered.

Examples:
  spool seek orders/billing earliest
  spool seek orders/billing 2026-03-01T12:00:00Z
  spool seek orders latest
`)
	return func(args []string) error {
		if len(args) != 2 {
			return usageError{fmt.Sprintf("seek takes TOPIC or TOPIC/SUB and where to (earliest, latest, an id or a time), got %q", args)}
		}
		name, to, cl := args[0], args[1], c.client()
		var id string
		var err error
		topic, sub, one := strings.Cut(name, "/")
		if one {
			id, err = cl.SeekSubscription(env.ctx, topic, sub, to)
		} else {
			id, err = cl.SeekTopic(env.ctx, topic, to)
		}
		if err != nil {
			return err
		}
		if one {
			fmt.Fprintf(env.stdout, "moved %s to %s\n", name, id)
		} else {
			fmt.Fprintf(env.stdout, "moved every subscription of %s to %s\n", name, id)
		}
		return nil
	}
}
