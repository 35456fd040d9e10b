package beanstalk

import (
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// describe renders what Next returned as one string for the tables: a
// command in its canonical form (Command.Append), or "ERR WORD" with the
// sentinel's word and, when set, the Verb that beanstalkd counts.
func describe(c Command, err error) string {
	if err == nil {
		return string(c.Append(nil))
	}
	w := err.Error()
	for _, s := range append(errorReplies, io.EOF, io.ErrUnexpectedEOF) {
		if errors.Is(err, s) {
			w = s.Error()
			break
		}
	}
	if c.Verb != 0 {
		w += " " + c.Verb.String()
	}
	return "ERR " + w
}

// readAll reads r to its end, describing every result.
func readAll(r *Reader) []string {
	var got []string
	for {
		c, err := r.Next()
		got = append(got, describe(c, err))
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return got
		}
		if err != nil && !isProtocolError(err) {
			return got
		}
	}
}

const (
	eof        = "ERR EOF"
	badFormat  = "ERR BAD_FORMAT"
	unknownCmd = "ERR UNKNOWN_COMMAND"
)

// readerCases are inputs and what Next returns for them, call by call.
// Every line here was sent to beanstalkd 1.12 (TestParserAgreesWithBeanstalkd
// does it again when beanstalkd is installed).
var readerCases = []struct {
	name string
	in   string
	want []string
}{
	{"every command without arguments", "reserve\r\npeek-ready\r\npeek-delayed\r\npeek-buried\r\nstats\r\nlist-tubes\r\nlist-tube-used\r\nlist-tubes-watched\r\nquit\r\n",
		[]string{"reserve\r\n", "peek-ready\r\n", "peek-delayed\r\n", "peek-buried\r\n", "stats\r\n", "list-tubes\r\n", "list-tube-used\r\n", "list-tubes-watched\r\n", "quit\r\n", eof}},
	{"every command with an id", "reserve-job 1\r\ndelete 2\r\ntouch 3\r\npeek 4\r\nkick-job 5\r\nstats-job 18446744073709551615\r\n",
		[]string{"reserve-job 1\r\n", "delete 2\r\n", "touch 3\r\n", "peek 4\r\n", "kick-job 5\r\n", "stats-job 18446744073709551615\r\n", eof}},
	{"every command with a tube", "use a\r\nwatch .\r\nignore ..\r\nstats-tube a/b\r\npause-tube ($);+_-. 7\r\n",
		[]string{"use a\r\n", "watch .\r\n", "ignore ..\r\n", "stats-tube a/b\r\n", "pause-tube ($);+_-. 7\r\n", eof}},
	{"release bury kick and reserve-with-timeout", "release 1 2 3\r\nbury 4 5\r\nkick 6\r\nreserve-with-timeout 0\r\n",
		[]string{"release 1 2 3\r\n", "bury 4 5\r\n", "kick 6\r\n", "reserve-with-timeout 0\r\n", eof}},
	{"put reads its body, binary and empty ones too", "put 1 2 3 5\r\nhello\r\nput 0 0 0 4\r\n\r\n\x00\n\r\nput 4294967295 4294967295 4294967295 0\r\n\r\n",
		[]string{"put 1 2 3 5\r\nhello\r\n", "put 0 0 0 4\r\n\r\n\x00\n\r\n", "put 4294967295 4294967295 4294967295 0\r\n\r\n", eof}},
	{"a body of exactly the maximum is accepted", "put 0 0 1 65535\r\n" + strings.Repeat("b", 65535) + "\r\n",
		[]string{"put 0 0 1 65535\r\n" + strings.Repeat("b", 65535) + "\r\n", eof}},
	{"numbers take any spaces before them and leading zeros", "put  0  00   1 03\r\nabc\r\ndelete   007\r\nrelease  1  2  3\r\n",
		[]string{"put 0 0 1 3\r\nabc\r\n", "delete 7\r\n", "release 1 2 3\r\n", eof}},
	{"signs tabs overflow and trailing bytes in numbers", "delete +1\r\ndelete -1\r\ndelete 1 \r\ndelete 1x\r\ndelete 18446744073709551616\r\ndelete\t1\r\nbury 1 4294967296\r\nrelease 1 2\r\nrelease 1x 2 3\r\ntouch \r\n",
		[]string{badFormat, badFormat, badFormat, badFormat, badFormat, unknownCmd, badFormat, badFormat, badFormat, badFormat, eof}},
	{"commands match by prefix", "quitx\r\nreserved\r\nreserve-with-timeout\r\nreserve-job\r\nstats-job\r\nstatsx\r\npeek-ready \r\nlist-tubesx\r\nlist-tube\r\nput\r\nuse\r\ndelete\r\nkick\r\nkick-job\r\npeek\r\nRESERVE\r\n\r\n",
		[]string{"quit\r\n", badFormat, badFormat, badFormat, badFormat, badFormat, badFormat, badFormat, unknownCmd, unknownCmd, unknownCmd, unknownCmd, unknownCmd, unknownCmd, unknownCmd, unknownCmd, unknownCmd, eof}},
	{"a NUL byte anywhere is bad format", "stats\x00\r\n\x00\r\nfoo\x00\r\n",
		[]string{badFormat, badFormat, badFormat, eof}},
	{"tube names", "use " + strings.Repeat("n", 200) + "\r\nuse " + strings.Repeat("n", 201) + "\r\nuse -a\r\nuse a-\r\nuse a b\r\nuse  a\r\nuse a \r\nuse \r\nuse a:b\r\nwatch \xc3\xa9\r\n",
		[]string{"use " + strings.Repeat("n", 200) + "\r\n", badFormat, badFormat, "use a-\r\n", badFormat, badFormat, badFormat, badFormat, badFormat, badFormat, eof}},
	{"pause-tube needs no space and counts an invalid name", "pause-tubefoo 5\r\npause-tube  foo  5\r\npause-tube foo5\r\npause-tube foo 5 \r\npause-tube -x 5\r\npause-tube " + strings.Repeat("p", 201) + " 1\r\npause-tube\r\npause-tube foo! 1\r\n",
		[]string{"pause-tube foo 5\r\n", "pause-tube foo 5\r\n", badFormat, badFormat, badFormat + " pause-tube", badFormat + " pause-tube", badFormat, badFormat, eof}},
	{"kick reads its bound as strtoul", "kick -1\r\nkick +5\r\nkick 5abc\r\nkick \t7\r\nkick 4294967296\r\nkick 4294967297\r\nkick -18446744073709551615\r\nkick 18446744073709551616\r\nkick abc\r\nkick - 1\r\nkick \r\n",
		[]string{"kick 4294967295\r\n", "kick 5\r\n", "kick 5\r\n", "kick 7\r\n", "kick 0\r\n", "kick 1\r\n", "kick 1\r\n", badFormat, badFormat, badFormat, badFormat, eof}},
	{"reserve-with-timeout reads a uint32 up to 2^31-1 and ignores the rest", "reserve-with-timeout 5x\r\nreserve-with-timeout  3 junk\r\nreserve-with-timeout 2147483647\r\nreserve-with-timeout 2147483648\r\nreserve-with-timeout -1\r\nreserve-with-timeout x\r\n",
		[]string{"reserve-with-timeout 5\r\n", "reserve-with-timeout 3\r\n", "reserve-with-timeout 2147483647\r\n", badFormat, badFormat, badFormat, eof}},
	{"a body without its CRLF consumes two bytes", "put 0 0 1 3\r\nabcde\r\nstats\r\n",
		[]string{"ERR EXPECTED_CRLF put", unknownCmd, "stats\r\n", eof}},
	{"a malformed put leaves its body to be read as a command", "put 0 0 1 3x\r\nabc\r\nput 0 0 1 3 \r\nstats\r\nput -1 0 1 3\r\nput 4294967296 0 1 0\r\n\r\n",
		[]string{badFormat + " put", unknownCmd, badFormat + " put", "stats\r\n", badFormat, badFormat, unknownCmd, eof}},
	{"a put too big is read and thrown away, then answered", "put 0 0 1 65536\r\n" + strings.Repeat("b", 65536) + "xxstats\r\n",
		[]string{"ERR JOB_TOO_BIG put", "stats\r\n", eof}},
	{"the size check comes before the trailing bytes check", "put 0 0 1 65536x\r\n" + strings.Repeat("b", 65538) + "stats\r\n",
		[]string{"ERR JOB_TOO_BIG put", "stats\r\n", eof}},
	{"a line of 224 bytes is a line", strings.Repeat("a", 222) + "\r\nstats\r\n",
		[]string{unknownCmd, "stats\r\n", eof}},
	{"a line of 225 bytes swallows the next", strings.Repeat("a", 223) + "\r\nlist-tube-used\r\nstats\r\n",
		[]string{badFormat, "stats\r\n", eof}},
	{"an over-long line ends at the first CRLF in a window", strings.Repeat("a", 500) + "\r\nstats\r\n",
		[]string{badFormat, "stats\r\n", eof}},
	{"a stray CR hides the line end until the window fills", "stats\r\r\n" + strings.Repeat("a", 216) + "\r\nlist-tubes\r\n",
		[]string{badFormat, "list-tubes\r\n", eof}},
	{"a lone LF is not a line end", "stats\nstats\r\n",
		[]string{badFormat, eof}},
	{"the input ends inside a line", "stats\r\nsta",
		[]string{"stats\r\n", "ERR unexpected EOF"}},
	{"the input ends inside an over-long line", strings.Repeat("a", 300),
		[]string{"ERR unexpected EOF"}},
	{"the input ends inside a body", "put 0 0 1 5\r\nhel",
		[]string{"ERR unexpected EOF"}},
	{"the input ends inside a thrown-away body", "put 0 0 1 65536\r\nhel",
		[]string{"ERR unexpected EOF"}},
	{"the input ends before the body's CRLF", "put 0 0 1 1\r\nx\r",
		[]string{"ERR unexpected EOF"}},
	{"no input", "", []string{eof}},
}

