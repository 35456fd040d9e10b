package miniqueue

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// The subscribe stream's request body: what the client sends.

// DefaultMaxCommandBytes bounds one command: the bytes between a JSON
// string's quotes, escapes included. miniqueue's commands are at most a
// few dozen bytes ("DACK 86400").
const DefaultMaxCommandBytes = 4096

// Errors the decoder and ParseCommand return; the text of each is the
// error payload the stream sends for it.
var (
	// ErrSyntax is returned by Decoder.Next when the body is not a
	// sequence of JSON strings (a number, an object, a torn escape, a
	// control character in a string, ...). The stream cannot go on: a
	// JSON stream has no point to resynchronise at. The text is
	// miniqueue's.
	ErrSyntax = errors.New("error decoding command")

	// ErrCommandTooLong is returned by Decoder.Next for a string longer
	// than its limit. The string was read to its end without being kept,
	// so the next command decodes normally.
	ErrCommandTooLong = errors.New("command too long")

	// ErrUnknownCommand is returned by ParseCommand for a string whose
	// first word is not a command. miniqueue's text.
	ErrUnknownCommand = errors.New("unrecognised command received")

	// ErrDackArgs is returned by ParseCommand for a DACK without its
	// seconds. miniqueue's text.
	ErrDackArgs = errors.New("too few arguments provided to DACK")

	// ErrDackSeconds is returned by ParseCommand for a DACK whose seconds
	// are not a decimal integer. miniqueue's text.
	ErrDackSeconds = errors.New("invalid DACK duration argument at position [1]")
)

// Decoder reads commands from a subscribe stream's body: JSON strings,
// one after another, separated by JSON whitespace or by nothing at all
// (`"INIT""ACK"` is two commands), as miniqueue's json.Decoder reads them.
// Its memory is bounded whatever the input: a bufio.Reader and one
// command's bytes.
type Decoder struct {
	r   *bufio.Reader
	max int
	raw []byte // the current string, quotes included, while it fits
}

// NewDecoder returns a Decoder reading r; a string longer than maxBytes
// (DefaultMaxCommandBytes if ≤ 0) is skipped with ErrCommandTooLong.
func NewDecoder(r io.Reader, maxBytes int) *Decoder {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxCommandBytes
	}
	return &Decoder{r: bufio.NewReaderSize(r, 1024), max: maxBytes}
}

// Next returns the next command string. It returns io.EOF at a clean end
// (only whitespace after the last string), ErrCommandTooLong for a string
// over the limit (the stream can go on), an error wrapping ErrSyntax for
// input that is not a JSON string (it cannot), io.ErrUnexpectedEOF for a
// body that ends inside a string, and the reader's own errors.
func (d *Decoder) Next() (string, error) {
	c, err := d.skipSpace()
	if err != nil {
		return "", err
	}
	if c != '"' {
		return "", fmt.Errorf("%w: %q where a JSON string should start", ErrSyntax, c)
	}
	d.raw = append(d.raw[:0], '"')
	long, plain := false, true // plain: no escapes, all ASCII, so the bytes are the string
	keep := func(b ...byte) {
		if long {
			return
		}
		if len(d.raw)-1+len(b) > d.max {
			long = true
			return
		}
		d.raw = append(d.raw, b...)
	}
	for {
		c, err := d.readByte()
		if err != nil {
			return "", err
		}
		switch {
		case c == '"':
			if long {
				return "", ErrCommandTooLong
			}
			if plain {
				return string(d.raw[1:]), nil
			}
			d.raw = append(d.raw, '"')
			var s string
			// The bytes were checked above; Unmarshal decodes the escapes
			// and replaces invalid UTF-8 exactly as miniqueue's decoder does.
			if err := json.Unmarshal(d.raw, &s); err != nil {
				return "", fmt.Errorf("%w: %v", ErrSyntax, err)
			}
			return s, nil
		case c < 0x20:
			return "", fmt.Errorf("%w: control character %q in a string", ErrSyntax, c)
		case c == '\\':
			plain = false
			e, err := d.readByte()
			if err != nil {
				return "", err
			}
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				keep(c, e)
			case 'u':
				var hex [4]byte
				for i := range hex {
					if hex[i], err = d.readByte(); err != nil {
						return "", err
					}
					if !isHex(hex[i]) {
						return "", fmt.Errorf("%w: %q in a \\u escape", ErrSyntax, hex[i])
					}
				}
				keep(c, e, hex[0], hex[1], hex[2], hex[3])
			default:
				return "", fmt.Errorf("%w: invalid escape \\%c", ErrSyntax, e)
			}
		default:
			if c >= 0x80 {
				plain = false
			}
			keep(c)
		}
	}
}

// skipSpace returns the first byte after JSON whitespace, or io.EOF if
// the body ends first.
func (d *Decoder) skipSpace() (byte, error) {
	for {
		c, err := d.r.ReadByte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

// readByte reads a byte inside a string, where the body must not end.
func (d *Decoder) readByte() (byte, error) {
	c, err := d.r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Verb is a command's first word.
type Verb uint8

// The commands of miniqueue's README ("Commands").
const (
	Init Verb = iota + 1 // deliver a message (the stream's first command)
	Ack                  // the message is done
	Nack                 // back to the front of the queue
	Back                 // back to the back of the queue
	Dack                 // back to the front after Seconds
)

var verbNames = [...]string{Init: "INIT", Ack: "ACK", Nack: "NACK", Back: "BACK", Dack: "DACK"}

func (v Verb) String() string {
	if v >= Init && v <= Dack {
		return verbNames[v]
	}
	return "Verb(" + strconv.Itoa(int(v)) + ")"
}

// Command is one parsed command.
type Command struct {
	Verb    Verb
	Seconds int // DACK's delay, as sent: may be negative or huge
}

// ParseCommand parses a command string as miniqueue does: the words are
// what strings.Split(s, " ") gives, the first one names the command
// (exactly, in capitals), words after the ones a command uses are
// ignored ("ACK now" is ACK), and DACK's second word is a decimal integer
// (strconv.Atoi: a sign is allowed, "DACK  5" with two spaces is not).
func ParseCommand(s string) (Command, error) {
	word, rest, more := strings.Cut(s, " ")
	for v := Init; v <= Dack; v++ {
		if word != verbNames[v] {
			continue
		}
		if v != Dack {
			return Command{Verb: v}, nil
		}
		if !more {
			return Command{}, ErrDackArgs
		}
		arg, _, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(arg)
		if err != nil {
			return Command{}, ErrDackSeconds
		}
		return Command{Verb: Dack, Seconds: n}, nil
	}
	return Command{}, ErrUnknownCommand
}
