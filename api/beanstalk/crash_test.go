//go:build unix

package beanstalk_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gobeanstalk "github.com/beanstalkd/go-beanstalk"

	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/log/crashtest"
	"github.com/spoolq/spool/queue"
)

// The beanstalkd crash test runs the server in a child process (this test
// binary, re-executed) over one data directory, drives it from the parent
// with several go-beanstalk clients, SIGKILLs it at a random moment,
// starts a new child on the same directory and checks over the protocol
// that what the server acknowledged survived. The parent keeps the model:
// the child only serves. Each round adds jobs to what the rounds before
// left behind, and every check covers every job ever acknowledged.
const (
	crashEnvDir = "SPOOL_BEANSTALK_CRASH_DIR"
	// crashEnvSeed replays a failing run's choices (ops, priorities, TTRs,
	// kill moments); goroutine scheduling still differs.
	crashEnvSeed = "SPOOL_BEANSTALK_CRASH_SEED"

	crashRounds      = 10
	crashShortRounds = 2
	crashClients     = 6
	crashMaxPri      = 2000
	crashMinKill     = 30 * time.Millisecond
	crashMaxKill     = 300 * time.Millisecond
	// TTRs are long next to a round, so no reservation runs out while
	// its client still works on it; after a restart a lease left by the
	// killed server may still be running, which the check accepts.
	crashMinTTR = 3
	crashMaxTTR = 6
	// crashWait bounds a child that never prints its address and every
	// connection's reads and writes; it only fails a hung test, it never
	// paces one.
	crashWait       = 20 * time.Second
	crashCheckConns = 4
)

// crashTubes includes names that are not queue names ("a/b", "."), whose
// queues are hashed and labelled, so the label must survive too.
var crashTubes = []string{"default", "emails", "a/b", "."}

// TestBeanstalkCrashChild is the child of TestBeanstalkCrashSIGKILL: it
// serves beanstalk over a broker on the directory the parent names, fsync
// always, prints its address and serves until it is killed. Snapshots and
// maintenance run often, so that priorities and TTRs are recovered from
// snapshots and compacted logs too, not only from a state log's tail.
func TestBeanstalkCrashChild(t *testing.T) {
	dir := crashtest.Child(t, crashEnvDir)
	b, err := queue.Open(dir, queue.Options{
		Sync:                queue.SyncAlways,
		SegmentSize:         64 << 10,
		SnapshotEvery:       200,
		MaintenanceInterval: 10 * time.Millisecond,
		Logger:              quiet,
	})
	if err != nil {
		crashtest.Die("open: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		crashtest.Die("listen: %v", err)
	}
	srv := beanstalk.NewServer(b, beanstalk.Options{Logger: quiet})
	fmt.Printf("%s\n", l.Addr())
	crashtest.Die("serve: %v", srv.Serve(l))
}

// TestBeanstalkCrashSIGKILL kills the server with SIGKILL while clients
// put, reserve, delete, release, bury and kick jobs, rounds times, and
// checks after each restart, with stats-job and peek, that:
//   - every job whose INSERTED was read exists, in its tube, with its TTR
//     and body, unless a delete of it was sent;
//   - its priority is that of the last put, release or bury whose reply
//     was read, and it is buried exactly when the last acknowledged op
//     buried it; an op sent whose reply the kill cut off may or may not
//     have happened, and either outcome is accepted (the check then learns
//     which, and later rounds go on from there);
//   - every job whose DELETED was read, or that a check found gone,
//     answers NOT_FOUND, and is never reserved again;
//   - a job reserved at the kill is ready after the restart, or still
//     reserved by the dead server's lease, with at most its TTR left; a
//     job no client had may be reserved too, by a reserve the kill cut
//     off, with at most its TTR left too (reserveCutOff): a reserve
//     leases a job for its own TTR in one state-log event.
//
// While the clients run, every RESERVED must name a job a client put (by
// its body), with the id its INSERTED gave, that no delete removed, no
// bury buried and no other client holds.
func TestBeanstalkCrashSIGKILL(t *testing.T) {
	rounds := crashRounds
	if testing.Short() {
		rounds = crashShortRounds
	}
	seed := rand.Uint64()
	if s := os.Getenv(crashEnvSeed); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s: %v", crashEnvSeed, err)
		}
	}
	t.Logf("seed %d (%s=%d replays its choices)", seed, crashEnvSeed, seed)
	start := time.Now()
	dir := t.TempDir()
	m := newCrashModel()
	kills := rand.New(rand.NewPCG(seed, 0))
	child := startCrashChild(t, dir)
	for round := 1; round <= rounds; round++ {
		var killed atomic.Bool
		conns := make([]*gobeanstalk.Conn, crashClients)
		for g := range conns {
			var err error
			if conns[g], err = crashDial(child.addr); err != nil {
				t.Fatal(err)
			}
		}
		cutOff := make([][]string, crashClients)
		errs := make([]error, crashClients)
		var wg sync.WaitGroup
		for g, c := range conns {
			rng := rand.New(rand.NewPCG(seed, uint64(round)<<8|uint64(g+1)))
			wg.Go(func() { cutOff[g], errs[g] = m.client(c, round, g, rng, &killed) })
		}
		// The timer only picks the moment of the kill; the clients run
		// until their connections break, nothing waits on it for
		// correctness.
		<-time.After(crashMinKill + time.Duration(kills.Int64N(int64(crashMaxKill-crashMinKill+1))))
		killed.Store(true)
		child.kill(t)
		wg.Wait()
		for g, c := range conns {
			c.Close()
			if errs[g] != nil {
				t.Errorf("round %d: %v", round, errs[g])
			}
			m.reserveCutOff(cutOff[g])
		}
		if t.Failed() {
			t.FailNow()
		}
		child = startCrashChild(t, dir)
		m.check(t, child.addr, round)
	}
	t.Logf("%d rounds in %s: %s", rounds, time.Since(start).Round(time.Millisecond), m.counts())
}

