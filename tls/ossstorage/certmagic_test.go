package ossstorage

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// testIssuer signs certificates with a throwaway CA, slowly, and counts
// its orders.
type testIssuer struct {
	orders atomic.Int32
	key    *ecdsa.PrivateKey
	ca     *x509.Certificate
}

func newTestIssuer(t *testing.T) *testIssuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ossstorage test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour * 365),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{key: key, ca: ca}
}

func (i *testIssuer) IssuerKey() string { return "ossstorage-test-ca" }

func (i *testIssuer) Issue(ctx context.Context, csr *x509.CertificateRequest) (*certmagic.IssuedCertificate, error) {
	i.orders.Add(1)
	select { // an order takes a while, so the other gateway waits on the lock
	case <-time.After(300 * time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: csr.DNSNames[0]},
		DNSNames:     csr.DNSNames,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, i.ca, csr.PublicKey, i.key)
	if err != nil {
		return nil, err
	}
	return &certmagic.IssuedCertificate{Certificate: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Two gateways, each with its own certmagic cache, Config and Storage on
// the same bucket, obtain the same certificate at once: certmagic's own
// locking through this Storage lets exactly one of them order it, and the
// other loads it from storage.
func TestCertmagicFleetOrdersOnce(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	iss := newTestIssuer(t)
	var cfgs []*certmagic.Config
	for range 2 {
		var cfg *certmagic.Config
		cache := certmagic.NewCache(certmagic.CacheOptions{
			GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
			Logger:           zap.NewNop(),
		})
		t.Cleanup(cache.Stop)
		cfg = certmagic.New(cache, certmagic.Config{
			Storage: v.storage(t, "tls", fastOpts()),
			Issuers: []certmagic.Issuer{iss},
			Logger:  zap.NewNop(),
		})
		cfgs = append(cfgs, cfg)
	}

	var wg sync.WaitGroup
	errs := make([]error, len(cfgs))
	for i, cfg := range cfgs {
		wg.Go(func() { errs[i] = cfg.ObtainCertSync(ctx, "example.com") })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if n := iss.orders.Load(); n != 1 {
		t.Fatalf("%d orders, want 1", n)
	}

	s := v.storage(t, "tls", Options{})
	for _, k := range []string{
		certmagic.StorageKeys.SiteCert(iss.IssuerKey(), "example.com"),
		certmagic.StorageKeys.SitePrivateKey(iss.IssuerKey(), "example.com"),
		certmagic.StorageKeys.SiteMeta(iss.IssuerKey(), "example.com"),
	} {
		if !s.Exists(ctx, k) {
			t.Errorf("%q not stored", k)
		}
	}
	for i, cfg := range cfgs {
		cert, err := cfg.CacheManagedCertificate(ctx, "example.com")
		if err != nil {
			t.Fatalf("gateway %d: %v", i, err)
		}
		if !slices.Equal(cert.Names, []string{"example.com"}) {
			t.Errorf("gateway %d loaded a certificate for %v", i, cert.Names)
		}
	}
	// certmagic's storage check keys are gone, and so are the locks
	keys, err := s.List(ctx, "", false)
	if err != nil || !slices.Equal(keys, []string{"certificates"}) {
		t.Errorf("storage root = %q, %v", keys, err)
	}
	if _, err := s.List(ctx, "locks", true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("locks left: %v", err)
	}
}
