package ossemu

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// object is one stored or synthetic object. Objects are immutable once
// stored: a put or an append replaces the pointer, so a GET can stream an
// object without holding the lock.
type object struct {
	data         []byte // nil for synthetic objects
	synthetic    bool
	size         int64
	etag         string // quoted
	lastModified time.Time
	contentType  string
	header       http.Header // stored response headers and x-oss-meta-*
	objectType   string      // Normal, Appendable or Multipart
	crc64        string      // decimal CRC-64/ECMA of the content; "" for synthetic
	contentMD5   string      // base64 MD5; "" for synthetic, appendable and multipart
}

// storedHeaders are the request headers a put keeps and a GET echoes.
func storedHeaders() []string {
	return []string{"Content-Disposition", "Cache-Control", "Content-Encoding", "Content-Language", "Expires"}
}

// crc64ECMA is the CRC-64/ECMA checksum OSS returns in x-oss-hash-crc64ecma
// (crc64.MakeTable returns a shared, prebuilt table for ECMA).
func crc64ECMA(data []byte) uint64 {
	return crc64.Checksum(data, crc64.MakeTable(crc64.ECMA))
}

// objectHeader keeps the headers of hdr an object stores.
func objectHeader(hdr http.Header) (contentType string, kept http.Header) {
	kept = make(http.Header)
	for _, k := range storedHeaders() {
		if v := hdr.Get(k); v != "" {
			kept.Set(k, v)
		}
	}
	for k, vs := range hdr {
		if strings.HasPrefix(strings.ToLower(k), "x-oss-meta-") && len(vs) > 0 {
			kept.Set(k, vs[0])
		}
	}
	contentType = hdr.Get("Content-Type")
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	return contentType, kept
}

// newStoredObject builds an object holding data.
func newStoredObject(data []byte, hdr http.Header, objectType string) *object {
	sum := md5.Sum(data)
	ct, kept := objectHeader(hdr)
	o := &object{
		data:        data,
		size:        int64(len(data)),
		etag:        `"` + strings.ToUpper(hex.EncodeToString(sum[:])) + `"`,
		contentType: ct,
		header:      kept,
		objectType:  objectType,
		crc64:       strconv.FormatUint(crc64ECMA(data), 10),
	}
	if objectType == "Normal" {
		o.contentMD5 = base64MD5(sum)
	}
	return o
}

// PutObject stores an object directly, as a test fixture. hdr may carry
// Content-Type, Content-Disposition, Cache-Control and x-oss-meta-*. Each put
// gets a later Last-Modified than the object it replaces; the ETag is the
// content's MD5, as on OSS. It panics if the bucket does not exist, since
// that is a mistake in the test's setup.
func (e *Emulator) PutObject(bucketName, key string, body []byte, hdr http.Header) {
	data := bytes.Clone(body)
	if data == nil {
		data = []byte{}
	}
	e.mustStore(bucketName, key, newStoredObject(data, hdr, "Normal"))
}

// PutSyntheticObject registers an object of size bytes whose content is
// SyntheticByte(i), generated on the fly and never stored, so tests can
// stream gigabytes without memory. It panics if the bucket does not exist.
func (e *Emulator) PutSyntheticObject(bucketName, key string, size int64, contentType string) {
	gen := e.genSeq.Add(1)
	sum := md5.Sum(fmt.Appendf(nil, "synthetic\x00%s\x00%s\x00%d\x00%d", bucketName, key, size, gen))
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	e.mustStore(bucketName, key, &object{
		synthetic:   true,
		size:        size,
		etag:        `"` + strings.ToUpper(hex.EncodeToString(sum[:])) + `"`,
		contentType: contentType,
		header:      make(http.Header),
		objectType:  "Normal",
	})
}

// Object returns a copy of the stored body of a (non-synthetic) object, so
// tests can assert on what was uploaded.
func (e *Emulator) Object(bucketName, key string) ([]byte, bool) {
	o := e.lookup(bucketName, key)
	if o == nil || o.synthetic {
		return nil, false
	}
	return bytes.Clone(o.data), true
}

// mustStore stores o, panicking if the bucket is missing.
func (e *Emulator) mustStore(bucketName, key string, o *object) {
	e.mu.Lock()
	defer e.mu.Unlock()
	b, ok := e.buckets[bucketName]
	if !ok {
		panic(fmt.Sprintf("ossemu: no bucket %q: call CreateBucket first", bucketName))
	}
	e.storeLocked(b, key, o)
}

