package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/spoolq/spool/api/beanstalk"
)

// fuzzMaxJobBytes is the max job size under fuzzing: small, so that
// mutations reach JOB_TOO_BIG.
const fuzzMaxJobBytes = 16

// beanstalkResult is one call of Next, comparable.
type beanstalkResult struct {
	c   beanstalk.Command
	err error // the sentinel matched, not the wrapped error
}

// beanstalkSentinels are the errors Next may return on a bytes.Reader.
var beanstalkSentinels = []error{
	beanstalk.ErrBadFormat, beanstalk.ErrUnknownCommand, beanstalk.ErrExpectedCRLF,
	beanstalk.ErrJobTooBig, io.EOF, io.ErrUnexpectedEOF,
}

// readBeanstalk reads r to its end; it fails t on an error that is none
// of the documented sentinels.
func readBeanstalk(t *testing.T, r io.Reader) []beanstalkResult {
	br := beanstalk.NewReader(r, fuzzMaxJobBytes)
	var got []beanstalkResult
	for {
		c, err := br.Next()
		res := beanstalkResult{c: c}
		if err != nil {
			for _, s := range beanstalkSentinels {
				if errors.Is(err, s) {
					res.err = s
					break
				}
			}
			if res.err == nil {
				t.Fatalf("call %d: error %v is no sentinel", len(got), err)
			}
		}
		got = append(got, res)
		if res.err == io.EOF || res.err == io.ErrUnexpectedEOF {
			return got
		}
	}
}

// FuzzBeanstalkCommands feeds arbitrary bytes, as a connection's input,
// to beanstalk.Reader.
//
// Properties: it never panics; every error is one of the documented
// sentinels, and the input ends in io.EOF or io.ErrUnexpectedEOF; the
// results are the same whether the input arrives whole or a byte at a
// time; a command carries no body over the max job size, no invalid
// tube name and no timeout over 2^31-1; its canonical form
// (Command.Append) has a line within MaxLineBytes and reads back as the
// same command, a fixed point; a command with an error carries only its
// Verb, and only for put and pause-tube.
func FuzzBeanstalkCommands(f *testing.F) {
	long := strings.Repeat("a", 300)
	for _, s := range []string{
		// every command
		"put 1024 0 60 5\r\nhello\r\n", "put 0 0 0 0\r\n\r\n", "use a/b\r\n", "reserve\r\n",
		"reserve-with-timeout 0\r\n", "reserve-job 1\r\n", "delete 1\r\n", "release 1 2 3\r\n",
		"bury 1 2\r\n", "touch 1\r\n", "watch .\r\n", "ignore ..\r\n", "peek 1\r\n", "peek-ready\r\n",
		"peek-delayed\r\n", "peek-buried\r\n", "kick 5\r\n", "kick-job 1\r\n", "stats-job 1\r\n",
		"stats-tube default\r\n", "stats\r\n", "list-tubes\r\n", "list-tube-used\r\n",
		"list-tubes-watched\r\n", "pause-tube a 5\r\n", "quit\r\n",
		// every error
		"put 0 0 1 3\r\nabcde\r\n", "put 0 0 1 17\r\n" + strings.Repeat("b", 19) + "stats\r\n",
		"put 0 0 1 3x\r\nabc\r\n", "put 0 0 1 99x\r\n", "put -1 0 1 1\r\n", "delete 1 \r\n",
		"delete 18446744073709551616\r\n", "bury 1 4294967296\r\n", "hello\r\n", "\r\n", "put\r\n",
		"reserved\r\n", "quitx\r\n", "stats\x00\r\n", "use -a\r\n", "use " + strings.Repeat("n", 201) + "\r\n",
		"pause-tubefoo 1\r\n", "pause-tube -x 1\r\n", "kick -1\r\nkick \t+7x\r\nkick 4294967296\r\n",
		"reserve-with-timeout 2147483648\r\nreserve-with-timeout 5x\r\n",
		long + "\r\nstats\r\n", strings.Repeat("a", 223) + "\r\nstats\r\nstats\r\n",
		"stats\r\r\n" + strings.Repeat("a", 216) + "\r\nstats\r\n", "stats\nstats\r\n",
		"stats", "put 0 0 1 5\r\nhe", "put 0 0 1 1\r\nx\r", long,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := readBeanstalk(t, bytes.NewReader(data))
		if slow := readBeanstalk(t, iotest.OneByteReader(bytes.NewReader(data))); !reflect.DeepEqual(got, slow) {
			t.Fatalf("whole input: %v\na byte at a time: %v", describeResults(got), describeResults(slow))
		}
		for i, r := range got {
			if r.err != nil {
				if r.c.Verb != 0 && !(r.c.Verb == beanstalk.Put || r.c.Verb == beanstalk.PauseTube) ||
					!reflect.DeepEqual(r.c, beanstalk.Command{Verb: r.c.Verb}) {
					t.Fatalf("call %d: %v with %+v", i, r.err, r.c)
				}
				continue
			}
			checkBeanstalkCommand(t, i, r.c)
		}
	})
}

// checkBeanstalkCommand checks one command's limits and that its
// canonical form reads back as itself.
func checkBeanstalkCommand(t *testing.T, i int, c beanstalk.Command) {
	if len(c.Body) > fuzzMaxJobBytes || cap(c.Body) > fuzzMaxJobBytes {
		t.Fatalf("call %d: a body of %d bytes (cap %d) over the max %d", i, len(c.Body), cap(c.Body), fuzzMaxJobBytes)
	}
	switch c.Verb {
	case beanstalk.Use, beanstalk.Watch, beanstalk.Ignore, beanstalk.StatsTube, beanstalk.PauseTube:
		if !beanstalk.ValidTube(c.Tube) {
			t.Fatalf("call %d: %v with invalid tube %q", i, c.Verb, c.Tube)
		}
	}
	if c.Timeout > 1<<31-1 {
		t.Fatalf("call %d: timeout %d", i, c.Timeout)
	}
	enc := c.Append(nil)
	if line := bytes.Index(enc, []byte("\r\n")) + 2; line > beanstalk.MaxLineBytes {
		t.Fatalf("call %d: canonical line %q is %d bytes", i, enc[:line], line)
	}
	back, err := beanstalk.NewReader(bytes.NewReader(enc), fuzzMaxJobBytes).Next()
	if err != nil || !reflect.DeepEqual(back, c) {
		t.Fatalf("call %d: %q reads back as %+v, %v; want %+v", i, enc, back, err, c)
	}
	if again := back.Append(nil); !bytes.Equal(again, enc) {
		t.Fatalf("call %d: canonical form %q re-encodes as %q", i, enc, again)
	}
}

func describeResults(rs []beanstalkResult) string {
	var b strings.Builder
	for _, r := range rs {
		if r.err != nil {
			fmt.Fprintf(&b, "[%v %v] ", r.err, r.c.Verb)
		} else {
			fmt.Fprintf(&b, "%q ", r.c.Append(nil))
		}
	}
	return b.String()
}
