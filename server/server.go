// Package server runs a gateway process: it opens the listeners a config
// names, serves the proxy and the admin endpoints on them, reloads the config
// on SIGHUP, and drains on shutdown. cmd/gateway and the tests share it, so
// what the tests start is what operators run.
package server

import (
	"context"
	"errors"
	"io"
	"log"
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
	g, err := newGateway(cfg, o)
	if err != nil {
		return err
	}
	defer g.release()
	if err := g.loadCertificates(cfg); err != nil {
		return err
	}
	lns, err := openListeners(cfg, g.trustedProxies)
	if err != nil {
		return err
	}
	g.serveClients(cfg, lns)
	g.startProbe()
	g.startAdmin(lns.admin)
	g.startCertificates()
	g.announce(cfg, lns.addrs)
	g.reloadUntil(ctx)
	g.drain()
	return nil
}

// gateway is one run: what Run builds once from the config and Options,
// which its steps and every reload share.
type gateway struct {
	o                Options
	logger           *slog.Logger
	logs, accessLogs *logSwitch // [log] applies to both on reload
	reg              *prometheus.Registry
	metrics          *Metrics
	errorLog         *log.Logger                     // the http.Servers' own errors
	creds            credentials.CredentialsProvider // what Run started with; the TLS storage keeps it
	h                *proxy.Handler
	current          atomic.Pointer[config.Config] // the running config
	certs            *gwtls.Manager                // nil without an HTTPS listener
	fleet            *servers                      // the client-facing servers
	admin            *http.Server
	stopping         atomic.Bool // set when draining starts: /readyz fails
	stopProbe        context.CancelFunc
	wg               sync.WaitGroup // the probe and the admin server
	reloadMu         sync.Mutex     // one reload at a time
}

// newGateway sets up what serving cfg needs before any socket opens: the
// logs, the metrics, the credentials and the handler.
func newGateway(cfg *config.Config, o Options) (*gateway, error) {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	g := &gateway{o: o, reg: prometheus.NewRegistry()}
	g.logs = newLogSwitch(o.Stderr, cfg.Log)
	g.logger = slog.New(g.logs)
	for _, w := range cfg.Warnings() {
		g.logger.Warn(w)
	}
	g.metrics = NewMetrics(g.reg, o.Version)
	g.errorLog = serverErrorLog(g.logger, g.metrics.handshakeErrors)
	var err error
	if g.creds, err = g.credentials(cfg); err != nil {
		return nil, err
	}
	// The access log is always wired; log.access_log switches it per config.
	g.accessLogs = newLogSwitch(o.Stdout, accessLogConfig(cfg.Log))
	g.h, err = proxy.New(cfg, proxy.Options{
		Metrics:     g.metrics.handler,
		Logger:      g.logger,
		AccessLog:   slog.New(g.accessLogs),
		Credentials: g.creds,
	})
	if err != nil {
		return nil, err
	}
	g.current.Store(cfg)
	return g, nil
}

// credentials is Options.Credentials when set (the demo's), else the
// provider cfg's [credentials] names.
func (g *gateway) credentials(cfg *config.Config) (credentials.CredentialsProvider, error) {
	if g.o.Credentials != nil {
		return g.o.Credentials, nil
	}
	return ossclient.NewCredentialsProvider(cfg.Credentials)
}

// accessLogConfig is the access log's [log]: its format, always at info
// (log.access_log, not the level, turns it off).
func accessLogConfig(l config.Log) config.Log {
	return config.Log{Format: l.Format, Level: "info"}
}

// trustedProxies are the running config's trusted_proxies, which a reload
// can change under open PROXY protocol listeners.
func (g *gateway) trustedProxies() []netip.Prefix {
	return g.current.Load().Server.TrustedProxyNets
}

// loadCertificates builds the certificate manager when cfg has an HTTPS
// listener. It fails on what cannot be served, before any socket opens;
// ACME certificates are obtained later, by startCertificates.
func (g *gateway) loadCertificates(cfg *config.Config) error {
	if cfg.Server.HTTPSListen == "" {
		return nil
	}
	var err error
	g.certs, err = gwtls.New(cfg, gwtls.Options{Logger: g.logger, Metrics: g.metrics.certs, Credentials: g.creds})
	return err
}

