package tls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/acmetest"
	"github.com/oss-gateway/gateway/internal/testkit"
)

// testGateway is the TLS part of a gateway: the manager behind a plain HTTP
// listener (challenges, redirects) and an HTTPS listener.
type testGateway struct {
	m         *Manager
	httpAddr  string
	httpsAddr string
	expiry    *prometheus.GaugeVec
	logs      *testkit.Buffer
}

// listeners opens the HTTP and HTTPS listeners first, so the config and the
// ACME server can name their ports.
func listeners(t *testing.T) (httpLn, httpsLn net.Listener) {
	t.Helper()
	var err error
	if httpLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if httpsLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	return httpLn, httpsLn
}

func port(ln net.Listener) int { return ln.Addr().(*net.TCPAddr).Port }

// acmeConfig is a config with one ACME site per domain.
func acmeConfig(t *testing.T, httpLn, httpsLn net.Listener, ca *acmetest.Server, storage string, challenges string, domains ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nhttp_listen = %q\nhttps_listen = %q\n", httpLn.Addr().String(), httpsLn.Addr().String())
	fmt.Fprintf(&b, "[tls]\nacme_ca = %q\nacme_ca_root = %q\nstorage = %q\nacme_challenges = [%s]\nacme_email = \"ops@example.com\"\n",
		ca.Directory, ca.RootFile, storage, challenges)
	for i, d := range domains {
		fmt.Fprintf(&b, "[[site]]\nname = \"s%d\"\ndomains = [%q]\nbucket = \"bucket-%d\"\nregion = \"cn-hangzhou\"\nendpoint = \"http://127.0.0.1:9\"\naccess = \"public\"\ntls = \"acme\"\n", i, d, i)
	}
	cfg, err := config.Parse("gateway.toml", []byte(b.String()))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	return cfg
}

func startTestGateway(t *testing.T, cfg *config.Config, httpLn, httpsLn net.Listener, o Options) *testGateway {
	t.Helper()
	g := &testGateway{httpAddr: httpLn.Addr().String(), httpsAddr: httpsLn.Addr().String(), logs: &testkit.Buffer{}}
	o.Metrics = NewMetrics(prometheus.NewRegistry())
	g.expiry = o.Metrics.CertExpiry
	o.Logger = slog.New(slog.NewJSONHandler(g.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m, err := New(cfg, o)
	if err != nil {
		t.Fatalf("tls.New: %v", err)
	}
	g.m = m
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "proto=%s host=%s", r.Proto, r.Host)
	})
	plain := &http.Server{Handler: m.HTTPHandler(app, strconv.Itoa(port(httpsLn)))}
	secure := &http.Server{Handler: m.HSTS(app), TLSConfig: m.TLSConfig(), ErrorLog: slog.NewLogLogger(o.Logger.Handler(), slog.LevelWarn)}
	go plain.Serve(httpLn)
	go secure.ServeTLS(httpsLn, "", "")
	m.Start()
	t.Cleanup(func() {
		plain.Close()
		secure.Close()
		m.Close()
	})
	return g
}

