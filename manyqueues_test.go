package main

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

// TestManyQueuesBinary measures what many empty queues cost the real
// binary: RSS and open files after start, restart time and clean-stop
// time, for this tree and (with -manyqueues.base) for a git revision
// built from `git archive`, in the same run, alternating between them.
// It is a benchmark, not a check: it only runs when asked.
//
//	go test -run TestManyQueuesBinary -manyqueues -manyqueues.base=HEAD -v .
var (
	manyQueues       = flag.Bool("manyqueues", false, "run TestManyQueuesBinary (a benchmark of the real binary)")
	manyQueuesN      = flag.Int("manyqueues.n", 5000, "queues TestManyQueuesBinary creates")
	manyQueuesBase   = flag.String("manyqueues.base", "", "git revision to measure alongside this tree (e.g. HEAD); empty: this tree only")
	manyQueuesRounds = flag.Int("manyqueues.rounds", 3, "restart/stop rounds per binary")
	manyQueuesTouch  = flag.Bool("manyqueues.touch", true, "also measure a stop after one enqueue and ack on every queue")
	manyQueuesIdle   = flag.Duration("manyqueues.idlewait", 0, "after touching every queue, wait this long (past the 1m idle timeout) and measure again")
)

func TestManyQueuesBinary(t *testing.T) {
	if !*manyQueues {
		t.Skip("a benchmark of the real binary: run with -manyqueues")
	}
	bins := []struct{ name, path string }{{"this tree", buildSpool(t)}}
	if *manyQueuesBase != "" {
		bins = append(bins, struct{ name, path string }{*manyQueuesBase, mqBuildRevision(t, *manyQueuesBase)})
	}
	tmpl := filepath.Join(t.TempDir(), "template")
	t0 := time.Now()
	mqMakeQueues(t, tmpl, *manyQueuesN)
	t.Logf("created %d queues in %s", *manyQueuesN, time.Since(t0).Round(time.Millisecond))

	type sample struct{ start, stop, rss, fds, threads []float64 }
	samples := make([]sample, len(bins))
	touched := make([]float64, len(bins))
	dirs := make([]string, len(bins))
	for i := range bins {
		dirs[i] = filepath.Join(t.TempDir(), "data")
		if out, err := exec.Command("cp", "-a", tmpl, dirs[i]).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
	}
	// Round 0 is the first start on a fresh copy (queues never opened
	// before); rounds 1.. are restarts after a clean stop, the figures
	// that count.
	for round := 0; round <= *manyQueuesRounds; round++ {
		for i, bin := range bins {
			t0 := time.Now()
			s := startBinary(t, bin.path, dirs[i])
			start := time.Since(t0)
			time.Sleep(3 * time.Second) // a few maintenance passes; the runtime settles
			rss, threads := mqProcStatus(t, s.cmd.Process.Pid)
			fds := mqCountFDs(t, s.cmd.Process.Pid)
			stop := mqStopTimed(t, s)
			t.Logf("%-10s round %d: start %6s  stop %6s  RSS %6.1f MB  fds %5d  threads %d",
				bin.name, round, start.Round(time.Millisecond), stop.Round(time.Millisecond), rss/1024, fds, int(threads))
			if round > 0 {
				smp := &samples[i]
				smp.start = append(smp.start, start.Seconds())
				smp.stop = append(smp.stop, stop.Seconds())
				smp.rss = append(smp.rss, rss/1024)
				smp.fds = append(smp.fds, float64(fds))
				smp.threads = append(smp.threads, threads)
			}
		}
	}
	if *manyQueuesTouch {
		for i, bin := range bins {
			s := startBinary(t, bin.path, dirs[i])
			mqTouchAll(t, s.base, *manyQueuesN)
			rss, _ := mqProcStatus(t, s.cmd.Process.Pid)
			t.Logf("%-10s after an enqueue and an ack on every queue: RSS %6.1f MB  fds %5d", bin.name, rss/1024, mqCountFDs(t, s.cmd.Process.Pid))
			if *manyQueuesIdle > 0 {
				time.Sleep(*manyQueuesIdle)
				rss, _ := mqProcStatus(t, s.cmd.Process.Pid)
				t.Logf("%-10s %s later: RSS %6.1f MB  fds %5d", bin.name, *manyQueuesIdle, rss/1024, mqCountFDs(t, s.cmd.Process.Pid))
			}
			stop := mqStopTimed(t, s)
			touched[i] = stop.Seconds()
			t.Logf("%-10s stop after an enqueue and an ack on every queue: %s", bin.name, stop.Round(time.Millisecond))
		}
	}
	med := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d empty queues, median of %d restarts:\n", *manyQueuesN, *manyQueuesRounds)
	fmt.Fprintf(&b, "%-12s %10s %10s %10s %8s %8s %14s\n", "binary", "restart s", "stop s", "RSS MB", "fds", "threads", "stop touched s")
	for i, bin := range bins {
		smp := samples[i]
		fmt.Fprintf(&b, "%-12s %10.2f %10.2f %10.1f %8.0f %8.0f %14.2f\n", bin.name, med(smp.start), med(smp.stop), med(smp.rss), med(smp.fds), med(smp.threads), touched[i])
	}
	t.Log("\n" + b.String())
}

