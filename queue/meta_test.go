package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMetaRoundTrips(t *testing.T) {
	many := map[string]string{}
	for i := range MaxAttributes {
		many[fmt.Sprintf("k%02d", i)] = strings.Repeat("v", i)
	}
	tests := []struct {
		name string
		m    Meta
	}{
		{"ready-at only", Meta{ReadyAt: 1_700_000_000_000_000_000}},
		{"negative ready-at", Meta{ReadyAt: -1}},
		{"min and max ready-at", Meta{ReadyAt: math.MinInt64, Attributes: map[string]string{"a": "b"}}},
		{"max ready-at", Meta{ReadyAt: math.MaxInt64}},
		{"attributes only", Meta{Attributes: map[string]string{"b": "2", "a": "1", "c": ""}}},
		{"empty key and value", Meta{Attributes: map[string]string{"": ""}}},
		{"binary and unicode", Meta{ReadyAt: 5, Attributes: map[string]string{"\x00\xff": "\x01", "ключ": "значение"}}},
		{"MaxAttributes attributes", Meta{Attributes: many}},
		{"MaxAttributeBytes of key and value", Meta{Attributes: map[string]string{"k": strings.Repeat("v", MaxAttributeBytes-1)}}},
		{"origin", Meta{Origin: &Origin{Queue: "jobs", ID: 7}}},
		{"priority 0", Meta{Priority: ptr(uint32(0))}},
		{"highest priority number", Meta{Priority: ptr(uint32(math.MaxUint32))}},
		{"own lease length", Meta{VisibilityTimeout: MaxVisibility}},
		{"group and deduplication key", Meta{Group: "g", DedupID: "k"}},
		{"everything", Meta{ReadyAt: 9, Attributes: map[string]string{"a": "b"}, Origin: &Origin{Queue: "q", ID: 1}, Priority: ptr(uint32(5)), VisibilityTimeout: time.Second,
			Group: strings.Repeat("g", MaxGroupBytes), DedupID: strings.Repeat("d", MaxDedupBytes)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EncodeMeta([]byte("xy"), tt.m)
			if string(b[:2]) != "xy" {
				t.Fatalf("EncodeMeta clobbered dst")
			}
			got, err := DecodeMeta(b[2:])
			if err != nil {
				t.Fatalf("DecodeMeta: %v", err)
			}
			if !reflect.DeepEqual(got, tt.m) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.m)
			}
		})
	}
}

func TestEmptyMetaEncodesToZeroBytes(t *testing.T) {
	for _, m := range []Meta{{}, {Attributes: map[string]string{}}} {
		if b := EncodeMeta(nil, m); len(b) != 0 {
			t.Fatalf("EncodeMeta(%+v) = %x, want no bytes", m, b)
		}
	}
	got, err := DecodeMeta(nil)
	if err != nil || got.ReadyAt != 0 || got.Attributes != nil {
		t.Fatalf("DecodeMeta(nil) = %+v, %v; want zero Meta", got, err)
	}
}

func TestMetaLayoutIsVersionReadyAtCountThenSortedPairs(t *testing.T) {
	b := EncodeMeta(nil, Meta{ReadyAt: -2, Attributes: map[string]string{"zz": "1", "a": "", "m": "xyz"}})
	want := []byte{
		1,    // version
		0x03, // zigzag -2
		3,    // count
		1, 'a', 0,
		1, 'm', 3, 'x', 'y', 'z',
		2, 'z', 'z', 1, '1',
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", b, want)
	}
}

// Each version is written only for what needs it: metadata the build
// before could write keeps its bytes, so a queue that uses no priorities
// or lease lengths still opens in that build; a priority alone is version
// 4's two or more bytes.
func TestMetaVersionIsTheOldestThatHoldsIt(t *testing.T) {
	for _, tt := range []struct {
		m    Meta
		want []byte
	}{
		{Meta{ReadyAt: 1}, []byte{1, 2, 0}},
		{Meta{Origin: &Origin{Queue: "q", ID: 3}}, []byte{2, 0, 0, 1, 'q', 3}},
		{Meta{Priority: ptr(uint32(300))}, []byte{4, 0xac, 0x02}},
		{Meta{Priority: ptr(uint32(0))}, []byte{4, 0}},
		{Meta{ReadyAt: 1, Priority: ptr(uint32(300))}, []byte{3, 2, 0, metaHasPriority, 0xac, 0x02}},
		{Meta{Priority: ptr(uint32(1)), VisibilityTimeout: 2}, []byte{3, 0, 0, metaHasPriority | metaHasVisibility, 1, 2}},
		{Meta{VisibilityTimeout: 5}, []byte{3, 0, 0, metaHasVisibility, 5}},
		{Meta{Origin: &Origin{Queue: "q", ID: 3}, Priority: ptr(uint32(1)), VisibilityTimeout: 2}, []byte{3, 0, 0, 7, 1, 'q', 3, 1, 2}},
		{Meta{Group: "g", DedupID: "kk"}, []byte{3, 0, 0, metaHasGroup | metaHasDedup, 1, 'g', 2, 'k', 'k'}},
	} {
		if got := EncodeMeta(nil, tt.m); !bytes.Equal(got, tt.want) {
			t.Errorf("EncodeMeta(%+v) = %x, want %x", tt.m, got, tt.want)
		}
	}
}

// Data written before version 4 (a priority alone as version 3) still
// opens with its priority.
func TestMetaVersion3PriorityStillDecodes(t *testing.T) {
	m, err := DecodeMeta([]byte{3, 0, 0, metaHasPriority, 0xac, 0x02})
	if err != nil || m.Priority == nil || *m.Priority != 300 || m.ReadyAt != 0 || m.Attributes != nil {
		t.Fatalf("DecodeMeta of version 3 priority 300 = %+v, %v", m, err)
	}
}

