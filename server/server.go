// Package server runs a gateway process: it opens the listeners a config
// names, serves the proxy and the admin endpoints on them, reloads the config
// on SIGHUP, and drains on shutdown. cmd/gateway and the tests share it, so
// what the tests start is what operators run.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/framing"
	"github.com/oss-gateway/gateway/ossclient"
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
	logs := newLogSwitch(o.Stderr, cfg.Log)
	logger := slog.New(logs)
	for _, w := range cfg.Warnings() {
		logger.Warn(w)
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, o.Version)

	creds := o.Credentials
	if creds == nil {
		var err error
		if creds, err = ossclient.NewCredentialsProvider(cfg.Credentials); err != nil {
			return err
		}
	}
	// The access log is always wired; log.access_log switches it per config.
	accessLogs := newLogSwitch(o.Stdout, config.Log{Format: cfg.Log.Format, Level: "info"})
	h, err := proxy.New(cfg, proxy.Options{
		Metrics:     metrics.Proxy,
		Logger:      logger,
		AccessLog:   slog.New(accessLogs),
		Credentials: creds,
	})
	if err != nil {
		return err
	}
	// Last, once nothing serves: the object cache's fills end and its
	// directory is unlocked for the next process.
	defer func() {
		if cerr := h.Close(); cerr != nil {
			logger.Warn("closing the object cache", "error", cerr)
		}
	}()
	current := atomic.Pointer[config.Config]{}
	current.Store(cfg)
	trusted := func() []netip.Prefix { return current.Load().Server.TrustedProxyNets }

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
			httpLn = wrapProxyProtocol(httpLn, trusted, cfg.Server.ReadHeaderTimeout.D())
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
		if certs, err = gwtls.New(cfg, gwtls.Options{Logger: logger, Metrics: metrics.TLS, Credentials: creds}); err != nil {
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
			httpsLn = wrapProxyProtocol(httpsLn, trusted, cfg.Server.ReadHeaderTimeout.D())
		}
	}

	var stopping atomic.Bool
	errorLog := serverErrorLog(logger, metrics.TLSHandshakeErrors)
	var plain, secure http.Handler = h, nil
	if certs != nil {
		_, httpsPort, _ := net.SplitHostPort(addrs.HTTPS)
		plain = certs.HTTPHandler(h, httpsPort)
		secure = certs.HSTS(h)
	}
	fleet := &servers{logger: logger}
	if httpLn != nil {
		fleet.plain = &served{ln: newHandoffListener(httpLn), handler: plain}
	}
	if httpsLn != nil {
		fleet.secure = &served{ln: newHandoffListener(httpsLn), handler: secure, tls: certs.TLSConfig}
	}
	fleet.start(cfg, errorLog)
	r := &reloader{path: o.ConfigPath, h: h, certs: certs, current: &current, metrics: metrics, logger: logger,
		logs: logs, accessLogs: accessLogs, fleet: fleet, errorLog: errorLog, fixedCreds: o.Credentials}
	adminH := newAdminHandler(reg,
		func() []netip.Prefix { return current.Load().Admin.AllowNets },
		h.Ready, &stopping, r.reload)
	adminH.purge = h.PurgeCache
	admin := &http.Server{
		Handler:           adminH,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          errorLog,
	}

	var wg sync.WaitGroup
	probeCtx, stopProbe := context.WithCancel(context.Background())
	defer stopProbe()
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.Probe(probeCtx, o.ProbeInterval)
	}()
	if adminLn != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := admin.Serve(adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logger.Error("serve", "addr", adminLn.Addr().String(), "error", err)
			}
		}()
	}
	if certs != nil {
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
			_ = r.reload() // logged and counted
		}
	}

	stopping.Store(true)
	stopProbe()
	cur := current.Load()
	logger.Info("shutting down", "delay", cur.Server.ShutdownDelay.D().String(), "grace", cur.Server.ShutdownGrace.D().String())
	time.Sleep(cur.Server.ShutdownDelay.D())
	sctx, cancel := context.WithTimeout(context.Background(), cur.Server.ShutdownGrace.D())
	defer cancel()
	if err = fleet.shutdown(sctx); err != nil {
		logger.Warn("grace period over; cutting requests still running", "cut", h.Inflight(), "error", err)
		fleet.cut()
	}
	fleet.wait()
	_ = admin.Close()
	wg.Wait()
	logger.Info("stopped")
	return nil
}

