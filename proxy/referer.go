package proxy

import (
	"unicode/utf8"

	"github.com/oss-gateway/gateway/config"
)

// maxRefererLen bounds the Referer values the policy will match. Browsers
// never send a longer one (they cut the referrer to its origin past 4096
// bytes), and the glob matcher costs O(len(pattern)·len(referer)) in the
// worst case, so an over-long value is refused instead of matched: a client
// cannot buy CPU time with a 64 KiB header, and cannot slip past a deny
// entry that would have matched either.
const maxRefererLen = 4096

// refererPolicy is a site's OSS hotlink protection (PutBucketReferer),
// compiled once per config load so that allow does no parsing and no
// allocation per request.
//
// Matching, as OSS documents it:
//
//   - An entry must match the WHOLE Referer, after truncation: allow_truncate_query
//     drops "?…" and "#…"; truncate_path keeps only scheme://host[:port].
//   - "*" matches any run of characters (also none, also "/" and ":"), "?"
//     exactly one character. So "https://*.example.com/*" is every page of
//     every subdomain over https, while "https://*.example.com" matches only
//     the bare origin (or everything with truncate_path), and, because "*"
//     also eats "/", "https://evil.com/x.example.com" too: an entry that
//     ends in a host should be written with "/*" or used with truncate_path.
//   - The scheme and host are compared case-insensitively (the entry's part
//     before its first "/" or "#" and the Referer's scheme://authority are
//     lower-cased); the path and query stay case-sensitive.
//   - An entry without a scheme ("www.example.com", "*.example.com", "?.cdn.net")
//     matches whatever scheme the Referer carries, as if it were written
//     "http://…", "https://…" or with any other scheme, and also a Referer
//     that has no scheme at all (a non-browser client's "www.example.com").
//     The project's reference docs (shared/reference) are silent on what a
//     scheme-less entry means; OSS's console help writes its examples
//     without a scheme ("www.aliyun.com", "*.aliyun.com", "aliyun?.com") as
//     matching those sites, and this is the reading that never lets a
//     client dodge a deny entry by switching scheme. An entry that names a
//     scheme ("https://www.example.com") matches that scheme only. A leading
//     "*" is scheme-agnostic on its own: "*.example.com" matches
//     "https://img.example.com" because the "*" eats "https://img".
//   - Ports are plain text: "www.example.com:8080" matches only that port,
//     and "https://a.com" does not match "https://a.com:443".
type refererPolicy struct {
	allowEmpty bool
	truncQuery bool
	truncPath  bool
	allowList  []refererPattern
	denyList   []refererPattern
}

// refererPattern is one compiled allow or deny entry.
type refererPattern struct {
	// glob is the entry with its scheme and host part lower-cased (ASCII).
	glob string
	// anyScheme is set when the entry names no scheme: it is then also
	// tried against the Referer with its "scheme://" removed.
	anyScheme bool
}

// newRefererPolicy compiles c. Entries are lower-cased in their scheme and
// host part here, once, so that allow only has to fold the Referer.
func newRefererPolicy(c config.Referer) *refererPolicy {
	p := &refererPolicy{
		allowEmpty: c.AllowEmpty,
		truncQuery: c.AllowTruncateQuery || c.TruncatePath,
		truncPath:  c.TruncatePath,
	}
	for _, e := range c.Allow {
		if e != "" {
			p.allowList = append(p.allowList, compileRefererPattern(e))
		}
	}
	for _, e := range c.Deny {
		if e != "" {
			p.denyList = append(p.denyList, compileRefererPattern(e))
		}
	}
	return p
}

// compileRefererPattern lower-cases the entry's scheme and host part (up to
// its first "/" or "#" after an optional "scheme://", where the scheme may
// itself contain wildcards) and notes whether it names a scheme.
func compileRefererPattern(e string) refererPattern {
	start := patternSchemeEnd(e)
	end := len(e)
	for i := start; i < len(e); i++ {
		if e[i] == '/' || e[i] == '#' {
			end = i
			break
		}
	}
	return refererPattern{glob: foldPrefixASCII(e, end), anyScheme: start == 0}
}

// allow reports whether a request whose Referer header is referer ("" when
// absent) may proceed. The order is OSS's: empty Referer, then the deny
// list, then the allow list. It does not allocate.
func (p *refererPolicy) allow(referer string) bool {
	if referer == "" {
		// With an empty allow list OSS does not check for an empty
		// Referer at all (or every request would be refused).
		return p.allowEmpty || len(p.allowList) == 0
	}
	if len(p.allowList) == 0 && len(p.denyList) == 0 {
		return true
	}
	if len(referer) > maxRefererLen {
		return false
	}
	s, schemeEnd, fold := p.view(referer)
	for i := range p.denyList {
		if p.denyList[i].match(s, schemeEnd, fold) {
			return false
		}
	}
	if len(p.allowList) == 0 {
		return true
	}
	for i := range p.allowList {
		if p.allowList[i].match(s, schemeEnd, fold) {
			return true
		}
	}
	return false
}

