package log

// Benchmarks for the log's write and read paths.
//
// Every benchmark writes under b.TempDir(), which is removed after each
// run. Disk needed: BenchmarkAppend is the largest. It keeps at most
// benchMaxSegments+1 segments of 16 MiB (about 150 MiB) because it removes
// sealed segments as it goes. BenchmarkSequentialRead and
// BenchmarkCursorRead share one pre-filled log of about 21 MiB. The
// others write a few MiB at most. So 200 MiB of free space is enough.
//
// Typical use:
//
//	go test -run '^$' -bench . -benchtime=1x ./log/   # smoke test, a few seconds
//	go test -run '^$' -bench . -benchtime=2s ./log/   # figures, a few minutes

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	benchBodySize = 100
	// benchMaxSegments is how many segments BenchmarkAppend lets pile up
	// before it removes the sealed ones (outside the timer).
	benchMaxSegments = 8
	// benchReadRecords is the size of the log the read benchmarks walk.
	benchReadRecords = 200_000
	benchReadFrame   = 256
)

// benchRandom is 1 MiB of random bytes. Bodies are 100-byte slices of it
// at different offsets, so the records of one frame never repeat each other
// and the s2 attempt on frames of 4 KiB and more finds nothing to gain, as
// with real encrypted or already-compressed payloads.
var benchRandom = sync.OnceValue(func() []byte {
	buf := make([]byte, 1<<20)
	rand.NewChaCha8([32]byte{'s', 'p', 'o', 'o', 'l'}).Read(buf)
	return buf
})

// benchBody returns the k-th distinct 100-byte random body (it repeats
// only every ~10k bodies).
func benchBody(k int) []byte {
	buf := benchRandom()
	slots := len(buf) / benchBodySize
	off := (k % slots) * benchBodySize
	return buf[off : off+benchBodySize : off+benchBodySize]
}

// benchBatch returns n records with distinct random bodies.
func benchBatch(n int) []Record {
	recs := make([]Record, n)
	now := time.Now().UnixNano()
	for i := range recs {
		recs[i] = Record{Time: now + int64(i), Flags: 1, Body: benchBody(i)}
	}
	return recs
}

func reportRate(b *testing.B, n int, unit string) {
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(n)/s, unit)
	}
}

// pruneSegments removes every sealed segment once more than limit exist, so
// a long SyncNone run does not fill the disk. It stops the timer only when
// there is something to remove.
func pruneSegments(b *testing.B, l *Log, limit int) {
	segs := l.Segments()
	if len(segs) <= limit {
		return
	}
	b.StopTimer()
	for _, s := range segs {
		if s.Sealed {
			if err := l.Remove(s.Base); err != nil {
				b.Fatalf("Remove(%d): %v", s.Base, err)
			}
		}
	}
	b.StartTimer()
}