func TestReader(t *testing.T) {
	for _, tc := range readerCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", strings.NewReader(tc.in)},
				{"a byte at a time", iotest.OneByteReader(strings.NewReader(tc.in))},
				{"with the EOF on the last read", iotest.DataErrReader(strings.NewReader(tc.in))},
			} {
				got := readAll(NewReader(r.r, 0))
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s:\ngot  %q\nwant %q", r.name, got, tc.want)
				}
			}
		})
	}
}

func TestReaderFields(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Command
	}{
		{"put 1 2 3 1\r\nx\r\n", Command{Verb: Put, Pri: 1, Delay: 2, TTR: 3, Body: []byte("x")}},
		{"use a\r\n", Command{Verb: Use, Tube: "a"}},
		{"watch a\r\n", Command{Verb: Watch, Tube: "a"}},
		{"ignore a\r\n", Command{Verb: Ignore, Tube: "a"}},
		{"stats-tube a\r\n", Command{Verb: StatsTube, Tube: "a"}},
		{"pause-tube a 9\r\n", Command{Verb: PauseTube, Tube: "a", Delay: 9}},
		{"reserve\r\n", Command{Verb: Reserve}},
		{"reserve-with-timeout 9\r\n", Command{Verb: ReserveWithTimeout, Timeout: 9}},
		{"reserve-job 9\r\n", Command{Verb: ReserveJob, ID: 9}},
		{"delete 9\r\n", Command{Verb: Delete, ID: 9}},
		{"release 9 8 7\r\n", Command{Verb: Release, ID: 9, Pri: 8, Delay: 7}},
		{"bury 9 8\r\n", Command{Verb: Bury, ID: 9, Pri: 8}},
		{"touch 9\r\n", Command{Verb: Touch, ID: 9}},
		{"peek 9\r\n", Command{Verb: Peek, ID: 9}},
		{"peek-ready\r\n", Command{Verb: PeekReady}},
		{"peek-delayed\r\n", Command{Verb: PeekDelayed}},
		{"peek-buried\r\n", Command{Verb: PeekBuried}},
		{"kick 9\r\n", Command{Verb: Kick, Bound: 9}},
		{"kick-job 9\r\n", Command{Verb: KickJob, ID: 9}},
		{"stats-job 9\r\n", Command{Verb: StatsJob, ID: 9}},
		{"stats\r\n", Command{Verb: Stats}},
		{"list-tubes\r\n", Command{Verb: ListTubes}},
		{"list-tube-used\r\n", Command{Verb: ListTubeUsed}},
		{"list-tubes-watched\r\n", Command{Verb: ListTubesWatched}},
		{"quit\r\n", Command{Verb: Quit}},
	} {
		got, err := NewReader(strings.NewReader(tc.line), 0).Next()
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %+v, %v; want %+v", tc.line, got, err, tc.want)
		}
		if enc := tc.want.Append(nil); string(enc) != tc.line {
			t.Errorf("%+v.Append = %q, want %q", tc.want, enc, tc.line)
		}
	}
}

