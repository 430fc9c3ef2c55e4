package proxy_test

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/proxy"
)

// policySite is a public site on the public-read bucket with extra keys.
func policySite(name, extra string) string {
	return fmt.Sprintf(`
[[site]]
name = "%s"
domains = ["%s.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
%s
`, name, name, extra)
}

func TestRefererHotlinkProtection(t *testing.T) {
	e := newEnv(t, envOpts{sites: policySite("ref", `
[site.referer]
allow_empty = false
allow = ["https://*.example.com/*"]
deny = ["https://evil.example.com/*"]
`)})
	tests := []struct {
		referer string
		auth    string
		query   string
		want    int
	}{
		{"", "", "", 403},
		{"https://www.example.com/page.html", "", "", 200},
		{"https://WWW.EXAMPLE.COM/page.html", "", "", 200},
		{"https://evil.example.com/page.html", "", "", 403}, // deny before allow
		{"https://www.other.com/", "", "", 403},
		{"http://www.example.com/page", "", "", 403}, // scheme is part of the entry
		// A signed URL is still held to the Referer rules...
		{"https://www.other.com/", "", "?x-oss-signature=abc", 403},
		// ...a request with an AccessKey Authorization header is not: OSS judges it.
		{"https://www.other.com/", "OSS4-HMAC-SHA256 Credential=x", "", -1},
	}
	for _, tc := range tests {
		e.emu.ResetRequests()
		hdr := http.Header{}
		if tc.referer != "" {
			hdr.Set("Referer", tc.referer)
		}
		if tc.auth != "" {
			hdr.Set("Authorization", tc.auth)
		}
		resp := e.do("GET", "ref.test", "/hello.txt"+tc.query, hdr, nil)
		switch tc.want {
		case 403:
			body := readBody(t, resp)
			if resp.StatusCode != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") || !strings.Contains(body, "You are denied by bucket referer policy.") {
				t.Fatalf("referer %q: %d %s", tc.referer, resp.StatusCode, body)
			}
			if e.upstreamCount() != 0 {
				t.Fatalf("referer %q: denied request reached OSS", tc.referer)
			}
		case 200:
			if readBody(t, resp); resp.StatusCode != 200 {
				t.Fatalf("referer %q: %d", tc.referer, resp.StatusCode)
			}
		case -1:
			readBody(t, resp)
			if e.upstreamCount() != 1 {
				t.Fatalf("Authorization request did not reach OSS")
			}
		}
	}
	if got := counterValue(t, e.reg, "gateway_denied_total", map[string]string{"site": "ref", "reason": "referer"}); got != 5 {
		t.Fatalf("denied{referer} = %v, want 5", got)
	}
}

func TestRefererAlwaysAppliesOnPrivateSites(t *testing.T) {
	e := newEnv(t, envOpts{sites: `
[[site]]
name = "pref"
domains = ["pref.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
tls = "off"
[site.referer]
allow_empty = false
allow = ["https://ok.example.com/*"]
`})
	resp := e.do("GET", "pref.test", "/secret.txt", http.Header{"Authorization": {"OSS4-HMAC-SHA256 Credential=x"}, "Referer": {"https://bad.example.com/"}}, nil)
	if readBody(t, resp); resp.StatusCode != 403 || e.upstreamCount() != 0 {
		t.Fatalf("private site let an Authorization header skip the Referer check: %d", resp.StatusCode)
	}
	resp = e.do("GET", "pref.test", "/secret.txt", http.Header{"Referer": {"https://ok.example.com/x"}}, nil)
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("allowed referer: %d", resp.StatusCode)
	}
}

const corsSites = `
[[site]]
name = "cors"
domains = ["cors.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
cors_vary_origin = true
[[site.cors]]
allowed_origins = ["https://app.example.com"]
allowed_methods = ["GET", "PUT"]
allowed_headers = ["x-oss-meta-*", "content-type"]
expose_headers = ["ETag", "x-oss-request-id"]
max_age_seconds = 600
[[site.cors]]
allowed_origins = ["http://*.example.org:8080"]
allowed_methods = ["GET"]

[[site]]
name = "nocors"
domains = ["nocors.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
`