// serveClients starts the client-facing servers on the listeners: plain
// HTTP (which, beside an HTTPS listener, answers ACME challenges and
// redirects) and HTTPS.
func (g *gateway) serveClients(cfg *config.Config, l *listeners) {
	var plain, secure http.Handler = g.h, nil
	if g.certs != nil {
		_, httpsPort, _ := net.SplitHostPort(l.addrs.HTTPS)
		plain = g.certs.HTTPHandler(g.h, httpsPort)
		secure = g.certs.HSTS(g.h)
	}
	g.fleet = &servers{logger: g.logger}
	if l.http != nil {
		g.fleet.plain = &served{ln: newHandoffListener(l.http), handler: plain}
	}
	if l.https != nil {
		g.fleet.secure = &served{ln: newHandoffListener(l.https), handler: secure, tls: g.certs.TLSConfig}
	}
	g.fleet.start(cfg, g.errorLog)
}

// startProbe checks idle upstreams for /readyz until the drain starts.
func (g *gateway) startProbe() {
	ctx, stop := context.WithCancel(context.Background())
	g.stopProbe = stop
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.h.Probe(ctx, g.o.ProbeInterval)
	}()
}

// startAdmin serves the operator endpoints (health, metrics, reload,
// purge, pprof) on ln, when the config names an admin listener.
func (g *gateway) startAdmin(ln net.Listener) {
	a := newAdminHandler(g.reg,
		func() []netip.Prefix { return g.current.Load().Admin.AllowNets },
		g.h.Ready, &g.stopping, g.reload)
	a.purge = g.h.PurgeCache
	g.admin = &http.Server{
		Handler:           a,
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          g.errorLog,
	}
	if ln == nil {
		return
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := g.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.logger.Error("serve", "addr", ln.Addr().String(), "error", err)
		}
	}()
}

// startCertificates begins obtaining and renewing ACME certificates in the
// background, once everything else serves.
func (g *gateway) startCertificates() {
	if g.certs != nil {
		g.certs.Start()
	}
}

// announce logs the start and tells Options.Listening where each
// listener is bound.
func (g *gateway) announce(cfg *config.Config, addrs Addrs) {
	g.logger.Info("gateway started", "http", addrs.HTTP, "https", addrs.HTTPS, "admin", addrs.Admin, "sites", len(cfg.Sites), "version", g.o.Version)
	if g.o.Listening != nil {
		g.o.Listening(addrs)
	}
}

// reloadUntil reloads the config file on each SIGHUP (when Run has one)
// until ctx is done.
func (g *gateway) reloadUntil(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	if g.o.ConfigPath != "" {
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			_ = g.reload() // logged and counted
		}
	}
}

// drain stops the gateway gracefully: /readyz fails at once, the client
// listeners close after shutdown_delay, in-flight requests get
// shutdown_grace and are cut after it, and then the admin server stops.
func (g *gateway) drain() {
	g.stopping.Store(true)
	g.stopProbe()
	cur := g.current.Load()
	g.logger.Info("shutting down", "delay", cur.Server.ShutdownDelay.D().String(), "grace", cur.Server.ShutdownGrace.D().String())
	time.Sleep(cur.Server.ShutdownDelay.D())
	ctx, cancel := context.WithTimeout(context.Background(), cur.Server.ShutdownGrace.D())
	defer cancel()
	if err := g.fleet.shutdown(ctx); err != nil {
		g.logger.Warn("grace period over; cutting requests still running", "cut", g.h.Inflight(), "error", err)
		g.fleet.cut()
	}
	g.fleet.wait()
	_ = g.admin.Close()
	g.wg.Wait()
	g.logger.Info("stopped")
}

// release closes what outlives serving, last, once nothing serves: the
// certificate manager, then the handler, whose object cache's fills end
// and whose directory is unlocked for the next process.
func (g *gateway) release() {
	if g.certs != nil {
		g.certs.Close()
	}
	if err := g.h.Close(); err != nil {
		g.logger.Warn("closing the object cache", "error", err)
	}
}
