package proxy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
)

func TestRedactQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"x-oss-process=image/resize,w_100", "x-oss-process=image/resize,w_100"},
		{"OSSAccessKeyId=LTAI5t&Expires=1700000000&Signature=abc%2Bdef", "OSSAccessKeyId=REDACTED&Expires=1700000000&Signature=REDACTED"},
		{"x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=AK%2F20261121%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-date=20261121T000000Z&x-oss-expires=60&x-oss-signature=f00d",
			"x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=REDACTED&x-oss-date=20261121T000000Z&x-oss-expires=60&x-oss-signature=REDACTED"},
		{"security-token=CAIS&x-oss-security-token=CAIS", "security-token=REDACTED&x-oss-security-token=REDACTED"},
		{"auth_key=1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f", "auth_key=REDACTED"},
		{"SIGNATURE=abc", "SIGNATURE=REDACTED"},
		{"x-oss-%73ignature=leak", "x-oss-%73ignature=REDACTED"},
		{"download&signature", "download&signature"},
		{"a=1&&b=2", "a=1&&b=2"},
	} {
		if got := redactQuery(tc.in); got != tc.want {
			t.Errorf("redactQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("a", 4000)
	if got := redactQuery(long); len(got) > maxLogField+3 {
		t.Errorf("a 4000-byte query is logged as %d bytes", len(got))
	}
}

// The access log's cache field is X-Cache in lower case for every answer
// that went through the object cache, and empty for the others: a site
// without cache, a query the cache leaves to OSS, a HEAD miss. Both log
// formats carry it.
func TestAccessLogCacheField(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.CreateBucket("pub-bucket", ossemu.PublicRead)
	emu.PutObject("pub-bucket", "hello.txt", []byte("hello"), http.Header{"Content-Type": {"text/plain"}})
	emu.PutObject("pub-bucket", "other.txt", []byte("other"), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	for _, format := range []string{"json", "text"} {
		t.Run(format, func(t *testing.T) {
			site := func(name, cache string) string {
				return fmt.Sprintf("\n[[site]]\nname = %q\ndomains = [\"%s.test\"]\nbucket = \"pub-bucket\"\nregion = \"cn-hangzhou\"\nendpoint = \"http://%s\"\naccess = \"public\"\ntls = \"off\"\n%s",
					name, name, ln.Addr(), cache)
			}
			cfg, err := config.Parse("test.toml", []byte(fmt.Sprintf(
				"[server]\nhttps_listen = \"\"\n[cache]\npath = %q\nmax_size = \"64MiB\"\nmax_object_size = \"8MiB\"\n%s%s",
				t.TempDir(), site("c", "[site.cache]\nenabled = true\nttl = \"1m\"\n"), site("n", ""))))
			if err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			var lh slog.Handler = slog.NewJSONHandler(&logs, nil)
			if format == "text" {
				lh = slog.NewTextHandler(&logs, nil)
			}
			h, err := New(cfg, Options{AccessLog: slog.New(lh)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = h.Close() })

			for _, tc := range []struct {
				method, url string
				status      int
				want        string
			}{
				{"GET", "http://c.test/hello.txt", 200, "miss"},
				{"GET", "http://c.test/hello.txt", 200, "hit"},
				{"HEAD", "http://c.test/hello.txt", 200, "hit"},
				// OSS must judge an override (and refuses it anonymously).
				{"GET", "http://c.test/hello.txt?response-content-type=text/html", 403, ""},
				{"HEAD", "http://c.test/other.txt", 200, ""}, // HEAD misses go to OSS
				{"GET", "http://n.test/hello.txt", 200, ""},  // no [site.cache]
			} {
				logs.Reset()
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.url, nil))
				if rec.Code != tc.status {
					t.Fatalf("%s %s: %d, want %d", tc.method, tc.url, rec.Code, tc.status)
				}
				if xc := strings.ToLower(rec.Header().Get("X-Cache")); xc != tc.want {
					t.Fatalf("%s %s: X-Cache %q, want %q", tc.method, tc.url, xc, tc.want)
				}
				got, ok := logField(t, format, logs.String(), "cache")
				if !ok || got != tc.want {
					t.Errorf("%s %s: cache field %q (present %v), want %q in\n%s", tc.method, tc.url, got, ok, tc.want, logs.String())
				}
			}
		})
	}
}

// logField reads field from the single access log line in out, written by
// slog's JSON or text handler.
func logField(t *testing.T, format, out, field string) (string, bool) {
	t.Helper()
	if strings.Count(out, "\n") != 1 {
		t.Fatalf("want one log line, got %q", out)
	}
	if format == "json" {
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		v, ok := m[field].(string)
		return v, ok
	}
	for _, kv := range strings.Fields(out) {
		if v, ok := strings.CutPrefix(kv, field+"="); ok {
			if v == `""` {
				v = ""
			}
			return v, true
		}
	}
	return "", false
}