// A crashChild is a running child server.
type crashChild struct {
	cmd    *exec.Cmd
	addr   string
	stdout crashStdout
	stderr bytes.Buffer  // read only once exited is closed
	exited chan struct{} // closed once Wait returned, into werr
	werr   error
}

// crashStdout keeps what a child writes to stdout and hands over its
// first line, the server's address.
type crashStdout struct {
	mu   sync.Mutex
	buf  []byte
	line chan string // gets the first line, once
}

func (w *crashStdout) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	had := bytes.IndexByte(w.buf, '\n') >= 0
	w.buf = append(w.buf, p...)
	if i := bytes.IndexByte(w.buf, '\n'); !had && i >= 0 {
		w.line <- string(w.buf[:i])
	}
	return len(p), nil
}

// startCrashChild starts a child server on dir and returns once it has
// printed its address: it is listening then.
func startCrashChild(t *testing.T, dir string) *crashChild {
	t.Helper()
	c := &crashChild{
		cmd:    exec.Command(os.Args[0], "-test.run=^TestBeanstalkCrashChild$", "-test.count=1"),
		exited: make(chan struct{}),
	}
	c.stdout.line = make(chan string, 1)
	c.cmd.Env = append(os.Environ(), crashEnvDir+"="+dir)
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	// The child exits when its stdin ends (crashtest.Child): when this
	// process is gone, or Wait has seen it exit and closed the pipe.
	if _, err := c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	go func() {
		c.werr = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
	waited := time.NewTimer(crashWait)
	defer waited.Stop()
	select {
	case c.addr = <-c.stdout.line:
	case <-c.exited:
		t.Fatalf("child exited before printing its address: %v\nstderr:\n%s", c.werr, c.stderr.Bytes())
	case <-waited.C:
		c.cmd.Process.Kill()
		<-c.exited
		t.Fatalf("child printed no address within %s\nstderr:\n%s", crashWait, c.stderr.Bytes())
	}
	return c
}

// kill SIGKILLs the child and reaps it. It fails t if the child had
// exited on its own, did not die of SIGKILL, or wrote to stderr (a race
// report, a log line: nothing belongs there).
func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
		t.Fatalf("child exited on its own before the kill: %v\nstderr:\n%s", c.werr, c.stderr.Bytes())
	default:
	}
	if err := c.cmd.Process.Kill(); err != nil { // SIGKILL on unix
		t.Fatalf("kill child: %v", err)
	}
	<-c.exited
	var ee *exec.ExitError
	if !errors.As(c.werr, &ee) {
		t.Fatalf("child: %v, want death by SIGKILL\nstderr:\n%s", c.werr, c.stderr.Bytes())
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want death by SIGKILL\nstderr:\n%s", c.werr, c.stderr.Bytes())
	}
	if c.stderr.Len() > 0 {
		t.Fatalf("child wrote to stderr:\n%s", c.stderr.Bytes())
	}
}

