package main

// TestREADME replays the transcripts in README.md, so the README shows
// what spool does, not what it did once.
//
// The convention (README.md repeats it in a comment above Quick start):
//
//   - A transcript is a fenced block whose info string is "console".
//     Every other block is an untested example; a block outside the
//     convention may not show "$ " prompts, so nothing looks tested that
//     is not.
//   - A line starting with "$ " is a command; the lines after it, up to
//     the next command or the end of the block, are what it prints:
//     stdout and stderr together, as a terminal shows them. A command
//     that fails prints its error as the binary does ("spool: ...").
//   - Each block runs from its first command on a fresh server (in
//     process, on an empty data directory in a temp dir, on a free port),
//     so blocks never depend on one another, and a block's commands run
//     in order, each after the previous one has finished.
//   - Commands are a small shell: words with '...', "..." and \ quoting,
//     # comments, and | pipelines of spool (or ./spool), curl, echo, seq
//     and grep. spool runs in this process through runMain (main but
//     the process: a failure prints as the binary prints it), with
//     SPOOL_ADDR naming the block's server; curl is net/http with curl's
//     -X, -d/--data/--data-binary (@- for stdin), -H, -s, -S and -w
//     '%{http_code}' flags and its default form content type; its URL's
//     host must be localhost:7070 or 127.0.0.1:7070, the default address,
//     which the test points at the block's server, as it does in spool's
//     arguments (--addr localhost:7070); any other address is left alone. grep takes -v, -c, -F
//     and a Go regular expression. Anything else (redirection, ;, &&, $)
//     is refused, so a transcript never shows a command the test did not
//     run as written.
//   - Comparison, after normalising what differs from run to run: every
//     RFC 3339 timestamp, in the README and in the output, reads as the
//     same placeholder (so the README may show a real one); the block's
//     server address reads as 127.0.0.1:7070 and its data directory as
//     ./spool-data. In the expected output, "..." matches any text within
//     a line, and a line that is just "..." matches any number of lines.
//     Trailing spaces are ignored and a run of two or more spaces
//     compares as two (tabwriter pads columns to the widest cell, and a
//     timestamp's width varies), and output without a final newline gets
//     one, as a shell's next prompt would start on a new line anyway.
//
// A mismatch fails the block at that command with a line diff; the
// commands after it are not run. After a change to what the CLI or the
// API prints, `go test -run README . -readme.update` rewrites the output
// of every command whose output no longer matches (check the diff: a
// rewritten line loses its "..."), and leaves the rest alone.

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var readmeUpdate = flag.Bool("readme.update", false, "rewrite README.md's transcripts with the output they have now, where it differs")

// transcriptCommandTimeout bounds one transcript command: a long poll the
// README shows waits at most a few seconds, so a command still running
// after this is hung, and fails its block instead of the whole test run.
const transcriptCommandTimeout = 30 * time.Second

// transcript is one console block of the README.
type transcript struct {
	line  int // of its opening fence
	steps []transcriptStep
}

// transcriptStep is one "$ " command and the output shown below it.
type transcriptStep struct {
	line int // of the command
	cmd  string
	want []string
}

// fencedBlock is any fenced code block of a Markdown file.
type fencedBlock struct {
	line  int // of its opening fence
	info  string
	lines []string
}

// fencedBlocks returns the fenced code blocks of a Markdown text.
func fencedBlocks(text string) ([]fencedBlock, error) {
	var blocks []fencedBlock
	var cur *fencedBlock
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &fencedBlock{line: i + 1, info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.lines = append(cur.lines, line)
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: code block never closed", cur.line)
	}
	return blocks, nil
}

