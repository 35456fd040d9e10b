package beanstalk_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gobeanstalk "github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/queue"
)

// The beanstalkd protocol through a real client, go-beanstalk, against
// the server over a Broker in a temporary directory.

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// server is a running beanstalk server and its broker.
type server struct {
	addr   string
	b      *queue.Broker
	srv    *beanstalk.Server
	served chan error // Serve's result
}

func startServer(tb testing.TB, dir string, o beanstalk.Options) *server {
	tb.Helper()
	b, err := queue.Open(dir, queue.Options{Logger: quiet, MaxMessageBytes: max(o.MaxJobBytes, beanstalk.DefaultMaxJobBytes)})
	if err != nil {
		tb.Fatal(err)
	}
	o.Logger = quiet
	srv := beanstalk.NewServer(b, o)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s := &server{addr: l.Addr().String(), b: b, srv: srv, served: make(chan error, 1)}
	go func() { s.served <- srv.Serve(l) }()
	tb.Cleanup(func() { s.stop(tb) })
	return s
}

func (s *server) stop(tb testing.TB) {
	if s.srv == nil {
		return
	}
	if err := s.srv.Close(); err != nil {
		tb.Errorf("Close: %v", err)
	}
	if err := <-s.served; !errors.Is(err, beanstalk.ErrServerClosed) {
		tb.Errorf("Serve returned %v, want ErrServerClosed", err)
	}
	if err := s.b.Close(); err != nil {
		tb.Errorf("broker Close: %v", err)
	}
	s.srv = nil
}

