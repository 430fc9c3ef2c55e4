package server

import (
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdminPurge(t *testing.T) {
	type call struct {
		site, key string
		prefix    bool
	}
	var calls []call
	allow := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	a := newAdminHandler(prometheus.NewRegistry(), func() []netip.Prefix { return allow }, nil, &atomic.Bool{}, nil)
	a.purge = func(site, key string, prefix bool) (int, error) {
		if site != "s" {
			return 0, errors.New("no such site")
		}
		calls = append(calls, call{site, key, prefix})
		return 3, nil
	}
	do := func(method, target, remote string) (int, string) {
		r := httptest.NewRequest(method, target, nil)
		r.RemoteAddr = remote
		w := httptest.NewRecorder()
		a.ServeHTTP(w, r)
		return w.Code, w.Body.String()
	}
	const ok = "192.0.2.1:1234"
	for _, c := range []struct {
		method, target, remote string
		code                   int
		body                   string
	}{
		{"POST", "/-/purge?site=s&key=a/b.jpg", ok, 200, "3\n"},
		{"POST", "/-/purge?site=s&prefix=a/", ok, 200, "3\n"},
		{"POST", "/-/purge?site=nope&key=a", ok, 400, "no such site"},
		{"POST", "/-/purge?site=s", ok, 400, ""},
		{"POST", "/-/purge?site=s&key=a&prefix=b", ok, 400, ""},
		{"POST", "/-/purge?site=s&key=", ok, 400, ""},
		{"GET", "/-/purge?site=s&key=a", ok, 405, ""},
		{"POST", "/-/purge?site=s&key=a", "203.0.113.1:1", 403, ""},
	} {
		code, body := do(c.method, c.target, c.remote)
		if code != c.code || !strings.Contains(body, c.body) {
			t.Errorf("%s %s from %s: %d %q, want %d %q", c.method, c.target, c.remote, code, body, c.code, c.body)
		}
	}
	if len(calls) != 2 || calls[0] != (call{"s", "a/b.jpg", false}) || calls[1] != (call{"s", "a/", true}) {
		t.Fatalf("calls %+v", calls)
	}
}