func TestCORSPreflightIsAnsweredByTheGateway(t *testing.T) {
	e := newEnv(t, envOpts{sites: corsSites})
	preflight := func(host, origin, method, headers string) *http.Response {
		hdr := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method}}
		if headers != "" {
			hdr.Set("Access-Control-Request-Headers", headers)
		}
		return e.do("OPTIONS", host, "/hello.txt", hdr, nil)
	}
	// Allowed: 200 with the rule's headers, although the site's methods do
	// not list OPTIONS (a preflight never reaches the method check).
	resp := preflight("cors.test", "https://app.example.com", "PUT", "Content-Type, X-Oss-Meta-Owner")
	readBody(t, resp)
	if resp.StatusCode != 200 ||
		resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "PUT") ||
		resp.Header.Get("Access-Control-Max-Age") != "600" ||
		resp.Header.Get("Access-Control-Allow-Headers") == "" ||
		!strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("allowed preflight: %d %v", resp.StatusCode, resp.Header)
	}
	// Second rule, wildcard origin with a port.
	resp = preflight("cors.test", "http://a.b.example.org:8080", "GET", "")
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("wildcard origin: %d", resp.StatusCode)
	}
	for _, tc := range []struct{ host, origin, method, headers string }{
		{"cors.test", "https://evil.example.com", "GET", ""},
		{"cors.test", "https://app.example.com", "DELETE", ""},
		{"cors.test", "https://app.example.com", "PUT", "x-secret"},
		{"cors.test", "http://a.example.org", "GET", ""}, // port is part of the origin
		{"nocors.test", "https://app.example.com", "GET", ""},
	} {
		resp := preflight(tc.host, tc.origin, tc.method, tc.headers)
		if resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%+v: refused preflight carries CORS headers", tc)
		}
		gatewayError(t, resp, 403, "AccessForbidden")
	}
	if e.upstreamCount() != 0 {
		t.Fatalf("%d preflights reached OSS", e.upstreamCount())
	}
}

func TestCORSOnActualRequests(t *testing.T) {
	// An upstream that sends its own CORS headers, as OSS does when the
	// bucket has CORS rules: the site's must replace them.
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Access-Control-Allow-Methods", "GET, PUT, DELETE")
		w.Header().Set("Vary", "Accept-Encoding")
		io.WriteString(w, "ok")
	})
	e := newEnv(t, envOpts{noDefaults: true, sites: strings.ReplaceAll(corsSites, "EMU", addr)})
	resp := e.do("GET", "cors.test", "/x", http.Header{"Origin": {"https://app.example.com"}}, nil)
	readBody(t, resp)
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 1 || got[0] != "https://app.example.com" {
		t.Fatalf("Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Methods"); strings.Contains(got, "DELETE") {
		t.Fatalf("OSS's CORS headers not replaced: %q", got)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "ETag") {
		t.Fatalf("Expose-Headers %q", got)
	}
	if vary := strings.Join(resp.Header.Values("Vary"), ","); !strings.Contains(vary, "Origin") || !strings.Contains(vary, "Accept-Encoding") {
		t.Fatalf("Vary %q", vary)
	}
	for _, origin := range []string{"https://evil.example.com", ""} {
		resp = e.do("GET", "cors.test", "/x", http.Header{"Origin": {origin}}, nil)
		readBody(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" || resp.Header.Get("Access-Control-Allow-Methods") != "" {
			t.Fatalf("origin %q: %d %v", origin, resp.StatusCode, resp.Header)
		}
		if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
			t.Fatalf("cors_vary_origin: no Vary: Origin on an unmatched response")
		}
	}
}

