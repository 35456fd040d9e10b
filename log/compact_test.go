package log

import (
	"bytes"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// sealedLog returns a log with several sealed segments of compressible
// records, and the records.
func sealedLog(t *testing.T) (*Log, string, []Record) {
	t.Helper()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 8 << 10})
	rng := rand.New(rand.NewPCG(5, 6))
	var recs []Record
	for len(l.Segments()) < 4 {
		batch := make([]Record, 1+rng.IntN(8))
		for i := range batch {
			batch[i] = Record{Time: int64(len(recs) + i), Body: bytes.Repeat([]byte("compressible "), 1+rng.IntN(20))}
		}
		if _, _, err := l.Append(batch); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, batch...)
	}
	return l, dir, recs
}

func TestRemove(t *testing.T) {
	l, dir, recs := sealedLog(t)
	segs := l.Segments()
	first := segs[0]
	if err := l.Remove(segs[len(segs)-1].Base); !errors.Is(err, ErrActiveSegment) {
		t.Fatalf("Remove(newest) = %v, want ErrActiveSegment", err)
	}
	if err := l.Remove(12345); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Remove(unknown) = %v, want fs.ErrNotExist", err)
	}
	it := l.Iter(1) // an iterator positioned before the removal
	if err := l.Remove(first.Base); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(first.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("segment file still there after Remove: %v", err)
	}
	for _, id := range []uint64{1, first.LastID} {
		if _, err := l.Read(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Read(%d) in a removed segment = %v, want ErrNotFound", id, err)
		}
	}
	if !it.Next() || it.Record().ID != first.LastID+1 {
		t.Fatalf("iterator after Remove starts at %d (%v), want %d", it.Record().ID, it.Err(), first.LastID+1)
	}
	l.Close()
	l2 := mustOpen(t, dir, Options{SegmentSize: 8 << 10})
	checkIter(t, l2, 1, recs[first.LastID:])
	if l2.LastID() != uint64(len(recs)) {
		t.Fatalf("LastID after reopen = %d, want %d", l2.LastID(), len(recs))
	}
}

func TestRewrite(t *testing.T) {
	codecs := []Codec{CodecZstd, CodecS2, CodecNone}
	for _, codec := range codecs {
		t.Run("keeps every third record with "+codec.String(), func(t *testing.T) {
			l, dir, recs := sealedLog(t)
			seg := l.Segments()[1]
			keep := func(id uint64) bool { return id%3 == 0 }
			rw, err := l.Rewrite(seg.Base, keep, RewriteOptions{Codec: codec})
			if err != nil {
				t.Fatal(err)
			}
			// Nothing changes for readers before Commit.
			if r, err := l.Read(seg.Base); err != nil || !sameRecord(r, recs[seg.Base-1]) {
				t.Fatalf("Read before Commit = %v, %v", r, err)
			}
			if err := rw.Commit(); err != nil {
				t.Fatal(err)
			}
			if codec != CodecNone && rw.NewSize >= rw.OldSize/3 {
				t.Fatalf("rewrite kept a third of the records but %d of %d bytes", rw.NewSize, rw.OldSize)
			}
			wantKept := 0
			for id := seg.Base; id <= seg.LastID; id++ {
				if keep(id) {
					wantKept++
				}
			}
			if len(rw.Moved) != wantKept || rw.Dropped != int(seg.LastID-seg.Base+1)-wantKept {
				t.Fatalf("Moved %d, Dropped %d; want %d kept of %d", len(rw.Moved), rw.Dropped, wantKept, seg.LastID-seg.Base+1)
			}
			c := l.NewCursor()
			for _, m := range rw.Moved {
				r, err := c.ReadAt(m.ID, m.Pos)
				if err != nil || !sameRecord(r, recs[m.ID-1]) {
					t.Fatalf("ReadAt(%d, %+v) after rewrite = %v, %v", m.ID, m.Pos, r, err)
				}
			}
			for id := seg.Base; id <= seg.LastID; id++ {
				r, err := l.Read(id)
				switch {
				case keep(id) && (err != nil || !sameRecord(r, recs[id-1])):
					t.Fatalf("Read(%d) kept record = %v, %v", id, r, err)
				case !keep(id) && !errors.Is(err, ErrNotFound):
					t.Fatalf("Read(%d) dropped record err = %v, want ErrNotFound", id, err)
				}
			}
			var want []Record
			for _, r := range recs {
				if r.ID < seg.Base || r.ID > seg.LastID || keep(r.ID) {
					want = append(want, r)
				}
			}
			checkIter(t, l, 1, want)
			l.Close()
			if rep, err := Verify(dir, VerifyOptions{}); err != nil || !rep.OK() {
				t.Fatalf("Verify after rewrite = %+v, %v", rep, err)
			}
			l2 := mustOpen(t, dir, Options{SegmentSize: 8 << 10})
			checkIter(t, l2, 1, want)
		})
	}
}