// parseTranscripts returns the console blocks of a Markdown text, and
// refuses a prompt shown in any other block.
func parseTranscripts(text string) ([]transcript, error) {
	blocks, err := fencedBlocks(text)
	if err != nil {
		return nil, err
	}
	var ts []transcript
	for _, b := range blocks {
		if b.info != "console" {
			for i, l := range b.lines {
				if strings.HasPrefix(l, "$ ") {
					return nil, fmt.Errorf("line %d: a %q block shows a \"$ \" prompt; make it a console block, so it is tested, or drop the prompt", b.line+1+i, b.info)
				}
			}
			continue
		}
		t := transcript{line: b.line}
		for i, l := range b.lines {
			n := b.line + 1 + i
			if cmd, ok := strings.CutPrefix(l, "$ "); ok {
				t.steps = append(t.steps, transcriptStep{line: n, cmd: cmd})
				continue
			}
			if len(t.steps) == 0 {
				return nil, fmt.Errorf("line %d: console block has output before its first \"$ \" command", n)
			}
			s := &t.steps[len(t.steps)-1]
			s.want = append(s.want, l)
		}
		if len(t.steps) == 0 {
			return nil, fmt.Errorf("line %d: console block without a \"$ \" command", b.line)
		}
		ts = append(ts, t)
	}
	return ts, nil
}

