package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/spoolq/spool/log"
)

// osFiles is what the queue passes the state log, over the real file system.
var osFiles = log.PathOps{FS: log.OS}

// testEvents is entry i's events: pad extra acks make entries of
// different sizes.
func testEvents(i uint64, pad int) []Event {
	evs := []Event{
		{Type: EvLease, ID: i, Attempt: uint16(i%100 + 1), Time: -int64(i)},
		{Type: EvNack, ID: i, Front: i%2 == 0, Time: int64(i) << 20, After: i * 3},
	}
	for k := range pad {
		evs = append(evs, Event{Type: EvAck, ID: i<<8 + uint64(k) + 1})
	}
	return evs
}

func openStateLog(t *testing.T, dir string) (*StateLog, *StateLogRepair) {
	t.Helper()
	s, repair, err := OpenStateLog(dir, osFiles)
	if err != nil {
		t.Fatalf("OpenStateLog: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s, repair
}

func appendEntries(t *testing.T, s *StateLog, from, to uint64, pad func(i uint64) int) {
	t.Helper()
	for i := from; i <= to; i++ {
		index, err := s.Append(EncodeEntry(nil, testEvents(i, pad(i))))
		if err != nil {
			t.Fatalf("Append %d: %v", i, err)
		}
		if index != i {
			t.Fatalf("Append returned index %d, want %d", index, i)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
}

func noPad(uint64) int { return 0 }

type replayed struct {
	indexes []uint64
	damaged []error
}

// replay replays after index after, checking each entry's events against
// testEvents, and returns the indexes seen and the damage reported.
func replay(t *testing.T, s *StateLog, after uint64, pad func(i uint64) int) replayed {
	t.Helper()
	var r replayed
	damaged, err := s.Replay(after, func(index uint64, events []Event) error {
		if want := testEvents(index, pad(index)); !reflect.DeepEqual(events, want) {
			return fmt.Errorf("entry %d: events %+v, want %+v", index, events, want)
		}
		r.indexes = append(r.indexes, index)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", after, err)
	}
	r.damaged = damaged
	return r
}

func span(from, to uint64) []uint64 {
	var s []uint64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

// segments returns the state log's segment files, oldest first.
func segments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, strings.Repeat("[0-9]", 20)))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

// entryOffsets walks a segment file's tidwall framing (uvarint length,
// data) and returns where each entry's length prefix and data start.
func entryOffsets(t *testing.T, data []byte) (prefix, start []int) {
	t.Helper()
	for off := 0; off < len(data); {
		size, n := binary.Uvarint(data[off:])
		if n <= 0 || int(size) > len(data)-off-n {
			t.Fatalf("segment does not parse at %d", off)
		}
		prefix, start = append(prefix, off), append(start, off+n)
		off += n + int(size)
	}
	return prefix, start
}

func TestStateLogReplaysEntriesInOrderAfterReopen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	s, repair := openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("repair of a new log: %+v", repair)
	}
	if r := replay(t, s, 0, noPad); len(r.indexes) != 0 || len(r.damaged) != 0 {
		t.Fatalf("replay of a new log: %+v", r)
	}
	if s.LastIndex() != 0 {
		t.Fatalf("LastIndex of a new log = %d", s.LastIndex())
	}
	appendEntries(t, s, 1, 100, noPad)
	if r := replay(t, s, 0, noPad); !slices.Equal(r.indexes, span(1, 100)) {
		t.Fatalf("replay before reopening: %v", r.indexes)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, repair = openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("repair of a clean log: %+v", repair)
	}
	if s.LastIndex() != 100 {
		t.Fatalf("LastIndex = %d", s.LastIndex())
	}
	tests := []struct {
		after uint64
		want  []uint64
	}{
		{0, span(1, 100)},
		{1, span(2, 100)},
		{57, span(58, 100)},
		{99, []uint64{100}},
		{100, nil},
		{1000, nil},
	}
	for _, tt := range tests {
		r := replay(t, s, tt.after, noPad)
		if !slices.Equal(r.indexes, tt.want) || len(r.damaged) != 0 {
			t.Fatalf("Replay(%d): indexes %v damaged %v", tt.after, r.indexes, r.damaged)
		}
	}
	appendEntries(t, s, 101, 110, noPad)
	if r := replay(t, s, 95, noPad); !slices.Equal(r.indexes, span(96, 110)) {
		t.Fatalf("replay after appending to a reopened log: %v", r.indexes)
	}
}

func TestStateLogReplayStopsAtTheCallbacksError(t *testing.T) {
	s, _ := openStateLog(t, t.TempDir())
	appendEntries(t, s, 1, 10, noPad)
	stop := errors.New("stop")
	var seen []uint64
	_, err := s.Replay(0, func(index uint64, _ []Event) error {
		seen = append(seen, index)
		if index == 4 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || !slices.Equal(seen, span(1, 4)) {
		t.Fatalf("Replay = %v after %v; want stop after 1..4", err, seen)
	}
}

func TestStateLogCutsATornTailOnOpen(t *testing.T) {
	big := func(i uint64) int { // entry 10 has a 2-byte length prefix
		if i == 10 {
			return 100
		}
		return 0
	}
	tests := []struct {
		name string
		// tear damages the newest segment file holding entries 1..10 and
		// returns the entries that must survive.
		tear func(t *testing.T, path string, data []byte) (keep uint64)
		// zeros: what tear left is preallocated space, cut without a
		// repair report.
		zeros bool
	}{
		{"garbage appended", func(t *testing.T, path string, data []byte) uint64 {
			writeFile(t, path, append(data, 0x09, 0xde, 0xad))
			return 10
		}, false},
		{"zeros appended (preallocated space)", func(t *testing.T, path string, data []byte) uint64 {
			writeFile(t, path, append(data, make([]byte, 64<<10)...))
			return 10
		}, true},
		{"an entry torn in preallocated space", func(t *testing.T, path string, data []byte) uint64 {
			e := binary.AppendUvarint(nil, 40)
			e = append(e, EncodeEntry(nil, testEvents(11, 40))[:20]...)
			writeFile(t, path, append(append(data, e...), make([]byte, 4096)...))
			return 10
		}, false},
		{"a whole entry with a bad crc appended", func(t *testing.T, path string, data []byte) uint64 {
			e := EncodeEntry(nil, testEvents(11, 0))
			e[len(e)-1] ^= 0x40
			writeFile(t, path, append(binary.AppendUvarint(data, uint64(len(e))), e...))
			return 10
		}, false},
		{"newest entry cut mid-entry", func(t *testing.T, path string, data []byte) uint64 {
			writeFile(t, path, data[:len(data)-3])
			return 9
		}, false},
		{"newest entry cut to its length prefix", func(t *testing.T, path string, data []byte) uint64 {
			prefix, start := entryOffsets(t, data)
			writeFile(t, path, data[:start[9]])
			_ = prefix
			return 9
		}, false},
		{"newest entry cut inside its length prefix", func(t *testing.T, path string, data []byte) uint64 {
			prefix, start := entryOffsets(t, data)
			if start[9]-prefix[9] != 2 {
				t.Fatalf("entry 10 has a %d-byte length prefix", start[9]-prefix[9])
			}
			writeFile(t, path, data[:prefix[9]+1])
			return 9
		}, false},
		{"a damaged entry in the newest segment cuts it and everything after it", func(t *testing.T, path string, data []byte) uint64 {
			_, start := entryOffsets(t, data)
			data[start[6]+2] ^= 1 // entry 7
			writeFile(t, path, data)
			return 6
		}, false},
		{"everything cut", func(t *testing.T, path string, data []byte) uint64 {
			writeFile(t, path, []byte{0xff})
			return 0
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := openStateLog(t, dir)
			appendEntries(t, s, 1, 10, big)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			segs := segments(t, dir)
			path := segs[len(segs)-1]
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			prefix, _ := entryOffsets(t, data)
			keep := tt.tear(t, path, data)
			torn, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			wantOffset := int64(len(data))
			if keep < 10 {
				wantOffset = int64(prefix[keep])
			}

			s, repair := openStateLog(t, dir)
			switch {
			case tt.zeros && repair != nil:
				t.Fatalf("preallocated zeros reported as a repair: %+v", repair)
			case tt.zeros:
			case repair == nil:
				t.Fatal("no repair reported")
			case repair.Path != path || repair.Offset != wantOffset || repair.Truncated != int64(len(torn))-wantOffset:
				t.Fatalf("repair %+v, want path %s offset %d truncated %d", repair, path, wantOffset, int64(len(torn))-wantOffset)
			}
			if st, err := os.Stat(path); err != nil || st.Size() != wantOffset {
				t.Fatalf("segment after repair: %v, %v bytes; want %d", err, st.Size(), wantOffset)
			}
			if s.LastIndex() != keep {
				t.Fatalf("LastIndex = %d, want %d", s.LastIndex(), keep)
			}
			if r := replay(t, s, 0, big); !slices.Equal(r.indexes, span(1, keep)) || len(r.damaged) != 0 {
				t.Fatalf("replay after repair: %v damaged %v", r.indexes, r.damaged)
			}
			appendEntries(t, s, keep+1, 12, big)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s, repair = openStateLog(t, dir)
			if repair != nil {
				t.Fatalf("second reopen repaired again: %+v", repair)
			}
			if r := replay(t, s, 0, big); !slices.Equal(r.indexes, span(1, 12)) || len(r.damaged) != 0 {
				t.Fatalf("replay after appending to the repaired log: %v damaged %v", r.indexes, r.damaged)
			}
		})
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// pad160 makes entries of about 100 to 300 bytes.
func pad160(i uint64) int { return int(i*7919%80) + 40 }

// fillSegments appends entries 1..n of about 100..300 bytes, enough to
// cross several tidwall segments, checking after each append that the
// log's mirror of the newest segment (checkTail), which decides the
// directory fsync, follows tidwall.
func fillSegments(t *testing.T, s *StateLog, dir string, bytes int) uint64 {
	t.Helper()
	total := 0
	files := len(segments(t, dir))
	var i uint64
	for i = 1; total < bytes; i++ {
		e := EncodeEntry(nil, testEvents(i, pad160(i)))
		index, err := s.Append(e)
		if err != nil || index != i {
			t.Fatalf("Append %d: %d, %v", i, index, err)
		}
		total += len(e)
		checkTail(t, s, dir, i)
		segs := segments(t, dir)
		if len(segs) != files && !s.dirDirty {
			t.Fatalf("entry %d started segment %s but no directory fsync is pending", i, segs[len(segs)-1])
		}
		files = len(segs)
		if i%1000 == 0 {
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if s.dirDirty {
		t.Fatal("directory fsync still pending after Sync")
	}
	return i - 1
}

func TestStateLogEntriesAcrossManySegmentsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	n := fillSegments(t, s, dir, 1<<20)
	if segs := segments(t, dir); len(segs) < 4 {
		t.Fatalf("%d segment files for 1 MiB of entries, want at least 4", len(segs))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, repair := openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("repair of a clean log: %+v", repair)
	}
	if s.LastIndex() != n {
		t.Fatalf("LastIndex = %d, want %d", s.LastIndex(), n)
	}
	if r := replay(t, s, 0, pad160); !slices.Equal(r.indexes, span(1, n)) || len(r.damaged) != 0 {
		t.Fatalf("replay: %d entries (want %d), damaged %v", len(r.indexes), n, r.damaged)
	}
	if r := replay(t, s, n/2, pad160); !slices.Equal(r.indexes, span(n/2+1, n)) {
		t.Fatalf("replay from the middle: %d entries", len(r.indexes))
	}
}

func TestStateLogReportsAndSkipsADamagedEntryInASealedSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	n := fillSegments(t, s, dir, 600<<10)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	segs := segments(t, dir)
	if len(segs) < 2 {
		t.Fatalf("%d segments", len(segs))
	}
	// Damage an entry in the middle of the first (sealed) segment, in its
	// data, not its tidwall length prefix.
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	_, start := entryOffsets(t, data)
	bad := uint64(len(start) / 2)
	data[start[bad-1]+6] ^= 0x10
	writeFile(t, segs[0], data)

	s, repair := openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("damage in a sealed segment repaired as a torn tail: %+v", repair)
	}
	r := replay(t, s, 0, pad160)
	want := slices.DeleteFunc(span(1, n), func(i uint64) bool { return i == bad })
	if !slices.Equal(r.indexes, want) {
		t.Fatalf("replay gave %d entries, want all %d but %d", len(r.indexes), n, bad)
	}
	if len(r.damaged) != 1 || !errors.Is(r.damaged[0], ErrCorrupt) || !strings.Contains(r.damaged[0].Error(), fmt.Sprintf("entry %d:", bad)) {
		t.Fatalf("damaged = %v, want entry %d with ErrCorrupt", r.damaged, bad)
	}
	// Replay after the damaged entry does not report it.
	if r := replay(t, s, bad, pad160); len(r.damaged) != 0 || len(r.indexes) != int(n-bad) {
		t.Fatalf("replay after the damage: %d entries, damaged %v", len(r.indexes), r.damaged)
	}
	// VerifyStateLog's read-only replay (spool check's) applies what
	// Replay applies: every entry but the damaged one.
	var visited []uint64
	rep, err := VerifyStateLog(dir, func(i uint64, _ []Event) { visited = append(visited, i) })
	if err != nil || len(rep.Problems) != 1 || rep.Problems[0].TornTail {
		t.Fatalf("verify: %+v, %v; want one problem, not a torn tail", rep, err)
	}
	if !slices.Equal(visited, want) {
		t.Fatalf("verify visited %d entries, replay applied %d (want all %d but %d)", len(visited), len(want), n, bad)
	}
}

// tidwall/wal reads a sealed segment by its length prefixes alone: one
// flipped bit there can make the segment parse into fewer entries than its
// successor's name implies, and tidwall's Read then indexes past its
// entries and panics, so a queue cannot open. Replay should report the
// damage (or fail) instead.
func TestStateLogReplayDoesNotPanicOnADamagedLengthInASealedSegment(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	// Entries of 15 bytes (lease of a small id with a 7-byte deadline), so
	// with their 1-byte prefix each takes 16 bytes: setting bit 4 of a
	// prefix (15 -> 31) makes it swallow the next entry exactly.
	var n uint64
	for n = 1; len(segments(t, dir)) < 2; n++ {
		e := EncodeEntry(nil, []Event{{Type: EvLease, ID: 1, Attempt: 1, Time: 1 << 45}})
		if len(e) != 15 {
			t.Fatalf("entry of %d bytes", len(e))
		}
		if _, err := s.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/32*16] ^= 0x10 // a prefix in the middle
	writeFile(t, seg, data)

	s, _ = openStateLog(t, dir)
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("Replay panicked: %v", p)
		}
	}()
	damaged, err := s.Replay(0, func(uint64, []Event) error { return nil })
	if err == nil && len(damaged) == 0 {
		t.Fatal("damage neither reported nor failed")
	}
}

func TestStateLogTruncateFrontDropsEarlierEntries(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	appendEntries(t, s, 1, 20, noPad)
	steps := []struct {
		truncate uint64
		after    uint64
		want     []uint64
	}{
		{11, 0, span(11, 20)},
		{11, 14, span(15, 20)},
		{5, 0, span(11, 20)},  // before the first entry: nothing to do
		{11, 0, span(11, 20)}, // at the first entry: nothing to do
		{20, 0, []uint64{20}},
		{21, 0, nil}, // everything
	}
	for _, st := range steps {
		if err := s.TruncateFront(st.truncate); err != nil {
			t.Fatalf("TruncateFront(%d): %v", st.truncate, err)
		}
		if r := replay(t, s, st.after, noPad); !slices.Equal(r.indexes, st.want) {
			t.Fatalf("TruncateFront(%d) then Replay(%d) = %v, want %v", st.truncate, st.after, r.indexes, st.want)
		}
	}
	if err := s.TruncateFront(30); err == nil {
		t.Fatal("TruncateFront past the end: no error")
	}
	appendEntries(t, s, 21, 25, noPad)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, repair := openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("repair: %+v", repair)
	}
	if r := replay(t, s, 0, noPad); !slices.Equal(r.indexes, span(21, 25)) {
		t.Fatalf("replay after reopening: %v", r.indexes)
	}
	if err := s.TruncateFront(23); err != nil {
		t.Fatal(err)
	}
	if r := replay(t, s, 21, noPad); !slices.Equal(r.indexes, span(23, 25)) {
		t.Fatalf("Replay(21) after TruncateFront(23): %v", r.indexes)
	}
}

func TestStateLogTruncateFrontAcrossSegmentsRemovesTheirFiles(t *testing.T) {
	dir := t.TempDir()
	s, _ := openStateLog(t, dir)
	n := fillSegments(t, s, dir, 1<<20)
	before := len(segments(t, dir))
	mid := n * 3 / 4
	if err := s.TruncateFront(mid); err != nil {
		t.Fatal(err)
	}
	if after := len(segments(t, dir)); after >= before {
		t.Fatalf("%d segment files after TruncateFront, %d before", after, before)
	}
	if r := replay(t, s, 0, pad160); !slices.Equal(r.indexes, span(mid, n)) {
		t.Fatalf("replay after TruncateFront(%d): %d entries", mid, len(r.indexes))
	}
	// The size mirror still follows tidwall when appending goes on.
	for i := n + 1; i <= n+2000; i++ {
		if _, err := s.Append(EncodeEntry(nil, testEvents(i, pad160(i)))); err != nil {
			t.Fatal(err)
		}
		checkTail(t, s, dir, i)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, repair := openStateLog(t, dir)
	if repair != nil {
		t.Fatalf("repair: %+v", repair)
	}
	if r := replay(t, s, 0, pad160); !slices.Equal(r.indexes, span(mid, n+2000)) {
		t.Fatalf("replay after reopening: %d entries", len(r.indexes))
	}
}

func TestStateLogRefusesWorkAfterClose(t *testing.T) {
	s, _ := openStateLog(t, t.TempDir())
	appendEntries(t, s, 1, 2, noPad)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(EncodeEntry(nil, nil)); err == nil {
		t.Fatal("Append after Close: no error")
	}
	if err := s.Sync(); err == nil {
		t.Fatal("Sync after Close: no error")
	}
	if _, err := s.Replay(0, func(uint64, []Event) error { return nil }); err == nil {
		t.Fatal("Replay after Close: no error")
	}
	if err := s.Close(); err == nil {
		t.Fatal("second Close: no error")
	}
}

func TestVerifyStateLogReportsWithoutChanging(t *testing.T) {
	dir := t.TempDir()
	s, _, err := OpenStateLog(dir, osFiles)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := s.Append(EncodeEntry(nil, []Event{{Type: EvAck, ID: uint64(i)}, {Type: EvDead, ID: uint64(i + 10)}})); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	var visited []string
	rep, err := VerifyStateLog(dir, func(index uint64, events []Event) {
		visited = append(visited, fmt.Sprintf("%d:%v/%d,%v/%d", index, events[0].Type, events[0].ID, events[1].Type, events[1].ID))
	})
	if err != nil || len(rep.Problems) != 0 || rep.Entries != 5 || rep.Events != 10 {
		t.Fatalf("clean log: %+v, %v", rep, err)
	}
	want := fmt.Sprintf("[1:%[1]v/1,%[2]v/11 2:%[1]v/2,%[2]v/12 3:%[1]v/3,%[2]v/13 4:%[1]v/4,%[2]v/14 5:%[1]v/5,%[2]v/15]", EvAck, EvDead)
	if got := fmt.Sprint(visited); got != want {
		t.Fatalf("visited %s, want %s", got, want)
	}
	path, _ := newestSegment(dir)
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{0x40, 1, 2, 3}) // a length with too few bytes after it
	f.Close()
	before, _ := os.ReadFile(path)
	rep, err = VerifyStateLog(dir, nil)
	if err != nil || len(rep.Problems) != 1 || !rep.Problems[0].TornTail || rep.Entries != 5 {
		t.Fatalf("torn log: %+v, %v", rep, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(after, before) {
		t.Fatal("VerifyStateLog changed the file")
	}
}

// checkTail checks, after entry i, that the log's mirror of its newest
// segment (its path, tidwall's size, the preallocated zeros past it)
// follows the file: the cuts and the directory fsync rely on it.
func checkTail(t *testing.T, s *StateLog, dir string, i uint64) {
	t.Helper()
	segs := segments(t, dir)
	newest := segs[len(segs)-1]
	if s.tailPath != "" && s.tailPath != newest {
		t.Fatalf("after entry %d: cached newest segment %s, newest on disk %s", i, s.tailPath, newest)
	}
	st, err := os.Stat(newest)
	if err != nil {
		t.Fatal(err)
	}
	// The file is tidwall's writes, then the preallocated zeros.
	if want := max(int64(s.tailBytes), s.zeroEnd); st.Size() != want {
		t.Fatalf("after entry %d: tailBytes %d, zeros to %d, newest segment %d bytes", i, s.tailBytes, s.zeroEnd, st.Size())
	}
	if tail := readRange(t, newest, int64(s.tailBytes), st.Size()); !allZero(tail) {
		t.Fatalf("after entry %d: the %d bytes past tailBytes %d are not all zeros", i, len(tail), s.tailBytes)
	}
}

// readRange reads [from, to) of the file at path.
func readRange(t *testing.T, path string, from, to int64) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, to-from)
	if _, err := f.ReadAt(b, from); err != nil {
		t.Fatal(err)
	}
	return b
}
