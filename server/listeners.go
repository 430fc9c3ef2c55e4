package server

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/framing"
)

// listeners are the sockets a config names, each nil when its address is
// empty.
type listeners struct {
	http, https, admin net.Listener
	addrs              Addrs
}

// openListeners opens every listener before serving on any, so a config
// whose second address is taken fails without having half-started. The
// client listeners come back wrapped for serving (see clientListener).
// trusted is read on each connection, so a reload applies to open sockets.
func openListeners(cfg *config.Config, trusted func() []netip.Prefix) (*listeners, error) {
	var l listeners
	for _, a := range []struct {
		addr  string
		ln    *net.Listener
		bound *string
	}{
		{cfg.Server.HTTPListen, &l.http, &l.addrs.HTTP},
		{cfg.Admin.Listen, &l.admin, &l.addrs.Admin},
		{cfg.Server.HTTPSListen, &l.https, &l.addrs.HTTPS},
	} {
		if a.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			l.close()
			return nil, fmt.Errorf("listen %s: %w", a.addr, err)
		}
		*a.ln, *a.bound = ln, ln.Addr().String()
	}
	if l.http != nil {
		// Outermost: it watches the plain HTTP each request head arrives
		// in, so a head with both Content-Length and Transfer-Encoding
		// can be refused (net/http resolves it before the handler).
		l.http = framing.NewListener(clientListener(l.http, cfg, trusted))
	}
	if l.https != nil {
		l.https = clientListener(l.https, cfg, trusted)
	}
	return &l, nil
}

// clientListener wraps a client socket: send low-water mark set on each
// connection, and the PROXY protocol read from trusted peers when the
// config enables it.
func clientListener(ln net.Listener, cfg *config.Config, trusted func() []netip.Prefix) net.Listener {
	ln = withSendLowat(ln)
	if cfg.Server.ProxyProtocol {
		ln = wrapProxyProtocol(ln, trusted, cfg.Server.ReadHeaderTimeout.D())
	}
	return ln
}

// close closes every listener opened so far.
func (l *listeners) close() {
	for _, ln := range []net.Listener{l.http, l.https, l.admin} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