// handshake connects to the HTTPS listener with SNI name and returns the
// verified leaf, or the handshake error.
func (g *testGateway) handshake(name string, roots *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", g.httpsAddr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitCert waits until the gateway serves a certificate for name that
// verifies against roots and satisfies ok.
func (g *testGateway) waitCert(t *testing.T, name string, roots *x509.CertPool, d time.Duration, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for time.Now().Before(deadline) {
		leaf, err := g.handshake(name, roots)
		if err == nil && (ok == nil || ok(leaf)) {
			return leaf
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no certificate for %s within %s (last error: %v)\nlog:\n%s", name, d, lastErr, g.logs.String())
	return nil
}

// TestACMEObtainsOverEachChallenge proves the gateway obtains a certificate
// from a real ACME server over HTTP-01 alone and over TLS-ALPN-01 alone, and
// then serves it with HTTP/2 and HSTS.
func TestACMEObtainsOverEachChallenge(t *testing.T) {
	for _, tc := range []struct{ name, challenges, domain string }{
		{"http-01", `"http-01"`, "http01.test"},
		{"tls-alpn-01", `"tls-alpn-01"`, "alpn.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpLn, httpsLn := listeners(t)
			ca := acmetest.Start(t, acmetest.Options{HTTPPort: port(httpLn), TLSPort: port(httpsLn)})
			cfg := acmeConfig(t, httpLn, httpsLn, ca, t.TempDir(), tc.challenges, tc.domain)
			g := startTestGateway(t, cfg, httpLn, httpsLn, Options{})
			leaf := g.waitCert(t, tc.domain, ca.Roots(), 60*time.Second, nil)
			if leaf.VerifyHostname(tc.domain) != nil {
				t.Fatalf("certificate names %v, want %s", leaf.DNSNames, tc.domain)
			}
			if n := ca.Finalized(); n != 1 {
				t.Fatalf("orders finalized = %d, want 1", n)
			}
			stored, err := StoredCertificate(context.Background(), cfg, Options{}, tc.domain)
			if err != nil || stored.SerialNumber.Cmp(leaf.SerialNumber) != 0 {
				t.Fatalf("StoredCertificate: %v", err)
			}
			if _, err := StoredCertificate(context.Background(), cfg, Options{}, "never.test"); err != ErrNotObtained {
				t.Fatalf("StoredCertificate of a name never ordered: %v, want ErrNotObtained", err)
			}
			if !strings.Contains(g.logs.String(), tc.name) {
				t.Errorf("log does not mention the %s challenge:\n%s", tc.name, g.logs.String())
			}

			client := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientTLS(tc.domain), ForceAttemptHTTP2: true}}
			resp, err := client.Get("https://" + g.httpsAddr + "/x")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.ProtoMajor != 2 || !strings.Contains(string(body), "proto=HTTP/2.0") {
				t.Errorf("proto %s body %q, want HTTP/2", resp.Proto, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
				t.Errorf("HSTS = %q", got)
			}
			testkit.Eventually(t, 20*time.Second, "the expiry gauge of "+tc.domain, func() bool {
				return testutil.ToFloat64(g.expiry.WithLabelValues(tc.domain)) == float64(leaf.NotAfter.Unix())
			})
		})
	}
}

// TestUnknownServerNameNeverOrders proves a handshake for a name no TLS site
// has is refused without an ACME order, so clients cannot spend the CA's
// rate limits.
func TestUnknownServerNameNeverOrders(t *testing.T) {
	httpLn, httpsLn := listeners(t)
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: port(httpLn), TLSPort: port(httpsLn)})
	cfg := acmeConfig(t, httpLn, httpsLn, ca, t.TempDir(), `"http-01", "tls-alpn-01"`, "known.test")
	g := startTestGateway(t, cfg, httpLn, httpsLn, Options{})
	g.waitCert(t, "known.test", ca.Roots(), 60*time.Second, nil)
	before := ca.Finalized()
	for _, name := range []string{"other.test", "", "KNOWN.test.evil", "127.0.0.1"} {
		if _, err := g.handshake(name, ca.Roots()); err == nil {
			t.Errorf("handshake for %q succeeded", name)
		}
	}
	// An ACME TLS-ALPN challenge handshake for a foreign name is refused too.
	c, err := tls.Dial("tcp", g.httpsAddr, &tls.Config{ServerName: "other.test", NextProtos: []string{"acme-tls/1"}, InsecureSkipVerify: true})
	if err == nil {
		c.Close()
		t.Error("acme-tls/1 handshake for a foreign name succeeded")
	}
	time.Sleep(500 * time.Millisecond)
	if n := ca.Finalized(); n != before {
		t.Fatalf("orders finalized went from %d to %d after foreign handshakes", before, n)
	}
	if strings.Contains(g.logs.String(), "other.test") && strings.Contains(g.logs.String(), "obtain") {
		t.Errorf("log shows work on a foreign name:\n%s", g.logs.String())
	}

	// A reload that adds a site orders its name alone; one that drops a
	// site stops serving its name.
	must(t, g.m.Reload(acmeConfig(t, httpLn, httpsLn, ca, cfg.TLS.Storage, `"http-01", "tls-alpn-01"`, "known.test", "added.test")))
	g.waitCert(t, "added.test", ca.Roots(), 60*time.Second, nil)
	if n := ca.Finalized(); n != before+1 {
		t.Fatalf("orders finalized = %d after adding one name, want %d", n, before+1)
	}
	must(t, g.m.Reload(acmeConfig(t, httpLn, httpsLn, ca, cfg.TLS.Storage, `"http-01", "tls-alpn-01"`, "added.test")))
	if _, err := g.handshake("known.test", ca.Roots()); err == nil {
		t.Error("a dropped site's name still gets a certificate")
	}
	if _, err := g.handshake("added.test", ca.Roots()); err != nil {
		t.Errorf("added.test after dropping known.test: %v", err)
	}
}

