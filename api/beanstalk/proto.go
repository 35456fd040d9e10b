package beanstalk

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// Limits of the protocol, as beanstalkd 1.12 and 1.13 enforce them.
const (
	// MaxLineBytes bounds a command line, "\r\n" included (beanstalkd's
	// LINE_BUF_SIZE). The longest well-formed command,
	// "pause-tube <200-byte name> 4294967295", is exactly this long.
	MaxLineBytes = 224

	// MaxTubeNameBytes bounds a tube name.
	MaxTubeNameBytes = 200

	// DefaultMaxJobBytes is beanstalkd's default max-job-size (-z): a put
	// of more bytes gets JOB_TOO_BIG. A body of exactly this size is
	// accepted, whatever protocol.txt's "less than" says.
	DefaultMaxJobBytes = 1<<16 - 1

	// readBufferBytes is the Reader's bufio buffer: room for several
	// pipelined commands per read(2), and at least one line.
	readBufferBytes = 4096

	// bodyChunkBytes is the first allocation for a job body; it doubles
	// as bytes arrive, so a client that announces a large body and sends
	// little costs little.
	bodyChunkBytes = 4096

	// maxReserveTimeout is the largest reserve-with-timeout beanstalkd
	// 1.13 accepts (INT_MAX seconds).
	maxReserveTimeout = math.MaxInt32
)

// Errors the Reader returns for a malformed command; each one's text is
// the reply line's word (AppendError writes it). After any of them the
// connection goes on with the next command, as in beanstalkd.
var (
	// ErrBadFormat: a line over MaxLineBytes (returned once its end has
	// been read), a NUL byte in a line, a malformed number, a bad tube
	// name, missing or extra arguments.
	ErrBadFormat = errors.New("BAD_FORMAT")

	// ErrUnknownCommand: the line starts with no command's name.
	ErrUnknownCommand = errors.New("UNKNOWN_COMMAND")

	// ErrExpectedCRLF: a put's body was not followed by "\r\n". The two
	// bytes read in its place are consumed.
	ErrExpectedCRLF = errors.New("EXPECTED_CRLF")

	// ErrJobTooBig: a put announced more bytes than the Reader's maximum.
	// The body and its two trailing bytes were read and thrown away
	// before the error is returned, as beanstalkd does.
	ErrJobTooBig = errors.New("JOB_TOO_BIG")
)

// Error replies that only a server can decide; they are here so that the
// server maps its outcomes to words through AppendError like the rest.
var (
	// ErrNotFound: no such job or tube, or not in a state the command
	// applies to, or reserved by another connection.
	ErrNotFound = errors.New("NOT_FOUND")

	// ErrTimedOut: reserve-with-timeout's time passed with no job, or the
	// client half-closed its side while waiting.
	ErrTimedOut = errors.New("TIMED_OUT")

	// ErrDeadlineSoon: a reserve by a connection one of whose jobs is in
	// the last second of its TTR.
	ErrDeadlineSoon = errors.New("DEADLINE_SOON")

	// ErrNotIgnored: ignore of the only tube watched.
	ErrNotIgnored = errors.New("NOT_IGNORED")

	// ErrDraining: a put while the server is in drain mode.
	ErrDraining = errors.New("DRAINING")

	// ErrOutOfMemory: the server cannot take the job now.
	ErrOutOfMemory = errors.New("OUT_OF_MEMORY")

	// ErrInternalError: a bug in the server. AppendError writes it for
	// any error that is none of these sentinels, so that no internal
	// error text reaches a client.
	ErrInternalError = errors.New("INTERNAL_ERROR")
)

// errorReplies lists every sentinel AppendError knows, in no particular
// order; the first that errors.Is matches wins.
var errorReplies = []error{
	ErrBadFormat, ErrUnknownCommand, ErrExpectedCRLF, ErrJobTooBig,
	ErrNotFound, ErrTimedOut, ErrDeadlineSoon, ErrNotIgnored,
	ErrDraining, ErrOutOfMemory, ErrInternalError,
}

// Verb names a command of the protocol. The zero Verb is no command.
type Verb uint8

// The commands, in protocol.txt's order.
const (
	Put Verb = iota + 1
	Use
	Reserve
	ReserveWithTimeout
	ReserveJob
	Delete
	Release
	Bury
	Touch
	Watch
	Ignore
	Peek
	PeekReady
	PeekDelayed
	PeekBuried
	Kick
	KickJob
	StatsJob
	StatsTube
	Stats
	ListTubes
	ListTubeUsed
	ListTubesWatched
	Quit
	PauseTube
)