func TestAllowIPs(t *testing.T) {
	e := newEnv(t, envOpts{server: `trusted_proxies = ["127.0.0.1/32"]`, sites: policySite("ipv4only", `
[site.limits]
allow_ips = ["10.0.0.0/8", "2001:db8::/32"]
`) + policySite("local", `
[site.limits]
allow_ips = ["127.0.0.1"]
`)})
	for _, tc := range []struct {
		host, xff string
		want      int
	}{
		{"ipv4only.test", "", 403},            // the socket address, 127.0.0.1
		{"ipv4only.test", "10.1.2.3", 200},    // the client behind the trusted proxy
		{"ipv4only.test", "2001:db8::7", 200}, // IPv6
		{"ipv4only.test", "2001:db9::7", 403},
		{"ipv4only.test", "10.1.2.3, 192.0.2.1", 403}, // the right-most untrusted hop counts
		{"local.test", "", 200},
	} {
		hdr := http.Header{}
		if tc.xff != "" {
			hdr.Set("X-Forwarded-For", tc.xff)
		}
		resp := e.do("GET", tc.host, "/hello.txt", hdr, nil)
		if tc.want == 403 {
			gatewayError(t, resp, 403, "AccessDenied")
			continue
		}
		if readBody(t, resp); resp.StatusCode != tc.want {
			t.Fatalf("%+v: %d", tc, resp.StatusCode)
		}
	}
	if got := counterValue(t, e.reg, "gateway_denied_total", map[string]string{"site": "ipv4only", "reason": "ip"}); got != 3 {
		t.Fatalf("denied{ip} = %v", got)
	}
}

