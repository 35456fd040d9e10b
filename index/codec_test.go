package index

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math"
	"reflect"
	"testing"
)

// reseal recomputes the CRC of a state-log entry after a test edited it, so
// that the decoder's later checks are what rejects it.
func reseal(b []byte) []byte {
	binary.LittleEndian.PutUint32(b, crc32.Checksum(b[4:], castagnoli))
	return b
}

func TestEntryRoundTripsEveryEventType(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
	}{
		{"no events", nil},
		{"lease", []Event{{Type: EvLease, ID: 1, Attempt: 1, Time: 1_700_000_000_000_000_000}}},
		{"lease with max id, max attempt and max time", []Event{{Type: EvLease, ID: math.MaxUint64, Attempt: math.MaxUint16, Time: math.MaxInt64}}},
		{"lease with negative and min time", []Event{
			{Type: EvLease, ID: 2, Attempt: 2, Time: -1},
			{Type: EvLease, ID: 3, Attempt: 3, Time: math.MinInt64},
		}},
		{"ack", []Event{{Type: EvAck, ID: 7}}},
		{"ack of max id", []Event{{Type: EvAck, ID: math.MaxUint64}}},
		{"nack to the front at once", []Event{{Type: EvNack, ID: 9, Front: true}}},
		{"nack to the back after an id", []Event{{Type: EvNack, ID: 9, After: 12345}}},
		{"nack to the back after max id with max delay", []Event{{Type: EvNack, ID: math.MaxUint64, After: math.MaxUint64, Time: math.MaxInt64}}},
		{"nack to the front with negative ready-at", []Event{{Type: EvNack, ID: 1, Front: true, Time: math.MinInt64, After: 5}}},
		{"extend", []Event{{Type: EvExtend, ID: 4, Time: 99}}},
		{"extend to negative and min time", []Event{{Type: EvExtend, ID: 4, Time: -99}, {Type: EvExtend, ID: 5, Time: math.MinInt64}}},
		{"dead", []Event{{Type: EvDead, ID: 5}}},
		{"redrive", []Event{{Type: EvRedrive, ID: 6}}},
		{"remove", []Event{{Type: EvRemove, ID: 7}}},
		{"purge up to max id", []Event{{Type: EvPurge, ID: math.MaxUint64}}},
		{"expire", []Event{{Type: EvExpire, ID: 8}}},
		{"nack to a new priority", []Event{{Type: EvNack, ID: 9, After: 3, SetPriority: true, Priority: 0}}},
		{"nack in place, delayed, to a new priority", []Event{{Type: EvNack, ID: 9, InPlace: true, Time: 5, SetPriority: true, Priority: 7}}},
		{"nack to the front, delayed, to the highest priority", []Event{{Type: EvNack, ID: 9, Front: true, Time: 77, SetPriority: true, Priority: math.MaxUint32}}},
		{"bury to a priority beside a dead event that sets none", []Event{
			{Type: EvDead, ID: 5, SetPriority: true, Priority: 1 << 20},
			{Type: EvDead, ID: 6},
			{Type: EvNack, ID: 7, After: 7},
		}},
		{"every type in one entry", []Event{
			{Type: EvLease, ID: 1, Attempt: 1, Time: 10},
			{Type: EvAck, ID: 1},
			{Type: EvNack, ID: 2, Front: true, Time: 20},
			{Type: EvNack, ID: 3, Time: 0, After: 3},
			{Type: EvExtend, ID: 4, Time: 40},
			{Type: EvDead, ID: 5},
			{Type: EvRedrive, ID: 5},
			{Type: EvRemove, ID: 6},
			{Type: EvPurge, ID: 7},
			{Type: EvExpire, ID: 8},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b := EncodeEntry(append([]byte(nil), prefix...), tt.events)
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("EncodeEntry clobbered dst: %q", b)
			}
			b = b[len(prefix):]
			start := []Event{{Type: EvAck, ID: 42}}
			got, err := DecodeEntry(append([]Event(nil), start...), b)
			if err != nil {
				t.Fatalf("DecodeEntry: %v", err)
			}
			want := append(append([]Event(nil), start...), tt.events...)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
			}
			if again := EncodeEntry(nil, got[1:]); !bytes.Equal(again, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", again, b)
			}
		})
	}
}