// served is one client listener and the http.Server serving it now.
type served struct {
	ln      *handoffListener
	handler http.Handler
	tls     func() *tls.Config // nil for plain HTTP
	srv     *http.Server
	done    chan struct{} // closed when srv's Serve returned
}

// servers are the client-facing http.Servers. A reload that changes what
// an http.Server fixes at start (timeouts, max_header_bytes) replaces them:
// new ones take the sockets over and the old ones drain.
type servers struct {
	logger        *slog.Logger
	plain, secure *served
	mu            sync.Mutex
	settings      serverSettings
	draining      []*http.Server
	drainWG       sync.WaitGroup
}

// serverSettings are the [server] keys an http.Server holds for its life.
type serverSettings struct {
	readHeader, idle, write time.Duration
	maxHeaderBytes          int
}

func settingsOf(c *config.Config) serverSettings {
	return serverSettings{c.Server.ReadHeaderTimeout.D(), c.Server.IdleTimeout.D(), c.Server.WriteTimeout.D(), c.Server.MaxHeaderBytes}
}

// start serves every listener with servers built from cfg.
func (f *servers) start(cfg *config.Config, errorLog *log.Logger) {
	f.settings = settingsOf(cfg)
	for _, s := range []*served{f.plain, f.secure} {
		if s == nil {
			continue
		}
		srv := &http.Server{
			Handler:           s.handler,
			ReadHeaderTimeout: f.settings.readHeader,
			IdleTimeout:       f.settings.idle,
			WriteTimeout:      f.settings.write,
			MaxHeaderBytes:    f.settings.maxHeaderBytes,
			ErrorLog:          errorLog,
		}
		done := make(chan struct{})
		ln := s.ln.view()
		if s.tls == nil {
			srv.ConnContext = framing.ConnContext
			go func() {
				defer close(done)
				if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					f.logger.Error("serve", "addr", ln.Addr().String(), "error", err)
				}
			}()
		} else {
			srv.TLSConfig = s.tls()
			go func() {
				defer close(done)
				if err := srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
					f.logger.Error("serve", "addr", ln.Addr().String(), "error", err)
				}
			}()
		}
		s.srv, s.done = srv, done
	}
}

// apply replaces the servers when cfg changes what they fix at start; the
// old ones finish their requests within shutdown_grace.
func (f *servers) apply(cfg *config.Config, errorLog *log.Logger) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if settingsOf(cfg) == f.settings {
		return
	}
	var old []*http.Server
	for _, s := range []*served{f.plain, f.secure} {
		if s != nil {
			old = append(old, s.srv)
		}
	}
	f.start(cfg, errorLog)
	f.draining = append(f.draining, old...)
	for _, srv := range old {
		f.drainWG.Add(1)
		go func() {
			defer f.drainWG.Done()
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Server.ShutdownGrace.D())
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				f.logger.Warn("reload: requests still running on the replaced server after shutdown_grace were cut", "grace", cfg.Server.ShutdownGrace.D().String())
				_ = srv.Close()
			}
		}()
	}
}

// shutdown stops accepting (the sockets close) and drains every server,
// the ones a reload replaced included, until ctx ends. An error means
// requests are still running: cut ends them.
func (f *servers) shutdown(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []*http.Server
	for _, s := range []*served{f.plain, f.secure} {
		if s != nil {
			_ = s.ln.Close()
			all = append(all, s.srv)
		}
	}
	all = append(all, f.draining...)
	errs := make([]error, len(all))
	var wg sync.WaitGroup
	for i, srv := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// cut closes every connection of every server at once.
func (f *servers) cut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, s := range []*served{f.plain, f.secure} {
		if s != nil {
			_ = s.srv.Close()
		}
	}
	for _, srv := range f.draining {
		_ = srv.Close()
	}
}

