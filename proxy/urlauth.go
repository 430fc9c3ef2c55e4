package proxy

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/oss-gateway/gateway/config"
)

// urlAuthParam is the query parameter of Alibaba Cloud CDN type A URL
// authentication.
const urlAuthParam = "auth_key"

// maxAuthTSDigits bounds the auth_key timestamp: 18 decimal digits always
// fit an int64, so parsing cannot overflow (real timestamps have 10).
const maxAuthTSDigits = 18

// urlAuth is a site's CDN type A URL authentication: a URL carries
// ?auth_key=TS-RAND-UID-HASH, HASH = md5hex(path-TS-RAND-UID-KEY), and is
// good until TS+ttl. The gateway checks it itself so that an operator who
// moves from Alibaba Cloud CDN to the gateway keeps the URLs their
// application already signs, and so that only URLs issued by someone who
// holds the key are served.
//
// The key is held only here. String and GoString are defined so that a
// stray %v or %#v in a log line prints no secret.
type urlAuth struct {
	key []byte
	ttl time.Duration
}

// newURLAuth reads the key from the environment variable c.KeyEnv through
// getenv (os.Getenv when nil). The key never comes from the config file,
// so the file can be world-readable and checked in. An unset or empty
// variable is an error naming the variable, never printing a value.
func newURLAuth(c config.URLAuth, getenv func(string) string) (*urlAuth, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if c.KeyEnv == "" {
		return nil, errors.New("url_auth.key_env is not set")
	}
	key := getenv(c.KeyEnv)
	if key == "" {
		return nil, fmt.Errorf("environment variable %s (url_auth.key_env) is unset or empty", c.KeyEnv)
	}
	if c.TTL <= 0 {
		return nil, errors.New("url_auth.ttl must be positive")
	}
	return &urlAuth{key: []byte(key), ttl: c.TTL.D()}, nil
}

// String hides the key from fmt's %v and %s (value receiver, so that it
// covers both urlAuth and *urlAuth).
func (a urlAuth) String() string { return "urlAuth{key:<redacted>}" }

// GoString hides the key from fmt's %#v.
func (a urlAuth) GoString() string { return a.String() }

// check verifies auth_key for the request. path is the request path as the
// client sent it (escaped form, r.URL.EscapedPath()), which is what the
// signer hashed; rawQuery is the raw query. It returns the query with the
// auth_key parameter removed (the other parameters byte-identical and in
// order; meaningful only when ok) and whether the request is authorised:
// auth_key present exactly once (also counting a percent-encoded name, so
// that a second copy cannot hide from this check and reach OSS),
// well-formed TS-RAND-UID-HASH, TS+ttl not before now, and HASH equal to
// md5hex(path-TS-RAND-UID-key), compared in constant time. Neither the key
// nor the expected hash is ever returned.
func (a *urlAuth) check(path, rawQuery string, now time.Time) (stripped string, ok bool) {
	start, end, found := -1, -1, false
	for i := 0; i <= len(rawQuery); {
		j := i
		for j < len(rawQuery) && rawQuery[j] != '&' {
			j++
		}
		if isAuthKeyName(rawQuery[i:j]) {
			if found {
				return rawQuery, false // twice: which one would OSS or a cache believe?
			}
			start, end, found = i, j, true
		}
		i = j + 1
	}
	if !found {
		return rawQuery, false
	}
	param := rawQuery[start:end]
	value := ""
	if eq := strings.IndexByte(param, '='); eq >= 0 {
		value = param[eq+1:]
	}
	switch {
	case start == 0 && end < len(rawQuery): // first: drop it and the "&" after it
		stripped = rawQuery[end+1:]
	case end < len(rawQuery): // in the middle: the same, but it costs a copy
		stripped = rawQuery[:start] + rawQuery[end+1:]
	case start > 0: // last: drop the "&" before it
		stripped = rawQuery[:start-1]
	default:
		stripped = ""
	}
	return stripped, a.valid(path, value, now)
}

