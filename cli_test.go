package main

// The CLI as a newcomer meets it: every command documented, every route
// reachable, help on stdout, errors on one line.

import (
	"bytes"
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/spoolq/spool/api"
	"github.com/spoolq/spool/queue"
)

// commandNames returns the names of every subcommand, sorted.
func commandNames() []string {
	var names []string
	for name := range commands {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// runAsMain runs args as main does, with the variables of env set for the
// test, and returns the exit status and what went to stdout and stderr.
func runAsMain(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errOut bytes.Buffer
	code = runMain(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestHelpGoesToStdoutAndExitsZero(t *testing.T) {
	for _, name := range commandNames() {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			t.Run(strings.Join(args, " "), func(t *testing.T) {
				code, help, errOut := runAsMain(t, nil, args...)
				if code != 0 || errOut != "" {
					t.Fatalf("spool %s exited %d, wrote to stderr:\n%s", strings.Join(args, " "), code, errOut)
				}
				if !strings.Contains(help, "Flags:\n") {
					t.Errorf("help lacks its flags:\n%s", help)
				}
				example := regexp.MustCompile(`(?m)^  .*\bspool ` + name + `\b`)
				if !example.MatchString(help) {
					t.Errorf("help has no example line (an indented line running spool %s):\n%s", name, help)
				}
			})
		}
	}
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := runAsMain(t, nil, args...)
			if code != 0 || errOut != "" {
				t.Fatalf("spool %s exited %d, stderr %q", args[0], code, errOut)
			}
			for _, name := range commandNames() {
				if !regexp.MustCompile(`(?m)^  spool .*\b` + name + `\b`).MatchString(out) {
					t.Errorf("the usage does not list %s:\n%s", name, out)
				}
			}
		})
	}
}

// routeConstants returns the names of the route constants api/routes.go
// declares: every Route, and every path (QueuesPath, HealthPath, ...).
func routeConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "api/routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, spec := range gd.Specs {
			vs := spec.(*ast.ValueSpec)
			typ, _ := vs.Type.(*ast.Ident)
			for _, n := range vs.Names {
				if (typ != nil && typ.Name == "Route") || strings.HasSuffix(n.Name, "Path") {
					names = append(names, n.Name)
				}
			}
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %q in api/routes.go: has its layout changed?", names)
	}
	return names
}