func TestEntryLayoutIsCRCThenVersionThenEvents(t *testing.T) {
	b := EncodeEntry(nil, []Event{
		{Type: EvLease, ID: 300, Attempt: 2, Time: -3},
		{Type: EvNack, ID: 1, Front: true, Time: 5, After: 7},
		{Type: EvAck, ID: 2},
	})
	want := []byte{
		0, 0, 0, 0, // crc, filled below
		1,                      // version
		1, 0xac, 0x02, 2, 0x05, // lease, uvarint 300, attempt 2, zigzag -3
		3, 1, 1, 0x0a, 7, // nack, id 1, flags front, zigzag 5, after 7
		2, 2, // ack, id 2
	}
	binary.LittleEndian.PutUint32(want, crc32.Checksum(want[4:], crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(b, want) {
		t.Fatalf("encoding:\n got %x\nwant %x", b, want)
	}
}

// An entry is version 1 unless an event in it sets a priority, so that a
// queue that uses none stays readable by the build before priorities.
func TestEntryVersionIsTwoOnlyWhenAnEventNeedsIt(t *testing.T) {
	for _, tt := range []struct {
		events  []Event
		version byte
	}{
		{nil, 1},
		{[]Event{{Type: EvNack, ID: 1}, {Type: EvDead, ID: 2}}, 1},
		{[]Event{{Type: EvAck, ID: 1, SetPriority: true, Priority: 3}}, 1}, // only nack and dead carry one
		{[]Event{{Type: EvNack, ID: 1, SetPriority: true}}, 2},
		{[]Event{{Type: EvNack, ID: 1, InPlace: true}}, 2},
		{[]Event{{Type: EvAck, ID: 1, InPlace: true}}, 1}, // only a nack goes back in place
		{[]Event{{Type: EvAck, ID: 1}, {Type: EvDead, ID: 2, SetPriority: true, Priority: 9}}, 2},
	} {
		if b := EncodeEntry(nil, tt.events); b[4] != tt.version {
			t.Fatalf("EncodeEntry(%+v) is version %d, want %d", tt.events, b[4], tt.version)
		}
	}
	b := EncodeEntry(nil, []Event{{Type: EvDead, ID: 2}, {Type: EvNack, ID: 1, SetPriority: true, Priority: 300}})
	want := []byte{0, 0, 0, 0, 2, 5, 2, 0, 3, 1, flagPriority, 0, 0, 0xac, 0x02}
	binary.LittleEndian.PutUint32(want, crc32.Checksum(want[4:], crc32.MakeTable(crc32.Castagnoli)))
	if !bytes.Equal(b, want) {
		t.Fatalf("version 2 encoding:\n got %x\nwant %x", b, want)
	}
}

func TestEntryWithAnySingleBitFlippedIsRejected(t *testing.T) {
	entries := map[string][]byte{
		"empty":      EncodeEntry(nil, nil),
		"one":        EncodeEntry(nil, []Event{{Type: EvAck, ID: 1}}),
		"mixed":      EncodeEntry(nil, []Event{{Type: EvLease, ID: math.MaxUint64, Attempt: 65535, Time: math.MinInt64}, {Type: EvNack, ID: 77, Front: true, Time: 123456789, After: 1 << 40}, {Type: EvPurge, ID: 3}}),
		"extend":     EncodeEntry(nil, []Event{{Type: EvExtend, ID: 1 << 20, Time: -1}}),
		"priorities": EncodeEntry(nil, []Event{{Type: EvNack, ID: 3, SetPriority: true, Priority: 1 << 30}, {Type: EvDead, ID: 4, SetPriority: true, Priority: 2}}),
	}
	for name, orig := range entries {
		t.Run(name, func(t *testing.T) {
			for bit := range len(orig) * 8 {
				b := bytes.Clone(orig)
				b[bit/8] ^= 1 << (bit % 8)
				if evs, err := DecodeEntry(nil, b); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("flip of bit %d: err %v, events %+v; want ErrCorrupt", bit, err, evs)
				}
			}
		})
	}
}

func TestEntryTruncatedAtAnyLengthIsRejected(t *testing.T) {
	orig := EncodeEntry(nil, []Event{
		{Type: EvLease, ID: 1 << 50, Attempt: 300, Time: 1 << 60},
		{Type: EvNack, ID: 2, Time: -5, After: 1 << 33},
		{Type: EvAck, ID: 3},
	})
	for n := range len(orig) {
		if _, err := DecodeEntry(nil, orig[:n]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("entry cut to %d of %d bytes: err %v, want ErrCorrupt", n, len(orig), err)
		}
	}
}

func TestEntryThatDoesNotParseIsRejectedEvenWithAValidCRC(t *testing.T) {
	tests := []struct {
		name string
		body []byte // after the crc
	}{
		{"version 0", []byte{0}},
		{"version 3", []byte{3, 2, 1}},
		{"version 1 nack setting a priority", []byte{1, byte(EvNack), 1, flagPriority, 0, 0, 5}},
		{"nack with unknown flag 8", []byte{2, byte(EvNack), 1, 8, 0, 0}},
		{"version 1 nack in place", []byte{1, byte(EvNack), 1, flagInPlace, 0, 0}},
		{"nack without its priority", []byte{2, byte(EvNack), 1, flagPriority, 0, 0}},
		{"nack priority over 32 bits", []byte{2, byte(EvNack), 1, flagPriority, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x10}},
		{"version 2 dead without flags", []byte{2, byte(EvDead), 1}},
		{"dead with the front flag", []byte{2, byte(EvDead), 1, flagFront}},
		{"dead without its priority", []byte{2, byte(EvDead), 1, flagPriority}},
		{"event type 0", []byte{1, 0, 1}},
		{"event type 10", []byte{1, 10, 1}},
		{"event type 255", []byte{1, 255, 1}},
		{"event id 0", []byte{1, byte(EvAck), 0}},
		{"purge of id 0", []byte{1, byte(EvPurge), 0}},
		{"missing id", []byte{1, byte(EvAck)}},
		{"unterminated id", []byte{1, byte(EvAck), 0x80}},
		{"lease attempt 0", []byte{1, byte(EvLease), 1, 0, 0}},
		{"lease attempt 65536", []byte{1, byte(EvLease), 1, 0x80, 0x80, 0x04, 0}},
		{"lease without deadline", []byte{1, byte(EvLease), 1, 1}},
		{"extend without deadline", []byte{1, byte(EvExtend), 1}},
		{"nack without flags", []byte{1, byte(EvNack), 1}},
		{"nack with unknown flag", []byte{1, byte(EvNack), 1, 2, 0, 0}},
		{"nack without after", []byte{1, byte(EvNack), 1, 0, 0}},
		{"overlong varint", append([]byte{1, byte(EvAck)}, bytes.Repeat([]byte{0xff}, 10)...)},
		{"valid event then garbage", []byte{1, byte(EvAck), 1, 0xee}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := reseal(append([]byte{0, 0, 0, 0}, tt.body...))
			if evs, err := DecodeEntry(nil, b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, events %+v; want ErrCorrupt", err, evs)
			}
		})
	}
}
