// Package config loads, defaults and validates the gateway's TOML file.
//
// The schema is the gateway's external contract (README, docs/): every key there has a
// field here, and every field here is a key there. Load returns either a
// Config that later packages can use without re-checking anything, or an
// error listing every problem found, one line each.
package config

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Config is a whole, validated gateway configuration.
type Config struct {
	// Path is the file the config was loaded from; error lines name it.
	Path string `toml:"-"`

	Server      Server      `toml:"server"`
	Admin       Admin       `toml:"admin"`
	Log         Log         `toml:"log"`
	Credentials Credentials `toml:"credentials"`
	TLS         TLS         `toml:"tls"`
	Cache       Cache       `toml:"cache"`
	Sites       []Site      `toml:"site"`
}

// Cache is the object cache the sites that enable it share: a disk tier
// that survives restarts and a memory tier for the hot objects.
type Cache struct {
	Path          string `toml:"path"` // "" = no cache at all
	MaxSize       Size   `toml:"max_size"`
	Memory        Size   `toml:"memory"`
	MaxObjectSize Size   `toml:"max_object_size"`
}

// SiteCache is a site's use of the object cache.
type SiteCache struct {
	Enabled      bool     `toml:"enabled"`
	TTL          Duration `toml:"ttl"`
	StaleIfError Duration `toml:"stale_if_error"`
}

// Server holds the client-facing listeners and the timeouts that bound them.
type Server struct {
	HTTPListen            string   `toml:"http_listen"`
	HTTPSListen           string   `toml:"https_listen"`
	RedirectHTTP          bool     `toml:"redirect_http"`
	ReadHeaderTimeout     Duration `toml:"read_header_timeout"`
	IdleTimeout           Duration `toml:"idle_timeout"`
	WriteTimeout          Duration `toml:"write_timeout"`
	MaxHeaderBytes        int      `toml:"max_header_bytes"`
	ShutdownGrace         Duration `toml:"shutdown_grace"`
	ShutdownDelay         Duration `toml:"shutdown_delay"`
	UpstreamDialTimeout   Duration `toml:"upstream_dial_timeout"`
	UpstreamHeaderTimeout Duration `toml:"upstream_header_timeout"`
	TrustedProxies        []string `toml:"trusted_proxies"`
	ProxyProtocol         bool     `toml:"proxy_protocol"`
	// UpstreamTransport picks the HTTP client to OSS: "native" (the
	// gateway's own HTTP/1.1 client) or "stdlib" (net/http's Transport,
	// the reference the native one is tested against).
	UpstreamTransport string `toml:"upstream_transport"`

	// TrustedProxyNets is TrustedProxies parsed (a bare IP becomes a /32 or /128).
	TrustedProxyNets []netip.Prefix `toml:"-"`
}

// Admin is the operator-only listener for metrics, health and pprof.
type Admin struct {
	Listen string   `toml:"listen"`
	Allow  []string `toml:"allow"`

	// AllowNets is Allow parsed.
	AllowNets []netip.Prefix `toml:"-"`
}

// Log selects the log format and whether each request gets an access line.
type Log struct {
	Format    string `toml:"format"` // json | text
	Level     string `toml:"level"`  // debug | info | warn | error
	AccessLog bool   `toml:"access_log"`
	// AccessLogSample is the share of successful requests (status < 400)
	// logged; errors and refusals are always logged.
	AccessLogSample float64 `toml:"access_log_sample"`
}

// Credentials names the official SDK credentials provider to sign with.
type Credentials struct {
	Source          string `toml:"source"` // env | ecs_ram_role | process | static
	RAMRole         string `toml:"ram_role"`
	Process         string `toml:"process"`
	AccessKeyID     string `toml:"access_key_id"`
	AccessKeySecret string `toml:"access_key_secret"`
	SecurityToken   string `toml:"security_token"`
}

// TLS configures certificate management for sites with tls = "acme" or "files".
type TLS struct {
	ACMEEmail      string   `toml:"acme_email"`
	ACMECA         string   `toml:"acme_ca"`
	ACMECARoot     string   `toml:"acme_ca_root"`
	Storage        string   `toml:"storage"`
	MinVersion     string   `toml:"min_version"` // "1.2" | "1.3"
	HSTS           string   `toml:"hsts"`
	ACMEChallenges []string `toml:"acme_challenges"`
}

// Site maps a set of client-facing domains to one bucket (or one prefix of it).
type Site struct {
	Name             string   `toml:"name"`
	Domains          []string `toml:"domains"`
	Bucket           string   `toml:"bucket"`
	Region           string   `toml:"region"`
	Endpoint         string   `toml:"endpoint"`
	FallbackEndpoint string   `toml:"fallback_endpoint"`
	UpstreamHost     string   `toml:"upstream_host"`
	UpstreamScheme   string   `toml:"upstream_scheme"`
	Access           string   `toml:"access"` // public | private
	Prefix           string   `toml:"prefix"`
	Methods          []string `toml:"methods"`
	TLS              string   `toml:"tls"` // acme | files | off
	CertFile         string   `toml:"cert_file"`
	KeyFile          string   `toml:"key_file"`
	CORSVaryOrigin   bool     `toml:"cors_vary_origin"`
	// PathStyle drops a first path segment equal to Bucket, so SDKs that
	// address the fixed IP path-style ("/BUCKET/KEY") reach KEY.
	PathStyle bool `toml:"path_style"`
	// OSSHeaders are the client x-oss-* request headers a private site
	// forwards (and so signs with the gateway's credentials); "*" ends a
	// prefix pattern. Everything else x-oss-* is dropped.
	OSSHeaders []string `toml:"oss_headers"`

	Referer     Referer     `toml:"referer"`
	CORS        []CORSRule  `toml:"cors"`
	Disposition Disposition `toml:"disposition"`
	Website     Website     `toml:"website"`
	Limits      Limits      `toml:"limits"`
	Retry       Retry       `toml:"retry"`
	URLAuth     URLAuth     `toml:"url_auth"`
	Process     Process     `toml:"process"`
	Cache       SiteCache   `toml:"cache"`
}

