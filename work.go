package main

// spool work: a worker pool over one stream. Each message runs a command
// with the body on stdin; exit 0 acks it, anything else nacks it with a
// backoff; the lease is extended while the command runs.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// Defaults of work's flags.
const (
	defaultBackoff    = time.Second
	defaultMaxBackoff = 5 * time.Minute
)

// minExtendEvery bounds how often a running command's lease is extended.
const minExtendEvery = 10 * time.Millisecond

// waitDelay bounds how long a command's output may stay open after it
// exited (a background child of it holding stdout), as exec.Cmd has it.
const waitDelay = 5 * time.Second

func workCommand(fs *pflag.FlagSet, env *cmdEnv) func([]string) error {
	var c clientFlags
	c.register(fs)
	concurrency := fs.Int("concurrency", 1, "commands running at once, and messages leased at once (at most the server's --max-batch)")
	vis := fs.Duration("visibility", 0, "lease length; a running command's lease is extended every third of it (default: the queue's)")
	backoff := fs.Duration("backoff", defaultBackoff, "delay before a failed message is ready again, doubled each attempt (0s: at once)")
	maxBackoff := fs.Duration("max-backoff", defaultMaxBackoff, "longest such delay")
	maxN := fs.Int("max", 0, "stop after this many messages have run (0: never)")
	helpFor(fs, env, `Run CMD once per message of QUEUE (or TOPIC/SUB), up to --concurrency
at a time, over one stream (POST .../stream) that leases no more than
that. Each run gets the message body on stdin, spool's stdout and stderr
(the runs' lines interleave, as with xargs -P) and spool's environment
plus:

  SPOOL_QUEUE     QUEUE as given (TOPIC/SUB for a subscription)
  SPOOL_ID        the message id
  SPOOL_ATTEMPTS  its delivery count, 1 the first time
  SPOOL_RECEIPT   its receipt, ID.ATTEMPT (for spool extend, say)

While CMD runs, spool extends its lease every third of the lease length,
so a run longer than the visibility timeout keeps its message. Exit
status 0 acks the message. Anything else (or CMD killed by a signal, or
not starting) nacks it to the back of the queue, ready again after
--backoff * 2^(attempts-1) (1s, 2s, 4s, ... with the defaults), at most
--max-backoff; a nack of its last attempt (the queue's max_attempts)
sends it dead, or to the queue's dead-letter queue.

Each run logs one line to stderr when it ends:
  spool work: id=42 attempts=1 exit=0 took=1.203s: acked
  spool work: id=43 attempts=2 exit=3 took=15ms: nacked, ready again in 2s

SIGINT or SIGTERM (Ctrl-C) stops taking messages at once, waits for the
runs under way and acks or nacks each as above (extending their leases
meanwhile), then exits. Runs are in a process group of their own, so a
terminal's Ctrl-C reaches spool only. A second signal SIGKILLs their
process groups; their messages go back to the front of the queue at once.
If the server ends the stream, it returns the messages out on it to the
queue, so work lets the runs under way finish but their acks fail.

Exit status: 130 after SIGINT or SIGTERM; 0 once --max runs ended; 1 if
the server ends the stream or is not there; 2 for a bad command line or
a CMD that is not found (before anything is leased).

Every flag is also read from SPOOL_<FLAG> (SPOOL_CONCURRENCY,
SPOOL_MAX_BACKOFF, ...), and SPOOL_ADDR and SPOOL_TOKEN as usual; the runs
inherit them. `+subscriptionNote+`

Examples:
  spool work emails -- ./send-email.sh
  spool work images --concurrency 4 --visibility 2m -- convert-image --quality 80
  spool work orders/billing -- sh -c 'jq -r .order | xargs ./bill "$SPOOL_ID"'
  spool work jobs --max 1 -- sh -c 'cat; echo " (attempt $SPOOL_ATTEMPTS)"'
`)
	return func(args []string) error {
		dash := fs.ArgsLenAtDash()
		if dash != 1 || len(args) < 2 {
			return usageError{fmt.Sprintf("work takes a queue name (or TOPIC/SUB), then -- and the command to run: spool work QUEUE -- CMD [ARGS...]; got %q", args)}
		}
		if *concurrency < 1 || *maxN < 0 || *backoff < 0 || *maxBackoff < 0 || *maxBackoff > queue.MaxDelay {
			return usageError{fmt.Sprintf("--concurrency must be at least 1, --max at least 0, --backoff and --max-backoff between 0s and %s", queue.MaxDelay)}
		}
		name, argv := args[0], args[1:]
		if _, err := exec.LookPath(argv[0]); err != nil {
			return usageError{fmt.Sprintf("work cannot run %q: %v", argv[0], errors.Unwrap(err))}
		}
		cl := c.client()
		cfg, err := consumerConfig(env.ctx, cl, name)
		if err != nil {
			return err
		}
		lease := cfg.visibility
		if *vis > 0 {
			lease = *vis
		}
		w := &worker{
			env: env, name: name, argv: argv, vis: *vis, cons: consumerOf(cl, name),
			every: max(lease/3, minExtendEvery), maxAttempts: cfg.maxAttempts,
			backoff: *backoff, maxBackoff: *maxBackoff,
			stdout: sharedWriter(env.stdout), stderr: sharedWriter(env.stderr),
			running: map[*exec.Cmd]bool{},
		}
		return w.run(*concurrency, *maxN)
	}
}

