package ossemu

import (
	"crypto/md5"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
)

// mpClient drives the multipart API over plain HTTP against a
// public-read-write bucket, so these tests see OSS's exact XML and status
// codes without an SDK in between.
type mpClient struct {
	t    *testing.T
	base string // http://addr/bucket/
}

// initiate starts an upload of key and returns its ID.
func (m mpClient) initiate(key string, hdr http.Header) string {
	m.t.Helper()
	r := do(m.t, http.MethodPost, m.base+key+"?uploads", "", hdr, "")
	var res struct {
		XMLName  xml.Name `xml:"InitiateMultipartUploadResult"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		UploadID string   `xml:"UploadId"`
	}
	if r.status != 200 || xml.Unmarshal([]byte(r.body), &res) != nil || res.UploadID == "" || res.Key != key {
		m.t.Fatalf("InitiateMultipartUpload %s = %d %s", key, r.status, r.body)
	}
	return res.UploadID
}

// put uploads one part and returns the response.
func (m mpClient) put(key, id string, n int, data string) response {
	m.t.Helper()
	return do(m.t, http.MethodPut, fmt.Sprintf("%s%s?partNumber=%d&uploadId=%s", m.base, key, n, id), "", nil, data)
}

// complete sends CompleteMultipartUpload with the given XML body.
func (m mpClient) complete(key, id, body string, hdr http.Header) response {
	m.t.Helper()
	return do(m.t, http.MethodPost, m.base+key+"?uploadId="+id, "", hdr, body)
}

// completeXML is a CompleteMultipartUpload body listing parts as
// number/ETag pairs.
func completeXML(parts ...any) string {
	var b strings.Builder
	b.WriteString("<CompleteMultipartUpload>")
	for i := 0; i+1 < len(parts); i += 2 {
		fmt.Fprintf(&b, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", parts[i], parts[i+1])
	}
	b.WriteString("</CompleteMultipartUpload>")
	return b.String()
}

// partETag is the quoted upper-hex MD5 OSS answers for a part.
func partETag(data string) string {
	return fmt.Sprintf(`"%X"`, md5.Sum([]byte(data)))
}

// multipartETag is OSS's ETag of a multipart object, computed here
// independently of the emulator: MD5 of the parts' binary MD5s, then -N.
func multipartETag(parts ...string) string {
	var sums []byte
	for _, p := range parts {
		s := md5.Sum([]byte(p))
		sums = append(sums, s[:]...)
	}
	return fmt.Sprintf(`"%X-%d"`, md5.Sum(sums), len(parts))
}

func TestMultipartUploadFlow(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion, MinPartSize: 5})
	e.CreateBucket("rw", PublicReadWrite)
	m := mpClient{t, "http://" + addr + "/rw/"}

	id := m.initiate("big.txt", http.Header{"Content-Type": {"text/plain"}, "X-Oss-Meta-Owner": {"tests"}, "Cache-Control": {"no-cache"}})
	if got := e.Uploads("rw"); len(got) != 1 || got[0].Key != "big.txt" || got[0].UploadID != id {
		t.Fatalf("Uploads = %+v", got)
	}

	p1, p2, p3 := "first-part|", "second-part|", "end"
	for n, data := range map[int]string{1: p1, 2: "to be replaced", 3: p3} {
		r := m.put("big.txt", id, n, data)
		crc := strconv.FormatUint(crc64.Checksum([]byte(data), crc64.MakeTable(crc64.ECMA)), 10)
		if r.status != 200 || r.header.Get("Etag") != partETag(data) || r.header.Get("X-Oss-Hash-Crc64ecma") != crc {
			t.Fatalf("UploadPart %d = %d %v %s", n, r.status, r.header, r.body)
		}
	}
	if r := m.put("big.txt", id, 2, p2); r.status != 200 || r.header.Get("Etag") != partETag(p2) {
		t.Fatalf("re-upload of part 2 = %d %v", r.status, r.header)
	}
	parts, ok := e.PendingParts("rw", "big.txt", id)
	if !ok || len(parts) != 3 || string(parts[1].Data) != p2 || parts[1].ETag != partETag(p2) || parts[1].Size != int64(len(p2)) {
		t.Fatalf("PendingParts = %+v, %v", parts, ok)
	}

	t.Run("UploadPart refusals", func(t *testing.T) {
		other := m.initiate("other.txt", nil)
		tests := []struct {
			name, key, query string
			status           int
			code             string
		}{
			{"part number 0", "big.txt", "partNumber=0&uploadId=" + id, 400, "InvalidArgument"},
			{"part number 10001", "big.txt", "partNumber=10001&uploadId=" + id, 400, "InvalidArgument"},
			{"part number not a number", "big.txt", "partNumber=x&uploadId=" + id, 400, "InvalidArgument"},
			{"no part number", "big.txt", "uploadId=" + id, 400, "InvalidArgument"},
			{"unknown upload", "big.txt", "partNumber=1&uploadId=NOPE", 404, "NoSuchUpload"},
			{"upload of another key", "big.txt", "partNumber=1&uploadId=" + other, 404, "NoSuchUpload"},
			{"copy source", "big.txt", "partNumber=1&uploadId=" + id, 501, "NotImplemented"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				var hdr http.Header
				if tt.status == 501 {
					hdr = http.Header{"X-Oss-Copy-Source": {"/rw/other.txt"}}
				}
				r := do(t, http.MethodPut, m.base+tt.key+"?"+tt.query, "", hdr, "zzzzzz")
				if r.status != tt.status || errorCode(r.body) != tt.code {
					t.Errorf("got %d %s", r.status, r.body)
				}
			})
		}
		if r := do(t, http.MethodPut, m.base+"other.txt?partNumber=10000&uploadId="+other, "", nil, "x"); r.status != 200 {
			t.Errorf("part number 10000 = %d %s", r.status, r.body)
		}
		if r := do(t, http.MethodDelete, m.base+"big.txt?uploadId="+other, "", nil, ""); r.status != 404 || errorCode(r.body) != "NoSuchUpload" {
			t.Errorf("Abort through another key = %d %s", r.status, r.body)
		}
		if r := do(t, http.MethodDelete, m.base+"other.txt?uploadId="+other, "", nil, ""); r.status != 204 {
			t.Errorf("abort of other = %d %s", r.status, r.body)
		}
	})

	t.Run("ListParts", func(t *testing.T) {
		type listed struct {
			PartNumberMarker     int  `xml:"PartNumberMarker"`
			NextPartNumberMarker int  `xml:"NextPartNumberMarker"`
			MaxParts             int  `xml:"MaxParts"`
			IsTruncated          bool `xml:"IsTruncated"`
			Parts                []struct {
				PartNumber   int    `xml:"PartNumber"`
				ETag         string `xml:"ETag"`
				Size         int64  `xml:"Size"`
				LastModified string `xml:"LastModified"`
			} `xml:"Part"`
		}
		tests := []struct {
			query     string
			numbers   []int
			next, max int
			truncated bool
		}{
			{"", []int{1, 2, 3}, 3, 1000, false},
			{"&max-parts=2", []int{1, 2}, 2, 2, true},
			{"&max-parts=2&part-number-marker=2", []int{3}, 3, 2, false},
			{"&part-number-marker=3", nil, 0, 1000, false},
		}
		for _, tt := range tests {
			t.Run(tt.query, func(t *testing.T) {
				r := do(t, http.MethodGet, m.base+"big.txt?uploadId="+id+tt.query, "", nil, "")
				var res listed
				if r.status != 200 || xml.Unmarshal([]byte(r.body), &res) != nil {
					t.Fatalf("ListParts = %d %s", r.status, r.body)
				}
				var nums []int
				for _, p := range res.Parts {
					nums = append(nums, p.PartNumber)
					if p.PartNumber == 2 && (p.ETag != partETag(p2) || p.Size != int64(len(p2)) || p.LastModified == "") {
						t.Errorf("part 2 = %+v", p)
					}
				}
				if fmt.Sprint(nums) != fmt.Sprint(tt.numbers) || res.NextPartNumberMarker != tt.next || res.MaxParts != tt.max || res.IsTruncated != tt.truncated {
					t.Errorf("ListParts%s = %s", tt.query, r.body)
				}
			})
		}
		for _, q := range []string{"&max-parts=0", "&max-parts=1001", "&part-number-marker=-1", "&encoding-type=base64"} {
			if r := do(t, http.MethodGet, m.base+"big.txt?uploadId="+id+q, "", nil, ""); r.status != 400 || errorCode(r.body) != "InvalidArgument" {
				t.Errorf("ListParts%s = %d %s", q, r.status, r.body)
			}
		}
		if r := do(t, http.MethodGet, m.base+"big.txt?uploadId=NOPE", "", nil, ""); r.status != 404 || errorCode(r.body) != "NoSuchUpload" {
			t.Errorf("ListParts of an unknown upload = %d %s", r.status, r.body)
		}
	})

	t.Run("Complete refusals", func(t *testing.T) {
		e.PutObject("rw", "small.txt", []byte("x"), nil)
		small := m.initiate("small.txt", nil)
		for n, data := range []string{"abc", "defgh", "ij"} {
			if r := m.put("small.txt", small, n+1, data); r.status != 200 {
				t.Fatalf("UploadPart = %d", r.status)
			}
		}
		tests := []struct {
			name, key, id, body string
			hdr                 http.Header
			status              int
			code                string
		}{
			{"descending", "big.txt", id, completeXML(2, partETag(p2), 1, partETag(p1)), nil, 400, "InvalidPartOrder"},
			{"duplicate", "big.txt", id, completeXML(1, partETag(p1), 1, partETag(p1)), nil, 400, "InvalidPartOrder"},
			{"missing part", "big.txt", id, completeXML(1, partETag(p1), 4, partETag(p3)), nil, 400, "InvalidPart"},
			{"wrong ETag", "big.txt", id, completeXML(1, partETag(p1), 2, partETag("to be replaced")), nil, 400, "InvalidPart"},
			{"part too small", "small.txt", small, completeXML(1, partETag("abc"), 2, partETag("defgh")), nil, 400, "EntityTooSmall"},
			{"not XML", "big.txt", id, "<CompleteMultipartUpload><Part>", nil, 400, "MalformedXML"},
			{"wrong root", "big.txt", id, "<Other><Part><PartNumber>1</PartNumber></Part></Other>", nil, 400, "MalformedXML"},
			{"no parts", "big.txt", id, "<CompleteMultipartUpload></CompleteMultipartUpload>", nil, 400, "MalformedXML"},
			{"complete-all with a body", "big.txt", id, completeXML(1, partETag(p1)), http.Header{"X-Oss-Complete-All": {"yes"}}, 400, "InvalidArgument"},
			{"unknown upload", "big.txt", "NOPE", completeXML(1, partETag(p1)), nil, 404, "NoSuchUpload"},
			{"forbid overwrite", "small.txt", small, completeXML(2, partETag("defgh"), 3, partETag("ij")), http.Header{"X-Oss-Forbid-Overwrite": {"true"}}, 409, "FileAlreadyExists"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if r := m.complete(tt.key, tt.id, tt.body, tt.hdr); r.status != tt.status || errorCode(r.body) != tt.code {
					t.Errorf("got %d %s", r.status, r.body)
				}
			})
		}
		if ps, ok := e.PendingParts("rw", "small.txt", small); !ok || len(ps) != 3 {
			t.Errorf("a refused Complete changed the upload: %+v %v", ps, ok)
		}
		if b, _ := e.Object("rw", "small.txt"); string(b) != "x" {
			t.Errorf("a refused Complete replaced the object: %q", b)
		}
		// The last part may be small, and parts may be skipped.
		r := m.complete("small.txt", small, completeXML(2, partETag("defgh"), 3, strings.Trim(partETag("ij"), `"`)), nil)
		if r.status != 200 || !strings.Contains(r.body, "<ETag>"+xmlEscape(multipartETag("defgh", "ij"))+"</ETag>") {
			t.Errorf("Complete skipping part 1 = %d %s", r.status, r.body)
		}
		if b, _ := e.Object("rw", "small.txt"); string(b) != "defghij" {
			t.Errorf("stored = %q", b)
		}
	})

	r := m.complete("big.txt", id, completeXML(1, partETag(p1), 2, partETag(p2), 3, partETag(p3)), nil)
	var res struct {
		XMLName  xml.Name `xml:"CompleteMultipartUploadResult"`
		Location string   `xml:"Location"`
		Bucket   string   `xml:"Bucket"`
		Key      string   `xml:"Key"`
		ETag     string   `xml:"ETag"`
	}
	want := p1 + p2 + p3
	wantCRC := strconv.FormatUint(crc64.Checksum([]byte(want), crc64.MakeTable(crc64.ECMA)), 10)
	if r.status != 200 || xml.Unmarshal([]byte(r.body), &res) != nil {
		t.Fatalf("Complete = %d %s", r.status, r.body)
	}
	if res.ETag != multipartETag(p1, p2, p3) || res.Bucket != "rw" || res.Key != "big.txt" ||
		res.Location != "http://"+addr+"/rw/big.txt" || r.header.Get("X-Oss-Hash-Crc64ecma") != wantCRC {
		t.Errorf("Complete = %+v %v", res, r.header)
	}
	if _, ok := e.PendingParts("rw", "big.txt", id); ok {
		t.Error("the upload survived Complete")
	}
	got := do(t, http.MethodGet, m.base+"big.txt", "", nil, "")
	for k, v := range map[string]string{
		"Etag": res.ETag, "X-Oss-Object-Type": "Multipart", "Content-Type": "text/plain", "X-Oss-Meta-Owner": "tests",
		"Cache-Control": "no-cache", "X-Oss-Hash-Crc64ecma": wantCRC, "Content-Md5": "",
	} {
		if got.header.Get(k) != v {
			t.Errorf("GET %s = %q, want %q", k, got.header.Get(k), v)
		}
	}
	if got.body != want {
		t.Errorf("GET body = %q, want %q", got.body, want)
	}
	if r := m.complete("big.txt", id, completeXML(1, partETag(p1)), nil); r.status != 404 || errorCode(r.body) != "NoSuchUpload" {
		t.Errorf("second Complete = %d %s", r.status, r.body)
	}

	t.Run("complete-all", func(t *testing.T) {
		id := m.initiate("all.bin", nil)
		for _, n := range []int{3, 1, 2} {
			m.put("all.bin", id, n, strings.Repeat(strconv.Itoa(n), 6))
		}
		r := m.complete("all.bin", id, "", http.Header{"X-Oss-Complete-All": {"yes"}})
		if r.status != 200 || !strings.Contains(r.body, xmlEscape(multipartETag("111111", "222222", "333333"))) {
			t.Fatalf("complete-all = %d %s", r.status, r.body)
		}
		if b, _ := e.Object("rw", "all.bin"); string(b) != "111111222222333333" {
			t.Errorf("stored = %q", b)
		}
		empty := m.initiate("empty.bin", nil)
		if r := m.complete("empty.bin", empty, "", http.Header{"X-Oss-Complete-All": {"yes"}}); r.status != 400 || errorCode(r.body) != "InvalidPart" {
			t.Errorf("complete-all without parts = %d %s", r.status, r.body)
		}
	})

	t.Run("forbid overwrite remembered from Initiate", func(t *testing.T) {
		if r := do(t, http.MethodPost, m.base+"big.txt?uploads", "", http.Header{"X-Oss-Forbid-Overwrite": {"true"}}, ""); r.status != 409 || errorCode(r.body) != "FileAlreadyExists" {
			t.Errorf("Initiate over an existing object with forbid = %d %s", r.status, r.body)
		}
		id := m.initiate("race.txt", http.Header{"X-Oss-Forbid-Overwrite": {"true"}})
		m.put("race.txt", id, 1, "mine")
		e.PutObject("rw", "race.txt", []byte("theirs"), nil)
		if r := m.complete("race.txt", id, completeXML(1, partETag("mine")), nil); r.status != 409 || errorCode(r.body) != "FileAlreadyExists" {
			t.Errorf("Complete over an object created meanwhile = %d %s", r.status, r.body)
		}
		if b, _ := e.Object("rw", "race.txt"); string(b) != "theirs" {
			t.Errorf("overwritten: %q", b)
		}
	})

	t.Run("Abort", func(t *testing.T) {
		id := m.initiate("gone.txt", nil)
		m.put("gone.txt", id, 1, "data")
		if r := do(t, http.MethodDelete, m.base+"gone.txt?uploadId="+id, "", nil, ""); r.status != 204 {
			t.Fatalf("Abort = %d %s", r.status, r.body)
		}
		if _, ok := e.PendingParts("rw", "gone.txt", id); ok {
			t.Error("the upload survived Abort")
		}
		for _, u := range e.Uploads("rw") {
			if u.UploadID == id {
				t.Error("Uploads lists the aborted upload")
			}
		}
		if r := do(t, http.MethodDelete, m.base+"gone.txt?uploadId="+id, "", nil, ""); r.status != 404 || errorCode(r.body) != "NoSuchUpload" {
			t.Errorf("second Abort = %d %s", r.status, r.body)
		}
		if r := m.put("gone.txt", id, 1, "late"); r.status != 404 || errorCode(r.body) != "NoSuchUpload" {
			t.Errorf("UploadPart after Abort = %d %s", r.status, r.body)
		}
		if _, ok := e.Object("rw", "gone.txt"); ok {
			t.Error("an aborted upload made an object")
		}
	})
}

