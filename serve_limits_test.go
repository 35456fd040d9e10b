package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
)

// rawConn is one client connection driven by hand, so a test decides
// exactly which connections exist and what each has sent.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	// A bound on every read and write: a wedged server fails the test
	// instead of hanging it.
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// get sends GET path on the connection (keep-alive) and reads the reply.
func (c *rawConn) get(path string) (*http.Response, []byte, error) {
	if _, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: spool\r\n\r\n", path); err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

func TestServeRefusesConnectionsBeyondTheCap(t *testing.T) {
	addr := startServe(t, t.TempDir(), "--max-connections", "2").addr

	// Two connections that have each been served (so the server has
	// accepted them) and now sit idle, holding both slots.
	held := []*rawConn{dialRaw(t, addr), dialRaw(t, addr)}
	for i, c := range held {
		if resp, _, err := c.get("/healthz"); err != nil || resp.StatusCode != 200 {
			t.Fatalf("connection %d: GET /healthz = %v, %v", i, resp, err)
		}
	}

	// The third is refused at once with a 503 it can read, not left to hang.
	third := dialRaw(t, addr)
	resp, body, err := third.get("/healthz")
	if err != nil {
		t.Fatalf("third connection: %v (want a 503 reply)", err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable || !resp.Close || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("third connection: %s, Connection close %v, Retry-After %q; want 503, close, 1", resp.Status, resp.Close, resp.Header.Get("Retry-After"))
	}
	var reply api.ErrorReply
	if err := json.Unmarshal(body, &reply); err != nil || reply.Error.Code != api.CodeUnavailable || reply.Error.Message == "" {
		t.Fatalf("third connection: body %q (%v), want the JSON error with code %q", body, err, api.CodeUnavailable)
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("third connection: Content-Type %q", resp.Header.Get("Content-Type"))
	}
	if _, err := third.br.ReadByte(); err != io.EOF {
		t.Fatalf("third connection: after the 503, read = %v, want EOF (the server closes it)", err)
	}

	// The refusal did not cost a held connection its slot.
	if resp, _, err := held[1].get("/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("held connection after a refusal: %v, %v", resp, err)
	}

	// Once one closes, a new connection is served again. The server frees
	// the slot when it sees the close, so poll with a deadline.
	held[0].Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c := dialRaw(t, addr)
		resp, _, err := c.get("/healthz")
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("10s after closing a connection a new one still gets %v, %v", resp, err)
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline, not synchronizing on time
	}
}

// TestShutdownCutsAStalledUpload SIGTERMs the real binary while an upload
// has stalled mid-body and a long poll waits: it must exit 0 well before
// the old 15 s drain, log the cut at WARN and nothing at ERROR, and keep
// everything acknowledged before.
func TestShutdownCutsAStalledUpload(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildSpool(t)
	data := t.TempDir()
	s := startBinary(t, bin, data)
	ctx := context.Background()
	cl := api.NewClient(s.addr, "", nil)
	for _, q := range []string{"jobs", "idle"} {
		if _, _, err := cl.PutQueue(ctx, q, api.QueueConfig{}); err != nil {
			t.Fatal(err)
		}
	}
	acked := map[string]string{}
	for i := range 20 {
		body := fmt.Sprintf("acked %d", i)
		id, err := cl.Send(ctx, "jobs", []byte(body), 0)
		if err != nil {
			t.Fatal(err)
		}
		acked[id] = body
	}

	// A long poll on an empty queue, on a connection the server has
	// already served (so it is accepted, not waiting in the backlog).
	poll := dialRaw(t, s.addr)
	if resp, _, err := poll.get("/healthz"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /healthz: %v, %v", resp, err)
	}
	fmt.Fprintf(poll, "POST /v1/queues/idle/receive?wait=20s HTTP/1.1\r\nHost: spool\r\nContent-Length: 0\r\n\r\n")

	// The stalled upload: headers promising 1000 bytes, then 10. Expect:
	// 100-continue makes the server say when the handler starts reading
	// the body, so the SIGTERM surely lands while it is stuck in it.
	up := dialRaw(t, s.addr)
	fmt.Fprintf(up, "POST /v1/queues/jobs/messages HTTP/1.1\r\nHost: spool\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
	if line, err := up.br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "HTTP/1.1 100") {
		t.Fatalf("stalled upload: got %q, %v; want 100 Continue", line, err)
	}
	up.br.ReadString('\n') // the blank line ending the 100 reply
	if _, err := up.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}

	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("spool serve still running 10s after SIGTERM with a stalled upload:\n%s", s.logs.String())
	}
	s.checkRace(t)
	if s.err != nil {
		t.Fatalf("spool serve exited with %v after SIGTERM (want status 0):\n%s", s.err, s.logs.String())
	}
	logs := s.logs.String()
	if !slices.ContainsFunc(s.records("WARN"), func(r logRecord) bool {
		return strings.HasPrefix(r.Msg, "spool: ") && strings.Contains(r.Msg, "drain")
	}) {
		t.Errorf("no WARN saying how shutdown cut the stalled request:\n%s", logs)
	}
	if len(s.records("ERROR")) > 0 {
		t.Errorf("shutdown logged at ERROR:\n%s", logs)
	}
	// The long poll was released with 503 (or, if the server had not read
	// it yet, its connection was closed as idle): either way no ERROR above.
	if resp, err := http.ReadResponse(poll.br, nil); err == nil {
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("long poll during shutdown: %s, want 503", resp.Status)
		}
	} else {
		t.Logf("long poll: connection closed before it was read (%v); the 503 path was not exercised this run", err)
	}

	// Restart: everything acknowledged is there, the stalled upload is not.
	s = startBinary(t, bin, data)
	defer s.stop(t)
	msgs, err := api.NewClient(s.addr, "", nil).Peek(ctx, "jobs", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]string{}
	for _, m := range msgs {
		b, _ := api.Body(m)
		found[m.ID] = string(b)
	}
	for id, body := range acked {
		if found[id] != body {
			t.Errorf("acknowledged message %s (%q) is %q after restart", id, body, found[id])
		}
	}
	if len(found) != len(acked) {
		t.Errorf("%d messages after restart, want the %d acknowledged (the stalled upload was never acknowledged)", len(found), len(acked))
	}
}