// worker is one spool work: its stream, and the commands running.
type worker struct {
	env                 *cmdEnv
	name                string
	argv                []string
	vis                 time.Duration // for the stream and each extend; 0: the queue's
	every               time.Duration // how often a running command's lease is extended
	maxAttempts         int           // the queue's, when work started
	cons                *api.Consumer
	backoff, maxBackoff time.Duration
	stdout, stderr      io.Writer // shared by the commands and the log lines
	st                  *api.Stream
	b                   *budget

	mu      sync.Mutex
	running map[*exec.Cmd]bool
	killed  bool // a second signal came: the running commands are killed
}

// run takes messages off a stream of cons and runs them, at most n at
// once, until the context ends, the stream does or max messages were
// taken; then it waits for the runs under way and closes the stream.
// One goroutine per running command (and exec's own), none per message
// waiting: the stream leases no more than n.
func (w *worker) run(n, max int) error {
	sctx, cancel := context.WithCancel(context.WithoutCancel(w.env.ctx))
	defer cancel()
	w.b = &budget{per: n, max: max}
	st, err := w.cons.Stream(sctx, api.StreamOptions{Credit: w.b.target(), Visibility: w.vis})
	if err != nil {
		return err
	}
	w.st, w.b.st = st, st

	slots := make(chan struct{}, n)
	var wg sync.WaitGroup
	var ended error
take:
	for !w.b.exhausted() {
		select {
		case slots <- struct{}{}:
		case <-w.env.ctx.Done():
			break take
		}
		select {
		case <-w.env.ctx.Done():
			break take
		case m, ok := <-st.Messages():
			if !ok {
				ended = streamEnded(st)
				break take
			}
			if w.env.ctx.Err() != nil {
				break take // came with the signal: not run; Close returns it
			}
			w.b.take()
			wg.Add(1)
			go func() {
				defer func() { <-slots; wg.Done() }()
				w.job(m)
			}()
		}
	}
	w.wait(&wg)
	closeStream(st, cancel)
	if ended != nil {
		return ended
	}
	return w.env.ctx.Err() // Canceled after a signal: exit 130
}

// wait waits for the running commands: on the first signal (or one that
// came already) it stops the stream's deliveries, on the next it kills
// them.
func (w *worker) wait(wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	interrupted := w.env.ctx.Done()
	var again chan os.Signal
	for {
		select {
		case <-done:
			return
		case <-interrupted:
			interrupted = nil
			// main's signal.NotifyContext took the first signal and
			// ignores the rest; this hears the next.
			again = make(chan os.Signal, 1)
			signal.Notify(again, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(again)
			w.b.stop()
			if n := w.runningCount(); n > 0 {
				w.logf("stopping: waiting for %d running %s to end (a second signal kills %s)", n, plural(n, "command", "commands"), plural(n, "it", "them"))
			}
		case <-again:
			w.mu.Lock()
			w.killed = true
			for cmd := range w.running {
				killGroup(cmd)
			}
			w.mu.Unlock()
		}
	}
}

func (w *worker) runningCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.running)
}