// xmlEscape escapes s as encoding/xml writes character data.
func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func TestMultipartEncodingTypeURL(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion, MinPartSize: 1})
	e.CreateBucket("rw", PublicReadWrite)
	key := "dir/a b+c&d%.txt"
	escaped := "dir/a%20b%2Bc%26d%25.txt"
	base := "http://" + addr + "/rw/"

	r := do(t, http.MethodPost, base+escaped+"?uploads&encoding-type=url", "", nil, "")
	var ini struct {
		EncodingType string `xml:"EncodingType"`
		Key          string `xml:"Key"`
		UploadID     string `xml:"UploadId"`
	}
	if r.status != 200 || xml.Unmarshal([]byte(r.body), &ini) != nil || ini.EncodingType != "url" {
		t.Fatalf("Initiate = %d %s", r.status, r.body)
	}
	if got, err := url.QueryUnescape(ini.Key); err != nil || got != key {
		t.Errorf("Key %q decodes to %q, %v", ini.Key, got, err)
	}
	if r := do(t, http.MethodPut, base+escaped+"?partNumber=1&uploadId="+ini.UploadID, "", nil, "x"); r.status != 200 {
		t.Fatalf("UploadPart = %d", r.status)
	}
	r = do(t, http.MethodGet, base+escaped+"?uploadId="+ini.UploadID+"&encoding-type=url", "", nil, "")
	if !strings.Contains(r.body, "<Key>"+xmlEscape(ini.Key)+"</Key>") || !strings.Contains(r.body, "<EncodingType>url</EncodingType>") {
		t.Errorf("ListParts = %s", r.body)
	}
	r = do(t, http.MethodPost, base+escaped+"?uploadId="+ini.UploadID+"&encoding-type=url", "", nil, completeXML(1, partETag("x")))
	if r.status != 200 || !strings.Contains(r.body, "<Key>"+xmlEscape(ini.Key)+"</Key>") || !strings.Contains(r.body, "<Location>http://"+addr+"/rw/"+escaped+"</Location>") {
		t.Errorf("Complete = %d %s", r.status, r.body)
	}
	if b, ok := e.Object("rw", key); !ok || string(b) != "x" {
		t.Errorf("stored under %q: %q %v", key, b, ok)
	}
}

