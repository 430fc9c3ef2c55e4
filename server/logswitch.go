package server

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/oss-gateway/gateway/config"
)

// logSwitch is a slog.Handler whose format and level a reload can change:
// every logger made from it, including ones derived with With before the
// reload, writes in the current format at the current level.
type logSwitch struct {
	w     io.Writer
	level slog.LevelVar
	cur   atomic.Pointer[slog.Handler]
}

func newLogSwitch(w io.Writer, c config.Log) *logSwitch {
	s := &logSwitch{w: w}
	s.set(c)
	return s
}

// set applies [log] format and level.
func (s *logSwitch) set(c config.Log) {
	s.level.Set(logLevel(c.Level))
	opts := &slog.HandlerOptions{Level: &s.level}
	var h slog.Handler = slog.NewJSONHandler(s.w, opts)
	if c.Format == "text" {
		h = slog.NewTextHandler(s.w, opts)
	}
	s.cur.Store(&h)
}

func (s *logSwitch) Enabled(_ context.Context, l slog.Level) bool { return l >= s.level.Level() }

func (s *logSwitch) Handle(ctx context.Context, r slog.Record) error {
	return (*s.cur.Load()).Handle(ctx, r)
}

func (s *logSwitch) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &derivedLog{root: s, ops: []func(slog.Handler) slog.Handler{func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) }}}
}

func (s *logSwitch) WithGroup(name string) slog.Handler {
	return &derivedLog{root: s, ops: []func(slog.Handler) slog.Handler{func(h slog.Handler) slog.Handler { return h.WithGroup(name) }}}
}

// derivedLog is a logSwitch with attributes or groups added: it applies
// them to whichever handler is current when it logs.
type derivedLog struct {
	root *logSwitch
	ops  []func(slog.Handler) slog.Handler
}

func (d *derivedLog) Enabled(ctx context.Context, l slog.Level) bool { return d.root.Enabled(ctx, l) }

func (d *derivedLog) Handle(ctx context.Context, r slog.Record) error {
	h := *d.root.cur.Load()
	for _, op := range d.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func (d *derivedLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &derivedLog{root: d.root, ops: append(d.ops[:len(d.ops):len(d.ops)], func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })}
}

func (d *derivedLog) WithGroup(name string) slog.Handler {
	return &derivedLog{root: d.root, ops: append(d.ops[:len(d.ops):len(d.ops)], func(h slog.Handler) slog.Handler { return h.WithGroup(name) })}
}

func logLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}
