// Package server runs a gateway process: it opens the listeners a config
// names, serves the proxy and the admin endpoints on them, reloads the config
// on SIGHUP, and drains on shutdown. cmd/gateway and the tests share it, so
// what the tests start is what operators run.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/proxy"
)

// Options are what a caller supplies beyond the config file.
type Options struct {
	// ConfigPath is reloaded on SIGHUP; "" disables reloading.
	ConfigPath string
	Version    string
	// Stdout takes the access log, Stderr the operational log.
	Stdout, Stderr io.Writer
	// Credentials overrides the provider [credentials] names (the demo).
	Credentials credentials.CredentialsProvider
	// Listening is called once every listener is open, with their addresses.
	Listening func(Addrs)
}

// Addrs are the addresses the listeners were bound to (":0" resolved).
type Addrs struct {
	HTTP, Admin string
}

// Run serves cfg until ctx is done, then drains: /readyz fails at once, the
// listeners close after shutdown_delay, and in-flight requests get
// shutdown_grace to finish. It returns nil after a clean drain.
func Run(ctx context.Context, cfg *config.Config, o Options) error {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	logger := NewLogger(o.Stderr, cfg.Log)
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	reg := prometheus.NewRegistry()
	metrics := proxy.NewMetrics(reg, o.Version)

	creds := o.Credentials
	if creds == nil {
		var err error
		if creds, err = proxy.NewCredentialsProvider(cfg.Credentials); err != nil {
			return err
		}
	}
	var accessLog *slog.Logger
	if cfg.Log.AccessLog {
		accessLog = NewLogger(o.Stdout, config.Log{Format: cfg.Log.Format, Level: "info"})
	}
	h, err := proxy.New(cfg, proxy.Options{
		Metrics:     metrics,
		Logger:      logger,
		AccessLog:   accessLog,
		Credentials: creds,
	})
	if err != nil {
		return err
	}

	// Open every listener before serving on any, so a config whose second
	// address is taken fails without having half-started.
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	listen := func(addr string) (net.Listener, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		lns = append(lns, ln)
		return ln, nil
	}
	var addrs Addrs
	var httpLn, adminLn net.Listener
	if cfg.Server.HTTPListen != "" {
		if httpLn, err = listen(cfg.Server.HTTPListen); err != nil {
			return err
		}
		addrs.HTTP = httpLn.Addr().String()
		httpLn = withSendLowat(httpLn)
		if cfg.Server.ProxyProtocol {
			httpLn = wrapProxyProtocol(httpLn, cfg.Server.TrustedProxyNets, cfg.Server.ReadHeaderTimeout.D())
		}
	}
	if cfg.Admin.Listen != "" {
		if adminLn, err = listen(cfg.Admin.Listen); err != nil {
			return err
		}
		addrs.Admin = adminLn.Addr().String()
	}
	if cfg.Server.HTTPSListen != "" {
		logger.Warn("https_listen is set but this build serves plain HTTP only; TLS termination is not available yet",
			"https_listen", cfg.Server.HTTPSListen)
	}

	var stopping atomic.Bool
	current := atomic.Pointer[config.Config]{}
	current.Store(cfg)

	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(),
		IdleTimeout:       cfg.Server.IdleTimeout.D(),
		WriteTimeout:      cfg.Server.WriteTimeout.D(),
		MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	admin := &http.Server{
		Handler: newAdminHandler(reg,
			func() []netip.Prefix { return current.Load().Admin.AllowNets },
			h.Ready, &stopping),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          srv.ErrorLog,
	}

	var wg sync.WaitGroup
	serve := func(s *http.Server, ln net.Listener) {
		if ln == nil {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serve", "addr", ln.Addr().String(), "error", err)
			}
		}()
	}
	serve(srv, httpLn)
	serve(admin, adminLn)
	logger.Info("gateway started", "http", addrs.HTTP, "admin", addrs.Admin, "sites", len(cfg.Sites), "version", o.Version)
	if o.Listening != nil {
		o.Listening(addrs)
	}

	hup := make(chan os.Signal, 1)
	if o.ConfigPath != "" {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for done := false; !done; {
		select {
		case <-ctx.Done():
			done = true
		case <-hup:
			reload(o.ConfigPath, h, &current, metrics, logger)
		}
	}

	stopping.Store(true)
	cur := current.Load()
	logger.Info("shutting down", "delay", cur.Server.ShutdownDelay.D().String(), "grace", cur.Server.ShutdownGrace.D().String())
	time.Sleep(cur.Server.ShutdownDelay.D())
	sctx, cancel := context.WithTimeout(context.Background(), cur.Server.ShutdownGrace.D())
	defer cancel()
	err = srv.Shutdown(sctx)
	if err != nil {
		logger.Warn("grace period over; cutting requests still running", "cut", h.Inflight(), "error", err)
		_ = srv.Close()
	}
	_ = admin.Close()
	wg.Wait()
	logger.Info("stopped")
	return nil
}

// reload parses and validates path and swaps it in; a bad file keeps the
// running config.
func reload(path string, h *proxy.Handler, current *atomic.Pointer[config.Config], m *proxy.Metrics, logger *slog.Logger) {
	cfg, err := config.Load(path)
	if err == nil {
		err = h.Load(cfg)
	}
	if err != nil {
		m.ConfigReloads.WithLabelValues("error").Inc()
		logger.Error("config reload failed; keeping the running config", "file", path, "error", err)
		return
	}
	current.Store(cfg)
	m.ConfigReloads.WithLabelValues("success").Inc()
	logger.Info("config reloaded", "file", path, "sites", len(cfg.Sites))
}

// NewLogger returns the slog logger the config's [log] table asks for.
func NewLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	switch c.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