func TestListMultipartUploads(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("rw", PublicReadWrite)
	m := mpClient{t, "http://" + addr + "/rw/"}
	ids := map[string][]string{}
	for _, k := range []string{"b/2", "a", "b/1", "a", "c"} {
		ids[k] = append(ids[k], m.initiate(k, nil))
	}
	type result struct {
		KeyMarker          string `xml:"KeyMarker"`
		UploadIDMarker     string `xml:"UploadIdMarker"`
		NextKeyMarker      string `xml:"NextKeyMarker"`
		NextUploadIDMarker string `xml:"NextUploadIdMarker"`
		MaxUploads         int    `xml:"MaxUploads"`
		IsTruncated        bool   `xml:"IsTruncated"`
		Uploads            []struct {
			Key      string `xml:"Key"`
			UploadID string `xml:"UploadId"`
		} `xml:"Upload"`
		CommonPrefixes []struct {
			Prefix string `xml:"Prefix"`
		} `xml:"CommonPrefixes"`
	}
	list := func(query string) result {
		t.Helper()
		r := do(t, http.MethodGet, "http://"+addr+"/rw/?uploads"+query, "", nil, "")
		var res result
		if r.status != 200 || xml.Unmarshal([]byte(r.body), &res) != nil {
			t.Fatalf("ListMultipartUploads%s = %d %s", query, r.status, r.body)
		}
		return res
	}
	render := func(res result) string {
		var out []string
		for _, u := range res.Uploads {
			n := 0
			for i, id := range ids[u.Key] {
				if id == u.UploadID {
					n = i
				}
			}
			out = append(out, fmt.Sprintf("%s#%d", u.Key, n))
		}
		for _, p := range res.CommonPrefixes {
			out = append(out, p.Prefix+"*")
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		query, want string
		truncated   bool
	}{
		{"", "a#0 a#1 b/1#0 b/2#0 c#0", false},
		{"&prefix=b/", "b/1#0 b/2#0", false},
		{"&delimiter=/", "a#0 a#1 c#0 b/*", false},
		{"&max-uploads=2", "a#0 a#1", true},
		{"&key-marker=a", "b/1#0 b/2#0 c#0", false},
		{"&key-marker=a&upload-id-marker=" + ids["a"][0], "a#1 b/1#0 b/2#0 c#0", false},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			res := list(tt.query)
			if got := render(res); got != tt.want || res.IsTruncated != tt.truncated {
				t.Errorf("got %q truncated=%v, want %q truncated=%v", got, res.IsTruncated, tt.want, tt.truncated)
			}
		})
	}
	// Paging with the Next markers visits every upload once.
	var seen []string
	q := "&max-uploads=2"
	for range 10 {
		res := list(q)
		seen = append(seen, render(res))
		if !res.IsTruncated {
			break
		}
		q = "&max-uploads=2&key-marker=" + url.QueryEscape(res.NextKeyMarker) + "&upload-id-marker=" + res.NextUploadIDMarker
	}
	if got := strings.Join(seen, " "); got != "a#0 a#1 b/1#0 b/2#0 c#0" {
		t.Errorf("paged = %q", got)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/rw/?uploads&max-uploads=0", "", nil, ""); r.status != 400 {
		t.Errorf("max-uploads=0 = %d", r.status)
	}
	if got := e.Uploads("rw"); len(got) != 5 || got[0].Key != "a" || got[4].Key != "c" {
		t.Errorf("Uploads = %+v", got)
	}
	if got := e.Uploads("nope"); got != nil {
		t.Errorf("Uploads of a missing bucket = %+v", got)
	}
}

