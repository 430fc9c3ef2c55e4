// Package tls terminates TLS for the gateway's sites: certificates obtained
// and renewed through ACME by certmagic for sites with tls = "acme", PEM
// pairs for tls = "files", and nothing for any other server name, so a client
// cannot make the gateway order certificates (and spend CA rate limits) for
// names it does not serve.
package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/config"
)

// Options are what the caller supplies beyond the config.
type Options struct {
	Logger *slog.Logger
	// Metrics are the certificate series to keep current; nil records none.
	Metrics *Metrics
	// Credentials reach an oss:// certificate storage.
	Credentials credentials.CredentialsProvider
	// Storage overrides [tls] storage (tests).
	Storage certmagic.Storage
	// RootCAs overrides the system roots for reaching OSS (tests).
	RootCAs *x509.CertPool
	// RenewCheckInterval is how often certificates are checked for renewal;
	// 0 = certmagic's default (10 minutes).
	RenewCheckInterval time.Duration
	// RenewalWindowRatio is the share of a certificate's lifetime, at its
	// end, in which it is renewed; 0 = certmagic's default (1/3).
	RenewalWindowRatio float64
	// Now is the clock for files certificates' validity (tests).
	Now func() time.Time
}

// Manager answers TLS handshakes for the sites of the current config. It is
// safe for concurrent use; Reload swaps its state atomically.
type Manager struct {
	o   Options
	log *slog.Logger

	mu    sync.Mutex // serialises Reload and Close
	state atomic.Pointer[state]

	ctx    context.Context // bounds background certificate work
	cancel context.CancelFunc
}

// state is one config's view of TLS. The certmagic part is rebuilt only when
// the [tls] table or the listen addresses change, so a reload that only adds
// a site does not drop the certificate cache.
type state struct {
	cfg     *config.Config
	files   map[string]*tls.Certificate // domain (or IP) -> pair
	acme    map[string]bool             // names certmagic manages
	withTLS map[string]bool             // every domain that has (or gets) a certificate
	acmeKey string                      // what the certmagic part was built from
	magic   *certmagic.Config           // nil when no site uses ACME
	cache   *certmagic.Cache
	issuer  *certmagic.ACMEIssuer
	ctx     context.Context // bounds the certmagic part's obtain jobs
	cancel  context.CancelFunc
	conf    *tls.Config // the handshake config for this state
}

// ErrNoCertificate is the handshake error for a server name that no site
// serves over TLS.
var ErrNoCertificate = errors.New("no certificate for this server name")

// New loads the TLS state for cfg. It fails on what cannot be served
// (unreadable or mismatched PEM files, an expired certificate, an unreadable
// acme_ca_root, an unusable storage) and never waits on the CA: ACME
// certificates are obtained in the background by Start.
func New(cfg *config.Config, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{o: o, log: o.Logger}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	st, err := m.build(cfg, nil)
	if err != nil {
		m.cancel()
		return nil, err
	}
	m.state.Store(st)
	return m, nil
}

// Start begins obtaining and renewing the ACME certificates in the
// background. A CA that is down is retried by certmagic with backoff while
// every other site keeps serving.
func (m *Manager) Start() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.manage(m.state.Load(), nil)
	m.refreshExpiry()
	go m.refreshExpiryLoop()
}

// Reload swaps in cfg's TLS state. On error the running state is kept.
// tls = "files" pairs are read again, so a SIGHUP picks up renewed files.
func (m *Manager) Reload(cfg *config.Config) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old := m.state.Load()
	st, err := m.build(cfg, old)
	if err != nil {
		return err
	}
	m.state.Store(st)
	m.manage(st, old)
	m.refreshExpiry()
	return nil
}

// Close stops renewals and the certificate cache.
func (m *Manager) Close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cancel()
	if st := m.state.Load(); st.cache != nil {
		st.cache.Stop()
	}
}

// TLSConfig is the server config for the HTTPS listener: HTTP/2 and
// HTTP/1.1, TLS-ALPN-01 challenges, and per-handshake certificate and
// min_version from the current state.
func (m *Manager) TLSConfig() *tls.Config {
	return &tls.Config{
		NextProtos: []string{"h2", "http/1.1", "acme-tls/1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return m.state.Load().conf, nil
		},
	}
}

// getCertificate serves the certificate for hello's server name from the
// current state, and refuses every name no TLS site has.
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	st := m.state.Load()
	name := normalizeName(hello.ServerName)
	if name == "" {
		// No SNI: a client that dialled the fixed IP. Serve the files
		// certificate of a site that lists that IP, if any.
		if hello.Conn != nil {
			if a, ok := hello.Conn.LocalAddr().(*net.TCPAddr); ok {
				if c := st.files[a.IP.String()]; c != nil {
					return c, nil
				}
			}
		}
		return nil, ErrNoCertificate
	}
	if c := st.files[name]; c != nil {
		return c, nil
	}
	if st.acme[name] && st.magic != nil {
		return st.magic.GetCertificate(hello)
	}
	return nil, ErrNoCertificate
}

