//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// TestDiskFullForReal runs the server on a real, size-limited filesystem
// (an 8 MiB tmpfs, so it needs root and permission to mount) and fills it
// with incompressible messages: enqueues must then get 507 (never a 500),
// receives, acks and peeks must keep working, enqueues must work again
// once space is freed, and after a restart every acknowledged enqueue that
// was not acked must be there byte for byte, and no acked one.
func TestDiskFullForReal(t *testing.T) {
	const fsSize = 8 << 20
	mnt := mountSizeLimitedFS(t, fsSize)

	// Ballast written before the server starts, removed later to free
	// space without depending on the server's own compaction.
	ballast := filepath.Join(mnt, "ballast")
	rnd := rand.New(rand.NewChaCha8([32]byte{'s', 'p', 'o', 'o', 'l'}))
	if err := os.WriteFile(ballast, randomBytes(rnd, 2<<20), 0o644); err != nil {
		t.Fatalf("writing the ballast file: %v", err)
	}
	data := filepath.Join(mnt, "data")

	srv := startServe(t, data, "--min-free", strconv.Itoa(minFree))
	rec := &statusRecorder{base: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(rec.base.(*http.Transport).CloseIdleConnections)
	cl := api.NewClient(srv.base, "", &http.Client{Transport: rec})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, _, err := cl.PutQueue(ctx, "jobs", api.QueueConfig{}); err != nil {
		t.Fatal(err)
	}

	// ledger holds every enqueue the server acknowledged (2xx).
	ledger := map[string][]byte{}
	const bodySize = 4 << 10
	is507 := func(err error) bool {
		var ae *api.Error
		return errors.As(err, &ae) && ae.Status == http.StatusInsufficientStorage &&
			ae.Code == api.CodeInsufficientStorage && errors.Is(err, api.ErrQuotaExceeded)
	}
	must507 := func(what string, err error) {
		t.Helper()
		if !is507(err) {
			t.Fatalf("%s on a full disk: got %v (%T), want a 507 insufficient_storage\nfree: %d bytes\nserver log:\n%s",
				what, err, err, freeBytes(t, mnt), srv.logs.String())
		}
	}

	// Fill: batches of 16 until one is refused, then single messages
	// until one is refused, so at most one body's worth of space is left.
	const maxSends = 4 * fsSize / bodySize // a bound, in case nothing ever fills
	var batches, singles int
	var fillErr error
	for i := 0; fillErr == nil; i++ {
		if i == maxSends {
			t.Fatalf("%d batches of 16 x %d bytes went into an %d-byte filesystem without a 507", i, bodySize, fsSize)
		}
		bodies := make([][]byte, 16)
		msgs := make([]api.NewMessage, len(bodies))
		for j := range bodies {
			bodies[j] = randomBytes(rnd, bodySize)
			msgs[j] = api.BodyMessage(bodies[j])
		}
		ids, err := cl.SendBatch(ctx, "jobs", msgs)
		if fillErr = err; err == nil {
			for j, id := range ids {
				ledger[id] = bodies[j]
			}
			batches++
		}
	}
	must507("a batch enqueue", fillErr)
	fillErr = nil
	for i := 0; fillErr == nil; i++ {
		if i == maxSends {
			t.Fatalf("%d more single enqueues after a refused batch without a 507", i)
		}
		body := randomBytes(rnd, bodySize)
		id, err := cl.Send(ctx, "jobs", body, 0)
		if fillErr = err; err == nil {
			ledger[id] = body
			singles++
		}
	}
	must507("a single enqueue", fillErr)
	t.Logf("filesystem full after %d batches of 16 and %d single %d-byte messages (%d acknowledged, %.1f MiB of bodies); %d bytes free; the refusal: %v",
		batches, singles, bodySize, len(ledger), float64(len(ledger)*bodySize)/(1<<20), freeBytes(t, mnt), fillErr)

	// Still full: receives, peeks and acks must keep working, so that
	// consumers can drain the backlog. A 507 from one of them is the known
	// bug reported below (collected in fullDiskBugs, and the rest of the
	// test still runs); any other error fails at once.
	const fullDisk = "on a full disk"
	acked := map[string]bool{}
	var fullDiskBugs []string
	// A call that races the reload of a queue whose state log failed gets
	// 503 unavailable (retryable, with Retry-After): tolerated and counted.
	// (It used to be a 404 queue_not_found for a queue that exists.)
	var reloads []string
	isReloading := func(err error) bool { return errors.Is(err, queue.ErrUnavailable) }
	bugCounts := map[string]int{}
	onFullDisk := func(what string, err error) bool {
		t.Helper()
		if err == nil {
			return true
		}
		if isReloading(err) {
			reloads = append(reloads, what+" on a full disk: "+err.Error())
			return false
		}
		if !is507(err) {
			t.Fatalf("%s on a full disk: %v\nfree: %d bytes\nserver log:\n%s", what, err, freeBytes(t, mnt), srv.logs.String())
		}
		fullDiskBugs = append(fullDiskBugs, what+": "+err.Error())
		bugCounts[strings.Fields(what)[0]]++
		return false
	}
	receive := func(when string, n int) []api.Message {
		t.Helper()
		msgs, err := cl.Receive(ctx, "jobs", api.ReceiveOptions{Max: n, Visibility: time.Minute})
		if when == fullDisk && !onFullDisk("receive", err) {
			return nil
		}
		if err != nil {
			t.Fatalf("receive %s: %v\nserver log:\n%s", when, err, srv.logs.String())
		}
		if len(msgs) != n {
			t.Fatalf("receive %s returned %d messages, want %d", when, len(msgs), n)
		}
		for _, m := range msgs {
			body, err := api.Body(m)
			if err != nil {
				t.Fatal(err)
			}
			if want, ok := ledger[m.ID]; !ok || string(body) != string(want) {
				t.Fatalf("receive %s: message %s (%d bytes) is not the one enqueued with that id (known id: %v)", when, m.ID, len(body), ok)
			}
		}
		return msgs
	}
	ack := func(when string, msgs []api.Message) {
		t.Helper()
		receipts := make([]string, len(msgs))
		for i, m := range msgs {
			receipts[i] = m.Receipt
		}
		results, err := cl.Ack(ctx, "jobs", receipts...)
		if when == fullDisk && !onFullDisk(fmt.Sprintf("ack of %d leases", len(receipts)), err) {
			return // not acked: these messages must survive the restart
		}
		if err != nil {
			t.Fatalf("ack %s of %d messages: %v\nserver log:\n%s", when, len(receipts), err, srv.logs.String())
		}
		for i, r := range results {
			if err := r.Err(); err != nil {
				t.Fatalf("ack %s: receipt %s: %v", when, receipts[i], err)
			}
			acked[msgs[i].ID] = true
		}
	}
	for round := 0; round < 5; round++ {
		if msgs := receive(fullDisk, 20); msgs != nil {
			ack(fullDisk, msgs)
		}
		peeked, err := cl.Peek(ctx, "jobs", "", 50)
		if onFullDisk("peek", err) && len(peeked) != 50 {
			t.Fatalf("peek on a full disk: %d messages, want 50", len(peeked))
		}
		if info, err := cl.GetQueue(ctx, "jobs"); onFullDisk("info", err) {
			t.Logf("on a full disk, round %d, %d acked so far: %+v", round, len(acked), info.Counts)
		}
	}
	// Acks free no space by themselves (their records go only when
	// compaction removes a sealed segment): an enqueue is refused again or,
	// if something was freed, succeeds. Anything else is wrong.
	body := randomBytes(rnd, bodySize)
	if id, err := cl.Send(ctx, "jobs", body, 0); err == nil {
		ledger[id] = body
	} else {
		must507("an enqueue after acks", err)
	}

	// Free space: enqueues work again (first success within a deadline).
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	deadline := freed.Add(5 * time.Second)
	var refusedAfterFree int
	var recoveredAfter time.Duration
	for {
		body := randomBytes(rnd, bodySize)
		id, err := cl.Send(ctx, "jobs", body, 0)
		if err == nil {
			ledger[id] = body
			recoveredAfter = time.Since(freed)
			break
		}
		if isReloading(err) {
			reloads = append(reloads, "enqueue after freeing space: "+err.Error())
		} else if !is507(err) {
			t.Fatalf("enqueue after freeing space: %v\nserver log:\n%s", err, srv.logs.String())
		}
		refusedAfterFree++
		if time.Now().After(deadline) {
			t.Fatalf("enqueues still refused 5s after freeing 2 MiB (%d bytes free): %v\nserver log:\n%s", freeBytes(t, mnt), err, srv.logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling with a deadline
	}
	for i := 0; i < 8; i++ {
		body := randomBytes(rnd, bodySize)
		id, err := cl.Send(ctx, "jobs", body, 0)
		if err != nil {
			t.Fatalf("enqueue %d after freeing space: %v\nserver log:\n%s", i, err, srv.logs.String())
		}
		ledger[id] = body
	}
	ack("after freeing space", receive("after freeing space", 10))
	t.Logf("after freeing 2 MiB: %d enqueues refused in the %v before the first success; %d bytes free", refusedAfterFree, recoveredAfter.Round(time.Millisecond), freeBytes(t, mnt))

	// Restart on the same data: nothing acknowledged is lost, nothing acked
	// comes back.
	if err := srv.stop(); err != nil {
		t.Fatalf("stopping the server: %v\nserver log:\n%s", err, srv.logs.String())
	}
	srv = startServe(t, data, "--min-free", strconv.Itoa(minFree))
	cl = api.NewClient(srv.base, "", &http.Client{Transport: rec})
	found := map[string][]byte{}
	for after := ""; ; {
		msgs, err := cl.Peek(ctx, "jobs", after, 1000)
		if err != nil {
			t.Fatalf("peek after restart: %v\nserver log:\n%s", err, srv.logs.String())
		}
		if len(msgs) == 0 {
			break
		}
		for _, m := range msgs {
			b, err := api.Body(m)
			if err != nil {
				t.Fatal(err)
			}
			found[m.ID] = b
		}
		after = msgs[len(msgs)-1].ID
	}
	var missing, changed, resurrected, unknown []string
	for id, want := range ledger {
		got, ok := found[id]
		switch {
		case acked[id] && ok:
			resurrected = append(resurrected, id)
		case acked[id]:
		case !ok:
			missing = append(missing, id)
		case string(got) != string(want):
			changed = append(changed, id)
		}
	}
	for id := range found {
		if _, ok := ledger[id]; !ok {
			unknown = append(unknown, id)
		}
	}
	if len(missing)+len(changed)+len(resurrected)+len(unknown) > 0 {
		t.Fatalf("after restart: %d acknowledged messages missing %s, %d changed %s, %d acked ones back %s, %d never acknowledged %s\nserver log:\n%s",
			len(missing), firstIDs(missing), len(changed), firstIDs(changed), len(resurrected), firstIDs(resurrected), len(unknown), firstIDs(unknown), srv.logs.String())
	}
	if bad := rec.serverErrors(); len(bad) > 0 {
		t.Fatalf("server errors other than 507: %s\nserver log:\n%s", strings.Join(bad, "; "), srv.logs.String())
	}
	t.Logf("after restart: %d messages, exactly the %d acknowledged minus the %d acked", len(found), len(ledger), len(acked))

	if len(reloads) > 0 {
		t.Logf("%d calls got the retryable 503 unavailable while the queue reloaded (the first: %s)", len(reloads), reloads[0])
	}
	if len(fullDiskBugs) > 0 {
		t.Fatalf("on a full disk %d calls that must keep working failed (%v; the first: %s): the --min-free reserve should leave acks room",
			len(fullDiskBugs), bugCounts, fullDiskBugs[0])
	}
}

// mountSizeLimitedFS mounts a tmpfs of size bytes on a fresh temporary
// directory and unmounts it when the test ends, or skips the test when it
// cannot (not root, no mount permission in a container, no mount binary).
func mountSizeLimitedFS(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	opt := "size=" + strconv.FormatInt(size, 10) + ",mode=0755"
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", opt, "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("skipping: cannot mount a size-limited filesystem for a real disk-full test (needs root and mount permission): mount -t tmpfs -o %s tmpfs %s: %v: %s",
			opt, dir, err, strings.TrimSpace(string(out)))
	}
	// Registered after t.TempDir, so it runs before the directory is removed.
	t.Cleanup(func() {
		if err := exec.Command("umount", dir).Run(); err != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	if total := int64(st.Blocks) * st.Bsize; total > 2*size {
		t.Skipf("skipping: the mount on %s holds %d bytes, not the %d asked for", dir, total, size)
	}
	return dir
}

// minFree is the --min-free reserve the test server keeps.
const minFree = 512 << 10

// statusRecorder notes every 5xx reply other than 507 and the retryable
// 503 (with Retry-After) of a queue reloading.
type statusRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	bad  []string
}

func (s *statusRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := s.base.RoundTrip(r)
	retryable := resp != nil && resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != ""
	if err == nil && resp.StatusCode >= 500 && resp.StatusCode != http.StatusInsufficientStorage && !retryable {
		s.mu.Lock()
		s.bad = append(s.bad, fmt.Sprintf("%s %s: %d", r.Method, r.URL.Path, resp.StatusCode))
		s.mu.Unlock()
	}
	return resp, err
}

func (s *statusRecorder) serverErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bad...)
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func freeBytes(t *testing.T, dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Logf("statfs %s: %v", dir, err)
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

func firstIDs(ids []string) string {
	if len(ids) > 10 {
		return fmt.Sprint(ids[:10]) + "…"
	}
	return fmt.Sprint(ids)
}