func dial(tb testing.TB, addr string) *gobeanstalk.Conn {
	tb.Helper()
	c, err := gobeanstalk.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// check fails its test on an error and returns the value beside it.
type check struct{ testing.TB }

func (c check) ok(err error) {
	c.Helper()
	if err != nil {
		c.Fatal(err)
	}
}

func (c check) id(id uint64, err error) uint64 {
	c.Helper()
	c.ok(err)
	return id
}

func (c check) dict(m map[string]string, err error) map[string]string {
	c.Helper()
	c.ok(err)
	return m
}

func wantErr(tb testing.TB, err, want error) {
	tb.Helper()
	if !errors.Is(err, want) {
		tb.Fatalf("err %v, want %v", err, want)
	}
}

func TestPutReserveDeleteInPriorityThenIDOrder(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	low := (check{t}).id(c.Put([]byte("low"), 2000, 0, time.Minute))
	first := (check{t}).id(c.Put([]byte("first"), 10, 0, time.Minute))
	second := (check{t}).id(c.Put([]byte("second"), 10, 0, time.Minute))
	urgent := (check{t}).id(c.Put([]byte("urgent"), 0, 0, time.Minute))
	if !(low < first && first < second && second < urgent) {
		t.Fatalf("ids %d %d %d %d do not grow", low, first, second, urgent)
	}
	for _, want := range []uint64{urgent, first, second, low} {
		id, body, err := c.Reserve(time.Second)
		if err != nil || id != want {
			t.Fatalf("Reserve = %d %q, %v; want %d", id, body, err, want)
		}
		if err := c.Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	_, _, err := c.Reserve(0)
	wantErr(t, err, gobeanstalk.ErrTimeout)
	wantErr(t, c.Delete(first), gobeanstalk.ErrNotFound)
}

func TestReleaseGoesBackInPlaceAtItsNewPriority(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	a := (check{t}).id(c.Put([]byte("a"), 5, 0, time.Minute))
	b := (check{t}).id(c.Put([]byte("b"), 5, 0, time.Minute))
	id, _, _ := c.Reserve(time.Second)
	if id != a {
		t.Fatalf("reserved %d, want %d", id, a)
	}
	if err := c.Release(a, 5, 0); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := c.Reserve(time.Second); id != a {
		t.Fatalf("after a release at its priority %d comes first, want %d (ahead of %d)", id, a, b)
	}
	if err := c.Release(a, 6, 0); err != nil {
		t.Fatal(err)
	}
	if id, _, _ := c.Reserve(time.Second); id != b {
		t.Fatalf("after a release at 6, %d comes first, want %d", id, b)
	}
	stats := (check{t}).dict(c.StatsJob(a))
	if stats["pri"] != "6" || stats["state"] != "ready" || stats["reserves"] != "2" {
		t.Fatalf("stats-job of the released job: %v", stats)
	}
	// Released with a delay: delayed, then ready.
	if err := c.Release(b, 5, time.Second); err != nil {
		t.Fatal(err)
	}
	if got := (check{t}).dict(c.StatsJob(b))["state"]; got != "delayed" {
		t.Fatalf("released with a delay: %s", got)
	}
	id, _, err := c.Reserve(3 * time.Second)
	if err != nil || id != a {
		t.Fatalf("Reserve = %d, %v; want %d, ready while %d is delayed", id, err, a, b)
	}
	if id, _, err := c.Reserve(3 * time.Second); err != nil || id != b {
		t.Fatalf("Reserve = %d, %v; want %d once its delay is over", id, err, b)
	}
}

func TestBuryPeekKick(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	tube := gobeanstalk.NewTube(c, "work")
	ts := gobeanstalk.NewTubeSet(c, "work")
	a := (check{t}).id(tube.Put([]byte("a"), 1, 0, time.Minute))
	d := (check{t}).id(tube.Put([]byte("later"), 1, time.Hour, time.Minute))
	id, _ := must2(t)(ts.Reserve(time.Second))
	if id != a {
		t.Fatalf("reserved %d, want %d", id, a)
	}
	if err := c.Bury(a, 9); err != nil {
		t.Fatal(err)
	}
	if id, body, err := tube.PeekBuried(); err != nil || id != a || string(body) != "a" {
		t.Fatalf("PeekBuried = %d %q, %v", id, body, err)
	}
	if id, _, err := tube.PeekDelayed(); err != nil || id != d {
		t.Fatalf("PeekDelayed = %d, %v", id, err)
	}
	_, _, err := tube.PeekReady()
	wantErr(t, err, gobeanstalk.ErrNotFound)
	if body, err := c.Peek(d); err != nil || string(body) != "later" {
		t.Fatalf("Peek = %q, %v", body, err)
	}
	// kick takes buried jobs first, and only them while there are any.
	if n, err := tube.Kick(10); n != 1 || err != nil {
		t.Fatalf("Kick = %d, %v; want the buried one", n, err)
	}
	if st := (check{t}).dict(c.StatsJob(a)); st["state"] != "ready" || st["pri"] != "9" {
		t.Fatalf("kicked: %v", st)
	}
	if n, err := tube.Kick(10); n != 1 || err != nil {
		t.Fatalf("Kick = %d, %v; want the delayed one", n, err)
	}
	if st := (check{t}).dict(c.StatsJob(d)); st["state"] != "ready" {
		t.Fatalf("kicked delayed: %v", st)
	}
	wantErr(t, c.KickJob(d), gobeanstalk.ErrNotFound) // ready: nothing to kick
	id, _ = must2(t)(ts.Reserve(time.Second))
	(check{t}).ok(c.Bury(id, 1))
	(check{t}).ok(c.KickJob(id))
	if st := (check{t}).dict(tube.Stats()); st["current-jobs-ready"] != "2" || st["current-jobs-buried"] != "0" || st["current-jobs-urgent"] != "2" {
		t.Fatalf("stats-tube: %v", st)
	}
}

func must2(tb testing.TB) func(uint64, []byte, error) (uint64, []byte) {
	return func(id uint64, body []byte, err error) (uint64, []byte) {
		tb.Helper()
		if err != nil {
			tb.Fatal(err)
		}
		return id, body
	}
}

func TestAReservationBelongsToItsConnection(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	owner, other := dial(t, s.addr), dial(t, s.addr)
	id := (check{t}).id(owner.Put([]byte("x"), 1, 0, time.Minute))
	if got, _ := must2(t)(owner.Reserve(time.Second)); got != id {
		t.Fatalf("reserved %d", got)
	}
	wantErr(t, other.Delete(id), gobeanstalk.ErrNotFound)
	wantErr(t, other.Release(id, 1, 0), gobeanstalk.ErrNotFound)
	wantErr(t, other.Bury(id, 1), gobeanstalk.ErrNotFound)
	wantErr(t, other.Touch(id), gobeanstalk.ErrNotFound)
	_, err := other.ReserveJob(id)
	wantErr(t, err, gobeanstalk.ErrNotFound)
	if st := (check{t}).dict(other.StatsJob(id)); st["state"] != "reserved" {
		t.Fatalf("stats-job from the other connection: %v", st)
	}
	// The owner hangs up: the job is ready at once, for the other.
	owner.Close()
	got, _, err := other.Reserve(5 * time.Second)
	if err != nil || got != id {
		t.Fatalf("after the owner closed: Reserve = %d, %v", got, err)
	}
	(check{t}).ok(other.Touch(id))
	(check{t}).ok(other.Delete(id))
}

func TestAWaitingReserveGetsAPutFromAnotherConnection(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	worker, producer := dial(t, s.addr), dial(t, s.addr)
	ts := gobeanstalk.NewTubeSet(worker, "a", "b")
	type got struct {
		id   uint64
		body []byte
		err  error
	}
	done := make(chan got, 1)
	go func() {
		id, body, err := ts.Reserve(10 * time.Second)
		done <- got{id, body, err}
	}()
	// Wait until the worker is waiting, as stats says.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if st := (check{t}).dict(producer.Stats()); st["current-waiting"] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker never waited")
		}
	}
	id := (check{t}).id(gobeanstalk.NewTube(producer, "b").Put([]byte("job"), 1, 0, time.Minute))
	r := <-done
	if r.err != nil || r.id != id || string(r.body) != "job" {
		t.Fatalf("waiting reserve = %d %q, %v; want %d", r.id, r.body, r.err, id)
	}
}

