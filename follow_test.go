package main

// recv --follow against an in-process server, and the helpers the tests
// of spool work (work_test.go) share with it.

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
)

// bgCLI is a spool command line running in a goroutine, as main runs it.
type bgCLI struct {
	out, errOut *syncBuffer
	cancel      context.CancelFunc // as SIGINT or SIGTERM would
	code        chan int
}

// startCLI runs spool --addr SRV args... until it ends or the test does.
func startCLI(t *testing.T, srv *inProcServer, args ...string) *bgCLI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &bgCLI{out: &syncBuffer{}, errOut: &syncBuffer{}, cancel: cancel, code: make(chan int, 1)}
	go func() {
		r.code <- runMain(ctx, append([]string{"--addr", srv.base}, args...), strings.NewReader(""), r.out, r.errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case c := <-r.code:
			r.code <- c
		case <-time.After(10 * time.Second):
			t.Errorf("spool %q still running 10s after the test ended", args)
		}
	})
	return r
}

// exit waits up to d for the command's exit status.
func (r *bgCLI) exit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case c := <-r.code:
		r.code <- c
		return c
	case <-time.After(d):
		t.Fatalf("still running after %s; stdout:\n%s\nstderr:\n%s", d, r.out, r.errOut)
	}
	return 0
}

// waitUntil polls cond until it holds, failing the test after d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// newQueue starts a server with one queue, q, made with cfg.
func newQueue(t *testing.T, cfg api.QueueConfig) (*inProcServer, *api.Client) {
	t.Helper()
	srv := startServe(t, t.TempDir())
	cl := api.NewClient(srv.base, "", nil)
	if _, _, err := cl.PutQueue(t.Context(), "q", cfg); err != nil {
		t.Fatal(err)
	}
	return srv, cl
}

func mustSend(t *testing.T, cl *api.Client, bodies ...string) {
	t.Helper()
	for _, b := range bodies {
		if _, err := cl.Send(t.Context(), "q", []byte(b), 0); err != nil {
			t.Fatal(err)
		}
	}
}

func counts(t *testing.T, cl *api.Client) api.Counts {
	t.Helper()
	q, err := cl.GetQueue(t.Context(), "q")
	if err != nil {
		t.Fatal(err)
	}
	return q.Counts
}

func peekAll(t *testing.T, cl *api.Client) []api.Message {
	t.Helper()
	msgs, err := cl.Queue("q").Peek(t.Context(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

func TestRecvFollow(t *testing.T) {
	t.Run("prints what is sent while it runs and returns its leases at once when interrupted", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		r := startCLI(t, srv, "recv", "q", "--follow")
		mustSend(t, cl, "one")
		waitUntil(t, 5*time.Second, "the first message printed", func() bool { return r.out.String() == "one\n" })
		mustSend(t, cl, "two\nlines")
		waitUntil(t, 5*time.Second, "the second message printed", func() bool { return r.out.String() == "one\n\"two\\nlines\"\n" })
		if got := r.errOut.String(); got != "receipt 1.1\nreceipt 2.1\n" {
			t.Errorf("stderr %q, want each receipt as recv prints it", got)
		}
		if c := counts(t, cl); c.Leased != 2 {
			t.Fatalf("while it runs: %+v, want both leased", c)
		}
		r.cancel()
		if code := r.exit(t, 5*time.Second); code != exitInterrupted {
			t.Fatalf("exit %d after an interrupt, want %d", code, exitInterrupted)
		}
		if c := counts(t, cl); c.Ready != 2 || c.Leased != 0 {
			t.Fatalf("right after it exited: %+v, want both ready again", c)
		}
	})

	t.Run("with --ack acks each message and --max stops it without leasing more", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		mustSend(t, cl, "a", "b", "c")
		r := startCLI(t, srv, "recv", "q", "--follow", "--ack", "--max", "2")
		if code := r.exit(t, 5*time.Second); code != 0 || r.out.String() != "a\nb\n" || r.errOut.String() != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q; want 0, a and b, nothing", code, r.out, r.errOut)
		}
		msgs := peekAll(t, cl)
		if len(msgs) != 1 || msgs[0].ID != "3" || msgs[0].State != "ready" || msgs[0].Attempts != 0 {
			t.Fatalf("left %+v, want message 3 alone, ready and never delivered", msgs)
		}
	})

	t.Run("without --ack a message acked elsewhere gives its place to the next once its lease is over", func(t *testing.T) {
		srv, cl := newQueue(t, api.QueueConfig{})
		mustSend(t, cl, "x", "y")
		r := startCLI(t, srv, "recv", "q", "--follow", "--credit", "1", "--visibility", "1s")
		waitUntil(t, 5*time.Second, "x printed", func() bool { return r.out.String() == "x\n" })
		if res, err := cl.Queue("q").Ack(t.Context(), "1.1"); err != nil || resultsError(res) != nil {
			t.Fatalf("ack 1.1: %v %+v", err, res)
		}
		waitUntil(t, 5*time.Second, "y printed after x's lease", func() bool { return r.out.String() == "x\ny\n" })
	})

	t.Run("follows a subscription as TOPIC/SUB", func(t *testing.T) {
		srv := startServe(t, t.TempDir())
		cl := api.NewClient(srv.base, "", nil)
		if _, _, err := cl.PutTopic(t.Context(), "orders", api.TopicConfig{}); err != nil {
			t.Fatal(err)
		}
		start := "earliest"
		if _, _, err := cl.PutSubscription(t.Context(), "orders", "billing", api.SubscriptionConfig{Start: &start}); err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Publish(t.Context(), "orders", []byte(`{"order":1}`), 0); err != nil {
			t.Fatal(err)
		}
		r := startCLI(t, srv, "recv", "orders/billing", "--follow", "--ack", "--max", "1")
		if code := r.exit(t, 5*time.Second); code != 0 || r.out.String() != "{\"order\":1}\n" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, r.out, r.errOut)
		}
		if s, err := cl.GetSubscription(t.Context(), "orders", "billing"); err != nil || s.Counts.Total != 0 {
			t.Fatalf("subscription after: %+v, %v; want it empty", s.Counts, err)
		}
	})

	t.Run("refuses --wait and a --credit without --follow", func(t *testing.T) {
		for _, args := range [][]string{{"recv", "q", "--follow", "--wait", "1s"}, {"recv", "q", "--credit", "5"}} {
			if code, _, errOut := runAsMain(t, nil, args...); code != 2 {
				t.Errorf("spool %q: exit %d (%s), want 2", args, code, errOut)
			}
		}
	})
}