// The model: what the parent knows of every job it put.

type crashState uint8

const (
	crashReady crashState = iota
	crashReserved
	crashBuried
	crashGone
)

func (s crashState) String() string {
	return [...]string{"ready", "reserved", "buried", "gone"}[s]
}

// crashOp is an op on a job that changes it: sent, its reply not yet read.
type crashOp struct {
	verb string // "release", "bury", "delete", "kick-job"
	pri  uint32 // release's and bury's
}

// after is the job's (state, priority) once op has happened to a job at
// priority pri.
func (op crashOp) after(pri uint32) crashOutcome {
	switch op.verb {
	case "release":
		return crashOutcome{crashReady, op.pri}
	case "bury":
		return crashOutcome{crashBuried, op.pri}
	case "delete":
		return crashOutcome{crashGone, 0}
	}
	return crashOutcome{crashReady, pri} // kick-job
}

// A crashOutcome is what a check may find of a job: reserved counts as
// ready (the lease of a dead server's client), gone has no priority.
type crashOutcome struct {
	state crashState
	pri   uint32
}

func (o crashOutcome) String() string {
	if o.state == crashGone {
		return "gone"
	}
	return fmt.Sprintf("%s at %d", o.state, o.pri)
}

// A crashJob is one put: what the model knows of it. Only the client
// that holds it (its reservation, or its claim of it buried) acts on it,
// so the model follows the server's order of ops on each job, except
// where a reply is read after the next client's RESERVED (gen).
type crashJob struct {
	body  []byte
	tube  string
	ttr   int // seconds
	round int // the round whose server got the put
	id    uint64
	// must: the job has to exist until a delete of it is sent. Its
	// INSERTED was read, or a later server than the one it was put to
	// had it.
	must  bool
	state crashState
	pri   uint32
	// pend is the op a client sent whose reply it has not read. A
	// RESERVED of the job proves a pending release or kick-job happened.
	pend *crashOp
	// gen counts the job's reservations. A client reads a release's or
	// kick's reply after the server made the job ready: if gen has moved,
	// another client reserved it in between, and applied the op already.
	gen int
	// leaseLimit is the most time-left (seconds) a check may find on a
	// lease of the job that no client holds: one a check found before,
	// still running, or one a reserve the kill cut off took
	// (reserveCutOff).
	leaseLimit int
}

// String describes j; the caller holds the model's mu, or is the check.
func (j *crashJob) String() string {
	return fmt.Sprintf("job %d (tube %q, ttr %d, put in round %d, body %.24q)", j.id, j.tube, j.ttr, j.round, j.body)
}

type crashModel struct {
	mu     sync.Mutex
	byBody map[string]*crashJob
	byID   map[uint64]*crashJob
	// buried holds the buried jobs no client holds, for kick-job and
	// delete by id.
	buried map[*crashJob]bool
	n      struct {
		puts, unackedPuts, reserves, deletes, releases, buries, kicks int
		inFlight, inFlightApplied, leasedAfterRestart, checked        int
	}
}

func newCrashModel() *crashModel {
	return &crashModel{byBody: map[string]*crashJob{}, byID: map[uint64]*crashJob{}, buried: map[*crashJob]bool{}}
}

func (m *crashModel) counts() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.n
	return fmt.Sprintf("%d INSERTED (%d puts cut off), %d RESERVED, %d DELETED, %d RELEASED, %d BURIED, %d KICKED; "+
		"%d ops cut off by a kill, %d of them found done; %d jobs found reserved after a restart; %d job checks",
		n.puts, n.unackedPuts, n.reserves, n.deletes, n.releases, n.buries, n.kicks,
		n.inFlight, n.inFlightApplied, n.leasedAfterRestart, n.checked)
}

// putting records a put about to be sent.
func (m *crashModel) putting(body []byte, tube string, pri uint32, ttr, round int) *crashJob {
	j := &crashJob{body: body, tube: tube, ttr: ttr, round: round, pri: pri}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byBody[string(body)] = j
	m.n.unackedPuts++
	return j
}

// inserted records j's INSERTED.
func (m *crashModel) inserted(j *crashJob, id uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.id != 0 && j.id != id {
		return fmt.Errorf("INSERTED %d for a job reserved as %d", id, j.id)
	}
	if other := m.byID[id]; other != nil && other != j {
		return fmt.Errorf("INSERTED %d for %q, already the id of %v", id, j.body, other)
	}
	j.id, j.must = id, true
	m.byID[id] = j
	m.n.puts++
	m.n.unackedPuts--
	return nil
}