// TestServeFitsMaxConnectionsToTheOpenFileLimit runs the binary under a
// low open-file limit (hard and soft, since Go raises the soft one to the
// hard one at start): a --max-connections that does not fit is refused
// with what to do; the default is lowered to fit, with a warning.
func TestServeFitsMaxConnectionsToTheOpenFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("needs sh to lower ulimit -n")
	}
	bin := buildSpool(t)
	const limit = 200
	serveUnder := func(args ...string) *exec.Cmd {
		// The context bounds a server that wrongly starts instead of
		// refusing.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return serveUnderLimit(ctx, limit, bin, t.TempDir(), args...)
	}

	t.Run("an explicit --max-connections that does not fit is refused", func(t *testing.T) {
		flag := serveUnder("--max-connections", "1000")
		env := serveUnder()
		env.Env = append(os.Environ(), "SPOOL_MAX_CONNECTIONS=1000")
		for _, cmd := range []*exec.Cmd{flag, env} {
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("%q (env %v): %v, want exit status 2:\n%s", cmd.Args, cmd.Env != nil, err, out)
			}
			for _, want := range []string{"ulimit -n", "--max-connections", strconv.Itoa(limit)} {
				if !strings.Contains(string(out), want) {
					t.Errorf("%q: message does not mention %q:\n%s", cmd.Args, want, out)
				}
			}
		}
	})

	t.Run("the default is lowered to fit, with a warning", func(t *testing.T) {
		s := startChild(t, serveUnder())
		s.waitListening(t)
		warns := s.records("WARN")
		i := slices.IndexFunc(warns, func(r logRecord) bool {
			return strings.HasPrefix(r.Msg, "spool: lowered --max-connections")
		})
		if i < 0 {
			t.Fatalf("no WARN about lowering --max-connections:\n%s", s.logs.String())
		}
		if n := warns[i].MaxConnections; n <= 0 || n >= limit {
			t.Fatalf("lowered to %d, want between 0 and the limit %d:\n%s", n, limit, s.logs.String())
		}
		s.stopWithin(t, 10*time.Second)
	})
}
