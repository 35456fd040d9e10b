package beanstalk_test

// The differential test: every script in testdata/diff is run against a
// real beanstalkd (Debian's, 1.12, with a binlog as in production) and
// against spool's server, and the two transcripts must be equal once job
// ids and timing fields are normalised. beanstalkd is the reference: where
// the two differ, spool is wrong (or the normalisation is, which running
// beanstalkd against a second beanstalkd shows: -diff.self). -diff.show
// logs beanstalkd's replies, for writing a script.
//
// # Scripts
//
// One step a line; blank lines and lines starting with '#' are comments.
// A step is optional modifiers, each followed by a space, then a payload:
//
//	@N   on connection N (1 to 9; default 1). Connections are dialled on
//	     first use, so @2 is a second client; after !close the next use
//	     dials a new one.
//	=K   read K replies after sending (default 1). =0 sends and reads
//	     nothing: a blocking reserve, or a put line whose body follows on
//	     a later step.
//	~    send the payload without the "\r\n" that is otherwise appended.
//	?D   the replies may differ in the way D, one of spool's differences
//	     by design (diffAllowed, the package doc's "Where spool differs
//	     from beanstalkd"), and in no other way. Several may be given.
//
// The payload is sent as written, with these escapes:
//
//	\r \n \t \\     CR, LF, tab, backslash
//	\xHH            the byte HH (\x00 is a NUL, \x20 a visible space)
//	\#              a '#' (a bare '#' followed by digits is a job id)
//	\[s*N]          s repeated N times: \[n*200] is a 200-byte tube name
//	#K              the id of the K-th distinct job any reply named
//	                (INSERTED, RESERVED, FOUND, stats-job's id), as this
//	                server numbered it: "delete #1" deletes the first job
//	                put. Missing ids are plain numbers: "peek 0".
//
// So a put and its body are one step, "put 0 0 60 5\r\nhello", and get
// one reply. Trailing spaces are sent as written; write \x20 to show one.
//
// Steps that are not sends:
//
//	<          read one reply (=K <: K replies) without sending, e.g. the
//	           RESERVED a blocking reserve gets once another client puts.
//	!silent    expect no reply for diffSilentFor: a reserve that must block.
//	!close     close the connection from the client's side.
//
// A reply is read whole: one line, and for OK, RESERVED and FOUND the
// body by its byte count and its "\r\n". A reply that does not come within
// diffReplyTimeout is "(no reply)"; a connection the server closed gives
// "(connection closed)" (so "quit" is a step with one reply).
//
// Against beanstalkd a script must get every reply it asks for: a
// "(no reply)" there is a mistake in the script, reported as such.
//
// Waits are replies, never sleeps: a delayed job or a pause is waited for
// by a reserve-with-timeout longer than it. beanstalkd 1.12 now and then
// misses the TTR of a job whose connection is idle, until that connection
// sends a command; a script that lets a TTR run out has the owner send
// one afterwards (deadline-soon.txt).
//
// # Normalisation
//
// Ids: each distinct job id is renamed #1, #2, … in order of first
// appearance in the replies. beanstalkd counts from 1 across tubes; spool's
// ids are large numbers, unique across tubes; only their identity matters.
//
// OK replies lose their byte count ("OK" alone): it depends on the
// normalised values below. The count is still checked: the body must be
// exactly that long and end in "\r\n".
//
// YAML string values lose their double quotes: beanstalkd 1.12 quotes
// only version, 1.13 (and spool) also tube, name, hostname, os, platform.
// The value itself is compared.
//
// YAML values replaced by "*", as they depend on the process, the host or
// the clock and not on what the commands did:
//
//	stats-job   age            seconds since the put: 0 or 1 by chance
//	            file           beanstalkd's binlog file number for the job;
//	                           spool has no such files
//	stats       pid version hostname os platform id (random per process)
//	            uptime rusage-utime rusage-stime
//	            binlog-oldest-index binlog-current-index binlog-max-size
//	            binlog-records-migrated binlog-records-written
//	                           beanstalkd's binlog; spool logs differently
//	            total-connections
//	                           beanstalkd's includes the readiness probe
//
// and replaced by "*" only when not 0, because the second they are read in
// is chance but whether a timer runs is not:
//
//	stats-job   time-left         (reserved: TTR left; delayed: delay left)
//	stats-tube  pause-time-left
//
// Everything else is compared as it is: reply words, states, pri, delay,
// ttr, the counters (reserves, timeouts, cmd-*, current-*), max-job-size
// (both servers get diffMaxJobBytes), draining, tube names and their order.

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api/apitest"
	"github.com/spoolq/spool/api/beanstalk"
	"github.com/spoolq/spool/queue"
)

