package log

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// VerifyReport is the result of Verify.
type VerifyReport struct {
	Segments []SegmentReport
	// Problems lists every damaged range. Those marked TornTail are the
	// unacknowledged end of the newest segment, which Open would cut off;
	// the rest is corruption.
	Problems []Problem
}

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// SegmentReport sums up one verified segment.
type SegmentReport struct {
	Path    string
	Base    uint64
	Size    int64
	Frames  int
	Records int
	LastID  uint64 // last id found, Base-1 if none
}

// VerifyOptions tune Verify.
type VerifyOptions struct {
	FS FS // nil means OS
	// Visit, if set, is called for every record of every frame that
	// verifies, in id order, with its frame's position: a read-only replay
	// for `spool check`. The record's slices are valid only during the call.
	Visit func(r Record, pos Position)
}

// Verify reads every segment in dir and checks every header, checksum,
// record and id ordering, without changing anything: it is what `spool
// check` runs on a directory no server holds. It fails only when it cannot
// read (I/O error, unknown format version); damage goes in the report.
func Verify(dir string, o VerifyOptions) (*VerifyReport, error) {
	fsys := o.FS
	if fsys == nil {
		fsys = OS
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", dir, err)
	}
	var bases []uint64
	for _, name := range names {
		if base, ok := parseSegmentName(name); ok {
			bases = append(bases, base)
		}
	}
	rep := &VerifyReport{}
	var b frameBuf
	for i, base := range bases {
		newest := i == len(bases)-1
		sr, probs, err := verifySegment(fsys, filepath.Join(dir, segmentName(base)), base, newest, &b, o.Visit)
		if err != nil {
			return nil, err
		}
		if !newest && sr.LastID >= bases[i+1] {
			probs = append(probs, Problem{Path: sr.Path, Segment: base, Reason: fmt.Sprintf("holds id %d, which belongs to the next segment (base %d)", sr.LastID, bases[i+1])})
		}
		rep.Segments = append(rep.Segments, sr)
		rep.Problems = append(rep.Problems, probs...)
	}
	return rep, nil
}

func verifySegment(fsys FS, path string, base uint64, newest bool, b *frameBuf, visit func(Record, Position)) (SegmentReport, []Problem, error) {
	sr := SegmentReport{Path: path, Base: base, LastID: base - 1}
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return sr, nil, fmt.Errorf("verify: %w", err)
	}
	defer f.Close()
	if sr.Size, err = f.Size(); err != nil {
		return sr, nil, fmt.Errorf("verify %s: %w", path, err)
	}
	var probs []Problem
	herr, err := checkSegmentHeader(f, path, base, sr.Size)
	if err != nil {
		return sr, nil, err
	}
	var onFrame func(off int64, _ frameHeader) error
	if visit != nil {
		onFrame = func(off int64, _ frameHeader) error {
			for _, r := range b.recs {
				visit(r, Position{Segment: base, Offset: off})
			}
			return nil
		}
	}
	res, err := walkFrames(f, path, base, sr.Size, newest, b, onFrame)
	if err != nil {
		return sr, nil, fmt.Errorf("verify: %w", err)
	}
	if herr != nil {
		// A newest segment with a torn header and no frames is what a crash
		// during rotation leaves: Open recreates it.
		probs = append(probs, Problem{Path: path, Segment: base, Length: min(sr.Size, fileHeaderSize), Reason: herr.Error(), TornTail: newest && res.frames == 0})
	}
	for _, p := range res.damage {
		p.TornTail = p.TornTail && newest
		probs = append(probs, p)
	}
	sr.Frames, sr.Records, sr.LastID = res.frames, res.records, res.lastID
	return sr, probs, nil
}

// checkSegmentHeader reads and checks a segment's file header. Damage
// (torn, bad checksum, base not matching the name) comes back as herr for
// the caller to classify; an I/O error or an unknown format version, which
// no repair can fix, comes back as err.
func checkSegmentHeader(f File, path string, base uint64, size int64) (herr, err error) {
	if size < fileHeaderSize {
		return damaged("file of %d bytes has no complete header", size), nil
	}
	var hb [fileHeaderSize]byte
	if err := readAt(f, hb[:], 0); err != nil {
		return nil, fmt.Errorf("segment %s: %w", path, err)
	}
	h, herr := decodeFileHeader(hb[:])
	var he *headerError
	if errors.As(herr, &he) && he.versionOnly {
		return nil, fmt.Errorf("%w: %s: %s", ErrUnsupportedVersion, path, he.msg)
	}
	if herr == nil && h.base != base {
		herr = damaged("header base id %d does not match the file name", h.base)
	}
	return herr, nil
}
