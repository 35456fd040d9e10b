package index

import (
	"fmt"
	"os"
	"path/filepath"
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
// repair nothing anyway): each entry's framing and our CRC. If visit is
// set, it gets every entry that verifies, with its index, in order: a
// read-only replay for `spool check` (the events are valid only during the
// call). A segment's entries after a damaged one are not visited, where
// Replay would skip just the damaged entry. It fails only when it cannot
// read; damage goes in the report.
func VerifyStateLog(dir string, visit func(index uint64, events []Event)) (*StateLogReport, error) {
	names, err := segmentNames(dir)
	if err != nil {
		return nil, fmt.Errorf("verify %w", err)
	}
	rep := &StateLogReport{Segments: len(names)}
	for i, name := range names {
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path) // segments are StateLogSegmentSize, small
		if err != nil {
			return nil, fmt.Errorf("verify state log: %w", err)
		}
		index, _ := strconv.ParseUint(name, 10, 64) // tidwall names a segment by its first index; segmentNames checked it parses
		off, damage := walkEntries(data, func(events []Event) {
			if visit != nil {
				visit(index, events)
			}
			index++
			rep.Entries++
			rep.Events += len(events)
		})
		if damage != "" {
			rep.Problems = append(rep.Problems, StateLogProblem{Path: path, Offset: int64(off), Reason: damage, TornTail: i == len(names)-1})
		}
	}
	return rep, nil
}
