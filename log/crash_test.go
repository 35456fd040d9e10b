//go:build unix

package log

import (
	"bufio"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/spoolq/spool/log/crashtest"
)

// The crash test runs its own test binary as a child that appends to a log
// until the parent kills it with SIGKILL, then checks in the parent that
// every append the child saw acknowledged survived, byte for byte.
const (
	crashEnvDir   = "SPOOL_CRASH_CHILD_DIR"
	crashEnvCycle = "SPOOL_CRASH_CHILD_CYCLE"

	crashCycles   = 25
	crashWriters  = 8
	crashMaxBatch = 5
	crashMinKill  = 20 * time.Millisecond
	crashMaxKill  = 150 * time.Millisecond
	// crashAckWait bounds how long a child may take to acknowledge its
	// first append; it only fails a hung child, it never paces the test.
	crashAckWait = 20 * time.Second
)

func crashOptions() Options {
	return Options{SegmentSize: 64 << 10, Sync: SyncAlways, Logger: quiet}
}

// crashKey names a record the child wrote: the child run (cycle), the
// writer goroutine and that goroutine's record sequence number.
type crashKey struct{ cycle, g, seq int }

func (k crashKey) String() string { return fmt.Sprintf("c%d/g%d/s%d", k.cycle, k.g, k.seq) }

// crashRecord is the record the child appends for k: a pure function of k
// (id aside), so the parent can rebuild it from the key in Meta. Bodies
// mix sizes (a few large enough to span pages and whole segments) and
// compressible and incompressible bytes so frames take both codec paths.
func crashRecord(k crashKey) Record {
	rng := rand.New(rand.NewPCG(uint64(k.cycle)<<32|uint64(k.g), uint64(k.seq)))
	n := rng.IntN(1000)
	if rng.IntN(100) == 0 {
		n = 4<<10 + rng.IntN(60<<10)
	}
	body := make([]byte, n)
	if rng.IntN(2) == 0 {
		for i := range body {
			body[i] = byte(rng.Uint32())
		}
	} else {
		pat := fmt.Sprintf("%s body of %d bytes; ", k, n)
		for i := range body {
			body[i] = pat[i%len(pat)]
		}
	}
	return Record{
		Time:  rng.Int64N(1<<62) - 1<<61,
		Flags: uint8(rng.Uint32()),
		Meta:  []byte(fmt.Sprintf("%d %d %d", k.cycle, k.g, k.seq)),
		Body:  body,
	}
}

// crashPrint is a fingerprint of a record the parent checked once in full,
// to check later that it has not changed without rebuilding it.
type crashPrint struct {
	time             int64
	flags            uint8
	metaLen, bodyLen int
	metaCRC, bodyCRC uint32
}

func crashPrintOf(r Record) crashPrint {
	return crashPrint{
		time: r.Time, flags: r.Flags,
		metaLen: len(r.Meta), metaCRC: crc32.Checksum(r.Meta, castagnoli),
		bodyLen: len(r.Body), bodyCRC: crc32.Checksum(r.Body, castagnoli),
	}
}

func parseCrashMeta(meta []byte) (crashKey, bool) {
	var k crashKey
	n, err := fmt.Sscanf(string(meta), "%d %d %d", &k.cycle, &k.g, &k.seq)
	return k, err == nil && n == 3 && string(meta) == fmt.Sprintf("%d %d %d", k.cycle, k.g, k.seq)
}

// TestCrashChild is the child side of TestCrashSIGKILL; it does nothing
// unless started by it. It appends from several goroutines until killed
// and prints "<id> <cycle> <goroutine> <seq>" for every record only after
// the Append holding it returned, flushing before that goroutine's next
// Append. Every printed line is therefore an acknowledged, fsynced record.
func TestCrashChild(t *testing.T) {
	dir := crashtest.Child(t, crashEnvDir)
	cycle, err := strconv.Atoi(os.Getenv(crashEnvCycle))
	if err != nil {
		crashtest.Die("bad %s: %v", crashEnvCycle, err)
	}
	l, err := Open(dir, crashOptions())
	if err != nil {
		crashtest.Die("Open: %v", err)
	}
	var mu sync.Mutex
	out := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(cycle), uint64(g)))
			for seq := 0; ; {
				batch := make([]Record, 1+rng.IntN(crashMaxBatch))
				for i := range batch {
					batch[i] = crashRecord(crashKey{cycle, g, seq + i})
				}
				first, _, err := l.Append(batch)
				if err != nil {
					crashtest.Die("Append: %v", err)
				}
				mu.Lock()
				for i := range batch {
					if batch[i].ID != first+uint64(i) {
						crashtest.Die("record %d of a batch got id %d, want %d", i, batch[i].ID, first+uint64(i))
					}
					fmt.Fprintf(out, "%d %d %d %d\n", batch[i].ID, cycle, g, seq+i)
				}
				err = out.Flush()
				mu.Unlock()
				if err != nil {
					crashtest.Die("stdout: %v", err)
				}
				seq += len(batch)
			}
		})
	}
	wg.Wait()
}

