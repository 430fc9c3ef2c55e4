// Package cache is the gateway's object cache: GET responses of the sites
// that enable [site.cache], kept on disk (every stored object, so the cache
// survives a restart) with the hot small bodies also in memory.
//
// # What the proxy does with it
//
// The cache stores and serves bytes; the HTTP decisions stay in the proxy:
// what is cacheable (200, an ETag, no Cache-Control private/no-store),
// freshness (Meta.Stored against the site's ttl and stale_if_error),
// conditional and Range answers, header scrubbing, and
// gateway_cache_requests_total{site,result}. The flow per cache-enabled GET:
//
//	k := cache.Key{Site: site.Name, Object: key, Process: q.Get("x-oss-process"), VersionID: q.Get("versionId")}
//	obj, hit := c.Lookup(k)
//	if hit {
//		defer obj.Close()
//		if obj.Meta().Age(now) <= ttl {
//			serve(w, r, obj) // 304 / 206 / 200 from obj, see below; result "hit"
//			return
//		}
//	}
//	fl := c.Fill(k, fetch) // fetch: a GET to OSS; If-None-Match: obj's ETag when hit
//	defer fl.Close()
//	meta, err := fl.Wait(r.Context())
//	switch {
//	case err != nil && hit && obj.Meta().Age(now) <= ttl+staleIfError:
//		serve(w, r, obj) // OSS down, 5xx or timeout: result "stale"
//	case err != nil:
//		// 502/504 as without a cache
//	case meta.Status == http.StatusNotModified && hit:
//		serve(w, r, obj) // fetch already called c.Touch(k, time.Now()); result "revalidated"
//	default:
//		// copy meta.Header, WriteHeader(meta.Status), then io.Copy(w, fl);
//		// a Read error means the body is incomplete: panic(http.ErrAbortHandler)
//	}
//
// serve answers If-None-Match / If-Modified-Since from Meta.ETag and
// Meta.LastModified, a single Range with obj.WriteRangeTo(w, off, n), and
// the rest with obj.WriteTo(w). For a file-backed Object both reach the
// ResponseWriter's ReadFrom with an *io.LimitedReader over the *os.File, so
// net/http sends it with sendfile(2) on plain-HTTP connections. A Range on a
// miss can Seek the Fill before copying. PUT, POST and DELETE through the
// gateway call PurgeObject(site, key); POST /-/purge calls PurgeObject,
// PurgePrefix or PurgeSite.
//
// The fetch function runs once for all concurrent callers of a key, on a
// context only Close cancels; it should set Meta.Size from Content-Length
// (-1 if absent), return cacheable by the rules above, and return an error
// for the outcomes the proxy answers from a stale copy (no connection,
// timeout, 5xx), so every waiter sees them the same way. On a 304 it calls
// Touch and returns the 304 (cacheable false): waiters then serve their
// stored Object.
//
// # Layout and guarantees
//
// Each entry is one file Dir/ab/<sha256(key)>-<generation>: a header with
// the key, the Meta and the body's length and SHA-256, then the body (see
// format.go). Files are written as Dir/.tmp-* and renamed into place only
// when complete; Open deletes temporary files and any file whose header,
// size or name does not check out, and each loaded entry's body is verified
// against its SHA-256 on its first hit. So a crash, a torn write or a
// flipped bit is a miss, never a wrong body. No fsync is issued: a power
// loss may lose recent entries (or leave a file the checks reject) but
// cannot make one serve wrong bytes.
//
// Dir/sites.json records a fingerprint of each cache-enabled site's
// definition (SyncSites at start, ChangeSites at each reload, both written
// by rename), so a site whose bucket, prefix or anything else changed,
// even while no process had the directory open, loses what it stored
// under its old definition instead of serving it.
//
// The disk tier evicts the least recently used entries past MaxSize
// (exactly, to the millisecond; hits record their time without a lock and
// eviction re-sorts lazily, see lruHeap). After a restart the order starts
// from the files' modification times.
//
// # Why otter for the memory tier
//
// Both candidates were measured (2 vCPU, 64 MiB weighted by body size,
// 100,000 keys with Zipf s=1.1, 1-64 KiB values; Get and Set on a miss):
//
//	                          otter v2.4.0       ristretto v2.4.2
//	parallel get/set (2 CPU)  383 ns/op, 76% hit 243 ns/op, 78% hit, 1 alloc/op
//	Get hit (2 CPU)           14 ns/op           55 ns/op
//	10,000 x 16 KiB into 64 MiB, Set+Wait each:
//	  Sets not visible after  0                  1,353 (admission or dropped)
//	  resident at the end     64.0 MiB (100%)    63.8 MiB (99.7%)
//	  evicted + resident      = all Sets         21 MiB of Sets in neither
//	Get right after Set       1000/1000 hits     0/1000 (Sets apply async)
//
// Ristretto is a little faster under a Set-heavy mix, but its Sets are
// applied asynchronously and may be dropped, so a Lookup right after a fill
// could miss, and its byte accounting is not what the eviction callback
// reports. Otter's Set is visible at once, its weight bound is exact, its
// deletion listener reports every eviction (for
// gateway_cache_evictions_total), and its W-TinyLFU keeps the frequently hit
// bodies, which is what the memory tier is for. The disk tier does not use
// otter: it must be least-recently-used (W-TinyLFU may evict a new entry at
// once), carry per-entry state (verified, stamp slots, file paths) and
// purge by site and prefix; a map, a lazily keyed heap and a per-site map
// do that with no other dependency.
package cache