// storeLocked stores o under key with a Last-Modified later than any
// previous version's, so every put is observable through conditionals.
// The caller holds e.mu.
func (e *Emulator) storeLocked(b *bucket, key string, o *object) {
	lm := e.now().UTC().Truncate(time.Second)
	if prev, ok := b.objects[key]; ok && !lm.After(prev.lastModified) {
		lm = prev.lastModified.Add(time.Second)
	}
	o.lastModified = lm
	b.objects[key] = o
}

// lookup returns the current version of an object, or nil.
func (e *Emulator) lookup(bucketName, key string) *object {
	e.mu.RLock()
	defer e.mu.RUnlock()
	b, ok := e.buckets[bucketName]
	if !ok {
		return nil
	}
	return b.objects[key]
}

// SyntheticByte is the content of byte i of every synthetic object. It mixes
// i with i>>8, i>>16, ... so that a range served from the wrong offset is
// detected at any scale.
func SyntheticByte(i int64) byte {
	return byte(i) ^ syntheticHigh(uint64(i)>>8)
}

// syntheticHigh is the part of SyntheticByte that depends on i>>8.
func syntheticHigh(h uint64) byte {
	return byte(h)*167 ^ byte(h>>8)*59 ^ byte(h>>16)*13 ^ byte(h>>24)*101 ^ byte(h>>32)*7 ^ byte(h>>40)*31
}

// fillSynthetic fills buf with SyntheticByte(off), SyntheticByte(off+1), ...
// computing the high part once per 256-byte block.
func fillSynthetic(buf []byte, off int64) {
	for j := 0; j < len(buf); {
		i := uint64(off) + uint64(j)
		hi := syntheticHigh(i >> 8)
		lo := byte(i)
		n := min(256-int(lo), len(buf)-j)
		for k := range n {
			buf[j+k] = (lo + byte(k)) ^ hi
		}
		j += n
	}
}

// writeContent writes bytes [off, off+n) of o to w, generating synthetic
// content one buffer at a time.
func (o *object) writeContent(w io.Writer, off, n int64) error {
	if !o.synthetic {
		if _, err := w.Write(o.data[off : off+n]); err != nil {
			return fmt.Errorf("write object body: %w", err)
		}
		return nil
	}
	buf := make([]byte, min(n, 64<<10))
	for n > 0 {
		chunk := buf[:min(n, int64(len(buf)))]
		fillSynthetic(chunk, off)
		if _, err := w.Write(chunk); err != nil {
			return fmt.Errorf("write synthetic body at %d: %w", off, err)
		}
		off += int64(len(chunk))
		n -= int64(len(chunk))
	}
	return nil
}

// unimplementedObjectSubresources are the object subresources OSS has and
// the emulator does not, answered NotImplemented rather than served as a
// plain object operation.
func unimplementedObjectSubresources() []string {
	return []string{"acl", "tagging", "symlink", "restore", "objectMeta", "x-oss-process", "x-oss-async-process", "comp"}
}

// serveObject dispatches object operations.
func (c *call) serveObject() {
	q := c.r.URL.Query()
	for _, sub := range unimplementedObjectSubresources() {
		if q.Has(sub) {
			c.fail(errNotImplemented())
			return
		}
	}
	if c.r.Method == http.MethodPut && c.r.Header.Get("X-Oss-Copy-Source") != "" {
		c.fail(errNotImplemented()) // CopyObject and UploadPartCopy
		return
	}
	switch {
	case q.Has("uploadId"):
		c.serveUpload(q)
		return
	case q.Has("uploads"):
		if c.r.Method != http.MethodPost {
			c.fail(errMethodNotAllowed())
			return
		}
		c.initiateUpload(q)
		return
	}
	switch c.r.Method {
	case http.MethodGet, http.MethodHead:
		c.getObject()
	case http.MethodPut:
		c.putObject()
	case http.MethodPost:
		if !q.Has("append") {
			c.fail(errMethodNotAllowed())
			return
		}
		c.appendObject()
	case http.MethodDelete:
		c.e.mu.Lock()
		if b, ok := c.e.buckets[c.bucket]; ok {
			delete(b.objects, c.key)
		}
		c.e.mu.Unlock()
		c.w.WriteHeader(http.StatusNoContent)
	}
}

