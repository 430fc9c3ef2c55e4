package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/oss-gateway/gateway/cache"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// X-Cache values and gateway_cache_requests_total result labels.
const (
	cacheHit         = "hit"
	cacheMiss        = "miss"
	cacheRevalidated = "revalidated"
	cacheStale       = "stale"
)

// openCache opens the object cache of [cache], or returns nil when its path
// is empty.
func openCache(c config.Cache, m *Metrics, o Options) (*cache.Cache, error) {
	if c.Path == "" {
		return nil, nil
	}
	oc, err := cache.Open(cache.Options{
		Dir:           c.Path,
		MaxSize:       int64(c.MaxSize),
		Memory:        int64(c.Memory),
		MaxObjectSize: int64(c.MaxObjectSize),
		Bytes:         m.CacheBytes,
		Evictions:     m.CacheEvictions,
		Logger:        o.Logger,
		Now:           o.CacheNow,
	})
	if err != nil {
		return nil, err // cache.Open's errors name the cache and the directory
	}
	return oc, nil
}

// Close releases what the Handler holds beyond its requests: the object
// cache (its running fills are cut, its directory lock released).
func (h *Handler) Close() error {
	if h.cache == nil {
		return nil
	}
	return h.cache.Close()
}

// ErrNoSuchSite is PurgeCache's error for a site name the config lacks.
var ErrNoSuchSite = errors.New("no such site")

// PurgeCache drops the cached entries of site's key (every x-oss-process
// and versionId of it), or with prefix of every key starting with it; key
// is as in the client's URL path, without the leading slash or the site's
// prefix. It returns how many entries were dropped: 0 when the site does
// not use the cache.
func (h *Handler) PurgeCache(siteName, key string, prefix bool) (int, error) {
	st := h.state.Load()
	for _, s := range st.sites {
		if s.name != siteName {
			continue
		}
		if s.cache == nil {
			return 0, nil
		}
		if s.pathBucket != "" {
			// A path-style client's path starts with the bucket, as
			// objectKey reads it.
			if rest, ok := strings.CutPrefix(key, s.pathBucket); ok && (rest == "" || rest[0] == '/') {
				key = strings.TrimPrefix(rest, "/")
			}
		}
		if prefix {
			return s.cache.PurgePrefix(s.name, s.prefix+key), nil
		}
		return s.cache.PurgeObject(s.name, s.prefix+key), nil
	}
	return 0, ErrNoSuchSite
}

// purgeChangedSites drops the cached entries of the sites that changed,
// were removed or stopped using the cache: what they stored was answered
// under the old rules (bucket, prefix, headers), so none of it is trusted
// under the new ones. old is the config a reload replaces; nil at start,
// where the fingerprints the cache directory recorded at the last start or
// reload stand for it, so a config edited while the gateway was stopped
// is caught too. cur's fingerprints are recorded for the next start.
func (h *Handler) purgeChangedSites(old, cur *config.Config) {
	if h.cache == nil {
		return
	}
	now := cacheFingerprints(cur)
	var dropped map[string]int
	var err error
	if old == nil {
		dropped, err = h.cache.SyncSites(now)
	} else {
		dropped, err = h.cache.ChangeSites(cacheFingerprints(old), now)
	}
	for site, n := range dropped {
		h.opts.Logger.Info("cache: site changed, its cached objects are dropped", "site", site, "entries", n)
	}
	if err != nil {
		// The purges are done; the next start may drop entries again.
		h.opts.Logger.Warn("cache: recording the sites' fingerprints", "err", err)
	}
}

// cacheFingerprints are the fingerprints of cfg's cache-enabled sites.
func cacheFingerprints(cfg *config.Config) map[string]string {
	fps := map[string]string{}
	for i := range cfg.Sites {
		if s := &cfg.Sites[i]; s.Cache.Enabled {
			fps[s.Name] = siteFingerprint(s)
		}
	}
	return fps
}

