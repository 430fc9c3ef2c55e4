package proxy

import (
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oss-gateway/gateway/config"
)

// corsTestRules are two rules that overlap on https://app.example.com, so
// that the order decides.
var corsTestRules = []config.CORSRule{
	{
		AllowedOrigins: []string{"https://app.example.com", "http://*.example.org:8080"},
		AllowedMethods: []string{"GET", "HEAD"},
		AllowedHeaders: []string{"x-oss-meta-*", "Content-Type"},
		ExposeHeaders:  []string{"ETag", "x-oss-request-id"},
		MaxAgeSeconds:  600,
	},
	{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{"GET", "PUT"},
		AllowedHeaders: []string{"*"},
	},
}

func TestCORSPreflight(t *testing.T) {
	c := newCORSPolicy(corsTestRules, false)
	tests := []struct {
		name                       string
		origin, method, reqHeaders string
		want                       http.Header // nil: refused
	}{
		{
			name: "first rule", origin: "https://app.example.com", method: "GET", reqHeaders: "Content-Type, X-Oss-Meta-Owner",
			want: http.Header{
				"Access-Control-Allow-Origin":   {"https://app.example.com"},
				"Access-Control-Allow-Methods":  {"GET, HEAD"},
				"Access-Control-Allow-Headers":  {"Content-Type, X-Oss-Meta-Owner"},
				"Access-Control-Expose-Headers": {"ETag, x-oss-request-id"},
				"Access-Control-Max-Age":        {"600"},
			},
		},
		{
			name: "first match wins only when everything matches: PUT falls to rule 2", origin: "https://app.example.com", method: "PUT",
			want: http.Header{
				"Access-Control-Allow-Origin":  {"https://app.example.com"},
				"Access-Control-Allow-Methods": {"GET, PUT"},
			},
		},
		{
			name: "a header rule 1 does not allow falls to rule 2", origin: "https://app.example.com", method: "GET", reqHeaders: "x-secret",
			want: http.Header{
				"Access-Control-Allow-Origin":  {"https://app.example.com"},
				"Access-Control-Allow-Methods": {"GET, PUT"},
				"Access-Control-Allow-Headers": {"x-secret"},
			},
		},
		{
			name: "* echoes the Origin", origin: "https://other.example.net", method: "GET",
			want: http.Header{
				"Access-Control-Allow-Origin":  {"https://other.example.net"},
				"Access-Control-Allow-Methods": {"GET, PUT"},
			},
		},
		{
			name: "wildcard origin with a port", origin: "http://a.b.example.org:8080", method: "HEAD", reqHeaders: " , x-oss-meta-a ,, ",
			want: http.Header{
				"Access-Control-Allow-Origin":   {"http://a.b.example.org:8080"},
				"Access-Control-Allow-Methods":  {"GET, HEAD"},
				"Access-Control-Allow-Headers":  {" , x-oss-meta-a ,, "},
				"Access-Control-Expose-Headers": {"ETag, x-oss-request-id"},
				"Access-Control-Max-Age":        {"600"},
			},
		},
		{name: "no method matches", origin: "https://app.example.com", method: "DELETE"},
		{name: "methods are case-sensitive", origin: "https://other.example.net", method: "get"},
		{name: "no Origin", origin: "", method: "GET"},
		{name: "no method", origin: "https://app.example.com", method: ""},
	}
	for _, tc := range tests {
		h := http.Header{}
		ok := c.preflight(h, tc.origin, tc.method, tc.reqHeaders)
		if ok != (tc.want != nil) {
			t.Errorf("%s: preflight = %v", tc.name, ok)
			continue
		}
		if tc.want == nil {
			tc.want = http.Header{}
		}
		if !reflect.DeepEqual(h, tc.want) {
			t.Errorf("%s: headers\n got %v\nwant %v", tc.name, h, tc.want)
		}
	}
}

