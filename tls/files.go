package tls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"
)

// loadKeyPair reads a tls = "files" certificate and refuses one that cannot
// be served: unreadable, a key that does not match, not PEM, or outside its
// validity period. Refusing at start (or keeping the old pair on reload) is
// kinder than handshakes that fail one client at a time.
func loadKeyPair(certFile, keyFile string, now time.Time) (*tls.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("cert_file %q / key_file %q: %w", certFile, keyFile, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("cert_file %q: %w", certFile, err)
		}
		pair.Leaf = leaf
	}
	if now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("cert_file %q: certificate expired at %s", certFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("cert_file %q: certificate is not valid before %s", certFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	return &pair, nil
}
