package proxy

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := trustedSet{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("100.64.0.0/10")}
	tests := []struct {
		name    string
		remote  string
		xff     []string
		trusted trustedSet
		want    string
	}{
		{"no proxies", "203.0.113.9:5000", []string{"1.2.3.4"}, nil, "203.0.113.9"},
		{"untrusted peer lies", "203.0.113.9:5000", []string{"1.2.3.4"}, trusted, "203.0.113.9"},
		{"trusted slb", "100.64.1.2:5000", []string{"198.51.100.7"}, trusted, "198.51.100.7"},
		{"client prepends a lie", "100.64.1.2:5000", []string{"6.6.6.6, 198.51.100.7"}, trusted, "198.51.100.7"},
		{"two trusted hops", "10.1.1.1:1", []string{"198.51.100.7, 100.64.0.5"}, trusted, "198.51.100.7"},
		{"several headers", "10.1.1.1:1", []string{"6.6.6.6", "198.51.100.7"}, trusted, "198.51.100.7"},
		{"garbage stops the walk", "10.1.1.1:1", []string{"198.51.100.7, bogus"}, trusted, "10.1.1.1"},
		{"all trusted", "10.1.1.1:1", []string{"10.2.2.2"}, trusted, "10.2.2.2"},
		{"ipv6 peer", "[2001:db8::5]:443", nil, trusted, "2001:db8::5"},
		{"mapped v4", "[::ffff:203.0.113.9]:80", nil, nil, "203.0.113.9"},
		{"trusted no xff", "10.1.1.1:1", nil, trusted, "10.1.1.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := clientIP(tc.remote, tc.xff, tc.trusted); got.String() != tc.want {
				t.Fatalf("clientIP = %v, want %s", got, tc.want)
			}
		})
	}
}

func TestForwardedFor(t *testing.T) {
	trusted := trustedSet{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		remote string
		prior  []string
		want   string
	}{
		{"192.0.2.1:5678", nil, "192.0.2.1"},
		{"192.0.2.1:5678", []string{"203.0.113.9"}, "192.0.2.1"}, // untrusted peer: its claim is dropped
		{"[2001:db8::1]:443", nil, "2001:db8::1"},
		{"[::ffff:192.0.2.1]:443", nil, "192.0.2.1"},
		{"10.1.2.3:80", []string{"203.0.113.9", "198.51.100.1"}, "203.0.113.9, 198.51.100.1, 10.1.2.3"},
		{"10.1.2.3:80", nil, "10.1.2.3"},
		{"garbage", nil, ""},
	} {
		r := &http.Request{RemoteAddr: tc.remote, Header: http.Header{}}
		if tc.prior != nil {
			r.Header["X-Forwarded-For"] = tc.prior
		}
		if got := forwardedFor(r, trusted); got != tc.want {
			t.Errorf("forwardedFor(%q, %q) = %q, want %q", tc.remote, tc.prior, got, tc.want)
		}
	}
}
