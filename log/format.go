package log

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"strconv"
	"strings"
)

// This file owns the bytes: every on-disk constant and every encode/decode
// helper of the segment format lives here, and nothing else in the package
// touches binary.LittleEndian. The byte diagrams are in doc.go.

const (
	segmentMagic  = "SPLG"
	formatVersion = 1

	fileHeaderSize  = 32
	frameHeaderSize = 40

	// frameAlign keeps every frame header on an 8-byte boundary, so a
	// header is never torn across a sector-sized write boundary mid-field and
	// the resync scan after damage only has to look at aligned offsets.
	frameAlign = 8

	// MaxFramePayload bounds the decoded payload of one frame, and with it
	// the largest single Append. Decoders check it before allocating.
	MaxFramePayload = 64 << 20

	// minRecordSize is the smallest encoded record (id delta, time delta,
	// flags, meta length, body length: one byte each); it bounds the record
	// count a payload can claim before the decoder allocates for it.
	minRecordSize = 5

	// maxRecordOverhead is the most bytes a record's varint fields can add
	// to its meta and body.
	maxRecordOverhead = binary.MaxVarintLen64*2 + 1 + binary.MaxVarintLen32*2

	segmentSuffix = ".seg"
	tempSuffix    = ".tmp"
)

// castagnoli is the CRC32C table used for every checksum in the format.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC-32C (Castagnoli) of b, the checksum of the
// segment format, so the queue's own files (queue.json) use the same one.
// (Package index, beside log rather than above it, keeps its own table.)
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Codec says how a frame's payload is stored. Zero is invalid so that an
// all-zero (never written) header can never parse as a frame.
type Codec uint8

// The codecs a frame may use.
const (
	CodecNone Codec = 1 // payload stored as is
	CodecS2   Codec = 2 // s2 block (klauspost/compress/s2): fast, for hot appends
	CodecZstd Codec = 3 // zstd frame (klauspost/compress/zstd): dense, for cold rewrites
)

func (c Codec) valid() bool { return c >= CodecNone && c <= CodecZstd }

// String returns the codec's name as used in reports and flags.
func (c Codec) String() string {
	switch c {
	case CodecNone:
		return "none"
	case CodecS2:
		return "s2"
	case CodecZstd:
		return "zstd"
	}
	return "codec(" + strconv.Itoa(int(c)) + ")"
}

// fileHeader is the first fileHeaderSize bytes of every segment.
type fileHeader struct {
	version uint16
	base    uint64 // first id this segment may hold; equals the name's number
	created int64  // unix nanoseconds
}

// encodeFileHeader writes h into buf[:fileHeaderSize].
//
//	0      4      8             16            24     28     32
//	+------+--+---+-------------+-------------+------+------+
//	|magic |ver|rsv|   base id   |   created   | rsv  | crc  |
//	+------+--+---+-------------+-------------+------+------+
func encodeFileHeader(buf []byte, h fileHeader) {
	_ = buf[fileHeaderSize-1]
	copy(buf[0:4], segmentMagic)
	binary.LittleEndian.PutUint16(buf[4:6], h.version)
	binary.LittleEndian.PutUint16(buf[6:8], 0)
	binary.LittleEndian.PutUint64(buf[8:16], h.base)
	binary.LittleEndian.PutUint64(buf[16:24], uint64(h.created))
	binary.LittleEndian.PutUint32(buf[24:28], 0)
	binary.LittleEndian.PutUint32(buf[28:32], crc32.Checksum(buf[0:28], castagnoli))
}

// headerError explains why a segment header was rejected. versionOnly marks
// a header that verified but names a format this build cannot read: that is
// never damage, so Open refuses the directory instead of repairing it.
type headerError struct {
	versionOnly bool
	msg         string
}

func (e *headerError) Error() string { return e.msg }

