package queue

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"
)

// Meta is what the queue stores in a message's log record besides the
// body: when it first becomes ready, its attributes and, for a copy in a
// dead-letter queue, where it came from. The log carries it as opaque
// bytes (log.Record.Meta); the format is in doc.go ("Message metadata").
// It is exported, with its codec, for the fuzz targets.
type Meta struct {
	// ReadyAt is when the message may first be received (unix ns; 0 = at
	// once): its enqueue time plus its delay.
	ReadyAt int64
	// Attributes are small string pairs the producer attached.
	Attributes map[string]string
	// Origin, if set, is the queue and id a dead-letter move copied this
	// message from: after a crash in the middle of a move, it tells
	// whether the copy was made.
	Origin *Origin
	// Priority, if set, is the priority the message was enqueued at (nil:
	// DefaultPriority). The table holds it while the message lives; the
	// record has it for a restart that inserts the message again.
	Priority *uint32
	// VisibilityTimeout, if not 0, is the message's own lease length.
	VisibilityTimeout time.Duration
	// Group and DedupID are the message's group and deduplication key in
	// an ordered queue (NewMessage); empty when it has none.
	Group, DedupID string
}

// Origin names a message in another queue.
type Origin struct {
	Queue string
	ID    uint64
}

// Limits of a message's attributes, checked by Enqueue and by the decoder.
const (
	MaxAttributes     = 64
	MaxAttributeBytes = 16 << 10 // keys and values together

	maxOriginQueue = 255
	// metaVersion 2 adds the origin, and metaVersionFlags a flags byte
	// saying which of origin, priority and lease length follow. Each is
	// written only when needed, so metadata is byte for byte what the
	// build before wrote when it holds nothing newer. metaVersionPriority
	// is the commonest case, a priority alone, in two bytes or so instead
	// of version 3's five: a queue of mixed priorities and small bodies
	// paid for those bytes in the frame's compression, where bytes that
	// differ between records break its matches.
	metaVersion         = 1
	metaVersionOrigin   = 2
	metaVersionFlags    = 3
	metaVersionPriority = 4

	metaHasOrigin     = 1
	metaHasPriority   = 2
	metaHasVisibility = 4
	metaHasGroup      = 8
	metaHasDedup      = 16
	metaFlags         = metaHasOrigin | metaHasPriority | metaHasVisibility | metaHasGroup | metaHasDedup
)

// EncodeMeta appends m's encoding to dst; empty metadata (ready at once,
// no attributes, no origin, priority or lease length) is no bytes at all:
//
//	version uint8 | varint ready-at | uvarint count | (uvarint len, key, uvarint len, value)...
//	version 2 adds: uvarint len, origin queue | uvarint origin id
//	version 3 adds instead: flags uint8 | (1) origin as in 2 |
//	  (2) uvarint priority | (4) uvarint lease length, ns |
//	  (8) uvarint len, group | (16) uvarint len, deduplication key
//	version 4, a priority and nothing else: uvarint priority (and no
//	  ready-at or count)
//
// Keys are written sorted, so equal metadata encodes to equal bytes.
func EncodeMeta(dst []byte, m Meta) []byte { return encodeMeta(dst, &m) }

// encodeMeta is EncodeMeta without copying m: the enqueue path calls it
// once a message.
func encodeMeta(dst []byte, m *Meta) []byte {
	var flags byte
	if m.Origin != nil {
		flags |= metaHasOrigin
	}
	if m.Priority != nil {
		flags |= metaHasPriority
	}
	if m.VisibilityTimeout != 0 {
		flags |= metaHasVisibility
	}
	if m.Group != "" {
		flags |= metaHasGroup
	}
	if m.DedupID != "" {
		flags |= metaHasDedup
	}
	if m.ReadyAt == 0 && len(m.Attributes) == 0 {
		switch flags {
		case 0:
			return dst
		case metaHasPriority:
			return binary.AppendUvarint(append(dst, metaVersionPriority), uint64(*m.Priority))
		}
	}
	version := byte(metaVersion)
	switch {
	case flags&^metaHasOrigin != 0:
		version = metaVersionFlags
	case flags != 0:
		version = metaVersionOrigin
	}
	dst = append(dst, version)
	dst = binary.AppendVarint(dst, m.ReadyAt)
	dst = binary.AppendUvarint(dst, uint64(len(m.Attributes)))
	if len(m.Attributes) > 0 {
		keys := make([]string, 0, len(m.Attributes))
		for k := range m.Attributes {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			dst = appendString(dst, k)
			dst = appendString(dst, m.Attributes[k])
		}
	}
	if version == metaVersionFlags {
		dst = append(dst, flags)
	}
	if m.Origin != nil {
		dst = appendString(dst, m.Origin.Queue)
		dst = binary.AppendUvarint(dst, m.Origin.ID)
	}
	if m.Priority != nil {
		dst = binary.AppendUvarint(dst, uint64(*m.Priority))
	}
	if m.VisibilityTimeout != 0 {
		dst = binary.AppendUvarint(dst, uint64(m.VisibilityTimeout))
	}
	if m.Group != "" {
		dst = appendString(dst, m.Group)
	}
	if m.DedupID != "" {
		dst = appendString(dst, m.DedupID)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

// DecodeMeta decodes what EncodeMeta wrote. Damage is ErrCorrupt, with a
// zero Meta.
func DecodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, nil
	}
	d := metaDecoder{rest: b[1:]}
	m, err := d.decode(b[0])
	if err != nil {
		return Meta{}, fmt.Errorf("%w: message metadata: %w", ErrCorrupt, err)
	}
	return m, nil
}

