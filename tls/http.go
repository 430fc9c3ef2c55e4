package tls

import (
	"net"
	"net/http"
	"strings"
)

// acmeChallengePrefix is where HTTP-01 validation requests arrive.
const acmeChallengePrefix = "/.well-known/acme-challenge/"

// HTTPHandler wraps the plain-HTTP listener's handler: it answers ACME
// HTTP-01 challenges (from this instance's memory or the shared storage, so
// any instance of a fleet can answer for an order another one placed), and
// redirects sites that have TLS to HTTPS with 308 when redirect_http is set,
// challenge paths excepted. httpsPort is the HTTPS listener's port ("" or
// "443" leave the port out of the Location).
func (m *Manager) HTTPHandler(next http.Handler, httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := m.state.Load()
		if strings.HasPrefix(r.URL.Path, acmeChallengePrefix) {
			if st.issuer != nil && st.acme[hostOnly(r.Host)] && st.issuer.HandleHTTPChallenge(w, r) {
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if st.cfg.Server.RedirectHTTP && st.cfg.Server.HTTPSListen != "" {
			if host := hostOnly(r.Host); st.withTLS[host] {
				target := "https://" + hostForURL(host)
				if httpsPort != "" && httpsPort != "443" {
					target += ":" + httpsPort
				}
				target += r.URL.RequestURI()
				if rd, ok := next.(Redirector); ok {
					rd.Redirect(w, r, target)
					return
				}
				w.Header().Set("Location", target)
				w.WriteHeader(http.StatusPermanentRedirect)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Redirector is a handler that answers the HTTP-to-HTTPS redirect itself,
// so that the redirect is logged and counted like every other answer.
type Redirector interface {
	// Redirect answers r with 308 Permanent Redirect to location.
	Redirect(w http.ResponseWriter, r *http.Request, location string)
}

// HSTS wraps the HTTPS listener's handler to send the configured
// Strict-Transport-Security header on every response.
func (m *Manager) HSTS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v := m.state.Load().cfg.TLS.HSTS; v != "" {
			w.Header().Set("Strict-Transport-Security", v)
		}
		next.ServeHTTP(w, r)
	})
}

// hostOnly is r.Host without its port, folded as routing folds it.
func hostOnly(h string) string {
	if host, _, err := net.SplitHostPort(h); err == nil {
		h = host
	} else {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	return normalizeName(h)
}

// hostForURL brackets an IPv6 literal.
func hostForURL(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}