func TestDeadlineSoonAndTTR(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	id := (check{t}).id(c.Put([]byte("x"), 1, 0, time.Second)) // a TTR of 1 s
	if got, _ := must2(t)(c.Reserve(time.Second)); got != id {
		t.Fatalf("reserved %d", got)
	}
	_, _, err := c.Reserve(5 * time.Second)
	wantErr(t, err, gobeanstalk.ErrDeadline)
	// DEADLINE_SOON until the TTR runs out; then the job is ready again,
	// and reserved again.
	for deadline := time.Now().Add(5 * time.Second); ; {
		got, _, err := c.Reserve(5 * time.Second)
		if errors.Is(err, gobeanstalk.ErrDeadline) && time.Now().Before(deadline) {
			continue
		}
		if err != nil || got != id {
			t.Fatalf("after its TTR ran out: %d, %v", got, err)
		}
		break
	}
	if st := (check{t}).dict(c.StatsJob(id)); st["reserves"] != "2" || st["ttr"] != "1" {
		t.Fatalf("stats-job: %v", st)
	}
}

func TestWatchIgnoreAndTubeNames(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	// go-beanstalk refuses names of 200 bytes, which beanstalkd takes:
	// TestErrorReplies uses one.
	for _, name := range []string{".", "..", "a/b", "x(1)$;+", strings.Repeat("n", 199), "bt-00000000000000000000000000000000"} {
		tube := gobeanstalk.NewTube(c, name)
		id := (check{t}).id(tube.Put([]byte(name), 1, 0, time.Minute))
		st := (check{t}).dict(c.StatsJob(id))
		if st["tube"] != quoted(name) {
			t.Fatalf("stats-job tube %q, want %q", st["tube"], name)
		}
		got, body, err := gobeanstalk.NewTubeSet(c, name).Reserve(time.Second)
		if err != nil || got != id || string(body) != name {
			t.Fatalf("%q: reserve = %d %q, %v", name, got, body, err)
		}
		(check{t}).ok(c.Delete(id))
	}
	tubes, err := c.ListTubes()
	(check{t}).ok(err)
	for _, want := range []string{"default", ".", "a/b", strings.Repeat("n", 199)} {
		if !slices.Contains(tubes, want) {
			t.Fatalf("list-tubes %q lacks %q", tubes, want)
		}
	}
	for _, info := range s.b.List() {
		if !queue.ValidName(info.Name) {
			t.Fatalf("a tube made the queue %q, not a valid queue name", info.Name)
		}
	}
}