func TestCORSOriginMatching(t *testing.T) {
	rules := func(origins ...string) []config.CORSRule {
		return []config.CORSRule{{AllowedOrigins: origins, AllowedMethods: []string{"GET"}}}
	}
	tests := []struct {
		origins []string
		origin  string
		want    bool
	}{
		{[]string{"https://app.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "HTTPS://App.Example.COM", true},
		{[]string{"HTTPS://APP.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "http://app.example.com", false},       // scheme is part of the origin
		{[]string{"https://app.example.com"}, "https://app.example.com:8443", false}, // so is a non-default port
		{[]string{"https://app.example.com"}, "https://app.example.com.evil.com", false},
		{[]string{"https://app.example.com"}, "https://app.example.com:443", true}, // the default port is no port
		{[]string{"https://app.example.com:443"}, "https://app.example.com", true},
		{[]string{"http://app.example.com:80"}, "http://app.example.com", true},
		{[]string{"http://app.example.com"}, "http://app.example.com:80", true},
		{[]string{"https://app.example.com:80"}, "https://app.example.com", false}, // :80 is not https's default
		{[]string{"http://*.example.org:8080"}, "http://a.example.org:8080", true},
		{[]string{"http://*.example.org:8080"}, "http://a.b.example.org:8080", true},
		{[]string{"http://*.example.org:8080"}, "http://a.example.org", false},
		{[]string{"http://*.example.org:8080"}, "http://a.example.org:8081", false},
		{[]string{"http://*.example.org:8080"}, "https://a.example.org:8080", false},
		{[]string{"https://*.example.com"}, "https://a.example.com", true},
		{[]string{"https://*.example.com"}, "https://example.com", false},
		{[]string{"https://*.example.com"}, "https://a.example.com:8443", false},
		{[]string{"https://*.example.com:443"}, "https://a.example.com", true},
		{[]string{"https://*:443"}, "https://a.example.com:8443", false}, // the port is kept when stripping would widen "*"
		{[]string{"https://*"}, "https://a.example.com:8443", true},
		{[]string{"*.example.com"}, "https://a.example.com", true},
		{[]string{"http://localhost:*"}, "http://localhost:3000", true},
		{[]string{"*"}, "null", true},
		{[]string{"*"}, "https://anything", true},
		{[]string{"https://a.com", "https://b.com"}, "https://b.com", true},
		{[]string{"https://a.com", "https://b.com"}, "https://c.com", false},
	}
	for _, tc := range tests {
		c := newCORSPolicy(rules(tc.origins...), false)
		h := http.Header{}
		c.apply(h, tc.origin, "GET")
		got := h.Get("Access-Control-Allow-Origin")
		if (got != "") != tc.want {
			t.Errorf("origins %q, Origin %q: matched %v, want %v", tc.origins, tc.origin, got != "", tc.want)
		}
		if got != "" && got != tc.origin {
			t.Errorf("origins %q, Origin %q: Allow-Origin %q, want the Origin echoed", tc.origins, tc.origin, got)
		}
		if ok := c.preflight(http.Header{}, tc.origin, "GET", ""); ok != tc.want {
			t.Errorf("origins %q, Origin %q: preflight %v, want %v", tc.origins, tc.origin, ok, tc.want)
		}
	}
}

func TestCORSRequestHeaders(t *testing.T) {
	tests := []struct {
		allowed []string
		req     string
		want    bool
	}{
		{[]string{"x-oss-meta-*", "content-type"}, "Content-Type, X-Oss-Meta-Owner", true},
		{[]string{"x-oss-meta-*", "content-type"}, "x-oss-meta-", true}, // "*" matches the empty rest
		{[]string{"x-oss-meta-*", "content-type"}, "x-secret", false},
		{[]string{"x-oss-meta-*", "content-type"}, "content-type,x-secret", false},
		{[]string{"x-oss-meta-*", "content-type"}, "", true},
		{[]string{"x-oss-meta-*", "content-type"}, " , ,\tcontent-type\t", true},
		{[]string{"*"}, "anything, X-Whatever", true},
		{[]string{"*-id"}, "x-request-id", true},
		{[]string{"*-id"}, "x-request-ids", false},
		{[]string{"x-*-id"}, "X-Trace-ID", true},
		{[]string{"Authorization"}, "authorization", true},
		{nil, "x-a", false},
		{nil, "", true},
	}
	for _, tc := range tests {
		c := newCORSPolicy([]config.CORSRule{{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"PUT"}, AllowedHeaders: tc.allowed}}, false)
		h := http.Header{}
		if got := c.preflight(h, "https://a.com", "PUT", tc.req); got != tc.want {
			t.Errorf("allowed %q, requested %q: %v, want %v", tc.allowed, tc.req, got, tc.want)
		}
		if tc.want && strings.TrimSpace(tc.req) != "" && h.Get("Access-Control-Allow-Headers") != tc.req {
			t.Errorf("allowed %q, requested %q: Allow-Headers %q, want it echoed", tc.allowed, tc.req, h.Get("Access-Control-Allow-Headers"))
		}
	}
}

func TestCORSApplyReplacesOSSHeaders(t *testing.T) {
	c := newCORSPolicy(corsTestRules, false)
	upstream := func() http.Header {
		return http.Header{
			"Access-Control-Allow-Origin":      {"*"},
			"Access-Control-Allow-Methods":     {"GET, PUT, DELETE"},
			"Access-Control-Allow-Credentials": {"true"},
			"Access-Control-Expose-Headers":    {"x-oss-everything"},
			"access-control-max-age":           {"9999"}, // not canonical: still OSS's
			"Content-Type":                     {"image/png"},
			"Etag":                             {`"abc"`},
		}
	}
	// Matching request: exactly the rule's headers, once each.
	h := upstream()
	c.apply(h, "https://app.example.com", "GET")
	want := http.Header{
		"Access-Control-Allow-Origin":   {"https://app.example.com"},
		"Access-Control-Allow-Methods":  {"GET, HEAD"},
		"Access-Control-Expose-Headers": {"ETag, x-oss-request-id"},
		"Content-Type":                  {"image/png"},
		"Etag":                          {`"abc"`},
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("matching request:\n got %v\nwant %v", h, want)
	}
	// Non-matching request and no Origin at all: none of OSS's survive.
	for _, tc := range []struct{ origin, method string }{
		{"https://evil.example.com", "DELETE"},
		{"https://app.example.com", "POST"},
		{"", "GET"},
	} {
		h := upstream()
		c.apply(h, tc.origin, tc.method)
		want := http.Header{"Content-Type": {"image/png"}, "Etag": {`"abc"`}}
		if !reflect.DeepEqual(h, want) {
			t.Errorf("%+v:\n got %v\nwant %v", tc, h, want)
		}
	}
	// A site without CORS rules strips OSS's too.
	h = upstream()
	newCORSPolicy(nil, false).apply(h, "https://app.example.com", "GET")
	if len(h) != 2 {
		t.Errorf("no rules: %v", h)
	}
	if newCORSPolicy(nil, false).preflight(http.Header{}, "https://app.example.com", "GET", "") {
		t.Error("no rules: preflight allowed")
	}
	// Actual requests get neither Max-Age nor Allow-Headers.
	h = http.Header{}
	c.apply(h, "http://x.example.org:8080", "GET")
	if h.Get("Access-Control-Max-Age") != "" || h.Get("Access-Control-Allow-Headers") != "" {
		t.Errorf("actual request got preflight headers: %v", h)
	}
}

func TestCORSVaryOrigin(t *testing.T) {
	on := newCORSPolicy(corsTestRules, true)
	off := newCORSPolicy(corsTestRules, false)
	tests := []struct {
		name     string
		existing []string
		want     []string
	}{
		{"none", nil, []string{"Origin"}},
		{"merged", []string{"Accept-Encoding"}, []string{"Accept-Encoding, Origin"}},
		{"merged from two lines", []string{"Accept-Encoding", "Cookie"}, []string{"Accept-Encoding, Cookie, Origin"}},
		{"already there", []string{"Accept-Encoding, origin"}, []string{"Accept-Encoding, origin"}},
		{"already there alone", []string{"Origin"}, []string{"Origin"}},
		{"star covers it", []string{"*"}, []string{"*"}},
		{"empty value", []string{""}, []string{"Origin"}},
	}
	for _, tc := range tests {
		for _, call := range []struct {
			name string
			fn   func(h http.Header)
		}{
			{"apply matched", func(h http.Header) { on.apply(h, "https://app.example.com", "GET") }},
			{"apply unmatched", func(h http.Header) { on.apply(h, "https://x.example.com", "DELETE") }},
			{"apply no origin", func(h http.Header) { on.apply(h, "", "GET") }},
			{"varyOnly", on.varyOnly},
			{"preflight allowed", func(h http.Header) { on.preflight(h, "https://app.example.com", "GET", "") }},
			{"preflight refused", func(h http.Header) { on.preflight(h, "https://app.example.com", "DELETE", "") }},
			{"twice", func(h http.Header) { on.apply(h, "https://app.example.com", "GET"); on.varyOnly(h) }},
		} {
			h := http.Header{}
			if tc.existing != nil {
				h["Vary"] = append([]string(nil), tc.existing...)
			}
			call.fn(h)
			if got := h["Vary"]; !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s, %s: Vary %q, want %q", tc.name, call.name, got, tc.want)
			}
		}
	}
	// Without cors_vary_origin nothing touches Vary.
	h := http.Header{}
	off.apply(h, "https://app.example.com", "GET")
	off.varyOnly(h)
	off.preflight(h, "https://app.example.com", "GET", "")
	if _, ok := h["Vary"]; ok {
		t.Errorf("vary off: %v", h)
	}
	// A refused preflight sets no Access-Control-* header, only Vary.
	h = http.Header{}
	on.preflight(h, "https://app.example.com", "DELETE", "")
	if !reflect.DeepEqual(h, http.Header{"Vary": {"Origin"}}) {
		t.Errorf("refused preflight: %v", h)
	}
}

func TestCORSSharedValuesStayIntact(t *testing.T) {
	c := newCORSPolicy(corsTestRules, true)
	h := http.Header{}
	c.apply(h, "https://app.example.com", "GET")
	h.Add("Vary", "Accept-Encoding")
	h.Add("Access-Control-Allow-Methods", "DELETE")
	h.Add("Access-Control-Allow-Origin", "https://evil")
	h.Set("Access-Control-Expose-Headers", "x")
	h2 := http.Header{}
	c.apply(h2, "https://app.example.com", "GET")
	want := http.Header{
		"Access-Control-Allow-Origin":   {"https://app.example.com"},
		"Access-Control-Allow-Methods":  {"GET, HEAD"},
		"Access-Control-Expose-Headers": {"ETag, x-oss-request-id"},
		"Vary":                          {"Origin"},
	}
	if !reflect.DeepEqual(h2, want) {
		t.Errorf("shared values changed by Add/Set on an earlier response:\n got %v\nwant %v", h2, want)
	}
}

func TestCORSApplyDoesNotAllocate(t *testing.T) {
	c := newCORSPolicy(corsTestRules, true)
	h := http.Header{}
	for _, tc := range []struct{ origin, method string }{
		{"https://app.example.com", "GET"}, // exact entry, as a browser sends it
		{"https://app.example.com", "DELETE"},
		{"", "GET"},
	} {
		if n := testing.AllocsPerRun(100, func() {
			clear(h)
			h["Content-Type"] = corsBenchContentType
			c.apply(h, tc.origin, tc.method)
		}); n != 0 {
			t.Errorf("apply(%q, %q): %v allocations", tc.origin, tc.method, n)
		}
	}
}

var corsBenchContentType = []string{"image/png"}

// corsReferenceMatch is the fuzz oracle for origin matching: the entry,
// lower-cased and without its default port, turned into an anchored regexp
// ("*" is ".*"), matched against the lower-cased Origin without its
// default port. ok is false for entries a regexp cannot express the same
// way (invalid UTF-8, U+FFFD, more than one "*", which config refuses).
func corsReferenceMatch(entry, origin string) (match, ok bool) {
	if !utf8.ValidString(entry) || strings.ContainsRune(entry, utf8.RuneError) || strings.Count(entry, "*") > 1 {
		return false, false
	}
	if origin == "" {
		return false, true
	}
	entry = corsRefTrimPort(refererRefLower(entry), true)
	var b strings.Builder
	b.WriteString(`(?s)^`)
	for i, part := range strings.Split(entry, "*") {
		if i > 0 {
			b.WriteString(`.*`)
		}
		b.WriteString(regexp.QuoteMeta(part))
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String()).MatchString(corsRefTrimPort(refererRefLower(origin), false)), true
}

// corsRefTrimPort removes https's ":443" and http's ":80" from a lower-case
// origin or entry, unless that leaves no host or, for an entry, a trailing
// "*".
func corsRefTrimPort(o string, entry bool) string {
	for _, d := range []struct{ scheme, port string }{{"https://", ":443"}, {"http://", ":80"}} {
		if strings.HasPrefix(o, d.scheme) && strings.HasSuffix(o, d.port) && len(o) > len(d.scheme)+len(d.port) {
			if t := strings.TrimSuffix(o, d.port); !entry || !strings.HasSuffix(t, "*") {
				return t
			}
		}
	}
	return o
}

func FuzzCORSMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"https://app.example.com", "https://app.example.com"},
		{"http://*.example.org:8080", "http://A.example.org:8080"},
		{"*", "null"},
		{"https://*:443", "https://a:443"},
		{"https://a.com:443", "HTTPS://A.COM"},
		{"*.example.com", "https://\xff.example.com"},
		{"x*", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, entry, origin string) {
		want, ok := corsReferenceMatch(entry, origin)
		if strings.Count(entry, "*") > 1 {
			return // config refuses it
		}
		c := newCORSPolicy([]config.CORSRule{{AllowedOrigins: []string{entry}, AllowedMethods: []string{"GET"}}}, true)
		h := http.Header{}
		c.apply(h, origin, "GET")
		got := h.Get("Access-Control-Allow-Origin")
		if got != "" && got != origin {
			t.Fatalf("entry %q, Origin %q: Allow-Origin %q is not the Origin", entry, origin, got)
		}
		pre := c.preflight(http.Header{}, origin, "GET", "")
		if pre != (got != "") {
			t.Fatalf("entry %q, Origin %q: preflight %v but apply %v", entry, origin, pre, got != "")
		}
		if ok && pre != want {
			t.Fatalf("entry %q, Origin %q: matched %v, reference says %v", entry, origin, pre, want)
		}
	})
}

