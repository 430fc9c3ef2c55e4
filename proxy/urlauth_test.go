package proxy

import (
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// Alibaba Cloud's published type A example.
const (
	urlAuthVectorPath = "/video/standard/1K.html"
	urlAuthVectorTS   = 1444435200
	urlAuthVectorKey  = "aliyuncdnexp1234"
	urlAuthVectorHash = "80cd3862d699b7118eed99103f2a3a4f"
)

// urlAuthTest builds a urlAuth with the vector's key and the given ttl.
func urlAuthTest(t testing.TB, ttl time.Duration) *urlAuth {
	t.Helper()
	a, err := newURLAuth(config.URLAuth{Enabled: true, KeyEnv: "K", TTL: config.Duration(ttl)},
		func(string) string { return urlAuthVectorKey })
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// urlAuthSign is an independent signer for the tests.
func urlAuthSign(path string, ts int64, rnd, uid, key string) string {
	sum := md5.Sum(fmt.Appendf(nil, "%s-%d-%s-%s-%s", path, ts, rnd, uid, key))
	return fmt.Sprintf("%d-%s-%s-%s", ts, rnd, uid, hex.EncodeToString(sum[:]))
}

func TestURLAuthAlibabaVector(t *testing.T) {
	sum := authKeyHash(urlAuthVectorPath, strconv.Itoa(urlAuthVectorTS), "0", "0", []byte(urlAuthVectorKey))
	if got := hex.EncodeToString(sum[:]); got != urlAuthVectorHash {
		t.Fatalf("md5 = %s, want %s", got, urlAuthVectorHash)
	}
	a := urlAuthTest(t, 30*time.Minute)
	q := "auth_key=1444435200-0-0-" + urlAuthVectorHash
	if rest, ok := a.check(urlAuthVectorPath, q, time.Unix(urlAuthVectorTS+60, 0)); !ok || rest != "" {
		t.Fatalf("vector refused: %q %v", rest, ok)
	}
}

func TestURLAuthCheck(t *testing.T) {
	const ttl = 30 * time.Minute
	a := urlAuthTest(t, ttl)
	ts := int64(urlAuthVectorTS)
	now := time.Unix(ts+10, 0)
	good := urlAuthSign("/a/b.jpg", ts, "477b3bbc253f467b8def6711128c7bec", "0", urlAuthVectorKey)
	tests := []struct {
		name     string
		path     string
		query    string
		now      time.Time
		ok       bool
		stripped string // checked when ok
	}{
		{"valid", "/a/b.jpg", "auth_key=" + good, now, true, ""},
		{"valid with uid and letters", "/a/b.jpg", "auth_key=" + urlAuthSign("/a/b.jpg", ts, "R4nd", "user42", urlAuthVectorKey), now, true, ""},
		{"expires at TS+ttl exactly", "/a/b.jpg", "auth_key=" + good, time.Unix(ts, 0).Add(ttl), true, ""},
		{"expired a second later", "/a/b.jpg", "auth_key=" + good, time.Unix(ts, 0).Add(ttl + time.Second), false, ""},
		{"expired by a nanosecond", "/a/b.jpg", "auth_key=" + good, time.Unix(ts, 0).Add(ttl + 1), false, ""},
		{"future timestamp", "/a/b.jpg", "auth_key=" + urlAuthSign("/a/b.jpg", ts+3600, "r", "0", urlAuthVectorKey), now, true, ""},
		{"tampered path", "/a/c.jpg", "auth_key=" + good, now, false, ""},
		{"path compared escaped", "/a/b%2Ejpg", "auth_key=" + good, now, false, ""},
		{"tampered ts", "/a/b.jpg", "auth_key=" + strings.Replace(good, "1444435200", "1444435201", 1), now, false, ""},
		{"tampered rand", "/a/b.jpg", "auth_key=" + strings.Replace(good, "477b", "477c", 1), now, false, ""},
		{"tampered uid", "/a/b.jpg", "auth_key=" + strings.Replace(good, "-0-", "-1-", 1), now, false, ""},
		{"tampered hash", "/a/b.jpg", "auth_key=" + good[:len(good)-1] + "0", now, false, ""},
		{"wrong key", "/a/b.jpg", "auth_key=" + urlAuthSign("/a/b.jpg", ts, "r", "0", "other"), now, false, ""},
		{"missing", "/a/b.jpg", "", now, false, ""},
		{"missing with others", "/a/b.jpg", "x=1&y=2", now, false, ""},
		{"duplicate", "/a/b.jpg", "auth_key=" + good + "&auth_key=" + good, now, false, ""},
		{"duplicate percent-encoded", "/a/b.jpg", "auth_key=" + good + "&auth%5Fkey=" + good, now, false, ""},
		{"duplicate percent-encoded first", "/a/b.jpg", "auth%5fkey=x&auth_key=" + good, now, false, ""},
		{"no value", "/a/b.jpg", "auth_key", now, false, ""},
		{"empty value", "/a/b.jpg", "auth_key=", now, false, ""},
		{"three parts", "/a/b.jpg", "auth_key=1444435200-0-" + urlAuthVectorHash, now, false, ""},
		{"five parts", "/a/b.jpg", "auth_key=1444435200-a-b-0-" + urlAuthVectorHash, now, false, ""},
		{"empty rand", "/a/b.jpg", "auth_key=1444435200--0-" + urlAuthVectorHash, now, false, ""},
		{"signed ts", "/a/b.jpg", "auth_key=+1444435200-0-0-" + urlAuthVectorHash, now, false, ""},
		{"huge ts", "/a/b.jpg", "auth_key=9999999999999999999-0-0-" + urlAuthVectorHash, now, false, ""},
		{"short hash", "/a/b.jpg", "auth_key=1444435200-0-0-" + urlAuthVectorHash[:31], now, false, ""},
		{"non-hex hash", "/a/b.jpg", "auth_key=1444435200-0-0-" + strings.Repeat("g", 32), now, false, ""},
		{"percent-encoded value", "/a/b.jpg", "auth_key=" + strings.ReplaceAll(good, "-", "%2D"), now, false, ""},
		{"similar names are not auth_key", "/a/b.jpg", "xauth_key=" + good + "&auth_key2=" + good, now, false, ""},
		// Stripping: other parameters stay byte-identical and in order.
		{"first", "/a/b.jpg", "auth_key=" + good + "&a=%41&b=c+d", now, true, "a=%41&b=c+d"},
		{"middle", "/a/b.jpg", "a=%41&auth_key=" + good + "&b=c+d", now, true, "a=%41&b=c+d"},
		{"last", "/a/b.jpg", "a=%41&b=c+d&auth_key=" + good, now, true, "a=%41&b=c+d"},
		{"empty segments kept", "/a/b.jpg", "a=1&&auth_key=" + good, now, true, "a=1&"},
		{"bare parameter kept", "/a/b.jpg", "download&auth_key=" + good + "&x-oss-process=image/resize,w_100", now, true, "download&x-oss-process=image/resize,w_100"},
	}
	for _, tc := range tests {
		stripped, ok := a.check(tc.path, tc.query, tc.now)
		if ok != tc.ok {
			t.Errorf("%s: ok = %v, want %v", tc.name, ok, tc.ok)
			continue
		}
		if ok && stripped != tc.stripped {
			t.Errorf("%s: stripped %q, want %q", tc.name, stripped, tc.stripped)
		}
		if strings.Contains(stripped, urlAuthVectorKey) {
			t.Errorf("%s: the key leaked into the query", tc.name)
		}
	}
	// An upper-case hash is the same hash.
	up := good[:len(good)-32] + strings.ToUpper(good[len(good)-32:])
	if _, ok := a.check("/a/b.jpg", "auth_key="+up, now); !ok {
		t.Error("upper-case hex refused")
	}
}

func TestNewURLAuth(t *testing.T) {
	const secret = "s3cr3t-value"
	env := map[string]string{"SET": secret, "EMPTY": ""}
	getenv := func(k string) string { return env[k] }
	for _, name := range []string{"EMPTY", "UNSET"} {
		_, err := newURLAuth(config.URLAuth{Enabled: true, KeyEnv: name, TTL: config.Duration(time.Minute)}, getenv)
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want one naming the variable", name, err)
		}
	}
	a, err := newURLAuth(config.URLAuth{Enabled: true, KeyEnv: "SET", TTL: config.Duration(time.Minute)}, getenv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprintf("%v %+v %#v %s", a, a, a, a), fmt.Sprintf("%v %+v %#v %s", *a, *a, *a, *a)} {
		if strings.Contains(s, secret) || strings.Contains(s, fmt.Sprint([]byte(secret))) {
			t.Errorf("key printed: %s", s)
		}
	}
	if _, err := newURLAuth(config.URLAuth{Enabled: true, KeyEnv: "SET"}, getenv); err == nil {
		t.Error("zero ttl accepted")
	}
	t.Setenv("GATEWAY_TEST_URL_AUTH_KEY", secret)
	if _, err := newURLAuth(config.URLAuth{Enabled: true, KeyEnv: "GATEWAY_TEST_URL_AUTH_KEY", TTL: config.Duration(time.Minute)}, nil); err != nil {
		t.Errorf("nil getenv: %v", err)
	}
}

func TestSignURLRoundTrip(t *testing.T) {
	a := urlAuthTest(t, 10*time.Minute)
	now := time.Unix(1700000000, 0)
	randHex := regexp.MustCompile(`auth_key=1700000000-([0-9a-f]{32})-0-[0-9a-f]{32}$`)
	for _, tc := range []struct{ raw, query string }{
		{"https://img.example.com/a/b.jpg", ""},
		{"https://img.example.com/a/b.jpg?x=1&y=%20z", "x=1&y=%20z"},
		{"https://img.example.com/dir/a%20b%2Bc.jpg", ""},
		{"https://img.example.com/图片/猫.jpg", ""},
		{"https://img.example.com/a b.jpg?download", "download"},
		{"https://img.example.com", ""},
		{"/relative/path.txt", ""},
		{"http://127.0.0.1:8080/x#frag", ""},
	} {
		signed, err := SignURL(tc.raw, urlAuthVectorKey, now)
		if err != nil {
			t.Errorf("%s: %v", tc.raw, err)
			continue
		}
		if strings.Contains(signed, urlAuthVectorKey) {
			t.Fatalf("%s: key in the signed URL", tc.raw)
		}
		target := strings.SplitN(signed, "#", 2)[0]
		if !strings.HasPrefix(target, "/") {
			u, _ := url.Parse(target)
			target = u.RequestURI()
		}
		if !randHex.MatchString(target) {
			t.Errorf("%s: signed %q does not end in auth_key=TS-<32 hex>-0-<md5>", tc.raw, signed)
		}
		// Through a real request parse, as the server will see it.
		r := httptest.NewRequest("GET", target, nil)
		stripped, ok := a.check(r.URL.EscapedPath(), r.URL.RawQuery, now.Add(time.Minute))
		if !ok || stripped != tc.query {
			t.Errorf("%s: signed %q: check = %q, %v; want %q, true", tc.raw, signed, stripped, ok, tc.query)
		}
		if _, ok := a.check(r.URL.EscapedPath(), r.URL.RawQuery, now.Add(11*time.Minute)); ok {
			t.Errorf("%s: accepted after the ttl", tc.raw)
		}
	}
	s1, _ := SignURL("https://a/x", urlAuthVectorKey, now)
	s2, _ := SignURL("https://a/x", urlAuthVectorKey, now)
	if s1 == s2 {
		t.Error("two signatures share a rand")
	}
	for _, bad := range []struct{ raw, key string }{
		{"https://a/x", ""},
		{"https://a/x?auth_key=1", urlAuthVectorKey},
		{"https://a/x?y=1&auth%5Fkey=1", urlAuthVectorKey},
		{"https://a/%zz", urlAuthVectorKey},
		{"mailto:someone@example.com", urlAuthVectorKey},
	} {
		if _, err := SignURL(bad.raw, bad.key, now); err == nil {
			t.Errorf("SignURL(%q, %q) accepted", bad.raw, bad.key)
		} else if bad.key != "" && strings.Contains(err.Error(), bad.key) {
			t.Errorf("SignURL error shows the key: %v", err)
		}
	}
}

func BenchmarkURLAuthCheck(b *testing.B) {
	a := urlAuthTest(b, 30*time.Minute)
	q := "x-oss-process=image/resize,w_100&auth_key=1444435200-0-0-" + urlAuthVectorHash
	now := time.Unix(urlAuthVectorTS+60, 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.check(urlAuthVectorPath, q, now); !ok {
			b.Fatal("refused")
		}
	}
}
