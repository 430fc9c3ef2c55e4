// Package ossemu is an in-memory stand-in for Alibaba Cloud OSS.
//
// It exists so that the gateway's tests and `gateway demo` can run without a
// cloud account while still being honest about the parts of OSS the gateway
// depends on: private buckets verify OSS Signature V4 (header and presigned
// query forms) with an implementation independent of the SDK's signer,
// objects answer Range and conditional requests like OSS, multipart uploads
// follow OSS's limits and ETags, default bucket domains force downloads of
// web pages, and faults (error statuses, resets, truncated bodies, delays)
// can be injected per request.
package ossemu

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// ACL is a bucket's access control list; it decides which requests may
// omit a signature.
type ACL int

const (
	// Private buckets require a valid V4 signature on every request.
	Private ACL = iota
	// PublicRead buckets let anonymous clients GET and HEAD.
	PublicRead
	// PublicReadWrite buckets let anonymous clients do everything.
	PublicReadWrite
)

// String names the ACL the way OSS does in GetBucketAcl.
func (a ACL) String() string {
	switch a {
	case PublicRead:
		return "public-read"
	case PublicReadWrite:
		return "public-read-write"
	default:
		return "private"
	}
}

// Options configures an Emulator.
type Options struct {
	// Region is the OSS region ID ("cn-hangzhou") the V4 signature scope
	// must name. "" means "cn-hangzhou".
	Region string
	// Now is the emulator's clock, used for signature time checks, Date and
	// Last-Modified. nil means time.Now.
	Now func() time.Time
	// MinPartSize is the size CompleteMultipartUpload requires of every
	// part but the last (EntityTooSmall otherwise). 0 means OSS's 100 KiB;
	// tests of multipart uploaders set it small so that they can use small
	// parts without megabytes of data.
	MinPartSize int64
}

// defaultMinPartSize is OSS's minimum size of a multipart part but the last.
const defaultMinPartSize = 100 << 10

// credential is one AccessKey pair the emulator accepts.
type credential struct {
	secret string
	token  string // non-empty: STS credential, requests must carry it
}

// bucket holds one bucket's state; guarded by Emulator.mu.
type bucket struct {
	name    string
	acl     ACL
	created time.Time
	objects map[string]*object
	uploads map[string]*upload // multipart uploads in progress, by upload ID
}

// Emulator is an in-memory OSS service. It implements http.Handler and is
// safe for concurrent use.
type Emulator struct {
	region      string
	now         func() time.Time
	minPartSize int64

	idSalt uint32        // random per emulator, part of every request ID
	idSeq  atomic.Uint32 // request ID sequence
	genSeq atomic.Uint64 // synthetic object generations

	uploadSeq atomic.Uint32 // multipart upload IDs

	mu      sync.RWMutex
	creds   map[string]credential
	buckets map[string]*bucket
	domains map[string]string // custom domain -> bucket
	cname   cnameState        // CNAME tokens, certificates, TXT records (cname.go)

	faults faultSet
	log    requestLog
}

// New returns an empty emulator: no buckets, no credentials.
func New(o Options) *Emulator {
	e := &Emulator{
		region:      o.Region,
		now:         o.Now,
		minPartSize: o.MinPartSize,
		creds:       make(map[string]credential),
		buckets:     make(map[string]*bucket),
		domains:     make(map[string]string),
	}
	if e.minPartSize <= 0 {
		e.minPartSize = defaultMinPartSize
	}
	if e.region == "" {
		e.region = "cn-hangzhou"
	}
	if e.now == nil {
		e.now = time.Now
	}
	var salt [4]byte
	if _, err := rand.Read(salt[:]); err == nil {
		e.idSalt = binary.BigEndian.Uint32(salt[:])
	}
	return e
}

// AddCredential registers an AccessKey the emulator accepts in signatures.
// A non-empty securityToken makes it an STS credential: requests signed
// with it must carry x-oss-security-token equal to the token.
func (e *Emulator) AddCredential(accessKeyID, secret, securityToken string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.creds[accessKeyID] = credential{secret: secret, token: securityToken}
}