func TestReaderMaxJobBytes(t *testing.T) {
	got := readAll(NewReader(strings.NewReader("put 0 0 1 3\r\nabc\r\nput 0 0 1 4\r\nabcd\r\n"), 3))
	want := []string{"put 0 0 1 3\r\nabc\r\n", "ERR JOB_TOO_BIG put", eof}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// pieces is an endless-looking input: head, then n bytes of fill in reads
// of at most chunk bytes, then tail; it allocates nothing per read.
type pieces struct {
	head, tail []byte
	fill       byte
	n, chunk   int
}

func (p *pieces) Read(b []byte) (int, error) {
	switch {
	case len(p.head) > 0:
		m := copy(b, p.head)
		p.head = p.head[m:]
		return m, nil
	case p.n > 0:
		m := min(len(b), p.n, p.chunk)
		for i := range b[:m] {
			b[i] = p.fill
		}
		p.n -= m
		return m, nil
	case len(p.tail) > 0:
		m := copy(b, p.tail)
		p.tail = p.tail[m:]
		return m, nil
	}
	return 0, io.EOF
}

// allocated returns the bytes f allocates on the heap: the least of a few
// runs, because TotalAlloc counts the whole process and the runtime or the
// test framework can allocate on another goroutine during any one run.
func allocated(f func()) uint64 {
	least := uint64(math.MaxUint64)
	for range 5 {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		least = min(least, after.TotalAlloc-before.TotalAlloc)
	}
	return least
}

func TestReaderMemoryIsBounded(t *testing.T) {
	const tenMB = 10 << 20
	// The Reader's fixed part: the bufio buffer, the Reader, error texts.
	const fixed = readBufferBytes + MaxLineBytes + 4096

	t.Run("a 10 MB line sent in pieces costs the read buffer", func(t *testing.T) {
		var got []string
		n := allocated(func() {
			got = readAll(NewReader(&pieces{fill: 'x', n: tenMB, chunk: 1000, tail: []byte("\r\nstats\r\n")}, 0))
		})
		if want := []string{badFormat, "stats\r\n", eof}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		if n > fixed {
			t.Errorf("allocated %d bytes reading a 10 MB line, want at most %d", n, fixed)
		}
	})
	t.Run("a 10 MB body over the limit is thrown away through the read buffer", func(t *testing.T) {
		var got []string
		n := allocated(func() {
			head := fmt.Appendf(nil, "put 0 0 1 %d\r\n", tenMB)
			got = readAll(NewReader(&pieces{head: head, fill: 'b', n: tenMB + 2, chunk: 1000, tail: []byte("stats\r\n")}, 0))
		})
		if want := []string{"ERR JOB_TOO_BIG put", "stats\r\n", eof}; !reflect.DeepEqual(got, want) {
			t.Fatalf("got %q, want %q", got, want)
		}
		if n > fixed {
			t.Errorf("allocated %d bytes throwing away a 10 MB body, want at most %d", n, fixed)
		}
	})
	t.Run("a body of the maximum size sent a byte at a time has a capacity of its size", func(t *testing.T) {
		const max = 1 << 20
		var c Command
		var err error
		n := allocated(func() {
			head := fmt.Appendf(nil, "put 0 0 1 %d\r\n", max)
			c, err = NewReader(&pieces{head: head, fill: 'b', n: max, chunk: 1, tail: []byte("\r\n")}, max).Next()
		})
		if err != nil || len(c.Body) != max {
			t.Fatalf("got %d bytes, %v", len(c.Body), err)
		}
		if cap(c.Body) != max {
			t.Errorf("cap(Body) = %d, want %d", cap(c.Body), max)
		}
		// Doubling from 4 KiB allocates less than twice the body in all.
		if n > 2*max+fixed {
			t.Errorf("allocated %d bytes for a %d-byte body, want at most %d", n, max, 2*max+fixed)
		}
	})
	t.Run("a body announced and never sent costs one chunk", func(t *testing.T) {
		var err error
		n := allocated(func() {
			_, err = NewReader(strings.NewReader("put 0 0 1 1000000\r\nabc"), 1<<20).Next()
		})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
		}
		if n > bodyChunkBytes+fixed {
			t.Errorf("allocated %d bytes, want at most %d", n, bodyChunkBytes+fixed)
		}
	})
}

