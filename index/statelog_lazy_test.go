package index

import (
	"os"
	"path/filepath"
	"testing"
)

// reopenLazily closes s and opens dir again, checking that the new
// StateLog knows its last index (want) without opening tidwall, and that
// tidwall, once opened, agrees.
func reopenLazily(t *testing.T, s *StateLog, dir string, want uint64) *StateLog {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openStateLog(t, dir)
	if s.w != nil {
		t.Fatal("OpenStateLog opened tidwall/wal; it should wait until it is needed")
	}
	if got := s.LastIndex(); got != want {
		t.Fatalf("LastIndex %d without tidwall, want %d", got, want)
	}
	if r := replay(t, s, want, pad160); len(r.indexes) != 0 || s.w != nil {
		t.Fatalf("Replay after the last index replayed %v and opened tidwall: %v", r.indexes, s.w != nil)
	}
	return s
}

// TestStateLogOpensTidwallOnlyWhenNeeded: a StateLog reads its newest
// segment to know its last index and leaves tidwall/wal (a file and a
// segment in memory) closed until an entry is written or replayed, and
// Release closes it again; the index it keeps always matches tidwall's.
func TestStateLogOpensTidwallOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	s = reopenLazily(t, s, dir, 0) // never written: no file yet
	if segs := segments(t, dir); len(segs) != 0 {
		t.Fatalf("an unused state log created %v", segs)
	}
	sync, err := s.PrepareSync()
	if err != nil {
		t.Fatalf("PrepareSync of an unused state log: %v", err)
	}
	if err := sync(); err != nil {
		t.Fatal(err)
	}

	n := fillSegments(t, s, dir, 700<<10) // a few tidwall segments
	s = reopenLazily(t, s, dir, n)
	if r := replay(t, s, 0, pad160); len(r.indexes) != int(n) || len(r.damaged) != 0 {
		t.Fatalf("replayed %d entries (%v), want %d", len(r.indexes), r.damaged, n)
	}
	if s.w == nil {
		t.Fatal("Replay of entries did not open tidwall")
	}

	// Released: the next append reopens tidwall and goes on at n+1.
	if ok, err := s.Release(0); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if s.w != nil {
		t.Fatal("tidwall still open after Release")
	}
	if ok, _ := s.Release(0); ok {
		t.Fatal("a second Release released something")
	}
	if idx, err := s.Append(EncodeEntry(nil, testEvents(n+1, pad160(n+1)))); err != nil || idx != n+1 {
		t.Fatalf("Append after Release = %d, %v; want %d", idx, err, n+1)
	}
	if ok, _ := s.Release(1 << 62); ok {
		t.Fatal("Release(long) released a state log used just now")
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	n++

	// Truncated to the middle of a segment, and to nothing at all.
	if err := s.TruncateFront(n / 2); err != nil {
		t.Fatal(err)
	}
	s = reopenLazily(t, s, dir, n)
	if r := replay(t, s, 0, pad160); len(r.indexes) != int(n-n/2+1) || r.indexes[0] != n/2 {
		t.Fatalf("after TruncateFront(%d): replayed %d entries from %v", n/2, len(r.indexes), r.indexes[:1])
	}
	if err := s.TruncateFront(n + 1); err != nil {
		t.Fatal(err)
	}
	s = reopenLazily(t, s, dir, n)
	appendEntries(t, s, n+1, n+3, pad160)
	s = reopenLazily(t, s, dir, n+3)

	// A torn tail is cut at open, and the index counts what is left.
	segs := segments(t, dir)
	newest := segs[len(segs)-1]
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, newest, data[:len(data)-5])
	s = reopenLazily(t, s, dir, n+2)
	if err := s.open(); err != nil {
		t.Fatalf("tidwall disagrees after a torn-tail repair: %v", err)
	}
}

// TestStateLogFinishesAnInterruptedTruncation: a crash in tidwall's
// TruncateFront leaves a START file, which only tidwall knows how to
// finish; OpenStateLog then opens tidwall at once and takes its index.
func TestStateLogFinishesAnInterruptedTruncation(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	appendEntries(t, s, 1, 10, pad160)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// What TruncateFront(6) writes first: entries 6.. as segment 6's START.
	segs := segments(t, dir)
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	prefix, _ := entryOffsets(t, data)
	writeFile(t, filepath.Join(dir, "00000000000000000006.START"), data[prefix[5]:])
	s, _ = openStateLog(t, dir)
	if got := s.LastIndex(); got != 10 {
		t.Fatalf("LastIndex %d, want 10", got)
	}
	if r := replay(t, s, 0, pad160); len(r.indexes) != 5 || r.indexes[0] != 6 {
		t.Fatalf("replayed %v after the interrupted truncation, want 6..10", r.indexes)
	}
	appendEntries(t, s, 11, 12, pad160)
	reopenLazily(t, s, dir, 12)
}
