package cache

import (
	"net/http"
	"time"
)

// Meta is what the cache keeps about a response besides its body: enough
// for the proxy to answer a hit (status, headers), to answer conditional and
// Range requests itself (Size, ETag, LastModified) and to decide freshness
// (Stored) with the site's ttl and stale_if_error, which the cache does not
// know because one cache serves sites with different settings.
type Meta struct {
	// Status is the HTTP status OSS answered; only 200 is ever stored, but
	// a Fill hands any status to its waiters (a 304 of a revalidation, a
	// 404).
	Status int
	// Header is the response header as OSS sent it (the proxy decides what
	// to forward). It is shared by every reader of the entry: read-only,
	// Clone it before changing it.
	Header http.Header
	// Size is the body length in bytes, -1 when OSS did not say
	// (the cache then learns it as the body arrives).
	Size int64
	// ETag is the validator for If-None-Match and revalidation.
	ETag string
	// LastModified is the validator for If-Modified-Since; zero if absent.
	LastModified time.Time
	// Stored is when the response was received from OSS or last
	// revalidated (Touch); the age of the entry is measured from it.
	Stored time.Time
}

// Age is how long ago the entry was stored or last revalidated; the proxy
// compares it with the site's ttl (fresh) and ttl+stale_if_error (usable
// when OSS fails).
func (m Meta) Age(now time.Time) time.Duration { return now.Sub(m.Stored) }