// decodeFileHeader parses and verifies buf[:fileHeaderSize]. A checksum or
// magic mismatch returns a *headerError with versionOnly false; a verified
// header of another version returns one with versionOnly true.
func decodeFileHeader(buf []byte) (fileHeader, error) {
	if len(buf) < fileHeaderSize {
		return fileHeader{}, &headerError{msg: fmt.Sprintf("file header: %d bytes, want %d", len(buf), fileHeaderSize)}
	}
	want := binary.LittleEndian.Uint32(buf[28:32])
	if got := crc32.Checksum(buf[0:28], castagnoli); got != want {
		return fileHeader{}, &headerError{msg: fmt.Sprintf("file header: crc %08x, want %08x", got, want)}
	}
	if string(buf[0:4]) != segmentMagic {
		return fileHeader{}, &headerError{msg: fmt.Sprintf("file header: magic %q, want %q", buf[0:4], segmentMagic)}
	}
	h := fileHeader{
		version: binary.LittleEndian.Uint16(buf[4:6]),
		base:    binary.LittleEndian.Uint64(buf[8:16]),
		created: int64(binary.LittleEndian.Uint64(buf[16:24])),
	}
	if h.version != formatVersion {
		return h, &headerError{versionOnly: true, msg: fmt.Sprintf("segment format version %d (this build reads version %d)", h.version, formatVersion)}
	}
	return h, nil
}

// frameHeader describes one frame. Ids inside a frame strictly increase
// from first to first+span; gaps are allowed (compaction removes records).
type frameHeader struct {
	storedLen  uint32 // payload bytes on disk, after the codec
	frameCRC   uint32 // CRC32C over header bytes [0:4] and [8:32], then the stored payload
	codec      Codec
	count      uint32 // records in the frame, ≥ 1
	first      uint64 // id of the first record, ≥ 1
	span       uint32 // last id - first id
	decodedLen uint32 // payload bytes after decoding
}

func (h frameHeader) last() uint64 { return h.first + uint64(h.span) }

// encodedSize returns the bytes a frame with a stored payload of n bytes
// occupies on disk, padding included.
func encodedSize(n int) int {
	return frameHeaderSize + alignUp(n)
}

func alignUp(n int) int { return (n + frameAlign - 1) &^ (frameAlign - 1) }

// encodeFrameHeader writes h into buf[:frameHeaderSize], computing both
// checksums; payload is the stored payload that follows the header.
//
//	0      4      8  9  10   12     16            24     28     32     36     40
//	+------+------+--+--+----+------+-------------+------+------+------+------+
//	|stored|frame |cd|rs|rsv | count|  first id   | span |decode| rsv  |header|
//	| len  | crc  |  |  |    |      |             |      | len  |      | crc  |
//	+------+------+--+--+----+------+-------------+------+------+------+------+
func encodeFrameHeader(buf []byte, h frameHeader, payload []byte) {
	_ = buf[frameHeaderSize-1]
	binary.LittleEndian.PutUint32(buf[0:4], h.storedLen)
	buf[8] = byte(h.codec)
	buf[9] = 0
	binary.LittleEndian.PutUint16(buf[10:12], 0)
	binary.LittleEndian.PutUint32(buf[12:16], h.count)
	binary.LittleEndian.PutUint64(buf[16:24], h.first)
	binary.LittleEndian.PutUint32(buf[24:28], h.span)
	binary.LittleEndian.PutUint32(buf[28:32], h.decodedLen)
	binary.LittleEndian.PutUint32(buf[32:36], 0)
	binary.LittleEndian.PutUint32(buf[4:8], frameChecksum(buf, payload))
	binary.LittleEndian.PutUint32(buf[36:40], crc32.Checksum(buf[0:36], castagnoli))
}

func frameChecksum(header, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, header[0:4])
	c = crc32.Update(c, castagnoli, header[8:32])
	return crc32.Update(c, castagnoli, payload)
}

// appendFrameBytes appends a whole frame to dst: header, stored payload
// and the zero padding that puts the next frame on an 8-byte boundary.
func appendFrameBytes(dst []byte, h frameHeader, stored []byte) []byte {
	at := len(dst)
	dst = append(dst, make([]byte, frameHeaderSize)...)
	dst = append(dst, stored...)
	encodeFrameHeader(dst[at:at+frameHeaderSize], h, stored)
	pad := alignUp(len(stored)) - len(stored)
	return append(dst, make([]byte, pad)...)
}