// CreateBucket creates (or re-ACLs, keeping its objects) a bucket.
func (e *Emulator) CreateBucket(name string, acl ACL) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if b, ok := e.buckets[name]; ok {
		b.acl = acl
		return
	}
	e.buckets[name] = &bucket{
		name:    name,
		acl:     acl,
		created: e.now().UTC(),
		objects: make(map[string]*object),
		uploads: make(map[string]*upload),
	}
}

// BindDomain binds a custom domain (CNAME) to a bucket, so requests whose
// Host is that domain reach the bucket and are not forced to download.
func (e *Emulator) BindDomain(domain, bucket string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.domains[normalizeHost(domain)] = bucket
}

// Serve serves the emulator on ln in a new goroutine and returns the server
// so the caller can Close or Shutdown it.
func (e *Emulator) Serve(ln net.Listener) *http.Server {
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv
}

// call is the state of one request being answered.
type call struct {
	e      *Emulator
	w      *recorder
	r      *http.Request
	id     string
	bucket string // bucket name addressed (may not exist)
	key    string // object key, percent-decoded once
	custom bool   // reached through a bound custom domain
	pathOK bool   // the path decoded cleanly
	signed bool   // a V4 signature was present and verified
	entry  *Request
}

// ServeHTTP answers one OSS request.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{e: e, r: r, id: e.newRequestID()}
	c.bucket, c.key, c.custom, c.pathOK = e.resolve(r)
	entry := e.log.start(Request{
		Method:   r.Method,
		Host:     r.Host,
		RawPath:  rawPath(r),
		RawQuery: r.URL.RawQuery,
		Header:   r.Header.Clone(),
		Bucket:   c.bucket,
		Key:      c.key,
		Time:     e.now(),
	})
	c.entry = entry
	c.w = &recorder{ResponseWriter: w, onStatus: func(code int) { e.log.setStatus(entry, code) }}

	h := w.Header()
	h.Set("Server", "AliyunOSS")
	h.Set("Date", e.now().UTC().Format(http.TimeFormat))
	h.Set("X-Oss-Request-Id", c.id)

	if f, ok := e.faults.take(r.Host, c.bucket, c.key, r.Method); ok {
		if !c.applyFault(f) {
			return
		}
	}
	c.serve()
}

