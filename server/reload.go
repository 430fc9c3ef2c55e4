package server

import (
	"errors"
	"log/slog"
	"reflect"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// reload applies the config file to the running gateway, for SIGHUP and
// for the admin POST /-/reload alike, one reload at a time. A bad file
// keeps the running config, and the error says why. Every key applies but
// the listen addresses and proxy_protocol, which keep their running values
// (with a warning): the sockets are open already.
func (g *gateway) reload() error {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	path := g.o.ConfigPath
	if path == "" {
		return errors.New("the gateway was started without a config file to reload")
	}
	old := g.current.Load()
	cfg, err := config.Load(path)
	if err == nil {
		err = g.switchHandler(cfg, old)
	}
	if err != nil {
		g.metrics.reloaded(err, time.Now())
		g.logger.Error("config reload failed; keeping the running config", "file", path, "error", err)
		return err
	}
	g.applyRest(cfg, old)
	g.metrics.reloaded(nil, time.Now())
	g.logger.Info("config reloaded", "file", path, "sites", len(cfg.Sites))
	return nil
}

// switchHandler makes the certificate manager and the handler serve cfg,
// both or neither: when the handler refuses cfg, the running config's TLS
// comes back.
func (g *gateway) switchHandler(cfg, old *config.Config) error {
	keepListeners(cfg, old, g.logger)
	if g.certs != nil {
		if err := g.certs.Reload(cfg); err != nil {
			return err
		}
	}
	if err := g.h.Load(cfg); err != nil {
		if g.certs != nil {
			_ = g.certs.Reload(old) // back to the running config's TLS
		}
		return err
	}
	return nil
}

// applyRest applies what a reload changes beyond the handler and TLS,
// once they took cfg: credentials, logs, the client servers' settings, and
// cfg as the running config.
func (g *gateway) applyRest(cfg, old *config.Config) {
	g.refreshCredentials(cfg, old)
	for _, w := range cfg.Warnings() {
		g.logger.Warn(w)
	}
	g.current.Store(cfg)
	g.logs.set(cfg.Log)
	g.accessLogs.set(accessLogConfig(cfg.Log))
	g.fleet.apply(cfg, g.errorLog)
}

// refreshCredentials makes the handler sign with the provider cfg names
// when [credentials] changed, unless Options.Credentials fixes them (the
// demo's are never replaced).
func (g *gateway) refreshCredentials(cfg, old *config.Config) {
	if g.o.Credentials != nil || reflect.DeepEqual(cfg.Credentials, old.Credentials) {
		return
	}
	p, err := g.credentials(cfg)
	if err != nil { // proxy.Validate refused it already; keep the running one
		g.logger.Error("config reload: credentials unusable; keeping the running ones", "error", err)
		return
	}
	g.h.SetCredentials(p)
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
