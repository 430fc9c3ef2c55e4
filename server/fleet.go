package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/framing"
)

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
