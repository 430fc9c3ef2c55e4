package ossemu

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file answers multipart uploads (InitiateMultipartUpload, UploadPart,
// CompleteMultipartUpload, AbortMultipartUpload, ListParts and
// ListMultipartUploads) with OSS's XML, limits, errors and ETags, so that
// SDK uploaders, and the gateway when it relays them, can be proven against
// the emulator. Like every other operation they run only after call.serve
// has verified the signature (or the ACL let the request in unsigned).

// maxPartNumber is the largest part number OSS accepts.
const maxPartNumber = 10000

// maxListParts is the default and largest max-parts and max-uploads.
const maxListParts = 1000

// upload is one multipart upload in progress; guarded by Emulator.mu.
type upload struct {
	id              string
	key             string
	initiated       time.Time
	contentType     string      // of the object Complete creates
	header          http.Header // stored headers and x-oss-meta-*, as objectHeader keeps them
	forbidOverwrite bool        // x-oss-forbid-overwrite: true at Initiate
	parts           map[int]*part
}

// part is one uploaded part. Parts are immutable: a re-upload of the same
// number replaces the pointer.
type part struct {
	number       int
	data         []byte
	md5          [md5.Size]byte
	etag         string // quoted upper-hex MD5, as OSS answers
	crc64        uint64
	lastModified time.Time
}

// PendingUpload describes a multipart upload in progress, so tests can
// assert which uploads an SDK or the gateway left behind or aborted.
type PendingUpload struct {
	Key       string
	UploadID  string
	Initiated time.Time
}

// PendingPart is one part stored for an upload in progress, so tests can
// assert what UploadPart stored (and that a failed one stored nothing).
type PendingPart struct {
	Number int
	Size   int64
	ETag   string // quoted, as UploadPart answered it
	Data   []byte // a copy of the part's content
}

// Uploads lists the multipart uploads in progress in a bucket, ordered by
// key then initiation, like ListMultipartUploads. It returns nil for a
// bucket that does not exist.
func (e *Emulator) Uploads(bucketName string) []PendingUpload {
	e.mu.RLock()
	defer e.mu.RUnlock()
	b, ok := e.buckets[bucketName]
	if !ok {
		return nil
	}
	var out []PendingUpload
	for _, u := range b.sortedUploads() {
		out = append(out, PendingUpload{Key: u.key, UploadID: u.id, Initiated: u.initiated})
	}
	return out
}

// PendingParts returns the parts stored so far for the upload uploadID of
// key, in part-number order; ok is false when there is no such upload
// (never initiated, completed or aborted).
func (e *Emulator) PendingParts(bucketName, key, uploadID string) (parts []PendingPart, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	u := e.uploadLocked(bucketName, key, uploadID)
	if u == nil {
		return nil, false
	}
	parts = []PendingPart{}
	for _, p := range u.sortedParts() {
		parts = append(parts, PendingPart{Number: p.number, Size: int64(len(p.data)), ETag: p.etag, Data: bytes.Clone(p.data)})
	}
	return parts, true
}

// uploadLocked returns the upload uploadID of key, or nil: an upload ID
// used with another key is no upload, as on OSS. The caller holds e.mu.
func (e *Emulator) uploadLocked(bucketName, key, uploadID string) *upload {
	b, ok := e.buckets[bucketName]
	if !ok {
		return nil
	}
	u, ok := b.uploads[uploadID]
	if !ok || u.key != key {
		return nil
	}
	return u
}

// sortedUploads returns the bucket's uploads by key, then upload ID (which
// sorts by initiation within an emulator). The caller holds e.mu.
func (b *bucket) sortedUploads() []*upload {
	us := make([]*upload, 0, len(b.uploads))
	for _, u := range b.uploads {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool {
		if us[i].key != us[j].key {
			return us[i].key < us[j].key
		}
		return us[i].id < us[j].id
	})
	return us
}

// sortedParts returns the upload's parts in part-number order. The caller
// holds e.mu.
func (u *upload) sortedParts() []*part {
	ps := make([]*part, 0, len(u.parts))
	for _, p := range u.parts {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].number < ps[j].number })
	return ps
}

// newUploadID returns a 32-hex-digit upload ID like OSS's: the emulator's
// salt and a sequence (so IDs sort by initiation, which ListMultipartUploads
// relies on), then random bits so IDs cannot be guessed across emulators.
func (e *Emulator) newUploadID() string {
	var tail [8]byte
	_, _ = rand.Read(tail[:]) // crypto/rand.Read does not fail
	return fmt.Sprintf("%08X%08X%016X", e.idSalt, e.uploadSeq.Add(1), binary.BigEndian.Uint64(tail[:]))
}