// valid checks one auth_key value against path at now.
func (a *urlAuth) valid(path, value string, now time.Time) bool {
	ts, rnd, uid, sum, ok := splitAuthKey(value)
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || now.Sub(time.Unix(sec, 0)) > a.ttl {
		return false
	}
	var want [md5.Size]byte
	if _, err := hex.Decode(want[:], []byte(sum)); err != nil {
		return false
	}
	got := authKeyHash(path, ts, rnd, uid, a.key)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// authKeyHash is md5(path-ts-rnd-uid-key). The input is assembled in a
// stack buffer when it fits, so a typical check does not allocate.
func authKeyHash(path, ts, rnd, uid string, key []byte) [md5.Size]byte {
	var buf [512]byte
	b := append(buf[:0], path...)
	b = append(b, '-')
	b = append(b, ts...)
	b = append(b, '-')
	b = append(b, rnd...)
	b = append(b, '-')
	b = append(b, uid...)
	b = append(b, '-')
	b = append(b, key...)
	return md5.Sum(b)
}

// splitAuthKey splits TS-RAND-UID-HASH: TS 1 to 18 decimal digits, RAND and
// UID non-empty runs of letters and digits (Alibaba's signers use a UUID
// without hyphens and "0"), HASH 32 hex digits (checked when decoded).
// Anything else is malformed.
func splitAuthKey(v string) (ts, rnd, uid, sum string, ok bool) {
	ts, rest, ok1 := strings.Cut(v, "-")
	rnd, rest, ok2 := strings.Cut(rest, "-")
	uid, sum, ok3 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || !ok3 || len(ts) > maxAuthTSDigits || !allAuthChars(ts, false) ||
		!allAuthChars(rnd, true) || !allAuthChars(uid, true) || len(sum) != 2*md5.Size {
		return "", "", "", "", false
	}
	return ts, rnd, uid, sum, true
}

// allAuthChars reports whether s is non-empty and all digits (letters too
// when letters is set).
func allAuthChars(s string, letters bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if '0' <= c && c <= '9' || letters && ('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			continue
		}
		return false
	}
	return true
}

// isAuthKeyName reports whether the query parameter p ("name=value" or
// "name") is named auth_key once percent-decoding and "+" are applied to
// its name, without allocating: a client must not be able to pass a second
// auth_key past check by spelling it "auth%5Fkey".
func isAuthKeyName(p string) bool {
	const want = urlAuthParam
	k := 0
	for i := 0; i < len(p) && p[i] != '='; i++ {
		c := p[i]
		switch c {
		case '%':
			if i+2 >= len(p) || !isAuthHex(p[i+1]) || !isAuthHex(p[i+2]) {
				return false
			}
			c = authUnhex(p[i+1])<<4 | authUnhex(p[i+2])
			i += 2
		case '+':
			c = ' '
		}
		if k >= len(want) || c != want[k] {
			return false
		}
		k++
	}
	return k == len(want)
}

// isAuthHex reports whether c is 0-9, a-f or A-F.
func isAuthHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// authUnhex is the value of hex digit c (which isAuthHex accepted).
func authUnhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// SignURL returns rawURL with a CDN type A auth_key appended: timestamp =
// now, rand = 32 random hex digits (no hyphens), uid = "0". The hash covers
// the URL's path in the escaped form the client will send, which is what
// check hashes on the way in. `gateway sign` uses it so operators can make
// test and share links without writing a signer. rawURL may be absolute or
// a path; an empty path is "/"; a URL that already has an auth_key is an
// error (it would be refused as a duplicate).
func SignURL(rawURL, key string, now time.Time) (string, error) {
	if key == "" {
		return "", errors.New("sign: the URL auth key is empty")
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	if u.Opaque != "" {
		return "", fmt.Errorf("sign: %q has no path to sign", rawURL)
	}
	if u.Path == "" {
		u.Path, u.RawPath = "/", ""
	}
	for q := u.RawQuery; q != ""; {
		p := q
		if i := strings.IndexByte(q, '&'); i >= 0 {
			p, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		if isAuthKeyName(p) {
			return "", fmt.Errorf("sign: %q already has an %s parameter", rawURL, urlAuthParam)
		}
	}
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	rnd := hex.EncodeToString(r[:])
	sum := authKeyHash(u.EscapedPath(), ts, rnd, "0", []byte(key))
	param := urlAuthParam + "=" + ts + "-" + rnd + "-0-" + hex.EncodeToString(sum[:])
	if u.RawQuery == "" {
		u.RawQuery = param
	} else {
		u.RawQuery += "&" + param
	}
	return u.String(), nil
}
