package index

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestStateLogPreallocatedZeros checks the zeros' contract
// (statelog_prealloc.go): appends leave zeros past tidwall's writes, a
// crash copy with them reopens without a repair and with every entry,
// and Release and Close cut them, so tidwall never reads them.
func TestStateLogPreallocatedZeros(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	pad := func(uint64) int { return 20 }
	appendEntries(t, s, 1, 50, pad)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	newest := segments(t, dir)[0]
	size := func() int64 {
		t.Helper()
		st, err := os.Stat(newest)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if got := size(); got <= int64(s.tailBytes) || got > int64(s.tailBytes)+stateZeroChunk {
		t.Fatalf("newest segment of %d bytes holding %d of entries, want up to %d of zeros past them", got, s.tailBytes, stateZeroChunk)
	}
	checkTail(t, s, dir, 50)

	// A crash: the directory copied as it is, zeros included.
	crashed := t.TempDir()
	data, err := os.ReadFile(newest)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, filepath.Base(newest)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	c, repair := openStateLog(t, crashed)
	if repair != nil {
		t.Fatalf("preallocated zeros reported as a repair: %+v", repair)
	}
	if r := replay(t, c, 0, pad); !slices.Equal(r.indexes, span(1, 50)) || len(r.damaged) != 0 {
		t.Fatalf("replay of the crash copy: %v damaged %v", r.indexes, r.damaged)
	}
	appendEntries(t, c, 51, 60, pad)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// Release cuts the zeros; the next append reopens tidwall, which must
	// find its entries alone, and goes on.
	entries := int64(s.tailBytes)
	if ok, err := s.Release(0); !ok || err != nil {
		t.Fatalf("Release = %v, %v", ok, err)
	}
	if got := size(); got != entries {
		t.Fatalf("released segment of %d bytes, want its %d bytes of entries", got, entries)
	}
	appendEntries(t, s, 51, 60, pad)
	checkTail(t, s, dir, 60)
	entries = int64(s.tailBytes)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := size(); got != entries {
		t.Fatalf("closed segment of %d bytes, want its %d bytes of entries", got, entries)
	}
	s, repair = openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("reopen after Close repaired %+v", repair)
	}
	if r := replay(t, s, 0, pad); !slices.Equal(r.indexes, span(1, 60)) || len(r.damaged) != 0 {
		t.Fatalf("replay after reopen: %v damaged %v", r.indexes, r.damaged)
	}
}
