package fuzz

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/spoolq/spool/log"
)

// maxInput bounds what one fuzz iteration looks at, to keep iterations
// cheap; larger inputs are skipped, not failed.
const maxInput = 1 << 20

// Layout constants of the segment format (log/doc.go), needed to recompute
// checksums and to check layout properties of encoded frames.
const (
	fileHeaderSize  = 32
	frameHeaderSize = 40
	frameAlign      = 8
)

var (
	castagnoli = crc32.MakeTable(crc32.Castagnoli)
	quiet      = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func alignUp(n int) int { return (n + frameAlign - 1) &^ (frameAlign - 1) }

func segName(base uint64) string { return fmt.Sprintf("%020d.seg", base) }

func sameRecord(a, b log.Record) bool {
	return a.ID == b.ID && a.Time == b.Time && a.Flags == b.Flags &&
		bytes.Equal(a.Meta, b.Meta) && bytes.Equal(a.Body, b.Body)
}

func sameRecords(a, b []log.Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !sameRecord(a[i], b[i]) {
			return false
		}
	}
	return true
}

// fixFrame recomputes the checksums of the frame at the start of b: the
// frame checksum when the stored payload fits in b, then the header
// checksum whenever b holds a header. It returns the frame's size on disk
// (padding included), or 0 when b does not hold the whole frame.
func fixFrame(b []byte) int {
	if len(b) < frameHeaderSize {
		return 0
	}
	n := binary.LittleEndian.Uint32(b[0:4])
	fits := uint64(n) <= uint64(len(b)-frameHeaderSize)
	if fits {
		c := crc32.Update(0, castagnoli, b[0:4])
		c = crc32.Update(c, castagnoli, b[8:32])
		c = crc32.Update(c, castagnoli, b[frameHeaderSize:frameHeaderSize+int(n)])
		binary.LittleEndian.PutUint32(b[4:8], c)
	}
	binary.LittleEndian.PutUint32(b[36:40], crc32.Checksum(b[0:36], castagnoli))
	if !fits {
		return 0
	}
	return frameHeaderSize + alignUp(int(n))
}

// fixSegment recomputes the file header checksum and the checksums of
// every frame reached by walking stored lengths from the first frame.
func fixSegment(b []byte) {
	if len(b) < fileHeaderSize {
		return
	}
	binary.LittleEndian.PutUint32(b[28:32], crc32.Checksum(b[0:28], castagnoli))
	for off := fileHeaderSize; off < len(b); {
		size := fixFrame(b[off:])
		if size == 0 {
			return
		}
		off += size
	}
}

// text returns n bytes of compressible text.
func text(n int, seed int) []byte {
	const words = "alpha beta gamma delta epsilon job queue spool segment frame "
	b := make([]byte, n)
	for i := range b {
		b[i] = words[(i+seed)%len(words)]
	}
	return b
}