// quoted is a tube name as stats-job writes it: quoted, as beanstalkd 1.13
// does (go-beanstalk keeps the quotes).
func quoted(name string) string { return `"` + name + `"` }

// raw sends lines as they are and returns the replies' first lines.
func raw(tb testing.TB, addr string, lines ...string) []string {
	tb.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	br := bufio.NewReader(nc)
	var replies []string
	for _, l := range lines {
		if _, err := io.WriteString(nc, l); err != nil {
			tb.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		reply, err := br.ReadString('\n')
		if err != nil {
			tb.Fatalf("after %q: %v", l, err)
		}
		reply = strings.TrimSuffix(reply, "\r\n")
		var n int
		if _, err := fmt.Sscanf(reply, "OK %d", &n); err == nil || strings.HasPrefix(reply, "RESERVED") || strings.HasPrefix(reply, "FOUND") {
			if n == 0 {
				fmt.Sscanf(reply[strings.LastIndexByte(reply, ' ')+1:], "%d", &n)
			}
			body := make([]byte, n+2)
			if _, err := io.ReadFull(br, body); err != nil {
				tb.Fatal(err)
			}
			reply += "|" + strings.TrimSuffix(string(body), "\r\n")
		}
		replies = append(replies, reply)
	}
	return replies
}

func TestErrorReplies(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{MaxJobBytes: 10})
	got := raw(t, s.addr,
		"frobnicate\r\n",
		"put 1 0 10 11\r\nxxxxxxxxxxx\r\n",
		"put 1 0 10 3\r\nabcxx",
		"put x 0 10 3\r\n",
		"abc\r\n",
		"use -bad\r\n",
		"ignore default\r\n",
		"peek 1\r\n",
		"stats-tube nosuch\r\n",
		"pause-tube nosuch 1\r\n",
		"reserve-with-timeout 0\r\n",
		"list-tube-used\r\n",
		"list-tubes-watched\r\n",
		"put 0 999999999 1 1\r\nx\r\n",
		"use "+strings.Repeat("n", 200)+"\r\n",
		"use "+strings.Repeat("n", 201)+"\r\n",
	)
	want := []string{
		"UNKNOWN_COMMAND",
		"JOB_TOO_BIG",
		"EXPECTED_CRLF",
		"BAD_FORMAT",
		"UNKNOWN_COMMAND", // the body of a bad put is the next line
		"BAD_FORMAT",
		"NOT_IGNORED",
		"NOT_FOUND",
		"NOT_FOUND",
		"NOT_FOUND",
		"TIMED_OUT",
		"USING default",
		"OK 14|---\n- default\n",
		"BAD_FORMAT", // a delay past spool's longest
		"USING " + strings.Repeat("n", 200),
		"BAD_FORMAT",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("replies:\n got %q\nwant %q", got, want)
	}
}

