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
	// the newest segment, which OpenStateLog would cut off. Zeros past
	// the newest segment's entries are preallocated space, not damage.
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
//
// If visit is set, it gets, in order and with their indexes, the entries
// opening the log and replaying it would apply: a read-only replay for
// `spool check` (the events are valid only during the call). In the
// newest segment those are the entries before the first damage (opening
// cuts the rest off as a torn tail); in a sealed one, every entry that
// verifies up to broken framing, past which tidwall cannot read either.
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
		newest := i == len(names)-1
		off, damage := walkEntries(data, func(events []Event) {
			rep.Entries++
			rep.Events += len(events)
		})
		if damage != "" && !(newest && allZero(data[off:])) { // zeros: preallocated, not damage
			rep.Problems = append(rep.Problems, StateLogProblem{Path: path, Offset: int64(off), Reason: damage, TornTail: newest})
		}
		if visit != nil {
			first, _ := strconv.ParseUint(name, 10, 64) // tidwall names a segment by its first index; segmentNames checked it parses
			visitSegment(data, first, newest, visit)
		}
	}
	return rep, nil
}

// visitSegment calls visit with the entries of one segment that a replay
// applies (see VerifyStateLog), index being the segment's first.
func visitSegment(data []byte, index uint64, newest bool, visit func(index uint64, events []Event)) {
	var events []Event
	eachFrame(data, func(entry []byte) bool {
		var err error
		events, err = DecodeEntry(events[:0], entry)
		if err != nil && newest {
			return false // opening cuts the newest segment here
		}
		if err == nil { // Replay skips a damaged entry of a sealed segment
			visit(index, events)
		}
		index++
		return true
	})
}
