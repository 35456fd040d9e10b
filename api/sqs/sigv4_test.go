package sqs

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The test suite's fixed credentials and clock (vectorDir's README.md).
var (
	suiteKeys = StaticKeys{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"}
	suiteTime = time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC)
)

// vector is one form (header or presigned) of one test suite case.
type vector struct {
	name      string
	request   string // as in the file: "\n" line ends, blank line, body
	creq, sts string
	signature string
}

// vectorDir holds AWS's SigV4 test suite, rewritten one case a file. It
// is data taken from a public repository, so it lives in the steering
// repository's shared/ beside this one, not in spool's tree (its README
// says where it comes from). sigv4_sdk_test.go checks Verify against the
// real SDK signer either way.
const vectorDir = "../../../shared/testdata/sqs-sigv4"

// loadVectors reads every case file of vectorDir, or skips the test
// without it.
func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.txt"))
	if err != nil || len(files) == 0 {
		t.Skipf("AWS's SigV4 test suite is not in %s (the steering repository's shared/testdata/sqs-sigv4): the suite's vectors are not checked; the SDK signer test still runs", vectorDir)
	}
	var out []vector
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sections := map[string]string{}
		var cur string
		var b strings.Builder
		flush := func() {
			if cur != "" {
				sections[cur] = strings.TrimSuffix(b.String(), "\n")
			}
			b.Reset()
		}
		for _, line := range strings.SplitAfter(string(data), "\n") {
			if strings.HasPrefix(line, "-- ") && strings.HasSuffix(line, " --\n") {
				flush()
				cur = strings.TrimSuffix(strings.TrimPrefix(line, "-- "), " --\n")
				continue
			}
			b.WriteString(line)
		}
		flush()
		base := strings.TrimSuffix(filepath.Base(f), ".txt")
		for _, form := range []string{"header", "presigned"} {
			req, ok := sections[form+" request"]
			if !ok {
				continue
			}
			v := vector{
				name:      base + "/" + form,
				request:   req,
				creq:      sections[form+" canonical request"],
				sts:       sections[form+" string to sign"],
				signature: sections[form+" signature"],
			}
			if v.creq == "" || v.sts == "" || v.signature == "" {
				t.Fatalf("%s: incomplete vector", v.name)
			}
			out = append(out, v)
		}
	}
	return out
}

// parseWire turns a vector's request text into what net/http's server would
// hand a handler: CRLF line ends, head, blank line, body.
func parseWire(t *testing.T, text string) (*http.Request, []byte) {
	t.Helper()
	head, body, _ := strings.Cut(text, "\n\n")
	wire := strings.ReplaceAll(head, "\n", "\r\n") + "\r\n\r\n" + body
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(wire)))
	if err != nil {
		t.Fatalf("parse request: %v\n%s", err, wire)
	}
	return r, []byte(body)
}

// TestSigV4Vectors checks every stage against the test suite: canonical
// request, string to sign, signature, and then Verify as a whole.
func TestSigV4Vectors(t *testing.T) {
	vectors := loadVectors(t)
	if len(vectors) < 30 {
		t.Fatalf("only %d vectors loaded", len(vectors))
	}
	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			r, body := parseWire(t, v.request)
			info, err := parseSig(r)
			if err != nil {
				t.Fatalf("parseSig: %v", err)
			}
			payload, err := payloadHash(r, body)
			if err != nil {
				t.Fatalf("payloadHash: %v", err)
			}
			creq := canonicalRequest(r, info, payload)
			if creq != v.creq {
				t.Fatalf("canonical request:\n%s\nwant:\n%s", creq, v.creq)
			}
			sts := stringToSign(info, creq)
			if sts != v.sts {
				t.Fatalf("string to sign:\n%s\nwant:\n%s", sts, v.sts)
			}
			if sig := signature(suiteKeys["AKIDEXAMPLE"], info, sts); sig != v.signature {
				t.Fatalf("signature %s, want %s", sig, v.signature)
			}
			id, err := Verify(r, body, suiteKeys, suiteTime)
			if err != nil || id != "AKIDEXAMPLE" {
				t.Fatalf("Verify = %q, %v", id, err)
			}
		})
	}
}

// vanilla is the suite's get-vanilla request, the base the negative tests
// alter.
const vanilla = "GET / HTTP/1.1\n" +
	"Host:example.amazonaws.com\n" +
	"X-Amz-Date:20150830T123600Z\n" +
	"Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31\n\n"

// form is the suite's post-x-www-form-urlencoded request, which signs its
// body and content headers.
const form = "POST / HTTP/1.1\n" +
	"Content-Type:application/x-www-form-urlencoded\n" +
	"Host:example.amazonaws.com\n" +
	"Content-Length:13\n" +
	"X-Amz-Date:20150830T123600Z\n" +
	"x-amz-content-sha256:9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e\n" +
	"Authorization:AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=content-length;content-type;host;x-amz-content-sha256;x-amz-date, Signature=d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b\n\n" +
	"Param1=value1"

