package miniqueue

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestDecoder(t *testing.T) {
	t.Run("reads strings separated by whitespace or nothing", func(t *testing.T) {
		d := NewDecoder(strings.NewReader(" \"INIT\"\n\"ACK\"\"DACK 5\"\r\n\t\"\\u00e9\\n\" "), 0)
		for _, want := range []string{"INIT", "ACK", "DACK 5", "é\n"} {
			got, err := d.Next()
			if err != nil || got != want {
				t.Fatalf("got %q, %v; want %q", got, err, want)
			}
		}
		if _, err := d.Next(); err != io.EOF {
			t.Fatalf("at the end: %v, want io.EOF", err)
		}
	})
	t.Run("skips an over-long string without keeping it, and goes on", func(t *testing.T) {
		long := `"` + strings.Repeat(`ab\"`, 1<<20) + `"`
		d := NewDecoder(strings.NewReader(long+`"ACK"`), 64)
		if _, err := d.Next(); !errors.Is(err, ErrCommandTooLong) {
			t.Fatalf("got %v, want ErrCommandTooLong", err)
		}
		if cap(d.raw) > 256 {
			t.Fatalf("kept %d bytes of a %d-byte string", cap(d.raw), len(long))
		}
		if got, err := d.Next(); got != "ACK" || err != nil {
			t.Fatalf("after it: %q, %v", got, err)
		}
	})
	t.Run("a string of exactly the limit is a command", func(t *testing.T) {
		d := NewDecoder(strings.NewReader(`"`+strings.Repeat("x", 8)+`"`), 8)
		if got, err := d.Next(); len(got) != 8 || err != nil {
			t.Fatalf("%q, %v", got, err)
		}
	})
	for _, in := range []string{`{"a":1}`, `42`, `null`, `ACK`, "\"a\x01\"", `"\x"`, `"\u12g4"`} {
		t.Run("refuses "+in, func(t *testing.T) {
			if _, err := NewDecoder(strings.NewReader(in), 0).Next(); !errors.Is(err, ErrSyntax) {
				t.Fatalf("got %v, want ErrSyntax", err)
			}
		})
	}
	t.Run("a body ending inside a string is an unexpected EOF", func(t *testing.T) {
		for _, in := range []string{`"AC`, `"\`, `"\u12`} {
			if _, err := NewDecoder(strings.NewReader(in), 0).Next(); err != io.ErrUnexpectedEOF {
				t.Fatalf("%q: got %v", in, err)
			}
		}
	})
}

func TestParseCommand(t *testing.T) {
	cases := []struct {
		in   string
		want Command
		err  error
	}{
		{"INIT", Command{Verb: Init}, nil},
		{"ACK", Command{Verb: Ack}, nil},
		{"ACK extra words", Command{Verb: Ack}, nil},
		{"NACK", Command{Verb: Nack}, nil},
		{"BACK", Command{Verb: Back}, nil},
		{"DACK 5", Command{Verb: Dack, Seconds: 5}, nil},
		{"DACK -5", Command{Verb: Dack, Seconds: -5}, nil},
		{"DACK 5 more", Command{Verb: Dack, Seconds: 5}, nil},
		{"DACK", Command{}, ErrDackArgs},
		{"DACK ", Command{}, ErrDackSeconds},
		{"DACK  5", Command{}, ErrDackSeconds},
		{"DACK 1.5", Command{}, ErrDackSeconds},
		{"ack", Command{}, ErrUnknownCommand},
		{" ACK", Command{}, ErrUnknownCommand},
		{"", Command{}, ErrUnknownCommand},
	}
	for _, tc := range cases {
		got, err := ParseCommand(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseCommand(%q) = %+v, %v; want %+v, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	if Dack.String() != "DACK" || Verb(9).String() != "Verb(9)" {
		t.Error("Verb.String")
	}
}