const (
	// diffMaxJobBytes is both servers' maximum job size (beanstalkd's -z),
	// small so that JOB_TOO_BIG is cheap to reach.
	diffMaxJobBytes = 100

	// diffReplyTimeout bounds the wait for one reply. The longest wait a
	// script asks for is a reserve-with-timeout of a few seconds.
	diffReplyTimeout = 5 * time.Second

	// diffSilentFor is how long !silent listens. A reply that was coming
	// arrives well within it on loopback, even under -race.
	diffSilentFor = 300 * time.Millisecond

	// diffStartTimeout bounds beanstalkd's start-up.
	diffStartTimeout = 5 * time.Second
)

// diffShow logs beanstalkd's transcript, for writing scripts:
//
//	go test ./api/beanstalk -run TestDifferential/NAME -v -diff.show
var diffShow = flag.Bool("diff.show", false, "TestDifferential logs beanstalkd's replies to every step")

// diffSelf compares beanstalkd with a second beanstalkd instead of spool:
// the transcripts must then be equal, which checks the normalisation.
var diffSelf = flag.Bool("diff.self", false, "TestDifferential compares beanstalkd with beanstalkd, not spool")

// startSpool serves the beanstalkd protocol over a fresh broker with the
// queue's default options (a binlog's equivalent: spool always logs), and
// returns its address.
func startSpool(t *testing.T) (addr string) {
	t.Helper()
	b, err := queue.Open(t.TempDir(), queue.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	srv := beanstalk.NewServer(b, beanstalk.Options{MaxJobBytes: diffMaxJobBytes, Logger: slog.New(slog.DiscardHandler)})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	t.Cleanup(func() { srv.Close(); <-served }) // before the broker's
	return l.Addr().String()
}

// TestDifferential runs every script in testdata/diff against beanstalkd
// and against spool, and compares the normalised transcripts.
func TestDifferential(t *testing.T) {
	if _, err := exec.LookPath("beanstalkd"); err != nil {
		t.Skip("beanstalkd not installed (Debian package beanstalkd); .ci/run installs it")
	}
	files, err := filepath.Glob(filepath.Join("testdata", "diff", "*.txt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/diff (%v)", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			steps, err := parseDiffScript(file)
			if err != nil {
				t.Fatal(err)
			}
			ref := startBeanstalkd(t)
			var other, otherName string
			if *diffSelf {
				other, otherName = startBeanstalkd(t), "beanstalkd#2"
			} else {
				other, otherName = startSpool(t), "spool"
			}
			want, got := diffRunBoth(t, steps, ref, other)
			for i, st := range steps {
				if r := want[i]; r.scriptError() {
					t.Fatalf("%s: beanstalkd gives %v: the script is wrong", st, r)
				}
			}
			if *diffShow {
				for i, st := range steps {
					t.Logf("%s\n    %v", st, want[i])
				}
			}
			diffCompare(t, steps, want, got, otherName)
		})
	}
}