// siteFingerprint is the one test of "the site changed" for the cache,
// at a reload as across a restart: the SHA-256 of every key of the
// [[site]] table (parsed values included) that is not zero, so any change
// to the table drops the site's entries, while a release that adds a key
// whose default is zero keeps them. It is "" (matching nothing, so the
// site's entries are always dropped) for a table that cannot be encoded,
// which config's refusal of NaN and infinite numbers rules out.
func siteFingerprint(s *config.Site) string {
	h := sha256.New()
	if err := writeNonZero(h, reflect.ValueOf(*s), ""); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeNonZero writes each exported, non-zero field of the struct v as a
// "path=JSON" line, descending into the config's own struct types.
func writeNonZero(w io.Writer, v reflect.Value, path string) error {
	t := v.Type()
	for i := range t.NumField() {
		f, sf := v.Field(i), t.Field(i)
		if !sf.IsExported() || f.IsZero() {
			continue
		}
		if sf.Type.Kind() == reflect.Struct && sf.Type.PkgPath() == t.PkgPath() {
			if err := writeNonZero(w, f, path+sf.Name+"."); err != nil {
				return err
			}
			continue
		}
		b, err := json.Marshal(f.Interface())
		if err != nil {
			return fmt.Errorf("%s%s: %w", path, sf.Name, err)
		}
		fmt.Fprintf(w, "%s%s=%s\n", path, sf.Name, b)
	}
	return nil
}

// cacheKey is the cache key of a GET of x.key, or false when the request
// may not use the cache: a query OSS would see with parameters other than
// x-oss-process and versionId (response-* overrides, a signed URL whose
// signature OSS must judge), or on a public site a request OSS must
// authenticate.
func cacheKey(r *http.Request, x *exchange) (cache.Key, bool) {
	s := x.site
	query := x.query
	if s.private {
		query = x.grant.query
	} else if r.Header.Get("Authorization") != "" {
		return cache.Key{}, false
	}
	k := cache.Key{Site: s.name, Object: x.key}
	if query == "" {
		return k, true
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return cache.Key{}, false
	}
	for name, vs := range q {
		if len(vs) != 1 {
			return cache.Key{}, false
		}
		switch name {
		case "x-oss-process":
			k.Process = vs[0]
		case "versionId":
			k.VersionID = vs[0]
		default:
			return cache.Key{}, false
		}
	}
	return k, true
}

// fillError is a fill's failure as every waiter sees it: the gateway's own
// answer and the cause.
type fillError struct {
	oerr *ossError
	err  error
}

func (e *fillError) Error() string {
	if e.err != nil {
		return e.oerr.code + ": " + e.err.Error()
	}
	return e.oerr.code
}

// errUpstream5xx marks a 5xx from OSS as a fill's failure, which a stale
// copy may answer like no connection or a timeout. Only a revalidating
// fetch (whose request held a copy) makes one; the fetch of a key with no
// copy passes OSS's 5xx on.
var errUpstream5xx = errors.New("OSS answered 5xx")

// serveCached answers a GET or HEAD of a cache-enabled site, after admit.
func (h *Handler) serveCached(w http.ResponseWriter, r *http.Request, x *exchange) (aborted bool) {
	s := x.site
	k, ok := cacheKey(r, x)
	if !ok {
		return h.forward(w, r, x)
	}
	c := s.cache
	now := time.Now()
	obj, hit := c.Lookup(k)
	if hit {
		defer obj.Close()
		if obj.Meta().Age(now) <= s.cacheTTL {
			return h.serveObject(w, r, x, obj, cacheHit)
		}
	}
	if r.Method == http.MethodHead {
		return h.forward(w, r, x)
	}
	var etag string
	if hit {
		etag = obj.Meta().ETag
	}
	fx := &exchange{start: x.start, st: x.st, id: x.id, site: s, key: x.key, query: x.query, grant: x.grant, client: x.client}
	fl := c.Fill(k, h.cacheFetch(r, fx, c, k, etag))
	defer fl.Close()
	meta, err := fl.Wait(r.Context())
	var fe *fillError
	isFillErr := errors.As(err, &fe)
	if !fl.Joined() && (err == nil || isFillErr) {
		// This request's own fetch returned (headers or its error), so
		// it writes fx no more; when the client left first, it may.
		x.upstreamID, x.upstreamWait, x.retries = fx.upstreamID, fx.upstreamWait, fx.retries
	}
	if err != nil {
		if r.Context().Err() != nil {
			h.refuse(w, r, x, errClientGone)
			return false
		}
		if hit && obj.Meta().Age(now) <= s.cacheTTL+s.cacheStale {
			return h.serveObject(w, r, x, obj, cacheStale)
		}
		if fe != nil {
			x.err = fe.err
			if errors.Is(fe.err, errUpstream5xx) {
				// A 5xx the fetch took for a stale copy's, but this
				// request has none left: OSS's answer again, uncached.
				return h.forward(w, r, x)
			}
			oerr := fe.oerr
			if oerr == errClientGone {
				// The fill's own context ended (Cache.Close at
				// shutdown); this client is still here.
				oerr = errBadGateway
			}
			h.refuse(w, r, x, oerr)
			return false
		}
		x.err = err
		h.refuse(w, r, x, errBadGateway)
		return false
	}
	if meta.Status == http.StatusNotModified {
		if hit {
			return h.serveObject(w, r, x, obj, cacheRevalidated)
		}
		// Revalidated for a waiter that held a copy this one does not
		// (purged meanwhile): look again, or ask OSS.
		if o2, ok := c.Lookup(k); ok {
			defer o2.Close()
			return h.serveObject(w, r, x, o2, cacheRevalidated)
		}
		return h.forward(w, r, x)
	}
	if meta.Status >= 500 && hit && obj.Meta().Age(now) <= s.cacheTTL+s.cacheStale {
		return h.serveObject(w, r, x, obj, cacheStale)
	}
	if meta.Status == http.StatusNotFound && s.website.active() {
		return h.forward(w, r, x)
	}
	return h.serveFill(w, r, x, fl, meta)
}

// cacheFetch is the fill's request to OSS for the whole object: built from
// a copy of r on a context the client leaving does not cancel (the other
// waiters and the store need the body), without the client's Range and
// conditionals, and with If-None-Match etag when revalidating a stored
// copy. The upstream header timeout and the stall guard bound it, and
// Cache.Close cancels it.
func (h *Handler) cacheFetch(r *http.Request, fx *exchange, c *cache.Cache, k cache.Key, etag string) cache.FetchFunc {
	return func(ctx context.Context) (cache.Meta, io.ReadCloser, bool, error) {
		fctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		stop := context.AfterFunc(ctx, cancel)
		done := func() { stop(); cancel() }
		r2 := r.Clone(fctx)
		// The stored response is every client's: none of this one's
		// Range, conditionals, encoding or CORS asks may shape it (the
		// site's CORS rules are applied per request; OSS's are dropped).
		for _, name := range []string{"Range", "If-Range", "If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since",
			"Accept-Encoding", "Origin", "Access-Control-Request-Method", "Access-Control-Request-Headers"} {
			delete(r2.Header, name)
		}
		if etag != "" {
			r2.Header["If-None-Match"] = []string{etag}
		}
		resp, oerr := h.fetch(r2, fx, ask{method: http.MethodGet, key: fx.key})
		if oerr != nil {
			done()
			return cache.Meta{}, nil, false, &fillError{oerr: oerr, err: fx.err}
		}
		if resp.StatusCode >= 500 && etag != "" {
			discard(resp)
			done()
			return cache.Meta{}, nil, false, &fillError{oerr: errBadGateway, err: fmt.Errorf("%w: %s", errUpstream5xx, resp.Status)}
		}
		switch {
		case resp.StatusCode == http.StatusNotModified && etag != "":
			_ = c.Touch(k, time.Now())
		case resp.StatusCode == http.StatusNotFound && etag != "":
			// Deleted behind the gateway's back: the stored copy
			// must not come back as a stale answer.
			c.PurgeObject(k.Site, k.Object)
		}
		lm, _ := http.ParseTime(resp.Header.Get("Last-Modified"))
		meta := cache.Meta{
			Status: resp.StatusCode, Header: resp.Header, Size: resp.ContentLength,
			ETag: resp.Header.Get("ETag"), LastModified: lm,
		}
		cc := resp.Header.Get("Cache-Control")
		cacheable := resp.StatusCode == http.StatusOK && meta.ETag != "" && resp.ContentLength >= 0 &&
			!hasDirective(cc, "private") && !hasDirective(cc, "no-store")
		return meta, &fillBody{ReadCloser: resp.Body, done: done}, cacheable, nil
	}
}

// fillBody releases the fill's context with the OSS body.
type fillBody struct {
	io.ReadCloser
	done func()
}

func (b *fillBody) Close() error {
	err := b.ReadCloser.Close()
	b.done()
	return err
}

// hasDirective reports whether a comma-separated header value has tok
// (possibly with "=value").
func hasDirective(s, tok string) bool {
	for s != "" {
		var part string
		part, s, _ = strings.Cut(s, ",")
		name, _, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(strings.TrimSpace(name), tok) {
			return true
		}
	}
	return false
}

// serveFill streams a fill to the client as it arrives: a miss. A Range
// on a whole-object 200 of known size is answered by seeking the fill.
func (h *Handler) serveFill(w http.ResponseWriter, r *http.Request, x *exchange, fl *cache.Fill, meta cache.Meta) bool {
	s := x.site
	hdr := w.Header()
	copyResponseHeader(hdr, meta.Header)
	hdr["X-Cache"] = xCacheMISS
	x.cache = cacheMiss
	h.opts.Metrics.CacheRequests.WithLabelValues(s.name, cacheMiss).Inc()
	status := meta.Status
	off, n := int64(0), meta.Size
	if status == http.StatusOK && notModified(r, meta.ETag, meta.LastModified) {
		for _, k := range notModifiedDrop {
			delete(hdr, k)
		}
		s.cors.apply(hdr, r.Header.Get("Origin"), r.Method)
		x.status = http.StatusNotModified
		w.WriteHeader(http.StatusNotModified)
		return false
	}
	if status == http.StatusOK && meta.Size >= 0 {
		if rs := r.Header.Get("Range"); rs != "" && ifRangeMatches(r, meta.ETag, meta.LastModified) {
			o, l, ok, satisfiable := parseRange(rs, meta.Size)
			switch {
			case ok && !satisfiable:
				return h.refuseRange(w, r, x, meta.Size)
			case ok:
				off, n, status = o, l, http.StatusPartialContent
				delete(hdr, "Content-Md5")
				hdr["Content-Range"] = []string{fmt.Sprintf("bytes %d-%d/%d", o, o+l-1, meta.Size)}
				hdr["Content-Length"] = []string{strconv.FormatInt(l, 10)}
			}
		}
	}
	s.cors.apply(hdr, r.Header.Get("Origin"), r.Method)
	s.disposition.apply(hdr, x.key, status, x.download, x.downloadName)
	if off > 0 {
		if _, err := fl.Seek(off, io.SeekStart); err != nil {
			x.err = err
			h.refuse(w, r, x, errBadGateway)
			return false
		}
	}
	x.status = status
	w.WriteHeader(status)
	var src io.Reader = fl
	if status == http.StatusPartialContent {
		src = io.LimitReader(fl, n)
	}
	nw, err := upstream.Copy(h.clientWriter(r, x, w), src)
	x.bytesOut = nw
	if err != nil {
		x.err = err
		return !errors.Is(err, upstream.ErrClientWrite) && r.Context().Err() == nil
	}
	return false
}

// clientWriter is w with the connection's progress deadline and the
// site's egress limit, when set.
func (h *Handler) clientWriter(r *http.Request, x *exchange, w http.ResponseWriter) io.Writer {
	var dst io.Writer = w
	if d := x.st.progressTimeout; d > 0 {
		dst = &progressWriter{w: w, rc: http.NewResponseController(w), d: d}
	}
	if x.site.egressBytesPerSec > 0 {
		dst = newEgressWriter(r.Context(), dst, x.site.egressBytesPerSec)
	}
	return dst
}

// serveObject answers from a stored object: 304 for a matching
// If-None-Match or If-Modified-Since, 206 for a single satisfiable Range,
// 416 for an unsatisfiable one, else 200; HEAD gets the headers only.
func (h *Handler) serveObject(w http.ResponseWriter, r *http.Request, x *exchange, obj *cache.Object, result string) bool {
	s := x.site
	m := obj.Meta()
	size := obj.Size()
	hdr := w.Header()
	copyResponseHeader(hdr, m.Header) // shares the stored values, capped: an Add copies
	hdr["X-Cache"] = xCacheValue(result)
	x.cache = result
	h.opts.Metrics.CacheRequests.WithLabelValues(s.name, result).Inc()
	origin := r.Header.Get("Origin")

	if notModified(r, m.ETag, m.LastModified) {
		for _, k := range notModifiedDrop {
			delete(hdr, k)
		}
		s.cors.apply(hdr, origin, r.Method)
		x.status = http.StatusNotModified
		w.WriteHeader(http.StatusNotModified)
		return false
	}
	status, off, n := http.StatusOK, int64(0), size
	if rs := r.Header.Get("Range"); rs != "" && ifRangeMatches(r, m.ETag, m.LastModified) {
		o, l, ok, satisfiable := parseRange(rs, size)
		switch {
		case ok && !satisfiable:
			for _, k := range []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Disposition", "Etag", "Last-Modified"} {
				delete(hdr, k)
			}
			return h.refuseRange(w, r, x, size)
		case ok:
			status, off, n = http.StatusPartialContent, o, l
			delete(hdr, "Content-Md5") // the whole body's, as OSS's 206 has none
			hdr["Content-Range"] = []string{fmt.Sprintf("bytes %d-%d/%d", o, o+l-1, size)}
		}
	}
	hdr["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	hdr["Accept-Ranges"] = acceptRangesBytes
	s.cors.apply(hdr, origin, r.Method)
	s.disposition.apply(hdr, x.key, status, x.download, x.downloadName)
	x.status = status
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return false
	}
	var nw int64
	var err error
	f, base, _, isFile := obj.File()
	d := x.st.progressTimeout
	if isFile && s.egressBytesPerSec == 0 {
		if restore := liftLowat(r, n, d); restore != nil {
			defer restore()
		}
	}
	switch {
	case s.egressBytesPerSec > 0:
		nw, err = obj.WriteRangeTo(h.clientWriter(r, x, w), off, n)
	case d > 0 && isFile:
		nw, err = sendFileProgress(w, f, base+off, n, d)
	case d > 0:
		nw, err = writeProgress(w, obj, off, n, d)
	default:
		// w's ReadFrom: sendfile(2) for a file-backed object on plain HTTP.
		nw, err = obj.WriteRangeTo(w, off, n)
	}
	x.bytesOut = nw
	if err != nil {
		x.err = err
		return r.Context().Err() == nil
	}
	return false
}