var verbNames = [...]string{
	Put: "put", Use: "use", Reserve: "reserve", ReserveWithTimeout: "reserve-with-timeout",
	ReserveJob: "reserve-job", Delete: "delete", Release: "release", Bury: "bury",
	Touch: "touch", Watch: "watch", Ignore: "ignore", Peek: "peek",
	PeekReady: "peek-ready", PeekDelayed: "peek-delayed", PeekBuried: "peek-buried",
	Kick: "kick", KickJob: "kick-job", StatsJob: "stats-job", StatsTube: "stats-tube",
	Stats: "stats", ListTubes: "list-tubes", ListTubeUsed: "list-tube-used",
	ListTubesWatched: "list-tubes-watched", Quit: "quit", PauseTube: "pause-tube",
}

// String returns the command's name as a client sends it.
func (v Verb) String() string {
	if int(v) < len(verbNames) && verbNames[v] != "" {
		return verbNames[v]
	}
	return "Verb(" + strconv.Itoa(int(v)) + ")"
}

// Command is one parsed command. Only the fields its Verb uses are set:
//
//	put                   Pri Delay TTR Body
//	use watch ignore      Tube
//	stats-tube            Tube
//	pause-tube            Tube Delay
//	reserve-with-timeout  Timeout
//	release               ID Pri Delay
//	bury                  ID Pri
//	kick                  Bound
//	reserve-job delete touch peek kick-job stats-job   ID
//
// Numbers are as the client sent them: beanstalkd raises a TTR of 0 and a
// pause-tube delay of 0 to 1 second, and that is the server's business.
type Command struct {
	Verb    Verb
	ID      uint64
	Pri     uint32
	Delay   uint32 // seconds
	TTR     uint32 // seconds
	Timeout uint32 // seconds, at most 2^31-1
	Bound   uint32
	Tube    string
	Body    []byte // owned by the caller; len(Body) is put's <bytes>
}

// Append appends c in its canonical form, the bytes a client sends for
// it: a line and "\r\n", then for put the body and "\r\n". Reading them
// back gives c again.
func (c Command) Append(dst []byte) []byte {
	dst = append(dst, c.Verb.String()...)
	num := func(n uint64) { dst = strconv.AppendUint(append(dst, ' '), n, 10) }
	switch c.Verb {
	case Put:
		num(uint64(c.Pri))
		num(uint64(c.Delay))
		num(uint64(c.TTR))
		num(uint64(len(c.Body)))
		dst = append(append(dst, "\r\n"...), c.Body...)
	case Use, Watch, Ignore, StatsTube:
		dst = append(append(dst, ' '), c.Tube...)
	case PauseTube:
		dst = append(append(dst, ' '), c.Tube...)
		num(uint64(c.Delay))
	case ReserveWithTimeout:
		num(uint64(c.Timeout))
	case Release:
		num(c.ID)
		num(uint64(c.Pri))
		num(uint64(c.Delay))
	case Bury:
		num(c.ID)
		num(uint64(c.Pri))
	case Kick:
		num(uint64(c.Bound))
	case ReserveJob, Delete, Touch, Peek, KickJob, StatsJob:
		num(c.ID)
	}
	return append(dst, "\r\n"...)
}

// Reader reads commands from one connection. Its memory is bounded
// whatever the client sends: a fixed read buffer of 4 KiB, and for a put
// the body, which is at most the maximum job size and allocated as its
// bytes arrive (see the package doc). A Reader is not safe for
// concurrent use.
type Reader struct {
	br     *bufio.Reader
	maxJob int64
	line   [MaxLineBytes]byte // the current line, copied out of br
}

// NewReader returns a Reader over r taking job bodies up to maxJobBytes
// (DefaultMaxJobBytes if ≤ 0).
func NewReader(r io.Reader, maxJobBytes int) *Reader {
	if maxJobBytes <= 0 {
		maxJobBytes = DefaultMaxJobBytes
	}
	return &Reader{br: bufio.NewReaderSize(r, readBufferBytes), maxJob: int64(maxJobBytes)}
}