func BenchmarkCORSApply(b *testing.B) {
	c := newCORSPolicy(corsTestRules, true)
	for _, bc := range []struct{ name, origin, method string }{
		{"match", "https://app.example.com", "GET"},
		{"match_wildcard", "https://other.example.net", "GET"}, // echoing an Origin not in the config costs one slice
		{"nomatch", "https://app.example.com", "DELETE"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := http.Header{}
			b.ReportAllocs()
			for b.Loop() {
				clear(h)
				h["Content-Type"] = corsBenchContentType
				h["Access-Control-Allow-Origin"] = corsBenchContentType // as OSS would send one
				c.apply(h, bc.origin, bc.method)
			}
		})
	}
}

func BenchmarkCORSPreflight(b *testing.B) {
	c := newCORSPolicy(corsTestRules, true)
	h := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		clear(h)
		if !c.preflight(h, "https://app.example.com", "GET", "") {
			b.Fatal("refused")
		}
	}
}

// TestCORSCredentials: a rule with allow_credentials answers preflights and
// actual requests with Access-Control-Allow-Credentials: true, the Origin
// echoed and Vary: Origin; a rule without it sends no credentials header.
func TestCORSCredentials(t *testing.T) {
	c := newCORSPolicy([]config.CORSRule{
		{AllowedOrigins: []string{"https://app.example.com", "https://*.example.net"}, AllowedMethods: []string{"GET"}, AllowCredentials: true},
		{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}},
	}, false)
	for _, tc := range []struct {
		origin string
		creds  bool
	}{
		{"https://app.example.com", true},
		{"https://shop.example.net", true},
		{"https://other.example.org", false},
	} {
		for _, kind := range []string{"preflight", "actual"} {
			h := http.Header{}
			if kind == "preflight" {
				if !c.preflight(h, tc.origin, "GET", "") {
					t.Fatalf("%s %s refused", kind, tc.origin)
				}
			} else {
				c.apply(h, tc.origin, "GET")
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tc.origin {
				t.Errorf("%s %s: Allow-Origin %q, want the origin echoed", kind, tc.origin, got)
			}
			gotCreds := h.Get("Access-Control-Allow-Credentials") == "true"
			gotVary := h.Get("Vary") == "Origin"
			if gotCreds != tc.creds || (tc.creds && !gotVary) {
				t.Errorf("%s %s: credentials %v vary %v, want credentials %v with Vary: Origin", kind, tc.origin, gotCreds, gotVary, tc.creds)
			}
		}
	}
}