// TestEveryRouteHasACommand runs, for every route of the HTTP API, the
// command that uses it against a server that records the request, and
// checks that the table covers every route constant api/routes.go has:
// a route added there without a command fails here.
func TestEveryRouteHasACommand(t *testing.T) {
	const q = "q"
	cases := []struct {
		route  string // the constant's name in api/routes.go
		method string
		path   string
		args   []string
		stdin  string
	}{
		{"QueuesPath", "GET", api.QueuesPath, []string{"queues"}, ""},
		{"HealthPath", "GET", api.HealthPath, []string{"health"}, ""},
		{"MetricsPath", "GET", api.MetricsPath, []string{"metrics"}, ""},
		{"BackupPath", "GET", api.BackupPath, []string{"backup", filepath.Join(t.TempDir(), "copy")}, ""},
		{"RouteQueue", "GET", api.QueuePath(q, api.RouteQueue), []string{"stats", q}, ""},
		{"RouteQueue", "POST", api.QueuePath(q, api.RouteQueue), []string{"create", q}, ""},
		{"RouteDelete", "POST", api.QueuePath(q, api.RouteDelete), []string{"delete", q}, ""},
		{"RoutePurge", "POST", api.QueuePath(q, api.RoutePurge), []string{"purge", q}, ""},
		{"RouteMessages", "POST", api.QueuePath(q, api.RouteMessages), []string{"send", q, "x"}, ""},
		{"RouteMessages", "GET", api.QueuePath(q, api.RouteMessages), []string{"peek", q}, ""},
		{"RouteBatch", "POST", api.QueuePath(q, api.RouteBatch), []string{"send", q, "--batch"}, "x\n"},
		{"RouteReceive", "POST", api.QueuePath(q, api.RouteReceive), []string{"recv", q}, ""},
		{"RouteStream", "POST", api.QueuePath(q, api.RouteStream), []string{"recv", q, "--follow", "--max", "1"}, ""},
		{"RouteAck", "POST", api.QueuePath(q, api.RouteAck), []string{"ack", q, "1.1"}, ""},
		{"RouteNack", "POST", api.QueuePath(q, api.RouteNack), []string{"nack", q, "1.1"}, ""},
		{"RouteExtend", "POST", api.QueuePath(q, api.RouteExtend), []string{"extend", q, "1.1"}, ""},
		{"RouteFail", "POST", api.QueuePath(q, api.RouteFail), []string{"fail", q, "1.1"}, ""},
		{"RouteDead", "GET", api.QueuePath(q, api.RouteDead), []string{"dead", q}, ""},
		{"RouteRedrive", "POST", api.QueuePath(q, api.RouteRedrive), []string{"redrive", q}, ""},

		// A topic's routes, and a subscription's, addressed as q/s.
		{"TopicsPath", "GET", api.TopicsPath, []string{"topic", "list"}, ""},
		{"RouteQueue", "GET", api.TopicPath(q, api.RouteQueue), []string{"topic", "info", q}, ""},
		{"RouteQueue", "POST", api.TopicPath(q, api.RouteQueue), []string{"topic", "create", q}, ""},
		{"RouteDelete", "POST", api.TopicPath(q, api.RouteDelete), []string{"topic", "delete", q}, ""},
		{"RouteMessages", "POST", api.TopicPath(q, api.RouteMessages), []string{"publish", q, "x"}, ""},
		{"RouteBatch", "POST", api.TopicPath(q, api.RouteBatch), []string{"publish", q, "--batch"}, "x\n"},
		{"RouteSeek", "POST", api.TopicPath(q, api.RouteSeek), []string{"seek", q, "earliest"}, ""},
		{"RouteQueue", "GET", api.SubscriptionPath(q, "s", api.RouteQueue), []string{"stats", q + "/s"}, ""},
		{"RouteQueue", "POST", api.SubscriptionPath(q, "s", api.RouteQueue), []string{"subscribe", q, "s"}, ""},
		{"RouteDelete", "POST", api.SubscriptionPath(q, "s", api.RouteDelete), []string{"delete", q + "/s"}, ""},
		{"RouteSeek", "POST", api.SubscriptionPath(q, "s", api.RouteSeek), []string{"seek", q + "/s", "latest"}, ""},
		{"RouteMessages", "GET", api.SubscriptionPath(q, "s", api.RouteMessages), []string{"peek", q + "/s"}, ""},
		{"RouteReceive", "POST", api.SubscriptionPath(q, "s", api.RouteReceive), []string{"recv", q + "/s"}, ""},
		{"RouteStream", "POST", api.SubscriptionPath(q, "s", api.RouteStream), []string{"recv", q + "/s", "--follow", "--max", "1"}, ""},
		{"RouteAck", "POST", api.SubscriptionPath(q, "s", api.RouteAck), []string{"ack", q + "/s", "1.1"}, ""},
		{"RouteNack", "POST", api.SubscriptionPath(q, "s", api.RouteNack), []string{"nack", q + "/s", "1.1"}, ""},
		{"RouteExtend", "POST", api.SubscriptionPath(q, "s", api.RouteExtend), []string{"extend", q + "/s", "1.1"}, ""},
		{"RouteFail", "POST", api.SubscriptionPath(q, "s", api.RouteFail), []string{"fail", q + "/s", "1.1"}, ""},
		{"RouteDead", "GET", api.SubscriptionPath(q, "s", api.RouteDead), []string{"dead", q + "/s"}, ""},
		{"RouteRedrive", "POST", api.SubscriptionPath(q, "s", api.RouteRedrive), []string{"redrive", q + "/s"}, ""},
	}
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case r.URL.Path == api.HealthPath:
			w.Write([]byte("ok\n"))
		case r.URL.Path == api.MetricsPath:
			w.Write([]byte("# no metrics\n"))
		case r.URL.Path == api.BackupPath:
			// The backup of an empty data directory: the marker alone.
			b, err := queue.Open(t.TempDir(), queue.Options{MaintenanceInterval: -1, Logger: slog.New(slog.DiscardHandler)})
			if err == nil {
				_, err = b.Backup(w)
				b.Close()
			}
			if err != nil {
				t.Error(err)
			}
		case strings.HasSuffix(r.URL.Path, string(api.RouteReceive)):
			w.WriteHeader(http.StatusNoContent)
		case strings.HasSuffix(r.URL.Path, string(api.RouteStream)):
			// One message, then the stream ends when the client's body does.
			http.NewResponseController(w).EnableFullDuplex()
			w.Write([]byte(`{"id":"1","receipt":"1.1","attempts":1,"body":"x"}` + "\n"))
			w.(http.Flusher).Flush()
			io.Copy(io.Discard, r.Body)
		default: // one reply every JSON route's decoder takes
			w.Write([]byte(`{"ids":["1"],"results":[],"messages":[],"queues":[],"topics":[],"redriven":0,"name":"q","id":"1"}`))
		}
	}))
	defer srv.Close()
	covered := map[string]bool{}
	for _, tc := range cases {
		covered[tc.route] = true
		t.Run(tc.route+" "+tc.method+" "+strings.Join(tc.args, " "), func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			var out, errOut bytes.Buffer
			if err := run(context.Background(), append(tc.args, "--addr", srv.URL), strings.NewReader(tc.stdin), &out, &errOut); err != nil {
				t.Fatalf("spool %q: %v\n%s", tc.args, err, errOut.String())
			}
			mu.Lock()
			defer mu.Unlock()
			if want := []string{tc.method + " " + tc.path}; !slices.Equal(got, want) {
				t.Fatalf("spool %q sent %q, want %q", tc.args, got, want)
			}
		})
	}
	for _, name := range routeConstants(t) {
		if !covered[name] {
			t.Errorf("api.%s has no command in this table (and perhaps none in the CLI)", name)
		}
	}
}

