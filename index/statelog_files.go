package index

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// The state log's segment files as tidwall/wal leaves them: finding them,
// walking their entries, and cutting a torn tail before wal.Open.

// StateLogRepair says what OpenStateLog cut off.
type StateLogRepair struct {
	Path      string
	Offset    int64
	Truncated int64
}

// scanSegments returns tidwall's plain segment files in dir (see
// segmentNames) and whether tidwall's START or END recovery files are
// there too.
func scanSegments(dir string) (names []string, recovering bool, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, fmt.Errorf("state log: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || len(name) < 20 {
			continue
		}
		if _, err := strconv.ParseUint(name[:20], 10, 64); err != nil {
			continue
		}
		switch {
		case len(name) == 20:
			names = append(names, name)
		case name[20:] == ".START" || name[20:] == ".END":
			recovering = true
		}
	}
	slices.Sort(names)
	return names, recovering, nil
}

// segmentNames returns tidwall's plain segment files in dir, oldest
// first: 20-digit names (.START/.END/.TEMP are tidwall's own recovery files).
func segmentNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("state log: %w", err)
	}
	var names []string
	for _, e := range entries {
		if name := e.Name(); len(name) == 20 && !e.IsDir() {
			if _, err := strconv.ParseUint(name, 10, 64); err == nil {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names, nil
}

// newestSegment returns the path of tidwall's newest plain segment file.
func newestSegment(dir string) (string, error) {
	names, err := segmentNames(dir)
	if err != nil || len(names) == 0 {
		return "", err
	}
	return filepath.Join(dir, names[len(names)-1]), nil
}

// walkEntries walks the entries of one segment file's bytes (tidwall
// frames each as uvarint length, data), checking each with our CRC, and
// calls fn with each entry's events. It returns the offset just past the
// last good entry and, if it stopped before the end, why.
func walkEntries(data []byte, fn func(events []Event)) (end int, damage string) {
	var events []Event
	var bad error
	end, damage = eachFrame(data, func(entry []byte) bool {
		if events, bad = DecodeEntry(events[:0], entry); bad != nil {
			return false
		}
		if fn != nil {
			fn(events)
		}
		return true
	})
	if bad != nil {
		damage = bad.Error()
	}
	return end, damage
}

// eachFrame calls fn with each entry of a segment file's bytes, by
// tidwall's framing alone, until fn returns false. It returns the offset
// of the entry it stopped at (len(data) at the end) and, if the framing
// broke there, why: tidwall's framing has no way to resync, so the rest
// of the segment is unreadable.
func eachFrame(data []byte, fn func(entry []byte) bool) (end int, broken string) {
	for off := 0; off < len(data); {
		size, n := binary.Uvarint(data[off:])
		switch {
		case n <= 0:
			return off, "bad entry length"
		case size > uint64(len(data)-off-n):
			return off, fmt.Sprintf("entry of %d bytes runs past the end", size)
		}
		if !fn(data[off+n : off+n+int(size)]) {
			return off, ""
		}
		off += n + int(size)
	}
	return len(data), ""
}

// repairStateTail cuts the newest of the segments names (in dir, oldest
// first) at its first entry that is short or fails our CRC, and returns
// the newest segment's size and entry count after that. Only the newest
// segment can have a torn tail: tidwall fsyncs a segment before starting
// the next.
func repairStateTail(files Files, dir string, names []string) (repair *StateLogRepair, size, entries int, err error) {
	if len(names) == 0 {
		return nil, 0, 0, nil
	}
	path := filepath.Join(dir, names[len(names)-1])
	data, err := os.ReadFile(path) // small: at most about StateLogSegmentSize
	if err != nil {
		return nil, 0, 0, fmt.Errorf("state log: %w", err)
	}
	off, damage := walkEntries(data, func([]Event) { entries++ })
	if damage == "" {
		return nil, off, entries, nil
	}
	if err := files.TruncateSync(path, int64(off)); err != nil {
		return nil, 0, 0, fmt.Errorf("state log: cut torn tail of %s at %d: %w", path, off, err)
	}
	if allZero(data[off:]) {
		// Space preallocated for entries never written (see
		// statelog_prealloc.go), not damage: an entry never starts with
		// a zero length.
		return nil, off, entries, nil
	}
	return &StateLogRepair{Path: path, Offset: int64(off), Truncated: int64(len(data) - off)}, off, entries, nil
}
