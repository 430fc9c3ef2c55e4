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
	"github.com/oss-gateway/gateway/internal/framing"
	"github.com/oss-gateway/gateway/proxy"
	gwtls "github.com/oss-gateway/gateway/tls"
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
	// ProbeInterval is how often idle upstreams are probed for /readyz;
	// 0 = proxy.DefaultProbeInterval.
	ProbeInterval time.Duration
}

// Addrs are the addresses the listeners were bound to (":0" resolved).
type Addrs struct {
	HTTP, HTTPS, Admin string
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
		// Outermost: it watches the plain HTTP each request head arrives
		// in, so a head with both Content-Length and Transfer-Encoding
		// can be refused (net/http resolves it before the handler).
		httpLn = framing.NewListener(httpLn)
	}
	if cfg.Admin.Listen != "" {
		if adminLn, err = listen(cfg.Admin.Listen); err != nil {
			return err
		}
		addrs.Admin = adminLn.Addr().String()
	}
	var certs *gwtls.Manager
	var httpsLn net.Listener
	if cfg.Server.HTTPSListen != "" {
		if certs, err = gwtls.New(cfg, gwtls.Options{Logger: logger, Expiry: metrics.CertExpiry, Credentials: creds}); err != nil {
			closeAll()
			return err
		}
		defer certs.Close()
		if httpsLn, err = listen(cfg.Server.HTTPSListen); err != nil {
			return err
		}
		addrs.HTTPS = httpsLn.Addr().String()
		httpsLn = withSendLowat(httpsLn)
		if cfg.Server.ProxyProtocol {
			httpsLn = wrapProxyProtocol(httpsLn, cfg.Server.TrustedProxyNets, cfg.Server.ReadHeaderTimeout.D())
		}
	}

	var stopping atomic.Bool
	current := atomic.Pointer[config.Config]{}
	current.Store(cfg)

	newServer := func(handler http.Handler) *http.Server {
		return &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: cfg.Server.ReadHeaderTimeout.D(),
			IdleTimeout:       cfg.Server.IdleTimeout.D(),
			WriteTimeout:      cfg.Server.WriteTimeout.D(),
			MaxHeaderBytes:    cfg.Server.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		}
	}
	srv := newServer(h)
	srv.ConnContext = framing.ConnContext
	var srvTLS *http.Server
	if certs != nil {
		_, httpsPort, _ := net.SplitHostPort(addrs.HTTPS)
		srv.Handler = certs.HTTPHandler(h, httpsPort)
		srvTLS = newServer(certs.HSTS(h))
		srvTLS.TLSConfig = certs.TLSConfig()
	}
	admin := &http.Server{
		Handler: newAdminHandler(reg,
			func() []netip.Prefix { return current.Load().Admin.AllowNets },
			h.Ready, &stopping),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          srv.ErrorLog,
	}

	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(context.Background())
	defer stopProbe()
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.Probe(probeCtx, o.ProbeInterval)
	}()
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
	if srvTLS != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srvTLS.ServeTLS(httpsLn, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serve", "addr", addrs.HTTPS, "error", err)
			}
		}()
		certs.Start()
	}
	logger.Info("gateway started", "http", addrs.HTTP, "https", addrs.HTTPS, "admin", addrs.Admin, "sites", len(cfg.Sites), "version", o.Version)
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
			reload(o.ConfigPath, h, certs, &current, metrics, logger)
		}
	}

	stopping.Store(true)
	stopProbe()
	cur := current.Load()
	logger.Info("shutting down", "delay", cur.Server.ShutdownDelay.D().String(), "grace", cur.Server.ShutdownGrace.D().String())
	time.Sleep(cur.Server.ShutdownDelay.D())
	sctx, cancel := context.WithTimeout(context.Background(), cur.Server.ShutdownGrace.D())
	defer cancel()
	servers := []*http.Server{srv}
	if srvTLS != nil {
		servers = append(servers, srvTLS)
	}
	var errs [2]error
	var sw sync.WaitGroup
	for i, s := range servers {
		sw.Add(1)
		go func() {
			defer sw.Done()
			errs[i] = s.Shutdown(sctx)
		}()
	}
	sw.Wait()
	if err = errors.Join(errs[:]...); err != nil {
		logger.Warn("grace period over; cutting requests still running", "cut", h.Inflight(), "error", err)
		for _, s := range servers {
			_ = s.Close()
		}
	}
	_ = admin.Close()
	wg.Wait()
	logger.Info("stopped")
	return nil
}

// reload parses and validates path and swaps it in; a bad file keeps the
// running config.
func reload(path string, h *proxy.Handler, certs *gwtls.Manager, current *atomic.Pointer[config.Config], m *proxy.Metrics, logger *slog.Logger) {
	cfg, err := config.Load(path)
	if err == nil && certs != nil {
		err = certs.Reload(cfg)
	}
	if err == nil {
		if err = h.Load(cfg); err != nil && certs != nil {
			_ = certs.Reload(current.Load()) // back to the running config's TLS
		}
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