// normalizeName folds a server name or Host the way site routing does.
func normalizeName(s string) string {
	return strings.TrimSuffix(strings.ToLower(s), ".")
}

// build computes the state for cfg, reusing prev's certmagic part when the
// settings it was built from are unchanged.
func (m *Manager) build(cfg *config.Config, prev *state) (*state, error) {
	st := &state{
		cfg:     cfg,
		files:   map[string]*tls.Certificate{},
		acme:    map[string]bool{},
		withTLS: map[string]bool{},
	}
	now := m.o.Now()
	for i := range cfg.Sites {
		s := &cfg.Sites[i]
		switch s.TLS {
		case "files":
			pair, err := loadKeyPair(s.CertFile, s.KeyFile, now)
			if err != nil {
				return nil, fmt.Errorf("site %q: %w", s.Name, err)
			}
			for _, d := range s.Domains {
				d = normalizeName(d)
				st.files[d] = pair
				st.withTLS[d] = true
				if pair.Leaf.VerifyHostname(d) != nil {
					m.log.Warn("certificate does not cover a domain of its site; clients will refuse it",
						"site", s.Name, "domain", d, "cert_file", s.CertFile)
				}
			}
		case "acme":
			for _, d := range s.Domains {
				// An IP address gets no ACME certificate, so it is served
				// (and not redirected) over plain HTTP.
				if d = normalizeName(d); net.ParseIP(d) == nil {
					st.acme[d] = true
					st.withTLS[d] = true
				}
			}
		}
	}
	minVersion := uint16(tls.VersionTLS12)
	if cfg.TLS.MinVersion == "1.3" {
		minVersion = tls.VersionTLS13
	}
	st.conf = &tls.Config{
		MinVersion:     minVersion,
		NextProtos:     []string{"h2", "http/1.1", "acme-tls/1"},
		GetCertificate: m.getCertificate,
	}
	if len(st.acme) == 0 {
		return st, nil
	}
	st.acmeKey = acmeKey(cfg)
	if prev != nil && prev.magic != nil && prev.acmeKey == st.acmeKey {
		st.magic, st.cache, st.issuer, st.ctx, st.cancel = prev.magic, prev.cache, prev.issuer, prev.ctx, prev.cancel
		return st, nil
	}
	if err := m.buildACME(st); err != nil {
		return nil, err
	}
	return st, nil
}

// acmeKey is everything the certmagic part is built from.
func acmeKey(cfg *config.Config) string {
	t := cfg.TLS
	return strings.Join([]string{t.ACMECA, t.ACMEEmail, t.ACMECARoot, t.Storage,
		strings.Join(t.ACMEChallenges, ","), cfg.Server.HTTPListen, cfg.Server.HTTPSListen}, "\x00")
}

// buildACME creates the certmagic cache, config and ACME issuer for st.
func (m *Manager) buildACME(st *state) error {
	cfg := st.cfg
	storage := m.o.Storage
	if storage == nil {
		var err error
		if storage, err = newStorage(cfg, m.o); err != nil {
			return fmt.Errorf("tls.storage: %w", err)
		}
	}
	var roots *x509.CertPool
	if cfg.TLS.ACMECARoot != "" {
		pem, err := os.ReadFile(cfg.TLS.ACMECARoot)
		if err != nil {
			return fmt.Errorf("tls.acme_ca_root: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("tls.acme_ca_root %q: no PEM certificate in the file", cfg.TLS.ACMECARoot)
		}
	}
	zl := newZapLogger(m.log)
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: m.o.RenewCheckInterval,
		Logger:             zl,
	})
	magic = certmagic.New(cache, certmagic.Config{
		Storage:            storage,
		RenewalWindowRatio: m.o.RenewalWindowRatio,
		Logger:             zl,
		OnEvent:            m.onEvent,
		ShouldEmitFunc:     func(ev string) bool { return ev != "tls_get_certificate" },
	})
	ca := cfg.TLS.ACMECA
	if ca == "" {
		ca = certmagic.LetsEncryptProductionCA
	}
	tmpl := certmagic.ACMEIssuer{
		CA:                      ca,
		Email:                   cfg.TLS.ACMEEmail,
		Agreed:                  true,
		TrustedRoots:            roots,
		DisableHTTPChallenge:    cfg.Server.HTTPListen == "" || !slices.Contains(cfg.TLS.ACMEChallenges, "http-01"),
		DisableTLSALPNChallenge: cfg.Server.HTTPSListen == "" || !slices.Contains(cfg.TLS.ACMEChallenges, "tls-alpn-01"),
		Logger:                  zl,
	}
	// The challenge solvers must find our own listeners in place (certmagic
	// then relies on HandleHTTPChallenge and GetCertificate, which read the
	// challenge from shared storage, so any instance of a fleet can answer).
	if host, port, ok := splitListen(cfg.Server.HTTPListen); ok {
		tmpl.ListenHost, tmpl.AltHTTPPort = host, port
	}
	if host, port, ok := splitListen(cfg.Server.HTTPSListen); ok {
		tmpl.ListenHost, tmpl.AltTLSALPNPort = host, port
	}
	if tmpl.DisableHTTPChallenge && tmpl.DisableTLSALPNChallenge {
		return errors.New(`tls: sites use tls = "acme" but no ACME challenge can be answered: ` +
			`http-01 needs server.http_listen and tls-alpn-01 needs server.https_listen, each also listed in tls.acme_challenges`)
	}
	st.issuer = certmagic.NewACMEIssuer(magic, tmpl)
	magic.Issuers = []certmagic.Issuer{st.issuer}
	st.magic, st.cache = magic, cache
	st.ctx, st.cancel = context.WithCancel(m.ctx)
	return nil
}