// noise returns n pseudo-random (incompressible) bytes.
func noise(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// recordsFrom makes n records with ids first, first+gap, ... and bodies
// from body (each record gets body with its index appended).
func recordsFrom(first, gap uint64, n int, meta, body []byte) []log.Record {
	recs := make([]log.Record, n)
	for i := range recs {
		recs[i] = log.Record{
			ID:    first + uint64(i)*gap,
			Time:  1_700_000_000_000_000_000 + int64(i)*1000 - int64(i%3)*7777,
			Flags: uint8(i * 37),
			Meta:  meta,
			Body:  append(bytes.Clone(body), byte(i)),
		}
	}
	return recs
}

// frameSeeds returns valid frames made by log.EncodeFrame covering every
// codec (the compressing ones with payloads they do compress), followed by
// truncated and bit-flipped copies of some of them.
func frameSeeds(tb testing.TB) [][]byte {
	tb.Helper()
	type spec struct {
		recs  []log.Record
		codec log.Codec
		want  log.Codec // codec the frame must end up with
	}
	specs := []spec{
		{[]log.Record{{ID: 1}}, log.CodecNone, log.CodecNone},
		{recordsFrom(1, 1, 3, []byte(`{"k":1}`), []byte("hello")), log.CodecNone, log.CodecNone},
		{recordsFrom(1000, 3, 40, nil, text(20, 1)), log.CodecNone, log.CodecNone},
		{[]log.Record{{ID: 7, Time: -5, Flags: 0xff, Meta: []byte("m"), Body: noise(2<<10, 1)}}, log.CodecNone, log.CodecNone},
		{recordsFrom(math.MaxUint64-9, 3, 4, []byte("near the end"), nil), log.CodecNone, log.CodecNone},
		{recordsFrom(1, 1, 8, []byte("meta"), text(600, 2)), log.CodecS2, log.CodecS2},
		{[]log.Record{{ID: 42, Time: 1, Body: text(5000, 3)}}, log.CodecS2, log.CodecS2},
		{recordsFrom(5, 2, 6, []byte("zstd meta"), text(700, 4)), log.CodecZstd, log.CodecZstd},
		{[]log.Record{{ID: 1, Body: noise(300, 2)}}, log.CodecZstd, log.CodecNone}, // zstd does not pay
	}
	var seeds [][]byte
	for i, s := range specs {
		frame, err := log.EncodeFrame(nil, s.recs, s.codec)
		if err != nil {
			tb.Fatalf("seed %d: EncodeFrame: %v", i, err)
		}
		if got := log.Codec(frame[8]); got != s.want {
			tb.Fatalf("seed %d: frame stored with codec %v, want %v", i, got, s.want)
		}
		seeds = append(seeds, frame)
	}
	// Damaged copies of a small uncompressed, an s2 and a zstd frame.
	for _, i := range []int{1, 5, 7} {
		frame := seeds[i]
		seeds = append(seeds,
			frame[:frameHeaderSize-1],
			frame[:frameHeaderSize+3],
			frame[:len(frame)-9],
			flip(frame, 17*8+2),            // first id
			flip(frame, (len(frame)-12)*8), // payload near the end
		)
	}
	return seeds
}

// flip returns a copy of b with bit i flipped.
func flip(b []byte, i int) []byte {
	b = bytes.Clone(b)
	b[i/8] ^= 1 << (i % 8)
	return b
}

// FuzzDecodeFrame feeds arbitrary bytes to log.DecodeFrame, as they are
// and with both checksums recomputed (so mutations reach the codecs and the
// record parser).
//
// Properties: DecodeFrame never panics; on failure the error wraps
// log.ErrCorrupt; on success the size is a whole frame (≥ a header, a
// multiple of 8, ≤ len(input)), the frame decodes the same from its own
// bytes alone, there is at least one record, ids strictly increase, and the
// records re-encoded uncompressed decode to exactly the same records
// (decode(encode(x)) == x) with an encoding that is a fixed point.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range frameSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxInput {
			return
		}
		checkDecode(t, data)
		if fixed := bytes.Clone(data); len(fixed) >= frameHeaderSize {
			if fixFrame(fixed); !bytes.Equal(fixed, data) {
				checkDecode(t, fixed)
			}
		}
	})
}