// diffRunBoth runs the script against both servers at the same time, so that
// its waits are paid once.
func diffRunBoth(t *testing.T, steps []diffStep, addrA, addrB string) (a, b []diffReplies) {
	t.Helper()
	var errA, errB error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); a, errA = runDiffScript(addrA, steps) }()
	go func() { defer wg.Done(); b, errB = runDiffScript(addrB, steps) }()
	wg.Wait()
	if err := errors.Join(errA, errB); err != nil {
		t.Fatal(err)
	}
	return a, b
}

// diffAllowed are spool's differences from beanstalkd by design, each
// documented in the package doc ("Where spool differs from beanstalkd"):
// a step marked ?D compares its replies after D's mask, applied to both.
// A mask hides only what D explains; whatever else the step shows is
// still compared.
var diffAllowed = map[string]func(reply string) string{
	// spool keeps no per-message counters beyond attempts (reserves).
	"job-counters": diffMaskKeys("timeouts", "releases", "buries", "kicks"),
	// stats-job's delay is the put's: a release's delay is not kept.
	"release-delay": diffMaskKeys("delay"),
	// Buried jobs are peeked and kicked in id order, not bury order: the
	// whole reply (which job) may differ.
	"bury-order": diffMaskAll,
	// Tubes are durable queues, never dropped when unused and empty:
	// stats counts them all; list-tubes, stats-tube and pause-tube of a
	// tube beanstalkd has dropped answer differently.
	"durable-tubes": func(reply string) string {
		if _, _, ok := diffDict(reply); ok && !strings.Contains(reply, "\nname: ") {
			return diffMaskKeys("current-tubes")(reply)
		}
		return diffMaskAll(reply)
	},
}

// diffMaskKeys hides the values of keys in a stats reply.
func diffMaskKeys(keys ...string) func(string) string {
	return func(reply string) string {
		lines := strings.Split(reply, "\n")
		for i, l := range lines {
			if k, _, ok := strings.Cut(l, ": "); ok && slices.Contains(keys, k) {
				lines[i] = k + ": (differs by design)"
			}
		}
		return strings.Join(lines, "\n")
	}
}

func diffMaskAll(string) string { return "(differs by design)" }

// masked is r with the masks of the differences allowed applied.
func (r diffReplies) masked(allowed []string) diffReplies {
	if len(allowed) == 0 {
		return r
	}
	out := slices.Clone(r)
	for i := range out {
		for _, d := range allowed {
			out[i] = diffAllowed[d](out[i])
		}
	}
	return out
}

// diffCompare reports every step whose replies differ, up to a
// few: after the first difference the rest often follow from it.
func diffCompare(t *testing.T, steps []diffStep, want, got []diffReplies, otherName string) {
	t.Helper()
	const maxReported = 5
	n := 0
	for i, st := range steps {
		if want[i].masked(st.allowed).equal(got[i].masked(st.allowed)) {
			continue
		}
		if n++; n > maxReported {
			continue
		}
		if d, ok := diffStats(want[i], got[i]); ok {
			t.Errorf("%s\n    stats differ (key: beanstalkd | %s):%s", st, otherName, d)
			continue
		}
		t.Errorf("%s\n    beanstalkd:   %v\n    %-13s %v", st, want[i], otherName+":", got[i])
	}
	if n > maxReported {
		t.Errorf("… and %d more steps differ", n-maxReported)
	}
}

// diffStats lists the keys whose values differ when both replies are one
// stats dictionary: a whole stats reply would hide the one line that
// matters.
func diffStats(a, b diffReplies) (string, bool) {
	if len(a) != 1 || len(b) != 1 {
		return "", false
	}
	ka, va, okA := diffDict(a[0])
	kb, vb, okB := diffDict(b[0])
	if !okA || !okB {
		return "", false
	}
	var d strings.Builder
	line := func(k string) {
		x, inA := va[k]
		y, inB := vb[k]
		if !inA {
			x = "(no such key)"
		}
		if !inB {
			y = "(no such key)"
		}
		if x != y {
			fmt.Fprintf(&d, "\n        %s: %s | %s", k, x, y)
		}
	}
	for _, k := range ka {
		line(k)
	}
	for _, k := range kb {
		if _, ok := va[k]; !ok {
			line(k)
		}
	}
	if !slices.Equal(ka, kb) && d.Len() == 0 {
		d.WriteString("\n        (the same keys in another order)")
	}
	return d.String(), true
}

