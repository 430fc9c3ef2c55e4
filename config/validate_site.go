package config

import (
	"math"
	"net/netip"
	"strings"
)

// domainOwner remembers which site first claimed a domain.
type domainOwner struct {
	site int
	key  string
}

// validateSites checks every [[site]] and what sites must not share: names
// and domains.
func (c *Config) validateSites(p *problems) {
	if len(c.Sites) == 0 {
		p.add("site", "at least one [[site]] is required")
		return
	}
	names := map[string]int{}
	domains := map[string]domainOwner{}
	for i := range c.Sites {
		s := &c.Sites[i]
		key := indexKey("site", i)

		switch {
		case s.Name == "":
			p.add(key+".name", "is required: it names the site in logs and metrics")
		case !isName(s.Name, 64):
			p.add(key+".name", `%q must be 1-64 chars of A-Z, a-z, 0-9, "_" and "-" (it becomes a metric label)`, s.Name)
		default:
			if j, dup := names[s.Name]; dup {
				p.add(key+".name", "%q is already the name of site[%d]", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}

		if len(s.Domains) == 0 {
			p.add(key+".domains", "must list at least one domain")
		}
		for j, d := range s.Domains {
			dkey := indexKey(key+".domains", j)
			norm, msg := normalizeDomain(d)
			s.Domains[j] = norm
			if msg != "" {
				p.add(dkey, "%s", msg)
				continue
			}
			owner, dup := domains[norm]
			switch {
			case !dup:
				domains[norm] = domainOwner{site: i, key: dkey}
			case owner.site == i:
				p.add(dkey, "%q is listed twice in this site (also %s)", norm, owner.key)
			default:
				p.add(dkey, "%q is a domain of both site %q (%s) and site %q; a domain routes to one site only",
					norm, c.siteLabel(owner.site), owner.key, c.siteLabel(i))
			}
		}

		s.validate(p, key, &c.Server)
	}
}

// siteLabel names site i in messages: its name, or site[i] when it has none.
func (c *Config) siteLabel(i int) string {
	if c.Sites[i].Name != "" {
		return c.Sites[i].Name
	}
	return indexKey("site", i)
}

// validate checks the keys of one site other than its name and domains.
func (s *Site) validate(p *problems, key string, srv *Server) {
	switch {
	case s.Bucket == "":
		p.add(key+".bucket", "is required")
	default:
		if msg := bucketProblem(s.Bucket); msg != "" {
			p.add(key+".bucket", "%s", msg)
		}
	}
	switch {
	case s.Region == "":
		p.add(key+".region", "is required, such as cn-hangzhou")
	case !isRegion(s.Region):
		p.add(key+".region", "%q is not an OSS region id such as cn-hangzhou, ap-southeast-1 or us-west-1", s.Region)
	}
	if msg := endpointProblem(s.Endpoint); msg != "" {
		p.add(key+".endpoint", "%s", msg)
	}
	if s.FallbackEndpoint != "" {
		if msg := endpointProblem(s.FallbackEndpoint); msg != "" {
			p.add(key+".fallback_endpoint", "%s", msg)
		}
	}
	if s.UpstreamHost != "" {
		if msg := upstreamHostProblem(s.UpstreamHost); msg != "" {
			p.add(key+".upstream_host", "%s", msg)
		}
	}
	if !oneOf(s.UpstreamScheme, "http", "https") {
		p.add(key+".upstream_scheme", `%q is not "http" or "https"`, s.UpstreamScheme)
	}
	if !oneOf(s.Access, "public", "private") {
		p.add(key+".access", `%q is not "public" or "private"`, s.Access)
	}
	if s.Prefix != "" {
		if msg := objectKeyProblem(s.Prefix); msg != "" {
			p.add(key+".prefix", "%s", msg)
		} else if !strings.HasSuffix(s.Prefix, "/") {
			p.add(key+".prefix", `%q must end with "/" (write %q): without it "img" would also expose "img-private/"`, s.Prefix, s.Prefix+"/")
		}
	}
	checkMethods(p, key+".methods", s.Methods, "GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS")
	s.validateTLS(p, key, srv)

	for i, a := range s.Referer.Allow {
		if a == "" {
			p.add(indexKey(key+".referer.allow", i), "must not be empty")
		}
	}
	for i, d := range s.Referer.Deny {
		if d == "" {
			p.add(indexKey(key+".referer.deny", i), "must not be empty")
		}
	}

	if len(s.CORS) > 10 {
		p.add(key+".cors", "has %d rules; OSS allows at most 10", len(s.CORS))
	}
	for i := range s.CORS {
		s.CORS[i].validate(p, indexKey(key+".cors", i))
	}

	s.Disposition.validate(p, key+".disposition")
	s.Website.validate(p, key+".website")
	s.Limits.validate(p, key+".limits")
	s.Retry.validate(p, key+".retry")
	s.URLAuth.validate(p, key+".url_auth")
	validateOSSHeaders(p, key+".oss_headers", s.OSSHeaders)
	if s.Cache.Enabled && s.Cache.TTL <= 0 && s.Cache.StaleIfError <= 0 {
		p.add(key+".cache.ttl", "is 0 and so is stale_if_error: every request would ask OSS, so the cache would only cost")
	}
	s.Process.validate(p, key+".process")
}

// validateOSSHeaders lower-cases the oss_headers patterns in place and
// refuses those that could never work: headers the gateway's own signature
// sets, headers that are always refused, and x-oss-process, which
// [site.process] governs.
func validateOSSHeaders(p *problems, key string, list []string) {
	for i, h := range list {
		k := indexKey(key, i)
		h = strings.ToLower(h)
		list[i] = h
		name, wild := strings.CutSuffix(h, "*")
		switch {
		case !strings.HasPrefix(h, "x-oss-"):
			p.add(k, `%q is not an x-oss-* header; other headers are forwarded as they are`, h)
		case !isToken(name) || strings.Contains(name, "*"):
			p.add(k, `%q is not a header name ("*" may only end it, as a prefix match)`, h)
		case !wild && (name == "x-oss-date" || name == "x-oss-content-sha256" || name == "x-oss-security-token"):
			p.add(k, `%q is set by the gateway's own signature and never taken from a client`, h)
		case !wild && (strings.HasPrefix(name, "x-oss-copy-source") || name == "x-oss-object-acl" || name == "x-oss-acl"):
			p.add(k, `%q is always refused on private sites (it copies from, or opens, objects beyond the site's prefix)`, h)
		case !wild && (name == "x-oss-process" || name == "x-oss-async-process"):
			p.add(k, `%q is governed by [site.process] actions, not oss_headers`, h)
		}
	}
}

func (pr *Process) validate(p *problems, key string) {
	for i, a := range pr.Actions {
		k := indexKey(key+".actions", i)
		a = strings.ToLower(a)
		pr.Actions[i] = a
		typ, op, ok := strings.Cut(a, "/")
		switch {
		case a == "style":
		case !ok || typ == "" || op == "" || !isToken(typ) || !isToken(op) || strings.ContainsAny(a, ",|*"):
			p.add(k, `%q is not an operation such as "image/resize" (or "style")`, a)
		case typ == "sys" || strings.Contains(op, "saveas"):
			p.add(k, `%q writes objects with the gateway's credentials and is never allowed`, a)
		case typ == "style":
			p.add(k, `%q: write "style" to allow every style/NAME`, a)
		}
	}
}

// validateTLS checks tls, cert_file and key_file against each other, the
// site's domains and the HTTPS listener.
func (s *Site) validateTLS(p *problems, key string, srv *Server) {
	switch s.TLS {
	case "files":
		if s.CertFile == "" {
			p.addNear(key+".cert_file", key+".tls", `is required with tls = "files"`)
		}
		if s.KeyFile == "" {
			p.addNear(key+".key_file", key+".tls", `is required with tls = "files"`)
		}
	case "acme", "off":
		if s.CertFile != "" {
			p.add(key+".cert_file", `is set but tls = %q; it is used only with tls = "files"`, s.TLS)
		}
		if s.KeyFile != "" {
			p.add(key+".key_file", `is set but tls = %q; it is used only with tls = "files"`, s.TLS)
		}
	default:
		p.add(key+".tls", "%q is not one of acme, files, off", s.TLS)
		return
	}
	if s.TLS == "acme" && len(s.Domains) > 0 {
		allIPs := true
		for _, d := range s.Domains {
			if _, err := netip.ParseAddr(d); err != nil {
				allIPs = false
			}
		}
		if allIPs {
			p.addNear(key+".tls", key+".domains", `"acme" cannot work here: every domain of this site is an IP address, and ACME issues certificates for names only; use tls = "files" or "off"`)
		}
	}
}

// checkMethods upper-cases methods in place and checks them against allowed.
func checkMethods(p *problems, key string, methods []string, allowed ...string) {
	if len(methods) == 0 {
		p.add(key, "must list at least one method")
	}
	for i, m := range methods {
		methods[i] = strings.ToUpper(m)
		if !oneOf(methods[i], allowed...) {
			p.add(indexKey(key, i), "%q is not one of %s", m, strings.Join(allowed, ", "))
		}
	}
}

func (r *CORSRule) validate(p *problems, key string) {
	if len(r.AllowedOrigins) == 0 {
		p.add(key+".allowed_origins", `must list at least one origin ("*" for any)`)
	}
	for i, o := range r.AllowedOrigins {
		k := indexKey(key+".allowed_origins", i)
		switch {
		case o == "":
			p.add(k, "must not be empty")
		case strings.Count(o, "*") > 1:
			p.add(k, `%q has more than one "*"; OSS allows one per origin`, o)
		case strings.ContainsAny(o, " \t") || hasControl(o):
			p.add(k, "%q must not contain spaces or control characters", o)
		case o == "*" && r.AllowCredentials:
			p.addNear(k, key+".allow_credentials", `"*" with allow_credentials = true would let any web site read responses with your users' cookies; list the origins`)
		}
	}
	checkMethods(p, key+".allowed_methods", r.AllowedMethods, "GET", "PUT", "POST", "DELETE", "HEAD")
	for i, h := range r.AllowedHeaders {
		k := indexKey(key+".allowed_headers", i)
		switch {
		case strings.Count(h, "*") > 1:
			p.add(k, `%q has more than one "*"; OSS allows one per header`, h)
		case !isToken(h):
			p.add(k, "%q is not a header name (with at most one \"*\")", h)
		}
	}
	for i, h := range r.ExposeHeaders {
		k := indexKey(key+".expose_headers", i)
		switch {
		case strings.Contains(h, "*"):
			p.add(k, `%q: exposed headers are exact names; OSS allows no "*" here`, h)
		case !isToken(h):
			p.add(k, "%q is not a header name", h)
		}
	}
	if r.MaxAgeSeconds < 0 {
		p.add(key+".max_age_seconds", "must not be negative, not %d", r.MaxAgeSeconds)
	}
}

func (d *Disposition) validate(p *problems, key string) {
	if !oneOf(d.Mode, "auto", "inline", "attachment") {
		p.add(key+".mode", "%q is not one of auto, inline, attachment", d.Mode)
	}
	if d.DownloadParam != "" && !isName(d.DownloadParam, len(d.DownloadParam)) {
		p.add(key+".download_param", `%q must be letters, digits, "_" and "-" only ("" disables it)`, d.DownloadParam)
	}
}

func (w *Website) validate(p *problems, key string) {
	if w.SubdirType < 0 || w.SubdirType > 2 {
		p.add(key+".subdir_type", "%d is not 0, 1 or 2", w.SubdirType)
	}
	if w.ErrorStatus != 404 && w.ErrorStatus != 200 {
		p.add(key+".error_status", "%d is not 404 or 200", w.ErrorStatus)
	}
	if w.Index != "" {
		if msg := objectKeyProblem(w.Index); msg != "" {
			p.add(key+".index", "%s", msg)
		}
	}
	if w.ErrorDocument != "" {
		if msg := objectKeyProblem(w.ErrorDocument); msg != "" {
			p.add(key+".error_document", "%s", msg)
		}
	}
}

// validate checks the limits and resolves a burst of 0 to the rate rounded
// up (at least 1), so that the proxy reads the burst it must use.
func (l *Limits) validate(p *problems, key string) {
	for _, f := range []struct {
		name    string
		neg     bool
		zeroMsg string
	}{
		{"per_ip_rps", l.PerIPRPS < 0, "0 means unlimited"},
		{"per_ip_burst", l.PerIPBurst < 0, "0 means per_ip_rps"},
		{"site_rps", l.SiteRPS < 0, "0 means unlimited"},
		{"site_burst", l.SiteBurst < 0, "0 means site_rps"},
		{"per_conn_bytes_per_sec", l.PerConnBytesPerSec < 0, "0 means unlimited"},
	} {
		if f.neg {
			p.add(key+"."+f.name, "must not be negative (%s)", f.zeroMsg)
		}
	}
	l.PerIPBurst = resolveBurst(l.PerIPRPS, l.PerIPBurst)
	l.SiteBurst = resolveBurst(l.SiteRPS, l.SiteBurst)
	l.AllowIPNets = parseCIDRs(p, key+".allow_ips", l.AllowIPs)
}

// resolveBurst returns burst, or when it is 0 and the rate is limited, the
// rate rounded up and at least 1.
func resolveBurst(rps float64, burst int) int {
	if burst != 0 || rps <= 0 {
		return burst
	}
	b := math.Ceil(rps)
	if b > math.MaxInt32 {
		return math.MaxInt32
	}
	return max(int(b), 1)
}

func (r *Retry) validate(p *problems, key string) {
	if r.MaxAttempts < 1 || r.MaxAttempts > 10 {
		p.add(key+".max_attempts", "%d is not from 1 to 10 (1 = no retries)", r.MaxAttempts)
	}
	switch {
	case r.BaseDelay <= 0:
		p.add(key+".base_delay", "must be positive")
	case r.BaseDelay > r.MaxDelay:
		p.add(key+".base_delay", "%s is longer than max_delay (%s)", r.BaseDelay.D(), r.MaxDelay.D())
	}
	for i, st := range r.OnStatus {
		if st < 500 || st > 599 {
			p.add(indexKey(key+".on_status", i), "%d is not a 5xx status; only 500-599 are retried", st)
		}
	}
	if !(r.BudgetRatio >= 0 && r.BudgetRatio <= 1) {
		p.add(key+".budget_ratio", "%v is not from 0 to 1", r.BudgetRatio)
	}
}

func (u *URLAuth) validate(p *problems, key string) {
	switch {
	case u.KeyEnv == "" && u.Enabled:
		p.addNear(key+".key_env", key+".enabled", "is required when url_auth is enabled: the environment variable holding the key")
	case u.KeyEnv != "" && !isEnvName(u.KeyEnv):
		p.add(key+".key_env", `%q is not an environment variable name (letters, digits and "_", not starting with a digit)`, u.KeyEnv)
	}
	if u.Enabled && u.TTL <= 0 {
		p.add(key+".ttl", "must be positive when url_auth is enabled")
	}
}