// closedAddr returns a loopback address nothing listens on: a port the
// kernel handed out and that was closed again at once.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestCLIErrorsReadAsOneLine runs failing command lines as main does and
// checks what the user reads: one line, one "spool: ", what went wrong
// and what to do, and the exit status.
func TestCLIErrorsReadAsOneLine(t *testing.T) {
	srv := startServe(t, t.TempDir(), "--token", "sekrit")
	if _, _, err := api.NewClient(srv.base, "sekrit", nil).PutQueue(context.Background(), "q", api.QueueConfig{}); err != nil {
		t.Fatal(err)
	}
	nobody := closedAddr(t)
	cases := []struct {
		name    string
		args    []string
		env     map[string]string
		code    int
		want    []string
		notWant []string
	}{
		{"a missing token names the flag and the variable",
			[]string{"--addr", srv.addr, "queues"}, nil, 1,
			[]string{"unauthorized", "--token", "SPOOL_TOKEN", "[401 unauthorized]"}, []string{"unauthorized: unauthorized", "Authorization: Bearer"}},
		{"a wrong token says the server refused it",
			[]string{"--addr", srv.addr, "--token", "wrong", "queues"}, nil, 1,
			[]string{"refused the token", "[401 unauthorized]"}, nil},
		{"a missing queue says how to create it",
			[]string{"stats", "nope", "--addr", srv.addr, "--token", "sekrit"}, nil, 1,
			[]string{`"nope" does not exist`, "spool create nope", "[404 queue_not_found]"}, []string{"404 queue_not_found: queue not found"}},
		{"no server says how to start one",
			[]string{"--addr", nobody, "queues"}, nil, 1,
			[]string{"no spool server at " + nobody, "spool serve", "--addr", "SPOOL_ADDR"}, []string{"dial tcp", "connection refused"}},
		{"SPOOL_ADDR is where the client commands go",
			[]string{"queues"}, map[string]string{"SPOOL_ADDR": nobody}, 1,
			[]string{"no spool server at " + nobody}, nil},
		{"a long poll past the server's bound says the bound",
			[]string{"--addr", srv.addr, "--token", "sekrit", "recv", "q", "--wait", "30s"}, nil, 2,
			[]string{"--wait 30s", "20s", "--max-wait"}, []string{"like 30s"}},
		{"a bare port as --addr says what to write",
			[]string{"queues", "--addr", "17075"}, nil, 2,
			[]string{"--addr", "host:port", "127.0.0.1:17075", ":17075"}, []string{"missing port"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, line := runAsMain(t, tc.env, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d", code, tc.code)
			}
			if !strings.HasPrefix(line, "spool: ") || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Fatalf("stderr is %q, want one line starting \"spool: \"", line)
			}
			if strings.Contains(line, "spool: spool:") {
				t.Errorf("stderr %q doubles the prefix", line)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("stderr %q lacks %q", line, w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(line, w) {
					t.Errorf("stderr %q has %q", line, w)
				}
			}
		})
	}
}

// TestGlobalFlagsGoBeforeTheCommand checks that --addr and --token work
// before the command as after it, and that one after the command wins.
func TestGlobalFlagsGoBeforeTheCommand(t *testing.T) {
	srv := startServe(t, t.TempDir(), "--token", "sekrit")
	cli := func(args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		return out.String(), err
	}
	if out, err := cli("--addr", srv.addr, "--token", "sekrit", "create", "q"); err != nil || !strings.HasPrefix(out, "created q") {
		t.Fatalf("spool --addr A --token T create q = %q, %v", out, err)
	}
	if out, err := cli("--addr="+srv.addr, "--token=sekrit", "send", "q", "x"); err != nil || out != "1\n" {
		t.Fatalf("spool --addr=A --token=T send q x = %q, %v", out, err)
	}
	if out, err := cli("--token", "wrong", "--addr", closedAddr(t), "queues", "--addr", srv.addr, "--token", "sekrit"); err != nil || !strings.Contains(out, "QUEUE") {
		t.Fatalf("flags after the command should win over flags before it: %q, %v", out, err)
	}
	if _, err := cli("--token", "sekrit", "check"); exitCode(err) != 2 || !strings.Contains(err.Error(), "--token is not a flag of check") {
		t.Fatalf("spool --token T check = %v, want a usage error naming the flag", err)
	}
}

