package api

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// certLoader serves the certificate of --tls-cert/--tls-key, read again
// by Reload (spool serve calls it on SIGHUP) without a restart: handshakes
// after it get the new certificate, connections open keep theirs.
type certLoader struct {
	certFile, keyFile string
	cert              atomic.Pointer[tls.Certificate]
}

func newCertLoader(certFile, keyFile string) (*certLoader, error) {
	l := &certLoader{certFile: certFile, keyFile: keyFile}
	if err := l.Reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// Reload reads the certificate and key again; if they do not load, the
// one in use stays.
func (l *certLoader) Reload() error {
	cert, err := tls.LoadX509KeyPair(l.certFile, l.keyFile)
	if err != nil {
		return fmt.Errorf("TLS certificate %s, key %s: %w", l.certFile, l.keyFile, err)
	}
	l.cert.Store(&cert)
	return nil
}

func (l *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) { return l.cert.Load(), nil }

// tlsConfig is the listener's TLS: TLS 1.2 at least, HTTP/2 by ALPN.
func (l *certLoader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: l.get, NextProtos: []string{"h2", "http/1.1"}}
}
