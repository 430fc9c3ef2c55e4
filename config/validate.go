package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
)

// validate checks every key of a decoded config, records each problem in p,
// normalises values in place (domains, methods) and fills the parsed forms
// (the *Nets fields, resolved bursts).
func (c *Config) validate(p *problems) {
	c.Server.validate(p)
	c.Admin.validate(p, &c.Server)
	c.Log.validate(p)
	c.Credentials.validate(p)
	c.TLS.validate(p)
	c.Cache.validate(p)
	c.validateSites(p)
	for i := range c.Sites {
		if c.Sites[i].Cache.Enabled && c.Cache.Path == "" {
			p.addNear(indexKey("site", i)+".cache.enabled", "cache.path", "is true but [cache] path is empty, so there is no cache to use")
		}
	}
}

func (c *Cache) validate(p *problems) {
	if c.Path != "" && !filepath.IsAbs(c.Path) {
		p.add("cache.path", "%q must be an absolute path", c.Path)
	}
	if c.MaxSize <= 0 {
		p.add("cache.max_size", "must be positive")
	}
	if c.Memory < 0 {
		p.add("cache.memory", "must not be negative")
	}
	switch {
	case c.MaxObjectSize <= 0:
		p.add("cache.max_object_size", "must be positive")
	case c.MaxObjectSize > c.MaxSize:
		p.add("cache.max_object_size", "is larger than cache.max_size: no object that size could be kept")
	}
}

func (s *Server) validate(p *problems) {
	for _, l := range []struct{ key, addr string }{
		{"server.http_listen", s.HTTPListen},
		{"server.https_listen", s.HTTPSListen},
	} {
		if l.addr != "" {
			if msg := listenProblem(l.addr); msg != "" {
				p.add(l.key, "%s", msg)
			}
		}
	}
	switch {
	case s.HTTPListen == "" && s.HTTPSListen == "":
		p.add("server.https_listen", `is "" and so is server.http_listen; at least one listener is needed`)
	case s.HTTPListen == s.HTTPSListen && !strings.HasSuffix(s.HTTPListen, ":0"):
		p.add("server.https_listen", "%q is also server.http_listen; one address cannot serve both", s.HTTPSListen)
	}
	if !oneOf(s.UpstreamTransport, "native", "stdlib") {
		p.add("server.upstream_transport", `%q is not "native" or "stdlib"`, s.UpstreamTransport)
	}
	if s.MaxHeaderBytes <= 0 {
		p.add("server.max_header_bytes", "must be positive, not %d", s.MaxHeaderBytes)
	}
	s.TrustedProxyNets = parseCIDRs(p, "server.trusted_proxies", s.TrustedProxies)
	if s.ProxyProtocol && len(s.TrustedProxies) == 0 {
		p.add("server.proxy_protocol", "is true but server.trusted_proxies is empty; a PROXY header is believed only from trusted proxies")
	}
}

func (a *Admin) validate(p *problems, s *Server) {
	if a.Listen != "" {
		if msg := listenProblem(a.Listen); msg != "" {
			p.add("admin.listen", "%s", msg)
		} else if (a.Listen == s.HTTPListen || a.Listen == s.HTTPSListen) && !strings.HasSuffix(a.Listen, ":0") {
			p.add("admin.listen", "%q is also a client listener in [server]; the admin listener needs its own address", a.Listen)
		}
	}
	a.AllowNets = parseCIDRs(p, "admin.allow", a.Allow)
}

func (l *Log) validate(p *problems) {
	if !oneOf(l.Format, "json", "text") {
		p.add("log.format", `%q is not "json" or "text"`, l.Format)
	}
	if !oneOf(l.Level, "debug", "info", "warn", "error") {
		p.add("log.level", "%q is not one of debug, info, warn, error", l.Level)
	}
	if !(l.AccessLogSample > 0 && l.AccessLogSample <= 1) {
		p.add("log.access_log_sample", "%v is not in (0, 1]; use access_log = false to log nothing", l.AccessLogSample)
	}
}

func (c *Credentials) validate(p *problems) {
	switch c.Source {
	case "env", "ecs_ram_role":
	case "process":
		if c.Process == "" {
			p.addNear("credentials.process", "credentials.source", `is required with source = "process": the command that prints the credentials JSON`)
		}
	case "static":
		if c.AccessKeyID == "" {
			p.addNear("credentials.access_key_id", "credentials.source", `is required with source = "static"`)
		}
		if c.AccessKeySecret == "" {
			p.addNear("credentials.access_key_secret", "credentials.source", `is required with source = "static"`)
		}
		return
	default:
		p.add("credentials.source", "%q is not one of env, ecs_ram_role, process, static", c.Source)
		return
	}
	for _, k := range []struct{ key, val string }{
		{"credentials.access_key_id", c.AccessKeyID},
		{"credentials.access_key_secret", c.AccessKeySecret},
		{"credentials.security_token", c.SecurityToken},
	} {
		if k.val != "" {
			p.add(k.key, `is set but source = %q does not use it; remove it (a credential in a file that does not need it is a leak risk)`, c.Source)
		}
	}
}

func (t *TLS) validate(p *problems) {
	if !oneOf(t.MinVersion, "1.2", "1.3") {
		p.add("tls.min_version", `%q is not "1.2" or "1.3"`, t.MinVersion)
	}
	if len(t.ACMEChallenges) == 0 {
		p.add("tls.acme_challenges", "must list at least one of http-01, tls-alpn-01")
	}
	for i, ch := range t.ACMEChallenges {
		if !oneOf(ch, "http-01", "tls-alpn-01") {
			p.add(indexKey("tls.acme_challenges", i), "%q is not http-01 or tls-alpn-01", ch)
		}
	}
	if msg := storageProblem(t.Storage); msg != "" {
		p.add("tls.storage", "%s", msg)
	}
	if t.ACMECA != "" {
		if u, err := url.Parse(t.ACMECA); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			p.add("tls.acme_ca", "%q is not an ACME directory URL such as https://acme-staging-v02.api.letsencrypt.org/directory", t.ACMECA)
		}
	}
	if t.ACMEEmail != "" {
		if at := strings.IndexByte(t.ACMEEmail, '@'); at <= 0 || at == len(t.ACMEEmail)-1 || strings.ContainsAny(t.ACMEEmail, " \t<>,;") || hasControl(t.ACMEEmail) {
			p.add("tls.acme_email", "%q is not an email address", t.ACMEEmail)
		}
	}
	if hasControl(t.HSTS) {
		p.add("tls.hsts", "%q must not contain control characters; it is sent as a header value", t.HSTS)
	}
}

// storageProblem checks tls.storage: an absolute directory, or
// oss://bucket[/prefix] to share certificates across a fleet.
func storageProblem(s string) string {
	if s == "" {
		return `must not be empty: an absolute directory or "oss://bucket/prefix"`
	}
	rest, ok := strings.CutPrefix(s, "oss://")
	if !ok {
		if !filepath.IsAbs(s) {
			return fmt.Sprintf(`%q is neither an absolute path nor "oss://bucket/prefix"`, s)
		}
		return ""
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if msg := bucketProblem(bucket); msg != "" {
		return fmt.Sprintf("%q: %s", s, msg)
	}
	if prefix != "" {
		if msg := objectKeyProblem(prefix); msg != "" {
			return fmt.Sprintf("%q: the prefix %s", s, msg)
		}
	}
	return ""
}

// oneOf reports whether s is one of the allowed values.
func oneOf(s string, allowed ...string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}