// decodeFrameHeader parses and checks buf[:frameHeaderSize]: the header
// checksum, the codec, reserved bytes and that the fields are consistent and
// within format limits. It does not look at the payload; verifyFramePayload
// does. An all-zero header fails here: it is never a frame.
func decodeFrameHeader(buf []byte) (frameHeader, error) {
	if len(buf) < frameHeaderSize {
		return frameHeader{}, fmt.Errorf("frame header: %d bytes, want %d", len(buf), frameHeaderSize)
	}
	want := binary.LittleEndian.Uint32(buf[36:40])
	if got := crc32.Checksum(buf[0:36], castagnoli); got != want {
		return frameHeader{}, fmt.Errorf("frame header: crc %08x, want %08x", got, want)
	}
	h := frameHeader{
		storedLen:  binary.LittleEndian.Uint32(buf[0:4]),
		frameCRC:   binary.LittleEndian.Uint32(buf[4:8]),
		codec:      Codec(buf[8]),
		count:      binary.LittleEndian.Uint32(buf[12:16]),
		first:      binary.LittleEndian.Uint64(buf[16:24]),
		span:       binary.LittleEndian.Uint32(buf[24:28]),
		decodedLen: binary.LittleEndian.Uint32(buf[28:32]),
	}
	switch {
	case !h.codec.valid():
		return h, fmt.Errorf("frame header: unknown codec %d", buf[8])
	case buf[9] != 0 || binary.LittleEndian.Uint16(buf[10:12]) != 0 || binary.LittleEndian.Uint32(buf[32:36]) != 0:
		return h, fmt.Errorf("frame header: reserved bytes are not zero")
	case h.count == 0:
		return h, fmt.Errorf("frame header: zero records")
	case h.first == 0 || h.first > math.MaxUint64-uint64(h.span):
		return h, fmt.Errorf("frame header: first id %d with span %d out of range", h.first, h.span)
	case uint64(h.span) < uint64(h.count)-1:
		return h, fmt.Errorf("frame header: %d records cannot fit in id span %d", h.count, h.span)
	case h.storedLen == 0 || h.storedLen > MaxFramePayload || h.decodedLen > MaxFramePayload:
		return h, fmt.Errorf("frame header: payload %d/%d bytes out of range", h.storedLen, h.decodedLen)
	case h.codec == CodecNone && h.storedLen != h.decodedLen:
		return h, fmt.Errorf("frame header: uncompressed payload with stored %d != decoded %d bytes", h.storedLen, h.decodedLen)
	case uint64(h.count) > uint64(h.decodedLen)/minRecordSize:
		return h, fmt.Errorf("frame header: %d records cannot fit in %d bytes", h.count, h.decodedLen)
	}
	return h, nil
}

// verifyFramePayload checks the frame checksum over the header and the
// stored payload.
func verifyFramePayload(header []byte, h frameHeader, stored []byte) error {
	if got := frameChecksum(header, stored); got != h.frameCRC {
		return fmt.Errorf("frame crc %08x, want %08x", got, h.frameCRC)
	}
	return nil
}

// appendRecord appends the encoding of r to dst. prevID and prevTime are the
// previous record's id and time in the frame (the frame's first id and 0 for
// the first record).
//
//	uvarint id - prevID | zigzag varint time - prevTime | flags byte |
//	uvarint len(meta) | meta | uvarint len(body) | body
func appendRecord(dst []byte, r *Record, prevID uint64, prevTime int64) []byte {
	dst = binary.AppendUvarint(dst, r.ID-prevID)
	dst = binary.AppendVarint(dst, r.Time-prevTime)
	dst = append(dst, r.Flags)
	dst = binary.AppendUvarint(dst, uint64(len(r.Meta)))
	dst = append(dst, r.Meta...)
	dst = binary.AppendUvarint(dst, uint64(len(r.Body)))
	return append(dst, r.Body...)
}

// recordEncodedMax bounds the bytes appendRecord writes for r.
func recordEncodedMax(r *Record) int {
	return maxRecordOverhead + len(r.Meta) + len(r.Body)
}

