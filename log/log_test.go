package log

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func mustOpen(tb testing.TB, dir string, opts Options) *Log {
	tb.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	l, err := Open(dir, opts)
	if err != nil {
		tb.Fatalf("Open(%s): %v", dir, err)
	}
	tb.Cleanup(func() { l.Close() })
	return l
}

// randomRecord makes a record whose contents are derived from its index,
// so a test can rebuild the expected bytes from the id alone.
func randomRecord(rng *rand.Rand, maxBody int) Record {
	body := make([]byte, rng.IntN(maxBody+1))
	for i := range body {
		body[i] = byte(rng.IntN(256))
	}
	var meta []byte
	if rng.IntN(3) == 0 {
		meta = []byte(fmt.Sprintf(`{"k":%d}`, rng.IntN(1000)))
	}
	return Record{Time: rng.Int64N(1 << 50), Flags: uint8(rng.IntN(256)), Meta: meta, Body: body}
}

func sameRecord(a, b Record) bool {
	return a.ID == b.ID && a.Time == b.Time && a.Flags == b.Flags && bytes.Equal(a.Meta, b.Meta) && bytes.Equal(a.Body, b.Body)
}

// appendAll appends recs in batches of random size and returns them with
// their assigned ids, in id order.
func appendAll(tb testing.TB, l *Log, rng *rand.Rand, n, maxBody, maxBatch int) []Record {
	tb.Helper()
	var all []Record
	for len(all) < n {
		batch := make([]Record, 1+rng.IntN(maxBatch))
		for i := range batch {
			batch[i] = randomRecord(rng, maxBody)
		}
		first, pos, err := l.Append(batch)
		if err != nil {
			tb.Fatalf("Append: %v", err)
		}
		if want := uint64(len(all)) + 1; first != want {
			tb.Fatalf("Append returned first id %d, want %d", first, want)
		}
		for i := range batch {
			if batch[i].ID != first+uint64(i) {
				tb.Fatalf("record %d got id %d, want %d", i, batch[i].ID, first+uint64(i))
			}
			r, err := l.NewCursor().ReadAt(batch[i].ID, pos)
			if err != nil || !sameRecord(r, batch[i]) {
				tb.Fatalf("ReadAt(%d, %+v) = %+v, %v", batch[i].ID, pos, r, err)
			}
		}
		all = append(all, batch...)
	}
	return all
}

func checkIter(tb testing.TB, l *Log, from uint64, want []Record) {
	tb.Helper()
	it := l.Iter(from)
	var got []Record
	for it.Next() {
		r := it.Record()
		r.Meta, r.Body = bytes.Clone(r.Meta), bytes.Clone(r.Body)
		got = append(got, r)
	}
	if err := it.Err(); err != nil {
		tb.Fatalf("Iter(%d): %v", from, err)
	}
	if len(got) != len(want) {
		tb.Fatalf("Iter(%d) returned %d records, want %d", from, len(got), len(want))
	}
	for i := range got {
		if !sameRecord(got[i], want[i]) {
			tb.Fatalf("Iter(%d) record %d = id %d, want id %d (or contents differ)", from, i, got[i].ID, want[i].ID)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	cases := []struct {
		name    string
		opts    Options
		maxBody int
	}{
		{"small segments rotate often", Options{SegmentSize: 4 << 10}, 300},
		{"default segments hold everything", Options{}, 300},
		{"compressible bodies go through s2", Options{SegmentSize: 64 << 10, CompressMin: 64}, 2000},
		{"sync none", Options{SegmentSize: 8 << 10, Sync: SyncNone}, 300},
		{"sync interval", Options{SegmentSize: 8 << 10, Sync: SyncInterval}, 300},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			rng := rand.New(rand.NewPCG(1, 2))
			l := mustOpen(t, dir, tc.opts)
			want := appendAll(t, l, rng, 600, tc.maxBody, 20)
			n := uint64(len(want))
			if tc.opts.SegmentSize == 4<<10 && len(l.Segments()) < 5 {
				t.Fatalf("expected rotation, got %d segments", len(l.Segments()))
			}
			for _, from := range []uint64{0, 1, 2, 77, 300, n - 1, n} {
				checkIter(t, l, from, want[max(from, 1)-1:])
			}
			checkIter(t, l, n+1, nil)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l2 := mustOpen(t, dir, tc.opts)
			if !l2.Recovery().Clean() {
				t.Fatalf("clean reopen reported %+v", l2.Recovery())
			}
			if l2.LastID() != n {
				t.Fatalf("LastID after reopen = %d, want %d", l2.LastID(), n)
			}
			for _, from := range []uint64{1, 123, n} {
				checkIter(t, l2, from, want[from-1:])
			}
			for _, id := range []uint64{1, 2, 300, n} {
				r, err := l2.Read(id)
				if err != nil || !sameRecord(r, want[id-1]) {
					t.Fatalf("Read(%d) after reopen = %+v, %v", id, r, err)
				}
			}
			if _, err := l2.Read(n + 1); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Read(n+1) err = %v, want ErrNotFound", err)
			}
			first, _, err := l2.Append([]Record{{Body: []byte("after reopen")}})
			if err != nil || first != n+1 {
				t.Fatalf("Append after reopen = %d, %v; want %d", first, err, n+1)
			}
			// Verify's visitor replays every record, in order, at the
			// position an Iterator gives it.
			var visited []string
			rep, err := Verify(dir, VerifyOptions{Visit: func(r Record, pos Position) {
				visited = append(visited, fmt.Sprintf("%d %q @%d:%d", r.ID, r.Body, pos.Segment, pos.Offset))
			}})
			var iterated []string
			for it := l2.Iter(1); it.Next(); {
				r, pos := it.Record(), it.Position()
				iterated = append(iterated, fmt.Sprintf("%d %q @%d:%d", r.ID, r.Body, pos.Segment, pos.Offset))
			}
			if err != nil || !rep.OK() || len(visited) != int(n+1) || !slices.Equal(visited, iterated) {
				t.Fatalf("Verify = %+v, %v; visited %d records, want %d, the Iterator's:\n%.300v\n%.300v", rep, err, len(visited), n+1, visited, iterated)
			}
		})
	}
}

