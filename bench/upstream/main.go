// Command upstream is a minimal, fast stand-in for Alibaba Cloud OSS used by
// the benchmark kit in bench/: it answers GetObject and HeadObject for a
// fixed set of synthesized objects so that a reverse proxy in front of it
// (nginx, the gateway) is what gets measured, not the object store.
//
// Objects (any Host, any bucket; the size is the last path segment):
//
//	/1k    1 KiB
//	/256k  256 KiB
//	/64m   64 MiB
//	/1g    1 GiB
//
// Any path whose last segment is a size name is an object of that size.
// Under /obj/ (/obj/17/1k, /obj/18/1k, ...) each path is a distinct object
// with its own ETag but the same body: the many keys of a cache's hot set.
//
// Every body is the same repeating byte pattern (byte at offset o is o%251),
// written from one shared read-only buffer, so a 1 GiB object costs no
// memory. Responses carry what OSS sends for an object: ETag, Last-Modified,
// Content-Type application/octet-stream, Accept-Ranges, x-oss-request-id,
// x-oss-object-type and x-oss-storage-class. A single byte range gives 206
// with Content-Range (416 when unsatisfiable; multiple or malformed ranges
// are ignored and the whole object is sent, as OSS does; HEAD ignores Range,
// like the repository's OSS emulator); If-None-Match and
// If-Modified-Since give 304; If-Match that does not match gives 412.
//
// Authorization and signatures are ignored: the upstream does not verify
// them, so the signing cost stays on the proxy's side of the measurement.
// It only counts requests, V4-signed requests and GETs (in total and per
// path), served at GET /-/stats (GET /-/stats?path=/obj/1/64m adds that
// path's GET count).
//
// -delay (or UPSTREAM_DELAY) holds every object answer for that long
// before its headers, like OSS's time to first byte (default 20ms; the
// compare and scale modes of bench/run.sh pass 0).
package main

import (
	"crypto/md5"
	"encoding/hex"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oss-gateway/gateway/bench/internal/synth"
)

// defaultDelay is the first-byte delay without -delay or UPSTREAM_DELAY:
// about what OSS takes to start answering a GetObject in-region.
const defaultDelay = 20 * time.Millisecond

// The body pattern (package synth): byte o of every object is o % period.
const (
	period = synth.Period
	chunk  = synth.Chunk
)

// pattern[start%period:][:n] is the next n <= chunk bytes of any body.
var pattern = synth.Pattern()

// object is one synthesized object and its precomputed header values.
type object struct {
	size         int64
	etag         string
	lastModified time.Time

	// Header values shared by every response (read-only after init).
	hETag, hLastModified, hLength []string
}

// objectHeaderValues are the fixed headers of every object response.
var (
	hContentType  = []string{"application/octet-stream"}
	hAcceptRanges = []string{"bytes"}
	hObjectType   = []string{"Normal"}
	hStorageClass = []string{"Standard"}
	hServer       = []string{"AliyunOSS"}
	hXMLType      = []string{"application/xml"}
)

// lastModified is the fixed modification time of every object.
var lastModified = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)

func newObject(name string, size int64) *object {
	// The ETag is an MD5-looking quoted hex string, as OSS sends for a
	// simple upload; hashing the name and size (not the 1 GiB body) keeps
	// start-up instant.
	sum := md5.Sum([]byte(name + "/" + strconv.FormatInt(size, 10)))
	etag := `"` + strings.ToUpper(hex.EncodeToString(sum[:])) + `"`
	return &object{
		size:          size,
		etag:          etag,
		lastModified:  lastModified,
		hETag:         []string{etag},
		hLastModified: []string{lastModified.Format(http.TimeFormat)},
		hLength:       []string{strconv.FormatInt(size, 10)},
	}
}

// objects maps a key to its object.
var objects = map[string]*object{
	"1k":   newObject("1k", 1<<10),
	"256k": newObject("256k", 256<<10),
	"64m":  newObject("64m", 64<<20),
	"1g":   newObject("1g", 1<<30),
}

// objPrefix starts the paths of a hot set's many keys: /obj/<n>/<size>
// (after a path-style bucket segment, too). Each such path is an object of
// its own with its own ETag, so a cache never mistakes /obj/1/1k for
// /obj/2/1k; it is made per request (an MD5 of the path), so a hot set of
// a million keys costs the upstream no memory.
const objPrefix = "/obj/"