// Process is what x-oss-process may ask OSS to do on a private site: each
// operation of a chain must be listed, since OSS runs it with the
// gateway's credentials. Operations that write (sys/saveas) are never
// allowed.
type Process struct {
	// Actions are "image/resize"-style operation names; "style" allows
	// style/NAME (styles are the bucket owner's own).
	Actions []string `toml:"actions"`
}

// Referer is OSS hotlink protection (PutBucketReferer).
type Referer struct {
	AllowEmpty         bool     `toml:"allow_empty"`
	AllowTruncateQuery bool     `toml:"allow_truncate_query"`
	TruncatePath       bool     `toml:"truncate_path"`
	Allow              []string `toml:"allow"`
	Deny               []string `toml:"deny"`
}

// CORSRule is one OSS CORSRule (PutBucketCors); the first matching rule wins.
type CORSRule struct {
	AllowedOrigins []string `toml:"allowed_origins"`
	AllowedMethods []string `toml:"allowed_methods"`
	AllowedHeaders []string `toml:"allowed_headers"`
	ExposeHeaders  []string `toml:"expose_headers"`
	MaxAgeSeconds  int      `toml:"max_age_seconds"`
	// AllowCredentials goes beyond OSS: Access-Control-Allow-Credentials:
	// true, for pages that fetch with cookies or HTTP auth. Never with
	// allowed_origins = ["*"].
	AllowCredentials bool `toml:"allow_credentials"`
}

// Disposition decides whether objects preview in the browser or download.
type Disposition struct {
	Mode           string `toml:"mode"` // auto | inline | attachment
	DownloadParam  string `toml:"download_param"`
	FixContentType bool   `toml:"fix_content_type"`
}

// Website is OSS static website hosting (PutBucketWebsite).
type Website struct {
	Index         string `toml:"index"`
	SupportSubdir bool   `toml:"support_subdir"`
	SubdirType    int    `toml:"subdir_type"` // 0 | 1 | 2
	ErrorDocument string `toml:"error_document"`
	ErrorStatus   int    `toml:"error_status"` // 404 | 200
}

// Limits are per-site admission controls.
type Limits struct {
	PerIPRPS           float64  `toml:"per_ip_rps"`
	PerIPBurst         int      `toml:"per_ip_burst"`
	SiteRPS            float64  `toml:"site_rps"`
	SiteBurst          int      `toml:"site_burst"`
	PerConnBytesPerSec int64    `toml:"per_conn_bytes_per_sec"`
	AllowIPs           []string `toml:"allow_ips"`

	// AllowIPNets is AllowIPs parsed.
	AllowIPNets []netip.Prefix `toml:"-"`
}

// Retry bounds how the gateway retries idempotent requests against OSS.
type Retry struct {
	MaxAttempts int      `toml:"max_attempts"`
	BaseDelay   Duration `toml:"base_delay"`
	MaxDelay    Duration `toml:"max_delay"`
	OnStatus    []int    `toml:"on_status"`
	BudgetRatio float64  `toml:"budget_ratio"`
}

// URLAuth is Alibaba Cloud CDN type A URL authentication.
type URLAuth struct {
	Enabled bool     `toml:"enabled"`
	KeyEnv  string   `toml:"key_env"`
	TTL     Duration `toml:"ttl"`
}

// Size is a number of bytes written in the file as "10GiB", "256MiB",
// "512KiB", "1GB" or a plain number of bytes.
type Size int64

// UnmarshalText parses a size; negative sizes are refused.
func (s *Size) UnmarshalText(b []byte) error {
	t := strings.TrimSpace(string(b))
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(n), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return errBadSize
	}
	*s = Size(n * mult)
	return nil
}

// MarshalText writes s in the largest binary unit that divides it.
func (s Size) MarshalText() ([]byte, error) {
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if s != 0 && int64(s)%u.mult == 0 {
			return []byte(strconv.FormatInt(int64(s)/u.mult, 10) + u.suffix), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10) + "B"), nil
}

var errBadSize = errors.New("not a size")

// Duration is a time.Duration written in the file as a Go duration string ("30s").
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalText parses a Go duration string; negative durations are refused.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	if v < 0 {
		return errNegativeDuration
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes d back as a Go duration string.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(time.Duration(d).String()), nil
}

// SiteForHost returns the site serving host (a bare host name or IP, as
// url.URL.Hostname gives it), or nil. Domains are stored normalised, so the
// host is normalised the same way: lower case, no trailing dot.
func (c *Config) SiteForHost(host string) *Site {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	for i := range c.Sites {
		for _, d := range c.Sites[i].Domains {
			if d == host {
				return &c.Sites[i]
			}
		}
	}
	return nil
}