// sendFileChunk is how much of a stored body goes out under one write
// deadline: a client reading at 64 KiB/s sends it in a minute.
const sendFileChunk = 4 << 20

// sendFileProgress sends n bytes of f from off through w's ReadFrom
// (sendfile(2) on plain HTTP) in chunks, each of which must go out within
// d: the client connection's progress deadline, kept without giving up
// sendfile as a deadline-setting Writer would.
func sendFileProgress(w http.ResponseWriter, f *os.File, off, n int64, d time.Duration) (int64, error) {
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return 0, err
	}
	rf, ok := w.(io.ReaderFrom)
	if !ok {
		return io.Copy(&progressWriter{w: w, rc: http.NewResponseController(w), d: d}, io.LimitReader(f, n))
	}
	rc := http.NewResponseController(w)
	var sent int64
	for sent < n {
		_ = rc.SetWriteDeadline(time.Now().Add(d))
		k, err := rf.ReadFrom(&io.LimitedReader{R: f, N: min(sendFileChunk, n-sent)})
		sent += k
		if err != nil {
			return sent, err
		}
		if k == 0 {
			return sent, fmt.Errorf("cache file: %w after %d of %d bytes", io.ErrUnexpectedEOF, sent, n)
		}
	}
	return sent, nil
}

// writeProgress sends n bytes of a memory object from off in chunks, each
// of which must go out within d, as sendFileProgress does for files: a
// small object is one deadline and one write, with nothing allocated for
// the body; a large one cannot hold a slow but reading client to a single
// deadline.
func writeProgress(w http.ResponseWriter, obj *cache.Object, off, n int64, d time.Duration) (int64, error) {
	rc := http.NewResponseController(w)
	var sent int64
	for sent < n {
		_ = rc.SetWriteDeadline(time.Now().Add(d))
		k, err := obj.WriteRangeTo(w, off+sent, min(sendFileChunk, n-sent))
		sent += k
		if err != nil {
			return sent, err
		}
	}
	return sent, nil
}

