package sqs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// TestSigV4RealSigner signs requests with aws-sdk-go-v2's own SigV4 signer,
// the one its SQS client uses, and sends them over a real connection to a
// server that runs Verify. This pins what the test suite leaves open: how
// the SDK encodes paths and queries that need escaping, and which headers it
// signs on a real request.
func TestSigV4RealSigner(t *testing.T) {
	keys := StaticKeys{"AKIDSPOOLTEST": "spool-test-secret/with+odd=chars"}
	creds := aws.Credentials{AccessKeyID: "AKIDSPOOLTEST", SecretAccessKey: keys["AKIDSPOOLTEST"]}

	var mu sync.Mutex
	var lastErr error
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := Verify(r, body, keys, time.Now())
		mu.Lock()
		lastErr = err
		mu.Unlock()
		if err != nil {
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()

	send := func(t *testing.T, r *http.Request) error {
		t.Helper()
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		mu.Lock()
		defer mu.Unlock()
		if (resp.StatusCode == http.StatusOK) != (lastErr == nil) {
			t.Fatalf("status %d with error %v", resp.StatusCode, lastErr)
		}
		return lastErr
	}
	hash := func(b []byte) string {
		s := sha256.Sum256(b)
		return hex.EncodeToString(s[:])
	}
	newReq := func(t *testing.T, method, target string, body []byte) *http.Request {
		t.Helper()
		r, err := http.NewRequest(method, target, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	type tc struct {
		name, method, path, query string
		body                      []byte
		header                    http.Header
		token                     string
	}
	cases := []tc{
		{name: "json 1.0 SendMessage", method: "POST", path: "/",
			body: []byte(`{"QueueUrl":"http://localhost/000000000000/q","MessageBody":"hi"}`),
			header: http.Header{
				"Content-Type": {"application/x-amz-json-1.0"},
				"X-Amz-Target": {"AmazonSQS.SendMessage"},
			}},
		{name: "query protocol form", method: "POST", path: "/000000000000/q",
			body:   []byte("Action=SendMessage&MessageBody=a+b%26c&Version=2012-11-05"),
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded; charset=utf-8"}}},
		{name: "get with escaped query", method: "GET", path: "/000000000000/q",
			query: url.Values{"Action": {"ReceiveMessage"}, "b": {"x y+z/ü~"}, "a": {"2", "1"}, "empty": {""}}.Encode()},
		{name: "path needing escapes", method: "GET", path: "/000000000000/a b%ሴ"},
		{name: "spaces in a header", method: "POST", path: "/", body: []byte("{}"),
			header: http.Header{"X-Amz-Target": {"AmazonSQS.ListQueues"}, "X-Amz-Meta-Note": {"  a   b  "}}},
		{name: "session token", method: "POST", path: "/", body: []byte("{}"), token: "FQoGZXIvYXdzEXAMPLE/token+="},
	}
	ctx := context.Background()
	signer := v4.NewSigner()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			u := srv.URL + (&url.URL{Path: c.path}).EscapedPath()
			if c.query != "" {
				u += "?" + c.query
			}
			cr := creds
			cr.SessionToken = c.token

			r := newReq(t, c.method, u, c.body)
			for k, v := range c.header {
				r.Header[k] = v
			}
			if err := signer.SignHTTP(ctx, cr, r, hash(c.body), "sqs", "us-east-1", time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := send(t, r); err != nil {
				t.Fatalf("header form: %v", err)
			}

			// The same request with its body altered in flight must fail.
			if len(c.body) > 0 {
				r2 := newReq(t, c.method, u, append([]byte("x"), c.body...))
				for k, v := range r.Header {
					r2.Header[k] = v
				}
				if err := send(t, r2); !errors.Is(err, ErrSignatureMismatch) {
					t.Fatalf("altered body: %v, want %v", err, ErrSignatureMismatch)
				}
			}

			// Presigned form of the same request; X-Amz-Expires is the
			// caller's to add, so every other case adds it.
			pu := u
			if i%2 == 0 {
				sep := "?"
				if c.query != "" {
					sep = "&"
				}
				pu += sep + "X-Amz-Expires=300"
			}
			p := newReq(t, c.method, pu, c.body)
			for k, v := range c.header {
				p.Header[k] = v
			}
			signedURL, signedHeader, err := signer.PresignHTTP(ctx, cr, p, hash(c.body), "sqs", "us-east-1", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			p2 := newReq(t, c.method, signedURL, c.body)
			for k, v := range signedHeader {
				if !strings.EqualFold(k, "Host") {
					p2.Header[k] = v
				}
			}
			if err := send(t, p2); err != nil {
				t.Fatalf("presigned form: %v (url %s)", err, signedURL)
			}
		})
	}

	// A request signed with a secret the server does not have.
	r := newReq(t, "POST", srv.URL+"/", []byte("{}"))
	// A fresh signer: the SDK caches derived keys by access key id and
	// scope, and would otherwise sign with the right secret's key.
	wrong := aws.Credentials{AccessKeyID: "AKIDSPOOLTEST", SecretAccessKey: "guess"}
	if err := v4.NewSigner().SignHTTP(ctx, wrong, r, hash([]byte("{}")), "sqs", "us-east-1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := send(t, r); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("wrong secret: %v, want %v", err, ErrSignatureMismatch)
	}
	// And one signed twenty minutes ago.
	r = newReq(t, "POST", srv.URL+"/", []byte("{}"))
	if err := signer.SignHTTP(ctx, creds, r, hash([]byte("{}")), "sqs", "us-east-1", time.Now().Add(-20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := send(t, r); !errors.Is(err, ErrRequestExpired) {
		t.Fatalf("old request: %v, want %v", err, ErrRequestExpired)
	}
}