func TestRateLimits(t *testing.T) {
	e := newEnv(t, envOpts{server: `trusted_proxies = ["127.0.0.1/32"]`, sites: policySite("perip", `
[site.limits]
per_ip_rps = 0.5
per_ip_burst = 2
`) + policySite("site", `
[site.limits]
site_rps = 0.5
site_burst = 3
`)})
	get := func(host, ip string) *http.Response {
		return e.do("GET", host, "/hello.txt", http.Header{"X-Forwarded-For": {ip}}, nil)
	}
	for i := 0; i < 2; i++ {
		if resp := get("perip.test", "198.51.100.1"); readBody(t, resp) == "" || resp.StatusCode != 200 {
			t.Fatalf("burst request %d: %d", i, resp.StatusCode)
		}
	}
	resp := get("perip.test", "198.51.100.1")
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 2 {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	gatewayError(t, resp, 429, "TooManyRequests")
	// Another client is not affected by the first one's limit.
	if resp := get("perip.test", "198.51.100.2"); readBody(t, resp) == "" || resp.StatusCode != 200 {
		t.Fatalf("second client: %d", resp.StatusCode)
	}
	// The site limit is shared by every client.
	for i, ip := range []string{"192.0.2.1", "192.0.2.2", "192.0.2.3"} {
		if resp := get("site.test", ip); readBody(t, resp) == "" || resp.StatusCode != 200 {
			t.Fatalf("site burst %d: %d", i, resp.StatusCode)
		}
	}
	gatewayError(t, get("site.test", "192.0.2.4"), 429, "TooManyRequests")
	if got := counterValue(t, e.reg, "gateway_denied_total", map[string]string{"reason": "rate_limit"}); got != 2 {
		t.Fatalf("denied{rate_limit} = %v", got)
	}
}

func TestEgressCap(t *testing.T) {
	e := newEnv(t, envOpts{sites: policySite("slow", `
[site.limits]
per_conn_bytes_per_sec = 131072
`)})
	e.emu.PutSyntheticObject(pubBucket, "quarter.bin", 256<<10, "application/octet-stream")
	start := time.Now()
	resp := e.do("GET", "slow.test", "/quarter.bin", nil, nil)
	body := readBody(t, resp)
	// 64 KiB of burst, then 192 KiB at 128 KiB/s: at least 1.5 s. Only the
	// lower bound is a property of the cap; the upper one is the machine's.
	if el := time.Since(start); len(body) != 256<<10 || el < 1400*time.Millisecond {
		t.Fatalf("%d bytes in %v: the cap did not hold", len(body), el)
	}
}

func TestDisposition(t *testing.T) {
	e := newEnv(t, envOpts{sites: policySite("auto", "") + policySite("inline", `
[site.disposition]
mode = "inline"
`) + policySite("attach", `
[site.disposition]
mode = "attachment"
fix_content_type = false
`)})
	e.emu.PutObject(pubBucket, "page.html", []byte("<h1>x</h1>"), http.Header{"Content-Type": {"text/html"}})
	e.emu.PutObject(pubBucket, "report.pdf", []byte("%PDF"), http.Header{"Content-Type": {"application/pdf"}, "Content-Disposition": {`attachment; filename="own.pdf"`}})
	e.emu.PutObject(pubBucket, "img/photo.png", []byte("png"), http.Header{"Content-Type": {"application/octet-stream"}})

	check := func(host, target, wantCD, wantCT string) {
		t.Helper()
		resp := e.do("GET", host, target, nil, nil)
		readBody(t, resp)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != wantCD || resp.Header.Get("X-Oss-Force-Download") != "" {
			t.Fatalf("%s%s: %d Content-Disposition %q (want %q), force %q", host, target, resp.StatusCode,
				resp.Header.Get("Content-Disposition"), wantCD, resp.Header.Get("X-Oss-Force-Download"))
		}
		if wantCT != "" && resp.Header.Get("Content-Type") != wantCT {
			t.Fatalf("%s%s: Content-Type %q, want %q", host, target, resp.Header.Get("Content-Type"), wantCT)
		}
	}
	check("auto.test", "/page.html", "", "text/html")                       // OSS's forced attachment undone
	check("auto.test", "/report.pdf", `attachment; filename="own.pdf"`, "") // the object's own kept
	check("auto.test", "/img/photo.png", "", "image/png")                   // fix_content_type
	check("inline.test", "/report.pdf", "inline", "")
	check("attach.test", "/page.html", `attachment; filename="page.html"`, "")
	check("attach.test", "/img/photo.png", `attachment; filename="photo.png"`, "application/octet-stream")
	check("auto.test", "/page.html?download", `attachment; filename="page.html"`, "")
	check("auto.test", "/page.html?download=%E6%8A%A5%E5%91%8A%20v1.html", `attachment; filename="__ v1.html"; filename*=UTF-8''%E6%8A%A5%E5%91%8A%20v1.html`, "")
	check("auto.test", "/page.html?download=..%2F..%2Fetc%2Fpasswd", `attachment; filename="passwd"`, "")
	for _, r := range e.emu.Requests() {
		if strings.Contains(r.RawQuery, "download") {
			t.Fatalf("download parameter reached OSS: %q", r.RawQuery)
		}
	}
}

func TestWebsiteHosting(t *testing.T) {
	site := func(name, extra string) string {
		return policySite(name, `methods = ["GET", "HEAD", "PUT"]
[site.website]
index = "index.html"
`+extra)
	}
	e := newEnv(t, envOpts{sites: site("w0", "support_subdir = true\nsubdir_type = 0\nerror_document = \"404.html\"") +
		site("w1", "support_subdir = true\nsubdir_type = 1") +
		site("w2", "support_subdir = true\nsubdir_type = 2") +
		site("spa", "error_document = \"index.html\"\nerror_status = 200") +
		site("root", "")})
	put := func(key, body string) {
		e.emu.PutObject(pubBucket, key, []byte(body), http.Header{"Content-Type": {"text/html"}})
	}
	put("index.html", "root index")
	put("docs/index.html", "docs index")
	put("404.html", "not here")
	for _, tc := range []struct {
		host, target string
		status       int
		body         string
		location     string
	}{
		{"w0.test", "/", 200, "root index", ""},
		{"w0.test", "/docs/", 200, "docs index", ""},
		{"w0.test", "/docs", 302, "", "/docs/"},
		{"w0.test", "/nodir", 404, "not here", ""},
		{"w0.test", "/missing.png", 404, "not here", ""},
		{"w1.test", "/docs", 404, "", ""},
		{"w2.test", "/docs", 200, "docs index", ""},
		{"spa.test", "/app/route/42", 200, "root index", ""},
		{"root.test", "/docs/", 200, "root index", ""}, // no support_subdir: the root index
	} {
		resp := e.do("GET", tc.host, tc.target, nil, nil)
		resp.Body.Close()
		// The default client follows redirects; ask again without.
		if tc.status == 302 {
			req, _ := http.NewRequest("GET", e.gw.URL+tc.target, nil)
			req.Host = tc.host
			c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			var err error
			if resp, err = c.Do(req); err != nil {
				t.Fatal(err)
			}
		} else {
			resp = e.do("GET", tc.host, tc.target, nil, nil)
		}
		body := readBody(t, resp)
		if resp.StatusCode != tc.status || (tc.body != "" && body != tc.body) || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s%s: %d %q Location %q; want %d %q %q", tc.host, tc.target, resp.StatusCode, body, resp.Header.Get("Location"), tc.status, tc.body, tc.location)
		}
		if tc.host == "w1.test" && !strings.Contains(body, "<Code>NoSuchKey</Code>") {
			t.Errorf("w1 without an error document: OSS's NoSuchKey expected, got %q", body)
		}
	}
	// Website rules are for GET and HEAD only: a PUT to "/" is not an index.
	resp := e.do("PUT", "w0.test", "/", nil, strings.NewReader("x"))
	gatewayError(t, resp, 400, "InvalidObjectName")
}

