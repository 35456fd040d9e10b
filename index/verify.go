package index

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
)

// StateLogReport is what VerifyStateLog found.
type StateLogReport struct {
	Segments int
	Entries  int
	Events   int
	// Problems lists damaged entries; TornTail marks damage at the end of
	// the newest segment, which OpenStateLog would cut off.
	Problems []StateLogProblem
}

// StateLogProblem is one damaged place in a state log.
type StateLogProblem struct {
	Path     string
	Offset   int64
	Reason   string
	TornTail bool
}

func (p StateLogProblem) String() string {
	kind := "corrupt"
	if p.TornTail {
		kind = "torn tail"
	}
	return fmt.Sprintf("%s: %s at offset %d: %s", p.Path, kind, p.Offset, p.Reason)
}

// VerifyStateLog reads every entry of the state log in dir without
// changing anything (tidwall/wal itself cannot open a torn log, and would
// repair nothing anyway): each entry's framing and our CRC. It fails only
// when it cannot read; damage goes in the report.
func VerifyStateLog(dir string) (*StateLogReport, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("verify state log: %w", err)
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
	rep := &StateLogReport{Segments: len(names)}
	var events []Event
	for i, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path) // segments are StateLogSegmentSize, small
		if err != nil {
			return nil, fmt.Errorf("verify state log: %w", err)
		}
		for off := 0; off < len(data); {
			size, n := binary.Uvarint(data[off:])
			var reason string
			switch {
			case n <= 0:
				reason = "bad entry length"
			case size > uint64(len(data)-off-n):
				reason = fmt.Sprintf("entry of %d bytes runs past the end", size)
			default:
				events, err = DecodeEntry(events[:0], data[off+n:off+n+int(size)])
				if err != nil {
					reason = err.Error()
				}
			}
			if reason != "" {
				// tidwall's framing has no way to resync: the rest of this
				// segment is unreadable.
				rep.Problems = append(rep.Problems, StateLogProblem{Path: path, Offset: int64(off), Reason: reason, TornTail: i == len(names)-1})
				break
			}
			rep.Entries++
			rep.Events += len(events)
			off += n + int(size)
		}
	}
	return rep, nil
}
