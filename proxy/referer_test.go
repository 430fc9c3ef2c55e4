package proxy

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/oss-gateway/gateway/config"
)

func TestRefererPolicy(t *testing.T) {
	type check struct {
		referer string
		want    bool
	}
	tests := []struct {
		name   string
		cfg    config.Referer
		checks []check
	}{
		{
			name: "allow_empty on with an allow list",
			cfg:  config.Referer{AllowEmpty: true, Allow: []string{"https://www.example.com/*"}},
			checks: []check{
				{"", true},
				{"https://www.example.com/a.html", true},
				{"https://www.other.com/a.html", false},
			},
		},
		{
			name: "allow_empty off with an allow list",
			cfg:  config.Referer{AllowEmpty: false, Allow: []string{"https://www.example.com/*"}},
			checks: []check{
				{"", false},
				{"https://www.example.com/a.html", true},
			},
		},
		{
			name: "allow_empty off without an allow list: empty Referer is not checked",
			cfg:  config.Referer{AllowEmpty: false},
			checks: []check{
				{"", true},
				{"https://anything.example/", true},
			},
		},
		{
			name: "allow_empty off, deny list only",
			cfg:  config.Referer{AllowEmpty: false, Deny: []string{"https://*.evil.com/*"}},
			checks: []check{
				{"", true},
				{"https://www.evil.com/x", false},
				{"https://www.good.com/x", true},
			},
		},
		{
			name: "allow_empty on, deny list only",
			cfg:  config.Referer{AllowEmpty: true, Deny: []string{"https://*.evil.com/*"}},
			checks: []check{
				{"", true},
				{"https://a.evil.com/", false},
			},
		},
		{
			name: "deny is checked before allow",
			cfg: config.Referer{
				Allow: []string{"https://*.example.com/*"},
				Deny:  []string{"https://evil.example.com/*"},
			},
			checks: []check{
				{"https://www.example.com/page", true},
				{"https://evil.example.com/page", false},
				{"https://EVIL.example.com/page", false},
			},
		},
		{
			// OSS's "block some sites, allow the rest" example.
			name: "allow * and a deny list",
			cfg:  config.Referer{Allow: []string{"*"}, Deny: []string{"*example.com"}},
			checks: []check{
				{"https://www.example.com", false},
				{"https://www.example.com/", true}, // whole-value: the path is not covered by the deny entry
				{"https://www.other.com/x", true},
				{"", false}, // allow_empty is false and the allow list is not empty
			},
		},
		{
			name: "whole value: no prefix matching",
			cfg:  config.Referer{Allow: []string{"https://www.example.com"}},
			checks: []check{
				{"https://www.example.com", true},
				{"https://www.example.com/", false},
				{"https://www.example.com.cn", false},
				{"https://www.example.com/page", false},
			},
		},
		{
			name: "allow_truncate_query drops the query and the fragment",
			cfg:  config.Referer{AllowTruncateQuery: true, Allow: []string{"https://www.example.com/page.html"}},
			checks: []check{
				{"https://www.example.com/page.html", true},
				{"https://www.example.com/page.html?a=1&b=2", true},
				{"https://www.example.com/page.html#top", true},
				{"https://www.example.com/page.html?a=1#top", true},
				{"https://www.example.com/other.html?page.html", false},
			},
		},
		{
			name: "without allow_truncate_query the query is matched",
			cfg:  config.Referer{Allow: []string{"https://www.example.com/page.html"}},
			checks: []check{
				{"https://www.example.com/page.html", true},
				{"https://www.example.com/page.html?a=1", false},
			},
		},
		{
			name: "truncate_path keeps scheme://host[:port]",
			cfg:  config.Referer{TruncatePath: true, Allow: []string{"https://www.example.com", "http://www.example.com:8080"}},
			checks: []check{
				{"https://www.example.com/deep/page.html?x=1", true},
				{"https://www.example.com?x=1", true},
				{"https://www.example.com#frag", true},
				{"https://www.example.com", true},
				{"http://www.example.com:8080/x", true},
				{"http://www.example.com/x", false}, // the port is part of the entry
				{"https://www.example.com:8080/x", false},
				{"https://www.example.com.evil.com/", false},
			},
		},
		{
			name: "truncate_path also drops the query without allow_truncate_query",
			cfg:  config.Referer{TruncatePath: true, AllowTruncateQuery: false, Allow: []string{"https://www.example.com"}},
			checks: []check{
				{"https://www.example.com?x=1", true},
			},
		},
		{
			name: "? is exactly one character",
			cfg:  config.Referer{Allow: []string{"https://www.?.aliyuncs.com/*"}},
			checks: []check{
				{"https://www.a.aliyuncs.com/x", true},
				{"https://www.é.aliyuncs.com/x", true}, // one character, two bytes
				{"https://www.ab.aliyuncs.com/x", false},
				{"https://www..aliyuncs.com/x", false},
			},
		},
		{
			name: "* is any run, also empty and across dots",
			cfg:  config.Referer{Allow: []string{"https://*.example.com/*"}},
			checks: []check{
				{"https://a.example.com/", true},
				{"https://a.b.c.example.com/p/q.html", true},
				{"https://.example.com/", true},
				{"https://example.com/", false},
				{"http://a.example.com/", false}, // the entry names https
				{"https://a.example.com", false}, // no path: "/*" needs the "/"
			},
		},
		{
			name: "scheme and host are case-insensitive, the path is not",
			cfg:  config.Referer{Allow: []string{"https://www.example.com/Page.html", "HTTP://Upper.Example.COM/X"}},
			checks: []check{
				{"https://www.example.com/Page.html", true},
				{"HTTPS://WWW.EXAMPLE.COM/Page.html", true},
				{"https://www.example.com/page.html", false},
				{"https://www.example.com/PAGE.HTML", false},
				{"http://upper.example.com/X", true},
				{"http://upper.example.com/x", false},
			},
		},
		{
			name: "leading * is scheme-agnostic",
			cfg:  config.Referer{Allow: []string{"*.example.com"}},
			checks: []check{
				{"https://img.example.com", true},
				{"http://img.example.com", true},
				{"img.example.com", true},
				{"https://IMG.EXAMPLE.COM", true},
				{"https://img.example.com/page", false}, // whole value: the path is not covered
				{"https://example.com", false},
			},
		},
		{
			name: "leading * with truncate_path covers every page",
			cfg:  config.Referer{TruncatePath: true, Allow: []string{"*.example.com"}},
			checks: []check{
				{"https://img.example.com/page?x=1", true},
				{"http://a.b.example.com/", true},
				{"https://example.com/", false},
			},
		},
		{
			name: "scheme-less entry matches any scheme, and no scheme",
			cfg:  config.Referer{Allow: []string{"www.example.com", "?.cdn.example.net/*"}},
			checks: []check{
				{"http://www.example.com", true},
				{"https://www.example.com", true},
				{"HTTPS://WWW.Example.com", true},
				{"android-app://www.example.com", true},
				{"www.example.com", true},
				{"https://www.example.com/", false},
				{"https://xwww.example.com", false},
				{"https://a.cdn.example.net/x", true},
				{"http://a.cdn.example.net/", true},
				{"https://ab.cdn.example.net/x", false},
			},
		},
		{
			name: "scheme-less deny entry cannot be dodged by switching scheme",
			cfg:  config.Referer{Allow: []string{"*"}, TruncatePath: true, Deny: []string{"evil.com"}},
			checks: []check{
				{"http://evil.com/x", false},
				{"https://evil.com/x", false},
				{"ftp://evil.com/x", false},
				{"https://EVIL.COM/x", false},
				{"https://good.com/x", true},
			},
		},
		{
			name: "entry with a scheme matches only that scheme",
			cfg:  config.Referer{Allow: []string{"https://www.example.com"}},
			checks: []check{
				{"https://www.example.com", true},
				{"http://www.example.com", false},
				{"www.example.com", false},
			},
		},
		{
			name: "ports",
			cfg:  config.Referer{AllowTruncateQuery: true, Allow: []string{"www.example.com:8080/*", "https://10.1.2.3:8443/*"}},
			checks: []check{
				{"http://www.example.com:8080/a", true},
				{"https://www.example.com:8080/a?b", true},
				{"http://www.example.com/a", false},
				{"http://www.example.com:80/a", false},
				{"https://10.1.2.3:8443/x", true},
				{"https://10.1.2.3/x", false},
			},
		},
		{
			// A documented consequence of whole-value "*": without "/*" or
			// truncate_path, a host-like entry also matches a path that
			// ends in the host. Tests pin it so that a change is deliberate.
			name: "* also eats slashes",
			cfg:  config.Referer{Allow: []string{"https://*.example.com"}},
			checks: []check{
				{"https://evil.com/x.example.com", true},
				{"https://evil.com/x.example.com/", false},
			},
		},
		{
			name: "over-long Referer is refused when there are patterns",
			cfg:  config.Referer{Allow: []string{"*"}},
			checks: []check{
				{"https://a.com/" + strings.Repeat("a", maxRefererLen), false},
				{"https://a.com/" + strings.Repeat("a", maxRefererLen-len("https://a.com/")), true},
			},
		},
		{
			name: "over-long Referer is allowed when there is nothing to match",
			cfg:  config.Referer{AllowEmpty: false},
			checks: []check{
				{"https://a.com/" + strings.Repeat("a", maxRefererLen), true},
			},
		},
		{
			name: "empty entries are ignored",
			cfg:  config.Referer{Allow: []string{""}, Deny: []string{""}},
			checks: []check{
				{"", true},
				{"https://x/", true},
			},
		},
		{
			name: "wildcards in the scheme",
			cfg:  config.Referer{Allow: []string{"http?://WWW.EXAMPLE.COM/*", "*://Star.Example.com/*"}},
			checks: []check{
				{"https://www.example.com/a", true},
				{"http://www.example.com/a", false},
				{"wss://star.example.com/a", true},
				{"https://STAR.example.com/a", true},
			},
		},
	}
	for _, tc := range tests {
		p := newRefererPolicy(tc.cfg)
		for _, c := range tc.checks {
			if got := p.allow(c.referer); got != c.want {
				t.Errorf("%s: allow(%q) = %v, want %v", tc.name, c.referer, got, c.want)
			}
			if want, ok := refererReference(tc.cfg, c.referer); ok && want != c.want {
				t.Errorf("%s: reference implementation disagrees with the table for %q", tc.name, c.referer)
			}
		}
	}
}

