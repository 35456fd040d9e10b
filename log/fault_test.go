package log_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/log"
	"github.com/spoolq/spool/log/faultfs"
)

// These tests run the log on faultfs: faults at chosen operations, and
// power cuts that forget every byte and directory change not fsynced.

const dir = "/data/log"

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

func openOn(tb testing.TB, fsys *faultfs.FS, segmentSize int64) *log.Log {
	tb.Helper()
	l, err := log.Open(dir, log.Options{FS: fsys, SegmentSize: segmentSize, Logger: discard})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return l
}

// ledger records what Append acknowledged: id → body.
type ledger struct {
	mu    sync.Mutex
	acked map[uint64][]byte
}

func newLedger() *ledger { return &ledger{acked: map[uint64][]byte{}} }

func (g *ledger) append(l *log.Log, bodies ...[]byte) error {
	recs := make([]log.Record, len(bodies))
	for i, b := range bodies {
		recs[i] = log.Record{Body: b}
	}
	first, _, err := l.Append(recs)
	if err != nil {
		return err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, b := range bodies {
		if _, dup := g.acked[first+uint64(i)]; dup {
			return fmt.Errorf("id %d acknowledged twice", first+uint64(i))
		}
		g.acked[first+uint64(i)] = b
	}
	return nil
}

// check asserts that the log holds exactly the acknowledged records: each
// with its bytes, nothing else, and no damage anywhere.
func (g *ledger) check(tb testing.TB, l *log.Log) {
	tb.Helper()
	if rec := l.Recovery(); len(rec.Corrupt) != 0 {
		tb.Fatalf("recovery reports corruption: %+v", rec.Corrupt)
	}
	it := l.Iter(1)
	n := 0
	for it.Next() {
		r := it.Record()
		want, ok := g.acked[r.ID]
		if !ok {
			tb.Fatalf("record %d (%q) is in the log but was never acknowledged", r.ID, r.Body)
		}
		if !bytes.Equal(r.Body, want) {
			tb.Fatalf("record %d = %q, want %q", r.ID, r.Body, want)
		}
		n++
	}
	if err := it.Err(); err != nil {
		tb.Fatalf("iterating: %v", err)
	}
	if n != len(g.acked) {
		tb.Fatalf("log holds %d records, %d were acknowledged", n, len(g.acked))
	}
}

// slowSync makes every fsync take a while, like a real disk, so that
// concurrent appenders pile up behind it.
func slowSync(op faultfs.Op, _ string) error {
	if op == faultfs.OpSync {
		time.Sleep(200 * time.Microsecond)
	}
	return nil
}

func TestGroupCommitSharesOneFsyncAmongConcurrentAppenders(t *testing.T) {
	fsys := faultfs.New()
	l := openOn(t, fsys, 64<<10)
	fsys.SetHook(slowSync)
	syncsBefore := fsys.Count(faultfs.OpSync)
	const appenders, each = 64, 40
	g := newLedger()
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				if err := g.append(l, fmt.Appendf(nil, "appender %d record %d", a, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	fsyncs := fsys.Count(faultfs.OpSync) - syncsBefore
	appends := appenders * each
	t.Logf("%d appends, %d fsyncs: %.1f appends per fsync", appends, fsyncs, float64(appends)/float64(fsyncs))
	if fsyncs == 0 || fsyncs > appends/8 {
		t.Fatalf("%d fsyncs for %d concurrent appends: group commit is not sharing fsyncs", fsyncs, appends)
	}
	// Every acknowledged append must survive losing power right now.
	fsys.SetHook(nil)
	fsys.PowerCut()
	l.Close()
	l2 := openOn(t, fsys, 64<<10)
	defer l2.Close()
	g.check(t, l2)
}

func TestPowerCutAtEveryOperationKeepsEveryAcknowledgedAppend(t *testing.T) {
	// A scenario that rotates through several small segments; the power
	// fails at the n-th operation of each kind, for every n the scenario
	// reaches.
	scenario := func(l *log.Log, g *ledger) {
		for i := range 40 {
			if g.append(l, bytes.Repeat([]byte{byte('a' + i%26)}, 60+i)) != nil {
				return
			}
		}
	}
	powerCutAtEveryOperation(t, scenario, func(*log.Log) {})
}

// powerCutAtEveryOperation runs scenario once to count the writes, fsyncs,
// directory fsyncs and opens it makes, then again for every n and kind
// with the power cut at the n-th operation of that kind, and checks after
// each that a reopened log holds every acknowledged append and takes new
// ones (after prepare, which may do what the scenario did to the log).
func powerCutAtEveryOperation(t *testing.T, scenario func(*log.Log, *ledger), prepare func(*log.Log)) {
	t.Helper()
	ops := []faultfs.Op{faultfs.OpWrite, faultfs.OpSync, faultfs.OpSyncDir, faultfs.OpOpen}
	counts := map[faultfs.Op]int{}
	{
		fsys := faultfs.New()
		l := openOn(t, fsys, 512)
		base := map[faultfs.Op]int{}
		for _, op := range ops {
			base[op] = fsys.Count(op)
		}
		scenario(l, newLedger())
		for _, op := range ops {
			counts[op] = fsys.Count(op) - base[op]
		}
		l.Close()
	}
	for _, op := range ops {
		total := counts[op]
		if total == 0 {
			t.Fatalf("scenario performs no %s: the test would prove nothing", op)
		}
		for n := 1; n <= total; n++ {
			fsys := faultfs.New()
			l := openOn(t, fsys, 512)
			var calls atomic.Int64
			var cut atomic.Bool
			fsys.SetHook(func(o faultfs.Op, _ string) error {
				if cut.Load() {
					return syscall.EIO // the machine is off
				}
				if o == op && calls.Add(1) == int64(n) {
					cut.Store(true)
					fsys.PowerCut()
					return syscall.EIO
				}
				return nil
			})
			g := newLedger()
			scenario(l, g)
			l.Close()
			fsys.SetHook(nil)
			l2 := openOn(t, fsys, 512)
			t.Run(fmt.Sprintf("%s %d of %d", op, n, total), func(t *testing.T) { g.check(t, l2) })
			prepare(l2)
			if _, _, err := l2.Append([]log.Record{{Body: []byte("after power returns")}}); err != nil {
				t.Fatalf("%s %d: Append after reopen: %v", op, n, err)
			}
			l2.Close()
		}
	}
}

func TestFaultAtEveryOperationLeavesTheLogConsistentAndUsable(t *testing.T) {
	faults := []struct {
		name string
		op   faultfs.Op
		err  error
	}{
		{"disk full at a write", faultfs.OpWrite, faultfs.ErrNoSpace},
		{"half a frame written before the disk filled", faultfs.OpWrite, &faultfs.ShortWrite{N: 50, Err: faultfs.ErrNoSpace}},
		{"fsync fails", faultfs.OpSync, syscall.EIO},
		{"directory fsync fails at rotation", faultfs.OpSyncDir, syscall.EIO},
		{"new segment cannot be created", faultfs.OpOpen, faultfs.ErrNoSpace},
	}
	for _, fault := range faults {
		for n := 1; ; n++ {
			fsys := faultfs.New()
			l := openOn(t, fsys, 512)
			hook := faultfs.FailNth(fault.op, n, fault.err)
			var hit atomic.Bool
			fsys.SetHook(func(o faultfs.Op, p string) error {
				err := hook(o, p)
				if err != nil {
					hit.Store(true)
				}
				return err
			})
			g := newLedger()
			failed := 0
			for i := range 30 {
				err := g.append(l, fmt.Appendf(nil, "record %d %s", i, bytes.Repeat([]byte{'x'}, 50)))
				if err != nil {
					failed++
					if !errors.Is(err, fault.err) && !errors.Is(err, syscall.ENOSPC) {
						t.Fatalf("%s at %d: Append error %v does not wrap the cause", fault.name, n, err)
					}
				}
			}
			if !hit.Load() {
				l.Close()
				if n == 1 {
					t.Fatalf("%s: the scenario never reaches the fault", fault.name)
				}
				break
			}
			if failed != 1 {
				t.Fatalf("%s at %d: %d appends failed, want exactly the one that met the fault", fault.name, n, failed)
			}
			fsys.SetHook(nil)
			t.Run(fmt.Sprintf("%s %d live", fault.name, n), func(t *testing.T) { g.check(t, l) })
			// A failed append must not come back as a record on reopen.
			l.Close()
			l = openOn(t, fsys, 512)
			t.Run(fmt.Sprintf("%s %d reopened", fault.name, n), func(t *testing.T) { g.check(t, l) })
			if err := g.append(l, []byte("after the fault")); err != nil {
				t.Fatalf("%s at %d: Append after the fault: %v", fault.name, n, err)
			}
			// And every acknowledged record survives a power cut.
			fsys.PowerCut()
			l.Close()
			l2 := openOn(t, fsys, 512)
			t.Run(fmt.Sprintf("%s %d after power cut", fault.name, n), func(t *testing.T) { g.check(t, l2) })
			l2.Close()
		}
	}
}

func TestFailedTailCutIsStickyUntilItSucceeds(t *testing.T) {
	fsys := faultfs.New()
	l := openOn(t, fsys, 1<<20)
	defer l.Close()
	g := newLedger()
	if err := g.append(l, []byte("before")); err != nil {
		t.Fatal(err)
	}
	var broken atomic.Bool
	broken.Store(true)
	fsys.SetHook(func(op faultfs.Op, _ string) error {
		if broken.Load() && (op == faultfs.OpSync || op == faultfs.OpTruncate) {
			return syscall.EIO
		}
		return nil
	})
	if err := g.append(l, []byte("lost")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Append with failing fsync: %v, want EIO", err)
	}
	if err := g.append(l, []byte("refused")); !errors.Is(err, log.ErrFailed) {
		t.Fatalf("Append while the tail cannot be cut back: %v, want ErrFailed", err)
	}
	broken.Store(false)
	if err := g.append(l, []byte("after")); err != nil {
		t.Fatalf("Append once the disk recovers: %v", err)
	}
	g.check(t, l)
}

// faultfs makes a new directory durable at once (see its doc), so this
// test counts the directory fsyncs MkdirDurable issues instead of cutting
// power: one for the parent of each directory it created, none when the
// directory exists.
func TestMkdirDurableFsyncsTheParentOfEachNewDirectory(t *testing.T) {
	fsys := faultfs.New()
	if err := fsys.MkdirAll("/data", 0o755); err != nil {
		t.Fatal(err)
	}
	var synced []string
	fsys.SetHook(func(op faultfs.Op, path string) error {
		if op == faultfs.OpSyncDir {
			synced = append(synced, path)
		}
		return nil
	})
	if err := log.MkdirDurable(fsys, "/data/topics/t/log"); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/data", "/data/topics", "/data/topics/t"}; !slices.Equal(synced, want) {
		t.Fatalf("directory fsyncs %v, want %v", synced, want)
	}
	if _, err := fsys.ReadDir("/data/topics/t/log"); err != nil {
		t.Fatal(err)
	}
	synced = nil
	if err := log.MkdirDurable(fsys, "/data/topics/t/log"); err != nil || len(synced) != 0 {
		t.Fatalf("an existing directory: %v, fsyncs %v", err, synced)
	}
}
