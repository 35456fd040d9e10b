//go:build unix

package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spoolq/spool/api/apitest"
)

// TestServeTLSReloadsItsCertificateOnSIGHUP runs `spool serve --tls-cert
// --tls-key`, checks it speaks HTTP/2 over TLS, replaces the files, sends
// SIGHUP and waits for the new certificate to be served.
func TestServeTLSReloadsItsCertificateOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary; skipped in -short mode")
	}
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := apitest.WriteCert(t, certFile, keyFile, 1)
	s := startBinary(t, buildSpool(t), filepath.Join(dir, "data"), "--tls-cert", certFile, "--tls-key", keyFile)
	serial := func(pool *x509.CertPool) (int64, string, error) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("https://" + s.addr + "/healthz")
		if err != nil {
			return 0, "", err
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp.Proto, nil
	}
	if n, proto, err := serial(first); err != nil || n != 1 || proto != "HTTP/2.0" {
		t.Fatalf("before the reload: serial %d over %s, %v", n, proto, err)
	}
	second := apitest.WriteCert(t, certFile, keyFile, 2)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := serial(second)
		if err == nil && n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new certificate is not served 10s after SIGHUP: %d, %v\n%s", n, err, s.logs.String())
		}
		time.Sleep(10 * time.Millisecond) // polling the server with a deadline
	}
	if !strings.Contains(s.logs.String(), "TLS certificate reloaded") {
		t.Fatalf("no reload line in the log:\n%s", s.logs.String())
	}
	s.stop(t)
}