func TestIteratorSeesLaterAppends(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentSize: 1 << 10})
	it := l.Iter(1)
	if it.Next() {
		t.Fatal("Next on an empty log returned a record")
	}
	for round := 0; round < 3; round++ {
		for i := 0; i < 30; i++ {
			if _, _, err := l.Append([]Record{{Body: bytes.Repeat([]byte{byte(i)}, 50)}}); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < 30; i++ {
			if !it.Next() {
				t.Fatalf("round %d: Next stopped after %d records: %v", round, i, it.Err())
			}
			if want := uint64(round*30 + i + 1); it.Record().ID != want {
				t.Fatalf("got id %d, want %d", it.Record().ID, want)
			}
		}
		if it.Next() {
			t.Fatal("Next returned a record past the end")
		}
	}
}

func TestCursorFrameNamesTheFrameItHolds(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{})
	c := l.NewCursor()
	if _, _, _, ok := c.Frame(); ok {
		t.Fatal("a new cursor holds a frame")
	}
	for range 2 {
		if _, _, err := l.Append([]Record{{Body: []byte("a")}, {Body: []byte("b")}, {Body: []byte("c")}}); err != nil {
			t.Fatal(err)
		}
	}
	var positions []Position
	for it := l.Iter(1); it.Next(); {
		positions = append(positions, it.Position())
	}
	for id, want := range map[uint64][3]uint64{2: {1, 3, 0}, 5: {4, 6, 3}} {
		if _, err := c.Read(id); err != nil {
			t.Fatal(err)
		}
		pos, first, last, ok := c.Frame()
		if !ok || first != want[0] || last != want[1] || pos != positions[want[2]] {
			t.Fatalf("after reading %d: Frame = %+v %d..%d %v; want %+v %d..%d", id, pos, first, last, ok, positions[want[2]], want[0], want[1])
		}
	}
}

func TestIterAtResumesFromAnEarlierPosition(t *testing.T) {
	l := mustOpen(t, t.TempDir(), Options{SegmentSize: 1 << 10})
	for i := 0; i < 60; i++ {
		if _, _, err := l.Append([]Record{{Body: bytes.Repeat([]byte{byte(i)}, 50)}}); err != nil {
			t.Fatal(err)
		}
	}
	var positions []Position
	for it := l.Iter(1); it.Next(); {
		positions = append(positions, it.Position())
	}
	if len(positions) != 60 {
		t.Fatalf("iterated %d records", len(positions))
	}
	for _, tc := range []struct {
		name string
		from uint64
		hint Position
	}{
		{"at the record's own frame", 40, positions[39]},
		{"at an earlier frame in the same segment", 40, positions[37]},
		{"zero hint", 40, Position{}},
		{"hint in a segment that does not exist", 40, Position{Segment: 9999, Offset: 64}},
		{"hint past the segment's end", 40, Position{Segment: positions[39].Segment, Offset: 1 << 20}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			it := l.IterAt(tc.from, tc.hint)
			for want := tc.from; want <= 60; want++ {
				if !it.Next() || it.Record().ID != want || it.Record().Body[0] != byte(want-1) {
					t.Fatalf("record %d: got %d (%v)", want, it.Record().ID, it.Err())
				}
			}
			if it.Next() || it.Err() != nil {
				t.Fatalf("past the end: %d, %v", it.Record().ID, it.Err())
			}
		})
	}
}

func TestAppendLimits(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{MaxRecordSize: 1000})
	cases := []struct {
		name    string
		recs    []Record
		wantErr error
	}{
		{"body at the limit is accepted", []Record{{Body: make([]byte, 1000)}}, nil},
		{"body over the limit is refused", []Record{{Body: make([]byte, 1001)}}, ErrTooLarge},
		{"meta counts toward the limit", []Record{{Meta: make([]byte, 500), Body: make([]byte, 501)}}, ErrTooLarge},
		{"one large record fails the whole batch", []Record{{Body: []byte("ok")}, {Body: make([]byte, 2000)}}, ErrTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := l.LastID()
			_, _, err := l.Append(tc.recs)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Append err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && l.LastID() != before {
				t.Fatalf("refused append moved LastID from %d to %d", before, l.LastID())
			}
		})
	}
	if _, _, err := l.Append(nil); err == nil {
		t.Fatal("Append(nil) succeeded")
	}
	l.Close()
	if _, _, err := l.Append([]Record{{}}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append after Close err = %v, want ErrClosed", err)
	}
}

