package main

// The topic commands as a user meets them, against a real server: each
// step a command line, its exit status and what it prints.

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestTopicCommands(t *testing.T) {
	srv := startServe(t, t.TempDir())
	cli := func(stdin string, args ...string) (code int, stdout, stderr string) {
		var out, errOut bytes.Buffer
		code = runMain(context.Background(), append(args, "--addr", srv.base), strings.NewReader(stdin), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	steps := []struct {
		name   string
		stdin  string
		args   []string
		code   int
		stdout []string // each in stdout, in order; "!text": not in it
		stderr []string // each in stderr
	}{
		{"update of a missing topic fails and makes none", "", []string{"topic", "update", "orders", "--retention", "1h"}, 1,
			nil, []string{`"orders" does not exist`, "spool topic create orders", "[404 topic_not_found]"}},
		{"so there is no topic", "", []string{"topic", "list"}, 0, []string{"TOPIC", "!orders"}, nil},
		{"create makes a topic", "", []string{"topic", "create", "orders", "--retention", "72h", "--max-bytes", "1MiB"}, 0,
			[]string{"created topic orders: retention 72h0m0s, max bytes 1048576"}, nil},
		{"update changes only what is given", "", []string{"topic", "update", "orders", "--max-bytes", "0"}, 0,
			[]string{"updated topic orders: retention 72h0m0s, max bytes 0"}, nil},
		{"subscribe at earliest", "", []string{"subscribe", "orders", "billing", "--start", "earliest", "--max-attempts", "2"}, 0,
			[]string{`created subscription orders/billing at 1: visibility 30s, max attempts 2, dead letters to ""`}, nil},
		{"subscribe with a missing dead-letter queue warns", "", []string{"subscribe", "orders", "audit", "--dead-letter", "orders.dead"}, 0,
			[]string{"created subscription orders/audit at 1"}, []string{"spool: warning: dead-letter queue \"orders.dead\" does not exist yet"}},
		{"subscribe again with a start warns that it did not move", "", []string{"subscribe", "orders", "billing", "--start", "latest"}, 0,
			[]string{"updated subscription orders/billing at 1"}, []string{"spool: warning: start applies only when a subscription is created"}},
		{"subscribe to a missing topic says how to create it", "", []string{"subscribe", "nope", "s"}, 1,
			nil, []string{"spool topic create nope", "[404 topic_not_found]"}},
		{"publish prints the id", "", []string{"publish", "orders", "first"}, 0, []string{"1\n"}, nil},
		{"publish --batch reads stdin lines", "second\nthird\n", []string{"publish", "orders", "--batch"}, 0, []string{"2\n3\n"}, nil},
		{"each subscription receives every message", "", []string{"recv", "orders/billing", "--max", "10", "--ack"}, 0,
			[]string{"first\nsecond\nthird\n"}, nil},
		{"and the other one too", "", []string{"recv", "orders/audit", "--max", "1"}, 0,
			[]string{"first\n"}, []string{"receipt 1.1"}},
		{"ack addresses a subscription as TOPIC/SUB", "", []string{"ack", "orders/audit", "1.1"}, 0, []string{"1.1 ok"}, nil},
		{"peek lists what audit has left", "", []string{"peek", "orders/audit"}, 0, []string{"ID", "2", "second", "3", "third"}, nil},
		{"stats shows a subscription", "", []string{"stats", "orders/billing"}, 0,
			[]string{"subscription", "orders/billing", "lag", "0", "next_id", "4", "max_attempts", "2"}, nil},
		{"topic info shows each subscription", "", []string{"topic", "info", "orders"}, 0,
			[]string{"topic", "orders", "tail_id", "3", "SUBSCRIPTION", "audit", "2", "billing", "0", "4"}, nil},
		{"topic list", "", []string{"topic", "list"}, 0, []string{"TOPIC", "orders", "1", "3"}, nil},
		{"stats of a name that is a topic shows the topic", "", []string{"stats", "orders"}, 0, []string{"topic", "orders", "SUBSCRIPTION", "audit"}, nil},
		{"stats of a name that is neither says how to make a queue", "", []string{"stats", "neither"}, 1, nil, []string{"spool create neither", "[404 queue_not_found]"}},
		{"seek a subscription back", "", []string{"seek", "orders/billing", "earliest"}, 0, []string{"moved orders/billing to 1"}, nil},
		{"so it receives again", "", []string{"recv", "orders/billing", "--ack"}, 0, []string{"first\n"}, nil},
		{"seek every subscription of the topic", "", []string{"seek", "orders", "latest"}, 0, []string{"moved every subscription of orders to 4"}, nil},
		{"nothing is left to receive", "", []string{"recv", "orders/audit"}, 0, nil, nil},
		{"a bad position says what it takes", "", []string{"seek", "orders/billing", "yesterday"}, 1,
			nil, []string{"earliest, latest", "[400 invalid_request]"}},
		{"a missing subscription says how to create it", "", []string{"recv", "orders/nope"}, 1,
			nil, []string{"spool subscribe orders nope", "[404 subscription_not_found]"}},
		{"a subscription name with a slash is refused unsent", "", []string{"recv", "orders/a/b"}, 1,
			nil, []string{`subscription name "a/b"`, "[400 invalid_name]"}},
		{"purge is for queues", "", []string{"purge", "orders/billing"}, 2, nil, []string{"purge takes a queue", "names a subscription"}},
		{"topic flags belong to create and update", "", []string{"topic", "list", "--retention", "1h"}, 2, nil, []string{"--retention is for topic create and update"}},
		{"topic needs an action", "", []string{"topic"}, 2, nil, []string{"topic takes an action: create, update, delete, list, info"}},
		{"topic refuses an unknown action", "", []string{"topic", "rename", "orders"}, 2, nil, []string{`topic has no action "rename"`}},
		{"delete TOPIC/SUB deletes a subscription", "", []string{"delete", "orders/audit"}, 0, []string{"deleted orders/audit"}, nil},
		{"topic delete deletes the topic", "", []string{"topic", "delete", "orders"}, 0, []string{"deleted topic orders"}, nil},
		{"and it is gone", "", []string{"topic", "info", "orders"}, 1, nil, []string{"[404 topic_not_found]"}},
	}
	for _, st := range steps {
		code, stdout, stderr := cli(st.stdin, st.args...)
		if code != st.code {
			t.Fatalf("%s: spool %q exited %d, want %d\nstdout: %s\nstderr: %s", st.name, st.args, code, st.code, stdout, stderr)
		}
		rest := stdout
		for _, w := range st.stdout {
			if not, ok := strings.CutPrefix(w, "!"); ok {
				if strings.Contains(stdout, not) {
					t.Fatalf("%s: spool %q: stdout has %q:\n%s", st.name, st.args, not, stdout)
				}
				continue
			}
			i := strings.Index(rest, w)
			if i < 0 {
				t.Fatalf("%s: spool %q: stdout lacks %q (in order):\n%s", st.name, st.args, w, stdout)
			}
			rest = rest[i+len(w):]
		}
		for _, w := range st.stderr {
			if !strings.Contains(stderr, w) {
				t.Fatalf("%s: spool %q: stderr lacks %q:\n%s", st.name, st.args, w, stderr)
			}
		}
		if st.stderr == nil && stderr != "" && code == 0 && st.args[0] != "recv" {
			t.Fatalf("%s: spool %q wrote to stderr: %s", st.name, st.args, stderr)
		}
		if st.stdout == nil && stdout != "" {
			t.Fatalf("%s: spool %q wrote to stdout: %s", st.name, st.args, stdout)
		}
	}
}
