package index

import (
	"fmt"
	"os"
	"path/filepath"
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
		off, damage := walkEntries(data, func(events []Event) {
			rep.Entries++
			rep.Events += len(events)
		})
		if damage != "" {
			rep.Problems = append(rep.Problems, StateLogProblem{Path: path, Offset: int64(off), Reason: damage, TornTail: i == len(names)-1})
		}
	}
	return rep, nil
}
