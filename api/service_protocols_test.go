package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spoolq/spool/api/apitest"
	"github.com/spoolq/spool/queue"
)

var queueReceiveOne = queue.ReceiveOptions{Max: 1}

func TestServiceSpeaksHTTP2OverTLSAndReloadsItsCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := apitest.WriteCert(t, certFile, keyFile, 1)
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{TLSCert: certFile, TLSKey: keyFile})
	if !strings.HasPrefix(s.URL(), "https://") {
		t.Fatalf("URL %s", s.URL())
	}
	get := func(pool *x509.CertPool) (*http.Response, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get(s.URL() + HealthPath)
		if err == nil {
			resp.Body.Close()
		}
		return resp, err
	}
	resp, err := get(pool)
	if err != nil {
		t.Fatal(err)
	}
	if resp.ProtoMajor != 2 || resp.TLS == nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 1 {
		t.Fatalf("proto %s, TLS %v", resp.Proto, resp.TLS != nil)
	}
	// A new certificate in the same files: after the reload, a new
	// connection gets it, and the old one is no longer trusted.
	newPool := apitest.WriteCert(t, certFile, keyFile, 2)
	if err := s.ReloadCertificate(); err != nil {
		t.Fatal(err)
	}
	if resp, err = get(newPool); err != nil || resp.TLS.PeerCertificates[0].SerialNumber.Int64() != 2 {
		t.Fatalf("after the reload: %v", err)
	}
	if _, err := get(pool); err == nil {
		t.Fatal("after the reload the old certificate is still served")
	}
	// Files that do not load: the certificate in use stays.
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	if err := s.ReloadCertificate(); err == nil {
		t.Fatal("a reload of a damaged certificate reported no error")
	}
	if _, err := get(newPool); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	}
}

func TestServiceSpeaksHTTP1AndH2CInTheClear(t *testing.T) {
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{})
	for _, tc := range []struct {
		name  string
		tr    *http.Transport
		major int
	}{
		{"HTTP/1.1", &http.Transport{}, 1},
		{"h2c with prior knowledge", func() *http.Transport {
			tr := &http.Transport{Protocols: new(http.Protocols)}
			tr.Protocols.SetUnencryptedHTTP2(true)
			return tr
		}(), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.tr.CloseIdleConnections()
			resp, err := (&http.Client{Transport: tc.tr}).Get(s.URL() + HealthPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != tc.major || resp.StatusCode != 200 {
				t.Fatalf("%s %d, want HTTP/%d 200", resp.Proto, resp.StatusCode, tc.major)
			}
		})
	}
}

func TestServiceTLSNeedsBothFiles(t *testing.T) {
	if _, err := Open(t.TempDir(), ServiceConfig{Addr: "127.0.0.1:0", TLSCert: "cert.pem"}); err == nil || !strings.Contains(err.Error(), "--tls-key") {
		t.Fatalf("a certificate without a key: %v", err)
	}
}

func TestServiceMountsMiniqueue(t *testing.T) {
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{Miniqueue: true})
	resp, err := http.Post(s.URL()+"/publish/jobs", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("miniqueue publish: %d", resp.StatusCode)
	}
	q, err := s.Broker().Queue("jobs")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := q.Receive(context.Background(), queueReceiveOne)
	if err != nil || len(msgs) != 1 || string(msgs[0].Body) != "hello" {
		t.Fatalf("the queue holds %v, %v", msgs, err)
	}
	// The API is still there, beside it.
	if resp, err = http.Get(s.URL() + QueuesPath); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /v1/queues beside miniqueue: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestServiceMiniqueueWantsTheToken(t *testing.T) {
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{Miniqueue: true, API: Config{Token: "sekrit"}})
	for _, tc := range []struct {
		auth string
		want int
	}{{"", http.StatusUnauthorized}, {"Bearer wrong", http.StatusUnauthorized}, {"Bearer sekrit", http.StatusCreated}} {
		req, _ := http.NewRequest(http.MethodPost, s.URL()+"/publish/jobs", strings.NewReader("x"))
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Fatalf("publish with %q: %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
	if _, err := s.Broker().Queue("jobs"); err != nil {
		t.Fatalf("the authorized publish made no queue: %v", err)
	}
}

// miniqueue's routes check API keys: produce to publish, consume to
// subscribe, admin to purge, and admin to create the topic's queue a
// publish or subscribe would make.
func TestServiceMiniqueueKeys(t *testing.T) {
	var text strings.Builder
	secrets := map[string]string{}
	for name, scopes := range map[string]string{"producer": "produce:jobs,produce:new", "admin": "admin:new"} {
		line, secret, err := NewKeyLine(name, scopes)
		if err != nil {
			t.Fatal(err)
		}
		text.WriteString(line + "\n")
		secrets[name] = secret
	}
	keys, err := ParseKeys(strings.NewReader(text.String()))
	if err != nil {
		t.Fatal(err)
	}
	s := serviceOpen(t, &srvLogBuffer{}, ServiceConfig{Miniqueue: true, API: Config{Keys: keys}})
	if _, _, err := s.Broker().Create("jobs", queue.ConfigUpdate{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		who, method, path string
		want              int
	}{
		{"producer", "POST", "/publish/jobs", http.StatusCreated},
		{"producer", "POST", "/publish/other", http.StatusForbidden}, // no grant on other
		{"producer", "POST", "/publish/new", http.StatusForbidden},   // would create new: admin's
		{"producer", "DELETE", "/jobs", http.StatusForbidden},
		{"admin", "POST", "/publish/new", http.StatusCreated}, // admin may create
	} {
		req, _ := http.NewRequest(tc.method, s.URL()+tc.path, strings.NewReader("x"))
		req.Header.Set("Authorization", "Bearer "+secrets[tc.who])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s as %s: %d, want %d", tc.method, tc.path, tc.who, resp.StatusCode, tc.want)
		}
	}
	if _, err := s.Broker().Queue("other"); err == nil {
		t.Fatal("a refused publish created its queue")
	}
}