// diffDict parses a normalised stats reply into its keys, in order, and
// values; ok is false for any other reply, a tube list included.
func diffDict(reply string) (keys []string, vals map[string]string, ok bool) {
	y, ok := strings.CutPrefix(reply, "OK\r\n---\n")
	if !ok {
		return nil, nil, false
	}
	vals = map[string]string{}
	for _, l := range strings.Split(strings.TrimSuffix(y, "\n\r\n"), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			return nil, nil, false
		}
		keys, vals[k] = append(keys, k), v
	}
	return keys, vals, true
}

// A diffStep is one line of a script.
type diffStep struct {
	file    string
	line    int
	text    string // as written, for messages
	conn    int
	kind    diffKind
	payload []diffPart // for diffSend
	crlf    bool       // append "\r\n" to the payload
	replies int        // to read after sending, or for diffRead
	allowed []string   // the differences by design this step may show (?D)
}

func (s diffStep) String() string { return fmt.Sprintf("%s:%d: %s", s.file, s.line, s.text) }

type diffKind uint8

const (
	diffSend diffKind = iota
	diffRead
	diffSilent
	diffClose
)

// A diffPart of a payload is literal bytes or, when ref > 0, the id of the
// ref-th job, which differs between servers.
type diffPart struct {
	lit []byte
	ref int
}

// parseDiffScript reads a script (see the file's doc).
func parseDiffScript(file string) ([]diffStep, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var steps []diffStep
	for i, text := range strings.Split(string(data), "\n") {
		text = strings.TrimSuffix(text, "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		st := diffStep{file: filepath.Base(file), line: i + 1, text: text, conn: 1, crlf: true, replies: 1}
		rest := text
		for {
			tok, after, _ := strings.Cut(rest, " ")
			if ok, err := st.modifier(tok); err != nil {
				return nil, err
			} else if !ok {
				break
			}
			rest = after
		}
		switch rest {
		case "<":
			st.kind = diffRead
		case "!silent":
			st.kind = diffSilent
		case "!close":
			st.kind = diffClose
		default:
			if strings.HasPrefix(rest, "!") {
				return nil, fmt.Errorf("%s: unknown directive", st)
			}
			if st.payload, err = parseDiffPayload(rest); err != nil {
				return nil, fmt.Errorf("%s: %v", st, err)
			}
		}
		steps = append(steps, st)
	}
	return steps, nil
}

// modifier applies tok to st if it is a modifier (@N, =K, ~, ?D).
func (st *diffStep) modifier(tok string) (bool, error) {
	if tok == "~" {
		st.crlf = false
		return true, nil
	}
	if d, ok := strings.CutPrefix(tok, "?"); ok {
		if diffAllowed[d] == nil {
			return false, fmt.Errorf("%s: %q is no difference by design (diffAllowed)", st, d)
		}
		st.allowed = append(st.allowed, d)
		return true, nil
	}
	if len(tok) < 2 || (tok[0] != '@' && tok[0] != '=') {
		return false, nil
	}
	n, err := strconv.Atoi(tok[1:])
	if err != nil || n < 0 || n > 9 || (tok[0] == '@' && n == 0) {
		return false, fmt.Errorf("%s: bad modifier %q", st, tok)
	}
	if tok[0] == '@' {
		st.conn = n
	} else {
		st.replies = n
	}
	return true, nil
}

// parseDiffPayload expands a payload's escapes and finds its #K ids.
func parseDiffPayload(s string) ([]diffPart, error) {
	var parts []diffPart
	var lit []byte
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '#' && i+1 < len(s) && diffIsDigit(s[i+1]):
			j := i + 1
			for j < len(s) && diffIsDigit(s[j]) {
				j++
			}
			ref, _ := strconv.Atoi(s[i+1 : j])
			if ref == 0 {
				return nil, errors.New("#0: ids count from #1")
			}
			parts = append(parts, diffPart{lit: lit}, diffPart{ref: ref})
			lit, i = nil, j-1
		case c != '\\':
			lit = append(lit, c)
		case i+1 == len(s):
			return nil, errors.New("a lone backslash ends the line")
		default:
			i++
			switch s[i] {
			case 'r':
				lit = append(lit, '\r')
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case '\\', '#':
				lit = append(lit, s[i])
			case 'x':
				if i+2 >= len(s) {
					return nil, errors.New(`\x needs two hex digits`)
				}
				b, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
				if err != nil {
					return nil, fmt.Errorf(`\x%s: %v`, s[i+1:i+3], err)
				}
				lit, i = append(lit, byte(b)), i+2
			case '[':
				end := strings.IndexByte(s[i:], ']')
				star := strings.LastIndexByte(s[i:i+max(end, 0)], '*')
				if end < 0 || star < 0 {
					return nil, errors.New(`\[ needs "s*N]"`)
				}
				n, err := strconv.Atoi(s[i+star+1 : i+end])
				if err != nil {
					return nil, fmt.Errorf(`\[: %v`, err)
				}
				lit, i = append(lit, strings.Repeat(s[i+1:i+star], n)...), i+end
			default:
				return nil, fmt.Errorf(`unknown escape \%c`, s[i])
			}
		}
	}
	return append(parts, diffPart{lit: lit}), nil
}

