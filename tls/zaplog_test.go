package tls

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestZapLinesLookLikeOurs: certmagic's lines come out in the gateway's
// format with durations in seconds, and "not in storage yet" at INFO is
// demoted to DEBUG.
func TestZapLinesLookLikeOurs(t *testing.T) {
	var buf bytes.Buffer
	zl := newZapLogger(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))).Named("obtain")
	zl.Info("certificate obtained", zap.Duration("elapsed", 1500*time.Millisecond), zap.String("identifier", "img.example.com"))
	zl.Info("loading certificate", zap.Error(&fs.PathError{Op: "open", Path: "/var/lib/gateway/x.crt", Err: fs.ErrNotExist}))
	zl.Error("renewal failed", zap.Error(errors.New("acme: rate limited")))

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines (the missing-file INFO demoted), got %d:\n%s", len(lines), buf.String())
	}
	var first map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if first["elapsed"] != 1.5 || first["component"] != "tls.obtain" || first["level"] != "INFO" {
		t.Errorf("first line: %v", first)
	}
	if !strings.Contains(lines[1], `"level":"ERROR"`) || !strings.Contains(lines[1], "rate limited") {
		t.Errorf("error line: %s", lines[1])
	}
}