// Next reads the next command, and for put its body.
//
// It returns an error wrapping ErrBadFormat, ErrUnknownCommand,
// ErrExpectedCRLF or ErrJobTooBig for a malformed command, after which
// the next call reads the next command; the server replies with the
// error's word. Where beanstalkd counts such a command in its cmd-*
// stats (a put that is too big, has trailing bytes or no CRLF after its
// body; a pause-tube whose name is invalid), the Command has that Verb
// and no other field; otherwise it is the zero Command.
//
// It returns io.EOF when the input ends between commands,
// io.ErrUnexpectedEOF when it ends inside one (beanstalkd then closes the
// connection without a reply), and the underlying reader's errors, after
// which the Reader must not be used again.
func (r *Reader) Next() (Command, error) {
	line, err := r.readLine()
	if err != nil {
		return Command{}, err
	}
	c, n, err := parseLine(line)
	if c.Verb != Put || !(err == nil || errors.Is(err, errTrailing)) {
		return c, err
	}
	// beanstalkd checks the size before the trailing bytes.
	if n > uint64(r.maxJob) {
		if err := r.discard(int64(n) + 2); err != nil {
			return Command{}, err
		}
		return Command{Verb: Put}, fmt.Errorf("%w: %d bytes, at most %d", ErrJobTooBig, n, r.maxJob)
	}
	if err != nil {
		// The body is not read: it is the next command line.
		return Command{Verb: Put}, fmt.Errorf("%w: put: bytes after <bytes>", ErrBadFormat)
	}
	body, err := r.readBody(int(n))
	if err != nil {
		if errors.Is(err, ErrExpectedCRLF) {
			return Command{Verb: Put}, err
		}
		return Command{}, err
	}
	c.Body = body
	return c, nil
}