// wait returns once every server's Serve has returned.
func (f *servers) wait() {
	for _, s := range []*served{f.plain, f.secure} {
		if s != nil {
			<-s.done
		}
	}
	f.drainWG.Wait()
}

// reloader applies a new config file to the running gateway, for SIGHUP
// and for the admin POST /-/reload alike, one reload at a time.
type reloader struct {
	mu               sync.Mutex
	path             string
	h                *proxy.Handler
	certs            *gwtls.Manager
	current          *atomic.Pointer[config.Config]
	metrics          *Metrics
	logger           *slog.Logger
	logs, accessLogs *logSwitch
	fleet            *servers
	errorLog         *log.Logger
	fixedCreds       credentials.CredentialsProvider // Options.Credentials (the demo): never replaced
}

// reload parses and validates the file and swaps it in; a bad file keeps
// the running config, and the error says why. Every key applies but the
// listen addresses and proxy_protocol, which keep their running values
// (with a warning): the sockets are open already.
func (rl *reloader) reload() error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	if rl.path == "" {
		return errors.New("the gateway was started without a config file to reload")
	}
	cfg, err := config.Load(rl.path)
	old := rl.current.Load()
	if err == nil {
		keepListeners(cfg, old, rl.logger)
		if rl.certs != nil {
			err = rl.certs.Reload(cfg)
		}
	}
	if err == nil {
		if err = rl.h.Load(cfg); err != nil && rl.certs != nil {
			_ = rl.certs.Reload(old) // back to the running config's TLS
		}
	}
	if err != nil {
		rl.metrics.reloaded(err, time.Now())
		rl.logger.Error("config reload failed; keeping the running config", "file", rl.path, "error", err)
		return err
	}
	if rl.fixedCreds == nil && !reflect.DeepEqual(cfg.Credentials, old.Credentials) {
		p, perr := ossclient.NewCredentialsProvider(cfg.Credentials)
		if perr != nil { // proxy.Validate refused it already; keep the running one
			rl.logger.Error("config reload: credentials unusable; keeping the running ones", "error", perr)
		} else {
			rl.h.SetCredentials(p)
		}
	}
	for _, w := range cfg.Warnings() {
		rl.logger.Warn(w)
	}
	rl.current.Store(cfg)
	rl.logs.set(cfg.Log)
	rl.accessLogs.set(config.Log{Format: cfg.Log.Format, Level: "info"})
	rl.fleet.apply(cfg, rl.errorLog)
	rl.metrics.reloaded(nil, time.Now())
	rl.logger.Info("config reloaded", "file", rl.path, "sites", len(cfg.Sites))
	return nil
}

// keepListeners puts the running listen addresses and proxy_protocol back
// into cfg, warning for each the file changed.
func keepListeners(cfg, old *config.Config, logger *slog.Logger) {
	for _, k := range []struct {
		key      string
		now, was *string
	}{
		{"server.http_listen", &cfg.Server.HTTPListen, &old.Server.HTTPListen},
		{"server.https_listen", &cfg.Server.HTTPSListen, &old.Server.HTTPSListen},
		{"admin.listen", &cfg.Admin.Listen, &old.Admin.Listen},
	} {
		if *k.now != *k.was {
			logger.Warn("reload cannot change "+k.key+"; restart the gateway to apply it", "key", k.key, "running", *k.was, "file", *k.now)
			*k.now = *k.was
		}
	}
	if cfg.Server.ProxyProtocol != old.Server.ProxyProtocol {
		logger.Warn("reload cannot change server.proxy_protocol; restart the gateway to apply it", "key", "server.proxy_protocol", "running", old.Server.ProxyProtocol, "file", cfg.Server.ProxyProtocol)
		cfg.Server.ProxyProtocol = old.Server.ProxyProtocol
	}
}
