package log

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The golden log in testdata/golden was written by this package's own
// writer (Append, Rotate, Rewrite) from the fixed inputs below, and is
// checked in so that any change to the bytes the log writes, or to how it
// reads them, fails a test instead of silently orphaning data on disk.
// It holds two segments, because no single segment can show everything:
//
//	00000000000000000001.seg  sealed, rewritten keeping ids 1, 4 and 6:
//	                          a zstd frame with a gap inside it (1, 4) and
//	                          an uncompressed one after a gap (6), where
//	                          zstd did not pay
//	00000000000000000007.seg  the newest, appended: an uncompressed frame
//	                          (an empty record; a record with binary meta
//	                          and body, stamped earlier than the one before
//	                          it), an s2 frame, and a zstd frame (the log
//	                          reopened with Compression: CodecZstd)
//
// After an intended format change (which also bumps formatVersion, and
// keeps a reader for the old files), regenerate them with
//
//	go test ./log/ -run TestGolden -update
//
// and check the new files in.
var update = flag.Bool("update", false, "rewrite log/testdata/golden from today's writer")

const goldenDir = "testdata/golden"

// goldenCreated stamps every segment header, so the bytes do not depend
// on when the files were written.
const goldenCreated = int64(1_700_000_000_000_000_000) // 2023-11-14T22:13:20Z

// goldenTime is the base of the records' own timestamps.
const goldenTime = goldenCreated + 123_456_789

func repeat(s string, n int) []byte { return []byte(strings.Repeat(s, n)) }

// goldenSealed is the one Append that fills the first segment; Rewrite
// then drops goldenDropped. Records 1 and 4 are long and alike, so zstd
// pays for the frame they share; 6 is short, so its frame stays raw.
func goldenSealed() []Record {
	return []Record{
		{Time: goldenTime, Flags: 1, Meta: []byte("attempt=1"), Body: repeat("the rewrite keeps this record. ", 10)},
		{Time: goldenTime + 1, Body: []byte("dropped")},
		{Time: goldenTime + 2, Body: []byte("dropped")},
		{Time: goldenTime + 3, Flags: 2, Body: repeat("and this one, three ids later. ", 10)},
		{Time: goldenTime + 4, Body: []byte("dropped")},
		{Time: goldenTime + 5, Body: []byte("last of the sealed segment")},
	}
}

var goldenDropped = map[uint64]bool{2: true, 3: true, 5: true}

// goldenNewest are the Append calls that write the newest segment, each
// one frame: two records too small to compress, one that s2 squeezes, and
// two that go through a log reopened with zstd.
func goldenNewest() (raw, s2, zstd []Record) {
	raw = []Record{
		{Time: goldenTime + 10},
		{Time: goldenTime + 7, Flags: 0xff, Meta: []byte{0x00, 0x01, 0xfe, 0xff}, Body: []byte("binary\x00body\xff")},
	}
	s2 = []Record{{Time: goldenTime + 20, Meta: []byte("content-type=text/plain"), Body: repeat("s2 squeezes repeated text. ", 12)}}
	zstd = []Record{
		{Time: goldenTime + 30, Body: repeat("zstd squeezes it harder. ", 12)},
		{Time: goldenTime + 31, Flags: 3, Meta: []byte("k=v"), Body: repeat("and once more, with meta. ", 12)},
	}
	return raw, s2, zstd
}

// goldenRecords is every record the golden log holds, with its id.
func goldenRecords() []Record {
	var want []Record
	for i, r := range goldenSealed() {
		if id := uint64(i) + 1; !goldenDropped[id] {
			r.ID = id
			want = append(want, r)
		}
	}
	raw, s2, zstd := goldenNewest()
	for i, r := range slices.Concat(raw, s2, zstd) {
		r.ID = 7 + uint64(i)
		want = append(want, r)
	}
	return want
}

// goldenFrameShape is what the frames of each golden segment must be, so
// that a regenerated golden log still covers every codec and both gaps.
var goldenFrameShape = map[string][]frameHeader{
	"00000000000000000001.seg": {
		{codec: CodecZstd, first: 1, count: 2, span: 3},
		{codec: CodecNone, first: 6, count: 1, span: 0},
	},
	"00000000000000000007.seg": {
		{codec: CodecNone, first: 7, count: 2, span: 1},
		{codec: CodecS2, first: 9, count: 1, span: 0},
		{codec: CodecZstd, first: 10, count: 2, span: 1},
	},
}