// buildRevision builds the spool binary of a git revision of this
// repository, from `git archive` (the working tree is left alone).
func mqBuildRevision(t *testing.T, rev string) string {
	t.Helper()
	src := t.TempDir()
	archive := exec.Command("git", "archive", "--format=tar", rev)
	var tarball bytes.Buffer
	archive.Stdout = &tarball
	if err := archive.Run(); err != nil {
		t.Fatalf("git archive %s: %v", rev, err)
	}
	untar := exec.Command("tar", "-x", "-C", src)
	untar.Stdin = &tarball
	if out, err := untar.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "spool-"+rev)
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", rev, err, out)
	}
	return bin
}

// makeQueues creates n empty queues in a new data directory.
func mqMakeQueues(t *testing.T, dir string, n int) {
	t.Helper()
	b, err := queue.Open(dir, queue.Options{MaintenanceInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	mqEach(t, n, func(i int) error {
		_, _, err := b.Create(fmt.Sprintf("q%05d", i), queue.ConfigUpdate{})
		return err
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
}

// touchAll enqueues one message on every queue, receives and acks it.
func mqTouchAll(t *testing.T, base string, n int) {
	t.Helper()
	mqEach(t, n, func(i int) error { return mqTouchQueue(base, fmt.Sprintf("q%05d", i)) })
}

// mqEach calls fn(i) for every i in [0, n), eight at a time, and fails t
// with the first error.
func mqEach(t *testing.T, n int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	work := make(chan int)
	errs := make(chan error, 1)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				if err := fn(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func mqTouchQueue(base, name string) error {
	post := func(path, body string) (string, error) {
		resp, err := http.Post(base+"/v1/queues/"+name+path, "application/json", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var out bytes.Buffer
		out.ReadFrom(resp.Body)
		if resp.StatusCode/100 != 2 {
			return "", fmt.Errorf("POST %s%s: %s: %s", name, path, resp.Status, out.String())
		}
		return out.String(), nil
	}
	if _, err := post("/messages", "x"); err != nil {
		return err
	}
	got, err := post("/receive", "")
	if err != nil {
		return err
	}
	_, after, ok := strings.Cut(got, `"receipt":"`)
	receipt, _, _ := strings.Cut(after, `"`)
	if !ok {
		return fmt.Errorf("receive from %s: no receipt in %s", name, got)
	}
	_, err = post("/ack", `{"receipts":["`+receipt+`"]}`)
	return err
}

// stopTimed SIGTERMs the server and returns how long it took to exit.
func mqStopTimed(t *testing.T, s *childServer) time.Duration {
	t.Helper()
	t0 := time.Now()
	s.stop(t)
	return time.Since(t0)
}

// procStatus returns a process's VmRSS (KiB) and thread count.
func mqProcStatus(t *testing.T, pid int) (rssKiB, threads float64) {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		key, val, _ := strings.Cut(line, ":")
		f := strings.Fields(val)
		if len(f) == 0 {
			continue
		}
		v, _ := strconv.ParseFloat(f[0], 64)
		switch key {
		case "VmRSS":
			rssKiB = v
		case "Threads":
			threads = v
		}
	}
	return rssKiB, threads
}

func mqCountFDs(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