func diffIsDigit(c byte) bool { return '0' <= c && c <= '9' }

// diffReplies is what one step got, each reply normalised.
type diffReplies []string

// Outcomes that are not replies.
const (
	diffNoReply    = "(no reply)"
	diffConnClosed = "(connection closed)"
	diffSilence    = "(diffSilence)"
)

func (r diffReplies) equal(o diffReplies) bool { return slices.Equal(r, o) }

// scriptError says whether the reference's replies show a mistake in the
// script: it asked for a reply beanstalkd does not send, or for an id no
// reply has named.
func (r diffReplies) scriptError() bool {
	for _, s := range r {
		if s == diffNoReply || strings.HasPrefix(s, "(unresolved") {
			return true
		}
	}
	return false
}

// String shows each reply quoted; OK's YAML one key a line, or a tube
// list on one line (names hold no spaces).
func (r diffReplies) String() string {
	if len(r) == 0 {
		return "(nothing)"
	}
	var b strings.Builder
	for i, s := range r {
		if i > 0 {
			b.WriteString("  then  ")
		}
		if yaml, ok := strings.CutPrefix(s, "OK\r\n"); ok {
			lines := strings.Split(strings.TrimRight(yaml, "\r\n"), "\n")
			if len(lines) > 1 && strings.HasPrefix(lines[1], "- ") {
				b.WriteString("OK list:")
				for _, l := range lines[1:] {
					b.WriteString(" " + strings.TrimPrefix(l, "- "))
				}
				continue
			}
			b.WriteString("OK")
			for _, l := range lines {
				b.WriteString("\n        " + l)
			}
			continue
		}
		b.WriteString(strconv.Quote(s))
	}
	return b.String()
}

// diffRun is one script's run against one server.
type diffRun struct {
	addr  string
	conns map[int]*diffConn
	names map[string]string // the server's id → "#K"
	ids   []string          // K-1 → the server's id
}

type diffConn struct {
	c  net.Conn
	br *bufio.Reader
}