// serve runs the checks OSS makes before dispatching to an operation.
func (c *call) serve() {
	switch c.r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodDelete:
	default:
		c.fail(errMethodNotAllowed())
		return
	}
	if !c.pathOK {
		c.fail(&apiError{http.StatusBadRequest, "InvalidURI", "Couldn't parse the specified URI.", nil})
		return
	}
	acl, ok := c.e.bucketACL(c.bucket)
	if !ok {
		c.fail(&apiError{http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.", nil})
		return
	}
	signed, aerr := c.authenticate()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	if signed {
		c.signed = true
		c.e.log.setSigned(c.entry)
	}
	if !signed && !anonymousAllowed(acl, c.r.Method) {
		c.fail(&apiError{http.StatusForbidden, "AccessDenied", "You have no right to access this object because of bucket acl.", nil})
		return
	}
	if c.key == "" {
		c.serveBucket(acl)
		return
	}
	if msg := invalidKey(c.key); msg != "" {
		c.fail(&apiError{http.StatusBadRequest, "InvalidObjectName", msg, nil})
		return
	}
	c.serveObject()
}

// anonymousAllowed reports whether an unsigned request may use method on a
// bucket with the given ACL.
func anonymousAllowed(acl ACL, method string) bool {
	switch acl {
	case PublicReadWrite:
		return true
	case PublicRead:
		return method == http.MethodGet || method == http.MethodHead
	default:
		return false
	}
}

// bucketACL returns the ACL of the named bucket, if it exists.
func (e *Emulator) bucketACL(name string) (ACL, bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	b, ok := e.buckets[name]
	if !ok {
		return Private, false
	}
	return b.acl, true
}

// resolve finds the addressed bucket and key: a bound custom domain first,
// then a virtual-hosted bucket domain, then path style.
func (e *Emulator) resolve(r *http.Request) (bucketName, key string, custom, ok bool) {
	host := normalizeHost(r.Host)
	raw := r.URL.EscapedPath()
	e.mu.RLock()
	b, isDomain := e.domains[host]
	var virtual bool
	if !isDomain {
		if label, rest, found := strings.Cut(host, "."); found && label != "" {
			_, exists := e.buckets[label]
			if exists || looksLikeBucketHost(rest) {
				b, virtual = label, true
			}
		}
	}
	e.mu.RUnlock()

	if isDomain || virtual {
		k, err := url.PathUnescape(strings.TrimPrefix(raw, "/"))
		return b, k, isDomain, err == nil
	}
	seg, rest, _ := strings.Cut(strings.TrimPrefix(raw, "/"), "/")
	b, err1 := url.PathUnescape(seg)
	k, err2 := url.PathUnescape(rest)
	return b, k, false, err1 == nil && err2 == nil
}

// looksLikeBucketHost reports whether rest (the Host without its first
// label) is an OSS endpoint or an IP address, so that the first label names
// a bucket even when no such bucket exists (NoSuchBucket, as OSS answers).
func looksLikeBucketHost(rest string) bool {
	if net.ParseIP(rest) != nil {
		return true
	}
	if !strings.HasSuffix(rest, ".aliyuncs.com") {
		return false
	}
	return strings.HasPrefix(rest, "oss-") || strings.HasSuffix(rest, ".oss.aliyuncs.com")
}

// normalizeHost strips the port, brackets and a trailing dot, and lowercases.
func normalizeHost(h string) string {
	if i := strings.LastIndexByte(h, ':'); i >= 0 && i > strings.LastIndexByte(h, ']') {
		h = h[:i]
	}
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.ToLower(strings.TrimSuffix(h, "."))
}

// rawPath is the request path exactly as the client sent it.
func rawPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		p, _, _ := strings.Cut(r.RequestURI, "?")
		return p
	}
	return r.URL.EscapedPath()
}

// invalidKey returns why key is not a valid OSS object name, or "".
func invalidKey(key string) string {
	switch {
	case len(key) > 1023:
		return "The length of the object name must be less than 1024 bytes."
	case strings.HasPrefix(key, "/") || strings.HasPrefix(key, `\`):
		return "The object name must not start with '/' or '\\'."
	case !utf8.ValidString(key):
		return "The object name must be valid UTF-8."
	}
	return ""
}

// newRequestID returns a unique 24-hex-digit request ID, like OSS's.
func (e *Emulator) newRequestID() string {
	return fmt.Sprintf("%08X%08X%08X", uint32(e.now().Unix()), e.idSalt, e.idSeq.Add(1))
}

// recorder remembers the status written and can cut the body after a
// number of bytes (Fault.CutAfter).
type recorder struct {
	http.ResponseWriter
	onStatus func(int) // called once, before the status is written
	status   int
	written  int64
	cutAfter int64
}

// WriteHeader records the status.
func (w *recorder) WriteHeader(code int) {
	w.record(code)
	w.ResponseWriter.WriteHeader(code)
}

// record notes the first status written.
func (w *recorder) record(code int) {
	if w.status == 0 {
		w.status = code
		if w.onStatus != nil {
			w.onStatus(code)
		}
	}
}

// Write counts body bytes and aborts the connection at the cut point.
func (w *recorder) Write(p []byte) (int, error) {
	w.record(http.StatusOK)
	if w.cutAfter > 0 && w.written+int64(len(p)) > w.cutAfter {
		n, _ := w.ResponseWriter.Write(p[:w.cutAfter-w.written])
		w.written += int64(n)
		_ = http.NewResponseController(w.ResponseWriter).Flush()
		panic(http.ErrAbortHandler)
	}
	n, err := w.ResponseWriter.Write(p)
	w.written += int64(n)
	return n, err
}

// Flush lets streamed bodies reach the client promptly.
func (w *recorder) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap gives http.ResponseController access to the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