// metaDecoder reads the fields after the version byte in order; the first
// failure ends the decode.
type metaDecoder struct{ rest []byte }

func (d *metaDecoder) decode(version byte) (Meta, error) {
	if version < metaVersion || version > metaVersionPriority {
		return Meta{}, fmt.Errorf("version %d", version)
	}
	if version == metaVersionPriority {
		var m Meta
		err := d.priority(&m)
		if err == nil && len(d.rest) != 0 {
			err = fmt.Errorf("%d trailing bytes", len(d.rest))
		}
		return m, err
	}
	u, err := d.uvarint()
	if err != nil {
		return Meta{}, err
	}
	m := Meta{ReadyAt: int64(u>>1) ^ -int64(u&1)} // zig-zag, as binary.AppendVarint wrote it
	n, err := d.uvarint()
	switch {
	case err != nil:
		return Meta{}, err
	case n > MaxAttributes:
		return Meta{}, fmt.Errorf("%d attributes, at most %d", n, MaxAttributes)
	case n > 0:
		m.Attributes = make(map[string]string, n)
	}
	budget := MaxAttributeBytes
	for range n {
		k, err := d.string(budget)
		if err != nil {
			return Meta{}, err
		}
		v, err := d.string(budget - len(k))
		if err != nil {
			return Meta{}, err
		}
		if _, dup := m.Attributes[k]; dup {
			return Meta{}, fmt.Errorf("duplicate attribute %q", k)
		}
		m.Attributes[k] = v
		budget -= len(k) + len(v)
	}
	var flags byte
	switch version {
	case metaVersionOrigin:
		flags = metaHasOrigin
	case metaVersionFlags:
		if len(d.rest) == 0 {
			return Meta{}, fmt.Errorf("no flags")
		}
		flags, d.rest = d.rest[0], d.rest[1:]
		if flags == 0 || flags&^metaFlags != 0 {
			return Meta{}, fmt.Errorf("flags %#x", flags)
		}
	}
	if flags&metaHasOrigin != 0 {
		q, err := d.string(maxOriginQueue)
		if err != nil {
			return Meta{}, err
		}
		id, err := d.uvarint()
		if err != nil || q == "" || id == 0 {
			return Meta{}, fmt.Errorf("origin %q %d (%v)", q, id, err)
		}
		m.Origin = &Origin{Queue: q, ID: id}
	}
	if flags&metaHasPriority != 0 {
		if err := d.priority(&m); err != nil {
			return Meta{}, err
		}
	}
	if flags&metaHasVisibility != 0 {
		v, err := d.uvarint()
		if err != nil || v == 0 || v > uint64(MaxVisibility) {
			return Meta{}, fmt.Errorf("lease length %d ns (%v)", v, err)
		}
		m.VisibilityTimeout = time.Duration(v)
	}
	if flags&metaHasGroup != 0 {
		if m.Group, err = d.string(MaxGroupBytes); err != nil || m.Group == "" {
			return Meta{}, fmt.Errorf("group %q (%v)", m.Group, err)
		}
	}
	if flags&metaHasDedup != 0 {
		if m.DedupID, err = d.string(MaxDedupBytes); err != nil || m.DedupID == "" {
			return Meta{}, fmt.Errorf("deduplication key %q (%v)", m.DedupID, err)
		}
	}
	if len(d.rest) != 0 {
		return Meta{}, fmt.Errorf("%d trailing bytes", len(d.rest))
	}
	return m, nil
}

// priority reads a priority into m.
func (d *metaDecoder) priority(m *Meta) error {
	p, err := d.uvarint()
	if err != nil || p > math.MaxUint32 {
		return fmt.Errorf("priority %d (%v)", p, err)
	}
	pri := uint32(p)
	m.Priority = &pri
	return nil
}

func (d *metaDecoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.rest)
	if n <= 0 {
		return 0, fmt.Errorf("bad varint at %x", d.rest[:min(len(d.rest), 10)])
	}
	d.rest = d.rest[n:]
	return v, nil
}

// string reads a length-prefixed string of at most limit bytes.
func (d *metaDecoder) string(limit int) (string, error) {
	n, err := d.uvarint()
	if err != nil {
		return "", err
	}
	if n > uint64(len(d.rest)) || n > uint64(limit) {
		return "", fmt.Errorf("length %d out of range", n)
	}
	s := string(d.rest[:n])
	d.rest = d.rest[n:]
	return s, nil
}