// runDiffScript runs steps against the server at addr. It fails only when
// the server cannot be reached; anything the server does is a transcript.
func runDiffScript(addr string, steps []diffStep) ([]diffReplies, error) {
	r := &diffRun{addr: addr, conns: map[int]*diffConn{}, names: map[string]string{}}
	defer func() {
		for _, c := range r.conns {
			c.c.Close()
		}
	}()
	out := make([]diffReplies, len(steps))
	for i, st := range steps {
		c, err := r.conn(st.conn)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", st, err)
		}
		switch st.kind {
		case diffClose:
			c.c.Close()
			delete(r.conns, st.conn)
		case diffSilent:
			out[i] = diffReplies{r.silent(c)}
		case diffSend:
			msg, unresolved := r.resolve(st.payload)
			if unresolved != 0 {
				out[i] = diffReplies{fmt.Sprintf("(unresolved #%d: not sent)", unresolved)}
				continue
			}
			if st.crlf {
				msg = append(msg, "\r\n"...)
			}
			if _, err := c.c.Write(msg); err != nil {
				out[i] = diffReplies{"(write: " + err.Error() + ")"}
				continue
			}
			fallthrough
		case diffRead:
			for range st.replies {
				out[i] = append(out[i], r.reply(c))
			}
		}
	}
	return out, nil
}

func (r *diffRun) conn(n int) (*diffConn, error) {
	if c := r.conns[n]; c != nil {
		return c, nil
	}
	c, err := net.DialTimeout("tcp", r.addr, diffStartTimeout)
	if err != nil {
		return nil, err
	}
	r.conns[n] = &diffConn{c: c, br: bufio.NewReader(c)}
	return r.conns[n], nil
}

// resolve builds a payload with this server's ids. It returns the first
// #K no reply has named yet, if any.
func (r *diffRun) resolve(parts []diffPart) ([]byte, int) {
	var b []byte
	for _, p := range parts {
		if p.ref == 0 {
			b = append(b, p.lit...)
			continue
		}
		if p.ref > len(r.ids) {
			return nil, p.ref
		}
		b = append(b, r.ids[p.ref-1]...)
	}
	return b, 0
}

// name returns the normalised name of the server's job id.
func (r *diffRun) name(id string) string {
	if n, ok := r.names[id]; ok {
		return n
	}
	r.ids = append(r.ids, id)
	r.names[id] = "#" + strconv.Itoa(len(r.ids))
	return r.names[id]
}

// silent listens for diffSilentFor; anything that arrives is read as a reply.
func (r *diffRun) silent(c *diffConn) string {
	c.c.SetReadDeadline(time.Now().Add(diffSilentFor))
	_, err := c.br.Peek(1)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return diffSilence
	}
	return r.reply(c)
}

// reply reads and normalises one reply.
func (r *diffRun) reply(c *diffConn) string {
	c.c.SetReadDeadline(time.Now().Add(diffReplyTimeout))
	line, err := c.br.ReadString('\n')
	if err != nil {
		return diffReadFailure(line, err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return fmt.Sprintf("(malformed: %q)", line)
	}
	f := strings.Split(strings.TrimSuffix(line, "\r\n"), " ")
	var size string
	switch {
	case (f[0] == "INSERTED" || f[0] == "BURIED") && len(f) == 2:
		f[1] = r.name(f[1])
	case (f[0] == "RESERVED" || f[0] == "FOUND") && len(f) == 3:
		f[1] = r.name(f[1])
		size = f[2]
	case f[0] == "OK" && len(f) == 2:
		size, f = f[1], f[:1]
	}
	head := strings.Join(f, " ") + "\r\n"
	if size == "" {
		return head
	}
	n, err := strconv.Atoi(size)
	if err != nil || n < 0 {
		return fmt.Sprintf("(malformed: %q)", line)
	}
	body := make([]byte, n+2)
	if got, err := io.ReadFull(c.br, body); err != nil {
		return diffReadFailure(line+string(body[:got]), err)
	}
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		return fmt.Sprintf("(malformed: %q then %q)", line, body)
	}
	if f[0] == "OK" {
		return head + r.normaliseYAML(string(body[:n])) + "\r\n"
	}
	return head + string(body)
}

