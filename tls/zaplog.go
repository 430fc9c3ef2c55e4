package tls

import (
	"context"
	"io/fs"
	"log/slog"
	"sort"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newZapLogger routes certmagic's zap logging into the gateway's slog logger,
// so certificate events share one stream, one format and one level with the
// rest of the operational log. certmagic logs only on certificate events
// (obtain, renew, OCSP), never per request, so the field conversion here is
// off the hot path.
func newZapLogger(l *slog.Logger) *zap.Logger {
	return zap.New(&slogCore{l: l})
}

type slogCore struct {
	l      *slog.Logger
	fields []zapcore.Field
}

func (c *slogCore) Enabled(lvl zapcore.Level) bool {
	return c.l.Enabled(context.Background(), slogLevel(lvl))
}

func (c *slogCore) With(fs []zapcore.Field) zapcore.Core {
	return &slogCore{l: c.l, fields: append(append([]zapcore.Field(nil), c.fields...), fs...)}
}

func (c *slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *slogCore) Write(e zapcore.Entry, fs []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fs {
		f.AddTo(enc)
	}
	attrs := make([]slog.Attr, 0, len(enc.Fields)+1)
	if e.LoggerName != "" {
		attrs = append(attrs, slog.String("component", "tls."+strings.Trim(e.LoggerName, ".")))
	} else {
		attrs = append(attrs, slog.String("component", "tls"))
	}
	keys := make([]string, 0, len(enc.Fields))
	for k := range enc.Fields {
		keys = append(keys, k)
	}
	sort.Strings(keys) // zap's map has no order; a log line should
	level := slogLevel(e.Level)
	for _, k := range keys {
		v := enc.Fields[k]
		switch x := v.(type) {
		case time.Duration:
			v = x.Seconds() // durations in seconds, as every other gateway line
		case string:
			if k == "error" && level == slog.LevelInfo && missingFile(x) {
				// certmagic reports at INFO that a certificate it looked
				// for is not in storage yet: routine on a first start.
				level = slog.LevelDebug
			}
		}
		attrs = append(attrs, slog.Any(k, v))
	}
	c.l.LogAttrs(context.Background(), level, e.Message, attrs...)
	return nil
}

// missingFile reports an error text that only says something does not
// exist in storage.
func missingFile(s string) bool {
	return strings.Contains(s, "no such file or directory") || strings.Contains(s, "does not exist") ||
		strings.Contains(s, fs.ErrNotExist.Error())
}

func (c *slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	default:
		return slog.LevelError
	}
}
