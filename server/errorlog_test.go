package server

import (
	"bytes"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHandshakeReason(t *testing.T) {
	for cause, want := range map[string]string{
		"EOF": "eof",
		"read tcp 127.0.0.1:443->127.0.0.1:5000: read: connection reset by peer": "eof",
		"read tcp 127.0.0.1:443->127.0.0.1:5000: i/o timeout":                    "timeout",
		"no certificate for this server name":                                    "unknown_server_name",
		"tls: client offered only unsupported versions: [302 301]":               "protocol_version",
		"tls: no cipher suite supported by both client and server":               "no_shared_cipher",
		"tls: first record does not look like a TLS handshake":                   "not_tls",
		"remote error: tls: bad certificate":                                     "client_rejected_certificate",
		"something new <script>":                                                 "other",
	} {
		if got := handshakeReason(cause); got != want {
			t.Errorf("handshakeReason(%q) = %q, want %q", cause, got, want)
		}
	}
	for _, r := range []string{"eof", "timeout", "unknown_server_name", "protocol_version", "no_shared_cipher", "not_tls", "client_rejected_certificate", "other"} {
		found := false
		for _, k := range handshakeReasons() {
			found = found || k == r
		}
		if !found {
			t.Errorf("%q missing from handshakeReasons", r)
		}
	}
}

// TestHandshakeErrorsAreCountedNotWarned: a real TLS server's handshake
// failures (bytes that are not TLS, a client that hangs up) are counted by
// reason and logged at DEBUG, not WARN.
func TestHandshakeErrorsAreCountedNotWarned(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	counts := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_tls_handshake_errors_total"}, []string{"reason"})
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = serverErrorLog(logger, counts)
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("\x00\x01\x02\x03\x04 not a TLS record\r\n\r\n")) // garbage on the TLS port
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	c.Read(make([]byte, 512))
	c.Close()
	c, err = net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Close() // a scanner that connects and leaves

	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) && testutil.ToFloat64(counts.WithLabelValues("not_tls"))+testutil.ToFloat64(counts.WithLabelValues("eof")) < 2 {
		time.Sleep(20 * time.Millisecond)
	}
	if n := testutil.ToFloat64(counts.WithLabelValues("not_tls")); n != 1 {
		t.Errorf("not_tls = %v", n)
	}
	if n := testutil.ToFloat64(counts.WithLabelValues("eof")); n != 1 {
		t.Errorf("eof = %v", n)
	}
	if strings.Contains(buf.String(), "WARN") || strings.Contains(buf.String(), "handshake") {
		t.Errorf("handshake errors logged above DEBUG:\n%s", buf.String())
	}
}