func TestRefererGlobIsNotExponential(t *testing.T) {
	// Classic backtracking blow-up input: each extra "*a" would double the
	// work of a naive recursive matcher.
	p := newRefererPolicy(config.Referer{Allow: []string{strings.Repeat("*a", 30) + "*b"}})
	ref := strings.Repeat("a", maxRefererLen)
	for range 50 {
		if p.allow(ref) {
			t.Fatal("matched without a b")
		}
	}
}

func TestRefererAllowDoesNotAllocate(t *testing.T) {
	p := newRefererPolicy(config.Referer{
		AllowTruncateQuery: true,
		Allow:              []string{"https://*.example.com/*", "www.example.org"},
		Deny:               []string{"*evil*"},
	})
	for _, ref := range []string{
		"https://img.example.com/a/b.html?x=1",
		"HTTPS://IMG.EXAMPLE.COM/a/b.html?x=1", // folding upper case is done in place
		"https://www.example.org",
		"https://www.other.com/a",
		"https://evil.example.com/",
	} {
		if n := testing.AllocsPerRun(100, func() { p.allow(ref) }); n != 0 {
			t.Errorf("allow(%q): %v allocations", ref, n)
		}
	}
}

// refererReference is the fuzz oracle: the policy written the obvious way,
// with strings functions and one regexp per entry built from the pattern.
// ok is false when the inputs are outside what a regexp can express the
// same way (an entry that is not valid UTF-8, or that holds U+FFFD, which
// Go's regexp also matches against any invalid input byte).
func refererReference(c config.Referer, referer string) (allowed, ok bool) {
	var allow, deny []*regexp.Regexp
	for _, list := range []struct {
		in  []string
		out *[]*regexp.Regexp
	}{{c.Allow, &allow}, {c.Deny, &deny}} {
		for _, e := range list.in {
			if e == "" {
				continue
			}
			if !utf8.ValidString(e) || strings.ContainsRune(e, utf8.RuneError) {
				return false, false
			}
			*list.out = append(*list.out, refererEntryRegexp(e))
		}
	}
	if referer == "" {
		return c.AllowEmpty || len(allow) == 0, true
	}
	if len(allow) == 0 && len(deny) == 0 {
		return true, true
	}
	if len(referer) > 4096 {
		return false, true
	}
	s := refererReferenceCanon(c, referer)
	for _, re := range deny {
		if re.MatchString(s) {
			return false, true
		}
	}
	if len(allow) == 0 {
		return true, true
	}
	for _, re := range allow {
		if re.MatchString(s) {
			return true, true
		}
	}
	return false, true
}