// reserved records a RESERVED by a client of round's server, and returns
// the job and its generation, for done.
func (m *crashModel) reserved(id uint64, body []byte, round int) (*crashJob, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j := m.byBody[string(body)]
	switch {
	case j == nil:
		return nil, 0, fmt.Errorf("RESERVED %d with body %.24q, which no client put", id, body)
	case j.id != 0 && j.id != id:
		return nil, 0, fmt.Errorf("RESERVED %d: the body of %v", id, j)
	case j.id == 0 && m.byID[id] != nil:
		return nil, 0, fmt.Errorf("RESERVED %d with body %.24q: the id of %v", id, body, m.byID[id])
	case j.state == crashGone:
		return nil, 0, fmt.Errorf("RESERVED %v, which was deleted or found gone: it came back", j)
	}
	j.id = id
	m.byID[id] = j
	if j.pend != nil {
		if v := j.pend.verb; v != "release" && v != "kick-job" {
			return nil, 0, fmt.Errorf("RESERVED %v while a %s of it was in flight", j, v)
		}
		j.applyLocked(m)
	} else if j.state != crashReady {
		return nil, 0, fmt.Errorf("RESERVED %v, which is %s", j, j.state)
	}
	if round > j.round {
		j.must = true // a later server had it: its put is on disk
	}
	j.state = crashReserved
	j.gen++
	m.n.reserves++
	return j, j.gen, nil
}

// reserveCutOff records a reserve on tubes that the kill cut off: it may
// have leased any job ready in them, for the job's TTR. Such a job was
// never handed out, but is held until that lease runs out.
func (m *crashModel) reserveCutOff(tubes []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, j := range m.byID {
		if !slices.Contains(tubes, j.tube) {
			continue
		}
		// Ready, or made ready by an op whose reply was not read; not one
		// a client holds and never let go of.
		if j.state == crashReady || j.pend != nil && (j.pend.verb == "release" || j.pend.verb == "kick-job") {
			j.leaseLimit = max(j.leaseLimit, j.ttr)
		}
	}
}

// claimBuried hands a client a buried job no one holds, if there is one.
func (m *crashModel) claimBuried() (*crashJob, int, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for j := range m.buried { // map order is random enough
		delete(m.buried, j) // the claimer's until its op is done
		return j, j.gen, true
	}
	return nil, 0, false
}

// sending records op on j, which the calling client holds, as in flight,
// and returns j's id and its description. A job's id is set under mu (a
// late INSERTED may set it while another client holds the job), so the
// client reads them here.
func (m *crashModel) sending(j *crashJob, op crashOp) (uint64, string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j.pend = &op
	return j.id, j.String()
}

// done records the reply to j's pending op, unless a reservation of
// another generation than gen applied it already.
func (m *crashModel) done(j *crashJob, gen int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if j.gen == gen && j.pend != nil {
		j.applyLocked(m)
	}
}

// applyLocked makes j's pending op happen in the model: j is no client's
// any more (a buried job is free to claim). The caller holds m.mu.
func (j *crashJob) applyLocked(m *crashModel) {
	o := j.pend.after(j.pri)
	switch j.pend.verb {
	case "release":
		m.n.releases++
	case "bury":
		m.n.buries++
	case "delete":
		m.n.deletes++
	case "kick-job":
		m.n.kicks++
	}
	j.state, j.pri, j.pend = o.state, o.pri, nil
	j.leaseLimit = 0 // ready, buried or gone: no lease
	if j.state == crashBuried {
		m.buried[j] = true
	}
}

// crashConnLost says whether err is the connection breaking (the kill)
// rather than a reply the server sent.
func crashConnLost(err error) bool {
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.As(err, &ne)
}

func crashDial(addr string) (*gobeanstalk.Conn, error) {
	nc, err := net.DialTimeout("tcp", addr, crashWait)
	if err != nil {
		return nil, err
	}
	nc.SetDeadline(time.Now().Add(crashWait))
	return gobeanstalk.NewConn(nc), nil
}

