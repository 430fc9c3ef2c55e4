package tls

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"time"

	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/config"
)

// ErrNotObtained means no certificate for the domain is in the storage yet.
var ErrNotObtained = errors.New("no certificate obtained yet")

// StoredCertificate reads the certificate the ACME issuer of cfg keeps in
// the [tls] storage for domain, without a running gateway: `gateway check`
// reports its issuer and expiry. It returns ErrNotObtained when there is none.
func StoredCertificate(ctx context.Context, cfg *config.Config, o Options, domain string) (*x509.Certificate, error) {
	storage := o.Storage
	if storage == nil {
		var err error
		if storage, err = newStorage(cfg, o); err != nil {
			return nil, fmt.Errorf("tls.storage: %w", err)
		}
	}
	ca := cfg.TLS.ACMECA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	issuerKey := (&certmagic.ACMEIssuer{CA: ca}).IssuerKey()
	b, err := storage.Load(ctx, certmagic.StorageKeys.SiteCert(issuerKey, normalizeName(domain)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotObtained
	}
	if err != nil {
		return nil, fmt.Errorf("load certificate for %s: %w", domain, err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("certificate for %s in storage is not PEM", domain)
	}
	return x509.ParseCertificate(block.Bytes)
}

// FilesCertificate reads a site's tls = "files" certificate the way the
// gateway would serve it, refusing what it would refuse.
func FilesCertificate(s *config.Site, o Options) (*x509.Certificate, error) {
	now := time.Now()
	if o.Now != nil {
		now = o.Now()
	}
	pair, err := loadKeyPair(s.CertFile, s.KeyFile, now)
	if err != nil {
		return nil, err
	}
	return pair.Leaf, nil
}