// decodeRecords walks a decoded payload, calling fn for each record in
// order. Meta and Body alias payload. It checks the ids against the header:
// the first record carries delta 0, later ones strictly increase, the last
// one is first+span, and the record count and payload length match exactly.
func decodeRecords(payload []byte, h frameHeader, fn func(Record) bool) error {
	id, t := h.first, int64(0)
	rest := payload
	for i := uint32(0); i < h.count; i++ {
		delta, n := binary.Uvarint(rest)
		if n <= 0 {
			return fmt.Errorf("record %d: bad id delta", i)
		}
		rest = rest[n:]
		if (i == 0) != (delta == 0) || delta > h.last()-id {
			return fmt.Errorf("record %d: id delta %d out of order", i, delta)
		}
		id += delta
		dt, n := binary.Varint(rest)
		if n <= 0 {
			return fmt.Errorf("record %d: bad time", i)
		}
		rest = rest[n:]
		t += dt
		if len(rest) < 1 {
			return fmt.Errorf("record %d: missing flags", i)
		}
		flags := rest[0]
		rest = rest[1:]
		meta, r2, err := takeBytes(rest)
		if err != nil {
			return fmt.Errorf("record %d: meta: %w", i, err)
		}
		body, r3, err := takeBytes(r2)
		if err != nil {
			return fmt.Errorf("record %d: body: %w", i, err)
		}
		rest = r3
		if !fn(Record{ID: id, Time: t, Flags: flags, Meta: meta, Body: body}) {
			return nil
		}
	}
	if id != h.last() {
		return fmt.Errorf("last record id %d, header says %d", id, h.last())
	}
	if len(rest) != 0 {
		return fmt.Errorf("%d trailing payload bytes", len(rest))
	}
	return nil
}

func takeBytes(b []byte) (field, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("bad length")
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("length %d exceeds the %d bytes left", n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// segmentName returns the file name of the segment whose first id is base.
func segmentName(base uint64) string {
	return fmt.Sprintf("%020d%s", base, segmentSuffix)
}

// parseSegmentName is the inverse of segmentName; ok is false for any other
// name, including temp files.
func parseSegmentName(name string) (base uint64, ok bool) {
	digits, found := strings.CutSuffix(name, segmentSuffix)
	if !found || len(digits) != 20 {
		return 0, false
	}
	base, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || base == 0 {
		return 0, false
	}
	return base, true
}

// EncodeFrame appends one frame holding recs to dst, as Append would
// write it, and returns the extended slice. The records' ids must be set
// and strictly increase, the first ≥ 1. codec is tried and kept only when
// it pays (CodecNone stores raw). For tools, tests and fuzz seeds.
func EncodeFrame(dst []byte, recs []Record, codec Codec) ([]byte, error) {
	if len(recs) == 0 {
		return dst, errors.New("encode frame: no records")
	}
	if !codec.valid() {
		return dst, fmt.Errorf("encode frame: unknown codec %d", codec)
	}
	first, last := recs[0].ID, recs[len(recs)-1].ID
	if first == 0 || last-first > math.MaxUint32 {
		return dst, fmt.Errorf("encode frame: ids %d..%d out of range", first, last)
	}
	var raw []byte
	prevID, prevTime := first, int64(0)
	for i := range recs {
		if i > 0 && recs[i].ID <= prevID {
			return dst, fmt.Errorf("encode frame: id %d does not follow %d", recs[i].ID, prevID)
		}
		raw = appendRecord(raw, &recs[i], prevID, prevTime)
		prevID, prevTime = recs[i].ID, recs[i].Time
	}
	if len(raw) > MaxFramePayload {
		return dst, fmt.Errorf("%w: frame payload of %d bytes", ErrTooLarge, len(raw))
	}
	var scratch []byte
	stored, codec, err := compressPayload(codec, raw, &scratch)
	if err != nil {
		return dst, err
	}
	return appendFrameBytes(dst, frameHeader{
		storedLen: uint32(len(stored)), codec: codec, count: uint32(len(recs)),
		first: first, span: uint32(last - first), decodedLen: uint32(len(raw)),
	}, stored), nil
}

// DecodeFrame decodes the frame at the start of buf, checking both
// checksums, the codec and every record, and returns its records and its
// size on disk, padding included. Records alias buf or a fresh buffer.
// Every failure wraps ErrCorrupt. This is the same path the log reads
// through, exposed for tools and fuzzing.
func DecodeFrame(buf []byte) (recs []Record, size int, err error) {
	h, err := decodeFrameHeader(buf)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	size = encodedSize(int(h.storedLen))
	if size > len(buf) {
		return nil, 0, fmt.Errorf("%w: frame of %d bytes, only %d given", ErrCorrupt, size, len(buf))
	}
	stored := buf[frameHeaderSize : frameHeaderSize+int(h.storedLen)]
	if err := verifyFramePayload(buf, h, stored); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	payload, err := decodePayload(h, stored, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	err = decodeRecords(payload, h, func(r Record) bool {
		recs = append(recs, r)
		return true
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return recs, size, nil
}
