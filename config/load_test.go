package config

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/pelletier/go-toml/v2"
)

const examplePath = "../gateway.example.toml"

func TestExampleLoads(t *testing.T) {
	c, err := Load(examplePath)
	if err != nil {
		t.Fatalf("example has problems:\n%v", err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("example has warnings: %q", w)
	}
	if len(c.Sites) != 2 || c.Sites[0].Name != "images" || c.Sites[1].Name != "files" {
		t.Fatalf("sites = %+v, want images and files", c.Sites)
	}
	img, files := c.Sites[0], c.Sites[1]
	if img.Access != "public" || len(img.CORS) != 2 || img.Referer.Allow == nil {
		t.Errorf("images site: %+v", img)
	}
	if img.Limits.SiteBurst != 2000 || img.Limits.PerIPBurst != 100 {
		t.Errorf("images limits = %+v, want site_burst resolved to 2000, per_ip_burst 100", img.Limits)
	}
	if files.Access != "private" || !files.URLAuth.Enabled || files.URLAuth.KeyEnv != "SITE_FILES_URL_KEY" {
		t.Errorf("files site: %+v", files)
	}
	// Keys the files site leaves out take their defaults.
	if files.Retry.MaxAttempts != 3 || !files.Referer.AllowEmpty || !files.Disposition.FixContentType {
		t.Errorf("files site defaults not applied: %+v", files)
	}
}

// TestExampleShowsEveryKey keeps gateway.example.toml complete: every key of
// the schema is written in it (the static credentials commented out).
func TestExampleShowsEveryKey(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	commented := map[string]bool{"credentials.access_key_id": true, "credentials.access_key_secret": true, "credentials.security_token": true}
	var walk func(t reflect.Type, m map[string]any, path string)
	walk = func(typ reflect.Type, m map[string]any, path string) {
		for name, i := range tomlFields(typ) {
			key := childKey(path, name)
			v, ok := m[name]
			if commented[key] {
				if ok || !strings.Contains(string(data), "# "+name+" = ") {
					t.Errorf("%s should be present but commented out", key)
				}
				continue
			}
			if !ok {
				t.Errorf("example does not show %s", key)
				continue
			}
			ft := typ.Field(i).Type
			switch {
			case ft.Kind() == reflect.Struct && ft != reflect.TypeFor[Duration]():
				walk(ft, v.(map[string]any), key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				list := v.([]any)
				if len(list) == 0 {
					t.Errorf("example has no %s", key)
					continue
				}
				walk(ft.Elem(), list[0].(map[string]any), indexKey(key, 0))
			}
		}
	}
	walk(reflect.TypeFor[Config](), doc, "")
}

// TestSchemaAgreesWithGoToml checks that go-toml's own strict decoder, which
// this package does not use for its diagnostics, reads the example the same
// way: no unknown field, and the same values.
func TestSchemaAgreesWithGoToml(t *testing.T) {
	data, err := os.ReadFile(examplePath)
	if err != nil {
		t.Fatal(err)
	}
	var strict Config
	dec := toml.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("go-toml strict decode: %v", err)
	}
	ours, err := Parse(examplePath, data)
	if err != nil {
		t.Fatal(err)
	}
	// The images site writes every key, so its decoded values must agree
	// before validation fills in parsed forms.
	got, want := ours.Sites[0], strict.Sites[0]
	got.Limits.AllowIPNets, got.Limits.SiteBurst = nil, want.Limits.SiteBurst
	if !reflect.DeepEqual(got, want) {
		t.Errorf("site[0]:\n ours    %+v\n go-toml %+v", got, want)
	}
	ours.Server.TrustedProxyNets, ours.Admin.AllowNets = nil, nil
	if !reflect.DeepEqual(ours.Server, strict.Server) || !reflect.DeepEqual(ours.TLS, strict.TLS) || !reflect.DeepEqual(ours.Admin, strict.Admin) {
		t.Errorf("top-level tables differ:\n ours    %+v %+v %+v\n go-toml %+v %+v %+v",
			ours.Server, ours.Admin, ours.TLS, strict.Server, strict.Admin, strict.TLS)
	}
}

const minimal = `[[site]]
name = "a"
domains = ["a.example.com"]
bucket = "bucket-a"
region = "cn-hangzhou"
`

func TestDefaults(t *testing.T) {
	c, err := Parse("gateway.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path: "gateway.toml",
		Server: Server{
			HTTPListen:            ":80",
			HTTPSListen:           ":443",
			RedirectHTTP:          true,
			ReadHeaderTimeout:     Duration(10 * time.Second),
			IdleTimeout:           Duration(120 * time.Second),
			WriteTimeout:          0,
			MaxHeaderBytes:        65536,
			ShutdownGrace:         Duration(30 * time.Second),
			ShutdownDelay:         0,
			UpstreamDialTimeout:   Duration(5 * time.Second),
			UpstreamHeaderTimeout: Duration(30 * time.Second),
			UpstreamTransport:     "native",
			TrustedProxyNets:      []netip.Prefix{},
		},
		Admin: Admin{
			Listen:    "127.0.0.1:9090",
			Allow:     []string{"127.0.0.1/32", "::1/128"},
			AllowNets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")},
		},
		Log:         Log{Format: "json", Level: "info", AccessLog: true, AccessLogSample: 1},
		Credentials: Credentials{Source: "env"},
		Cache:       Cache{MaxSize: 10 << 30, Memory: 256 << 20, MaxObjectSize: 256 << 20},
		TLS: TLS{
			Storage:        "/var/lib/gateway",
			MinVersion:     "1.2",
			HSTS:           "max-age=31536000",
			ACMEChallenges: []string{"http-01", "tls-alpn-01"},
		},
		Sites: []Site{{
			Name:           "a",
			Domains:        []string{"a.example.com"},
			Bucket:         "bucket-a",
			Region:         "cn-hangzhou",
			Endpoint:       "public",
			UpstreamScheme: "https",
			Access:         "public",
			Methods:        []string{"GET", "HEAD"},
			TLS:            "acme",
			Referer:        Referer{AllowEmpty: true, AllowTruncateQuery: true},
			Disposition:    Disposition{Mode: "auto", DownloadParam: "download", FixContentType: true},
			Website:        Website{ErrorStatus: 404},
			Limits:         Limits{AllowIPNets: []netip.Prefix{}},
			Retry: Retry{
				MaxAttempts: 3,
				BaseDelay:   Duration(100 * time.Millisecond),
				MaxDelay:    Duration(2 * time.Second),
				OnStatus:    []int{502, 503, 504},
				BudgetRatio: 0.2,
			},
			URLAuth: URLAuth{TTL: Duration(30 * time.Minute)},
			OSSHeaders: []string{"x-oss-meta-*", "x-oss-forbid-overwrite", "x-oss-storage-class", "x-oss-tagging",
				"x-oss-server-side-encryption", "x-oss-server-side-data-encryption",
				"x-oss-server-side-encryption-key-id", "x-oss-traffic-limit"},
			Cache: SiteCache{TTL: Duration(10 * time.Minute), StaleIfError: Duration(time.Hour)},
			Process: Process{Actions: []string{"image/resize", "image/crop", "image/format", "image/quality", "image/rotate",
				"image/auto-orient", "image/interlace", "image/info", "image/average-hue", "style"}},
		}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got  %+v\n want %+v", c, want)
	}
}

// TestDefaultsPerElement checks that defaults apply to each [[site]] and
// [[site.cors]] separately, and that a written false or empty value is kept.
func TestDefaultsPerElement(t *testing.T) {
	c, err := Parse("gateway.toml", []byte(minimal+`
[site.referer]
allow_empty = false

[[site.cors]]
allowed_origins = ["*"]

[[site.cors]]
allowed_origins = ["*"]
allowed_methods = ["put"]

[[site]]
name = "b"
domains = ["b.example.com"]
bucket = "bucket-b"
region = "cn-hangzhou"
methods = ["get"]
[site.retry]
on_status = []
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := c.Sites[0], c.Sites[1]
	if a.Referer.AllowEmpty || !a.Referer.AllowTruncateQuery {
		t.Errorf("site a referer = %+v, want allow_empty false as written, allow_truncate_query default true", a.Referer)
	}
	if !reflect.DeepEqual(a.CORS[0].AllowedMethods, []string{"GET", "HEAD"}) || !reflect.DeepEqual(a.CORS[1].AllowedMethods, []string{"PUT"}) {
		t.Errorf("cors methods = %v, %v", a.CORS[0].AllowedMethods, a.CORS[1].AllowedMethods)
	}
	if !b.Referer.AllowEmpty || len(b.CORS) != 0 || !reflect.DeepEqual(b.Methods, []string{"GET"}) {
		t.Errorf("site b = %+v", b)
	}
	if b.Retry.OnStatus == nil || len(b.Retry.OnStatus) != 0 || b.Retry.MaxAttempts != 3 {
		t.Errorf("site b retry = %+v, want on_status [] as written, max_attempts default", b.Retry)
	}
}

func TestByteOrderMark(t *testing.T) {
	if _, err := Parse("gateway.toml", []byte("\xEF\xBB\xBF"+minimal)); err != nil {
		t.Errorf("a leading UTF-8 BOM is refused: %v", err)
	}
	_, err := Parse("gateway.toml", []byte("\xEF\xBB\xBF"+minimal+"bogus = 1\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "gateway.toml:6: site[0].bogus: unknown key") {
		t.Errorf("after a BOM, err = %v, want the unknown key on line 6", err)
	}
}

func TestNormalisation(t *testing.T) {
	c, err := Parse("gateway.toml", []byte(`
[server]
trusted_proxies = ["10.1.2.3", "10.9.9.9/8", "2001:DB8::1", "::ffff:192.0.2.0/120"]
[[site]]
name = "a"
domains = ["IMG.Example.COM.", "files.example.com", "2001:DB8:0:0::7", "203.0.113.9"]
bucket = "bucket-a"
region = "cn-hangzhou"
methods = ["get", "Head", "PUT"]
[site.limits]
per_ip_rps = 2.5
site_rps = 0.2
allow_ips = ["192.0.2.7"]
`))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Sites[0]
	if want := []string{"img.example.com", "files.example.com", "2001:db8::7", "203.0.113.9"}; !reflect.DeepEqual(s.Domains, want) {
		t.Errorf("domains = %q, want %q", s.Domains, want)
	}
	if want := []string{"GET", "HEAD", "PUT"}; !reflect.DeepEqual(s.Methods, want) {
		t.Errorf("methods = %q, want %q", s.Methods, want)
	}
	wantNets := []netip.Prefix{
		netip.MustParsePrefix("10.1.2.3/32"),
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("2001:db8::1/128"),
		netip.MustParsePrefix("192.0.2.0/24"),
	}
	if !reflect.DeepEqual(c.Server.TrustedProxyNets, wantNets) {
		t.Errorf("trusted proxy nets = %v, want %v", c.Server.TrustedProxyNets, wantNets)
	}
	if want := []netip.Prefix{netip.MustParsePrefix("192.0.2.7/32")}; !reflect.DeepEqual(s.Limits.AllowIPNets, want) {
		t.Errorf("allow_ips nets = %v", s.Limits.AllowIPNets)
	}
	if s.Limits.PerIPBurst != 3 || s.Limits.SiteBurst != 1 {
		t.Errorf("bursts = %d, %d; want 3 (2.5 rounded up) and 1 (at least 1)", s.Limits.PerIPBurst, s.Limits.SiteBurst)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := Load(path)
	var e *Error
	if !errors.As(err, &e) || len(e.Problems) != 1 {
		t.Fatalf("err = %#v, want *Error with one problem", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
	if got := err.Error(); !strings.HasPrefix(got, path+": cannot read the file: ") || strings.Count(got, path) != 1 {
		t.Errorf("message = %q", got)
	}
}

func TestWarnings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.toml")
	data := "[credentials]\nsource = \"static\"\naccess_key_id = \"id\"\naccess_key_secret = \"secret\"\n" + minimal
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], path+" is readable by group or others but holds credentials") {
		t.Errorf("warnings = %q, want the group/world readable warning", w)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if w := c.Warnings(); len(w) != 0 {
		t.Errorf("warnings after chmod 600 = %q, want none", w)
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "gateway.toml", Line: 12, Key: "site[1].bucket", Msg: "bad"}, "gateway.toml:12: site[1].bucket: bad"},
		{Problem{File: "gateway.toml", Key: "site", Msg: "bad"}, "gateway.toml: site: bad"},
		{Problem{File: "gateway.toml", Line: 3, Msg: "invalid TOML"}, "gateway.toml:3: invalid TOML"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
	e := &Error{Problems: []Problem{{File: "f", Line: 1, Msg: "a"}, {File: "f", Line: 2, Msg: "b"}}}
	if got := e.Error(); got != "f:1: a\nf:2: b" {
		t.Errorf("Error() = %q", got)
	}
}

func TestParentKey(t *testing.T) {
	for in, want := range map[string]string{
		"site[1].cors[0].allowed_origins[2]": "site[1].cors[0].allowed_origins",
		"site[1].cors[0]":                    "site[1].cors",
		"site[1].cors":                       "site[1]",
		"site[1]":                            "site",
		"site":                               "",
		`server."a.b"`:                       "server",
		`"a.b"`:                              "",
	} {
		if got := parentKey(in); got != want {
			t.Errorf("parentKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTLSSiteWithoutHTTPSListenerWarns(t *testing.T) {
	c, err := Parse("g.toml", []byte("[server]\nhttps_listen = \"\"\n"+minimal))
	if err != nil {
		t.Fatalf("an HTTP-only config with the default tls must load: %v", err)
	}
	w := c.Warnings()
	if len(w) != 1 || !strings.Contains(w[0], `site[0].tls: is "acme" but server.https_listen is ""`) {
		t.Fatalf("warnings = %q", w)
	}
}
