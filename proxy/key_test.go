package proxy

import (
	"net/url"
	"strings"
	"testing"
)

func TestObjectKey(t *testing.T) {
	tests := []struct {
		name, prefix, target string
		want                 string
		ok                   bool
	}{
		{"plain", "", "/a/b.jpg", "a/b.jpg", true},
		{"prefix", "site/", "/a/b.jpg", "site/a/b.jpg", true},
		{"root", "", "/", "", true},
		{"encoded space", "", "/a%20b.txt", "a b.txt", true},
		{"utf8", "", "/%E4%BD%A0%E5%A5%BD.txt", "你好.txt", true},
		{"plus stays", "", "/a+b", "a+b", true},
		{"trailing slash dir", "", "/dir/", "dir/", true},
		{"double slash inside", "", "/a//b", "a//b", true},
		{"dots in names", "", "/a/..b/c../.d", "a/..b/c../.d", true},
		{"dotdot", "", "/a/../b", "", false},
		{"dot", "", "/a/./b", "", false},
		{"trailing dotdot", "p/", "/a/..", "", false},
		{"leading dotdot", "p/", "/../secret", "", false},
		{"encoded dotdot", "p/", "/%2e%2e/secret", "", false},
		{"encoded dotdot upper", "p/", "/%2E%2E/secret", "", false},
		{"mixed encoded dot", "p/", "/.%2e/secret", "", false},
		{"encoded slash", "", "/a%2Fb", "", false},
		{"encoded slash lower", "", "/a%2fb", "", false},
		{"backslash", "", "/a\\b", "", false},
		{"encoded backslash", "", "/a%5Cb", "", false},
		{"encoded backslash lower", "", "/a%5cb", "", false},
		{"nul", "", "/a%00b", "", false},
		{"leading double slash", "", "//etc/passwd", "", false},
		{"invalid utf8", "", "/a%ffb", "", false},
		{"too long", "", "/" + strings.Repeat("a", 1024), "", false},
		{"too long with prefix", "pp/", "/" + strings.Repeat("a", 1021), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.target)
			if err != nil {
				t.Fatalf("parse %q: %v", tc.target, err)
			}
			got, ok := objectKey(tc.prefix, "", u)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("objectKey(%q, %q) = %q, %v; want %q, %v", tc.prefix, tc.target, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestObjectKeyPathStyle(t *testing.T) {
	for _, tc := range []struct {
		prefix, target, want string
		ok                   bool
	}{
		{"", "/bkt/a/b.jpg", "a/b.jpg", true},
		{"", "/bkt", "", true},
		{"", "/bkt/", "", true},
		{"p/", "/bkt/a.jpg", "p/a.jpg", true},
		{"", "/bkt2/a.jpg", "bkt2/a.jpg", true}, // another segment is a key as usual
		{"", "/bk/a.jpg", "bk/a.jpg", true},
		{"", "/a/bkt/x", "a/bkt/x", true}, // only the first segment
		{"", "/bkt/bkt/x", "bkt/x", true}, // dropped once
		{"", "/bkt//etc", "", false},      // no leading slash in what is left
		{"", "/bkt/../x", "", false},      // dot segments still refused
		{"", "/bkt%2Fa", "", false},       // encoded slash still refused
		{"p/", "/bkt/" + strings.Repeat("a", 1022), "", false},
	} {
		u, err := url.ParseRequestURI(tc.target)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := objectKey(tc.prefix, "bkt", u)
		if ok != tc.ok || got != tc.want {
			t.Errorf("objectKey(%q, bkt, %q) = %q, %v; want %q, %v", tc.prefix, tc.target, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEscapeKeyPath(t *testing.T) {
	tests := map[string]string{
		"a/b.jpg":     "/a/b.jpg",
		"a b+c":       "/a%20b%2Bc",
		"你":           "/%E4%BD%A0",
		"x~y_z-1.2":   "/x~y_z-1.2",
		"q?x#y%z":     "/q%3Fx%23y%25z",
		"dir/":        "/dir/",
		"semi;colon=": "/semi%3Bcolon%3D",
	}
	for in, want := range tests {
		if got := escapeKeyPath(in); got != want {
			t.Errorf("escapeKeyPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzObjectKey checks that whatever the path, a key that is accepted stays
// under the prefix, has no dot segment, backslash or NUL, and round-trips
// through the escaping the gateway sends to OSS.
func FuzzObjectKey(f *testing.F) {
	for _, s := range []string{"/a/b.jpg", "/../x", "/%2e%2e/x", "/a%2Fb", "/a\\b", "/%00", "//x", "/a/./b", "/你好"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			return
		}
		key, ok := objectKey("jail/", "", u)
		if !ok {
			return
		}
		if !strings.HasPrefix(key, "jail/") {
			t.Fatalf("key %q escaped the prefix", key)
		}
		for _, seg := range strings.Split(strings.TrimPrefix(key, "jail/"), "/") {
			if seg == "." || seg == ".." {
				t.Fatalf("key %q has a dot segment", key)
			}
		}
		if strings.ContainsAny(key, "\\\x00") {
			t.Fatalf("key %q has a backslash or NUL", key)
		}
		back, err := url.PathUnescape(escapeKeyPath(key))
		if err != nil || back != "/"+key {
			t.Fatalf("escapeKeyPath(%q) does not round-trip: %q %v", key, back, err)
		}
	})
}

func BenchmarkObjectKey(b *testing.B) {
	u, _ := url.ParseRequestURI("/images/2024/05/photo-0001.jpg")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := objectKey("", "", u); !ok {
			b.Fatal("refused")
		}
	}
}