// writeGolden writes the golden log into dir with today's writer.
func writeGolden(t *testing.T, dir string) {
	t.Helper()
	opts := Options{
		CompressMin: 256,
		Now:         func() time.Time { return time.Unix(0, goldenCreated) },
	}
	l := mustOpen(t, dir, opts)
	appendOne := func(l *Log, recs []Record) {
		t.Helper()
		if _, _, err := l.Append(recs); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	appendOne(l, goldenSealed())
	if err := l.Rotate(); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	rw, err := l.Rewrite(1, func(id uint64) bool { return !goldenDropped[id] }, RewriteOptions{Codec: CodecZstd, FrameSize: 512})
	if err != nil {
		t.Fatalf("Rewrite: %v", err)
	}
	if err := rw.Commit(); err != nil {
		t.Fatalf("Rewrite.Commit: %v", err)
	}
	raw, s2, zstd := goldenNewest()
	appendOne(l, raw)
	appendOne(l, s2)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	opts.Compression = CodecZstd
	l = mustOpen(t, dir, opts)
	appendOne(l, zstd)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// segmentFiles returns the segment files in dir by name.
func segmentFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, e := range entries {
		if _, ok := parseSegmentName(e.Name()); !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// rawFrame is one frame cut out of a segment file.
type rawFrame struct {
	h       frameHeader
	bytes   []byte // the whole frame on disk: header, stored payload, padding
	payload []byte // the decoded payload
}

// splitSegment cuts a segment file into its file header and its frames,
// verifying each frame as a reader would.
func splitSegment(t *testing.T, name string, b []byte) (header []byte, frames []rawFrame) {
	t.Helper()
	if len(b) < fileHeaderSize {
		t.Fatalf("%s: %d bytes, shorter than a file header", name, len(b))
	}
	for off := fileHeaderSize; off < len(b); {
		h, err := decodeFrameHeader(b[off:])
		if err != nil {
			t.Fatalf("%s offset %d: %v", name, off, err)
		}
		end := off + encodedSize(int(h.storedLen))
		if end > len(b) {
			t.Fatalf("%s offset %d: frame of %d bytes runs past the end", name, off, end-off)
		}
		stored := b[off+frameHeaderSize : off+frameHeaderSize+int(h.storedLen)]
		if err := verifyFramePayload(b[off:], h, stored); err != nil {
			t.Fatalf("%s offset %d: %v", name, off, err)
		}
		payload, err := decodePayload(h, stored, nil)
		if err != nil {
			t.Fatalf("%s offset %d: %v", name, off, err)
		}
		frames = append(frames, rawFrame{h: h, bytes: b[off:end], payload: payload})
		off = end
	}
	return b[:fileHeaderSize], frames
}

// sameFrame fails unless got is the frame want, byte for byte wherever
// the log decides the bytes. An uncompressed frame must match whole. A
// compressed frame must match in everything but the stored payload and
// the three fields that follow from it (stored length, frame checksum,
// header checksum): those are klauspost/compress's output, which a new
// version of the library may change without any change to the format.
// What the log feeds the compressor, the decoded payload, must match
// exactly; that the golden compressed bytes still decode is pinned by
// reading the golden files.
func sameFrame(t *testing.T, what string, got, want rawFrame) {
	t.Helper()
	if got.h.codec != want.h.codec {
		t.Fatalf("%s: codec %s, golden %s", what, got.h.codec, want.h.codec)
	}
	if want.h.codec == CodecNone {
		if !bytes.Equal(got.bytes, want.bytes) {
			t.Fatalf("%s: frame bytes differ:\n got %x\nwant %x", what, got.bytes, want.bytes)
		}
		return
	}
	if !bytes.Equal(got.bytes[8:36], want.bytes[8:36]) {
		t.Fatalf("%s: header bytes 8..36 differ:\n got %x\nwant %x", what, got.bytes[8:36], want.bytes[8:36])
	}
	if !bytes.Equal(got.payload, want.payload) {
		t.Fatalf("%s: decoded payload differs:\n got %x\nwant %x", what, got.payload, want.payload)
	}
	stored := got.bytes[frameHeaderSize : frameHeaderSize+int(got.h.storedLen)]
	if pad := got.bytes[len(stored)+frameHeaderSize:]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Fatalf("%s: padding %x is not zero", what, pad)
	}
}

func TestGolden(t *testing.T) {
	t.Run("today's writer writes the golden bytes", func(t *testing.T) {
		dir := t.TempDir()
		writeGolden(t, dir)
		got := segmentFiles(t, dir)
		if *update {
			if err := os.RemoveAll(goldenDir); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(goldenDir, 0o755); err != nil {
				t.Fatal(err)
			}
			for name, b := range got {
				if err := os.WriteFile(filepath.Join(goldenDir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		want := segmentFiles(t, goldenDir)
		if names, wantNames := slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)); !slices.Equal(names, wantNames) {
			t.Fatalf("segments %v, golden %v", names, wantNames)
		}
		for name, w := range want {
			gotHeader, gotFrames := splitSegment(t, name, got[name])
			wantHeader, wantFrames := splitSegment(t, name, w)
			if !bytes.Equal(gotHeader, wantHeader) {
				t.Fatalf("%s: file header\n got %x\nwant %x", name, gotHeader, wantHeader)
			}
			if len(gotFrames) != len(wantFrames) {
				t.Fatalf("%s: %d frames, golden %d", name, len(gotFrames), len(wantFrames))
			}
			for i := range wantFrames {
				sameFrame(t, fmt.Sprintf("%s frame %d", name, i), gotFrames[i], wantFrames[i])
			}
		}
	})

	t.Run("EncodeFrame writes the frames the log wrote", func(t *testing.T) {
		for name, b := range segmentFiles(t, goldenDir) {
			_, frames := splitSegment(t, name, b)
			for i, f := range frames {
				var recs []Record
				if err := decodeRecords(f.payload, f.h, func(r Record) bool { recs = append(recs, r); return true }); err != nil {
					t.Fatalf("%s frame %d: %v", name, i, err)
				}
				enc, err := EncodeFrame(nil, recs, f.h.codec)
				if err != nil {
					t.Fatalf("%s frame %d: EncodeFrame: %v", name, i, err)
				}
				_, again := splitSegment(t, "EncodeFrame", append(make([]byte, fileHeaderSize), enc...))
				if len(again) != 1 {
					t.Fatalf("%s frame %d: EncodeFrame wrote %d frames", name, i, len(again))
				}
				sameFrame(t, fmt.Sprintf("%s frame %d by EncodeFrame", name, i), again[0], f)
			}
		}
	})

	t.Run("the golden files hold the frames they were made to show", func(t *testing.T) {
		files := segmentFiles(t, goldenDir)
		if len(files) != len(goldenFrameShape) {
			t.Fatalf("%d golden segments, want %d", len(files), len(goldenFrameShape))
		}
		for name, shape := range goldenFrameShape {
			header, frames := splitSegment(t, name, files[name])
			h, err := decodeFileHeader(header)
			base, _ := parseSegmentName(name)
			if err != nil || h.version != formatVersion || h.base != base || h.created != goldenCreated {
				t.Fatalf("%s: file header %+v, %v; want version %d, base %d, created %d", name, h, err, formatVersion, base, goldenCreated)
			}
			var got []frameHeader
			for _, f := range frames {
				got = append(got, frameHeader{codec: f.h.codec, first: f.h.first, count: f.h.count, span: f.h.span})
			}
			if !slices.Equal(got, shape) {
				t.Fatalf("%s: frames %+v, want %+v", name, got, shape)
			}
		}
	})

	t.Run("Verify finds every golden record and no problem", func(t *testing.T) {
		var got []Record
		rep, err := Verify(goldenDir, VerifyOptions{Visit: func(r Record, _ Position) {
			r.Meta, r.Body = bytes.Clone(r.Meta), bytes.Clone(r.Body)
			got = append(got, r)
		}})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() {
			t.Fatalf("Verify problems: %v", rep.Problems)
		}
		var sums []SegmentReport
		for _, s := range rep.Segments {
			sums = append(sums, SegmentReport{Base: s.Base, Frames: s.Frames, Records: s.Records, LastID: s.LastID})
		}
		if want := []SegmentReport{{Base: 1, Frames: 2, Records: 3, LastID: 6}, {Base: 7, Frames: 3, Records: 5, LastID: 11}}; !slices.Equal(sums, want) {
			t.Fatalf("Verify segments %+v, want %+v", sums, want)
		}
		sameRecords(t, "Verify", got, goldenRecords())
	})

	t.Run("Open reads every golden record back and appends after them", func(t *testing.T) {
		dir := t.TempDir() // Open may repair: never let it touch testdata
		for name, b := range segmentFiles(t, goldenDir) {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		l := mustOpen(t, dir, Options{})
		if rec := l.Recovery(); !rec.Clean() {
			t.Fatalf("Open of the golden log repaired or reported %+v", rec)
		}
		if got := l.LastID(); got != 11 {
			t.Fatalf("LastID = %d, want 11", got)
		}
		var segs []SegmentInfo
		for _, s := range l.Segments() {
			segs = append(segs, SegmentInfo{Base: s.Base, LastID: s.LastID, Sealed: s.Sealed})
		}
		if want := []SegmentInfo{{Base: 1, LastID: 6, Sealed: true}, {Base: 7, LastID: 11}}; !slices.Equal(segs, want) {
			t.Fatalf("Segments %+v, want %+v", segs, want)
		}
		want := goldenRecords()
		checkIter(t, l, 1, want)
		for _, w := range want {
			if r, err := l.Read(w.ID); err != nil || !sameRecord(r, w) {
				t.Fatalf("Read(%d) = %+v, %v; want %+v", w.ID, r, err, w)
			}
		}
		for id := range goldenDropped {
			if _, err := l.Read(id); !errors.Is(err, ErrNotFound) {
				t.Fatalf("Read(%d) of a record the rewrite dropped: %v, want ErrNotFound", id, err)
			}
		}
		if n, err := l.Records(1); err != nil || n != 3 {
			t.Fatalf("Records(1) = %d, %v; want 3", n, err)
		}
		next := Record{Time: goldenTime + 40, Body: []byte("appended today")}
		if first, _, err := l.Append([]Record{next}); err != nil || first != 12 {
			t.Fatalf("Append after the golden records = %d, %v; want id 12", first, err)
		}
		next.ID = 12
		checkIter(t, l, 1, append(want, next))
	})
}

// sameRecords fails unless got holds exactly want, field by field.
func sameRecords(t *testing.T, what string, got, want []Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range want {
		if !sameRecord(got[i], want[i]) {
			t.Fatalf("%s: record %d = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}