// splitListen returns the host and numeric port of a listen address.
func splitListen(addr string) (string, int, bool) {
	if addr == "" {
		return "", 0, false
	}
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, false
	}
	port, err := strconv.Atoi(p)
	if err != nil || port == 0 {
		return "", 0, false
	}
	return host, port, true
}

// manage starts certmagic on st's ACME names, and lets go of names that old
// managed and st does not. When st keeps old's certmagic part, only names
// new to st are submitted, so reloads never stack up obtain jobs.
func (m *Manager) manage(st, old *state) {
	reused := old != nil && old.cache != nil && old.cache == st.cache
	if old != nil && old.cache != nil && !reused {
		old.cancel()
		old.cache.Stop()
	} else if reused {
		var gone []certmagic.SubjectIssuer
		for d := range old.acme {
			if !st.acme[d] {
				gone = append(gone, certmagic.SubjectIssuer{Subject: d})
			}
		}
		if len(gone) > 0 {
			old.cache.RemoveManaged(gone)
		}
	}
	if st.magic == nil {
		return
	}
	names := make([]string, 0, len(st.acme))
	for d := range st.acme {
		if !reused || !old.acme[d] {
			names = append(names, d)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	if err := st.magic.ManageAsync(st.ctx, names); err != nil {
		m.log.Error("certificate management could not start; HTTPS for these domains fails until it does",
			"domains", names, "error", err)
	}
}

// onEvent keeps the expiry metric current as certmagic obtains, renews and
// loads certificates.
func (m *Manager) onEvent(_ context.Context, ev string, data map[string]any) error {
	switch ev {
	case "cert_obtained", "cached_managed_cert":
		go m.refreshExpiry()
	case "cert_failed":
		m.log.Warn("certificate could not be obtained or renewed; the current certificate (if any) is still served",
			"identifier", data["identifier"], "renewal", data["renewal"], "remaining", data["remaining"])
	}
	return nil
}

// refreshExpiryLoop keeps the expiry metric current for certificates that
// change without an event (files after a reload are handled by Reload).
func (m *Manager) refreshExpiryLoop() {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-m.ctx.Done():
			return
		case <-t.C:
			m.refreshExpiry()
		}
	}
}

// refreshExpiry sets the expiry gauge for every TLS domain that has a
// certificate, and drops domains that no longer do. Labels are configured
// domains only, never client input.
func (m *Manager) refreshExpiry() {
	if m.o.Metrics == nil {
		return
	}
	st := m.state.Load()
	expiry := m.Expiries()
	m.o.Metrics.CertExpiry.Reset()
	for d := range st.withTLS {
		if t, ok := expiry[d]; ok {
			m.o.Metrics.CertExpiry.WithLabelValues(d).Set(float64(t.Unix()))
		}
	}
}

// Expiries reports the expiry of the certificate served now for each TLS
// domain that has one.
func (m *Manager) Expiries() map[string]time.Time {
	st := m.state.Load()
	out := make(map[string]time.Time, len(st.withTLS))
	for d, c := range st.files {
		out[d] = c.Leaf.NotAfter
	}
	if st.cache != nil {
		for d := range st.acme {
			for _, c := range st.cache.AllMatchingCertificates(d) {
				if c.Leaf != nil && c.Leaf.NotAfter.After(out[d]) {
					out[d] = c.Leaf.NotAfter
				}
			}
		}
	}
	return out
}