func TestPauseTubeHoldsReservesBack(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	c := dial(t, s.addr)
	id := (check{t}).id(c.Put([]byte("x"), 1, 0, time.Minute))
	if err := c.Tube.Pause(time.Second); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.Reserve(0)
	wantErr(t, err, gobeanstalk.ErrTimeout)
	start := time.Now()
	got, _, err := c.Reserve(5 * time.Second)
	if err != nil || got != id {
		t.Fatalf("Reserve after the pause = %d, %v", got, err)
	}
	if waited := time.Since(start); waited < 500*time.Millisecond {
		t.Fatalf("reserved after %s, inside a 1 s pause", waited)
	}
	// The pause is over: it reads 0 again, as in beanstalkd.
	if st := (check{t}).dict(c.Tube.Stats()); st["cmd-pause-tube"] != "1" || st["pause"] != "0" {
		t.Fatalf("stats-tube: %v", st)
	}
}

// Job ids, priorities and states survive a restart; a reserved job is
// ready again after it (its connection is gone).
func TestJobsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir, beanstalk.Options{})
	c := dial(t, s.addr)
	tube := gobeanstalk.NewTube(c, "jobs")
	ready := (check{t}).id(tube.Put([]byte("ready"), 7, 0, time.Minute))
	buried := (check{t}).id(tube.Put([]byte("buried"), 3, 0, time.Minute))
	delayed := (check{t}).id(tube.Put([]byte("delayed"), 1, time.Hour, time.Minute))
	id, _ := must2(t)(gobeanstalk.NewTubeSet(c, "jobs").Reserve(time.Second))
	if id != buried {
		t.Fatalf("reserved %d, want %d", id, buried)
	}
	(check{t}).ok(c.Bury(buried, 2))
	c.Close()
	s.stop(t)

	s = startServer(t, dir, beanstalk.Options{})
	c = dial(t, s.addr)
	for _, tt := range []struct {
		id    uint64
		state string
		pri   string
	}{{ready, "ready", "7"}, {buried, "buried", "2"}, {delayed, "delayed", "1"}} {
		st := (check{t}).dict(c.StatsJob(tt.id))
		if st["state"] != tt.state || st["pri"] != tt.pri || st["tube"] != quoted("jobs") {
			t.Errorf("job %d after a restart: %v; want %s at %s", tt.id, st, tt.state, tt.pri)
		}
	}
	other := (check{t}).id(gobeanstalk.NewTube(c, "other").Put([]byte("o"), 1, 0, time.Minute))
	if other == ready || other == buried || other == delayed {
		t.Fatalf("a job in another tube got id %d, already taken", other)
	}
}

func TestConnectionCap(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{MaxConnections: 1})
	first := dial(t, s.addr)
	if _, err := first.ListTubes(); err != nil {
		t.Fatal(err)
	}
	nc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply, _ := io.ReadAll(nc)
	if string(reply) != "OUT_OF_MEMORY\r\n" {
		t.Fatalf("over the cap: %q, want OUT_OF_MEMORY and a close", reply)
	}
}

// Connections reserving and burying at once: nobody releases, kicks or
// lets a TTR run out, so each job is reserved once. (reserve once revived
// a job another connection had just buried, between finding it ready and
// leasing it.)
func TestConcurrentReservesNeverTakeABuriedJob(t *testing.T) {
	s := startServer(t, t.TempDir(), beanstalk.Options{})
	const jobs = 600
	p := dial(t, s.addr)
	for range jobs {
		(check{t}).id(p.Put([]byte("x"), 1, 0, time.Minute))
	}
	var mu sync.Mutex
	seen := map[uint64]bool{}
	var wg sync.WaitGroup
	for range 8 {
		c := dial(t, s.addr)
		wg.Go(func() {
			for {
				id, _, err := c.Reserve(0)
				if errors.Is(err, gobeanstalk.ErrTimeout) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				again := seen[id]
				seen[id] = true
				mu.Unlock()
				if again {
					t.Errorf("job %d reserved again after it was buried", id)
					return
				}
				if err := c.Bury(id, 1); err != nil {
					t.Errorf("bury %d: %v", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != jobs {
		t.Fatalf("%d jobs reserved, want %d", len(seen), jobs)
	}
}
