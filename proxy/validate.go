package proxy

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// Validate reports what New, and so `gateway run`, refuses in a config
// that config.Load accepted: a url_auth key whose environment variable is
// unset, a method or an endpoint the request path cannot use, two sites
// on one domain, a credentials source without a provider. Each problem
// names the key it is about (File is cfg.Path; Line is left to the
// caller, which has the file). getenv reads url_auth keys; nil means
// os.Getenv, as New does.
//
// `gateway check` and `gateway run` both call it, so a config check
// accepts is one run starts with. It builds the same pieces New builds,
// in the same way, and finally New itself: anything New refuses that no
// key accounts for comes back as a problem without a key.
func Validate(cfg *config.Config, getenv func(string) string) []config.Problem {
	if getenv == nil {
		getenv = os.Getenv
	}
	var ps []config.Problem
	add := func(key, format string, args ...any) {
		ps = append(ps, config.Problem{File: cfg.Path, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	if _, err := ossclient.NewCredentialsProvider(cfg.Credentials); err != nil {
		add("credentials.source", "%v", err)
	}
	owner := map[string]int{} // normalised domain -> site index
	for i := range cfg.Sites {
		s := &cfg.Sites[i]
		key := fmt.Sprintf("site[%d]", i)
		if s.URLAuth.Enabled {
			if _, err := newURLAuth(s.URLAuth, getenv); err != nil {
				k := key + ".url_auth.key_env"
				if s.URLAuth.KeyEnv != "" && getenv(s.URLAuth.KeyEnv) != "" {
					k = key + ".url_auth.ttl" // the key is there: the TTL is not
				}
				add(k, "%v", err)
			}
		}
		for j, m := range s.Methods {
			if methodBit(strings.ToUpper(m)) == 0 {
				add(fmt.Sprintf("%s.methods[%d]", key, j), "method %q is not supported", m)
			}
		}
		if _, err := upstream.Resolve(s, s.Endpoint); err != nil {
			add(key+".endpoint", "%v", err)
		}
		if s.FallbackEndpoint != "" {
			if _, err := upstream.Resolve(s, s.FallbackEndpoint); err != nil {
				add(key+".fallback_endpoint", "%v", err)
			}
		}
		for j, d := range s.Domains {
			d = normalizeHost(d)
			if o, dup := owner[d]; dup && o != i {
				add(fmt.Sprintf("%s.domains[%d]", key, j), "domain %q is already served by site %q", d, cfg.Sites[o].Name)
				continue
			}
			owner[d] = i
		}
	}
	if len(ps) > 0 {
		return ps
	}
	// The whole of New, with a transport that never dials: whatever it
	// still refuses is a problem too. Without the object cache: the
	// gateway that serves opens it, once (its directory is locked, and
	// opening it rebuilds the index and reconciles the sites).
	vcfg := *cfg
	vcfg.Cache.Path = ""
	h, err := New(&vcfg, Options{Getenv: getenv, Transport: refuseTransport{}})
	if err != nil {
		add("", "%v", err)
	} else {
		_ = h.Close()
	}
	return ps
}

// refuseTransport is the transport Validate builds a Handler with: it
// never carries a request.
type refuseTransport struct{}

func (refuseTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, fmt.Errorf("proxy.Validate: no requests")
}