func checkDecode(t *testing.T, data []byte) {
	t.Helper()
	orig := bytes.Clone(data)
	recs, size, err := log.DecodeFrame(data)
	if !bytes.Equal(data, orig) {
		t.Fatalf("DecodeFrame modified its input")
	}
	if err != nil {
		if !errors.Is(err, log.ErrCorrupt) {
			t.Fatalf("DecodeFrame error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	if size < frameHeaderSize || size > len(data) || size%frameAlign != 0 {
		t.Fatalf("DecodeFrame size %d for %d input bytes: want a multiple of %d in [%d, %d]", size, len(data), frameAlign, frameHeaderSize, len(data))
	}
	if len(recs) == 0 {
		t.Fatalf("DecodeFrame succeeded with no records")
	}
	if recs[0].ID == 0 {
		t.Fatalf("DecodeFrame returned id 0")
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].ID <= recs[i-1].ID {
			t.Fatalf("record %d: id %d does not follow %d", i, recs[i].ID, recs[i-1].ID)
		}
	}
	again, size2, err := log.DecodeFrame(data[:size])
	if err != nil || size2 != size || !sameRecords(again, recs) {
		t.Fatalf("frame decodes differently from its own %d bytes: size %d, err %v", size, size2, err)
	}

	enc, err := log.EncodeFrame(nil, recs, log.CodecNone)
	if err != nil {
		t.Fatalf("EncodeFrame of decoded records: %v", err)
	}
	back, size3, err := log.DecodeFrame(enc)
	if err != nil {
		t.Fatalf("DecodeFrame(EncodeFrame(records)): %v", err)
	}
	if size3 != len(enc) {
		t.Fatalf("re-encoded frame of %d bytes decodes with size %d", len(enc), size3)
	}
	if !sameRecords(back, recs) {
		t.Fatalf("decode(encode(records)) differs from records:\n got %+v\nwant %+v", back, recs)
	}
	enc2, err := log.EncodeFrame(nil, back, log.CodecNone)
	if err != nil || !bytes.Equal(enc2, enc) {
		t.Fatalf("encoding is not a fixed point: err %v", err)
	}
}

// FuzzEncodeDecodeFrame builds records from fuzzed values (ids derived
// from idSeed, times from time, flags, meta and body split among them),
// encodes them with log.EncodeFrame under a fuzzed codec byte and decodes
// them with log.DecodeFrame.
//
// Properties: EncodeFrame fails exactly for an invalid codec or an id span
// beyond 32 bits, leaving dst as it was; otherwise it appends to dst a
// frame of a multiple of 8 bytes with zero padding, stored with the asked
// codec or none, and DecodeFrame gives back exactly the records.
func FuzzEncodeDecodeFrame(f *testing.F) {
	f.Add(uint64(1), int64(0), uint8(0), []byte(nil), []byte(nil), uint8(log.CodecNone))
	f.Add(uint64(12345), int64(1_700_000_000_000_000_000), uint8(3), []byte(`{"queue":"q"}`), []byte("hello, world"), uint8(log.CodecNone))
	f.Add(uint64(7), int64(-1), uint8(0x80), []byte("m"), text(3000, 5), uint8(log.CodecS2))
	f.Add(uint64(99), int64(math.MaxInt64), uint8(0x41), []byte("meta"), text(2000, 6), uint8(log.CodecZstd))
	f.Add(uint64(math.MaxUint64), int64(math.MinInt64), uint8(0xff), []byte(nil), noise(500, 3), uint8(log.CodecZstd))
	f.Add(uint64(1<<40), int64(5), uint8(9), []byte("x"), []byte("y"), uint8(0))
	f.Add(uint64(3), int64(5), uint8(9), []byte("x"), []byte("y"), uint8(4))
	f.Fuzz(func(t *testing.T, idSeed uint64, time int64, flags uint8, meta, body []byte, codec uint8) {
		if len(meta)+len(body) > maxInput {
			return
		}
		rng := rand.New(rand.NewPCG(idSeed, uint64(time)^uint64(flags)<<56))
		n := 1 + rng.IntN(8)
		if rng.IntN(8) == 0 {
			n = 1 + rng.IntN(300)
		}
		first := max(idSeed, 1)
		mcuts, bcuts := cuts(rng, len(meta), n), cuts(rng, len(body), n)
		recs := make([]log.Record, 0, n)
		id, tm, total := first, time, 0
		for i := 0; i < n; i++ {
			if i > 0 {
				gap := uint64(1)
				switch rng.IntN(16) {
				case 0, 1, 2:
					gap += rng.Uint64N(1000)
				case 3:
					gap += rng.Uint64() >> rng.IntN(64)
				}
				if id > math.MaxUint64-gap {
					break // no room for another strictly greater id
				}
				id += gap
				switch rng.IntN(4) {
				case 0:
					tm += rng.Int64() // may wrap: deltas wrap back the same way
				case 1:
					tm -= rng.Int64N(1 << 20)
				default:
					tm += rng.Int64N(1 << 30)
				}
			}
			r := log.Record{ID: id, Time: tm, Flags: flags + uint8(i)*uint8(rng.IntN(3)),
				Meta: meta[mcuts[i]:mcuts[i+1]], Body: body[bcuts[i]:bcuts[i+1]]}
			if len(r.Meta) == 0 && rng.IntN(2) == 0 {
				r.Meta = nil
			}
			if rep := 1 + rng.IntN(4)*rng.IntN(16); rep > 1 && total+rep*len(r.Body) <= maxInput {
				r.Body = bytes.Repeat(r.Body, rep) // something worth compressing
			}
			total += len(r.Body)
			recs = append(recs, r)
		}
		saved := make([]log.Record, len(recs))
		for i, r := range recs {
			saved[i] = r
			saved[i].Meta, saved[i].Body = bytes.Clone(r.Meta), bytes.Clone(r.Body)
		}

		c := log.Codec(codec)
		wantErr := c < log.CodecNone || c > log.CodecZstd || recs[len(recs)-1].ID-first > math.MaxUint32
		prefix := []byte("dst!")[:rng.IntN(5)]
		out, err := log.EncodeFrame(prefix, recs, c)
		if !sameRecords(recs, saved) {
			t.Fatalf("EncodeFrame modified its records")
		}
		if wantErr {
			if err == nil {
				t.Fatalf("EncodeFrame(codec %d, ids %d..%d) succeeded, want an error", codec, first, recs[len(recs)-1].ID)
			}
			if !bytes.Equal(out, prefix) {
				t.Fatalf("failed EncodeFrame changed dst")
			}
			return
		}
		if err != nil {
			t.Fatalf("EncodeFrame(codec %v, %d records, ids %d..%d): %v", c, len(recs), first, recs[len(recs)-1].ID, err)
		}
		if !bytes.Equal(out[:len(prefix)], prefix) {
			t.Fatalf("EncodeFrame overwrote dst")
		}
		frame := out[len(prefix):]
		if len(frame) < frameHeaderSize || len(frame)%frameAlign != 0 {
			t.Fatalf("frame of %d bytes", len(frame))
		}
		if used := log.Codec(frame[8]); used != c && used != log.CodecNone {
			t.Fatalf("frame stored with codec %v, asked for %v", used, c)
		}
		stored := int(binary.LittleEndian.Uint32(frame[0:4]))
		if len(frame) != frameHeaderSize+alignUp(stored) {
			t.Fatalf("frame of %d bytes has stored length %d", len(frame), stored)
		}
		if pad := frame[frameHeaderSize+stored:]; bytes.Count(pad, []byte{0}) != len(pad) {
			t.Fatalf("padding is not zero: %x", pad)
		}
		got, size, err := log.DecodeFrame(append(frame, 0xAA, 0x55)) // trailing bytes are not the frame's
		if err != nil {
			t.Fatalf("DecodeFrame(EncodeFrame(records)): %v", err)
		}
		if size != len(frame) {
			t.Fatalf("DecodeFrame size %d, frame is %d bytes", size, len(frame))
		}
		if !sameRecords(got, saved) {
			t.Fatalf("decoded records differ from the encoded ones")
		}
	})
}

// cuts returns n+1 sorted offsets from 0 to size splitting size bytes into
// n (possibly empty) pieces.
func cuts(rng *rand.Rand, size, n int) []int {
	c := make([]int, n+1)
	for i := 1; i < n; i++ {
		c[i] = rng.IntN(size + 1)
	}
	c[n] = size
	for i := 1; i < n; i++ { // insertion sort: n is small
		for j := i; j > 1 && c[j] < c[j-1]; j-- {
			c[j], c[j-1] = c[j-1], c[j]
		}
	}
	return c
}

// openOpts are the options FuzzOpen opens with: small segments so appends
// rotate, no log output, and no fsyncs.
func openOpts() log.Options {
	return log.Options{Logger: quiet, SegmentSize: 4096, FS: noSyncFS{log.OS}}
}

// noSyncFS is the OS file system with fsync turned into a no-op.
// Durability is not what FuzzOpen tests, and fsyncs on a real disk would
// dominate each iteration (and the fuzzer's minimization of every new
// input, which runs the target thousands of times).
type noSyncFS struct{ log.FS }

func (fsys noSyncFS) OpenFile(name string, flag int, perm fs.FileMode) (log.File, error) {
	f, err := fsys.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return noSyncFile{f}, nil
}

func (noSyncFS) SyncDir(string) error { return nil }

type noSyncFile struct{ log.File }

func (noSyncFile) Sync() error { return nil }

// segmentSeeds builds real segment files with log.Open, Append and Close.
// one is a single segment of several frames (uncompressed and s2); two
// holds the files of a log that rotated from segment 1 to segment 2.
func segmentSeeds(tb testing.TB, dir string) (one, two1, two2 []byte) {
	tb.Helper()
	build := func(sub string, opts log.Options, batches [][]log.Record) string {
		d := filepath.Join(dir, sub)
		opts.Logger = quiet
		l, err := log.Open(d, opts)
		if err != nil {
			tb.Fatal(err)
		}
		for _, b := range batches {
			if _, _, err := l.Append(b); err != nil {
				tb.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			tb.Fatal(err)
		}
		return d
	}
	read := func(d string, base uint64) []byte {
		b, err := os.ReadFile(filepath.Join(d, segName(base)))
		if err != nil {
			tb.Fatal(err)
		}
		return b
	}
	compressing := log.Options{SegmentSize: 4096, CompressMin: 64}

	d := build("one", compressing, [][]log.Record{
		{{Time: 1, Body: []byte("first")}},
		{{Time: 2, Flags: 1, Meta: []byte(`{"a":1}`), Body: []byte("second")}, {Time: 3, Body: nil}},
		{{Time: 4, Body: text(300, 7)}, {Time: 5, Meta: []byte("m"), Body: text(200, 8)}}, // s2
		{{Time: 6, Body: noise(20, 4)}},
	})
	one = read(d, 1)
	codecs := map[log.Codec]int{}
	for off := fileHeaderSize; off < len(one); {
		_, size, err := log.DecodeFrame(one[off:])
		if err != nil {
			tb.Fatalf("seed segment, frame at %d: %v", off, err)
		}
		codecs[log.Codec(one[off+8])]++
		off += size
	}
	if codecs[log.CodecNone] != 3 || codecs[log.CodecS2] != 1 {
		tb.Fatalf("seed segment frames by codec: %v, want 3 none and 1 s2", codecs)
	}

	d = build("two", log.Options{SegmentSize: 256}, [][]log.Record{
		{{Time: 1, Body: noise(150, 5)}}, // fills segment 1
		{{Time: 2, Body: []byte("rotates to segment 2")}},
		{{Time: 3, Body: []byte("three")}, {Time: 4, Meta: []byte("m"), Body: []byte("four")}},
	})
	return one, read(d, 1), read(d, 2)
}

// openSeeds returns FuzzOpen inputs: a real segment, truncated at a few
// offsets, with a flipped bit, with zeros appended, an empty file, a file
// holding only a header, and a real two-segment log.
func openSeeds(tb testing.TB, dir string) []openSeed {
	one, two1, two2 := segmentSeeds(tb, dir)
	seeds := []openSeed{
		{data: one},
		{data: one[:len(one)-5]}, // torn last frame
		{data: one[:fileHeaderSize+frameHeaderSize+3]},            // torn first frame
		{data: one[:fileHeaderSize-4]},                            // torn header
		{data: flip(one, (fileHeaderSize+frameHeaderSize+2)*8+3)}, // first frame's payload
		{data: append(bytes.Clone(one), make([]byte, 64)...)},
		{data: nil},
		{data: one[:fileHeaderSize]},
		{data: append(bytes.Clone(two1), two2...), split: uint32(len(two1)) + 1},
		{data: append(flip(two1, (fileHeaderSize+60)*8), two2...), split: uint32(len(two1)) + 1},
	}
	return seeds
}

type openSeed struct {
	data  []byte
	split uint32
	fix   bool
}

// FuzzOpen turns arbitrary bytes into a log directory: data is the
// segment file 00000000000000000001.seg, or, when split is not zero, is
// cut at (split-1) mod (len(data)+1) into that file and
// 00000000000000000002.seg. With fix set every checksum reachable by
// walking the files is recomputed first, so mutations reach the record
// and id checks behind them.
//
// Properties: neither log.Verify nor log.Open panics, and each fails only
// with ErrUnsupportedVersion, and then both do. Once open, iterating from
// id 1 (resuming after every ErrCorrupt) terminates, yields strictly
// increasing ids, and every record it yields is, byte for byte, one of the
// records log.DecodeFrame finds in the segment file's bytes at the
// record's Position: nothing unverified is served. Read of a yielded id
// returns that record or an error, never another record. Append then gets
// the next id, Read returns the record, Close succeeds, and reopening
// finds no torn tail to cut and nothing to recreate.
func FuzzOpen(f *testing.F) {
	for _, s := range openSeeds(f, f.TempDir()) {
		f.Add(s.data, s.split, s.fix)
	}
	f.Fuzz(func(t *testing.T, data []byte, split uint32, fix bool) {
		if len(data) > maxInput {
			return
		}
		files := [][]byte{data}
		if split != 0 {
			n := int(uint64(split-1) % uint64(len(data)+1))
			files = [][]byte{data[:n], data[n:]}
		}
		if fix {
			for i := range files {
				files[i] = bytes.Clone(files[i])
				fixSegment(files[i])
			}
		}
		dir := t.TempDir()
		for i, b := range files {
			if err := os.WriteFile(filepath.Join(dir, segName(uint64(i+1))), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		checkOpen(t, dir, len(data))
	})
}

func checkOpen(t *testing.T, dir string, inputSize int) {
	_, verr := log.Verify(dir, log.VerifyOptions{})
	if verr != nil && !errors.Is(verr, log.ErrUnsupportedVersion) {
		t.Fatalf("Verify: %v", verr)
	}
	l, err := log.Open(dir, openOpts())
	if err != nil {
		if !errors.Is(err, log.ErrUnsupportedVersion) {
			t.Fatalf("Open: %v", err)
		}
		if verr == nil {
			t.Fatalf("Open refused the directory (%v), Verify did not", err)
		}
		return
	}
	closed := false
	defer func() {
		if !closed {
			l.Close()
		}
	}()
	if verr != nil {
		t.Fatalf("Open accepted the directory, Verify refused it: %v", verr)
	}

	// Every record served must be in the frame at its Position on disk.
	files := map[uint64][]byte{}
	frames := map[log.Position][]log.Record{}
	frameAt := func(pos log.Position) []log.Record {
		if recs, ok := frames[pos]; ok {
			return recs
		}
		b, ok := files[pos.Segment]
		if !ok {
			var err error
			b, err = os.ReadFile(filepath.Join(dir, segName(pos.Segment)))
			if err != nil {
				t.Fatalf("record served from segment %d: %v", pos.Segment, err)
			}
			files[pos.Segment] = b
		}
		if pos.Offset < fileHeaderSize || pos.Offset >= int64(len(b)) {
			t.Fatalf("record served from offset %d of segment %d, a file of %d bytes", pos.Offset, pos.Segment, len(b))
		}
		recs, _, err := log.DecodeFrame(b[pos.Offset:])
		if err != nil {
			t.Fatalf("record served from segment %d offset %d, where no frame decodes: %v", pos.Segment, pos.Offset, err)
		}
		frames[pos] = recs
		return recs
	}

	const maxRecords, maxReads = 1 << 16, 64
	maxErrs := inputSize/frameAlign + 8
	it := l.Iter(1)
	var prev uint64
	records, errs := 0, 0
	for records < maxRecords {
		if !it.Next() {
			err := it.Err()
			if err == nil {
				break
			}
			if !errors.Is(err, log.ErrCorrupt) {
				t.Fatalf("Iterator.Err: %v", err)
			}
			if errs++; errs > maxErrs {
				t.Fatalf("iterator reported more than %d damaged ranges in %d bytes: last %v", maxErrs, inputSize, err)
			}
			continue
		}
		r, pos := it.Record(), it.Position()
		if r.ID <= prev {
			t.Fatalf("iterator yielded id %d after %d", r.ID, prev)
		}
		prev = r.ID
		found := false
		for _, fr := range frameAt(pos) {
			if fr.ID == r.ID {
				if !sameRecord(fr, r) {
					t.Fatalf("record %d served from %+v differs from the frame on disk:\n got %+v\nwant %+v", r.ID, pos, r, fr)
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("record %d served from %+v is not in the frame on disk there", r.ID, pos)
		}
		if records < maxReads {
			r = log.Record{ID: r.ID, Time: r.Time, Flags: r.Flags, Meta: bytes.Clone(r.Meta), Body: bytes.Clone(r.Body)}
			got, err := l.Read(r.ID)
			switch {
			case err == nil && !sameRecord(got, r):
				t.Fatalf("Read(%d) = %+v, the iterator served %+v", r.ID, got, r)
			case err != nil && !errors.Is(err, log.ErrCorrupt) && !errors.Is(err, log.ErrNotFound):
				t.Fatalf("Read(%d): %v", r.ID, err)
			}
		}
		records++
	}

	last := l.LastID()
	rec := log.Record{Time: 1234, Flags: 0x5a, Meta: []byte("fuzz-meta"), Body: []byte("fuzz-body")}
	batch := []log.Record{rec}
	first, pos, err := l.Append(batch)
	if err != nil {
		t.Fatalf("Append after Open (last id %d): %v", last, err)
	}
	if first != last+1 || first == 0 {
		t.Fatalf("Append got id %d, last id was %d", first, last)
	}
	rec.ID = first
	if got, err := l.Read(first); err != nil || !sameRecord(got, rec) {
		t.Fatalf("Read(%d) after Append = %+v, %v; want %+v", first, got, err, rec)
	}
	if got, err := l.NewCursor().ReadAt(first, pos); err != nil || !sameRecord(got, rec) {
		t.Fatalf("ReadAt(%d, %+v) after Append = %+v, %v; want %+v", first, pos, got, err, rec)
	}
	closed = true
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	// Open repaired what it had to; a second Open must find nothing to cut
	// or recreate, and the appended record.
	l2, err := log.Open(dir, openOpts())
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer l2.Close()
	if rec2 := l2.Recovery(); len(rec2.Truncated) != 0 || len(rec2.Recreated) != 0 {
		t.Fatalf("reopen after a clean Close repaired again: %+v", rec2)
	}
	if l2.LastID() != first {
		t.Fatalf("reopen: last id %d, want %d", l2.LastID(), first)
	}
	if got, err := l2.Read(first); err != nil || !sameRecord(got, rec) {
		t.Fatalf("reopen: Read(%d) = %+v, %v; want %+v", first, got, err, rec)
	}
}
