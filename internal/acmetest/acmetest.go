// Package acmetest runs a real ACME server on loopback for tests: Let's
// Encrypt's Pebble (CA, validation authority, web front end) in-process, and
// pebble-challtestsrv as the DNS server that maps every test domain to
// 127.0.0.1, so challenges are validated against the gateway's own
// listeners exactly as a public CA would validate them.
package acmetest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Options say where the validation authority looks for the gateway.
type Options struct {
	// HTTPPort and TLSPort are the ports HTTP-01 and TLS-ALPN-01 are
	// validated on (the gateway's http_listen and https_listen).
	HTTPPort, TLSPort int
	// Validity is the lifetime of issued certificates; 0 = Pebble's default.
	Validity time.Duration
	// Log receives Pebble's log; nil discards it.
	Log io.Writer
}

// Server is a running Pebble.
type Server struct {
	// Directory is the ACME directory URL (tls.acme_ca).
	Directory string
	// RootFile is a PEM file trusting the directory's HTTPS (tls.acme_ca_root).
	RootFile string

	ca  *ca.CAImpl
	db  *db.MemoryStore
	dns *challtestsrv.ChallSrv

	srv *httptest.Server

	mu     sync.Mutex
	orders int
}

// Start runs Pebble and its DNS server until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	// Pebble reads these at construction: validate at once, never reject a
	// nonce at random, and never reuse an authorization, so every order is
	// really validated.
	for k, v := range map[string]string{"PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"} {
		os.Setenv(k, v)
	}
	logw := o.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := log.New(logw, "pebble ", log.Lmicroseconds)

	dnsAddr := freeUDPTCPAddr(t)
	dns, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{dnsAddr}, Log: logger})
	if err != nil {
		t.Fatalf("challtestsrv: %v", err)
	}
	dns.SetDefaultDNSIPv4("127.0.0.1")
	dns.SetDefaultDNSIPv6("")
	go dns.Run()
	t.Cleanup(dns.Shutdown)

	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(o.Validity / time.Second)}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	validator := va.New(logger, o.HTTPPort, o.TLSPort, false, dnsAddr, store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	s := &Server{ca: authority, db: store, dns: dns}
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && len(r.URL.Path) > 1 && filepath.Base(filepath.Dir(r.URL.Path)) == "finalize-order" {
			s.mu.Lock()
			s.orders++
			s.mu.Unlock()
		}
		h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.srv = srv
	s.Directory = srv.URL + wfe.DirectoryPath

	s.RootFile = filepath.Join(t.TempDir(), "acme-ca-root.pem")
	writePEM(t, s.RootFile, srv.Certificate())
	return s
}

// Stop takes the ACME server down, as a CA outage would.
func (s *Server) Stop() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Finalized is how many orders were finalized, i.e. certificates issued.
func (s *Server) Finalized() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.orders
}

// Roots trusts the certificates Pebble issues.
func (s *Server) Roots() *x509.CertPool {
	p := x509.NewCertPool()
	for i := 0; i < s.ca.GetNumberOfRootCerts(); i++ {
		p.AddCert(s.ca.GetRootCert(i).Cert)
	}
	return p
}

// ClientTLS is a client config that verifies the gateway's certificate for
// name against Pebble's roots.
func (s *Server) ClientTLS(name string) *tls.Config {
	return &tls.Config{ServerName: name, RootCAs: s.Roots(), NextProtos: []string{"h2", "http/1.1"}}
}

func writePEM(t testing.TB, path string, c *x509.Certificate) {
	t.Helper()
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// freeUDPTCPAddr finds a 127.0.0.1 port free for both UDP and TCP.
func freeUDPTCPAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		return "127.0.0.1:" + strconv.Itoa(port)
	}
	t.Fatal("no free port for DNS")
	return ""
}
