package log

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPreallocatedTail checks preallocate's contract: under SyncAlways the
// newest segment's file runs past its frames in zeros; a reopen after a
// crash (the file copied as it is, zeros and all) finds every record and
// reports no damage; sealing, Release and Close cut the zeros off.
func TestPreallocatedTail(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{Sync: SyncAlways})
	for i := range 20 {
		if _, _, err := l.Append([]Record{{Body: []byte{byte(i), 1, 2, 3}}}); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	fileSize := func(path string) int64 {
		t.Helper()
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	if got, frames := fileSize(segs[0].Path), segs[0].Size; got <= frames || got > frames+preallocChunk {
		t.Fatalf("file of %d bytes holding %d of frames, want up to %d of zeros past them", got, frames, preallocChunk)
	}

	// A crash: the files as they are, preallocated zeros included.
	crashed := t.TempDir()
	data, err := os.ReadFile(segs[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, filepath.Base(segs[0].Path)), data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(crashed, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 0 {
		t.Fatalf("Verify of a preallocated tail: %v", rep.Problems)
	}
	c := mustOpen(t, crashed, Options{Sync: SyncAlways})
	if rec := c.Recovery(); len(rec.Truncated)+len(rec.Corrupt)+len(rec.Recreated) != 0 {
		t.Fatalf("recovery of a preallocated tail reported %+v", rec)
	}
	if c.LastID() != 20 {
		t.Fatalf("LastID %d after the crash, want 20", c.LastID())
	}
	for id := uint64(1); id <= 20; id++ {
		r, err := c.Read(id)
		if err != nil || r.Body[0] != byte(id-1) {
			t.Fatalf("record %d: %v %v", id, r.Body, err)
		}
	}
	if got := fileSize(c.Segments()[0].Path); got != c.Segments()[0].Size {
		t.Fatalf("reopened file of %d bytes, want it cut to its frames' %d", got, c.Segments()[0].Size)
	}
	c.Close()

	// Sealing cuts the zeros off the sealed segment.
	if err := l.Rotate(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(segs[0].Path); got != segs[0].Size {
		t.Fatalf("sealed file of %d bytes, want %d", got, segs[0].Size)
	}
	if _, _, err := l.Append([]Record{{Body: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	tail := l.Segments()[1]
	if fileSize(tail.Path) <= tail.Size {
		t.Fatal("no preallocated space in the new segment")
	}
	if released, err := l.Release(0); err != nil || !released {
		t.Fatalf("Release: %v %v", released, err)
	}
	if got := fileSize(tail.Path); got != tail.Size {
		t.Fatalf("released file of %d bytes, want %d", got, tail.Size)
	}
	if _, _, err := l.Append([]Record{{Body: []byte("y"), Time: time.Now().UnixNano()}}); err != nil {
		t.Fatal(err)
	}
	want := l.Segments()[1].Size
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := fileSize(tail.Path); got != want {
		t.Fatalf("closed file of %d bytes, want %d", got, want)
	}

	// Zeros past a sealed segment's frames are not preallocation (sealing
	// cut that off) but lost data: Verify reports them.
	f, err := os.OpenFile(segs[0].Path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(make([]byte, 4096))
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(dir, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || rep.Problems[0].Segment != segs[0].Base || rep.Problems[0].Offset != segs[0].Size || rep.Problems[0].TornTail {
		t.Fatalf("Verify of a sealed segment with zeros past its frames: %+v, want one problem at %d", rep.Problems, segs[0].Size)
	}
}
