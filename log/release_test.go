package log

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingFS is OS, counting the files it has open.
type countingFS struct {
	FS
	open atomic.Int64
}

type countedFile struct {
	File
	fs     *countingFS
	closed atomic.Bool
}

func (c *countingFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	c.open.Add(1)
	return &countedFile{File: f, fs: c}, nil
}

func (f *countedFile) Close() error {
	if f.closed.CompareAndSwap(false, true) {
		f.fs.open.Add(-1)
	}
	return f.File.Close()
}

// TestIdleLogHoldsNothing: an opened log holds no file and runs no
// goroutine until it is used; Release gives both back once it has been
// idle, and the next use reopens them transparently.
func TestIdleLogHoldsNothing(t *testing.T) {
	cfs := &countingFS{FS: OS}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	opts := Options{FS: cfs, SegmentSize: 4 << 10}
	l := mustOpen(t, dir, opts)
	all := appendAll(t, l, rng, 200, 100, 5) // several segments
	if len(l.Segments()) < 3 {
		t.Fatalf("%d segments; the test wants several", len(l.Segments()))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := cfs.open.Load(); n != 0 {
		t.Fatalf("%d files open after Close", n)
	}

	g := runtime.NumGoroutine()
	l = mustOpen(t, dir, opts)
	if n := cfs.open.Load(); n != 0 {
		t.Errorf("an opened log holds %d files, want 0", n)
	}
	if l.reqs.Load() != nil || runtime.NumGoroutine() != g {
		t.Errorf("an opened log runs a committer before the first append")
	}
	checkIter(t, l, 1, all)
	if n := cfs.open.Load(); n != int64(len(l.Segments())) {
		t.Errorf("after reading every segment %d files are open, want %d", n, len(l.Segments()))
	}
	if ok, err := l.Release(time.Hour); ok || err != nil {
		t.Errorf("Release(1h) of a log used just now = %v, %v; want false, nil", ok, err)
	}
	if ok, err := l.Release(0); !ok || err != nil {
		t.Fatalf("Release(0) = %v, %v; want true, nil", ok, err)
	}
	if n := cfs.open.Load(); n != 0 {
		t.Errorf("%d files open after Release", n)
	}
	if ok, _ := l.Release(0); ok {
		t.Error("a second Release found something to release")
	}

	// Appends start the committer again, and continue the ids.
	for range 50 {
		r := randomRecord(rng, 100)
		first, _, err := l.Append([]Record{r})
		if err != nil || first != uint64(len(all))+1 {
			t.Fatalf("Append after Release = %d, %v; want id %d", first, err, len(all)+1)
		}
		r.ID = first
		all = append(all, r)
	}
	if l.reqs.Load() == nil {
		t.Error("no committer after an append")
	}
	checkIter(t, l, 1, all)
	c := l.NewCursor()
	for _, want := range []Record{all[0], all[len(all)/2], all[len(all)-1]} {
		if ok, err := l.Release(0); !ok || err != nil {
			t.Fatalf("Release(0) = %v, %v", ok, err)
		}
		got, err := c.Read(want.ID)
		if err != nil || !sameRecord(got, want) {
			t.Fatalf("Read(%d) after Release = %+v, %v; want %+v", want.ID, got, err, want)
		}
	}
	c.Reset()
	if got, err := c.Read(all[1].ID); err != nil || !sameRecord(got, all[1]) {
		t.Fatalf("Read after Reset = %+v, %v", got, err)
	}
	if ok, err := l.Release(0); !ok || err != nil {
		t.Fatalf("Release(0) = %v, %v", ok, err)
	}
	for range 100 {
		if runtime.NumGoroutine() <= g {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if runtime.NumGoroutine() > g {
		t.Errorf("the committer still runs after Release")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if ok, err := l.Release(0); ok || (err != nil && err != ErrClosed) {
		t.Errorf("Release after Close = %v, %v; want false and nil or ErrClosed", ok, err)
	}
	if n := cfs.open.Load(); n != 0 {
		t.Errorf("%d files open after Close", n)
	}
	l = mustOpen(t, dir, opts)
	checkIter(t, l, 1, all)
}

// TestReleaseSyncsWhatARelaxedPolicyLeft: under SyncNone nothing is
// fsynced until rotation or Close; Release, which closes the files, fsyncs
// first.
func TestReleaseSyncsWhatARelaxedPolicyLeft(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncNone, SyncInterval} {
		t.Run(policy.String(), func(t *testing.T) {
			l := mustOpen(t, t.TempDir(), Options{Sync: policy, SyncInterval: time.Hour})
			if _, _, err := l.Append([]Record{{Body: []byte("x")}}); err != nil {
				t.Fatal(err)
			}
			before := l.Stats().Fsyncs
			if ok, err := l.Release(0); !ok || err != nil {
				t.Fatalf("Release = %v, %v", ok, err)
			}
			if got := l.Stats().Fsyncs - before; got != 1 {
				t.Errorf("Release fsynced %d times, want 1", got)
			}
			if l.dirty {
				t.Error("still dirty after Release")
			}
		})
	}
}

// TestReleaseRacesAppendsAndReads releases the log as fast as it can while
// appenders and readers use it: every append is acknowledged once and
// reads back intact. Run it with -race.
func TestReleaseRacesAppendsAndReads(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentSize: 8 << 10, Sync: SyncNone})
	const appenders, each = 4, 200
	var mu sync.Mutex
	acked := map[uint64]string{}
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := l.Release(0); err != nil {
				t.Errorf("Release: %v", err)
				return
			}
			runtime.Gosched()
		}
	})
	bg.Go(func() { // a reader following the writers
		c := l.NewCursor()
		for {
			select {
			case <-stop:
				return
			default:
			}
			mu.Lock()
			var id uint64
			var want string
			for id, want = range acked {
				break
			}
			mu.Unlock()
			if id == 0 {
				runtime.Gosched()
				continue
			}
			r, err := c.Read(id)
			if err != nil || string(r.Body) != want {
				t.Errorf("Read(%d) = %q, %v; want %q", id, r.Body, err, want)
				return
			}
		}
	})
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for i := range each {
				body := fmt.Sprintf("a%d-%d", a, i)
				first, _, err := l.Append([]Record{{Body: []byte(body)}})
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				mu.Lock()
				if _, dup := acked[first]; dup {
					t.Errorf("id %d acknowledged twice", first)
				}
				acked[first] = body
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	it := l.Iter(1)
	n := 0
	for it.Next() {
		if want := acked[it.Record().ID]; string(it.Record().Body) != want {
			t.Fatalf("record %d = %q, want %q", it.Record().ID, it.Record().Body, want)
		}
		n++
	}
	if it.Err() != nil || n != appenders*each {
		t.Fatalf("iterated %d records (%v), want %d", n, it.Err(), appenders*each)
	}
}
