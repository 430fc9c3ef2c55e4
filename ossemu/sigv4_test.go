package ossemu

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// goldenQuery is the query of the SDK's signer_test.go vectors.
func goldenQuery() url.Values {
	v := url.Values{}
	v.Add("param1", "value1")
	v.Add("+param1", "value3")
	v.Add("|param1", "value4")
	v.Add("+param2", "")
	v.Add("|param2", "")
	v.Add("param2", "")
	return v
}

// goldenHeader is the header set of the SDK's signer_test.go vectors.
func goldenHeader(contentType string) http.Header {
	h := http.Header{}
	h.Add("x-oss-head1", "value")
	h.Add("abc", "value")
	h.Add("ZAbc", "value")
	h.Add("XYZ", "value")
	h.Add("content-type", contentType)
	return h
}

// TestGoldenVectors reproduces the SDK's signer_test.go vectors
// (TestV4AuthHeader, TestV4AuthHeaderToken, TestV4AuthHeaderWithAdditionalHeaders,
// TestV4AuthQuery, TestV4AuthQueryToken, TestV4AuthQueryWithAdditionalHeaders)
// and shows the emulator's own verifier computes the same signatures, both
// as a function and end to end through ServeHTTP.
func TestGoldenVectors(t *testing.T) {
	type vector struct {
		name       string
		query      bool
		signTime   int64
		token      string
		additional []string
		want       string
	}
	vectors := []vector{
		{name: "TestV4AuthHeader", signTime: 1702743657, want: "e21d18daa82167720f9b1047ae7e7f1ce7cb77a31e8203a7d5f4624fa0284afe"},
		{name: "TestV4AuthHeaderToken", signTime: 1702784856, token: "token", want: "b94a3f999cf85bcdc00d332fbd3734ba03e48382c36fa4d5af5df817395bd9ea"},
		{name: "TestV4AuthHeaderWithAdditionalHeaders", signTime: 1702747512, additional: []string{"abc", "zabc"}, want: "4a4183c187c07c8947db7620deb0a6b38d9fbdd34187b6dbaccb316fa251212f"},
		{name: "TestV4AuthQuery", query: true, signTime: 1702781677, want: "a39966c61718be0d5b14e668088b3fa07601033f6518ac7b523100014269c0fe"},
		{name: "TestV4AuthQueryToken", query: true, signTime: 1702785388, token: "token", want: "3817ac9d206cd6dfc90f1c09c00be45005602e55898f26f5ddb06d7892e1f8b5"},
		{name: "TestV4AuthQueryWithAdditionalHeaders", query: true, signTime: 1702783809, additional: []string{"abc", "zabc"}, want: "6bd984bfe531afb6db1f7550983a741b103a8c58e5e14f83ea474c2322dfa2b7"},
	}
	const host = "bucket.oss-cn-hangzhou.aliyuncs.com"
	const bucketName, key = "bucket", "1234+-/123/1.txt"

	for _, v := range vectors {
		t.Run(v.name, func(t *testing.T) {
			now := time.Unix(v.signTime, 0).UTC()
			datetime := now.Format(iso8601DateTime)
			scope := now.Format(iso8601Date) + "/cn-hangzhou/oss/aliyun_v4_request"
			q := goldenQuery()
			var h http.Header
			if v.query {
				h = goldenHeader("application/octet-stream")
				if v.token != "" {
					q.Add("x-oss-security-token", v.token)
				}
				q.Add("x-oss-signature-version", algorithmV4)
				q.Add("x-oss-date", datetime)
				q.Add("x-oss-expires", "599")
				q.Add("x-oss-credential", "ak/"+scope)
				if len(v.additional) > 0 {
					q.Add("x-oss-additional-headers", strings.Join(v.additional, ";"))
				}
			} else {
				h = goldenHeader("text/plain")
				h.Set("x-oss-content-sha256", unsignedPayload)
				h.Set("x-oss-date", datetime)
				if v.token != "" {
					h.Set("x-oss-security-token", v.token)
				}
			}
			rawQuery := strings.ReplaceAll(q.Encode(), "+", "%20")

			canonical, err := canonicalRequest(http.MethodPut, bucketName, key, rawQuery, h, host, v.additional)
			if err != nil {
				t.Fatalf("canonicalRequest: %v", err)
			}
			got := signatureV4("sk", now.Format(iso8601Date), "cn-hangzhou", "oss", stringToSign(datetime, scope, canonical))
			if got != v.want {
				t.Fatalf("signature = %s, want %s\ncanonical request:\n%s", got, v.want, canonical)
			}

			// End to end: the same request, as a server receives it.
			e := New(Options{Region: "cn-hangzhou", Now: func() time.Time { return now }})
			e.AddCredential("ak", "sk", v.token)
			e.CreateBucket(bucketName, Private)
			if v.query {
				rawQuery += "&x-oss-signature=" + v.want
			} else {
				auth := "OSS4-HMAC-SHA256 Credential=ak/" + scope
				if len(v.additional) > 0 {
					auth += ",AdditionalHeaders=" + strings.Join(v.additional, ";")
				}
				h.Set("Authorization", auth+",Signature="+v.want)
			}
			req := httptest.NewRequest(http.MethodPut, "http://"+host+"/1234%2B-/123/1.txt?"+rawQuery, nil)
			req.Header = h
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				t.Fatalf("ServeHTTP = %d\n%s", rec.Code, rec.Body)
			}
			rq := e.Requests()[0]
			if !rq.Signed || rq.Bucket != bucketName || rq.Key != key {
				t.Errorf("logged signed=%v bucket=%q key=%q", rq.Signed, rq.Bucket, rq.Key)
			}

			// One changed signed header breaks it.
			req = httptest.NewRequest(http.MethodPut, "http://"+host+"/1234%2B-/123/1.txt?"+rawQuery, nil)
			req.Header = h.Clone()
			req.Header.Set("x-oss-head1", "other")
			rec = httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden || errorCode(rec.Body.String()) != "SignatureDoesNotMatch" {
				t.Errorf("tampered header = %d %s", rec.Code, rec.Body)
			}
		})
	}
}