func TestBodyText(t *testing.T) {
	cases := []struct {
		name string
		body string
		want string
	}{
		{"one line of text prints as it is", "hello, world", "hello, world"},
		{"JSON prints as it is", `{"to":"ada@example.com"}`, `{"to":"ada@example.com"}`},
		{"printable Unicode prints as it is", "café ☕", "café ☕"},
		{"a newline is quoted, so it cannot pass for two messages", "a\nb", `"a\nb"`},
		{"a trailing newline is quoted", "line\n", `"line\n"`},
		{"a tab is quoted", "a\tb", `"a\tb"`},
		{"bytes that are not UTF-8 are quoted", "\xff\x00", `"\xff\x00"`},
		{"an empty body is quoted, so it shows", "", `""`},
		{"a body starting with a quote is quoted, so a quote always means quoted", `"hi" she said`, `"\"hi\" she said"`},
		{"a quote inside text prints as it is", `say "hi"`, `say "hi"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := bodyText([]byte(tc.body)); got != tc.want {
				t.Errorf("bodyText(%q) = %s, want %s", tc.body, got, tc.want)
			}
		})
	}
}

func TestTableTimeHasAFixedWidth(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"2026-12-02T03:55:42.70956209Z", "2026-12-02T03:55:42.709Z"},
		{"2026-12-02T03:55:42.709562090Z", "2026-12-02T03:55:42.709Z"},
		{"2026-12-02T03:55:42Z", "2026-12-02T03:55:42.000Z"},
		{"2026-12-02T04:55:42.5+01:00", "2026-12-02T03:55:42.500Z"},
		{"not a time", "not a time"},
	} {
		if got := tableTime(tt.in); got != tt.want {
			t.Errorf("tableTime(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Ctrl-C while recv waits ends it quietly with the shell's status for an
// interrupt, not with "context canceled". The server here only holds the
// long poll open until the client goes.
func TestAnInterruptedCommandExitsQuietly(t *testing.T) {
	arrived := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(arrived)
		<-r.Context().Done()
	}))
	defer ts.Close()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- runMain(ctx, []string{"recv", "q", "--wait", "20s", "--addr", ts.URL}, strings.NewReader(""), &out, &errOut)
	}()
	<-arrived
	cancel()
	if code := <-done; code != exitInterrupted || errOut.Len() != 0 || out.Len() != 0 {
		t.Fatalf("interrupted recv: exit %d, stdout %q, stderr %q; want %d and nothing printed", code, out.String(), errOut.String(), exitInterrupted)
	}
}

// send --batch fits the server it talks to: lines per request under its
// --max-batch, lines up to --max-line, and a negative delay is the
// server's to refuse, not dropped.
func TestSendBatchFitsTheServer(t *testing.T) {
	srv := startServe(t, t.TempDir(), "--max-batch", "100")
	cli := func(stdin string, args ...string) (string, string, int) {
		var out, errOut bytes.Buffer
		code := runMain(t.Context(), append(args, "--addr", srv.base), strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), code
	}
	if _, errOut, code := cli("", "create", "q"); code != 0 {
		t.Fatalf("create: %d %s", code, errOut)
	}
	lines := strings.Repeat("line\n", 250)
	if out, errOut, code := cli(lines, "send", "q", "--batch", "--per-request", "100"); code != 0 || strings.Count(out, "\n") != 250 {
		t.Fatalf("--per-request 100: exit %d, %d ids, stderr %q; want 250 ids", code, strings.Count(out, "\n"), errOut)
	}
	if _, errOut, code := cli(lines, "send", "q", "--batch"); code != 1 || !strings.Contains(errOut, "(--max-batch) [413 too_large]; send fewer lines a request with --per-request") {
		t.Fatalf("500 a request against --max-batch 100: exit %d, stderr %q; want the server's 413 naming --max-batch", code, errOut)
	}
	if _, errOut, code := cli("short\n"+strings.Repeat("x", 20)+"\n", "send", "q", "--batch", "--max-line", "10"); code != 1 || !strings.Contains(errOut, "longer than --max-line 10") {
		t.Fatalf("a line over --max-line: exit %d, stderr %q", code, errOut)
	}
	if _, errOut, code := cli("a\n", "send", "q", "--batch", "--delay", "-1s"); code != 1 || !strings.Contains(errOut, "delay") {
		t.Fatalf("a negative delay: exit %d, stderr %q; want the server's refusal", code, errOut)
	}
}