// crashAck is one acknowledged record as the child reported it.
type crashAck struct {
	id  uint64
	key crashKey
}

// parseCrashAcks parses a child's complete stdout lines; junk are the
// lines that do not parse, which fail the test.
func parseCrashAcks(lines []string) (acks []crashAck, junk []string) {
	for _, line := range lines {
		var a crashAck
		if n, err := fmt.Sscanln(line, &a.id, &a.key.cycle, &a.key.g, &a.key.seq); err != nil || n != 4 {
			junk = append(junk, line)
		} else {
			acks = append(acks, a)
		}
	}
	return acks, junk
}

// TestCrashSIGKILL kills a real appending process with SIGKILL over and
// over on one log directory and checks after every kill that:
//   - every id the child saw acknowledged is readable with exactly the
//     bytes it appended, by Iter and by Cursor;
//   - Open found at most torn tails (or a torn rotation), never corruption,
//     and Verify after Close finds nothing at all;
//   - ids run from 1 to LastID without a hole, every record in the log is
//     one some child appended (and only once), and what an earlier check
//     saw is still there unchanged;
//   - each child continues after the ids already in the log.
func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test kills child processes; skipped in -short mode")
	}
	start := time.Now()
	dir := t.TempDir()

	var (
		seen     []crashPrint // seen[id-1]: the record id holds, as of the last check
		keys     []crashKey   // keys[id-1]: which child record that is
		where    = map[crashKey]uint64{}
		acked    = map[uint64]crashKey{}
		partials int
		torn     int
		recreate int
		unacked  int // records found in the log that no ack line claimed
	)
	for cycle := 1; cycle <= crashCycles; cycle++ {
		// Run a child until a random moment after its first ack, then kill it.
		env := []string{crashEnvDir + "=" + dir, crashEnvCycle + "=" + strconv.Itoa(cycle)}
		lines, cut, stderr := crashtest.Kill(t, "TestCrashChild", env, crashAckWait, crashMinKill, crashMaxKill)
		acks, junk := parseCrashAcks(lines)
		if len(junk) > 0 {
			t.Fatalf("cycle %d: child stdout: unparsable lines %q\nstderr:\n%s", cycle, junk, stderr)
		}
		// A line without its newline was cut off by the kill: the record
		// may well be in the log, but nothing claims it.
		if cut {
			partials++
		}

		// The child must have continued after everything already in the log.
		for _, a := range acks {
			if a.key.cycle != cycle {
				t.Fatalf("cycle %d: ack of id %d names cycle %d", cycle, a.id, a.key.cycle)
			}
			if a.id <= uint64(len(seen)) {
				t.Fatalf("cycle %d: child acknowledged id %d (%s), but the log already held ids up to %d before it started", cycle, a.id, a.key, len(seen))
			}
			if prev, dup := acked[a.id]; dup {
				t.Fatalf("cycle %d: id %d acknowledged twice: %s and %s", cycle, a.id, prev, a.key)
			}
			acked[a.id] = a.key
		}

		// Recover and check everything.
		l, err := Open(dir, crashOptions())
		if err != nil {
			t.Fatalf("cycle %d: Open after kill: %v", cycle, err)
		}
		rec := l.Recovery()
		if len(rec.Corrupt) > 0 || len(rec.TempsFound) > 0 {
			l.Close()
			t.Fatalf("cycle %d: Open after SIGKILL found more than torn tails: %+v", cycle, rec)
		}
		torn += len(rec.Truncated)
		recreate += len(rec.Recreated)
		last := l.LastID()
		if last < uint64(len(seen)) {
			l.Close()
			t.Fatalf("cycle %d: LastID went back from %d to %d", cycle, len(seen), last)
		}

		// Walk the whole log. Records new since the last check are compared
		// byte for byte with what their child appended; older ones must
		// still match the fingerprint taken then.
		known := len(seen)
		it := l.Iter(1)
		for next := uint64(1); it.Next(); next++ {
			r := it.Record()
			if r.ID != next {
				l.Close()
				t.Fatalf("cycle %d: iterator yielded id %d after %d: ids must have no holes", cycle, r.ID, next-1)
			}
			if r.ID <= uint64(known) {
				if p := crashPrintOf(r); p != seen[r.ID-1] {
					l.Close()
					t.Fatalf("cycle %d: id %d held %+v at the last check and now holds %+v", cycle, r.ID, seen[r.ID-1], p)
				}
				continue
			}
			k, ok := parseCrashMeta(r.Meta)
			if !ok {
				l.Close()
				t.Fatalf("cycle %d: id %d has meta %q, which no child wrote", cycle, r.ID, r.Meta)
			}
			want := crashRecord(k)
			want.ID = r.ID
			if !sameRecord(r, want) {
				l.Close()
				t.Fatalf("cycle %d: id %d (%s) does not hold the bytes its child appended", cycle, r.ID, k)
			}
			if other, dup := where[k]; dup {
				l.Close()
				t.Fatalf("cycle %d: %s appended once but found at ids %d and %d", cycle, k, other, r.ID)
			}
			where[k] = r.ID
			seen = append(seen, crashPrintOf(r))
			keys = append(keys, k)
			if _, ok := acked[r.ID]; !ok {
				unacked++
			}
		}
		if err := it.Err(); err != nil {
			l.Close()
			t.Fatalf("cycle %d: Iter: %v", cycle, err)
		}
		if uint64(len(seen)) != last {
			l.Close()
			t.Fatalf("cycle %d: iterator yielded ids 1..%d, but LastID is %d", cycle, len(seen), last)
		}
		// Every acknowledged id, of this child and every earlier one.
		for id, k := range acked {
			if id > last {
				l.Close()
				t.Fatalf("cycle %d: acknowledged id %d (%s) is gone: LastID is %d", cycle, id, k, last)
			}
			if keys[id-1] != k {
				l.Close()
				t.Fatalf("cycle %d: acknowledged id %d should hold %s, holds %s", cycle, id, k, keys[id-1])
			}
		}
		// This child's acks once more by random access, in id order.
		slices.SortFunc(acks, func(a, b crashAck) int { return cmpUint(a.id, b.id) })
		c := l.NewCursor()
		for _, a := range acks {
			r, err := c.Read(a.id)
			if err != nil || r.ID != a.id || crashPrintOf(r) != seen[a.id-1] {
				l.Close()
				t.Fatalf("cycle %d: Cursor.Read(%d) = id %d meta %q, %v; want %s", cycle, a.id, r.ID, r.Meta, err, a.key)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatalf("cycle %d: Close: %v", cycle, err)
		}

		rep, err := Verify(dir, VerifyOptions{})
		if err != nil {
			t.Fatalf("cycle %d: Verify: %v", cycle, err)
		}
		if !rep.OK() {
			t.Fatalf("cycle %d: Verify after recovery found problems: %v", cycle, rep.Problems)
		}
		next := uint64(1)
		for _, s := range rep.Segments {
			if s.Base != next || s.LastID < s.Base-1 || uint64(s.Records) != s.LastID-s.Base+1 {
				t.Fatalf("cycle %d: segment %s holds %d records ending at id %d; want ids from %d without gaps", cycle, s.Path, s.Records, s.LastID, next)
			}
			next = s.LastID + 1
		}
		if next-1 != last {
			t.Fatalf("cycle %d: Verify's segments end at id %d, LastID was %d", cycle, next-1, last)
		}
		if cycle == crashCycles && len(rep.Segments) < 2 {
			t.Fatalf("no rotation in %d cycles: %d segment(s)", crashCycles, len(rep.Segments))
		}
	}
	t.Logf("%d cycles in %s: %d records acknowledged, %d in the log (%d written but never acknowledged), %d torn tails repaired, %d torn rotations recreated, %d ack lines cut by the kill",
		crashCycles, time.Since(start).Round(time.Millisecond), len(acked), len(seen), unacked, torn, recreate, partials)
}