// view returns the part of referer the patterns are matched against (after
// truncation, a substring, so no copy), the index just past its
// "scheme://" (0 without one), and the length of its scheme://authority
// prefix, the part matched case-insensitively.
func (p *refererPolicy) view(referer string) (s string, schemeEnd, fold int) {
	schemeEnd = refererSchemeEnd(referer)
	fold = len(referer)
	for i := schemeEnd; i < len(referer); i++ {
		if c := referer[i]; c == '/' || c == '?' || c == '#' {
			fold = i
			break
		}
	}
	end := len(referer)
	switch {
	case p.truncPath:
		end = fold
	case p.truncQuery:
		for i := schemeEnd; i < len(referer); i++ {
			if c := referer[i]; c == '?' || c == '#' {
				end = i
				break
			}
		}
	}
	return referer[:end], schemeEnd, min(fold, end)
}

// match reports whether the pattern matches the (truncated) Referer s whose
// first fold bytes are compared case-insensitively.
func (rp *refererPattern) match(s string, schemeEnd, fold int) bool {
	if refererGlob(rp.glob, s, fold) {
		return true
	}
	return rp.anyScheme && schemeEnd > 0 && refererGlob(rp.glob, s[schemeEnd:], fold-schemeEnd)
}

// refererSchemeEnd returns the index just past a leading "scheme://" in s
// (scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), RFC 3986), or 0.
func refererSchemeEnd(s string) int {
	if len(s) == 0 || !isSchemeLetter(s[0]) {
		return 0
	}
	i := 1
	for i < len(s) && (isSchemeLetter(s[i]) || '0' <= s[i] && s[i] <= '9' || s[i] == '+' || s[i] == '-' || s[i] == '.') {
		i++
	}
	if len(s)-i >= 3 && s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
		return i + 3
	}
	return 0
}

// patternSchemeEnd is refererSchemeEnd for an entry, whose scheme may be
// written with wildcards ("http?://", "*://"): a scheme-like run of letters,
// digits, "+-.*?" not starting with a digit, "+", "-" or ".".
func patternSchemeEnd(s string) int {
	if len(s) == 0 || !(isSchemeLetter(s[0]) || s[0] == '*' || s[0] == '?') {
		return 0
	}
	i := 1
	for i < len(s) {
		c := s[i]
		if !(isSchemeLetter(c) || '0' <= c && c <= '9' || c == '+' || c == '-' || c == '.' || c == '*' || c == '?') {
			break
		}
		i++
	}
	if len(s)-i >= 3 && s[i] == ':' && s[i+1] == '/' && s[i+2] == '/' {
		return i + 3
	}
	return 0
}

// refererGlob reports whether pattern p matches all of s, where "*" matches
// any run of characters and "?" exactly one; bytes of s before index fold
// are lower-cased (ASCII) before they are compared. It is the classic
// two-pointer matcher that remembers only the last "*": a later "*"
// supersedes an earlier one, so there is no exponential backtracking, the
// worst case is O(len(p)·len(s)) and nothing is allocated. "?" and "*"
// advance over whole UTF-8 characters (an invalid byte counts as one), so
// "?" means one character, not one byte.
func refererGlob(p, s string, fold int) bool {
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch c := p[pi]; c {
			case '*':
				star, mark = pi, si
				pi++
				continue
			case '?':
				pi++
				si += globCharLen(s, si)
				continue
			default:
				b := s[si]
				if si < fold && 'A' <= b && b <= 'Z' {
					b += 'a' - 'A'
				}
				if c == b {
					pi++
					si++
					continue
				}
			}
		}
		if star < 0 {
			return false
		}
		// Let the last "*" take one more character and retry after it.
		mark += globCharLen(s, mark)
		pi, si = star+1, mark
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// globCharLen is the length of the UTF-8 character at s[i] (1 for ASCII and for
// an invalid byte), kept cheap for the ASCII case every real Referer hits.
func globCharLen(s string, i int) int {
	if s[i] < utf8.RuneSelf {
		return 1
	}
	_, n := utf8.DecodeRuneInString(s[i:])
	return n
}

// isSchemeLetter reports whether c is A-Z or a-z.
func isSchemeLetter(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// foldPrefixASCII returns s with its first n bytes lower-cased (ASCII
// only, so that it agrees byte for byte with the folding done at match
// time); s itself when there is nothing to change. Used at construction.
func foldPrefixASCII(s string, n int) string {
	i := 0
	for i < n && !('A' <= s[i] && s[i] <= 'Z') {
		i++
	}
	if i == n {
		return s
	}
	b := []byte(s)
	for ; i < n; i++ {
		if 'A' <= b[i] && b[i] <= 'Z' {
			b[i] += 'a' - 'A'
		}
	}
	return string(b)
}