var (
	refererRefScheme        = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)
	refererRefPatternScheme = regexp.MustCompile(`^[A-Za-z*?][A-Za-z0-9+.*?-]*://`)
)

// refererReferenceTruncate applies the truncation options to referer.
func refererReferenceTruncate(c config.Referer, referer string) string {
	scheme := len(refererRefScheme.FindString(referer))
	host := len(referer)
	if i := strings.IndexAny(referer[scheme:], "/?#"); i >= 0 {
		host = scheme + i
	}
	switch {
	case c.TruncatePath:
		return referer[:host]
	case c.AllowTruncateQuery:
		if i := strings.IndexAny(referer, "?#"); i >= 0 {
			return referer[:i]
		}
	}
	return referer
}

// refererReferenceCanon truncates referer and lower-cases its scheme and
// authority.
func refererReferenceCanon(c config.Referer, referer string) string {
	s := refererReferenceTruncate(c, referer)
	scheme := len(refererRefScheme.FindString(s))
	host := len(s)
	if i := strings.IndexAny(s[scheme:], "/?#"); i >= 0 {
		host = scheme + i
	}
	return refererRefLower(s[:host]) + s[host:]
}

// refererRefLower lower-cases ASCII letters only.
func refererRefLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// refererEntryRegexp translates an entry: lower-cased scheme and host, "*"
// to ".*", "?" to ".", everything else literal, anchored at both ends; an
// entry without a scheme may be preceded by any "scheme://".
func refererEntryRegexp(e string) *regexp.Regexp {
	scheme := len(refererRefPatternScheme.FindString(e))
	host := len(e)
	if i := strings.IndexAny(e[scheme:], "/#"); i >= 0 {
		host = scheme + i
	}
	e = refererRefLower(e[:host]) + e[host:]
	var b strings.Builder
	b.WriteString(`(?s)^`)
	if scheme == 0 {
		b.WriteString(`(?:[a-z][a-z0-9+.-]*://)?`)
	}
	for _, r := range e {
		switch r {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

func FuzzRefererAllow(f *testing.F) {
	seeds := []struct {
		allow, deny string
		flags       uint8
		referer     string
	}{
		{"https://*.example.com/*", "https://evil.example.com/*", 0, "https://www.example.com/a"},
		{"*.example.com", "", 4, "https://img.example.com/x?y"},
		{"www.example.com\nhttps://www.?.aliyuncs.com", "", 2, "HTTP://WWW.EXAMPLE.COM?q"},
		{"", "*evil*", 1, ""},
		{"http?://A.B/*", "", 0, "https://a.b/é"},
		{"*a*a*a*b", "", 0, strings.Repeat("a", 100)},
		{"*", "", 0, "\xff\xfe"},
		{"a.com#X/y", "", 2, "a.com#X/y"},
	}
	for _, s := range seeds {
		f.Add(s.allow, s.deny, s.flags, s.referer)
	}
	f.Fuzz(func(t *testing.T, allowList, denyList string, flags uint8, referer string) {
		c := config.Referer{
			AllowEmpty:         flags&1 != 0,
			AllowTruncateQuery: flags&2 != 0,
			TruncatePath:       flags&4 != 0,
			Allow:              refererFuzzList(allowList),
			Deny:               refererFuzzList(denyList),
		}
		p := newRefererPolicy(c)
		got := p.allow(referer)
		if want, ok := refererReference(c, referer); ok && got != want {
			t.Fatalf("allow(%q) = %v, reference says %v (config %+v)", referer, got, want, c)
		}
		// A Referer equal to a literal allow entry (one its truncation
		// leaves alone) is allowed unless a deny entry matches it.
		for _, e := range c.Allow {
			if e == "" || strings.ContainsAny(e, "*?") || len(e) > maxRefererLen || refererReferenceTruncate(c, e) != e {
				continue
			}
			notDenied, ok := refererReference(config.Referer{Allow: []string{"*"}, Deny: c.Deny,
				AllowTruncateQuery: c.AllowTruncateQuery, TruncatePath: c.TruncatePath}, e)
			if !ok {
				continue
			}
			if notDenied && !p.allow(e) {
				t.Fatalf("literal allow entry %q refused (config %+v)", e, c)
			}
		}
	})
}

// refererFuzzList splits a fuzz string into entries, at most 8 of at most
// 64 bytes, so that one iteration stays cheap.
func refererFuzzList(s string) []string {
	var out []string
	for e := range strings.SplitSeq(s, "\n") {
		if len(out) == 8 {
			break
		}
		if len(e) > 64 {
			e = e[:64]
		}
		out = append(out, e)
	}
	return out
}

func BenchmarkRefererAllow(b *testing.B) {
	p := newRefererPolicy(config.Referer{
		AllowTruncateQuery: true,
		Allow:              []string{"https://*.example.com/*", "https://www.example.org/*", "*.example.net"},
		Deny:               []string{"https://evil.example.com/*"},
	})
	for _, bc := range []struct{ name, referer string }{
		{"match", "https://img.example.com/gallery/2024/photo.html?page=3"},
		{"nomatch", "https://hotlinker.example.info/gallery/2024/photo.html?page=3"},
		{"upper", "HTTPS://IMG.EXAMPLE.COM/gallery/2024/photo.html?page=3"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			want := bc.name != "nomatch"
			for b.Loop() {
				if p.allow(bc.referer) != want {
					b.Fatal("wrong answer")
				}
			}
		})
	}
}