// client is client g of round's server, on c: it puts jobs into random
// tubes, reserves from two of them and deletes, releases, buries or keeps
// what it gets, and kicks or deletes buried jobs, until c breaks. It
// returns a nil err if c broke after killed was set (the kill), else what
// went wrong; cutOff names the tubes a reserve the kill cut off watched.
// The caller closes c, after the kill: a client that stops on an error
// must not hand its reservations to the others.
func (m *crashModel) client(c *gobeanstalk.Conn, round, g int, rng *rand.Rand, killed *atomic.Bool) (cutOff []string, err error) {
	defer func() {
		if err != nil && crashConnLost(err) && killed.Load() {
			err = nil
		}
		if err != nil {
			err = fmt.Errorf("client %d: %w", g, err)
		}
	}()
	tubes := make([]*gobeanstalk.Tube, len(crashTubes))
	for i, name := range crashTubes {
		tubes[i] = gobeanstalk.NewTube(c, name)
	}
	watchedNames := []string{crashTubes[g%len(crashTubes)], crashTubes[(g+1)%len(crashTubes)]}
	watched := gobeanstalk.NewTubeSet(c, watchedNames...)
	for seq := 0; ; seq++ {
		var j *crashJob
		var gen int
		var op crashOp
		switch p := rng.IntN(100); {
		case p < 45:
			tube := tubes[rng.IntN(len(tubes))]
			pri, ttr := rng.Uint32N(crashMaxPri+1), crashMinTTR+rng.IntN(crashMaxTTR-crashMinTTR+1)
			// A body any byte may be in, "\r\n" too; its prefix makes it
			// unique, so a RESERVED names its job by it.
			body := fmt.Appendf(nil, "r%d-c%d-%d:", round, g, seq)
			for range rng.IntN(300) {
				body = append(body, byte(rng.Uint32()))
			}
			j := m.putting(body, tube.Name, pri, ttr, round)
			id, err := tube.Put(body, pri, 0, time.Duration(ttr)*time.Second)
			if err != nil {
				return nil, fmt.Errorf("put: %w", err)
			}
			if err := m.inserted(j, id); err != nil {
				return nil, err
			}
			continue
		case p < 90:
			id, body, err := watched.Reserve(0)
			if errors.Is(err, gobeanstalk.ErrTimeout) || errors.Is(err, gobeanstalk.ErrDeadline) {
				continue // none ready, or a kept job's TTR is nearly out
			}
			if err != nil {
				return watchedNames, fmt.Errorf("reserve: %w", err)
			}
			if j, gen, err = m.reserved(id, body, round); err != nil {
				return nil, err
			}
			switch p := rng.IntN(100); {
			case p < 35:
				op = crashOp{verb: "delete"}
			case p < 65:
				op = crashOp{verb: "release", pri: rng.Uint32N(crashMaxPri + 1)}
			case p < 85:
				op = crashOp{verb: "bury", pri: rng.Uint32N(crashMaxPri + 1)}
			default:
				continue // kept reserved until the kill
			}
		default:
			var ok bool
			if j, gen, ok = m.claimBuried(); !ok {
				continue
			}
			op = crashOp{verb: "delete"}
			if rng.IntN(2) == 0 {
				op.verb = "kick-job"
			}
		}
		id, desc := m.sending(j, op)
		switch op.verb {
		case "delete":
			err = c.Delete(id)
		case "release":
			err = c.Release(id, op.pri, 0)
		case "bury":
			err = c.Bury(id, op.pri)
		case "kick-job":
			err = c.KickJob(id)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", op.verb, desc, err)
		}
		m.done(j, gen)
	}
}

// crashFound is what a check found of a job: nil err and an outcome, or
// what was wrong with it.
type crashFound struct {
	crashOutcome
	leased bool // reserved: by the dead server's lease, with left seconds of it
	left   int
	err    error
}