func TestSigV4Rejects(t *testing.T) {
	cases := []struct {
		name    string
		request string
		edit    func(r *http.Request, body []byte) []byte
		keys    Keys
		now     time.Time
		want    error
	}{
		{name: "untouched header form", request: vanilla},
		{name: "untouched body form", request: form},
		{name: "no auth", request: vanilla, want: ErrMissingAuth,
			edit: func(r *http.Request, b []byte) []byte { r.Header.Del("Authorization"); return b }},
		{name: "unknown key", request: vanilla, keys: StaticKeys{"OTHER": "x"}, want: ErrUnknownKey},
		{name: "wrong secret", request: vanilla, keys: StaticKeys{"AKIDEXAMPLE": "not the secret"}, want: ErrSignatureMismatch},
		{name: "tampered signed header", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.Host = "evil.example.com"; return b }},
		{name: "tampered body", request: form, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { return []byte("Param1=value2") }},
		{name: "tampered body with matching content hash", request: form, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte {
				// The attacker fixes up the payload hash too; it is signed, so
				// the signature still fails.
				nb := []byte("Param1=value2")
				sum := sha256.Sum256(nb)
				r.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sum[:]))
				return nb
			}},
		{name: "tampered content type", request: form, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.Header.Set("Content-Type", "text/plain"); return b }},
		{name: "tampered date within skew", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.Header.Set("X-Amz-Date", "20150830T123700Z"); return b }},
		{name: "tampered query", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.URL.RawQuery = "Action=DeleteQueue"; return b }},
		{name: "tampered method", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.Method = "POST"; return b }},
		{name: "tampered signature", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "Signature=5fa0", "Signature=5fa1", 1))
				return b
			}},
		{name: "date too old", request: vanilla, now: suiteTime.Add(MaxClockSkew + time.Second), want: ErrRequestExpired},
		{name: "date too new", request: vanilla, now: suiteTime.Add(-MaxClockSkew - time.Second), want: ErrRequestExpired},
		{name: "date at the skew limit", request: vanilla, now: suiteTime.Add(MaxClockSkew)},
		{name: "scope date differs", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte { r.Header.Set("X-Amz-Date", "20150831T000000Z"); return b },
			now:  time.Date(2015, 8, 31, 0, 0, 0, 0, time.UTC)},
		{name: "unsigned X-Amz-Target", request: vanilla, want: ErrSignatureMismatch,
			edit: func(r *http.Request, b []byte) []byte {
				r.Header.Set("X-Amz-Target", "AmazonSQS.DeleteQueue")
				return b
			}},
		{name: "no date", request: vanilla, want: ErrMalformedAuth,
			edit: func(r *http.Request, b []byte) []byte { r.Header.Del("X-Amz-Date"); return b }},
		{name: "sigv2", request: vanilla, want: ErrMalformedAuth,
			edit: func(r *http.Request, b []byte) []byte {
				r.Header.Set("Authorization", "AWS AKIDEXAMPLE:abc=")
				return b
			}},
		{name: "host not signed", request: vanilla, want: ErrMalformedAuth,
			edit: func(r *http.Request, b []byte) []byte {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "SignedHeaders=host;x-amz-date", "SignedHeaders=x-amz-date", 1))
				return b
			}},
		{name: "bad credential", request: vanilla, want: ErrMalformedAuth,
			edit: func(r *http.Request, b []byte) []byte {
				r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), "/aws4_request", "/aws5_request", 1))
				return b
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, body := parseWire(t, c.request)
			if c.edit != nil {
				body = c.edit(r, body)
			}
			keys, now := c.keys, c.now
			if keys == nil {
				keys = suiteKeys
			}
			if now.IsZero() {
				now = suiteTime
			}
			_, err := Verify(r, body, keys, now)
			if c.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("Verify = %v, want %v", err, c.want)
			}
			if err.Error() == c.want.Error() {
				t.Errorf("error %q carries no detail", err)
			}
		})
	}
}

// TestSigV4PresignedExpiry uses the suite's presigned get-vanilla (3600 s).
func TestSigV4PresignedExpiry(t *testing.T) {
	const req = "GET /?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2Fservice%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-SignedHeaders=host&X-Amz-Expires=3600&X-Amz-Signature=e93c787ed7f371d5c6b165c1b38ede9550f4dce4144713e844b25b7192d3865d HTTP/1.1\n" +
		"Host:example.amazonaws.com\n\n"
	for _, c := range []struct {
		after time.Duration
		want  error
	}{
		{0, nil},
		{time.Hour, nil},
		{time.Hour + time.Second, ErrRequestExpired},
		{-MaxClockSkew - time.Second, ErrRequestExpired},
	} {
		r, body := parseWire(t, req)
		if _, err := Verify(r, body, suiteKeys, suiteTime.Add(c.after)); !errors.Is(err, c.want) {
			t.Errorf("%s after signing: %v, want %v", c.after, err, c.want)
		}
	}
	r, body := parseWire(t, strings.Replace(req, "X-Amz-Expires=3600", "X-Amz-Expires=3601", 1))
	if _, err := Verify(r, body, suiteKeys, suiteTime); !errors.Is(err, ErrSignatureMismatch) {
		t.Errorf("tampered X-Amz-Expires: %v, want %v", err, ErrSignatureMismatch)
	}
}

func TestURIEncode(t *testing.T) {
	for in, want := range map[string]string{
		"/a b/c":     "/a%20b/c",
		"a+b/c":      "a%2Bb%2Fc",
		"-._~azAZ09": "-._~azAZ09",
		"\u1234":     "%E1%88%B4",
		"%":          "%25",
	} {
		slash := !strings.HasPrefix(in, "/")
		if got := uriEncode(in, slash); got != want {
			t.Errorf("uriEncode(%q, %v) = %q, want %q", in, slash, got, want)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	raw := strings.ReplaceAll(form[:strings.Index(form, "\n\n")], "\n", "\r\n") + "\r\n\r\nParam1=value1"
	base, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		b.Fatal(err)
	}
	body := []byte("Param1=value1")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(base, body, suiteKeys, suiteTime); err != nil {
			b.Fatal(err)
		}
	}
}
