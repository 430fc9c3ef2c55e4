package server

import (
	"bytes"
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// serverErrorLog is the log.Logger net/http's servers write their own
// errors to. TLS handshake failures are what scanners and broken clients
// produce all day, so they are counted in
// gateway_tls_handshake_errors_total{reason} and logged at DEBUG; every
// other line is a WARN, as before.
func serverErrorLog(l *slog.Logger, handshakes *prometheus.CounterVec) *log.Logger {
	return log.New(&errorLogWriter{l: l, handshakes: handshakes}, "", 0)
}

type errorLogWriter struct {
	l          *slog.Logger
	handshakes *prometheus.CounterVec
}

const handshakePrefix = "http: TLS handshake error from "

func (w *errorLogWriter) Write(p []byte) (int, error) {
	msg := string(bytes.TrimRight(p, "\n"))
	if rest, ok := strings.CutPrefix(msg, handshakePrefix); ok {
		peer, cause, _ := strings.Cut(rest, ": ")
		reason := handshakeReason(cause)
		w.handshakes.WithLabelValues(reason).Inc()
		w.l.LogAttrs(context.Background(), slog.LevelDebug, "TLS handshake failed",
			slog.String("client", peer), slog.String("reason", reason), slog.String("error", cause))
		return len(p), nil
	}
	w.l.Warn(msg)
	return len(p), nil
}

// handshakeReason classifies a TLS handshake error into one of
// handshakeReasons. It never returns client input.
func handshakeReason(cause string) string {
	c := strings.ToLower(cause)
	switch {
	case strings.Contains(c, "eof") || strings.Contains(c, "connection reset") || strings.Contains(c, "broken pipe"):
		return "eof"
	case strings.Contains(c, "timeout") || strings.Contains(c, "deadline exceeded"):
		return "timeout"
	case strings.Contains(c, "no certificate for this server name") || strings.Contains(c, "server name") || strings.Contains(c, "no certificate"):
		return "unknown_server_name"
	case strings.Contains(c, "protocol version") || strings.Contains(c, "unsupported versions"):
		return "protocol_version"
	case strings.Contains(c, "cipher") || strings.Contains(c, "no mutual"):
		return "no_shared_cipher"
	case strings.Contains(c, "does not look like a tls handshake") || strings.Contains(c, "oversized record") || strings.Contains(c, "unsupported sslv2"):
		return "not_tls"
	case strings.Contains(c, "bad certificate") || strings.Contains(c, "unknown certificate") || strings.Contains(c, "certificate unknown"):
		return "client_rejected_certificate"
	}
	return "other"
}