func TestRewriteAbortAndRefusals(t *testing.T) {
	l, dir, _ := sealedLog(t)
	segs := l.Segments()
	before, _ := os.ReadFile(segs[0].Path)
	rw, err := l.Rewrite(segs[0].Base, func(uint64) bool { return false }, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Abort(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(segs[0].Path); !bytes.Equal(before, after) {
		t.Fatal("Abort changed the segment")
	}
	if err := rw.Commit(); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if _, err := l.Rewrite(segs[len(segs)-1].Base, func(uint64) bool { return true }, RewriteOptions{}); !errors.Is(err, ErrActiveSegment) {
		t.Fatalf("Rewrite(newest) = %v, want ErrActiveSegment", err)
	}
	// A rewrite prepared before its segment is removed must not resurrect it.
	rw, err = l.Rewrite(segs[1].Base, func(uint64) bool { return true }, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Remove(segs[1].Base); err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err == nil {
		t.Fatal("Commit of a rewrite whose segment was removed succeeded")
	}
	if _, err := os.Stat(segs[1].Path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("removed segment came back: %v", err)
	}
	// Damage is never compacted away.
	data, _ := os.ReadFile(segs[2].Path)
	data[fileHeaderSize+frameHeaderSize+3] ^= 0x40
	os.WriteFile(segs[2].Path, data, 0o644)
	if _, err := l.Rewrite(segs[2].Base, func(uint64) bool { return true }, RewriteOptions{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Rewrite of a damaged segment = %v, want ErrCorrupt", err)
	}
	if after, _ := os.ReadFile(segs[2].Path); !bytes.Equal(after, data) {
		t.Fatal("refused rewrite changed the damaged segment")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*"+tempSuffix))
	if len(names) != 0 {
		t.Fatalf("temp files left behind: %v", names)
	}
}

func TestOpenRemovesLeftoverRewriteTemp(t *testing.T) {
	l, dir, recs := sealedLog(t)
	seg := l.Segments()[0]
	l.Close()
	tmp := seg.Path + tempSuffix
	os.WriteFile(tmp, []byte("half a rewrite"), 0o644)
	l2 := mustOpen(t, dir, Options{SegmentSize: 8 << 10})
	if rec := l2.Recovery(); len(rec.TempsFound) != 1 {
		t.Fatalf("recovery %+v, want the temp file reported", rec)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("leftover temp file not removed")
	}
	checkIter(t, l2, 1, recs)
}

func TestRecords(t *testing.T) {
	l, _, _ := sealedLog(t)
	segs := l.Segments()
	for _, s := range segs[:len(segs)-1] {
		if n, err := l.Records(s.Base); err != nil || n != int(s.LastID-s.Base+1) {
			t.Fatalf("Records(%d) = %d, %v; want %d", s.Base, n, err, s.LastID-s.Base+1)
		}
	}
	seg := segs[1]
	rw, err := l.Rewrite(seg.Base, func(id uint64) bool { return id%3 == 0 }, RewriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := rw.Commit(); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Records(seg.Base); err != nil || n != len(rw.Moved) {
		t.Fatalf("Records of the rewritten segment = %d, %v; want %d", n, err, len(rw.Moved))
	}
	if _, err := l.Records(segs[len(segs)-1].Base); !errors.Is(err, ErrActiveSegment) {
		t.Fatalf("Records(newest) = %v, want ErrActiveSegment", err)
	}
	if _, err := l.Records(12345); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Records(unknown) = %v, want fs.ErrNotExist", err)
	}
	data, _ := os.ReadFile(segs[2].Path)
	data[fileHeaderSize+1] ^= 0x40 // the first frame's stored length
	os.WriteFile(segs[2].Path, data, 0o644)
	if _, err := l.Records(segs[2].Base); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Records of a segment with a damaged frame header = %v, want ErrCorrupt", err)
	}
}