// responseOverride is a response-* query parameter a signed GET may use
// and the header it replaces.
type responseOverride struct{ param, header string }

// responseOverrides lists the response-* parameters OSS honours.
func responseOverrides() []responseOverride {
	return []responseOverride{
		{"response-content-type", "Content-Type"},
		{"response-content-language", "Content-Language"},
		{"response-expires", "Expires"},
		{"response-cache-control", "Cache-Control"},
		{"response-content-disposition", "Content-Disposition"},
		{"response-content-encoding", "Content-Encoding"},
	}
}

// getObject answers GetObject and HeadObject.
func (c *call) getObject() {
	q := c.r.URL.Query()
	head := c.r.Method == http.MethodHead
	if !c.signed {
		for _, ov := range responseOverrides() {
			if q.Has(ov.param) {
				c.fail(&apiError{http.StatusForbidden, "AccessDenied", "Anonymous access is forbidden to use response-* parameters.", nil})
				return
			}
		}
	}
	o := c.e.lookup(c.bucket, c.key)
	if o == nil {
		c.fail(&apiError{http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", nil})
		return
	}

	h := c.w.Header()
	switch checkConditions(c.r.Header, o.etag, o.lastModified) {
	case http.StatusPreconditionFailed:
		c.fail(&apiError{http.StatusPreconditionFailed, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", nil})
		return
	case http.StatusNotModified:
		h.Set("Etag", o.etag)
		h.Set("Last-Modified", o.lastModified.Format(http.TimeFormat))
		c.w.WriteHeader(http.StatusNotModified)
		return
	}

	start, length, status := int64(0), o.size, http.StatusOK
	if !head {
		if spec := c.r.Header.Get("Range"); spec != "" {
			s, n, kind := parseRange(spec, o.size)
			switch kind {
			case rangeUnsatisfiable:
				h.Set("Content-Range", fmt.Sprintf("bytes */%d", o.size))
				c.fail(&apiError{http.StatusRequestedRangeNotSatisfiable, "InvalidRange", "The requested range cannot be satisfied", nil})
				return
			case rangeSatisfiable:
				start, length, status = s, n, http.StatusPartialContent
				h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", s, s+n-1, o.size))
			}
		}
	}

	c.objectHeaders(o)
	for _, ov := range responseOverrides() {
		if v := q.Get(ov.param); q.Has(ov.param) {
			h.Set(ov.header, v)
			if ov.header == "Content-Disposition" {
				h.Del("X-Oss-Force-Download")
			}
		}
	}
	h.Set("Content-Length", strconv.FormatInt(length, 10))
	c.w.WriteHeader(status)
	if head || length == 0 {
		return
	}
	_ = o.writeContent(c.w, start, length) // a write error means the client went away
}

// objectHeaders sets the metadata headers of o, and the forced download
// OSS applies to web pages served from a default bucket domain.
func (c *call) objectHeaders(o *object) {
	h := c.w.Header()
	h.Set("Content-Type", o.contentType)
	h.Set("Etag", o.etag)
	h.Set("Last-Modified", o.lastModified.Format(http.TimeFormat))
	h.Set("Accept-Ranges", "bytes")
	h.Set("X-Oss-Object-Type", o.objectType)
	h.Set("X-Oss-Storage-Class", "Standard")
	if o.crc64 != "" {
		h.Set("X-Oss-Hash-Crc64ecma", o.crc64)
	}
	if o.contentMD5 != "" {
		h.Set("Content-Md5", o.contentMD5)
	}
	if o.objectType == "Appendable" {
		h.Set("X-Oss-Next-Append-Position", strconv.FormatInt(o.size, 10))
	}
	for k, vs := range o.header {
		h[k] = append([]string(nil), vs...)
	}
	if !c.custom && isWebPage(o.contentType, c.key) {
		h.Set("Content-Disposition", "attachment")
		h.Set("X-Oss-Force-Download", "true")
	}
}

// isWebPage reports whether OSS forces the download of this object on its
// default domains: HTML by type or by extension.
func isWebPage(contentType, key string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	lk := strings.ToLower(key)
	return mt == "text/html" || strings.HasSuffix(lk, ".html") || strings.HasSuffix(lk, ".htm")
}

// putObject answers PutObject, streaming the body in.
func (c *call) putObject() {
	forbid := forbidOverwrite(c.r.Header)
	if forbid && c.e.lookup(c.bucket, c.key) != nil {
		c.fail(errFileAlreadyExists())
		return
	}
	data, aerr := c.readBody()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	o := newStoredObject(data, c.r.Header, "Normal")

	c.e.mu.Lock()
	b := c.e.buckets[c.bucket] // buckets are never deleted
	_, exists := b.objects[c.key]
	if !forbid || !exists {
		c.e.storeLocked(b, c.key, o)
	}
	c.e.mu.Unlock()
	if forbid && exists {
		c.fail(errFileAlreadyExists())
		return
	}
	h := c.w.Header()
	h.Set("Etag", o.etag)
	h.Set("Content-Md5", o.contentMD5)
	h.Set("X-Oss-Hash-Crc64ecma", o.crc64)
	h.Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
}

// errFileAlreadyExists answers a put with x-oss-forbid-overwrite on an
// existing key.
func errFileAlreadyExists() *apiError {
	return &apiError{http.StatusConflict, "FileAlreadyExists", "The object you specified already exists and can not be overwritten.", nil}
}

// base64MD5 is an MD5 sum as Content-MD5 carries it.
func base64MD5(sum [md5.Size]byte) string {
	return base64.StdEncoding.EncodeToString(sum[:])
}

// readBody reads the request body and checks Content-MD5 when sent.
func (c *call) readBody() ([]byte, *apiError) {
	var buf bytes.Buffer
	if n := c.r.ContentLength; n > 0 && n < 64<<20 {
		buf.Grow(int(n))
	}
	sum := md5.New()
	if _, err := io.Copy(io.MultiWriter(&buf, sum), c.r.Body); err != nil {
		return nil, &apiError{http.StatusBadRequest, "IncompleteBody", fmt.Sprintf("Reading the request body failed: %v.", err), nil}
	}
	if want := c.r.Header.Get("Content-Md5"); want != "" {
		if want != base64.StdEncoding.EncodeToString(sum.Sum(nil)) {
			return nil, &apiError{http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid.", nil}
		}
	}
	data := buf.Bytes()
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// appendObject answers AppendObject: POST ?append&position=N.
func (c *call) appendObject() {
	pos, err := strconv.ParseInt(c.r.URL.Query().Get("position"), 10, 64)
	if err != nil || pos < 0 {
		c.fail(invalidArgument("AppendObject needs a non-negative integer position."))
		return
	}
	if aerr := c.checkAppend(c.e.lookup(c.bucket, c.key), pos); aerr != nil {
		c.fail(aerr)
		return
	}
	data, aerr := c.readBody()
	if aerr != nil {
		c.fail(aerr)
		return
	}

	c.e.mu.Lock()
	b := c.e.buckets[c.bucket] // buckets are never deleted
	prev := b.objects[c.key]
	aerr = c.checkAppend(prev, pos)
	var o *object
	if aerr == nil {
		if prev == nil {
			o = newStoredObject(data, c.r.Header, "Appendable")
		} else {
			all := make([]byte, 0, len(prev.data)+len(data))
			all = append(append(all, prev.data...), data...)
			o = newStoredObject(all, nil, "Appendable")
			o.contentType, o.header = prev.contentType, prev.header
		}
		c.e.storeLocked(b, c.key, o)
	}
	c.e.mu.Unlock()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	h := c.w.Header()
	h.Set("Etag", o.etag)
	h.Set("X-Oss-Next-Append-Position", strconv.FormatInt(o.size, 10))
	h.Set("X-Oss-Hash-Crc64ecma", o.crc64)
	h.Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
}

// checkAppend checks that an append at pos may go onto prev (nil: new).
func (c *call) checkAppend(prev *object, pos int64) *apiError {
	cur := int64(0)
	if prev != nil {
		if prev.objectType != "Appendable" {
			return &apiError{http.StatusConflict, "ObjectNotAppendable", "The object is not appendable.", nil}
		}
		cur = prev.size
	}
	if pos != cur {
		c.w.Header().Set("X-Oss-Next-Append-Position", strconv.FormatInt(cur, 10))
		return &apiError{http.StatusConflict, "PositionNotEqualToLength", "Position is not equal to file length.", nil}
	}
	return nil
}