func TestCanonicalQuery(t *testing.T) {
	tests := []struct{ raw, want string }{
		{"", ""},
		{"acl", "acl"},
		{"b=2&a=1", "a=1&b=2"},
		{"k=", "k"},
		{"k=a+b", "k=a%20b"},
		{"k=a%20b", "k=a%20b"},
		{"k=text/plain", "k=text%2Fplain"},
		{"k=text%2fplain", "k=text%2Fplain"},
		{"x-oss-signature=abc&x-oss-date=1", "x-oss-date=1"},
		{"%7Cp=1&%2Bp=2&p=3", "%2Bp=2&%7Cp=1&p=3"}, // sorted by encoded key, as the SDK does
		{"a=1&&b", "a=1&b"},
		{"k=%E4%B8%AD~._-", "k=%E4%B8%AD~._-"},
	}
	for _, tt := range tests {
		got, err := canonicalQuery(tt.raw)
		if err != nil || got != tt.want {
			t.Errorf("canonicalQuery(%q) = %q, %v; want %q", tt.raw, got, err, tt.want)
		}
	}
	if _, err := canonicalQuery("k=%zz"); err == nil {
		t.Error("canonicalQuery accepted an invalid escape")
	}
}

// TestSignatureErrors covers malformed and out-of-date signature
// information sent by hand.
func TestSignatureErrors(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	e := New(Options{Region: "cn-hangzhou", Now: func() time.Time { return now }})
	e.AddCredential("ak", "sk", "")
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "k", []byte("v"), nil)
	date := now.Format(iso8601DateTime)
	scope := "ak/20240501/cn-hangzhou/oss/aliyun_v4_request"

	tests := []struct {
		name   string
		header map[string]string
		query  string
		status int
		code   string
	}{
		{"V1 header", map[string]string{"Authorization": "OSS ak:c2lnbmF0dXJl"}, "", 403, "SignatureDoesNotMatch"},
		{"V1 query", nil, "OSSAccessKeyId=ak&Expires=1&Signature=x", 403, "SignatureDoesNotMatch"},
		{"missing signature field", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope, "x-oss-date": date}, "", 400, "InvalidArgument"},
		{"unknown field", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope + ",Bogus=1,Signature=00", "x-oss-date": date}, "", 400, "InvalidArgument"},
		{"missing x-oss-date", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope + ",Signature=00"}, "", 400, "InvalidArgument"},
		{"bad terminator", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=ak/20240501/cn-hangzhou/oss/abc,Signature=00", "x-oss-date": date}, "", 400, "InvalidArgument"},
		{"scope date differs", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=ak/20240502/cn-hangzhou/oss/aliyun_v4_request,Signature=00", "x-oss-date": date}, "", 400, "InvalidArgument"},
		{"skewed", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope + ",Signature=00", "x-oss-date": now.Add(-16 * time.Minute).Format(iso8601DateTime)}, "", 403, "RequestTimeTooSkewed"},
		{"bad signature", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope + ",Signature=00", "x-oss-date": date}, "", 403, "SignatureDoesNotMatch"},
		{"header and query", map[string]string{"Authorization": "OSS4-HMAC-SHA256 Credential=" + scope + ",Signature=00", "x-oss-date": date}, "x-oss-signature=00", 400, "InvalidArgument"},
		{"query wrong version", nil, "x-oss-signature-version=OSS2&x-oss-credential=" + url.QueryEscape(scope) + "&x-oss-date=" + date + "&x-oss-expires=60&x-oss-signature=00", 400, "InvalidArgument"},
		{"query expires too long", nil, "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=" + url.QueryEscape(scope) + "&x-oss-date=" + date + "&x-oss-expires=604801&x-oss-signature=00", 400, "InvalidArgument"},
		{"query expired", nil, "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=" + url.QueryEscape(scope) + "&x-oss-date=" + now.Add(-2*time.Minute).Format(iso8601DateTime) + "&x-oss-expires=60&x-oss-signature=00", 403, "AccessDenied"},
		{"query bad signature", nil, "x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=" + url.QueryEscape(scope) + "&x-oss-date=" + date + "&x-oss-expires=60&x-oss-signature=00", 403, "SignatureDoesNotMatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "http://pub.oss-cn-hangzhou.aliyuncs.com/k"
			if tt.query != "" {
				target += "?" + tt.query
			}
			req := httptest.NewRequest(http.MethodGet, target, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tt.status || errorCode(rec.Body.String()) != tt.code {
				t.Errorf("got %d %s, want %d %s", rec.Code, rec.Body, tt.status, tt.code)
			}
		})
	}
}