func TestConcurrentAppendersAndReaders(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{SegmentSize: 16 << 10})
	const writers, perWriter = 16, 200
	var mu sync.Mutex
	bodies := map[uint64][]byte{}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Go(func() {
			for i := 0; i < perWriter; i++ {
				body := []byte(fmt.Sprintf("writer %d message %d", w, i))
				first, _, err := l.Append([]Record{{Body: body}})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				bodies[first] = body
				mu.Unlock()
			}
		})
	}
	// A reader follows the writers the whole time.
	done := make(chan struct{})
	var seen int
	go func() {
		defer close(done)
		it := l.Iter(1)
		for seen < writers*perWriter {
			if it.Next() {
				seen++
			} else if it.Err() != nil {
				t.Error(it.Err())
				return
			}
		}
	}()
	wg.Wait()
	<-done
	if len(bodies) != writers*perWriter {
		t.Fatalf("%d distinct ids, want %d", len(bodies), writers*perWriter)
	}
	l.Close()
	l2 := mustOpen(t, dir, Options{})
	for id, body := range bodies {
		r, err := l2.Read(id)
		if err != nil || !bytes.Equal(r.Body, body) {
			t.Fatalf("Read(%d) = %q, %v; want %q", id, r.Body, err, body)
		}
	}
}

func TestSegmentNamePinned(t *testing.T) {
	if got := segmentName(42); got != "00000000000000000042.seg" {
		t.Fatalf("segmentName(42) = %q", got)
	}
	for _, name := range []string{"00000000000000000042.seg", "18446744073709551615.seg"} {
		base, ok := parseSegmentName(name)
		if !ok || segmentName(base) != name {
			t.Fatalf("parseSegmentName(%q) = %d, %v", name, base, ok)
		}
	}
	for _, bad := range []string{"42.seg", "00000000000000000042.seg.tmp", "0000000000000000004x.seg", "00000000000000000000.seg", "99999999999999999999.seg"} {
		if _, ok := parseSegmentName(bad); ok {
			t.Fatalf("parseSegmentName(%q) accepted a bad name", bad)
		}
	}
}

func TestUnknownVersionRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	l := mustOpen(t, dir, Options{})
	l.Append([]Record{{Body: []byte("x")}})
	l.Close()
	path := filepath.Join(dir, segmentName(1))
	data, _ := os.ReadFile(path)
	var h [fileHeaderSize]byte
	encodeFileHeader(h[:], fileHeader{version: formatVersion + 1, base: 1})
	copy(data, h[:])
	os.WriteFile(path, data, 0o644)
	if _, err := Open(dir, Options{Logger: quiet}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("Open err = %v, want ErrUnsupportedVersion", err)
	}
	if _, err := Verify(dir, VerifyOptions{}); !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("Verify err = %v, want ErrUnsupportedVersion", err)
	}
}

func TestCompressionIsUsedOnlyWhenItPays(t *testing.T) {
	cases := []struct {
		name      string
		body      func(i int) []byte
		opts      Options
		wantCodec Codec
	}{
		{"compressible frames are stored as s2", func(i int) []byte { return bytes.Repeat([]byte("spool "), 200) }, Options{}, CodecS2},
		{"random bodies are stored raw", func(i int) []byte {
			rng := rand.New(rand.NewPCG(uint64(i), 9))
			b := make([]byte, 1200)
			for j := range b {
				b[j] = byte(rng.Uint32())
			}
			return b
		}, Options{}, CodecNone},
		{"compression can be turned off", func(i int) []byte { return bytes.Repeat([]byte("spool "), 200) }, Options{Compression: CodecNone}, CodecNone},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := mustOpen(t, dir, tc.opts)
			recs := make([]Record, 20)
			for i := range recs {
				recs[i] = Record{Body: tc.body(i)}
			}
			_, pos, err := l.Append(recs) // sets each record's ID
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			data, _ := os.ReadFile(filepath.Join(dir, segmentName(1)))
			h, err := decodeFrameHeader(data[pos.Offset:])
			if err != nil {
				t.Fatal(err)
			}
			if h.codec != tc.wantCodec {
				t.Fatalf("frame codec %s, want %s", h.codec, tc.wantCodec)
			}
			if tc.wantCodec == CodecS2 && h.storedLen*4 > h.decodedLen {
				t.Fatalf("s2 frame stores %d of %d bytes", h.storedLen, h.decodedLen)
			}
			l2 := mustOpen(t, dir, tc.opts)
			checkIter(t, l2, 1, recs)
		})
	}
}
