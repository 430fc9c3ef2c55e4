// Package testcert makes throwaway certificates for tests: one helper for
// every package that needs a PEM pair (tls = "files", PutCname with a
// certificate, `gateway check`'s certificate rows).
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Options shape a certificate.
type Options struct {
	// From and Until bound its validity; zero values mean an hour ago and
	// 90 days from now.
	From, Until time.Time
	// Issuer, when set, has the certificate signed by a throwaway CA with
	// this common name; otherwise it is self-signed.
	Issuer string
}

// Pair is a certificate and its private key.
type Pair struct {
	CertPEM, KeyPEM []byte
	Leaf            *x509.Certificate
}

// New returns a server certificate for names (DNS names or IP addresses;
// the first is the common name) and its ECDSA P-256 key.
func New(t testing.TB, o Options, names ...string) Pair {
	t.Helper()
	if o.From.IsZero() {
		o.From = time.Now().Add(-time.Hour).Truncate(time.Second)
	}
	if o.Until.IsZero() {
		o.Until = time.Now().Add(90 * 24 * time.Hour).Truncate(time.Second)
	}
	key := newKey(t)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: names[0]},
		NotBefore:    o.From,
		NotAfter:     o.Until,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	parent, signer := tmpl, key
	if o.Issuer != "" {
		signer = newKey(t)
		parent = &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: o.Issuer},
			NotBefore:             o.From.Add(-time.Hour),
			NotAfter:              o.Until.Add(time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
	} else {
		// Self-signed: the certificate is its own trust anchor in tests.
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return Pair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}),
		Leaf:    leaf,
	}
}

// Write stores the pair in dir ("" = a new temporary directory) as
// <common name>.crt and <common name>.key and returns the two paths.
func (p Pair) Write(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	certFile = filepath.Join(dir, p.Leaf.Subject.CommonName+".crt")
	keyFile = filepath.Join(dir, p.Leaf.Subject.CommonName+".key")
	if err := os.WriteFile(certFile, p.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}
