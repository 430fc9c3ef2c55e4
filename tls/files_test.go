package tls

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testcert"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/oss-gateway/gateway/config"
)

// selfSigned writes a certificate for names valid over [from, until) and its
// key; it returns the two paths and the certificate.
func selfSigned(t *testing.T, from, until time.Time, names ...string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	p := testcert.New(t, testcert.Options{From: from, Until: until}, names...)
	certFile, keyFile = p.Write(t, "")
	return certFile, keyFile, p.Leaf
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeTempPEM writes a throwaway CA certificate file.
func writeTempPEM(t *testing.T, name string) string {
	f, _, _ := selfSigned(t, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), name)
	return f
}

// filesConfig is a config with one tls = "files" site and one tls = "off"
// site.
func filesConfig(t *testing.T, httpLn, httpsLn net.Listener, certFile, keyFile string, extra string) *config.Config {
	t.Helper()
	text := fmt.Sprintf(`[server]
http_listen = %q
https_listen = %q
%s
[[site]]
name = "files"
domains = ["files.test", "127.0.0.1"]
bucket = "bucket-f"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:9"
access = "public"
tls = "files"
cert_file = %q
key_file = %q
[[site]]
name = "plain"
domains = ["plain.test"]
bucket = "bucket-p"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:9"
access = "public"
tls = "off"
`, httpLn.Addr().String(), httpsLn.Addr().String(), extra, certFile, keyFile)
	cfg, err := config.Parse("gateway.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestFilesCertificateRefusedAtLoad covers the PEM pairs that must not start:
// each is a clear error naming the file.
func TestFilesCertificateRefusedAtLoad(t *testing.T) {
	now := time.Now()
	good, goodKey, _ := selfSigned(t, now.Add(-time.Hour), now.Add(time.Hour), "files.test")
	_, otherKey, _ := selfSigned(t, now.Add(-time.Hour), now.Add(time.Hour), "files.test")
	expired, expiredKey, _ := selfSigned(t, now.Add(-2*time.Hour), now.Add(-time.Hour), "files.test")
	future, futureKey, _ := selfSigned(t, now.Add(time.Hour), now.Add(2*time.Hour), "files.test")
	unreadable := filepath.Join(t.TempDir(), "key.pem")
	must(t, os.WriteFile(unreadable, []byte("x"), 0o000))
	notPEM := filepath.Join(t.TempDir(), "cert.pem")
	must(t, os.WriteFile(notPEM, []byte("hello"), 0o600))
	for _, tc := range []struct {
		name, cert, key, want string
	}{
		{"missing key file", good, "/nonexistent/key.pem", "no such file"},
		{"key does not match", good, otherKey, "private key does not match public key"},
		{"expired", expired, expiredKey, "certificate expired at"},
		{"not yet valid", future, futureKey, "not valid before"},
		{"not PEM", notPEM, goodKey, "failed to find any PEM data"},
		{"unreadable key", good, unreadable, "key.pem"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			httpLn, httpsLn := listeners(t)
			defer httpLn.Close()
			defer httpsLn.Close()
			_, err := New(filesConfig(t, httpLn, httpsLn, tc.cert, tc.key, ""), Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `site "files"`) {
				t.Fatalf("err = %v, want one naming the site and containing %q", err, tc.want)
			}
		})
	}
}

// TestFilesServedRedirectedAndReloaded covers tls = "files": the pair is
// served for its domains (and for SNI-less clients of a listed IP), other
// names and tls = "off" sites get no certificate, plain HTTP redirects with
// 308 except challenge paths, min_version is enforced, and a reload picks
// up a new pair while a bad one keeps the old.
func TestFilesServedRedirectedAndReloaded(t *testing.T) {
	now := time.Now()
	cert1, key1, leaf1 := selfSigned(t, now.Add(-time.Hour), now.Add(24*time.Hour), "files.test", "127.0.0.1")
	httpLn, httpsLn := listeners(t)
	cfg := filesConfig(t, httpLn, httpsLn, cert1, key1, "[tls]\nmin_version = \"1.3\"\nhsts = \"max-age=60\"")
	g := startTestGateway(t, cfg, httpLn, httpsLn, Options{})
	roots := x509.NewCertPool()
	roots.AddCert(leaf1)

	if leaf, err := g.handshake("files.test", roots); err != nil || leaf.SerialNumber.Cmp(leaf1.SerialNumber) != 0 {
		t.Fatalf("files.test: %v", err)
	}
	if _, err := g.handshake("", roots); err != nil {
		t.Fatalf("SNI-less handshake to a listed IP: %v", err)
	}
	for _, name := range []string{"plain.test", "other.test"} {
		if _, err := g.handshake(name, roots); err == nil {
			t.Errorf("handshake for %s succeeded", name)
		}
	}
	c, err := tls.Dial("tcp", g.httpsAddr, &tls.Config{ServerName: "files.test", RootCAs: roots, MaxVersion: tls.VersionTLS12})
	if err == nil {
		c.Close()
		t.Error("TLS 1.2 handshake accepted with min_version 1.3")
	}
	if got := testExpiry(g, "files.test"); got != float64(leaf1.NotAfter.Unix()) {
		t.Errorf("expiry metric = %v, want %d", got, leaf1.NotAfter.Unix())
	}

	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	_, httpsPort, _ := net.SplitHostPort(g.httpsAddr)
	for _, tc := range []struct {
		host, path string
		code       int
		location   string
	}{
		{"files.test", "/a/b.jpg?x=1", 308, "https://files.test:" + httpsPort + "/a/b.jpg?x=1"},
		{"FILES.test.:80", "/", 308, "https://files.test:" + httpsPort + "/"},
		{"files.test", "/.well-known/acme-challenge/tok", 200, ""},
		{"plain.test", "/a", 200, ""},
		{"unknown.test", "/a", 200, ""},
	} {
		req, _ := http.NewRequest("GET", "http://"+g.httpAddr+tc.path, nil)
		req.Host = tc.host
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s%s: %d %q, want %d %q", tc.host, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.code, tc.location)
		}
	}

	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: "files.test", RootCAs: roots}, ForceAttemptHTTP2: true}}
	resp, err := client.Get("https://" + g.httpsAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 2 || resp.Header.Get("Strict-Transport-Security") != "max-age=60" {
		t.Errorf("proto %s, HSTS %q", resp.Proto, resp.Header.Get("Strict-Transport-Security"))
	}

	// A reload with a renewed pair serves it; a reload with a bad pair is
	// refused and the running pair stays.
	cert2, key2, leaf2 := selfSigned(t, now.Add(-time.Hour), now.Add(48*time.Hour), "files.test", "127.0.0.1")
	must(t, g.m.Reload(filesConfig(t, httpLn, httpsLn, cert2, key2, "")))
	roots.AddCert(leaf2)
	if leaf, err := g.handshake("files.test", roots); err != nil || leaf.SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
		t.Fatalf("after reload: %v (serial %v)", err, leaf)
	}
	if got := testExpiry(g, "files.test"); got != float64(leaf2.NotAfter.Unix()) {
		t.Errorf("expiry metric after reload = %v, want %d", got, leaf2.NotAfter.Unix())
	}
	if err := g.m.Reload(filesConfig(t, httpLn, httpsLn, cert2, key1, "")); err == nil {
		t.Fatal("reload with a mismatched key succeeded")
	}
	if leaf, err := g.handshake("files.test", roots); err != nil || leaf.SerialNumber.Cmp(leaf2.SerialNumber) != 0 {
		t.Fatalf("after a bad reload: %v", err)
	}
}

func testExpiry(g *testGateway, domain string) float64 {
	return testutil.ToFloat64(g.expiry.WithLabelValues(domain))
}
