package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// siteLines is a valid site; in a document that starts with it, it takes
// lines 1-5 and whatever follows starts on line 6.
var siteLines = []string{
	`[[site]]`,
	`name = "a"`,
	`domains = ["a.example.com"]`,
	`bucket = "bucket-a"`,
	`region = "cn-hangzhou"`,
}

// withSite is a document of one valid site followed by lines.
func withSite(lines ...string) string {
	return strings.Join(append(append([]string{}, siteLines...), lines...), "\n") + "\n"
}

// before is a document of lines followed by one valid site.
func before(lines ...string) string {
	return strings.Join(append(append([]string{}, lines...), siteLines...), "\n") + "\n"
}

// secondSite is a document of the valid site followed by a second site
// (header on line 6) made of lines.
func secondSite(lines ...string) string {
	return withSite(append([]string{"[[site]]"}, lines...)...)
}

func TestValidationProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		doc  string
		key  string
		line int
		msg  string // substring of the message
	}{
		// Unknown keys, with their line.
		{"unknown top-level key", before(`bogus = 1`), "bogus", 1, "unknown key"},
		{"unknown top-level table", before(`[servr]`, `x = 1`), "servr", 1, `unknown key (did you mean "server"?)`},
		{"unknown key in server", before(`[server]`, `http_listn = ":80"`), "server.http_listn", 2, `did you mean "http_listen"?`},
		{"unknown key in site", withSite(`bukket = "x"`), "site[0].bukket", 6, `did you mean "bucket"?`},
		{"unknown key in referer", withSite(`[site.referer]`, `alow = []`), "site[0].referer.alow", 7, `did you mean "allow"?`},
		{"unknown key in second site", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`, `colour = "red"`), "site[1].colour", 11, "unknown key"},
		{"unknown key in inline table", withSite(`referer = { allow = ["x"], nope = true }`), "site[0].referer.nope", 6, "unknown key"},

		// Types and durations.
		{"string for bool", before(`[server]`, `redirect_http = "yes"`), "server.redirect_http", 2, "must be true or false, not a string"},
		{"float for int", before(`[server]`, `max_header_bytes = 1.5`), "server.max_header_bytes", 2, "must be an integer, not a float"},
		{"string for array", withSite(`methods = "GET"`), "site[0].methods", 6, "must be an array, not a string"},
		{"table for array of tables", withSite(`[site.cors]`), "site[0].cors", 6, "must be an array of tables, written [[site.cors]], not a table"},
		{"site as table", `[site]` + "\n", "site", 1, "must be an array of tables, written [[site]]"},
		{"bad duration", before(`[server]`, `idle_timeout = "2 minutes"`), "server.idle_timeout", 2, `"2 minutes" is not a duration`},
		{"negative duration", before(`[server]`, `shutdown_grace = "-5s"`), "server.shutdown_grace", 2, `"-5s": must not be negative`},
		{"integer duration", before(`[server]`, `write_timeout = 0`), "server.write_timeout", 2, `must be a duration string such as "30s", not an integer`},
		{"nan float", withSite(`[site.retry]`, `budget_ratio = nan`), "site[0].retry.budget_ratio", 7, "must be a finite number"},

		// [server]
		{"bad listen", before(`[server]`, `http_listen = "80"`), "server.http_listen", 2, `"80" is not an address of the form "host:port" or ":port"`},
		{"bad listen port", before(`[server]`, `https_listen = ":99999"`), "server.https_listen", 2, "port must be a number from 0 to 65535"},
		{"bad listen host", before(`[server]`, `https_listen = "bad_host:443"`), "server.https_listen", 2, "neither an IP address nor a host name"},
		{"no listener", before(`[server]`, `http_listen = ""`, `https_listen = ""`) + "tls = \"off\"\n", "server.https_listen", 3, "at least one listener is needed"},
		{"same listener", before(`[server]`, `http_listen = ":8080"`, `https_listen = ":8080"`), "server.https_listen", 3, "one address cannot serve both"},
		{"max_header_bytes", before(`[server]`, `max_header_bytes = 0`), "server.max_header_bytes", 2, "must be positive"},
		{"upstream_transport", before(`[server]`, `upstream_transport = "fasthttp"`), "server.upstream_transport", 2, `"fasthttp" is not "native" or "stdlib"`},
		{"trusted_proxies", before(`[server]`, `trusted_proxies = ["10.0.0.0/8",`, `  "10.0.0.300"]`), "server.trusted_proxies[1]", 3, `"10.0.0.300" is not a CIDR`},
		{"proxy_protocol without trusted", before(`[server]`, `proxy_protocol = true`), "server.proxy_protocol", 2, "trusted_proxies is empty"},

		// [admin]
		{"admin allow", before(`[admin]`, `allow = ["10.0.0.0/33"]`), "admin.allow[0]", 2, `"10.0.0.0/33" is not a CIDR`},
		{"admin allow zone", before(`[admin]`, `allow = ["fe80::1%eth0"]`), "admin.allow[0]", 2, "is not a CIDR"},
		{"admin listen", before(`[admin]`, `listen = "localhost"`), "admin.listen", 2, "is not an address"},
		{"admin listen clash", before(`[admin]`, `listen = ":443"`), "admin.listen", 2, "needs its own address"},

		// [log]
		{"log format", before(`[log]`, `format = "xml"`), "log.format", 2, `"xml" is not "json" or "text"`},
		{"log level", before(`[log]`, `level = "trace"`), "log.level", 2, `"trace" is not one of debug, info, warn, error`},
		{"log sample zero", before(`[log]`, `access_log_sample = 0.0`), "log.access_log_sample", 2, "is not in (0, 1]"},
		{"log sample above one", before(`[log]`, `access_log_sample = 1.5`), "log.access_log_sample", 2, "is not in (0, 1]"},

		// [credentials]
		{"credentials source", before(`[credentials]`, `source = "vault"`), "credentials.source", 2, `"vault" is not one of env, ecs_ram_role, process, static`},
		{"process required", before(`[credentials]`, `source = "process"`), "credentials.process", 2, "is required"},
		{"static id required", before(`[credentials]`, `source = "static"`, `access_key_secret = "s"`), "credentials.access_key_id", 2, `is required with source = "static"`},
		{"static secret required", before(`[credentials]`, `source = "static"`, `access_key_id = "i"`), "credentials.access_key_secret", 2, `is required with source = "static"`},
		{"key with env", before(`[credentials]`, `access_key_id = "LTAIxxxx"`), "credentials.access_key_id", 2, "leak risk"},
		{"token with ram role", before(`[credentials]`, `source = "ecs_ram_role"`, `security_token = "t"`), "credentials.security_token", 3, `source = "ecs_ram_role" does not use it`},

		// [tls]
		{"min_version", before(`[tls]`, `min_version = "1.1"`), "tls.min_version", 2, `"1.1" is not "1.2" or "1.3"`},
		{"no challenges", before(`[tls]`, `acme_challenges = []`), "tls.acme_challenges", 2, "at least one"},
		{"bad challenge", before(`[tls]`, `acme_challenges = ["http-01", "dns-01"]`), "tls.acme_challenges[1]", 2, `"dns-01" is not http-01 or tls-alpn-01`},
		{"empty storage", before(`[tls]`, `storage = ""`), "tls.storage", 2, "must not be empty"},
		{"relative storage", before(`[tls]`, `storage = "certs"`), "tls.storage", 2, "neither an absolute path"},
		{"oss storage bucket", before(`[tls]`, `storage = "oss://Certs/x"`), "tls.storage", 2, "not a valid OSS bucket name"},
		{"oss storage prefix", before(`[tls]`, `storage = "oss://certs/../x"`), "tls.storage", 2, `must not contain ".."`},
		{"acme_ca", before(`[tls]`, `acme_ca = "ftp://ca.example.com/dir"`), "tls.acme_ca", 2, "is not an ACME directory URL"},
		{"acme_email", before(`[tls]`, `acme_email = "ops"`), "tls.acme_email", 2, "is not an email address"},
		{"hsts control char", before(`[tls]`, `hsts = "max-age=1\r\nX-Evil: 1"`), "tls.hsts", 2, "control characters"},

		// [[site]] basics
		{"no site", "[server]\n", "site", 0, "at least one [[site]] is required"},
		{"empty site list", "site = []\n", "site", 1, "at least one [[site]] is required"},
		{"name required", secondSite(`domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].name", 6, "is required"},
		{"name syntax", secondSite(`name = "my site"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].name", 7, "metric label"},
		{"name too long", secondSite(`name = "`+strings.Repeat("n", 65)+`"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].name", 7, "1-64 chars"},
		{"name unique", secondSite(`name = "a"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].name", 7, `"a" is already the name of site[0]`},

		// domains
		{"no domains", secondSite(`name = "b"`, `domains = []`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains", 8, "at least one domain"},
		{"missing domains", secondSite(`name = "b"`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains", 6, "at least one domain"},
		{"domain with port", secondSite(`name = "b"`, `domains = ["b.example.com",`, `  "c.example.com:8443"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[1]", 9, `remove the port "8443"`},
		{"ipv6 with brackets", secondSite(`name = "b"`, `domains = ["[2001:db8::1]"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`, `tls = "off"`), "site[1].domains[0]", 8, "without brackets"},
		{"bad label", secondSite(`name = "b"`, `domains = ["-b.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "not a valid DNS name"},
		{"label too long", secondSite(`name = "b"`, `domains = ["`+strings.Repeat("b", 64)+`.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "labels of 1-63 chars"},
		{"name too long total", secondSite(`name = "b"`, `domains = ["`+strings.Repeat("b.", 127)+`com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "longer than 253"},
		{"empty label", secondSite(`name = "b"`, `domains = ["b..example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "not a valid DNS name"},
		{"unicode domain", secondSite(`name = "b"`, `domains = ["bücher.example"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "punycode"},
		{"bad ip", secondSite(`name = "b"`, `domains = ["203.0.113.300"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, "neither a valid IP address nor a DNS name"},
		{"duplicate domain across sites", secondSite(`name = "b"`, `domains = ["A.example.com."]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[0]", 8, `"a.example.com" is a domain of both site "a" (site[0].domains[0]) and site "b"`},
		{"duplicate domain within site", secondSite(`name = "b"`, `domains = ["b.example.com", "B.example.com"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].domains[1]", 8, "listed twice in this site (also site[1].domains[0])"},

		// bucket, region, endpoints
		{"bucket syntax", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "My_Bucket"`, `region = "cn-hangzhou"`), "site[1].bucket", 9, `"My_Bucket" is not a valid OSS bucket name (3-63 chars of a-z, 0-9 and "-", starting and ending with a letter or digit)`},
		{"bucket too short", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "ab"`, `region = "cn-hangzhou"`), "site[1].bucket", 9, "not a valid OSS bucket name"},
		{"bucket trailing hyphen", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "bucket-"`, `region = "cn-hangzhou"`), "site[1].bucket", 9, "not a valid OSS bucket name"},
		{"bucket required", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `region = "cn-hangzhou"`), "site[1].bucket", 6, "is required"},
		{"region required", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`), "site[1].region", 6, "is required"},
		{"region syntax", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "CN-Hangzhou"`), "site[1].region", 10, `"CN-Hangzhou" is not an OSS region id`},
		{"region no dash", secondSite(`name = "b"`, `domains = ["b.example.com"]`, `bucket = "bucket-b"`, `region = "hangzhou"`), "site[1].region", 10, `"hangzhou" is not an OSS region id`},
		{"endpoint keyword", withSite(`endpoint = "fast"`), "site[0].endpoint", 6, `"fast" is not one of public, internal, accelerate, dualstack`},
		{"endpoint path", withSite(`endpoint = "https://oss-cn-hangzhou.aliyuncs.com/bucket"`), "site[0].endpoint", 6, "must not have a path"},
		{"endpoint query", withSite(`endpoint = "https://oss-cn-hangzhou.aliyuncs.com/?x=1"`), "site[0].endpoint", 6, "must not have a query"},
		{"endpoint userinfo", withSite(`endpoint = "https://u:p@oss-cn-hangzhou.aliyuncs.com"`), "site[0].endpoint", 6, "user name or password"},
		{"endpoint scheme", withSite(`endpoint = "ftp://oss-cn-hangzhou.aliyuncs.com"`), "site[0].endpoint", 6, "scheme must be http or https"},
		{"endpoint no host", withSite(`endpoint = "https://"`), "site[0].endpoint", 6, "must name a host"},
		{"endpoint port", withSite(`endpoint = "http://127.0.0.1:0"`), "site[0].endpoint", 6, "port must be a number"},
		{"endpoint empty", withSite(`endpoint = ""`), "site[0].endpoint", 6, `"" is not one of`},
		{"fallback", withSite(`fallback_endpoint = "backup"`), "site[0].fallback_endpoint", 6, `"backup" is not one of`},
		{"upstream_host scheme", withSite(`upstream_host = "https://img.example.com"`), "site[0].upstream_host", 6, "without a scheme"},
		{"upstream_host path", withSite(`upstream_host = "img.example.com/x"`), "site[0].upstream_host", 6, "without path"},
		{"upstream_host port", withSite(`upstream_host = "img.example.com:http"`), "site[0].upstream_host", 6, "port must be a number"},
		{"upstream_host ipv6", withSite(`upstream_host = "2001:db8::1"`), "site[0].upstream_host", 6, "in brackets"},
		{"upstream_scheme", withSite(`upstream_scheme = "ftp"`), "site[0].upstream_scheme", 6, `"ftp" is not "http" or "https"`},
		{"access", withSite(`access = "open"`), "site[0].access", 6, `"open" is not "public" or "private"`},

		// prefix
		{"prefix slash", withSite(`prefix = "/img/"`), "site[0].prefix", 6, `must not start with "/"`},
		{"prefix dotdot", withSite(`prefix = "img/../x/"`), "site[0].prefix", 6, `must not contain ".."`},
		{"prefix dotdot in name", withSite(`prefix = "img..x/"`), "site[0].prefix", 6, `must not contain ".."`},
		{"prefix dot segment", withSite(`prefix = "img/./x/"`), "site[0].prefix", 6, `"." segment`},
		{"prefix backslash", withSite(`prefix = 'img\x/'`), "site[0].prefix", 6, `must not contain "\"`},
		{"prefix nul", withSite(`prefix = "img\u0000/"`), "site[0].prefix", 6, "NUL"},
		{"prefix double slash", withSite(`prefix = "img//x/"`), "site[0].prefix", 6, `must not contain "//"`},
		{"prefix trailing slash", withSite(`prefix = "img"`), "site[0].prefix", 6, `"img" must end with "/" (write "img/")`},

		// methods, tls
		{"method unknown", withSite(`methods = ["GET", "PATCH"]`), "site[0].methods[1]", 6, `"PATCH" is not one of GET, HEAD, PUT, POST, DELETE, OPTIONS`},
		{"methods empty", withSite(`methods = []`), "site[0].methods", 6, "at least one method"},
		{"tls value", withSite(`tls = "manual"`), "site[0].tls", 6, `"manual" is not one of acme, files, off`},
		{"tls files cert", withSite(`tls = "files"`, `key_file = "/k.pem"`), "site[0].cert_file", 6, `is required with tls = "files"`},
		{"tls files key", withSite(`tls = "files"`, `cert_file = "/c.pem"`), "site[0].key_file", 6, `is required with tls = "files"`},
		{"cert without files", withSite(`cert_file = "/c.pem"`), "site[0].cert_file", 6, `is set but tls = "acme"`},
		{"key without files", withSite(`tls = "off"`, `key_file = "/k.pem"`), "site[0].key_file", 7, `is set but tls = "off"`},
		{"acme for ips", secondSite(`name = "b"`, `domains = ["203.0.113.9", "2001:db8::9"]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`), "site[1].tls", 8, "every domain of this site is an IP address"},

		// referer
		{"referer allow empty", withSite(`[site.referer]`, `allow = ["https://a.example.com/*", ""]`), "site[0].referer.allow[1]", 7, "must not be empty"},
		{"referer deny empty", withSite(`[site.referer]`, `deny = [""]`), "site[0].referer.deny[0]", 7, "must not be empty"},

		// cors
		{"cors too many", withSite(strings.Repeat("[[site.cors]]\nallowed_origins = [\"*\"]\n", 11)), "site[0].cors", 6, "has 11 rules; OSS allows at most 10"},
		{"cors no origin", withSite(`[[site.cors]]`, `max_age_seconds = 5`), "site[0].cors[0].allowed_origins", 6, "at least one origin"},
		{"cors two stars", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `[[site.cors]]`, `allowed_origins = ["https://*.*.example.com"]`), "site[0].cors[1].allowed_origins[0]", 9, `more than one "*"`},
		{"cors header stars", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `allowed_headers = ["x-*-*"]`), "site[0].cors[0].allowed_headers[0]", 8, `more than one "*"`},
		{"cors header syntax", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `allowed_headers = ["x y"]`), "site[0].cors[0].allowed_headers[0]", 8, "is not a header name"},
		{"cors method", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `allowed_methods = ["GET", "OPTIONS"]`), "site[0].cors[0].allowed_methods[1]", 8, `"OPTIONS" is not one of GET, PUT, POST, DELETE, HEAD`},
		{"cors max age", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `max_age_seconds = -1`), "site[0].cors[0].max_age_seconds", 8, "must not be negative"},
		{"cors expose star", withSite(`[[site.cors]]`, `allowed_origins = ["*"]`, `expose_headers = ["x-oss-*"]`), "site[0].cors[0].expose_headers[0]", 8, `allows no "*"`},
		{"cors inline array", withSite(`cors = [{ allowed_origins = ["*"] },`, `  { allowed_origins = [] }]`), "site[0].cors[1].allowed_origins", 7, "at least one origin"},

		// disposition, website
		{"disposition mode", withSite(`[site.disposition]`, `mode = "download"`), "site[0].disposition.mode", 7, `"download" is not one of auto, inline, attachment`},
		{"download_param", withSite(`[site.disposition]`, `download_param = "dl!"`), "site[0].disposition.download_param", 7, `"dl!" must be letters, digits`},
		{"subdir_type", withSite(`[site.website]`, `subdir_type = 3`), "site[0].website.subdir_type", 7, "3 is not 0, 1 or 2"},
		{"error_status", withSite(`[site.website]`, `error_status = 403`), "site[0].website.error_status", 7, "403 is not 404 or 200"},
		{"index slash", withSite(`[site.website]`, `index = "/index.html"`), "site[0].website.index", 7, `must not start with "/"`},
		{"error_document slash", withSite(`[site.website]`, `error_document = "/404.html"`), "site[0].website.error_document", 7, `must not start with "/"`},

		// limits
		{"per_ip_rps", withSite(`[site.limits]`, `per_ip_rps = -1`), "site[0].limits.per_ip_rps", 7, "must not be negative"},
		{"per_ip_burst", withSite(`[site.limits]`, `per_ip_burst = -1`), "site[0].limits.per_ip_burst", 7, "must not be negative"},
		{"site_rps", withSite(`[site.limits]`, `site_rps = -0.5`), "site[0].limits.site_rps", 7, "must not be negative"},
		{"site_burst", withSite(`[site.limits]`, `site_burst = -2`), "site[0].limits.site_burst", 7, "must not be negative"},
		{"per_conn_bytes", withSite(`[site.limits]`, `per_conn_bytes_per_sec = -1`), "site[0].limits.per_conn_bytes_per_sec", 7, "must not be negative"},
		{"allow_ips", withSite(`[site.limits]`, `allow_ips = [`, `  "192.0.2.0/24",`, `  "not-an-ip",`, `]`), "site[0].limits.allow_ips[1]", 9, `"not-an-ip" is not a CIDR`},

		// retry
		{"max_attempts 0", withSite(`[site.retry]`, `max_attempts = 0`), "site[0].retry.max_attempts", 7, "0 is not from 1 to 10"},
		{"max_attempts 11", withSite(`[site.retry]`, `max_attempts = 11`), "site[0].retry.max_attempts", 7, "11 is not from 1 to 10"},
		{"base_delay zero", withSite(`[site.retry]`, `base_delay = "0s"`), "site[0].retry.base_delay", 7, "must be positive"},
		{"base_delay over max", withSite(`[site.retry]`, `base_delay = "3s"`), "site[0].retry.base_delay", 7, "3s is longer than max_delay (2s)"},
		{"on_status", withSite(`[site.retry]`, `on_status = [503, 429]`), "site[0].retry.on_status[1]", 7, "429 is not a 5xx status"},
		{"budget_ratio", withSite(`[site.retry]`, `budget_ratio = 1.5`), "site[0].retry.budget_ratio", 7, "1.5 is not from 0 to 1"},

		// url_auth
		{"key_env required", withSite(`[site.url_auth]`, `enabled = true`), "site[0].url_auth.key_env", 7, "is required when url_auth is enabled"},
		{"key_env syntax", withSite(`[site.url_auth]`, `enabled = true`, `key_env = "1-KEY"`), "site[0].url_auth.key_env", 8, "is not an environment variable name"},
		{"ttl", withSite(`[site.url_auth]`, `enabled = true`, `key_env = "K"`, `ttl = "0s"`), "site[0].url_auth.ttl", 9, "must be positive"},

		// cache
		{"cache path relative", before(`[cache]`, `path = "cache"`), "cache.path", 2, "absolute path"},
		{"cache size", before(`[cache]`, `path = "/var/cache/gw"`, `max_size = "lots"`), "cache.max_size", 3, "is not a size"},
		{"cache object over size", before(`[cache]`, `path = "/var/cache/gw"`, `max_size = "1MiB"`, `max_object_size = "2MiB"`), "cache.max_object_size", 4, "larger than cache.max_size"},
		{"site cache without path", withSite(`[site.cache]`, `enabled = true`), "site[0].cache.enabled", 7, "[cache] path is empty"},

		// CORS credentials
		{"credentials with any origin", withSite(`[[site.cors]]`, `allowed_origins = ["https://a.example.com", "*"]`, `allow_credentials = true`), "site[0].cors[0].allowed_origins[1]", 7, "any web site"},

		// oss_headers and [site.process]
		{"oss_headers not x-oss", withSite(`oss_headers = ["content-type"]`), "site[0].oss_headers[0]", 6, "is not an x-oss-* header"},
		{"oss_headers inner star", withSite(`oss_headers = ["x-oss-*-meta"]`), "site[0].oss_headers[0]", 6, `"*" may only end it`},
		{"oss_headers signing", withSite(`oss_headers = ["X-OSS-Date"]`), "site[0].oss_headers[0]", 6, "gateway's own signature"},
		{"oss_headers copy source", withSite(`oss_headers = ["x-oss-copy-source-range"]`), "site[0].oss_headers[0]", 6, "always refused"},
		{"oss_headers acl", withSite(`oss_headers = ["x-oss-object-acl"]`), "site[0].oss_headers[0]", 6, "always refused"},
		{"oss_headers process", withSite(`oss_headers = ["x-oss-process"]`), "site[0].oss_headers[0]", 6, "[site.process]"},
		{"process saveas", withSite(`[site.process]`, `actions = ["image/resize", "sys/saveas"]`), "site[0].process.actions[1]", 7, "never allowed"},
		{"process bad name", withSite(`[site.process]`, `actions = ["resize"]`), "site[0].process.actions[0]", 7, "is not an operation"},
		{"process style name", withSite(`[site.process]`, `actions = ["style/thumb"]`), "site[0].process.actions[0]", 7, `write "style"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gateway.toml", []byte(tc.doc))
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse error = %v, want *Error\n%s", err, tc.doc)
			}
			if len(e.Problems) != 1 {
				t.Fatalf("got %d problems, want 1:\n%v\n--- document:\n%s", len(e.Problems), err, tc.doc)
			}
			p := e.Problems[0]
			if p.Key != tc.key || p.Line != tc.line || !strings.Contains(p.Msg, tc.msg) {
				t.Errorf("problem = %q\nwant key %q, line %d, message containing %q", p.String(), tc.key, tc.line, tc.msg)
			}
			prefix := "gateway.toml"
			if tc.line > 0 {
				prefix += fmt.Sprintf(":%d", tc.line)
			}
			if want := prefix + ": " + tc.key + ": "; !strings.HasPrefix(p.String(), want) {
				t.Errorf("String() = %q, want prefix %q", p.String(), want)
			}
		})
	}
}

// TestWildcardDomain is separate from the table: the line of the domain in
// the array is not the line of the site header.
func TestWildcardDomain(t *testing.T) {
	doc := withSite(`[[site]]`, `name = "b"`, `domains = [`, `  "b.example.com",`, `  "*.example.com",`, `]`, `bucket = "bucket-b"`, `region = "cn-hangzhou"`)
	_, err := Parse("gateway.toml", []byte(doc))
	want := `gateway.toml:10: site[1].domains[1]: "*.example.com": wildcards are not allowed; OSS custom domains are exact names, so list each name`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestValidSiteVariants are legal configurations near the rules above.
func TestValidSiteVariants(t *testing.T) {
	for name, doc := range map[string]string{
		"mixed ip and name with acme": strings.Replace(withSite(), `"a.example.com"`, `"a.example.com", "203.0.113.9"`, 1),
		"ip only with files":          strings.Replace(withSite(`tls = "files"`, `cert_file = "/c.pem"`, `key_file = "/k.pem"`), `"a.example.com"`, `"203.0.113.9"`, 1),
		"url endpoint":                withSite(`endpoint = "http://127.0.0.1:9000"`, `fallback_endpoint = "https://oss-cn-hangzhou.aliyuncs.com/"`, `upstream_host = "[2001:db8::1]:8080"`),
		"static credentials":          before(`[credentials]`, `source = "static"`, `access_key_id = "id"`, `access_key_secret = "s"`, `security_token = "t"`),
		"process":                     before(`[credentials]`, `source = "process"`, `process = "/usr/bin/creds"`),
		"oss storage":                 before(`[tls]`, `storage = "oss://certs-bucket/gateway/"`, `min_version = "1.3"`, `acme_challenges = ["tls-alpn-01"]`, `hsts = ""`),
		"http only":                   before(`[server]`, `https_listen = ""`) + "tls = \"off\"\n",
		"empty ttl when disabled":     withSite(`[site.url_auth]`, `ttl = "0s"`),
		"private writes":              withSite(`access = "private"`, `methods = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]`, `prefix = "a/b/"`),
		"website":                     withSite(`[site.website]`, `index = "index.html"`, `support_subdir = true`, `subdir_type = 2`, `error_document = "errors/404.html"`, `error_status = 200`),
		"retry edges":                 withSite(`[site.retry]`, `max_attempts = 10`, `base_delay = "2s"`, `on_status = [500, 599]`, `budget_ratio = 0`),
		"localhost listen":            before(`[admin]`, `listen = "localhost:9090"`, `allow = []`),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Parse("gateway.toml", []byte(doc)); err != nil {
				t.Errorf("unexpected problems:\n%v\n--- document:\n%s", err, doc)
			}
		})
	}
}

func TestAllProblemsReported(t *testing.T) {
	doc := `[server]
http_listen = "nope"

[log]
level = "loud"

[[site]]
name = "a"
domains = ["a.example.com"]
bucket = "My_Bucket"
region = "cn-hangzhou"
`
	_, err := Parse("gateway.toml", []byte(doc))
	want := strings.Join([]string{
		`gateway.toml:2: server.http_listen: "nope" is not an address of the form "host:port" or ":port"`,
		`gateway.toml:5: log.level: "loud" is not one of debug, info, warn, error`,
		`gateway.toml:10: site[0].bucket: "My_Bucket" is not a valid OSS bucket name (3-63 chars of a-z, 0-9 and "-", starting and ending with a letter or digit)`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}

// TestTypeErrorIsOneProblem: a value that cannot be decoded is reported once,
// not again by the validation of the default it leaves behind.
func TestTypeErrorIsOneProblem(t *testing.T) {
	doc := secondSite(`name = "b"`, `domains = "b.example.com"`, `bucket = 7`, `region = "cn-hangzhou"`, `[[site.cors]]`, `allowed_origins = "*"`)
	_, err := Parse("gateway.toml", []byte(doc))
	want := strings.Join([]string{
		`gateway.toml:8: site[1].domains: must be an array, not a string`,
		`gateway.toml:9: site[1].bucket: must be a string, not an integer`,
		`gateway.toml:12: site[1].cors[0].allowed_origins: must be an array, not a string`,
	}, "\n")
	if err == nil || err.Error() != want {
		t.Errorf("err =\n%v\nwant\n%s", err, want)
	}
}

func TestSyntaxError(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		msg       string
	}{
		{"missing value", "[server]\nhttp_listen = \n", 2, "invalid TOML at column "},
		{"unclosed table", "[server]\nhttp_listen = \":80\"\n[log\nlevel = \"info\"\n", 3, "invalid TOML at column "},
		{"duplicate key", withSite(`name = "b"`), 6, "already defined"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("gateway.toml", []byte(tc.doc))
			var e *Error
			if !errors.As(err, &e) || len(e.Problems) != 1 {
				t.Fatalf("err = %v, want one problem", err)
			}
			p := e.Problems[0]
			if p.Line != tc.line || p.Key != "" || !strings.Contains(p.Msg, tc.msg) || strings.Contains(p.Msg, "\n") {
				t.Errorf("problem = %q, want line %d and a one-line message containing %q", p.String(), tc.line, tc.msg)
			}
			if want := fmt.Sprintf("gateway.toml:%d: invalid TOML at column ", tc.line); !strings.HasPrefix(p.String(), want) {
				t.Errorf("String() = %q, want prefix %q", p.String(), want)
			}
		})
	}
}
