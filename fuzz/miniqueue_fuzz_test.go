package fuzz

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spoolq/spool/api/miniqueue"
)

// fuzzCommandLimit is the command limit under fuzzing: small, so that
// mutations reach the over-long path.
const fuzzCommandLimit = 16

// FuzzMiniqueueCommands feeds arbitrary bytes, as a subscribe stream's
// body, to miniqueue.Decoder and every string it decodes to
// miniqueue.ParseCommand.
//
// Properties: neither panics; it never returns a string over its limit;
// it reads the body as miniqueue's own decoder
// (encoding/json's Decoder into a string) does, value by value: the same
// strings in the same order, ErrCommandTooLong exactly for the strings
// over the limit (and then goes on), io.EOF exactly where the body ends
// after whitespace, and an error where json.Decoder finds a syntax error
// or a value that is not a string; ParseCommand accepts exactly what
// miniqueue's strings.Split-and-switch accepts, with the same seconds.
func FuzzMiniqueueCommands(f *testing.F) {
	for _, s := range []string{
		`"INIT"` + "\n", `"INIT"` + "\n" + `"ACK"` + "\n", `"INIT""ACK""NACK""BACK""DACK 5"`,
		` "DACK -3" "DACK +7" "DACK 99999999999999999999" "DACK" "DACK " "DACK  5" "DACK 5 x"`,
		`"ACK now" "ack" "" " ACK" "INIT\u0020x"`, `"\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800"`,
		`"` + strings.Repeat("x", fuzzCommandLimit) + `"`, `"` + strings.Repeat("x", fuzzCommandLimit+1) + `""INIT"`,
		`"` + strings.Repeat(`\u0041`, 5) + `"`, "\"\xff\xfe\"", "\"a\x01\"", `"\x"`, `"\u12g4"`, `"abc`, `"\`,
		`{"a":1}`, `42`, `null`, `[]`, `true`, `ACK`, "\t\r\n ", "", `"INIT"]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ours := miniqueue.NewDecoder(bytes.NewReader(data), fuzzCommandLimit)
		theirs := json.NewDecoder(bytes.NewReader(data))
		for i := 0; ; i++ {
			got, err := ours.Next()
			var raw json.RawMessage
			jerr := theirs.Decode(&raw)
			if jerr == nil && (len(raw) == 0 || raw[0] != '"') {
				jerr = errors.New("not a string") // miniqueue: an error too, except null (see doc.go)
			}
			var want string
			if jerr == nil {
				if err := json.Unmarshal(raw, &want); err != nil {
					t.Fatalf("value %d: json.Decoder gave %q, which does not unmarshal: %v", i, raw, err)
				}
			}
			switch {
			case errors.Is(err, io.EOF):
				if !errors.Is(jerr, io.EOF) {
					t.Fatalf("value %d: clean end, json.Decoder says %v (%q)", i, jerr, want)
				}
				return
			case errors.Is(err, miniqueue.ErrCommandTooLong):
				if jerr != nil || len(raw)-2 <= fuzzCommandLimit {
					t.Fatalf("value %d: too long, json.Decoder gave %q (%d bytes), %v", i, raw, len(raw)-2, jerr)
				}
				continue
			case err != nil:
				if jerr == nil {
					t.Fatalf("value %d: error %v, json.Decoder gave %q", i, err, want)
				}
				return // the stream ends here
			}
			if jerr != nil || got != want {
				t.Fatalf("value %d: got %q, json.Decoder gave %q, %v", i, got, want, jerr)
			}
			if len(raw)-2 > fuzzCommandLimit {
				t.Fatalf("value %d: %q (%d bytes) over the limit was accepted", i, raw, len(raw)-2)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("value %d: %q is not UTF-8", i, got)
			}
			checkParseCommand(t, got)
		}
	})
}

// checkParseCommand compares ParseCommand with miniqueue's own parsing
// (http.go: strings.Split(cmd, " "), a switch on the first word, and
// strconv.Atoi of DACK's second).
func checkParseCommand(t *testing.T, s string) {
	words := strings.Split(s, " ")
	c, err := miniqueue.ParseCommand(s)
	verbs := map[string]miniqueue.Verb{"INIT": miniqueue.Init, "ACK": miniqueue.Ack, "NACK": miniqueue.Nack, "BACK": miniqueue.Back, "DACK": miniqueue.Dack}
	v, known := verbs[words[0]]
	switch {
	case !known:
		if !errors.Is(err, miniqueue.ErrUnknownCommand) {
			t.Fatalf("ParseCommand(%q) = %+v, %v; miniqueue: unrecognised", s, c, err)
		}
	case v == miniqueue.Dack && len(words) < 2:
		if !errors.Is(err, miniqueue.ErrDackArgs) {
			t.Fatalf("ParseCommand(%q) = %+v, %v; miniqueue: too few arguments", s, c, err)
		}
	case v == miniqueue.Dack:
		n, aerr := strconv.Atoi(words[1])
		if aerr != nil {
			if !errors.Is(err, miniqueue.ErrDackSeconds) {
				t.Fatalf("ParseCommand(%q) = %+v, %v; miniqueue: invalid duration", s, c, err)
			}
		} else if err != nil || c != (miniqueue.Command{Verb: v, Seconds: n}) {
			t.Fatalf("ParseCommand(%q) = %+v, %v; miniqueue: DACK %d", s, c, err, n)
		}
	default:
		if err != nil || c != (miniqueue.Command{Verb: v}) {
			t.Fatalf("ParseCommand(%q) = %+v, %v; miniqueue: %s", s, c, err, words[0])
		}
	}
}