// readLine returns the next command line without its "\r\n", in r.line.
//
// It finds the line's end as beanstalkd does, which is not simply "up to
// the first \r\n": beanstalkd reads into a 224-byte buffer and looks only
// at the first '\r' in it (scan_line_end). If that '\r' is followed by
// '\n' the line ends there; if not, no line can end in this buffer. Once
// the buffer is full with no line end, its bytes are thrown away, and so
// is every following 224-byte window until one holds a line end: then
// the over-long line is answered BAD_FORMAT. Windows start where a
// command starts, or where the previous window was thrown away. So a
// "\r\n" split across two windows is missed (a 225-byte line swallows
// the command after it), and a stray '\r' before a line's "\r\n" leaves
// the line unanswered until the window fills.
func (r *Reader) readLine() ([]byte, error) {
	overlong := false
	for {
		w := min(r.br.Buffered(), MaxLineBytes)
		if w > 0 {
			win, _ := r.br.Peek(w) // buffered already: cannot fail
			if i := bytes.IndexByte(win[:w-1], '\r'); i >= 0 && win[i+1] == '\n' {
				n := copy(r.line[:], win[:i])
				r.br.Discard(i + 2)
				if overlong {
					return nil, fmt.Errorf("%w: line over %d bytes", ErrBadFormat, MaxLineBytes)
				}
				return r.line[:n], nil
			}
			if w == MaxLineBytes {
				r.br.Discard(w)
				overlong = true
				continue
			}
		}
		// w == Buffered() < MaxLineBytes: wait for at least one more byte.
		if _, err := r.br.Peek(w + 1); err != nil {
			if errors.Is(err, io.EOF) {
				if w == 0 && !overlong {
					return nil, io.EOF
				}
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
}

// readBody reads a put's n-byte body and the "\r\n" after it. The body
// grows by doubling from bodyChunkBytes as bytes arrive, so its capacity
// never exceeds n, and an n the client never sends costs at most a
// chunk.
func (r *Reader) readBody(n int) ([]byte, error) {
	body := make([]byte, 0, min(n, bodyChunkBytes))
	for len(body) < n {
		if len(body) == cap(body) {
			grown := make([]byte, len(body), min(2*cap(body), n))
			copy(grown, body)
			body = grown
		}
		m, err := r.br.Read(body[len(body):cap(body)])
		body = body[:len(body)+m]
		if err != nil && len(body) < n {
			return nil, unexpected(err)
		}
	}
	var crlf [2]byte
	if _, err := io.ReadFull(r.br, crlf[:]); err != nil {
		return nil, unexpected(err)
	}
	if crlf != [2]byte{'\r', '\n'} {
		return nil, fmt.Errorf("%w: %q after the body", ErrExpectedCRLF, crlf[:])
	}
	return body, nil
}

// discard reads and drops n bytes, through the read buffer only.
func (r *Reader) discard(n int64) error {
	for n > 0 {
		m, err := r.br.Discard(int(min(n, 1<<30)))
		n -= int64(m)
		if err != nil {
			return unexpected(err)
		}
	}
	return nil
}

// unexpected turns the end of input inside a command into
// io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// errTrailing is parseLine's answer to a put line with bytes after its
// <bytes>: Next decides between JOB_TOO_BIG and BAD_FORMAT.
var errTrailing = errors.New("trailing bytes after put")

// commandPrefixes is beanstalkd's which_cmd: the first entry that is a
// prefix of the line names the command. Order matters ("reserve" last of
// the reserves), and a prefix match is all there is: "quitter" is quit,
// "reserved" is a reserve with trailing garbage (BAD_FORMAT), and
// "pause-tubefoo 5" pauses tube "foo".
var commandPrefixes = []struct {
	prefix string
	verb   Verb
}{
	{"put ", Put}, {"peek ", Peek}, {"peek-ready", PeekReady}, {"peek-delayed", PeekDelayed},
	{"peek-buried", PeekBuried}, {"reserve-with-timeout ", ReserveWithTimeout},
	{"reserve-job ", ReserveJob}, {"reserve", Reserve}, {"delete ", Delete},
	{"release ", Release}, {"bury ", Bury}, {"kick ", Kick}, {"kick-job ", KickJob},
	{"touch ", Touch}, {"stats-job ", StatsJob}, {"stats-tube ", StatsTube}, {"stats", Stats},
	{"use ", Use}, {"watch ", Watch}, {"ignore ", Ignore},
	{"list-tubes-watched", ListTubesWatched}, {"list-tube-used", ListTubeUsed},
	{"list-tubes", ListTubes}, {"quit", Quit}, {"pause-tube", PauseTube},
}

// parseLine parses one command line (without "\r\n"). For put it also
// returns the <bytes> announced; Next reads the body.
func parseLine(line []byte) (c Command, bodyBytes uint64, err error) {
	if bytes.IndexByte(line, 0) >= 0 {
		// beanstalkd NUL-terminates the line and compares strlen.
		return Command{}, 0, fmt.Errorf("%w: NUL byte in the line", ErrBadFormat)
	}
	var args []byte
	for _, p := range commandPrefixes {
		if bytes.HasPrefix(line, []byte(p.prefix)) {
			c.Verb, args = p.verb, line[len(p.prefix):]
			break
		}
	}
	bad := func(what string) (Command, uint64, error) {
		return Command{}, 0, fmt.Errorf("%w: %s: %s", ErrBadFormat, c.Verb, what)
	}
	var ok bool
	switch c.Verb {
	case 0:
		return Command{}, 0, ErrUnknownCommand
	case Quit:
	case PeekReady, PeekDelayed, PeekBuried, Reserve, Stats, ListTubes, ListTubeUsed, ListTubesWatched:
		if len(args) != 0 {
			return bad("trailing bytes")
		}
	case Use, Watch, Ignore, StatsTube:
		if !validTube(args) {
			return bad("invalid tube name")
		}
		c.Tube = string(args)
	case ReserveJob, Delete, Touch, Peek, KickJob, StatsJob:
		if c.ID, args, ok = readUint(args, 64); !ok || len(args) != 0 {
			return bad("<id>")
		}
	case Release:
		if c.ID, args, ok = readUint(args, 64); !ok {
			return bad("<id>")
		}
		if c.Pri, args, ok = readUint32(args); !ok {
			return bad("<pri>")
		}
		if c.Delay, args, ok = readUint32(args); !ok || len(args) != 0 {
			return bad("<delay>")
		}
	case Bury:
		if c.ID, args, ok = readUint(args, 64); !ok {
			return bad("<id>")
		}
		if c.Pri, args, ok = readUint32(args); !ok || len(args) != 0 {
			return bad("<pri>")
		}
	case ReserveWithTimeout:
		// beanstalkd 1.13 reads a uint32 up to INT_MAX and ignores what
		// follows it (1.12 used strtol: see the package doc).
		if c.Timeout, _, ok = readUint32(args); !ok || c.Timeout > maxReserveTimeout {
			return bad("<seconds>")
		}
	case Kick:
		b, ok := readStrtoul(args)
		if !ok {
			return bad("<bound>")
		}
		c.Bound = uint32(b) // beanstalkd keeps strtoul's result in an unsigned int
	case PauseTube:
		// The name is the run of name bytes after any spaces (no space
		// needed after "pause-tube"), checked only once the delay parsed.
		args = bytes.TrimLeft(args, " ")
		n := 0
		for n < len(args) && nameByte[args[n]] {
			n++
		}
		if n == 0 {
			return bad("<tube>")
		}
		name := args[:n]
		if c.Delay, args, ok = readUint32(args[n:]); !ok || len(args) != 0 {
			return bad("<delay>")
		}
		if !validTube(name) {
			// beanstalkd has counted the command by now.
			return Command{Verb: PauseTube}, 0, fmt.Errorf("%w: pause-tube: invalid tube name", ErrBadFormat)
		}
		c.Tube = string(name)
	case Put:
		var n uint64
		for i, name := range [4]string{"<pri>", "<delay>", "<ttr>", "<bytes>"} {
			var v uint32
			if v, args, ok = readUint32(args); !ok {
				return bad(name)
			}
			switch i {
			case 0:
				c.Pri = v
			case 1:
				c.Delay = v
			case 2:
				c.TTR = v
			case 3:
				n = uint64(v)
			}
		}
		if len(args) != 0 {
			return c, n, errTrailing
		}
		return c, n, nil
	}
	return c, 0, nil
}

// nameByte is the set of bytes a tube name is made of.
var nameByte = func() (set [256]bool) {
	for _, b := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-+/;.$_()") {
		set[b] = true
	}
	return set
}()

// validTube reports whether name is a tube name: 1 to 200 name bytes, not
// starting with '-'.
func validTube(name []byte) bool {
	if len(name) == 0 || len(name) > MaxTubeNameBytes || name[0] == '-' {
		return false
	}
	for _, b := range name {
		if !nameByte[b] {
			return false
		}
	}
	return true
}

// ValidTube reports whether name is a valid tube name: 1 to 200 bytes of
// [A-Za-z0-9+/;.$_()-], not starting with '-'. ".", ".." and "a/b" are
// valid.
func ValidTube(name string) bool { return validTube([]byte(name)) }

// readUint reads a number as beanstalkd's read_u64 and read_u32 do: any
// spaces (only ' '), then a decimal digit (no sign), then all the digits
// that follow, which must fit in bits bits. It returns what follows the
// digits.
func readUint(s []byte, bits uint) (v uint64, rest []byte, ok bool) {
	s = bytes.TrimLeft(s, " ")
	if len(s) == 0 || s[0] < '0' || s[0] > '9' {
		return 0, s, false
	}
	limit := uint64(math.MaxUint64) >> (64 - bits)
	i := 0
	for ; i < len(s) && '0' <= s[i] && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (limit-d)/10 {
			for i < len(s) && '0' <= s[i] && s[i] <= '9' {
				i++
			}
			return 0, s[i:], false
		}
		v = v*10 + d
	}
	return v, s[i:], true
}

// readUint32 is readUint for 32 bits.
func readUint32(s []byte) (uint32, []byte, bool) {
	v, rest, ok := readUint(s, 32)
	return uint32(v), rest, ok
}

// readStrtoul reads kick's bound as glibc's strtoul(s, &end, 10) on a
// 64-bit system does, and as beanstalkd accepts it: leading C white space
// (" \t\n\v\f\r"), an optional sign, at least one digit; bytes after the
// digits are ignored; a value over 2^64-1 fails (ERANGE); "-n" is
// 2^64-n.
func readStrtoul(s []byte) (uint64, bool) {
	s = bytes.TrimLeft(s, " \t\n\v\f\r")
	neg := false
	if len(s) > 0 && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	v, _, ok := readUint(s, 64)
	if !ok || (len(s) > 0 && s[0] == ' ') {
		// readUint would skip spaces after the sign; strtoul does not.
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}

// Replies. Each Append function appends one whole reply, "\r\n" included.

// Word is a reply that is one word and carries nothing else. The error
// words are the sentinel errors' (AppendError).
type Word string

// The words a successful command may reply.
const (
	Deleted  Word = "DELETED"  // delete
	Released Word = "RELEASED" // release
	Buried   Word = "BURIED"   // bury; release when the server is out of memory
	Touched  Word = "TOUCHED"  // touch
	Kicked   Word = "KICKED"   // kick-job (kick replies AppendKickedCount)
	Paused   Word = "PAUSED"   // pause-tube
)

// AppendWord appends the reply w.
func AppendWord(dst []byte, w Word) []byte {
	return append(append(dst, w...), "\r\n"...)
}

// AppendError appends the error reply for err: the word of the first
// sentinel of this package that errors.Is finds in it, or INTERNAL_ERROR
// for any other error (its text is never sent).
func AppendError(dst []byte, err error) []byte {
	w := ErrInternalError.Error()
	for _, e := range errorReplies {
		if errors.Is(err, e) {
			w = e.Error()
			break
		}
	}
	return append(append(dst, w...), "\r\n"...)
}

// AppendInserted appends put's "INSERTED <id>".
func AppendInserted(dst []byte, id uint64) []byte {
	return appendIDLine(dst, "INSERTED ", id)
}

// AppendBuriedID appends put's "BURIED <id>": the job was made but the
// server could not make it ready.
func AppendBuriedID(dst []byte, id uint64) []byte {
	return appendIDLine(dst, "BURIED ", id)
}

func appendIDLine(dst []byte, word string, id uint64) []byte {
	return append(strconv.AppendUint(append(dst, word...), id, 10), "\r\n"...)
}

// AppendReserved appends "RESERVED <id> <bytes>\r\n<body>\r\n", the reply
// to reserve, reserve-with-timeout and reserve-job.
func AppendReserved(dst []byte, id uint64, body []byte) []byte {
	return appendJob(dst, "RESERVED ", id, body)
}

// AppendFound appends "FOUND <id> <bytes>\r\n<body>\r\n", the reply to
// peek, peek-ready, peek-delayed and peek-buried.
func AppendFound(dst []byte, id uint64, body []byte) []byte {
	return appendJob(dst, "FOUND ", id, body)
}

func appendJob(dst []byte, word string, id uint64, body []byte) []byte {
	dst = strconv.AppendUint(append(dst, word...), id, 10)
	dst = strconv.AppendInt(append(dst, ' '), int64(len(body)), 10)
	return append(append(append(dst, "\r\n"...), body...), "\r\n"...)
}

// AppendUsing appends "USING <tube>", the reply to use and
// list-tube-used.
func AppendUsing(dst []byte, tube string) []byte {
	return append(append(append(dst, "USING "...), tube...), "\r\n"...)
}

// AppendWatching appends "WATCHING <count>", the reply to watch and
// ignore.
func AppendWatching(dst []byte, count int) []byte {
	return append(strconv.AppendInt(append(dst, "WATCHING "...), int64(count), 10), "\r\n"...)
}

// AppendKickedCount appends kick's "KICKED <count>".
func AppendKickedCount(dst []byte, count uint32) []byte {
	return append(strconv.AppendUint(append(dst, "KICKED "...), uint64(count), 10), "\r\n"...)
}

// appendOK appends "OK <bytes>\r\n<data>\r\n".
func appendOK(dst, data []byte) []byte {
	dst = strconv.AppendInt(append(dst, "OK "...), int64(len(data)), 10)
	return append(append(append(dst, "\r\n"...), data...), "\r\n"...)
}

// AppendTubeList appends the reply to list-tubes and list-tubes-watched:
// OK and a YAML list, "---\n- default\n- a/b\n", names unquoted and in the
// order given (beanstalkd's: creation order, and for the watch list the
// order of the watch commands).
func AppendTubeList(dst []byte, tubes []string) []byte {
	var y yaml
	y.b = append(y.b, "---\n"...)
	for _, t := range tubes {
		y.b = append(append(append(y.b, "- "...), t...), '\n')
	}
	return appendOK(dst, y.b)
}

// JobState is a job's state as stats-job names it.
type JobState string

// The states of a job.
const (
	StateReady    JobState = "ready"
	StateDelayed  JobState = "delayed"
	StateReserved JobState = "reserved"
	StateBuried   JobState = "buried"
)

// JobStats is what stats-job reports of a job. Times are whole seconds,
// truncated as beanstalkd truncates them (a ttr-60 job reserved a moment
// ago has 59 left).
type JobStats struct {
	ID       uint64
	Tube     string
	State    JobState
	Pri      uint32
	Age      int64 // since the put
	Delay    int64 // the put's or the last release's delay
	TTR      int64
	TimeLeft int64 // until a reserved job times out or a delayed one is ready; else 0
	File     int   // the oldest binlog file holding the job; 0 without a binlog
	Reserves uint32
	Timeouts uint32
	Releases uint32
	Buries   uint32
	Kicks    uint32
}

// AppendJobStats appends stats-job's OK reply, keys in beanstalkd's order.
// The tube name is quoted, as beanstalkd 1.13 quotes it (1.12 did not).
func AppendJobStats(dst []byte, s JobStats) []byte {
	var y yaml
	y.b = append(y.b, "---\n"...)
	y.uint("id", s.ID)
	y.quoted("tube", s.Tube)
	y.str("state", string(s.State))
	y.uint("pri", uint64(s.Pri))
	y.int("age", s.Age)
	y.int("delay", s.Delay)
	y.int("ttr", s.TTR)
	y.int("time-left", s.TimeLeft)
	y.int("file", int64(s.File))
	y.uint("reserves", uint64(s.Reserves))
	y.uint("timeouts", uint64(s.Timeouts))
	y.uint("releases", uint64(s.Releases))
	y.uint("buries", uint64(s.Buries))
	y.uint("kicks", uint64(s.Kicks))
	return appendOK(dst, y.b)
}

// TubeStats is what stats-tube reports of a tube.
type TubeStats struct {
	Name                string
	CurrentJobsUrgent   uint64 // ready with pri < 1024
	CurrentJobsReady    uint64
	CurrentJobsReserved uint64
	CurrentJobsDelayed  uint64
	CurrentJobsBuried   uint64
	TotalJobs           uint64
	CurrentUsing        uint64
	CurrentWatching     uint64
	CurrentWaiting      uint64
	CmdDelete           uint64
	CmdPauseTube        uint64
	Pause               uint64 // seconds of the last pause-tube
	PauseTimeLeft       int64
}

// AppendTubeStats appends stats-tube's OK reply, keys in beanstalkd's
// order (current-watching before current-waiting, whatever protocol.txt
// lists); the name quoted as in 1.13.
func AppendTubeStats(dst []byte, s TubeStats) []byte {
	var y yaml
	y.b = append(y.b, "---\n"...)
	y.quoted("name", s.Name)
	y.uint("current-jobs-urgent", s.CurrentJobsUrgent)
	y.uint("current-jobs-ready", s.CurrentJobsReady)
	y.uint("current-jobs-reserved", s.CurrentJobsReserved)
	y.uint("current-jobs-delayed", s.CurrentJobsDelayed)
	y.uint("current-jobs-buried", s.CurrentJobsBuried)
	y.uint("total-jobs", s.TotalJobs)
	y.uint("current-using", s.CurrentUsing)
	y.uint("current-watching", s.CurrentWatching)
	y.uint("current-waiting", s.CurrentWaiting)
	y.uint("cmd-delete", s.CmdDelete)
	y.uint("cmd-pause-tube", s.CmdPauseTube)
	y.uint("pause", s.Pause)
	y.int("pause-time-left", s.PauseTimeLeft)
	return appendOK(dst, y.b)
}

// ServerStats is what stats reports of the server.
type ServerStats struct {
	CurrentJobsUrgent     uint64
	CurrentJobsReady      uint64
	CurrentJobsReserved   uint64
	CurrentJobsDelayed    uint64
	CurrentJobsBuried     uint64
	CmdPut                uint64
	CmdPeek               uint64
	CmdPeekReady          uint64
	CmdPeekDelayed        uint64
	CmdPeekBuried         uint64
	CmdReserve            uint64
	CmdReserveWithTimeout uint64
	CmdDelete             uint64
	CmdRelease            uint64
	CmdUse                uint64
	CmdWatch              uint64
	CmdIgnore             uint64
	CmdBury               uint64
	CmdKick               uint64
	CmdTouch              uint64
	CmdStats              uint64
	CmdStatsJob           uint64
	CmdStatsTube          uint64
	CmdListTubes          uint64
	CmdListTubeUsed       uint64
	CmdListTubesWatched   uint64
	CmdPauseTube          uint64
	JobTimeouts           uint64
	TotalJobs             uint64
	MaxJobSize            uint64
	CurrentTubes          uint64
	CurrentConnections    uint64
	CurrentProducers      uint64
	CurrentWorkers        uint64
	CurrentWaiting        uint64
	TotalConnections      uint64
	PID                   int64
	Version               string
	RusageUtime           time.Duration
	RusageStime           time.Duration
	Uptime                uint64 // seconds
	BinlogOldestIndex     int64
	BinlogCurrentIndex    int64
	BinlogRecordsMigrated int64
	BinlogRecordsWritten  int64
	BinlogMaxSize         int64
	Draining              bool
	ID                    string // random, per process
	Hostname              string
	OS                    string // uname's version
	Platform              string // uname's machine
}

// AppendServerStats appends stats's OK reply with every key beanstalkd
// prints, in its order: cmd-reserve-with-timeout and cmd-touch too, which
// protocol.txt (1.12) leaves out, but no cmd-reserve-job, which beanstalkd
// counts and never prints. Version, hostname, os and platform are quoted
// as in 1.13.
func AppendServerStats(dst []byte, s ServerStats) []byte {
	var y yaml
	y.b = append(y.b, "---\n"...)
	for _, kv := range []struct {
		k string
		v uint64
	}{
		{"current-jobs-urgent", s.CurrentJobsUrgent}, {"current-jobs-ready", s.CurrentJobsReady},
		{"current-jobs-reserved", s.CurrentJobsReserved}, {"current-jobs-delayed", s.CurrentJobsDelayed},
		{"current-jobs-buried", s.CurrentJobsBuried}, {"cmd-put", s.CmdPut}, {"cmd-peek", s.CmdPeek},
		{"cmd-peek-ready", s.CmdPeekReady}, {"cmd-peek-delayed", s.CmdPeekDelayed},
		{"cmd-peek-buried", s.CmdPeekBuried}, {"cmd-reserve", s.CmdReserve},
		{"cmd-reserve-with-timeout", s.CmdReserveWithTimeout}, {"cmd-delete", s.CmdDelete},
		{"cmd-release", s.CmdRelease}, {"cmd-use", s.CmdUse}, {"cmd-watch", s.CmdWatch},
		{"cmd-ignore", s.CmdIgnore}, {"cmd-bury", s.CmdBury}, {"cmd-kick", s.CmdKick},
		{"cmd-touch", s.CmdTouch}, {"cmd-stats", s.CmdStats}, {"cmd-stats-job", s.CmdStatsJob},
		{"cmd-stats-tube", s.CmdStatsTube}, {"cmd-list-tubes", s.CmdListTubes},
		{"cmd-list-tube-used", s.CmdListTubeUsed}, {"cmd-list-tubes-watched", s.CmdListTubesWatched},
		{"cmd-pause-tube", s.CmdPauseTube}, {"job-timeouts", s.JobTimeouts}, {"total-jobs", s.TotalJobs},
		{"max-job-size", s.MaxJobSize}, {"current-tubes", s.CurrentTubes},
		{"current-connections", s.CurrentConnections}, {"current-producers", s.CurrentProducers},
		{"current-workers", s.CurrentWorkers}, {"current-waiting", s.CurrentWaiting},
		{"total-connections", s.TotalConnections},
	} {
		y.uint(kv.k, kv.v)
	}
	y.int("pid", s.PID)
	y.quoted("version", s.Version)
	y.seconds("rusage-utime", s.RusageUtime)
	y.seconds("rusage-stime", s.RusageStime)
	y.uint("uptime", s.Uptime)
	y.int("binlog-oldest-index", s.BinlogOldestIndex)
	y.int("binlog-current-index", s.BinlogCurrentIndex)
	y.int("binlog-records-migrated", s.BinlogRecordsMigrated)
	y.int("binlog-records-written", s.BinlogRecordsWritten)
	y.int("binlog-max-size", s.BinlogMaxSize)
	y.str("draining", strconv.FormatBool(s.Draining))
	y.str("id", s.ID)
	y.quoted("hostname", s.Hostname)
	y.quoted("os", s.OS)
	y.quoted("platform", s.Platform)
	return appendOK(dst, y.b)
}

// yaml builds the flat "key: value\n" dictionaries of the stats replies.
type yaml struct{ b []byte }

func (y *yaml) key(k string) { y.b = append(append(y.b, k...), ": "...) }

func (y *yaml) uint(k string, v uint64) {
	y.key(k)
	y.b = append(strconv.AppendUint(y.b, v, 10), '\n')
}

func (y *yaml) int(k string, v int64) {
	y.key(k)
	y.b = append(strconv.AppendInt(y.b, v, 10), '\n')
}

func (y *yaml) str(k, v string) {
	y.key(k)
	y.b = append(append(y.b, v...), '\n')
}

// quoted writes v as a YAML double-quoted scalar: beanstalkd writes the
// bytes between the quotes as they are; escaping '"', '\' and control
// bytes changes nothing for tube names and keeps odd host names valid.
func (y *yaml) quoted(k, v string) {
	y.key(k)
	y.b = append(y.b, '"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"' || c == '\\':
			y.b = append(y.b, '\\', c)
		case c < 0x20 || c == 0x7f:
			y.b = append(y.b, fmt.Sprintf(`\x%02x`, c)...)
		default:
			y.b = append(y.b, c)
		}
	}
	y.b = append(y.b, "\"\n"...)
}

// seconds writes d as rusage's "%d.%06d".
func (y *yaml) seconds(k string, d time.Duration) {
	y.key(k)
	us := d.Microseconds()
	y.b = fmt.Appendf(y.b, "%d.%06d\n", us/1e6, us%1e6)
}
