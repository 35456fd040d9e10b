package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spoolq/spool/api/apitest"
)

// server is a beanstalkd or redis-server this test started.
type server struct {
	addr string
	pid  int
}

// startServer starts the program name (skipping the test when it is not
// installed) with args, where "PORT" stands for a free port on 127.0.0.1,
// and returns once it accepts connections. It is killed at the end of the
// test.
func startServer(t *testing.T, name string, args ...string) server {
	t.Helper()
	bin, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s is not installed (not on PATH): %v", name, err)
	}
	// The port is free when picked, not reserved: another process may
	// take it before the server binds, so a server that exits is tried
	// again on a new one.
	for attempt := 0; ; attempt++ {
		port := apitest.FreePort(t)
		argv := make([]string, len(args))
		for i, a := range args {
			argv[i] = strings.ReplaceAll(a, "PORT", port)
		}
		cmd := exec.Command(bin, argv...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		addr := net.JoinHostPort("127.0.0.1", port)
		if err := awaitListening(addr, exited, 10*time.Second); err != nil {
			cmd.Process.Kill()
			<-exited
			if attempt < 3 {
				continue
			}
			t.Fatalf("%s %s: %v; its output:\n%s", name, strings.Join(argv, " "), err, out.String())
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			<-exited
		})
		return server{addr: addr, pid: cmd.Process.Pid}
	}
}

// awaitListening dials addr until it answers, the process exits or the
// deadline passes.
func awaitListening(addr string, exited <-chan error, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %s: %w", addr, within, err)
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening: %v", err)
		case <-time.After(10 * time.Millisecond): // the next dial
		}
	}
}

// startBeanstalkd starts beanstalkd as the figures run it: a binlog in a
// temporary directory, fsynced after every write (-f 0).
func startBeanstalkd(t *testing.T) server {
	return startServer(t, "beanstalkd", "-l", "127.0.0.1", "-p", "PORT", "-b", t.TempDir(), "-f", "0")
}

// startRedis starts redis-server with an append-only file fsynced on
// every write, and no snapshots.
func startRedis(t *testing.T) server {
	return startServer(t, "redis-server", "--bind", "127.0.0.1", "--port", "PORT", "--save", "", "--appendonly", "yes",
		"--appendfsync", "always", "--dir", t.TempDir())
}

// lineRun runs scenario sc briefly against the server at addr ("" for
// in-process spool) and checks what every run must show.
func lineRun(t *testing.T, sc string, srv server) *Report {
	t.Helper()
	rep, err := Run(t.Context(), Config{
		Addr:        srv.addr,
		PID:         srv.pid,
		Scenario:    sc,
		Concurrency: 2,
		Duration:    300 * time.Millisecond,
		Sync:        "always",
		Dir:         t.TempDir(),
	})
	if err != nil {
		t.Fatal(err)
	}
	checkReport(t, rep)
	if sc == BeanstalkReserveDelete {
		if rep.Prefilled < rep.Messages || rep.RanDry {
			t.Errorf("deleted %d of %d prefilled, ran dry %v", rep.Messages, rep.Prefilled, rep.RanDry)
		}
		if rep.Requests != 2*rep.Messages {
			t.Errorf("%d requests for %d reserve+delete pairs", rep.Requests, rep.Messages)
		}
	}
	var text bytes.Buffer
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", text.String())
	return rep
}

func TestBeanstalkScenariosBeanstalkd(t *testing.T) {
	srv := startBeanstalkd(t)
	for _, sc := range []string{BeanstalkPut, BeanstalkReserveDelete} {
		t.Run(sc, func(t *testing.T) {
			rep := lineRun(t, sc, srv)
			if rep.Target != srv.addr || rep.Fsyncs != Unknown || rep.ServerRSSBytes <= 0 {
				t.Errorf("target %q, fsyncs %d, RSS %d: want the address, Unknown (no counter), beanstalkd's RSS by PID",
					rep.Target, rep.Fsyncs, rep.ServerRSSBytes)
			}
		})
	}
}