// errNoSuchUpload answers an upload ID that names no upload in progress.
func errNoSuchUpload() *apiError {
	return &apiError{http.StatusNotFound, "NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.", nil}
}

// errMalformedXML answers a request body that is not the expected XML.
func errMalformedXML() *apiError {
	return &apiError{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.", nil}
}

// forbidOverwrite reports whether h asks not to overwrite an existing object.
func forbidOverwrite(h http.Header) bool {
	return strings.EqualFold(h.Get("X-Oss-Forbid-Overwrite"), "true")
}

// urlEncoding reads encoding-type: url is the only value OSS accepts; it
// asks for object names percent-encoded in the XML result (the Go SDK
// always sends it and decodes Key with url.QueryUnescape).
func urlEncoding(q url.Values) (bool, *apiError) {
	switch v := q.Get("encoding-type"); v {
	case "":
		return false, nil
	case "url":
		return true, nil
	default:
		return false, invalidArgument(fmt.Sprintf("Invalid encoding-type %q: the only valid value is url.", v))
	}
}

// encodeName percent-encodes name when enc, leaving '/' as is; any
// percent-decoder (url.QueryUnescape included) restores it.
func encodeName(name string, enc bool) string {
	if !enc {
		return name
	}
	return uriEscape(name, false)
}

// encodingType is the EncodingType element of a result: "url" or omitted.
func encodingType(enc bool) string {
	if enc {
		return "url"
	}
	return ""
}

// serveUpload dispatches the operations on one upload: ?uploadId=ID.
func (c *call) serveUpload(q url.Values) {
	switch c.r.Method {
	case http.MethodPut:
		c.uploadPart(q)
	case http.MethodPost:
		c.completeUpload(q)
	case http.MethodDelete:
		c.abortUpload(q)
	case http.MethodGet:
		c.listParts(q)
	default:
		c.fail(errMethodNotAllowed())
	}
}

// initiateResult is InitiateMultipartUpload's answer.
type initiateResult struct {
	XMLName      xml.Name `xml:"InitiateMultipartUploadResult"`
	EncodingType string   `xml:"EncodingType,omitempty"`
	Bucket       string   `xml:"Bucket"`
	Key          string   `xml:"Key"`
	UploadID     string   `xml:"UploadId"`
}

// initiateUpload answers InitiateMultipartUpload: POST /key?uploads. It
// remembers the headers the final object will carry, like PutObject.
func (c *call) initiateUpload(q url.Values) {
	enc, aerr := urlEncoding(q)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	forbid := forbidOverwrite(c.r.Header)
	if forbid && c.e.lookup(c.bucket, c.key) != nil {
		c.fail(errFileAlreadyExists())
		return
	}
	ct, kept := objectHeader(c.r.Header)
	u := &upload{
		id:              c.e.newUploadID(),
		key:             c.key,
		initiated:       c.e.now().UTC(),
		contentType:     ct,
		header:          kept,
		forbidOverwrite: forbid,
		parts:           make(map[int]*part),
	}
	c.e.mu.Lock()
	c.e.buckets[c.bucket].uploads[u.id] = u // buckets are never deleted
	c.e.mu.Unlock()
	c.writeXML(initiateResult{EncodingType: encodingType(enc), Bucket: c.bucket, Key: encodeName(c.key, enc), UploadID: u.id})
}

// uploadPart answers UploadPart: PUT /key?partNumber=N&uploadId=ID. The
// body is read whole before anything is stored, so a body that fails to
// arrive (short, aborted, badly chunked) leaves the upload as it was.
func (c *call) uploadPart(q url.Values) {
	n, err := strconv.Atoi(q.Get("partNumber"))
	if err != nil || n < 1 || n > maxPartNumber {
		c.fail(invalidArgument(fmt.Sprintf("Part number must be an integer between 1 and %d, inclusive.", maxPartNumber)))
		return
	}
	id := q.Get("uploadId")
	c.e.mu.RLock()
	known := c.e.uploadLocked(c.bucket, c.key, id) != nil
	c.e.mu.RUnlock()
	if !known {
		c.fail(errNoSuchUpload())
		return
	}
	data, aerr := c.readBody()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	p := &part{number: n, data: data, md5: md5.Sum(data), crc64: crc64ECMA(data), lastModified: c.e.now().UTC()}
	p.etag = `"` + strings.ToUpper(hex.EncodeToString(p.md5[:])) + `"`

	c.e.mu.Lock()
	u := c.e.uploadLocked(c.bucket, c.key, id) // it may have been completed or aborted meanwhile
	if u != nil {
		u.parts[n] = p
	}
	c.e.mu.Unlock()
	if u == nil {
		c.fail(errNoSuchUpload())
		return
	}
	h := c.w.Header()
	h.Set("Etag", p.etag)
	h.Set("Content-Md5", base64MD5(p.md5))
	h.Set("X-Oss-Hash-Crc64ecma", strconv.FormatUint(p.crc64, 10))
	h.Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
}

// completeRequest is CompleteMultipartUpload's request body.
type completeRequest struct {
	XMLName xml.Name       `xml:"CompleteMultipartUpload"`
	Parts   []completePart `xml:"Part"`
}

// completePart is one <Part> of completeRequest.
type completePart struct {
	PartNumber int    `xml:"PartNumber"`
	ETag       string `xml:"ETag"`
}

// completeResult is CompleteMultipartUpload's answer.
type completeResult struct {
	XMLName      xml.Name `xml:"CompleteMultipartUploadResult"`
	EncodingType string   `xml:"EncodingType,omitempty"`
	Location     string   `xml:"Location"`
	Bucket       string   `xml:"Bucket"`
	Key          string   `xml:"Key"`
	ETag         string   `xml:"ETag"`
}

// completeUpload answers CompleteMultipartUpload: POST /key?uploadId=ID,
// with the parts listed in the body or, with x-oss-complete-all: yes and no
// body, every part uploaded. It stores the concatenation as a Multipart
// object and drops the upload.
func (c *call) completeUpload(q url.Values) {
	enc, aerr := urlEncoding(q)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	id := q.Get("uploadId")
	c.e.mu.RLock()
	known := c.e.uploadLocked(c.bucket, c.key, id) != nil
	c.e.mu.RUnlock()
	if !known {
		c.fail(errNoSuchUpload())
		return
	}
	body, aerr := c.readBody()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	all := strings.EqualFold(c.r.Header.Get("X-Oss-Complete-All"), "yes")
	var listed []completePart
	switch {
	case all && len(bytes.TrimSpace(body)) > 0:
		c.fail(invalidArgument("The request body must be empty with x-oss-complete-all: yes."))
		return
	case !all:
		var req completeRequest
		if err := xml.Unmarshal(body, &req); err != nil || len(req.Parts) == 0 {
			c.fail(errMalformedXML())
			return
		}
		listed = req.Parts
	}

	c.e.mu.Lock()
	o, aerr := c.e.completeLocked(c.bucket, c.key, id, listed, all, forbidOverwrite(c.r.Header))
	c.e.mu.Unlock()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	c.w.Header().Set("X-Oss-Hash-Crc64ecma", o.crc64)
	c.writeXML(completeResult{
		EncodingType: encodingType(enc),
		Location:     c.objectLocation(),
		Bucket:       c.bucket,
		Key:          encodeName(c.key, enc),
		ETag:         o.etag,
	})
}

// completeLocked checks the listed parts (or takes every part when all)
// and stores the object they make, removing the upload. On error nothing
// changes. The caller holds e.mu for writing.
func (e *Emulator) completeLocked(bucketName, key, id string, listed []completePart, all, forbid bool) (*object, *apiError) {
	u := e.uploadLocked(bucketName, key, id)
	if u == nil {
		return nil, errNoSuchUpload()
	}
	var parts []*part
	if all {
		parts = u.sortedParts()
		if len(parts) == 0 {
			return nil, &apiError{http.StatusBadRequest, "InvalidPart", "No part has been uploaded for this upload.", nil}
		}
	} else {
		for i, lp := range listed {
			if i > 0 && lp.PartNumber <= listed[i-1].PartNumber {
				return nil, &apiError{http.StatusBadRequest, "InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered by part number.", nil}
			}
			p := u.parts[lp.PartNumber]
			if p == nil || !strings.EqualFold(bareETag(strings.TrimSpace(lp.ETag)), bareETag(p.etag)) {
				return nil, &apiError{http.StatusBadRequest, "InvalidPart", fmt.Sprintf(
					"One or more of the specified parts could not be found or the specified entity tag might not have matched the part's entity tag (part %d).", lp.PartNumber), nil}
			}
			parts = append(parts, p)
		}
	}
	for _, p := range parts[:len(parts)-1] {
		if int64(len(p.data)) < e.minPartSize {
			return nil, &apiError{http.StatusBadRequest, "EntityTooSmall", fmt.Sprintf(
				"Your proposed upload is smaller than the minimum allowed size: part %d has %d bytes, every part but the last needs %d.",
				p.number, len(p.data), e.minPartSize), nil}
		}
	}
	b := e.buckets[bucketName]
	if _, exists := b.objects[key]; exists && (forbid || u.forbidOverwrite) {
		return nil, errFileAlreadyExists()
	}
	o := newMultipartObject(parts, u.contentType, u.header)
	e.storeLocked(b, key, o)
	delete(b.uploads, id)
	return o, nil
}

// newMultipartObject builds the object Complete stores: the parts'
// concatenation, with OSS's multipart ETag, the upper-hex MD5 of the
// parts' binary MD5s followed by -<number of parts>, and no Content-MD5
// (OSS has none for multipart objects).
func newMultipartObject(parts []*part, contentType string, header http.Header) *object {
	size := 0
	sums := md5.New()
	for _, p := range parts {
		size += len(p.data)
		sums.Write(p.md5[:])
	}
	data := make([]byte, 0, size)
	for _, p := range parts {
		data = append(data, p.data...)
	}
	return &object{
		data:        data,
		size:        int64(size),
		etag:        fmt.Sprintf(`"%s-%d"`, strings.ToUpper(hex.EncodeToString(sums.Sum(nil))), len(parts)),
		contentType: contentType,
		header:      header.Clone(),
		objectType:  "Multipart",
		crc64:       strconv.FormatUint(crc64ECMA(data), 10),
	}
}

// objectLocation is the URL of the addressed object in the addressing
// style the request used, as OSS answers in Location.
func (c *call) objectLocation() string {
	scheme := "http"
	if c.r.TLS != nil {
		scheme = "https"
	}
	host := c.r.Host
	path := "/" + uriEscape(c.key, false)
	if !c.custom && !strings.HasPrefix(normalizeHost(host), strings.ToLower(c.bucket)+".") {
		path = "/" + uriEscape(c.bucket, false) + path
	}
	return scheme + "://" + host + path
}

// abortUpload answers AbortMultipartUpload: DELETE /key?uploadId=ID.
func (c *call) abortUpload(q url.Values) {
	id := q.Get("uploadId")
	c.e.mu.Lock()
	u := c.e.uploadLocked(c.bucket, c.key, id)
	if u != nil {
		delete(c.e.buckets[c.bucket].uploads, id)
	}
	c.e.mu.Unlock()
	if u == nil {
		c.fail(errNoSuchUpload())
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// listPartsResult is ListParts' answer.
type listPartsResult struct {
	XMLName              xml.Name   `xml:"ListPartsResult"`
	EncodingType         string     `xml:"EncodingType,omitempty"`
	Bucket               string     `xml:"Bucket"`
	Key                  string     `xml:"Key"`
	UploadID             string     `xml:"UploadId"`
	StorageClass         string     `xml:"StorageClass"`
	PartNumberMarker     int        `xml:"PartNumberMarker"`
	NextPartNumberMarker int        `xml:"NextPartNumberMarker"`
	MaxParts             int        `xml:"MaxParts"`
	IsTruncated          bool       `xml:"IsTruncated"`
	Parts                []listPart `xml:"Part"`
}

// listPart is one <Part> of listPartsResult.
type listPart struct {
	PartNumber    int    `xml:"PartNumber"`
	LastModified  string `xml:"LastModified"`
	ETag          string `xml:"ETag"`
	HashCrc64ecma string `xml:"HashCrc64ecma"`
	Size          int64  `xml:"Size"`
}

// listLimit parses a max-parts or max-uploads parameter: 1 to 1000,
// default 1000.
func listLimit(q url.Values, name string) (int, *apiError) {
	v := q.Get(name)
	if v == "" {
		return maxListParts, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxListParts {
		return 0, invalidArgument(fmt.Sprintf("%s must be an integer from 1 to %d.", name, maxListParts))
	}
	return n, nil
}

// listParts answers ListParts: GET /key?uploadId=ID, honouring max-parts
// and part-number-marker.
func (c *call) listParts(q url.Values) {
	enc, aerr := urlEncoding(q)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	maxParts, aerr := listLimit(q, "max-parts")
	if aerr != nil {
		c.fail(aerr)
		return
	}
	marker := 0
	if v := q.Get("part-number-marker"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			c.fail(invalidArgument("part-number-marker must be a non-negative integer."))
			return
		}
		marker = n
	}
	id := q.Get("uploadId")
	c.e.mu.RLock()
	u := c.e.uploadLocked(c.bucket, c.key, id)
	var parts []*part
	if u != nil {
		parts = u.sortedParts()
	}
	c.e.mu.RUnlock()
	if u == nil {
		c.fail(errNoSuchUpload())
		return
	}
	res := listPartsResult{
		EncodingType:     encodingType(enc),
		Bucket:           c.bucket,
		Key:              encodeName(c.key, enc),
		UploadID:         id,
		StorageClass:     "Standard",
		PartNumberMarker: marker,
		MaxParts:         maxParts,
	}
	for _, p := range parts {
		if p.number <= marker {
			continue
		}
		if len(res.Parts) == maxParts {
			res.IsTruncated = true
			break
		}
		res.Parts = append(res.Parts, listPart{
			PartNumber:    p.number,
			LastModified:  p.lastModified.Format("2006-01-02T15:04:05.000Z"),
			ETag:          p.etag,
			HashCrc64ecma: strconv.FormatUint(p.crc64, 10),
			Size:          int64(len(p.data)),
		})
		res.NextPartNumberMarker = p.number
	}
	c.writeXML(res)
}

// listUploadsResult is ListMultipartUploads' answer.
type listUploadsResult struct {
	XMLName            xml.Name       `xml:"ListMultipartUploadsResult"`
	EncodingType       string         `xml:"EncodingType,omitempty"`
	Bucket             string         `xml:"Bucket"`
	KeyMarker          string         `xml:"KeyMarker"`
	UploadIDMarker     string         `xml:"UploadIdMarker"`
	NextKeyMarker      string         `xml:"NextKeyMarker"`
	NextUploadIDMarker string         `xml:"NextUploadIdMarker"`
	Delimiter          string         `xml:"Delimiter"`
	Prefix             string         `xml:"Prefix"`
	MaxUploads         int            `xml:"MaxUploads"`
	IsTruncated        bool           `xml:"IsTruncated"`
	Uploads            []listUpload   `xml:"Upload"`
	CommonPrefixes     []commonPrefix `xml:"CommonPrefixes"`
}

// listUpload is one <Upload> of listUploadsResult.
type listUpload struct {
	Key          string `xml:"Key"`
	UploadID     string `xml:"UploadId"`
	StorageClass string `xml:"StorageClass"`
	Initiated    string `xml:"Initiated"`
}

// listUploads answers ListMultipartUploads: GET /?uploads on the bucket,
// honouring prefix, delimiter, key-marker, upload-id-marker and
// max-uploads. Uploads are ordered by key, then initiation.
func (c *call) listUploads(q url.Values) {
	enc, aerr := urlEncoding(q)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	maxUploads, aerr := listLimit(q, "max-uploads")
	if aerr != nil {
		c.fail(aerr)
		return
	}
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	keyMarker, idMarker := q.Get("key-marker"), q.Get("upload-id-marker")

	c.e.mu.RLock()
	all := c.e.buckets[c.bucket].sortedUploads()
	c.e.mu.RUnlock()

	res := listUploadsResult{
		EncodingType:   encodingType(enc),
		Bucket:         c.bucket,
		KeyMarker:      encodeName(keyMarker, enc),
		UploadIDMarker: idMarker,
		Delimiter:      encodeName(delim, enc),
		Prefix:         encodeName(prefix, enc),
		MaxUploads:     maxUploads,
	}
	seen := make(map[string]bool)
	var lastKey, lastID string
	for _, u := range all {
		if !strings.HasPrefix(u.key, prefix) {
			continue
		}
		if keyMarker != "" && (u.key < keyMarker || (u.key == keyMarker && (idMarker == "" || u.id <= idMarker))) {
			continue
		}
		cp := ""
		if i := strings.Index(u.key[len(prefix):], delim); delim != "" && i >= 0 {
			cp = u.key[:len(prefix)+i+len(delim)]
			if seen[cp] {
				lastKey, lastID = u.key, u.id
				continue
			}
		}
		if len(res.Uploads)+len(res.CommonPrefixes) == maxUploads {
			res.IsTruncated = true
			break
		}
		lastKey, lastID = u.key, u.id
		if cp != "" {
			seen[cp] = true
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{encodeName(cp, enc)})
			continue
		}
		res.Uploads = append(res.Uploads, listUpload{
			Key:          encodeName(u.key, enc),
			UploadID:     u.id,
			StorageClass: "Standard",
			Initiated:    u.initiated.Format("2006-01-02T15:04:05.000Z"),
		})
	}
	if res.IsTruncated {
		res.NextKeyMarker, res.NextUploadIDMarker = encodeName(lastKey, enc), lastID
	}
	c.writeXML(res)
}