// TestRenewsNearExpiry proves a certificate inside its renewal window is
// renewed in the background and the new one served, with the expiry metric
// following it.
func TestRenewsNearExpiry(t *testing.T) {
	httpLn, httpsLn := listeners(t)
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: port(httpLn), TLSPort: port(httpsLn), Validity: 16 * time.Second})
	cfg := acmeConfig(t, httpLn, httpsLn, ca, t.TempDir(), `"http-01"`, "renew.test")
	// The certificate lives 16 s; with half its life as the renewal window
	// it is "near expiry" 8 s after issue, and checked every second.
	g := startTestGateway(t, cfg, httpLn, httpsLn, Options{RenewCheckInterval: time.Second, RenewalWindowRatio: 0.5})
	first := g.waitCert(t, "renew.test", ca.Roots(), 60*time.Second, nil)
	second := g.waitCert(t, "renew.test", ca.Roots(), 45*time.Second, func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !second.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first's %s", second.NotAfter, first.NotAfter)
	}
	testkit.Eventually(t, 20*time.Second, "the expiry gauge of the renewed certificate", func() bool {
		return testutil.ToFloat64(g.expiry.WithLabelValues("renew.test")) >= float64(second.NotAfter.Unix())
	})
}

// TestFailedRenewalKeepsServingTheOldCertificate proves a renewal the CA
// cannot answer is logged and retried while the current certificate is
// still served.
func TestFailedRenewalKeepsServingTheOldCertificate(t *testing.T) {
	httpLn, httpsLn := listeners(t)
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: port(httpLn), TLSPort: port(httpsLn), Validity: 20 * time.Second})
	cfg := acmeConfig(t, httpLn, httpsLn, ca, t.TempDir(), `"http-01"`, "outage.test")
	g := startTestGateway(t, cfg, httpLn, httpsLn, Options{RenewCheckInterval: time.Second, RenewalWindowRatio: 0.7})
	first := g.waitCert(t, "outage.test", ca.Roots(), 60*time.Second, nil)
	ca.Stop()
	// The renewal window opens 6 s after issue; wait for the failed attempt.
	testkit.Eventually(t, 20*time.Second, "the failed renewal in the log", func() bool {
		for _, l := range strings.Split(g.logs.String(), "\n") {
			if strings.Contains(l, `"level":"ERROR"`) && strings.Contains(l, `"component":"tls.renew"`) && strings.Contains(l, "connection refused") {
				return true
			}
		}
		return false
	})
	leaf, err := g.handshake("outage.test", ca.Roots())
	if err != nil {
		t.Fatalf("handshake after a failed renewal: %v", err)
	}
	if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("serving serial %x, want the old certificate %x", leaf.SerialNumber, first.SerialNumber)
	}
}

// TestCADownKeepsServing proves a CA that does not answer is a logged,
// retried failure: New and Start return, and plain HTTP keeps working.
func TestCADownKeepsServing(t *testing.T) {
	httpLn, httpsLn := listeners(t)
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := dead.Addr().String()
	dead.Close()
	down := &acmetest.Server{Directory: "https://" + deadAddr + "/dir", RootFile: writeTempPEM(t, "ca.test")}
	cfg := acmeConfig(t, httpLn, httpsLn, down, t.TempDir(), `"http-01"`, "down.test")
	start := time.Now()
	g := startTestGateway(t, cfg, httpLn, httpsLn, Options{})
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("start took %s with the CA down", d)
	}
	resp, err := http.Get("http://" + g.httpAddr + "/.well-known/acme-challenge/nothing")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	testkit.Eventually(t, 20*time.Second, "the dead address in the log", func() bool { return strings.Contains(g.logs.String(), deadAddr) })
	if _, err := g.handshake("down.test", nil); err == nil {
		t.Fatal("handshake succeeded without a certificate")
	}
}