func TestURLAuth(t *testing.T) {
	const key = "url-auth-secret"
	t.Setenv("TEST_URL_KEY", key)
	e := newEnv(t, envOpts{sites: policySite("signed", `
[site.url_auth]
enabled = true
key_env = "TEST_URL_KEY"
ttl = "10m"
`)})
	sign := func(path string, ts int64, k string) string {
		sum := md5.Sum([]byte(fmt.Sprintf("%s-%d-abc123-0-%s", path, ts, k)))
		return fmt.Sprintf("%s?auth_key=%d-abc123-0-%s", path, ts, hex.EncodeToString(sum[:]))
	}
	now := time.Now().Unix()
	resp := e.do("GET", "signed.test", sign("/hello.txt", now, key), nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "hello public" {
		t.Fatalf("valid auth_key: %d %q", resp.StatusCode, body)
	}
	if q := e.emu.Requests()[0].RawQuery; strings.Contains(q, "auth_key") {
		t.Fatalf("auth_key forwarded to OSS: %q", q)
	}
	signedByTool, err := proxy.SignURL("http://signed.test/hello.txt", key, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp = e.do("GET", "signed.test", signedByTool[len("http://signed.test"):], nil, nil)
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("SignURL output refused: %d", resp.StatusCode)
	}
	e.emu.ResetRequests()
	for name, target := range map[string]string{
		"missing":  "/hello.txt",
		"expired":  sign("/hello.txt", now-11*60, key),
		"wrong":    sign("/hello.txt", now, "other-key"),
		"tampered": strings.Replace(sign("/hello.txt", now, key), "/hello.txt", "/other.txt", 1),
	} {
		resp := e.do("GET", "signed.test", target, nil, nil)
		body := readBody(t, resp)
		if resp.StatusCode != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") || strings.Contains(body, key) {
			t.Fatalf("%s: %d %s", name, resp.StatusCode, body)
		}
	}
	if e.upstreamCount() != 0 {
		t.Fatal("refused auth_key requests reached OSS")
	}
}

func TestCheckOrder(t *testing.T) {
	// A request that breaks every rule is refused for the first in
	// The documented order: path, allow_ips, rate limit, preflight, method,
	// url_auth, Referer.
	t.Setenv("ORDER_KEY", "k")
	e := newEnv(t, envOpts{sites: policySite("order", `
methods = ["GET"]
[site.referer]
allow_empty = false
allow = ["https://ok.example.com/*"]
[site.limits]
allow_ips = ["10.0.0.0/8"]
[site.url_auth]
enabled = true
key_env = "ORDER_KEY"
`) + policySite("order2", `
methods = ["GET"]
[site.referer]
allow_empty = false
allow = ["https://ok.example.com/*"]
[site.url_auth]
enabled = true
key_env = "ORDER_KEY"
`)})
	gatewayError(t, e.raw("DELETE", "order.test", "/../x"), 400, "InvalidObjectName")
	gatewayError(t, e.do("DELETE", "order.test", "/x", nil, nil), 403, "AccessDenied") // ip
	gatewayError(t, e.do("DELETE", "order2.test", "/x", nil, nil), 405, "MethodNotAllowed")
	gatewayError(t, e.do("GET", "order2.test", "/x", nil, nil), 403, "AccessDenied") // url_auth before referer
	reasons := map[string]float64{}
	for _, r := range []string{"path", "ip", "method", "url_auth", "referer"} {
		reasons[r] = counterValue(t, e.reg, "gateway_denied_total", map[string]string{"reason": r})
	}
	if reasons["path"] != 1 || reasons["ip"] != 1 || reasons["method"] != 1 || reasons["url_auth"] != 1 || reasons["referer"] != 0 {
		t.Fatalf("denied reasons %v", reasons)
	}
}
