package log

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// fixture is a closed log of three frames of three records each in one
// segment, with the byte ranges of its frames, for corruption tests.
type fixture struct {
	dir    string
	path   string
	recs   []Record
	frames []frameSpan
}

type frameSpan struct {
	off, end int64 // header start, end of stored payload (padding excluded)
	first    uint64
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	fx := fixture{dir: dir, path: filepath.Join(dir, segmentName(1))}
	for f := 0; f < 3; f++ {
		batch := []Record{
			{Time: int64(f), Body: []byte(fmt.Sprintf("frame %d record a", f))},
			{Time: int64(f), Flags: 7, Meta: []byte("m"), Body: []byte(fmt.Sprintf("frame %d record b", f))},
			{Time: int64(f), Body: bytes.Repeat([]byte{byte(f)}, 37)},
		}
		first, pos, err := l.Append(batch)
		if err != nil {
			t.Fatal(err)
		}
		size := l.Segments()[0].Size
		fx.frames = append(fx.frames, frameSpan{off: pos.Offset, end: size, first: first})
		fx.recs = append(fx.recs, batch...)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(fx.path)
	for i := range fx.frames {
		h, err := decodeFrameHeader(data[fx.frames[i].off:])
		if err != nil {
			t.Fatal(err)
		}
		fx.frames[i].end = fx.frames[i].off + frameHeaderSize + int64(h.storedLen)
	}
	return fx
}

func (fx fixture) edit(t *testing.T, fn func(data []byte) []byte) {
	t.Helper()
	data, err := os.ReadFile(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fx.path, fn(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readable returns the ids an iterator yields over the whole log, and the
// number of corrupt ranges it reported on the way, checking every record
// it yields against what was written.
func (fx fixture) readable(t *testing.T, l *Log) (ids []uint64, corrupt int) {
	t.Helper()
	it := l.Iter(1)
	for {
		for it.Next() {
			r := it.Record()
			if !sameRecord(r, fx.recs[r.ID-1]) {
				t.Fatalf("iterator served record %d with wrong contents", r.ID)
			}
			ids = append(ids, r.ID)
		}
		if it.Err() == nil {
			return ids, corrupt
		}
		if !errors.Is(it.Err(), ErrCorrupt) {
			t.Fatalf("iterator error %v, want ErrCorrupt", it.Err())
		}
		corrupt++
	}
}

func idRange(from, to uint64) []uint64 {
	var ids []uint64
	for id := from; id <= to; id++ {
		ids = append(ids, id)
	}
	return ids
}

func TestTornTailAtEveryOffsetOfTheLastFrame(t *testing.T) {
	fx := newFixture(t)
	last := fx.frames[2]
	full, _ := os.ReadFile(fx.path)
	for cut := last.off; cut < int64(len(full)); cut++ {
		if err := os.WriteFile(fx.path, full[:cut], 0o644); err != nil {
			t.Fatal(err)
		}
		l, err := Open(fx.dir, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		rec := l.Recovery()
		wantTruncated := 1
		if cut == last.off {
			wantTruncated = 0 // a cut exactly at a frame boundary leaves nothing torn
		}
		if len(rec.Truncated) != wantTruncated || len(rec.Corrupt) != 0 {
			t.Fatalf("cut at %d: recovery %+v, want %d truncation and no corruption", cut, rec, wantTruncated)
		}
		if l.LastID() != last.first-1 {
			t.Fatalf("cut at %d: LastID %d, want %d", cut, l.LastID(), last.first-1)
		}
		if ids, _ := fx.readable(t, l); !equalIDs(ids, idRange(1, last.first-1)) {
			t.Fatalf("cut at %d: readable ids %v", cut, ids)
		}
		if st, _ := os.Stat(fx.path); st.Size() != last.off {
			t.Fatalf("cut at %d: file is %d bytes after repair, want %d", cut, st.Size(), last.off)
		}
		first, _, err := l.Append([]Record{{Body: []byte("after repair")}})
		if err != nil || first != last.first {
			t.Fatalf("cut at %d: Append after repair = %d, %v; want id %d", cut, first, err, last.first)
		}
		l.Close()
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBitFlipInEveryByteOfAMiddleFrameIsDetected(t *testing.T) {
	fx := newFixture(t)
	mid := fx.frames[1]
	full, _ := os.ReadFile(fx.path)
	rng := rand.New(rand.NewPCG(3, 4))
	for at := mid.off; at < mid.end; at++ {
		data := bytes.Clone(full)
		data[at] ^= 1 << rng.IntN(8)
		if err := os.WriteFile(fx.path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		rep, err := Verify(fx.dir, VerifyOptions{})
		if err != nil || len(rep.Problems) != 1 || rep.Problems[0].TornTail || rep.Problems[0].Offset != mid.off {
			t.Fatalf("flip at %d: Verify = %+v, %v; want one corrupt range at %d", at, rep, err, mid.off)
		}
		l, err := Open(fx.dir, Options{Logger: quiet})
		if err != nil {
			t.Fatalf("flip at %d: Open: %v", at, err)
		}
		rec := l.Recovery()
		if len(rec.Corrupt) != 1 || len(rec.Truncated) != 0 || rec.Corrupt[0].Offset != mid.off {
			t.Fatalf("flip at %d: recovery %+v, want one corrupt range at %d", at, rec, mid.off)
		}
		ids, corrupt := fx.readable(t, l)
		want := append(idRange(1, mid.first-1), idRange(fx.frames[2].first, uint64(len(fx.recs)))...)
		if !equalIDs(ids, want) || corrupt != 1 {
			t.Fatalf("flip at %d: readable ids %v with %d corrupt ranges; want %v and 1", at, ids, corrupt, want)
		}
		for id := mid.first; id < fx.frames[2].first; id++ {
			if _, err := l.Read(id); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip at %d: Read(%d) err = %v, want ErrCorrupt", at, id, err)
			}
		}
		if _, err := l.Read(fx.frames[2].first); err != nil {
			t.Fatalf("flip at %d: Read after the damage: %v", at, err)
		}
		l.Close()
		if got, _ := os.ReadFile(fx.path); !bytes.Equal(got, data) {
			t.Fatalf("flip at %d: Open changed a file with mid-segment damage", at)
		}
	}
}

func TestRepair(t *testing.T) {
	cases := []struct {
		name          string
		corrupt       func(fx fixture, data []byte) []byte
		wantLast      uint64 // LastID after Open; 0 means all 9
		wantTruncated int
		wantCorrupt   int
		wantRecreated int
	}{
		{
			// What preallocate leaves: cut off, but no torn write to report.
			name:    "zeroed bytes after the last frame are preallocated space, cut off silently",
			corrupt: func(fx fixture, data []byte) []byte { return append(data, make([]byte, 4096)...) },
		},
		{
			name: "a torn frame in preallocated space is still a torn tail",
			corrupt: func(fx fixture, data []byte) []byte {
				torn := append([]byte("the start of a frame that never completed"), make([]byte, 4096)...)
				return append(data, torn...)
			},
			wantTruncated: 1,
		},
		{
			name: "random garbage after the last frame is cut off",
			corrupt: func(fx fixture, data []byte) []byte {
				return append(data, []byte("garbage that is no frame at all....")...)
			},
			wantTruncated: 1,
		},
		{
			name: "a bit flip in the last frame's payload is a torn tail",
			corrupt: func(fx fixture, data []byte) []byte {
				data[fx.frames[2].end-1] ^= 0x10
				return data
			},
			wantLast: 6, wantTruncated: 1,
		},
		{
			name: "a frame copied over its successor's place is caught by id order",
			corrupt: func(fx fixture, data []byte) []byte {
				f0 := data[fx.frames[0].off:fx.frames[1].off]
				return append(data[:fx.frames[2].off], f0...)
			},
			wantLast: 6, wantTruncated: 1,
		},
		{
			name: "a whole frame of zeros in the middle is corruption, not a tail",
			corrupt: func(fx fixture, data []byte) []byte {
				clear(data[fx.frames[1].off:fx.frames[2].off])
				return data
			},
			wantCorrupt: 1,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t)
			fx.edit(t, func(data []byte) []byte { return tc.corrupt(fx, data) })
			l, err := Open(fx.dir, Options{Logger: quiet})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			rec := l.Recovery()
			if len(rec.Truncated) != tc.wantTruncated || len(rec.Corrupt) != tc.wantCorrupt || len(rec.Recreated) != tc.wantRecreated {
				t.Fatalf("recovery %+v, want %d truncated, %d corrupt, %d recreated", rec, tc.wantTruncated, tc.wantCorrupt, tc.wantRecreated)
			}
			want := tc.wantLast
			if want == 0 {
				want = uint64(len(fx.recs))
			}
			if l.LastID() != want {
				t.Fatalf("LastID %d, want %d", l.LastID(), want)
			}
			st, err := os.Stat(fx.path)
			if err != nil {
				t.Fatal(err)
			}
			if got := l.Segments()[0].Size; st.Size() != got {
				t.Fatalf("file of %d bytes after Open, want it cut to its frames' %d", st.Size(), got)
			}
			fx.readable(t, l)
		})
	}
}

func TestTornHeaderAtRotationIsRecreated(t *testing.T) {
	for _, size := range []int{0, 1, fileHeaderSize - 1, fileHeaderSize} {
		t.Run(fmt.Sprintf("header cut to %d bytes", size), func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, Options{SegmentSize: 200})
			var want []Record
			for i := 0; i < 6; i++ {
				r := Record{Body: bytes.Repeat([]byte{byte(i)}, 100)}
				if _, _, err := l.Append([]Record{r}); err != nil {
					t.Fatal(err)
				}
				want = append(want, r)
			}
			segs := l.Segments()
			l.Close()
			newest := segs[len(segs)-1]
			// The crash hit after the new segment file was created but
			// before its header was durable.
			data := make([]byte, fileHeaderSize)
			if size == fileHeaderSize {
				copy(data, "not a header at all, just bytes")
			}
			os.WriteFile(newest.Path, data[:size], 0o644)
			os.Remove(segs[len(segs)-2].Path) // keep the scenario to two live segments
			l2 := mustOpen(t, dir, Options{SegmentSize: 200})
			if rec := l2.Recovery(); len(rec.Recreated) != 1 {
				t.Fatalf("recovery %+v, want the newest segment recreated", rec)
			}
			first, _, err := l2.Append([]Record{{Body: []byte("next")}})
			if err != nil || first != newest.Base {
				t.Fatalf("Append after recreate = %d, %v; want %d", first, err, newest.Base)
			}
			if rep, err := Verify(dir, VerifyOptions{}); err != nil || !rep.OK() {
				t.Fatalf("Verify after recreate = %+v, %v", rep, err)
			}
		})
	}
}

func TestCorruptSealedSegmentHeaderIsReportedNotFatal(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 200})
	for i := 0; i < 6; i++ {
		if _, _, err := l.Append([]Record{{Body: bytes.Repeat([]byte{byte(i)}, 100)}}); err != nil {
			t.Fatal(err)
		}
	}
	segs := l.Segments()
	l.Close()
	data, _ := os.ReadFile(segs[0].Path)
	data[9] ^= 0xff // base id byte: header crc no longer matches
	os.WriteFile(segs[0].Path, data, 0o644)
	l2 := mustOpen(t, dir, Options{})
	if rec := l2.Recovery(); len(rec.Corrupt) != 1 || rec.Corrupt[0].Path != segs[0].Path {
		t.Fatalf("recovery %+v, want the sealed header reported", rec)
	}
	if r, err := l2.Read(1); err != nil || r.Body[0] != 0 {
		t.Fatalf("Read(1) = %v, %v: frames after a damaged header should still verify", r, err)
	}
	if rep, err := Verify(dir, VerifyOptions{}); err != nil || len(rep.Problems) != 1 {
		t.Fatalf("Verify = %+v, %v; want one problem", rep, err)
	}
}
