package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/acmetest"
	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// tlsGatewayConfig is a gateway with one private ACME site on bucket bkt,
// certificates in storage.
func tlsGatewayConfig(httpsAddr, emuAddr string, ca *acmetest.Server, storage string) string {
	return fmt.Sprintf(`
[server]
http_listen = "HTTPADDR"
https_listen = %q

[admin]
listen = "ADMINADDR"

[credentials]
source = "env"

[tls]
acme_ca = %q
acme_ca_root = %q
acme_email = "ops@example.com"
storage = %q
acme_challenges = ["http-01"]

[[site]]
name = "img"
domains = ["img.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "private"
tls = "acme"
`, httpsAddr, ca.Directory, ca.RootFile, storage, emuAddr)
}

// httpsClient dials addr for every request and verifies the certificate
// for name against the ACME server's roots.
func httpsClient(addr, name string, roots *x509.CertPool) *http.Client {
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext:       func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "tcp", addr) },
			TLSClientConfig:   &tls.Config{ServerName: name, RootCAs: roots},
			ForceAttemptHTTP2: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// servedCert is the verified leaf the gateway at addr serves for name.
func servedCert(addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 3 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// TestFleetSharesOneCertificateOnOSS runs two gateway processes that share
// an oss:// certificate storage on the emulator, behind one "load balancer"
// address for ACME validation (the first gateway's HTTP port): between them
// they obtain exactly one certificate, both serve it, and a private object is
// served over HTTPS with HTTP/2, HSTS and a V4 signature upstream.
func TestFleetSharesOneCertificateOnOSS(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.CreateBucket("certs", ossemu.Private)
	emu.PutObject("bkt", "secret.txt", []byte("private bytes"), http.Header{"Content-Type": {"text/plain"}})

	httpA, httpsA := freePort(t), freePort(t)
	httpB, httpsB := freePort(t), freePort(t)
	_, portA, _ := net.SplitHostPort(httpA)
	var portNum int
	fmt.Sscan(portA, &portNum)
	ca := acmetest.Start(t, acmetest.Options{HTTPPort: portNum})
	storage := "oss://certs/gateway"

	var a, b *process
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		a = startGatewayOn(t, tlsGatewayConfig(httpsA, emuAddr, ca, storage), httpA, testCredentials...)
	}()
	go func() {
		defer wg.Done()
		b = startGatewayOn(t, tlsGatewayConfig(httpsB, emuAddr, ca, storage), httpB, testCredentials...)
	}()
	wg.Wait()
	if a == nil || b == nil {
		t.Fatal("a gateway did not start")
	}

	roots := ca.Roots()
	var leafA, leafB *x509.Certificate
	ok := testkit.Within(90*time.Second, func() bool {
		var errA, errB error
		leafA, errA = servedCert(httpsA, "img.test", roots)
		leafB, errB = servedCert(httpsB, "img.test", roots)
		return errA == nil && errB == nil
	})
	if !ok {
		t.Fatalf("no certificate on both gateways\nA:\n%s\nB:\n%s", a.stderr.String(), b.stderr.String())
	}
	if leafA.SerialNumber.Cmp(leafB.SerialNumber) != 0 {
		t.Errorf("gateways serve different certificates: %x and %x", leafA.SerialNumber, leafB.SerialNumber)
	}
	if n := ca.Finalized(); n != 1 {
		t.Errorf("certificates issued = %d, want exactly 1 for the fleet", n)
	}
	var certObjects []string
	for _, r := range clientRequests(emu) {
		if r.Bucket == "certs" && r.Method == http.MethodPut && strings.HasSuffix(r.Key, ".crt") {
			certObjects = append(certObjects, r.Key)
		}
	}
	lockCreates, lockBusy := 0, 0
	for _, r := range clientRequests(emu) {
		if r.Bucket == "certs" && r.Method == http.MethodPut && strings.Contains(r.Key, "locks/") && r.Header.Get("X-Oss-Forbid-Overwrite") == "true" {
			lockCreates++
			if r.Status == http.StatusConflict {
				lockBusy++
			}
		}
	}
	t.Logf("lock creates %d, of which refused because held: %d", lockCreates, lockBusy)
	if len(certObjects) != 1 {
		t.Errorf("certificate objects written to OSS: %v, want one", certObjects)
	}

	client := httpsClient(httpsA, "img.test", roots)
	resp, err := client.Get("https://img.test/secret.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "private bytes" || resp.ProtoMajor != 2 {
		t.Fatalf("GET over HTTPS: %s %s %q", resp.Proto, resp.Status, body)
	}
	if resp.Header.Get("Strict-Transport-Security") != "max-age=31536000" {
		t.Errorf("HSTS = %q", resp.Header.Get("Strict-Transport-Security"))
	}
	signed := false
	for _, r := range clientRequests(emu) {
		if r.Bucket == "bkt" && r.Key == "secret.txt" && r.Signed && r.Status == 200 {
			signed = true
		}
	}
	if !signed {
		t.Error("no signed upstream GET for the private object")
	}

	// Plain HTTP redirects to HTTPS with 308.
	req, _ := http.NewRequest("GET", "http://"+httpB+"/secret.txt?x=1", nil)
	req.Host = "img.test"
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	_, portHTTPSB, _ := net.SplitHostPort(httpsB)
	if want := "https://img.test:" + portHTTPSB + "/secret.txt?x=1"; resp.StatusCode != 308 || resp.Header.Get("Location") != want {
		t.Errorf("plain HTTP: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}

	m := scrape(t, b.admin)
	// The redirect is an answer like any other: counted, with a request id.
	if v, ok := metricValue(m, `gateway_requests_total{code="308",method="GET",site="img"}`); !ok || v != 1 || resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("redirect not counted (%v, %v) or without X-Request-Id", v, ok)
	}
	want := fmt.Sprintf(`gateway_tls_certificate_expiry_timestamp_seconds{domain="img.test"} %d`, leafB.NotAfter.Unix())
	if !strings.Contains(m, want) {
		// The metric is written as a float; compare the number.
		v, ok := metricValue(m, `gateway_tls_certificate_expiry_timestamp_seconds{domain="img.test"}`)
		if !ok || int64(v) != leafB.NotAfter.Unix() {
			t.Errorf("expiry metric = %v (present %v), want %d", v, ok, leafB.NotAfter.Unix())
		}
	}
}

// TestBadCertificateFilesRefuseToStart proves a tls = "files" pair that
// cannot be served stops the start as a bad config does (exit status 2,
// one file:line: key line), before anything listens.
func TestBadCertificateFilesRefuseToStart(t *testing.T) {
	dir := t.TempDir()
	cert := filepath.Join(dir, "cert.pem")
	if err := os.WriteFile(cert, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	httpAddr := freePort(t)
	cfg := strings.NewReplacer("HTTPADDR", httpAddr, "ADMINADDR", freePort(t)).Replace(fmt.Sprintf(`
[server]
http_listen = "HTTPADDR"
https_listen = %q
[admin]
listen = "ADMINADDR"
[[site]]
name = "f"
domains = ["f.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://127.0.0.1:9"
access = "public"
tls = "files"
cert_file = %q
key_file = %q
`, freePort(t), cert, filepath.Join(dir, "missing-key.pem")))
	path := filepath.Join(dir, "gateway.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gatewayBin, "run", "-config", path)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	if err == nil || cmd.ProcessState.ExitCode() != 2 || time.Since(start) > 10*time.Second {
		t.Fatalf("exit %v after %s, want status 2 (a bad config) at once", err, time.Since(start))
	}
	if !strings.Contains(stderr.String(), path+":16: site[0].key_file: ") || !strings.Contains(stderr.String(), "missing-key.pem") {
		t.Errorf("stderr does not name the file, the line, the key and the missing file:\n%s", stderr.String())
	}
	if c, err := net.Dial("tcp", httpAddr); err == nil {
		c.Close()
		t.Error("something listens on the HTTP address after a refused start")
	}
}