func TestReplies(t *testing.T) {
	for _, tc := range []struct {
		got  []byte
		want string
	}{
		{AppendInserted(nil, 42), "INSERTED 42\r\n"},
		{AppendBuriedID(nil, 18446744073709551615), "BURIED 18446744073709551615\r\n"},
		{AppendReserved(nil, 7, []byte("a\r\nb")), "RESERVED 7 4\r\na\r\nb\r\n"},
		{AppendReserved(nil, 7, nil), "RESERVED 7 0\r\n\r\n"},
		{AppendFound(nil, 8, []byte("hello")), "FOUND 8 5\r\nhello\r\n"},
		{AppendUsing(nil, "a/b"), "USING a/b\r\n"},
		{AppendWatching(nil, 2), "WATCHING 2\r\n"},
		{AppendKickedCount(nil, 4294967295), "KICKED 4294967295\r\n"},
		{AppendWord(nil, Deleted), "DELETED\r\n"},
		{AppendWord(nil, Released), "RELEASED\r\n"},
		{AppendWord(nil, Buried), "BURIED\r\n"},
		{AppendWord(nil, Touched), "TOUCHED\r\n"},
		{AppendWord(nil, Kicked), "KICKED\r\n"},
		{AppendWord(nil, Paused), "PAUSED\r\n"},
		{AppendError(nil, ErrNotFound), "NOT_FOUND\r\n"},
		{AppendError(nil, ErrTimedOut), "TIMED_OUT\r\n"},
		{AppendError(nil, ErrDeadlineSoon), "DEADLINE_SOON\r\n"},
		{AppendError(nil, ErrNotIgnored), "NOT_IGNORED\r\n"},
		{AppendError(nil, ErrDraining), "DRAINING\r\n"},
		{AppendError(nil, ErrOutOfMemory), "OUT_OF_MEMORY\r\n"},
		{AppendError(nil, ErrInternalError), "INTERNAL_ERROR\r\n"},
		{AppendError(nil, ErrBadFormat), "BAD_FORMAT\r\n"},
		{AppendError(nil, ErrUnknownCommand), "UNKNOWN_COMMAND\r\n"},
		{AppendError(nil, ErrExpectedCRLF), "EXPECTED_CRLF\r\n"},
		{AppendError(nil, ErrJobTooBig), "JOB_TOO_BIG\r\n"},
		{AppendError(nil, fmt.Errorf("%w: line over 224 bytes", ErrBadFormat)), "BAD_FORMAT\r\n"},
		{AppendError(nil, errors.New("disk on fire")), "INTERNAL_ERROR\r\n"},
		{AppendError([]byte("x"), ErrNotFound), "xNOT_FOUND\r\n"},
		{AppendTubeList(nil, []string{"default"}), "OK 14\r\n---\n- default\n\r\n"},
		{AppendTubeList(nil, []string{"default", ".", "a/b"}), "OK 24\r\n---\n- default\n- .\n- a/b\n\r\n"},
		{AppendTubeList(nil, nil), "OK 4\r\n---\n\r\n"},
	} {
		if string(tc.got) != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestStatsReplies(t *testing.T) {
	okReply := func(yaml string) string { return fmt.Sprintf("OK %d\r\n%s\r\n", len(yaml), yaml) }
	t.Run("stats-job", func(t *testing.T) {
		got := AppendJobStats(nil, JobStats{ID: 3, Tube: "a/b", State: StateReserved, Pri: 1024, Age: 5,
			Delay: 0, TTR: 60, TimeLeft: 59, File: 0, Reserves: 1, Timeouts: 2, Releases: 3, Buries: 4, Kicks: 5})
		want := okReply("---\nid: 3\ntube: \"a/b\"\nstate: reserved\npri: 1024\nage: 5\ndelay: 0\nttr: 60\n" +
			"time-left: 59\nfile: 0\nreserves: 1\ntimeouts: 2\nreleases: 3\nburies: 4\nkicks: 5\n")
		if string(got) != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
	t.Run("stats-tube", func(t *testing.T) {
		got := AppendTubeStats(nil, TubeStats{Name: "default", CurrentJobsUrgent: 1, CurrentJobsReady: 2,
			CurrentJobsReserved: 3, CurrentJobsDelayed: 4, CurrentJobsBuried: 5, TotalJobs: 6, CurrentUsing: 7,
			CurrentWatching: 8, CurrentWaiting: 9, CmdDelete: 10, CmdPauseTube: 11, Pause: 12, PauseTimeLeft: 13})
		want := okReply("---\nname: \"default\"\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 2\n" +
			"current-jobs-reserved: 3\ncurrent-jobs-delayed: 4\ncurrent-jobs-buried: 5\ntotal-jobs: 6\n" +
			"current-using: 7\ncurrent-watching: 8\ncurrent-waiting: 9\ncmd-delete: 10\ncmd-pause-tube: 11\n" +
			"pause: 12\npause-time-left: 13\n")
		if string(got) != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
	t.Run("stats", func(t *testing.T) {
		var s ServerStats
		v := reflect.ValueOf(&s).Elem()
		for i := range v.NumField() { // every counter its own value, so that a swap shows
			switch f := v.Field(i); f.Kind() {
			case reflect.Uint64:
				f.SetUint(uint64(i + 1))
			case reflect.Int64:
				f.SetInt(int64(i + 1))
			}
		}
		s.RusageUtime, s.RusageStime = 1500*time.Millisecond+7*time.Microsecond, 0
		s.Version, s.Draining, s.ID = "1.13", true, "0123456789abcdef"
		s.Hostname, s.OS, s.Platform = `h"x`, "#1 SMP", "x86_64"
		got := AppendServerStats(nil, s)
		want := okReply("---\ncurrent-jobs-urgent: 1\ncurrent-jobs-ready: 2\ncurrent-jobs-reserved: 3\n" +
			"current-jobs-delayed: 4\ncurrent-jobs-buried: 5\ncmd-put: 6\ncmd-peek: 7\ncmd-peek-ready: 8\n" +
			"cmd-peek-delayed: 9\ncmd-peek-buried: 10\ncmd-reserve: 11\ncmd-reserve-with-timeout: 12\n" +
			"cmd-delete: 13\ncmd-release: 14\ncmd-use: 15\ncmd-watch: 16\ncmd-ignore: 17\ncmd-bury: 18\n" +
			"cmd-kick: 19\ncmd-touch: 20\ncmd-stats: 21\ncmd-stats-job: 22\ncmd-stats-tube: 23\n" +
			"cmd-list-tubes: 24\ncmd-list-tube-used: 25\ncmd-list-tubes-watched: 26\ncmd-pause-tube: 27\n" +
			"job-timeouts: 28\ntotal-jobs: 29\nmax-job-size: 30\ncurrent-tubes: 31\ncurrent-connections: 32\n" +
			"current-producers: 33\ncurrent-workers: 34\ncurrent-waiting: 35\ntotal-connections: 36\npid: 37\n" +
			"version: \"1.13\"\nrusage-utime: 1.500007\nrusage-stime: 0.000000\nuptime: 41\n" +
			"binlog-oldest-index: 42\nbinlog-current-index: 43\nbinlog-records-migrated: 44\n" +
			"binlog-records-written: 45\nbinlog-max-size: 46\ndraining: true\nid: 0123456789abcdef\n" +
			"hostname: \"h\\\"x\"\nos: \"#1 SMP\"\nplatform: \"x86_64\"\n")
		if string(got) != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
}

func TestValidTube(t *testing.T) {
	for name, want := range map[string]bool{
		"default": true, ".": true, "..": true, "a/b": true, "a-": true, "($);+_": true,
		strings.Repeat("n", 200): true, strings.Repeat("n", 201): false,
		"": false, "-a": false, "a b": false, "a:b": false, "é": false, "a\x00": false,
	} {
		if got := ValidTube(name); got != want {
			t.Errorf("ValidTube(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestVerbString(t *testing.T) {
	if got := ReserveWithTimeout.String(); got != "reserve-with-timeout" {
		t.Errorf("ReserveWithTimeout.String() = %q", got)
	}
	if got := Verb(0).String(); got != "Verb(0)" {
		t.Errorf("Verb(0).String() = %q", got)
	}
}