// diffReadFailure describes a reply that did not come whole.
func diffReadFailure(partial string, err error) string {
	var ne net.Error
	switch {
	case partial == "" && errors.As(err, &ne) && ne.Timeout():
		return diffNoReply
	case partial == "" && (errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)):
		return diffConnClosed
	}
	return fmt.Sprintf("(broken reply %q: %v)", partial, err)
}

// YAML keys whose values are masked (see the file's doc).
var (
	diffMaskedJobKeys = map[string]bool{"age": true, "file": true}

	diffMaskedServerKeys = map[string]bool{
		"pid": true, "version": true, "hostname": true, "os": true, "platform": true, "id": true,
		"uptime": true, "rusage-utime": true, "rusage-stime": true,
		"binlog-oldest-index": true, "binlog-current-index": true, "binlog-max-size": true,
		"binlog-records-migrated": true, "binlog-records-written": true,
		"total-connections": true,
	}

	diffMaskedNonzeroKeys = map[string]bool{"time-left": true, "pause-time-left": true}
)

// normaliseYAML normalises the body of an OK reply: a list of tubes, left
// as it is, or a stats dictionary.
func (r *diffRun) normaliseYAML(y string) string {
	lines := strings.Split(y, "\n")
	// Only stats-job's dictionary has a state; its id is a job id, where
	// stats's is the server's random one.
	job := strings.Contains(y, "\nstate: ")
	for i, l := range lines {
		k, v, ok := strings.Cut(l, ": ")
		if !ok || strings.HasPrefix(l, "- ") {
			continue
		}
		if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
			v = v[1 : len(v)-1]
		}
		switch {
		case job && k == "id":
			v = r.name(v)
		case job && diffMaskedJobKeys[k], !job && diffMaskedServerKeys[k]:
			v = "*"
		case diffMaskedNonzeroKeys[k] && v != "0":
			v = "*"
		}
		lines[i] = k + ": " + v
	}
	return strings.Join(lines, "\n")
}

// startBeanstalkd starts beanstalkd with a binlog on a free port, waits
// until it accepts connections, and kills it when the test ends. A port
// another process took between apitest.FreePort and beanstalkd's bind makes
// beanstalkd exit; it is then tried again on another port.
func startBeanstalkd(t *testing.T) string {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := apitest.FreePort(t)
		cmd := exec.Command("beanstalkd", "-l", "127.0.0.1", "-p", port, "-b", t.TempDir(),
			"-z", strconv.Itoa(diffMaxJobBytes))
		var stderr bytes.Buffer // read only after the process has exited
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		addr := net.JoinHostPort("127.0.0.1", port)
		err := diffAwaitListening(addr, exited)
		if err == nil {
			t.Cleanup(func() { cmd.Process.Kill(); <-exited })
			return addr
		}
		cmd.Process.Kill()
		<-exited
		if !errors.Is(err, errDiffExited) || attempt == 3 {
			t.Fatalf("beanstalkd on %s: %v; its stderr: %s", addr, err, stderr.Bytes())
		}
	}
}

var errDiffExited = errors.New("exited")

// diffAwaitListening polls addr until it accepts a connection, the process
// exits or diffStartTimeout passes. The probe connection quits and waits for
// beanstalkd to close it, so that it is gone from current-connections when
// the script starts (a plain close would be noticed some time later).
func diffAwaitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(diffStartTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
		if err == nil {
			defer c.Close()
			c.SetDeadline(deadline)
			if _, err := c.Write([]byte("quit\r\n")); err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, c); err != nil {
				return fmt.Errorf("probe's quit: %v", err)
			}
			return nil
		}
		select {
		case <-exited:
			return errDiffExited
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond) // the poll's interval
	}
}