// xCacheValue is the X-Cache header value of a cache result. The slices
// are shared by every response: net/http only reads header values, and a
// one-element literal has no spare capacity, so an Add would copy.
func xCacheValue(result string) []string {
	switch result {
	case cacheHit:
		return xCacheHIT
	case cacheMiss:
		return xCacheMISS
	case cacheRevalidated:
		return xCacheREVALIDATED
	case cacheStale:
		return xCacheSTALE
	}
	return []string{strings.ToUpper(result)}
}

var (
	xCacheHIT         = []string{"HIT"}
	xCacheMISS        = []string{"MISS"}
	xCacheREVALIDATED = []string{"REVALIDATED"}
	xCacheSTALE       = []string{"STALE"}
	acceptRangesBytes = []string{"bytes"}
)

// notModifiedDrop are the headers of a 200 that describe its body, which
// a 304 made from it has none of.
var notModifiedDrop = []string{"Content-Length", "Content-Type", "Content-Encoding", "Content-Disposition", "Content-Md5", "Content-Language", "Accept-Ranges"}

// errInvalidRange is OSS's answer to a Range no byte of the object is in.
var errInvalidRange = &ossError{http.StatusRequestedRangeNotSatisfiable, "InvalidRange",
	"The requested range cannot be satisfied.", ""}