// check checks every job with a known id against the server at addr,
// which has just recovered from round's kill, then takes what it found as
// the model, for the rounds after: an op the kill cut off happened or
// did not, now the model knows.
func (m *crashModel) check(t *testing.T, addr string, round int) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	var jobs []*crashJob
	for _, j := range m.byID {
		jobs = append(jobs, j)
	}
	slices.SortFunc(jobs, func(a, b *crashJob) int { return cmp.Compare(a.id, b.id) })
	found := make([]crashFound, len(jobs))
	var wg sync.WaitGroup
	for w := range crashCheckConns {
		wg.Go(func() {
			c, err := crashDial(addr)
			if err != nil {
				for i := w; i < len(jobs); i += crashCheckConns {
					found[i].err = err
				}
				return
			}
			defer c.Close()
			for i := w; i < len(jobs); i += crashCheckConns {
				found[i] = crashLook(c, jobs[i])
			}
		})
	}
	wg.Wait()

	bad := 0
	for i, j := range jobs {
		f := found[i]
		allowed := j.allowed()
		if f.err == nil {
			if !slices.Contains(allowed, f.crashOutcome) {
				f.err = fmt.Errorf("found %s, want %v", f.crashOutcome, allowed)
			} else if limit := j.maxLease(); f.leased && f.left > limit {
				f.err = fmt.Errorf("found reserved with %d s left, want at most %d (TTR %d)", f.left, limit, j.ttr)
			}
		}
		if f.err != nil {
			if bad++; bad <= 20 {
				t.Errorf("after the kill of round %d: %v: %v", round, j, f.err)
			}
			continue
		}
		if j.pend != nil {
			m.n.inFlight++
			if f.crashOutcome != allowed[0] {
				m.n.inFlightApplied++
			}
		}
		if f.leased {
			m.n.leasedAfterRestart++
		}
		m.n.checked++
		delete(m.buried, j)
		j.state, j.pri, j.pend = f.state, f.pri, nil
		j.leaseLimit = 0
		if f.leased {
			j.leaseLimit = f.left // it runs out, never grows
		}
		j.must = j.must || f.state != crashGone // this server had it
		if j.state == crashBuried {
			m.buried[j] = true
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d jobs wrong after the kill of round %d", bad, len(jobs), round)
	}
}

// maxLease is the most time-left a check may find on a lease of j, a
// lease that no connection of the new server holds. A job a client had
// reserved at the kill (its RESERVED read) is leased for its TTR: a
// reserve writes the lease's length before it replies. Any other lease is
// one a check found before, or one a cut-off reserve took.
func (j *crashJob) maxLease() int {
	if j.state == crashReserved && j.pend == nil {
		return j.ttr
	}
	if j.state == crashReserved {
		// Its release or kick may have happened, and a cut-off reserve
		// then taken it.
		return max(j.ttr, j.leaseLimit)
	}
	return j.leaseLimit
}

// allowed lists what a check may find of j after a kill: first what the
// model holds, then what a pending op would have made of it, and gone if
// the job need not exist.
func (j *crashJob) allowed() []crashOutcome {
	now := crashOutcome{j.state, j.pri}
	if j.state == crashReserved {
		now.state = crashReady // its connection died with the server
	}
	allowed := []crashOutcome{now}
	if j.pend != nil {
		allowed = append(allowed, j.pend.after(j.pri))
	}
	if !j.must && j.state != crashGone {
		allowed = append(allowed, crashOutcome{crashGone, 0})
	}
	return allowed
}

// crashLook reads job j from the server with stats-job and peek.
func crashLook(c *gobeanstalk.Conn, j *crashJob) crashFound {
	st, err := c.StatsJob(j.id)
	if errors.Is(err, gobeanstalk.ErrNotFound) {
		return crashFound{crashOutcome: crashOutcome{crashGone, 0}}
	}
	if err != nil {
		return crashFound{err: fmt.Errorf("stats-job: %w", err)}
	}
	var f crashFound
	pri, err := strconv.ParseUint(st["pri"], 10, 32)
	if err != nil {
		return crashFound{err: fmt.Errorf("stats-job: pri: %v in %v", err, st)}
	}
	f.pri = uint32(pri)
	switch st["state"] {
	case "ready":
		f.state = crashReady
	case "buried":
		f.state = crashBuried
	case "reserved":
		// No connection of this server reserved it: it is a lease the
		// killed server wrote (check judges its length).
		left, err := strconv.Atoi(st["time-left"])
		if err != nil || left < 0 {
			return crashFound{err: fmt.Errorf("reserved after the restart with time-left %q: %v", st["time-left"], st)}
		}
		f.state, f.leased, f.left = crashReady, true, left
	default:
		return crashFound{err: fmt.Errorf("state %q: %v", st["state"], st)}
	}
	if st["tube"] != quoted(j.tube) || st["ttr"] != strconv.Itoa(j.ttr) {
		return crashFound{err: fmt.Errorf("stats-job tube %s ttr %s, want %s and %d", st["tube"], st["ttr"], quoted(j.tube), j.ttr)}
	}
	body, err := c.Peek(j.id)
	if err != nil {
		return crashFound{err: fmt.Errorf("peek: %w", err)}
	}
	if !bytes.Equal(body, j.body) {
		return crashFound{err: fmt.Errorf("peek: body %.40q, want %.40q", body, j.body)}
	}
	return f
}
