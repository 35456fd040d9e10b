package fuzz

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/spoolq/spool/queue"
)

// metaSeeds returns metadata made by queue.EncodeMeta, from none at all to
// the most attributes, an origin, a priority and a lease length, and
// hand-made encodings the encoder never writes.
func metaSeeds() [][]byte {
	zero, top := uint32(0), uint32(math.MaxUint32)
	many := map[string]string{}
	for i := range queue.MaxAttributes {
		many[strings.Repeat("k", i+1)] = strings.Repeat("v", i%5)
	}
	metas := []queue.Meta{
		{},
		{ReadyAt: 1_700_000_000_000_000_000},
		{ReadyAt: -1},
		{ReadyAt: math.MinInt64, Attributes: map[string]string{"": ""}},
		{Attributes: map[string]string{"trace": "abc123", "tenant": "t-9", "a": "1"}},
		{ReadyAt: math.MaxInt64, Attributes: map[string]string{"\x00\xff": "\xff\x00", "ключ": "значение"}},
		{Attributes: map[string]string{"big": strings.Repeat("x", queue.MaxAttributeBytes-3)}},
		{ReadyAt: 5, Attributes: many},
		{Origin: &queue.Origin{Queue: "jobs", ID: 1}},
		{ReadyAt: 9, Attributes: map[string]string{"k": "v"}, Origin: &queue.Origin{Queue: strings.Repeat("q", 80), ID: math.MaxUint64}},
		{Priority: &zero},
		{VisibilityTimeout: queue.MaxVisibility},
		{ReadyAt: 3, Origin: &queue.Origin{Queue: "t", ID: 2}, Priority: &top, VisibilityTimeout: time.Nanosecond},
	}
	var seeds [][]byte
	for _, m := range metas {
		seeds = append(seeds, queue.EncodeMeta(nil, m))
	}
	three := seeds[4]
	seeds = append(seeds,
		three[:len(three)-1],
		append(bytes.Clone(three), 0),
		[]byte{1, 0, 0},                            // empty metadata written out
		[]byte{2, 0, 0},                            // version 2 without its origin
		[]byte{2, 0, 0, 0, 1},                      // origin with no queue
		[]byte{2, 0, 0, 1, 'q', 0},                 // origin id 0
		[]byte{3, 0, 0},                            // version 3 without its flags
		[]byte{3, 0, 0, 1, 1, 'q', 1},              // version 3 with only an origin (2 writes it)
		[]byte{3, 0, 0, 6, 5},                      // priority without the lease length
		[]byte{4, 0, 0},                            // version 4 with a trailing byte
		[]byte{3, 0, 0, 2, 0xac, 0x02},             // a priority alone as version 3 (the builds before 4)
		[]byte{4, 0x80, 0x80, 0x80, 0x80, 0x10},    // version 4 priority past 32 bits
		[]byte{1, 0, 65},                           // 65 attributes
		[]byte{1, 0, 2, 1, 'b', 0, 1, 'a', 0},      // keys out of order
		[]byte{1, 0, 2, 1, 'a', 0, 1, 'a', 1, 'x'}, // duplicate key
		[]byte{1, 0x80, 0, 1, 0x81, 0, 'k', 0},     // non-minimal varints
		[]byte{1, 0, 1, 0x81, 0x80, 0x01, 'k'},     // key longer than MaxAttributeBytes
	)
	return seeds
}

// FuzzDecodeMeta feeds arbitrary bytes to queue.DecodeMeta.
//
// Properties: DecodeMeta never panics; on failure the error wraps
// queue.ErrCorrupt; on success there are at most queue.MaxAttributes
// attributes, each key and value at most queue.MaxAttributeBytes,
// queue.EncodeMeta of the result decodes to the same Meta (a nil and an
// empty attribute map count as equal) in no more bytes than the input, and
// its encoding is a fixed point. The encoding is not canonical (the
// decoder takes non-minimal varints, keys in any order and empty metadata
// written out), so the input bytes themselves need not come back.
func FuzzDecodeMeta(f *testing.F) {
	for _, s := range metaSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxInput {
			return
		}
		orig := bytes.Clone(data)
		m, err := queue.DecodeMeta(data)
		if !bytes.Equal(data, orig) {
			t.Fatalf("DecodeMeta modified its input")
		}
		if err != nil {
			if !errors.Is(err, queue.ErrCorrupt) {
				t.Fatalf("DecodeMeta error does not wrap ErrCorrupt: %v", err)
			}
			return
		}
		if len(data) == 0 && !sameMeta(m, queue.Meta{}) {
			t.Fatalf("DecodeMeta of no bytes = %+v", m)
		}
		if len(m.Attributes) > queue.MaxAttributes {
			t.Fatalf("DecodeMeta returned %d attributes", len(m.Attributes))
		}
		for k, v := range m.Attributes {
			if len(k) > queue.MaxAttributeBytes || len(v) > queue.MaxAttributeBytes {
				t.Fatalf("DecodeMeta returned an attribute of %d+%d bytes", len(k), len(v))
			}
		}
		enc := queue.EncodeMeta([]byte("dst"), m)
		if string(enc[:3]) != "dst" {
			t.Fatalf("EncodeMeta overwrote dst")
		}
		enc = enc[3:]
		if len(enc) > len(data) {
			t.Fatalf("metadata of %d bytes re-encodes to %d bytes", len(data), len(enc))
		}
		back, err := queue.DecodeMeta(enc)
		if err != nil {
			t.Fatalf("DecodeMeta(EncodeMeta(meta)): %v", err)
		}
		if !sameMeta(back, m) {
			t.Fatalf("decode(encode(meta)) differs from meta:\n got %+v\nwant %+v", back, m)
		}
		if again := queue.EncodeMeta(nil, back); !bytes.Equal(again, enc) {
			t.Fatalf("metadata encoding is not a fixed point:\n got %x\nwant %x", again, enc)
		}
	})
}

// sameMeta compares metadata, counting a nil and an empty attribute map
// as equal.
func sameMeta(a, b queue.Meta) bool {
	return a.ReadyAt == b.ReadyAt && maps.Equal(a.Attributes, b.Attributes) &&
		(a.Origin == nil) == (b.Origin == nil) && (a.Origin == nil || *a.Origin == *b.Origin) &&
		(a.Priority == nil) == (b.Priority == nil) && (a.Priority == nil || *a.Priority == *b.Priority) &&
		a.VisibilityTimeout == b.VisibilityTimeout
}