// TestObjectSubresourcesNotImplemented pins the subresources (and copy
// requests) the emulator still answers NotImplemented, whatever the method,
// so none of them is served as a plain object operation by mistake.
func TestObjectSubresourcesNotImplemented(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("rw", PublicReadWrite)
	e.PutObject("rw", "k", []byte("v"), nil)
	for _, sub := range unimplementedObjectSubresources() {
		for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodPost, http.MethodDelete} {
			t.Run(method+" "+sub, func(t *testing.T) {
				r := do(t, method, "http://"+addr+"/rw/k?"+sub+"&uploadId=x&uploads", "", nil, "body")
				if r.status != 501 || errorCode(r.body) != "NotImplemented" {
					t.Errorf("got %d %s", r.status, r.body)
				}
			})
		}
	}
	for _, query := range []string{"", "?partNumber=1&uploadId=x"} {
		r := do(t, http.MethodPut, "http://"+addr+"/rw/k2"+query, "", http.Header{"X-Oss-Copy-Source": {"/rw/k"}}, "")
		if r.status != 501 || errorCode(r.body) != "NotImplemented" {
			t.Errorf("copy PUT%s = %d %s", query, r.status, r.body)
		}
	}
	if b, _ := e.Object("rw", "k"); string(b) != "v" {
		t.Errorf("object changed: %q", b)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/rw/k?uploads", "", nil, ""); r.status != 405 {
		t.Errorf("GET ?uploads on an object = %d", r.status)
	}
}
