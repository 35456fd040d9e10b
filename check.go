package main

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/queue"
)

func checkCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	data := fs.String("data", defaultData, "the data directory to check when no DIR is given (as serve's --data)")
	repair := fs.Bool("repair", false, "cut torn tails (writes that never completed) after saying which; nothing else is changed")
	helpFor(fs, env, `Verify a data directory offline: every queue's config, every frame and
record of its message log, every state-log entry and its snapshots. It
needs no server, and refuses a directory a running server holds.

The directory is DIR if given, else --data (SPOOL_DATA), which defaults
to ./spool-data as serve's does: in the directory serve ran in, a plain
'spool check' checks what it wrote.

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
  spool check
  spool check --repair /var/lib/spool
  SPOOL_DATA=/var/lib/spool spool check
`)
	return func(args []string) error {
		dir := *data
		_, dataFromEnv := env.fromEnv["data"]
		switch {
		case len(args) > 1:
			return usageError{fmt.Sprintf("check takes one data directory, got %q", args)}
		case len(args) == 1 && fs.Changed("data") && !dataFromEnv && args[0] != *data:
			return usageError{fmt.Sprintf("check got two data directories, %q and --data %q: give one", args[0], *data)}
		case len(args) == 1: // DIR wins over SPOOL_DATA, as a flag would
			dir = args[0]
		}
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

// printCheck prints a per-queue summary (then per topic and per
// subscription), every problem and every torn tail (as a note), and
// returns them all.
func printCheck(w io.Writer, rep *queue.CheckReport) []queue.Problem {
	tw := newTable(w, "QUEUE", "MESSAGES", "READY", "DELAYED", "LEASED", "DEAD", "SEGMENTS", "RECORDS", "BYTES", "STATE ENTRIES", "SNAPSHOTS")
	for _, q := range rep.Queues {
		segs, records, bytes := queue.LogTotals(q.Log)
		entries := 0
		if q.State != nil {
			entries = q.State.Entries
		}
		c := q.Counts
		tw.row(q.Name, c.Total, c.Ready, c.Delayed, c.Leased, c.Dead, segs, records, bytes, entries, len(q.Snapshots))
	}
	tw.flush()
	if len(rep.Topics) > 0 {
		printTopicsCheck(w, rep.Topics)
	}
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

// printTopicsCheck prints a summary per topic, then one per subscription:
// the messages it has read and not finished, by state (unread ones are
// not in its files).
func printTopicsCheck(w io.Writer, topics []queue.TopicCheck) {
	fmt.Fprintln(w)
	tw := newTable(w, "TOPIC", "SUBSCRIPTIONS", "SEGMENTS", "RECORDS", "BYTES")
	for _, t := range topics {
		segs, records, bytes := queue.LogTotals(t.Log)
		tw.row(t.Name, len(t.Subscriptions), segs, records, bytes)
	}
	tw.flush()
	fmt.Fprintln(w)
	tw = newTable(w, "SUBSCRIPTION", "READ", "READY", "DELAYED", "LEASED", "DEAD", "STATE ENTRIES", "SNAPSHOTS")
	for _, t := range topics {
		for _, s := range t.Subscriptions {
			entries := 0
			if s.State != nil {
				entries = s.State.Entries
			}
			c := s.Counts
			tw.row(s.Name, c.Total, c.Ready, c.Delayed, c.Leased, c.Dead, entries, len(s.Snapshots))
		}
	}
	tw.flush()
}