func TestREADME(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := fencedBlocks(string(data))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	t.Run("first block is the two set-up commands", func(t *testing.T) {
		want := []string{"go run . serve", "go test ./..."}
		var got []string
		if len(blocks) > 0 {
			for _, l := range blocks[0].lines {
				if cmd, _, _ := strings.Cut(l, "#"); strings.TrimSpace(cmd) != "" {
					got = append(got, strings.TrimSpace(cmd))
				}
			}
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("README.md's first code block runs %q, want exactly %q", got, want)
		}
	})
	ts, err := parseTranscripts(string(data))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	if len(ts) == 0 {
		t.Fatal("README.md has no console transcripts")
	}
	var edits []outputEdit
	for _, tr := range ts {
		t.Run(fmt.Sprintf("README.md:%d", tr.line), func(t *testing.T) {
			edits = append(edits, replayTranscript(t, tr)...)
		})
	}
	if *readmeUpdate && len(edits) > 0 {
		lines := strings.Split(string(data), "\n")
		for i := len(edits) - 1; i >= 0; i-- { // from the end, so line numbers hold
			e := edits[i]
			lines = append(lines[:e.after], append(e.lines, lines[e.after+e.n:]...)...)
		}
		if err := os.WriteFile("README.md", []byte(strings.Join(lines, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote the output of %d commands in README.md", len(edits))
	}
}

// outputEdit replaces the n lines after line after (1-based) of the
// README: a command's shown output, with what it printed.
type outputEdit struct {
	after, n int
	lines    []string
}

// replayTranscript runs one console block on a fresh server. With
// -readme.update it goes on past a mismatch and returns the edits that
// would make the block match.
func replayTranscript(t *testing.T, tr transcript) []outputEdit {
	for _, kv := range os.Environ() { // the developer's SPOOL_* must not leak in
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "SPOOL_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	data := t.TempDir()
	srv := startServe(t, data)
	t.Setenv("SPOOL_ADDR", srv.addr)
	sh := &transcriptShell{srv: srv}
	normalize := func(s string) string {
		s = strings.ReplaceAll(s, srv.base, "http://127.0.0.1:7070")
		s = strings.ReplaceAll(s, srv.addr, "127.0.0.1:7070")
		return strings.ReplaceAll(s, data, "./spool-data")
	}
	var edits []outputEdit
	for _, st := range tr.steps {
		got, err := sh.run(st.cmd)
		if err != nil {
			t.Fatalf("README.md:%d: $ %s\n%v\nserver log:\n%s", st.line, st.cmd, err, srv.logs.String())
		}
		got = normalize(got)
		diff, ok := matchOutput(st.want, got)
		switch {
		case ok:
		case *readmeUpdate:
			var lines []string
			if got != "" {
				for l := range strings.Lines(got) {
					lines = append(lines, strings.TrimRight(l, " \t\n"))
				}
			}
			edits = append(edits, outputEdit{after: st.line, n: len(st.want), lines: lines})
		default:
			t.Fatalf("README.md:%d: $ %s\noutput differs from the README (- README, + actual):\n%s", st.line, st.cmd, diff)
		}
	}
	return edits
}

// transcriptShell runs transcript command lines against one server.
type transcriptShell struct {
	srv *inProcServer
}

// run runs one command line and returns what a terminal would show. Its
// error is a command line the shell does not support, or one that hung.
func (sh *transcriptShell) run(line string) (string, error) {
	stages, err := splitPipeline(line)
	if err != nil {
		return "", err
	}
	var term bytes.Buffer // the terminal: every stage's stderr, the last one's stdout
	var in []byte
	for i, words := range stages {
		out := &bytes.Buffer{}
		stdout := io.Writer(out)
		if i == len(stages)-1 {
			stdout = &term
		}
		if err := sh.exec(words, in, stdout, &term); err != nil {
			return "", err
		}
		in = out.Bytes()
	}
	s := term.String()
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s, nil
}

// exec runs one stage of a pipeline.
func (sh *transcriptShell) exec(words []string, stdin []byte, stdout, stderr io.Writer) error {
	switch words[0] {
	case "spool", "./spool":
		args := slices.Clone(words[1:])
		for i, a := range args { // --addr 127.0.0.1:7070 means the block's server
			for _, def := range []string{"127.0.0.1:7070", "localhost:7070"} {
				args[i] = strings.Replace(a, def, sh.srv.addr, 1)
				if args[i] != a {
					break
				}
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), transcriptCommandTimeout)
		defer cancel()
		runMain(ctx, args, bytes.NewReader(stdin), stdout, stderr)
		if ctx.Err() != nil {
			return fmt.Errorf("still running after %s", transcriptCommandTimeout)
		}
		return nil
	case "curl":
		return sh.curl(words[1:], stdin, stdout)
	case "echo":
		fmt.Fprintln(stdout, strings.Join(words[1:], " "))
		return nil
	case "seq":
		return seq(words[1:], stdout)
	case "grep":
		return grep(words[1:], stdin, stdout)
	}
	return fmt.Errorf("the transcript test does not run %q (spool, curl, echo, seq and grep only)", words[0])
}

// splitPipeline splits a command line into its pipeline's stages, each a
// list of words, with sh's quoting rules for '...', "..." and \.
func splitPipeline(line string) ([][]string, error) {
	var stages [][]string
	var words []string
	var word strings.Builder
	inWord := false
	endWord := func() {
		if inWord {
			words = append(words, word.String())
			word.Reset()
			inWord = false
		}
	}
	endStage := func() error {
		endWord()
		if len(words) == 0 {
			return fmt.Errorf("empty command in %q", line)
		}
		stages = append(stages, words)
		words = nil
		return nil
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inWord:
			i = len(line) // a comment runs to the end of the line
		case c == '|':
			if err := endStage(); err != nil {
				return nil, err
			}
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unclosed ' in %q", line)
			}
			word.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += 1 + j
		case c == '"':
			inWord = true
			for i++; ; i++ {
				if i == len(line) {
					return nil, fmt.Errorf("unclosed \" in %q", line)
				}
				if line[i] == '"' {
					break
				}
				if line[i] == '$' || line[i] == '`' {
					return nil, fmt.Errorf("the transcript test does not expand %q inside \"...\" in %q", line[i], line)
				}
				if line[i] == '\\' && i+1 < len(line) && strings.IndexByte("\"\\$`", line[i+1]) >= 0 {
					i++
				}
				word.WriteByte(line[i])
			}
		case c == '\\':
			if i+1 < len(line) {
				i++
				word.WriteByte(line[i])
				inWord = true
			}
		case strings.IndexByte(";&<>()$`*?[]{}", c) >= 0 || (c == '~' && !inWord):
			return nil, fmt.Errorf("the transcript test does not support %q unquoted in %q: quote it, or keep the example in an untested sh block", c, line)
		default:
			word.WriteByte(c)
			inWord = true
		}
	}
	if err := endStage(); err != nil {
		return nil, err
	}
	return stages, nil
}

// curl does what curl does with the flags transcripts use: the reply's
// body on stdout (any status: no -f), then -w's text.
func (sh *transcriptShell) curl(args []string, stdin []byte, stdout io.Writer) error {
	method, target, writeOut := "", "", ""
	var body io.Reader
	header := http.Header{}
	for i := 0; i < len(args); i++ {
		a := args[i]
		value := func() (string, error) {
			if i+1 == len(args) {
				return "", fmt.Errorf("curl %s needs a value", a)
			}
			i++
			return args[i], nil
		}
		var err error
		var v string
		switch a {
		case "-s", "--silent", "-S", "--show-error", "-sS":
		case "-X", "--request":
			method, err = value()
		case "-d", "--data", "--data-binary":
			if v, err = value(); err == nil {
				if v == "@-" {
					v = string(stdin)
					if a != "--data-binary" { // curl -d @- drops newlines
						v = strings.NewReplacer("\r", "", "\n", "").Replace(v)
					}
				}
				body = strings.NewReader(v)
				if header.Get("Content-Type") == "" {
					header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
			}
		case "-H", "--header":
			if v, err = value(); err == nil {
				k, hv, ok := strings.Cut(v, ":")
				if !ok {
					return fmt.Errorf("curl -H %q: want Name: value", v)
				}
				header.Set(strings.TrimSpace(k), strings.TrimSpace(hv))
			}
		case "-w", "--write-out":
			writeOut, err = value()
		default:
			if strings.HasPrefix(a, "-") {
				return fmt.Errorf("the transcript test's curl does not take %s", a)
			}
			if target != "" {
				return fmt.Errorf("curl given two URLs, %q and %q", target, a)
			}
			target = a
		}
		if err != nil {
			return err
		}
	}
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil {
		return fmt.Errorf("curl URL %q: %v", target, err)
	}
	if u.Host != "localhost:7070" && u.Host != "127.0.0.1:7070" {
		return fmt.Errorf("curl URL %q: the transcript test points localhost:7070 and 127.0.0.1:7070 at its server, and no other host", target)
	}
	u.Host = sh.srv.addr
	if method == "" {
		method = http.MethodGet
		if body != nil {
			method = http.MethodPost
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), transcriptCommandTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	req.Header = header
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		return err
	}
	if writeOut != "" {
		fmt.Fprint(stdout, strings.NewReplacer(`%{http_code}`, strconv.Itoa(resp.StatusCode),
			`%{content_type}`, resp.Header.Get("Content-Type"), `\n`, "\n", `\t`, "\t").Replace(writeOut))
	}
	return nil
}

// seq is seq [FIRST] LAST.
func seq(args []string, stdout io.Writer) error {
	nums := make([]int, len(args))
	for i, a := range args {
		n, err := strconv.Atoi(a)
		if err != nil {
			return fmt.Errorf("seq %q: %v", args, err)
		}
		nums[i] = n
	}
	first, last := 1, 0
	switch len(nums) {
	case 1:
		last = nums[0]
	case 2:
		first, last = nums[0], nums[1]
	default:
		return fmt.Errorf("the transcript test's seq takes [FIRST] LAST, got %q", args)
	}
	for n := first; n <= last; n++ {
		fmt.Fprintln(stdout, n)
	}
	return nil
}

// grep is grep [-v] [-c] [-F] PATTERN over stdin, the pattern a Go
// regular expression unless -F.
func grep(args []string, stdin []byte, stdout io.Writer) error {
	invert, count, fixed := false, false, false
	var pattern *string
	for _, a := range args {
		switch {
		case pattern == nil && a == "-v":
			invert = true
		case pattern == nil && a == "-c":
			count = true
		case pattern == nil && a == "-F":
			fixed = true
		case pattern == nil && !strings.HasPrefix(a, "-"):
			pattern = &a
		default:
			return fmt.Errorf("the transcript test's grep takes [-v] [-c] [-F] PATTERN, got %q", args)
		}
	}
	if pattern == nil {
		return fmt.Errorf("grep without a pattern")
	}
	expr := *pattern
	if fixed {
		expr = regexp.QuoteMeta(expr)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return fmt.Errorf("grep %q: %v", *pattern, err)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(stdin))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if re.MatchString(sc.Text()) != invert {
			n++
			if !count {
				fmt.Fprintln(stdout, sc.Text())
			}
		}
	}
	if count {
		fmt.Fprintln(stdout, n)
	}
	return sc.Err()
}

// timestampRE is an RFC 3339 timestamp, as the API and the log write them.
var timestampRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)

const timestampPlaceholder = "<time>"

// paddingRE is the padding between table columns. tabwriter pads to the
// widest cell, and a timestamp's width varies (RFC 3339 drops trailing
// zeros of the nanoseconds), so any run of two spaces or more compares
// as two.
var paddingRE = regexp.MustCompile(`  +`)

// normalizeLine is an output line as it is compared: timestamps a
// placeholder, column padding two spaces, no trailing spaces.
func normalizeLine(l string) string {
	l = timestampRE.ReplaceAllString(strings.TrimRight(l, " \t"), timestampPlaceholder)
	return paddingRE.ReplaceAllString(l, "  ")
}

// lineMatcher compiles an expected output line, normalised as the output
// is, with "..." matching anything.
func lineMatcher(want string) *regexp.Regexp {
	want = normalizeLine(want)
	parts := strings.Split(want, "...")
	for i, p := range parts {
		parts[i] = regexp.QuoteMeta(p)
	}
	return regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
}

// matchOutput reports whether got (the normalised output) matches the
// README's lines want, and if not, a diff.
func matchOutput(want []string, got string) (string, bool) {
	gotLines := strings.Split(strings.TrimSuffix(got, "\n"), "\n")
	if got == "" {
		gotLines = nil
	}
	for i, l := range gotLines {
		gotLines[i] = normalizeLine(l)
	}
	matchers := make([]*regexp.Regexp, len(want))
	for i, w := range want {
		if w != "..." {
			matchers[i] = lineMatcher(w)
		}
	}
	// ok[i][j]: want[i:] matches gotLines[j:]; a "..." line takes any
	// number of lines.
	ok := make([][]bool, len(want)+1)
	for i := range ok {
		ok[i] = make([]bool, len(gotLines)+1)
	}
	ok[len(want)][len(gotLines)] = true
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(gotLines); j >= 0; j-- {
			if matchers[i] == nil {
				ok[i][j] = ok[i+1][j] || (j < len(gotLines) && ok[i][j+1])
			} else {
				ok[i][j] = j < len(gotLines) && matchers[i].MatchString(gotLines[j]) && ok[i+1][j+1]
			}
		}
	}
	if ok[0][0] {
		return "", true
	}
	return lineDiff(want, matchers, gotLines), false
}

// lineDiff is a longest-common-subsequence diff of the README's lines
// against the output's, a line matching its matcher counting as equal
// (and a "..." line as matching nothing).
func lineDiff(want []string, matchers []*regexp.Regexp, got []string) string {
	eq := func(i, j int) bool { return matchers[i] != nil && matchers[i].MatchString(got[j]) }
	lcs := make([][]int, len(want)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(got)+1)
	}
	for i := len(want) - 1; i >= 0; i-- {
		for j := len(got) - 1; j >= 0; j-- {
			if eq(i, j) {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var b strings.Builder
	i, j := 0, 0
	for i < len(want) || j < len(got) {
		switch {
		case i < len(want) && j < len(got) && eq(i, j):
			fmt.Fprintf(&b, "  %s\n", got[j])
			i, j = i+1, j+1
		case j < len(got) && (i == len(want) || lcs[i][j+1] >= lcs[i+1][j]):
			fmt.Fprintf(&b, "+ %s\n", got[j])
			j++
		default:
			fmt.Fprintf(&b, "- %s\n", want[i])
			i++
		}
	}
	return b.String()
}