// xmlElem is one child element of an XML document's root, in order.
type xmlElem struct{ name, value string }

// rootElements returns the root's child elements in document order, so a
// test can assert the exact layout of an OSS error body.
func rootElements(t *testing.T, body []byte) []xmlElem {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	var out []xmlElem
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("parse %q: %v", body, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 2 {
				var v string
				if err := d.DecodeElement(&v, &tok); err != nil {
					t.Fatalf("decode <%s>: %v", tok.Name.Local, err)
				}
				out = append(out, xmlElem{tok.Name.Local, v})
				depth--
			}
		case xml.EndElement:
			depth--
		}
	}
}

// elemNames lists the names of elems.
func elemNames(elems []xmlElem) []string {
	names := make([]string, len(elems))
	for i, el := range elems {
		names[i] = el.name
	}
	return names
}

// elemValue is the value of the first element called name, or "".
func elemValue(elems []xmlElem, name string) string {
	for _, el := range elems {
		if el.name == name {
			return el.value
		}
	}
	return ""
}

// TestSignatureMismatchBody checks that a tampered request gets OSS's V4
// SignatureDoesNotMatch body, element for element and in OSS's order, with
// the EC also in x-oss-ec, for GET (body) and HEAD (x-oss-err).
func TestSignatureMismatchBody(t *testing.T) {
	now := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	e := New(Options{Region: "cn-hangzhou", Now: func() time.Time { return now }})
	const secret = "the-secret-never-echoed"
	e.AddCredential("ak", secret, "")
	e.CreateBucket("bucket", Private)
	e.PutObject("bucket", "k.txt", []byte("v"), nil)
	const host = "bucket.oss-cn-hangzhou.aliyuncs.com"
	const provided = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

	wantNames := []string{"Code", "Message", "RequestId", "HostId", "OSSAccessKeyId", "SignatureProvided",
		"StringToSign", "StringToSignBytes", "CanonicalRequest", "EC", "RecommendDoc"}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		t.Run(method, func(t *testing.T) {
			req := httptest.NewRequest(method, "http://"+host+"/k.txt?versionId=null", nil)
			req.Header.Set("x-oss-date", now.Format(iso8601DateTime))
			req.Header.Set("x-oss-content-sha256", unsignedPayload)
			req.Header.Set("Authorization", "OSS4-HMAC-SHA256 Credential=ak/20240501/cn-hangzhou/oss/aliyun_v4_request,Signature="+provided)
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden {
				t.Fatalf("status = %d", rec.Code)
			}
			if got := rec.Header().Get("X-Oss-Ec"); got != "0002-00000040" {
				t.Errorf("x-oss-ec = %q", got)
			}
			body := rec.Body.Bytes()
			if method == http.MethodHead {
				var err error
				if body, err = base64.StdEncoding.DecodeString(rec.Header().Get("X-Oss-Err")); err != nil {
					t.Fatalf("x-oss-err: %v", err)
				}
			}
			elems := rootElements(t, body)
			if got := elemNames(elems); !slices.Equal(got, wantNames) {
				t.Fatalf("elements = %v\nwant %v", got, wantNames)
			}
			canonical := "" + method + "\n/bucket/k.txt\nversionId=null\n" +
				"x-oss-content-sha256:UNSIGNED-PAYLOAD\nx-oss-date:20240501T120000Z\n\n\nUNSIGNED-PAYLOAD"
			sum := sha256.Sum256([]byte(canonical))
			sts := "OSS4-HMAC-SHA256\n20240501T120000Z\n20240501/cn-hangzhou/oss/aliyun_v4_request\n" + hex.EncodeToString(sum[:])
			var stsBytes []string
			for _, c := range []byte(sts) {
				stsBytes = append(stsBytes, fmt.Sprintf("%02X", c))
			}
			want := map[string]string{
				"Code":              "SignatureDoesNotMatch",
				"Message":           "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
				"RequestId":         rec.Header().Get("X-Oss-Request-Id"),
				"HostId":            host,
				"OSSAccessKeyId":    "ak",
				"SignatureProvided": provided,
				"StringToSign":      sts,
				"StringToSignBytes": strings.Join(stsBytes, " "),
				"CanonicalRequest":  canonical,
				"EC":                "0002-00000040",
				"RecommendDoc":      "https://api.aliyun.com/troubleshoot?q=0002-00000040",
			}
			for _, el := range elems {
				if el.value != want[el.name] {
					t.Errorf("<%s> = %q\nwant %q", el.name, el.value, want[el.name])
				}
			}
			if bytes.Contains(body, []byte(secret)) {
				t.Errorf("body leaks the secret: %s", body)
			}
		})
	}
}

func TestHexBytes(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"OSS4", "4F 53 53 34"},
		{"\n\x00\xff", "0A 00 FF"},
	}
	for _, tt := range tests {
		if got := hexBytes(tt.in); got != tt.want {
			t.Errorf("hexBytes(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