// job runs the command for m, extending m's lease while it runs, then
// acks or nacks m and logs one line.
func (w *worker) job(m api.Message) {
	start := time.Now()
	cmd := exec.Command(w.argv[0], w.argv[1:]...)
	body, err := api.Body(m)
	cmd.Stdin = bytes.NewReader(body)
	cmd.Stdout, cmd.Stderr = w.stdout, w.stderr
	cmd.Env = append(os.Environ(), "SPOOL_QUEUE="+w.name, "SPOOL_ID="+m.ID,
		"SPOOL_ATTEMPTS="+strconv.Itoa(m.Attempts), "SPOOL_RECEIPT="+m.Receipt)
	cmd.WaitDelay = waitDelay
	ownGroup(cmd)
	if err == nil {
		err = w.start(cmd)
	}
	status := "error"
	if err == nil {
		err = w.extendUntilExit(cmd, m)
		status = exitText(cmd.ProcessState)
	}
	took := time.Since(start).Round(time.Millisecond)
	head := fmt.Sprintf("id=%s attempts=%d exit=%s took=%s", m.ID, m.Attempts, status, took)
	if err != nil && cmd.ProcessState == nil {
		head += fmt.Sprintf(" (%v)", err) // it never ran
	}

	w.mu.Lock()
	delete(w.running, cmd)
	killed := w.killed
	w.mu.Unlock()
	if killed {
		w.logf("%s: killed, back to the queue", head) // Close returns it
		return
	}
	ctx, stop := context.WithTimeout(context.WithoutCancel(w.env.ctx), closeTimeout)
	defer stop()
	w.b.done()
	if cmd.ProcessState != nil && cmd.ProcessState.Success() {
		if err := w.st.Ack(ctx, m.Receipt); err != nil {
			w.logf("%s: ack failed: %s", head, receiptErrorText(err))
		} else {
			w.logf("%s: acked", head)
		}
		return
	}
	d := w.delay(m.Attempts)
	if err := w.st.Nack(ctx, m.Receipt, api.NackOptions{Delay: d}); err != nil {
		w.logf("%s: nack failed: %s", head, receiptErrorText(err))
	} else if w.wentDead(ctx, m) {
		w.logf("%s: nacked on its last attempt: dead", head)
	} else {
		w.logf("%s: nacked, ready again in %s", head, d)
	}
}

// wentDead reports whether m, just nacked, went dead: it may have, when
// its attempts reached max_attempts (they count on past a redrive, its
// tries against max_attempts do not), and then it is no longer listed.
func (w *worker) wentDead(ctx context.Context, m api.Message) bool {
	if m.Attempts < w.maxAttempts {
		return false
	}
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		return false
	}
	msgs, err := w.cons.Peek(ctx, strconv.FormatUint(id-1, 10), 1)
	return err == nil && (len(msgs) == 0 || msgs[0].ID != m.ID)
}

// start starts cmd and counts it as running, unless a second signal came.
func (w *worker) start(cmd *exec.Cmd) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.killed {
		return errors.New("not started: spool is stopping")
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	w.running[cmd] = true
	return nil
}

// extendUntilExit waits for cmd, extending m's lease every w.every. The
// first failed extend (the lease is gone: stale) is logged, and the
// command left to finish.
func (w *worker) extendUntilExit(cmd *exec.Cmd, m api.Message) error {
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(w.every)
	defer tick.Stop()
	extending := true
	for {
		select {
		case err := <-exited:
			return err
		case <-tick.C:
			if !extending {
				continue
			}
			ctx, stop := context.WithTimeout(context.WithoutCancel(w.env.ctx), w.every)
			err := w.st.Extend(ctx, m.Receipt, w.vis)
			stop()
			if err != nil {
				extending = false
				w.logf("id=%s attempts=%d: extend failed, the message may run again elsewhere: %s", m.ID, m.Attempts, receiptErrorText(err))
			}
		}
	}
}

// delay is the nack delay after a failed attempt: backoff doubled for
// each attempt after the first, at most maxBackoff.
func (w *worker) delay(attempts int) time.Duration {
	d := w.backoff
	for i := 1; i < attempts && d < w.maxBackoff; i++ {
		d *= 2
	}
	return min(d, w.maxBackoff)
}

func (w *worker) logf(format string, args ...any) {
	fmt.Fprintf(w.stderr, "spool work: "+format+"\n", args...)
}

// exitText is how a run ended, for the log: its exit status, or the
// signal that killed it ("signal:killed").
func exitText(ps *os.ProcessState) string {
	if code := ps.ExitCode(); code >= 0 {
		return strconv.Itoa(code)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "signal:" + strings.ReplaceAll(ws.Signal().String(), " ", "-")
	}
	return strings.ReplaceAll(ps.String(), " ", "-")
}

// receiptErrorText is a stream command's error as one line: the server's
// message with its [status code], as the receipt commands print it.
func receiptErrorText(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return replyText(ae, false)
	}
	return strings.TrimPrefix(err.Error(), "spool: ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// sharedWriter returns w as the commands and the log lines share it: a
// file as it is (each run writes to it directly, and a log line is one
// write), anything else behind a lock (exec copies each run's output to
// it from a goroutine of its own).
func sharedWriter(w io.Writer) io.Writer {
	if f, ok := w.(*os.File); ok {
		return f
	}
	return &lockedWriter{w: w}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