func TestMetaEncodingIsDeterministic(t *testing.T) {
	attrs := map[string]string{}
	for i := range 40 {
		attrs[fmt.Sprintf("key-%d", i*7919%1000)] = fmt.Sprint(i)
	}
	first := EncodeMeta(nil, Meta{ReadyAt: 1, Attributes: attrs})
	for range 50 {
		// A fresh map with the same pairs: its iteration order differs.
		copied := make(map[string]string, len(attrs))
		for k, v := range attrs {
			copied[k] = v
		}
		if b := EncodeMeta(nil, Meta{ReadyAt: 1, Attributes: copied}); !bytes.Equal(b, first) {
			t.Fatalf("equal metadata encoded differently:\n%x\n%x", b, first)
		}
	}
}

// metaBytes builds metadata bytes by hand: version 1, ready-at, count,
// then the given keys and values.
func metaBytes(readyAt int64, count uint64, kv ...string) []byte {
	b := []byte{metaVersion}
	b = binary.AppendVarint(b, readyAt)
	b = binary.AppendUvarint(b, count)
	for _, s := range kv {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func TestMetaThatBreaksTheFormatIsRejected(t *testing.T) {
	var tooMany []string
	for i := range MaxAttributes + 1 {
		tooMany = append(tooMany, fmt.Sprint(i), "v")
	}
	valid := EncodeMeta(nil, Meta{ReadyAt: 1000, Attributes: map[string]string{"a": "1", "b": "2"}})
	tests := []struct {
		name string
		b    []byte
	}{
		{"version 0", []byte{0}},
		{"version 2", append([]byte{2}, valid[1:]...)},
		{"more than MaxAttributes", metaBytes(0, MaxAttributes+1, tooMany...)},
		{"huge count", metaBytes(0, math.MaxUint64)},
		{"duplicate key", metaBytes(0, 2, "k", "1", "k", "2")},
		{"duplicate key with equal values", metaBytes(0, 2, "k", "1", "k", "1")},
		{"duplicate empty key", metaBytes(0, 2, "", "", "", "")},
		{"trailing byte", append(bytes.Clone(valid), 0)},
		{"trailing bytes after no attributes", append(metaBytes(5, 0), 1, 2, 3)},
		{"fewer attributes than counted", metaBytes(0, 3, "a", "1", "b", "2")},
		{"key longer than MaxAttributeBytes", metaBytes(0, 1, strings.Repeat("k", MaxAttributeBytes+1), "")},
		{"value longer than MaxAttributeBytes", metaBytes(0, 1, "k", strings.Repeat("v", MaxAttributeBytes+1))},
		{"length past the end", append(metaBytes(0, 1), 10, 'a')},
		{"missing value", metaBytes(0, 1, "k")},
		{"missing count", []byte{1, 0}},
		{"missing ready-at", []byte{1}},
		{"unterminated ready-at", []byte{1, 0x80}},
		{"version 5", []byte{5, 0, 0}},
		{"version 4 without its priority", []byte{4}},
		{"version 4 with a trailing byte", []byte{4, 0, 0}},
		{"version 4 priority past 32 bits", []byte{4, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"version 4 unterminated priority", []byte{4, 0x80}},
		{"version 3 without flags", []byte{3, 0, 0}},
		{"version 3 with no flag set", []byte{3, 0, 0, 0}},
		{"version 3 with an unknown flag", []byte{3, 0, 0, 8}},
		{"priority past 32 bits", []byte{3, 0, 0, metaHasPriority, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"missing priority", []byte{3, 0, 0, metaHasPriority}},
		{"lease length 0", []byte{3, 0, 0, metaHasVisibility, 0}},
		{"lease length past MaxVisibility", binary.AppendUvarint([]byte{3, 0, 0, metaHasVisibility}, uint64(MaxVisibility)+1)},
		{"trailing byte after the lease length", []byte{3, 0, 0, metaHasVisibility, 1, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := DecodeMeta(tt.b)
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("DecodeMeta = %+v, %v; want ErrCorrupt", m, err)
			}
			if m.ReadyAt != 0 || m.Attributes != nil {
				t.Fatalf("DecodeMeta returned %+v with its error, want zero Meta", m)
			}
		})
	}
	for i := range len(valid) {
		if _, err := DecodeMeta(valid[:i]); i > 0 && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("metadata cut to %d of %d bytes: err %v, want ErrCorrupt", i, len(valid), err)
		}
	}
}

// MaxAttributeBytes is documented as the limit of keys and values
// together, "enforced by the encoder's callers and the decoder"; the
// decoder checks it per key and per value only.
func TestMetaWithAttributesOverMaxAttributeBytesInTotalIsRejected(t *testing.T) {
	half := strings.Repeat("x", MaxAttributeBytes/2+1)
	b := metaBytes(0, 2, "a", half, "b", half)
	if m, err := DecodeMeta(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("DecodeMeta of %d attribute bytes = %d attributes, %v; want ErrCorrupt", 2*len(half)+2, len(m.Attributes), err)
	}
}

// DecodeMeta returns a zero Meta with every error but one: too many
// attributes returned the ready-at it had already read. Replay uses
// meta.ReadyAt even when DecodeMeta fails, so such a message would stay
// delayed by metadata that was rejected.
func TestMetaRejectedForTooManyAttributesDecodesToZeroMeta(t *testing.T) {
	m, err := DecodeMeta(metaBytes(12345, MaxAttributes+1))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want ErrCorrupt", err)
	}
	if m.ReadyAt != 0 || m.Attributes != nil {
		t.Fatalf("DecodeMeta returned %+v with its error, want zero Meta", m)
	}
}