func TestBeanstalkScenariosInProcess(t *testing.T) {
	for _, sc := range []string{BeanstalkPut, BeanstalkReserveDelete} {
		t.Run(sc, func(t *testing.T) {
			rep := lineRun(t, sc, server{})
			if rep.Target != "in-process" || rep.Fsyncs <= 0 || rep.MsgsPerFsync <= 0 {
				t.Errorf("target %q, fsyncs %d (%.1f msgs each): want in-process spool fsyncing with sync=always",
					rep.Target, rep.Fsyncs, rep.MsgsPerFsync)
			}
		})
	}
}

func TestRedisLPush(t *testing.T) {
	srv := startRedis(t)
	rep := lineRun(t, RedisLPush, srv)
	if rep.Requests != rep.Messages {
		t.Errorf("%d requests for %d LPUSHes", rep.Requests, rep.Messages)
	}
	// The list is deleted after the run.
	c, err := dialLine(t.Context(), srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	reply, err := c.roundTrip(t.Context(), respCommand("LLEN", "bench"))
	if err != nil || string(reply) != ":0" {
		t.Errorf("LLEN bench after the run: %q, %v; want :0", reply, err)
	}
}

// TestBeanstalkBaselines: the raw fsync baseline and the trivial one,
// the scenario's own commands to a responder with fixed replies, before
// and after the window.
func TestBeanstalkBaselines(t *testing.T) {
	for _, sc := range []string{BeanstalkPut, BeanstalkReserveDelete} {
		t.Run(sc, func(t *testing.T) {
			rep, err := Run(t.Context(), Config{Scenario: sc, Concurrency: 2, Duration: 200 * time.Millisecond, Baselines: true, Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			b := rep.Baselines
			if b == nil || b.FsyncPerSec <= 0 || b.MsgsPerRawFsync <= 0 {
				t.Fatalf("baselines %+v: want the fsync probe", b)
			}
			if b.TrivialDuration != 200*time.Millisecond {
				t.Errorf("trivial baseline measured for %s, want the window's 200ms", b.TrivialDuration)
			}
			checkTrivialBaseline(t, rep, "beanstalkd-protocol responder")
		})
	}
}

// TestTrivialResponders: the trivial baseline's replies to the commands
// the bench sends, and the end of a connection on what it cannot read.
func TestTrivialResponders(t *testing.T) {
	for _, tc := range []struct {
		proto protocol
		in    string
		want  string
		err   bool // the connection ends after want
	}{
		{protoBeanstalk, "use bench\r\n", "USING bench\r\n", false},
		{protoBeanstalk, "watch bench\r\nignore default\r\n", "WATCHING 1\r\nWATCHING 1\r\n", false},
		{protoBeanstalk, string(putCommand([]byte("hello"))) + "delete 7\r\n", "INSERTED 1\r\nDELETED\r\n", false},
		{protoBeanstalk, string(reserveCommand), "RESERVED 1 3\r\nabc\r\n", false},
		{protoBeanstalk, "stats\r\n", "UNKNOWN_COMMAND\r\n", false},
		{protoBeanstalk, "put 0 0 1 x\r\n", "", true},
		{protoBeanstalk, "use bench\n", "", true},
		{protoRedis, string(respCommand("LPUSH", "bench", "hello")) + string(respCommand("LPUSH", "bench", "")), ":1\r\n:1\r\n", false},
		{protoRedis, "PING\r\n", "", true},
		{protoRedis, "*1\r\n+OK\r\n", "", true},
		{protoRedis, "*1\r\n$-1\r\n", "", true},
	} {
		br := bufio.NewReader(strings.NewReader(tc.in))
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		answer := func() error { return answerBeanstalk(br, bw, trivialReserved([]byte("abc"))) }
		if tc.proto == protoRedis {
			answer = func() error { return answerRESP(br, bw) }
		}
		var err error
		for err == nil {
			err = answer()
		}
		bw.Flush()
		if got := out.String(); got != tc.want || errors.Is(err, errTrivialInput) != tc.err || (!tc.err && err != io.EOF) {
			t.Errorf("%q: replies %q, then %v; want %q, then %s", tc.in, got, err, tc.want, map[bool]string{true: "errTrivialInput", false: "EOF"}[tc.err])
		}
	}
}

// fakeBeanstalkd answers use, and every other put DRAINING instead of
// INSERTED: a reply the bench must count as a failed operation.
func fakeBeanstalkd(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var puts atomic.Int64
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				r := bufio.NewReader(nc)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					f := strings.Fields(line)
					var reply string
					switch {
					case len(f) == 2 && f[0] == "use":
						reply = "USING " + f[1]
					case len(f) == 5 && f[0] == "put":
						n, _ := strconv.Atoi(f[4])
						if _, err := io.CopyN(io.Discard, r, int64(n)+2); err != nil {
							return
						}
						reply = "INSERTED 1"
						if puts.Add(1)%2 == 0 {
							reply = "DRAINING"
						}
					default:
						reply = "UNKNOWN_COMMAND"
					}
					if _, err := io.WriteString(nc, reply+"\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

func TestBeanstalkUnexpectedReply(t *testing.T) {
	rep, err := Run(t.Context(), Config{Addr: fakeBeanstalkd(t), Scenario: BeanstalkPut, Concurrency: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Messages == 0 || rep.Errors == 0 || !strings.Contains(rep.FirstError, `unexpected reply "DRAINING"`) {
		t.Errorf("messages %d, errors %d, first %q: want both, and DRAINING named", rep.Messages, rep.Errors, rep.FirstError)
	}
}

func TestLineConfigErrors(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Scenario: RedisLPush}, "redis server"},
		{Config{Scenario: BeanstalkPut, Addr: "http://127.0.0.1:11300"}, "host:port"},
		{Config{Scenario: BeanstalkPut, Token: "x"}, "no authentication"},
	} {
		_, err := Run(t.Context(), c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%+v): %v, want an error saying %q", c.cfg, err, c.want)
		}
	}
	// Nothing listening: a clear error before any phase.
	_, err := Run(t.Context(), Config{Scenario: BeanstalkPut, Addr: "127.0.0.1:" + apitest.FreePort(t), Duration: time.Second})
	var op *net.OpError
	if !errors.As(err, &op) || !strings.Contains(err.Error(), "beanstalkd-protocol server at") {
		t.Errorf("no server: %v", err)
	}
}

func TestRESPCommand(t *testing.T) {
	if got, want := string(respCommand("LPUSH", "q", "xy")), "*3\r\n$5\r\nLPUSH\r\n$1\r\nq\r\n$2\r\nxy\r\n"; got != want {
		t.Errorf("respCommand = %q, want %q", got, want)
	}
	if got, want := string(putCommand([]byte("abc"))), "put 1024 0 60 3\r\nabc\r\n"; got != want {
		t.Errorf("putCommand = %q, want %q", got, want)
	}
}

// cancelOnWrite cancels when a progress line containing word is written.
type cancelOnWrite struct {
	word   string
	cancel context.CancelFunc
}

func (w cancelOnWrite) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte(w.word)) {
		w.cancel()
	}
	return len(b), nil
}

// TestBeanstalkCancel: cancelling a run ends its window at once, though
// its workers may be waiting on a reply (reserve-with-timeout).
func TestBeanstalkCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var cancelled time.Time
	rep, err := Run(ctx, Config{
		Scenario: BeanstalkReserveDelete, Concurrency: 2, Duration: time.Minute, Dir: t.TempDir(),
		// The first progress line of the window comes after about a second.
		Progress: cancelOnWrite{"measuring", func() {
			if cancelled.IsZero() {
				cancelled = time.Now()
			}
			cancel()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(cancelled); cancelled.IsZero() || took > 5*time.Second || rep.Messages == 0 {
		t.Errorf("returned %s after the cancel, with %d messages", took, rep.Messages)
	}
}

// TestIssue16Figures measures the figures of issue 16 on this machine, in
// one session: spool's beanstalkd listener (in-process, sync=always)
// against beanstalkd -b DIR -f 0 for put and reserve+delete at 16 and 64
// connections, and spool's put against redis LPUSH with appendfsync
// always at 64. Each comparison runs its two servers back to back, each
// beanstalkd and redis fresh. SPOOL_BENCH_FIGURES=N runs N rounds of it;
// SPOOL_BENCH_WINDOW sets the window (default 5s).
func TestIssue16Figures(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("SPOOL_BENCH_FIGURES"))
	if rounds <= 0 {
		t.Skip("set SPOOL_BENCH_FIGURES=<rounds> to measure issue 16's figures (minutes per round)")
	}
	window := 5 * time.Second
	if w, err := time.ParseDuration(os.Getenv("SPOOL_BENCH_WINDOW")); err == nil {
		window = w
	}
	run := func(t *testing.T, sc string, c int, srv server) *Report {
		rep, err := Run(t.Context(), Config{
			Addr: srv.addr, PID: srv.pid, Scenario: sc, Concurrency: c, Duration: window,
			Sync: "always", Baselines: true, Dir: os.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		var text bytes.Buffer
		rep.WriteText(&text)
		t.Logf("\n%s", text.String())
		if rep.Errors != 0 {
			t.Errorf("%s: %d errors, first: %s", sc, rep.Errors, rep.FirstError)
		}
		return rep
	}
	var table strings.Builder
	// trivial is the responder's rate (the trivial line baseline) in the
	// spool run; the two "of trivial" columns are each server's requests
	// as a share of the trivial rate measured in its own run.
	fmt.Fprintf(&table, "%-26s %4s  %-10s %10s %9s %9s %11s %10s %6s  %-10s %10s %9s %9s %11s %6s  %6s\n",
		"scenario", "conn", "spool", "msgs/s", "p50", "p99", "raw fsync/s", "trivial", "of it", "vs", "msgs/s", "p50", "p99", "cpu cores", "of it", "ratio")
	row := func(sc string, c int, spool *Report, other string, o *Report) {
		fmt.Fprintf(&table, "%-26s %4d  %-10s %10.0f %9s %9s %11.0f %10.0f %6s  %-10s %10.0f %9s %9s %11s %6s  %6.2f\n",
			sc, c, "in-process", spool.MsgsPerSec, ms(spool.LatencyP50), ms(spool.LatencyP99), spool.Baselines.FsyncPerSec,
			spool.Baselines.TrivialReqPerSec, pct(spool.Baselines.VsTrivial),
			other, o.MsgsPerSec, ms(o.LatencyP50), ms(o.LatencyP99), num(o.ServerCPUCores), pct(o.Baselines.VsTrivial), spool.MsgsPerSec/o.MsgsPerSec)
	}
	for round := range rounds {
		for _, f := range []struct {
			sc string
			c  int
		}{{BeanstalkPut, 16}, {BeanstalkPut, 64}, {BeanstalkReserveDelete, 16}, {BeanstalkReserveDelete, 64}} {
			t.Run(fmt.Sprintf("round%d/%s/%d", round+1, f.sc, f.c), func(t *testing.T) {
				b := run(t, f.sc, f.c, startBeanstalkd(t))
				s := run(t, f.sc, f.c, server{})
				row(f.sc, f.c, s, "beanstalkd", b)
			})
		}
		t.Run(fmt.Sprintf("round%d/redis/64", round+1), func(t *testing.T) {
			r := run(t, RedisLPush, 64, startRedis(t))
			s := run(t, BeanstalkPut, 64, server{})
			row("beanstalk-put/redis-lpush", 64, s, "redis", r)
		})
	}
	t.Logf("window %s, %d cores; ratio = spool msgs/s / the other's\n%s", window, runtime.NumCPU(), table.String())
}