func (h *Handler) refuseRange(w http.ResponseWriter, r *http.Request, x *exchange, size int64) bool {
	w.Header()["Content-Range"] = []string{"bytes */" + strconv.FormatInt(size, 10)}
	h.refuse(w, r, x, errInvalidRange)
	return false
}

// notModified reports whether r's conditionals let a stored object with
// these validators be answered 304: If-None-Match when present (weak
// comparison, "*" matches), else If-Modified-Since.
func notModified(r *http.Request, etag string, lm time.Time) bool {
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etag == "" {
			return false
		}
		for inm != "" {
			var t string
			t, inm, _ = strings.Cut(inm, ",")
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == strings.TrimPrefix(etag, "W/") {
				return true
			}
		}
		return false
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" && !lm.IsZero() {
		t, err := http.ParseTime(ims)
		return err == nil && !lm.Truncate(time.Second).After(t)
	}
	return false
}

// ifRangeMatches reports whether r's Range applies: no If-Range, or one
// that names the stored validator (a strong ETag or the Last-Modified).
func ifRangeMatches(r *http.Request, etag string, lm time.Time) bool {
	ir := r.Header.Get("If-Range")
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) {
		return ir == etag
	}
	t, err := http.ParseTime(ir)
	return err == nil && !lm.IsZero() && lm.Truncate(time.Second).Equal(t)
}

// parseRange reads a single-range "bytes=" header against size. ok is
// false when the header is not one range OSS would honour (then the whole
// object is sent, as OSS does); satisfiable false means 416.
func parseRange(s string, size int64) (off, n int64, ok, satisfiable bool) {
	spec, found := strings.CutPrefix(s, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, false
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, false
	}
	if a == "" {
		sfx, err := strconv.ParseInt(b, 10, 64)
		if err != nil || sfx < 0 {
			return 0, 0, false, false
		}
		if sfx == 0 || size == 0 {
			return 0, 0, true, false
		}
		sfx = min(sfx, size)
		return size - sfx, sfx, true, true
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, false, false
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, false, false
		}
		end = min(e, size-1)
	}
	if start >= size {
		return 0, 0, true, false
	}
	return start, end - start + 1, true, true
}
