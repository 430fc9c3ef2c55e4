package proxy

import "testing"

func TestNormalizeHost(t *testing.T) {
	tests := map[string]string{
		"img.example.com":       "img.example.com",
		"IMG.Example.COM":       "img.example.com",
		"img.example.com.":      "img.example.com",
		"img.example.com:8080":  "img.example.com",
		"IMG.example.com.:443":  "img.example.com",
		"127.0.0.1:80":          "127.0.0.1",
		"[::1]:8080":            "::1",
		"[2001:DB8::1]":         "2001:db8::1",
		"[2001:db8:0:0::1]:443": "2001:db8::1",
		"[::1":                  "",
		"[nonsense]:80":         "",
		"":                      "",
		"2001:db8::1":           "2001:db8::1",
	}
	for in, want := range tests {
		if got := normalizeHost(in); got != want {
			t.Errorf("normalizeHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkRouteLookup(b *testing.B) {
	rt := router{}
	for _, d := range []string{"a.example.com", "img.example.com", "cdn.example.com", "files.example.org"} {
		rt[d] = &site{name: d}
	}
	b.ReportAllocs()
	for b.Loop() {
		if rt.lookup("img.example.com:443") == nil {
			b.Fatal("no site")
		}
	}
}