// BenchmarkFsyncProbe measures the raw disk: each op appends 100 bytes to a
// file with pwrite and fsyncs it (os.File.Sync, the call the log makes).
// It is the baseline for every SyncAlways figure: one commit round can not
// be faster than one of these, so fsyncs/s here bounds the rounds per
// second of BenchmarkGroupCommit and of BenchmarkAppend/…/sync=always.
func BenchmarkFsyncProbe(b *testing.B) {
	f, err := os.OpenFile(filepath.Join(b.TempDir(), "probe"), os.O_CREATE|os.O_RDWR|os.O_TRUNC, 0o644)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := benchBody(0)
	b.SetBytes(int64(len(buf)))
	b.ResetTimer()
	var off int64
	for i := 0; i < b.N; i++ {
		if _, err := f.WriteAt(buf, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(buf))
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportRate(b, b.N, "fsyncs/s")
}

// BenchmarkAppend measures one appender writing 100-byte incompressible
// records in frames of 1, 16 and 256 records per Append call, under
// SyncAlways (one fsync per call: the cost is the disk) and SyncNone (no
// fsync but at rotation: the cost is encoding, checksumming, the s2
// attempt, the copy into the page cache and the hand-off to the committer
// goroutine). An op is one record, so ns/op and records/s are per record
// and MB/s counts body bytes. Segments are the default 16 MiB, so SyncNone
// runs rotate (and pay the fsync of each sealed segment) as real logs do.
func BenchmarkAppend(b *testing.B) {
	for _, frame := range []int{1, 16, 256} {
		for _, policy := range []SyncPolicy{SyncAlways, SyncNone} {
			b.Run(fmt.Sprintf("frame=%d/sync=%s", frame, policy), func(b *testing.B) {
				benchAppend(b, frame, policy)
			})
		}
	}
}

func benchAppend(b *testing.B, frame int, policy SyncPolicy) {
	l := mustOpen(b, b.TempDir(), Options{Sync: policy, SegmentSize: DefaultSegmentSize})
	batch := benchBatch(frame)
	// Look at the segment count about once per segment written.
	checkEvery := int(DefaultSegmentSize / benchBodySize)
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	b.ResetTimer()
	for done, sinceCheck := 0, 0; done < b.N; {
		n := min(frame, b.N-done)
		if _, _, err := l.Append(batch[:n]); err != nil {
			b.Fatal(err)
		}
		done += n
		if sinceCheck += n; sinceCheck >= checkEvery {
			sinceCheck = 0
			pruneSegments(b, l, benchMaxSegments)
		}
	}
	b.StopTimer()
	reportRate(b, b.N, "records/s")
}

// BenchmarkGroupCommit measures SyncAlways group commit: exactly N
// goroutines (1, 16, 64, 256) each append single 100-byte records, b.N
// appends in all. Each Append waits for its fsync, so the throughput comes
// only from the committer putting every request that is waiting into one
// write and one fsync. records/fsync (from Stats over the timed part) is
// how well that works: ideally close to N; records/s ≈ records/fsync ×
// fsyncs/s, and fsyncs/s can be compared with BenchmarkFsyncProbe.
func BenchmarkGroupCommit(b *testing.B) {
	for _, n := range []int{1, 16, 64, 256} {
		b.Run(fmt.Sprintf("appenders=%d", n), func(b *testing.B) {
			benchGroupCommit(b, n)
		})
	}
}

func benchGroupCommit(b *testing.B, appenders int) {
	l := mustOpen(b, b.TempDir(), Options{Sync: SyncAlways})
	var (
		next  atomic.Int64 // tickets: each is one append
		start = make(chan struct{})
		wg    sync.WaitGroup
		errs  = make(chan error, appenders)
	)
	now := time.Now().UnixNano()
	for range appenders {
		wg.Go(func() {
			rec := make([]Record, 1)
			<-start
			for {
				k := next.Add(1)
				if k > int64(b.N) {
					return
				}
				// A distinct body per append: the records a round
				// gathers share a frame and must not compress.
				rec[0] = Record{Time: now + k, Body: benchBody(int(k))}
				if _, _, err := l.Append(rec); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	b.SetBytes(benchBodySize)
	b.ReportAllocs()
	b.ResetTimer()
	s0 := l.Stats()
	close(start)
	wg.Wait()
	s1 := l.Stats()
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	records, fsyncs := s1.Records-s0.Records, s1.Fsyncs-s0.Fsyncs
	reportRate(b, b.N, "records/s")
	reportRate(b, int(fsyncs), "fsyncs/s")
	if fsyncs > 0 {
		b.ReportMetric(float64(records)/float64(fsyncs), "records/fsync")
		b.ReportMetric(float64((s1.SyncTime-s0.SyncTime).Microseconds())/float64(fsyncs), "us/fsync")
	}
}

// benchReadLog is the log the read benchmarks share: benchReadRecords
// records of 100 random bytes appended with SyncNone in frames of
// benchReadFrame, and the Position of every frame (frames[i] holds ids
// i*benchReadFrame+1 and on). It is built once per parent benchmark,
// outside any timer.
type benchReadLog struct {
	l      *Log
	frames []Position
}

func newBenchReadLog(b *testing.B) benchReadLog {
	l := mustOpen(b, b.TempDir(), Options{Sync: SyncNone})
	batch := benchBatch(benchReadFrame)
	var frames []Position
	for done := 0; done < benchReadRecords; done += benchReadFrame {
		for i := range batch {
			batch[i].Body = benchBody(done + i)
		}
		_, pos, err := l.Append(batch)
		if err != nil {
			b.Fatal(err)
		}
		frames = append(frames, pos)
	}
	return benchReadLog{l: l, frames: frames}
}

// BenchmarkSequentialRead measures an Iterator walking the whole log from
// id 1, the path of a consumer catching up or of a replay at startup: one
// header pread and one payload pread per 256-record frame (from the page
// cache: the log was just written), the frame CRC and record decoding. An
// op is one record (the iterator restarts at the end), so ns/op and
// records/s are per record and MB/s counts body bytes.
func BenchmarkSequentialRead(b *testing.B) {
	rl := newBenchReadLog(b)
	b.Run(fmt.Sprintf("frame=%d", benchReadFrame), func(b *testing.B) {
		b.SetBytes(benchBodySize)
		b.ReportAllocs()
		b.ResetTimer()
		it := rl.l.Iter(1)
		var sum int
		for i := 0; i < b.N; {
			if !it.Next() {
				if err := it.Err(); err != nil {
					b.Fatal(err)
				}
				it = rl.l.Iter(1)
				continue
			}
			sum += len(it.Record().Body)
			i++
		}
		b.StopTimer()
		if sum != b.N*benchBodySize {
			b.Fatalf("read %d body bytes, want %d", sum, b.N*benchBodySize)
		}
		reportRate(b, b.N, "records/s")
	})
}

// BenchmarkCursorRead measures point reads of random ids (as when a job is
// fetched by id), with the Position that Append returned as a hint
// (hint=position: one frame load) and without one (hint=none: Cursor.Read
// walks the frame headers from the start of the record's segment, one
// pread each). Random ids almost never fall in the frame the cursor has
// cached, so every op loads and verifies a whole 256-record frame. An op
// is one record read.
func BenchmarkCursorRead(b *testing.B) {
	rl := newBenchReadLog(b)
	ids := make([]uint64, 1<<16)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range ids {
		ids[i] = 1 + rng.Uint64N(benchReadRecords)
	}
	for _, hint := range []bool{true, false} {
		name := "hint=none"
		if hint {
			name = "hint=position"
		}
		b.Run(name, func(b *testing.B) {
			c := rl.l.NewCursor()
			b.SetBytes(benchBodySize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				id := ids[i&(len(ids)-1)]
				var (
					r   Record
					err error
				)
				if hint {
					r, err = c.ReadAt(id, rl.frames[(id-1)/benchReadFrame])
				} else {
					r, err = c.Read(id)
				}
				if err != nil || r.ID != id {
					b.Fatalf("read id %d: got id %d, %v", id, r.ID, err)
				}
			}
			b.StopTimer()
			reportRate(b, b.N, "records/s")
		})
	}
}