// lookup returns the object at path: the size is the last segment; nil
// when that is no size name.
func lookup(path string) *object {
	key := path
	if i := strings.LastIndexByte(key, '/'); i >= 0 {
		key = key[i+1:]
	}
	o := objects[key]
	if o == nil {
		return nil
	}
	if i := strings.Index(path, objPrefix); i >= 0 {
		return newObject(path[i:], o.size)
	}
	return o
}

// gets counts GET requests for objects; getsByPath per path (so the herd
// run can prove how many requests for one key reached the upstream).
var (
	gets       atomic.Uint64
	getsByPath sync.Map // path -> *atomic.Uint64
)

func countGet(path string) {
	gets.Add(1)
	v, ok := getsByPath.Load(path)
	if !ok {
		v, _ = getsByPath.LoadOrStore(path, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

func pathGets(path string) uint64 {
	if v, ok := getsByPath.Load(path); ok {
		return v.(*atomic.Uint64).Load()
	}
	return 0
}

// requestIDs numbers requests for x-oss-request-id (and so counts them).
var requestIDs atomic.Uint64

// signedV4 counts requests that carried a V4 Authorization header. The
// signature is not checked; the count lets the kit prove a private site
// really signed (GET /-/stats).
var signedV4 atomic.Uint64

// statsPath answers the request and signed counters as JSON.
const statsPath = "/-/stats"

// requestIDPrefix makes request IDs differ between upstream runs.
var requestIDPrefix = fmt.Sprintf("%08X", uint32(time.Now().UnixNano()))

// newRequestID returns a 24-character upper-case hex ID, like OSS's.
func newRequestID() string {
	const digits = "0123456789ABCDEF"
	var b [24]byte
	copy(b[:8], requestIDPrefix)
	n := requestIDs.Add(1)
	for i := 23; i >= 8; i-- {
		b[i] = digits[n&0xF]
		n >>= 4
	}
	return string(b[:])
}

// handler answers like OSS for the synthesized objects.
type handler struct {
	// delay holds each object answer (not /-/stats) before its headers:
	// the object store's time to first byte.
	delay time.Duration
}

func (hd handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.URL.Path == statsPath {
		h["Content-Type"] = []string{"application/json"}
		fmt.Fprintf(w, "{\"requests\":%d,\"signed_v4\":%d,\"gets\":%d", requestIDs.Load(), signedV4.Load(), gets.Load())
		if p := r.URL.Query().Get("path"); p != "" {
			fmt.Fprintf(w, ",\"path\":%q,\"path_gets\":%d", p, pathGets(p))
		}
		fmt.Fprint(w, "}\n")
		return
	}
	if hd.delay > 0 {
		time.Sleep(hd.delay)
	}
	if auth := r.Header["Authorization"]; len(auth) > 0 && strings.HasPrefix(auth[0], "OSS4-HMAC-SHA256 ") {
		signedV4.Add(1)
	}
	h["X-Oss-Request-Id"] = []string{newRequestID()}
	h["Server"] = hServer
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		ossError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
		return
	}
	if r.Method == http.MethodGet {
		countGet(r.URL.Path)
	}
	o := lookup(r.URL.Path)
	if o == nil {
		ossError(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}

	switch conditionStatus(r, o) {
	case http.StatusPreconditionFailed:
		ossError(w, http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.")
		return
	case http.StatusNotModified:
		h["Etag"] = o.hETag
		h["Last-Modified"] = o.hLastModified
		w.WriteHeader(http.StatusNotModified)
		return
	}

	start, length, status := int64(0), o.size, http.StatusOK
	if spec := r.Header.Get("Range"); spec != "" && r.Method == http.MethodGet {
		s, n, ok, satisfiable := parseRange(spec, o.size)
		switch {
		case ok && !satisfiable:
			h["Content-Range"] = []string{"bytes */" + o.hLength[0]}
			ossError(w, http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range cannot be satisfied")
			return
		case ok:
			start, length, status = s, n, http.StatusPartialContent
			h["Content-Range"] = []string{"bytes " + strconv.FormatInt(s, 10) + "-" + strconv.FormatInt(s+n-1, 10) + "/" + o.hLength[0]}
		}
	}

	h["Content-Type"] = hContentType
	h["Etag"] = o.hETag
	h["Last-Modified"] = o.hLastModified
	h["Accept-Ranges"] = hAcceptRanges
	h["X-Oss-Object-Type"] = hObjectType
	h["X-Oss-Storage-Class"] = hStorageClass
	if status == http.StatusOK {
		h["Content-Length"] = o.hLength
	} else {
		h["Content-Length"] = []string{strconv.FormatInt(length, 10)}
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	writeBody(w, start, length)
}

// writeBody writes length bytes of the body pattern from offset start, in
// chunk-sized writes from the shared buffer. Errors mean the client left.
func writeBody(w http.ResponseWriter, start, length int64) {
	off := int(start % period)
	for length > 0 {
		n := int64(chunk)
		if length < n {
			n = length
		}
		if _, err := w.Write(pattern[off : off+int(n)]); err != nil {
			return
		}
		// chunk is not a multiple of period: advance the phase.
		off = (off + int(n)) % period
		length -= n
	}
}

// conditionStatus evaluates If-Match, If-None-Match and If-Modified-Since:
// 412, 304, or 0 to serve the object.
func conditionStatus(r *http.Request, o *object) int {
	if im := r.Header.Get("If-Match"); im != "" && !etagListMatches(im, o.etag) {
		return http.StatusPreconditionFailed
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" {
		if etagListMatches(inm, o.etag) {
			return http.StatusNotModified
		}
		return 0
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil && !o.lastModified.After(t) {
			return http.StatusNotModified
		}
	}
	return 0
}

// etagListMatches reports whether a comma-separated If-(None-)Match list
// names etag (or is "*"); weak prefixes and quotes are ignored.
func etagListMatches(list, etag string) bool {
	want := bareETag(etag)
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "*" || bareETag(item) == want {
			return true
		}
	}
	return false
}

func bareETag(s string) string {
	s = strings.TrimPrefix(s, "W/")
	return strings.Trim(s, `"`)
}

// parseRange parses a single "bytes=" range against size. ok is false for
// a malformed or multi-range spec (served as the whole object, as OSS does);
// otherwise satisfiable tells 206 (start, length) from 416.
func parseRange(spec string, size int64) (start, length int64, ok, satisfiable bool) {
	rest, found := strings.CutPrefix(spec, "bytes=")
	if !found || strings.Contains(rest, ",") {
		return 0, 0, false, false
	}
	first, last, found := strings.Cut(strings.TrimSpace(rest), "-")
	if !found {
		return 0, 0, false, false
	}
	if first == "" { // suffix: the last N bytes
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return 0, 0, false, false
		}
		if n == 0 || size == 0 {
			return 0, 0, true, false
		}
		n = min(n, size)
		return size - n, n, true, true
	}
	s, err := strconv.ParseInt(first, 10, 64)
	if err != nil || s < 0 {
		return 0, 0, false, false
	}
	e := size - 1
	if last != "" {
		e, err = strconv.ParseInt(last, 10, 64)
		if err != nil || e < s {
			return 0, 0, false, false
		}
		e = min(e, size-1)
	}
	if s >= size {
		return 0, 0, true, false
	}
	return s, e - s + 1, true, true
}

// ossError writes OSS's XML error body.
func ossError(w http.ResponseWriter, status int, code, msg string) {
	h := w.Header()
	h["Content-Type"] = hXMLType
	id := h.Get("X-Oss-Request-Id")
	body := `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Error>\n  <Code>" + code + "</Code>\n  <Message>" + msg +
		"</Message>\n  <RequestId>" + id + "</RequestId>\n  <HostId>upstream.bench</HostId>\n</Error>\n"
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on")
	delay := flag.Duration("delay", envDelay(), "first-byte delay of every object answer (env UPSTREAM_DELAY)")
	flag.Parse()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		os.Exit(1)
	}
	srv := &http.Server{
		Handler:           handler{delay: *delay},
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          log.New(os.Stderr, "upstream: ", 0),
	}
	fmt.Fprintf(os.Stderr, "upstream: listening on %s, first-byte delay %s\n", ln.Addr(), *delay)
	if err := srv.Serve(ln); err != nil {
		fmt.Fprintf(os.Stderr, "upstream: %v\n", err)
		os.Exit(1)
	}
}

// envDelay is UPSTREAM_DELAY when set and valid, else defaultDelay.
func envDelay() time.Duration {
	if v := os.Getenv("UPSTREAM_DELAY"); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
		fmt.Fprintf(os.Stderr, "upstream: UPSTREAM_DELAY=%q is not a duration; using %s\n", v, defaultDelay)
	}
	return defaultDelay
}
