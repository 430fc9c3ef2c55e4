package proxy_test

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/ossemu"
)

// trustSite is a private site confined to the prefix site/ of prv-bucket,
// with writes allowed and image/watermark added to the default process
// actions: the attacker's best case.
const trustSite = `
[[site]]
name = "tb"
domains = ["tb.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "site/"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
[site.process]
actions = ["image/resize", "image/crop", "image/format", "image/quality", "image/rotate",
           "image/auto-orient", "image/interlace", "image/info", "image/average-hue", "image/watermark", "style"]
`

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// TestTrustBoundary runs every x-oss-* header, subresource and process
// operation the OSS SDKs (Go v2, ali-oss) send through a private site, and
// checks each decision against what the emulator received: a refused
// request never reaches it, a kept header or parameter arrives signed, a
// dropped one does not arrive.
func TestTrustBoundary(t *testing.T) {
	e := newEnv(t, envOpts{sites: trustSite})
	e.emu.CreateBucket("other-bucket", ossemu.Private)
	e.emu.PutObject("other-bucket", "loot.txt", []byte("other bucket"), nil)
	e.emu.PutObject(prvBucket, "site/a.jpg", []byte("jpeg"), http.Header{"Content-Type": {"image/jpeg"}})

	const (
		refused = iota // the gateway answers; OSS sees nothing
		kept           // reaches OSS with the header/parameter, signed
		dropped        // reaches OSS without it, signed
	)
	tests := []struct {
		name        string
		method      string
		target      string
		hdr         http.Header
		want        int    // refused, kept or dropped
		status      int    // for refused
		code        string // for refused
		reason      string // gateway_denied_total reason, for refused
		header      string // header checked upstream for kept/dropped ("" = none)
		param       string // query parameter checked upstream for kept/dropped ("" = none)
		upstreamKey string // key OSS must see, "" = not checked
	}{
		// Copies and ACL changes: refused whatever the method.
		{name: "copy-source", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source": {"/other-bucket/loot.txt"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source within prefix", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source": {"/prv-bucket/site/a.jpg"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source lower case", method: "PUT", target: "/b.txt", hdr: http.Header{"x-oss-copy-source": {"/prv-bucket/secret.txt"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source underscore", method: "PUT", target: "/b.txt", hdr: http.Header{"x_oss_copy_source": {"/prv-bucket/secret.txt"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source-range", method: "PUT", target: "/b.txt?partNumber=1&uploadId=u", hdr: http.Header{"X-Oss-Copy-Source-Range": {"bytes=0-1"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "upload part copy", method: "PUT", target: "/b.txt?partNumber=1&uploadId=u", hdr: http.Header{"X-Oss-Copy-Source": {"/other-bucket/loot.txt"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source-if-match", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source-If-Match": {"x"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source-if-none-match", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source-If-None-Match": {"x"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source-if-modified-since", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source-If-Modified-Since": {"x"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "copy-source-if-unmodified-since", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Copy-Source-If-Unmodified-Since": {"x"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "object-acl on put", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Object-Acl": {"public-read-write"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "object-acl on ?acl", method: "PUT", target: "/a.jpg?acl", hdr: http.Header{"X-Oss-Object-Acl": {"public-read-write"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "object-acl on get", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Object-Acl": {"public-read"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},
		{name: "bucket acl", method: "PUT", target: "/b.txt", hdr: http.Header{"X-Oss-Acl": {"public-read-write"}}, want: refused, status: 403, code: "AccessDenied", reason: "header"},

		// Headers oss_headers lists (the defaults): forwarded and signed.
		{name: "meta", method: "PUT", target: "/m.txt", hdr: http.Header{"X-Oss-Meta-Owner": {"me"}}, want: kept, header: "X-Oss-Meta-Owner"},
		{name: "forbid-overwrite", method: "PUT", target: "/m2.txt", hdr: http.Header{"X-Oss-Forbid-Overwrite": {"true"}}, want: kept, header: "X-Oss-Forbid-Overwrite"},
		{name: "storage-class", method: "PUT", target: "/m3.txt", hdr: http.Header{"X-Oss-Storage-Class": {"IA"}}, want: kept, header: "X-Oss-Storage-Class"},
		{name: "tagging header", method: "PUT", target: "/m4.txt", hdr: http.Header{"X-Oss-Tagging": {"a=b"}}, want: kept, header: "X-Oss-Tagging"},
		{name: "sse", method: "PUT", target: "/m5.txt", hdr: http.Header{"X-Oss-Server-Side-Encryption": {"KMS"}}, want: kept, header: "X-Oss-Server-Side-Encryption"},
		{name: "sse data", method: "PUT", target: "/m6.txt", hdr: http.Header{"X-Oss-Server-Side-Data-Encryption": {"SM4"}}, want: kept, header: "X-Oss-Server-Side-Data-Encryption"},
		{name: "sse key id", method: "PUT", target: "/m7.txt", hdr: http.Header{"X-Oss-Server-Side-Encryption-Key-Id": {"k"}}, want: kept, header: "X-Oss-Server-Side-Encryption-Key-Id"},
		{name: "traffic-limit", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Traffic-Limit": {"819200"}}, want: kept, header: "X-Oss-Traffic-Limit"},

		// Other x-oss-* headers: dropped.
		{name: "callback", method: "PUT", target: "/c.txt", hdr: http.Header{"X-Oss-Callback": {b64(`{"callbackUrl":"http://169.254.169.254/"}`)}}, want: dropped, header: "X-Oss-Callback"},
		{name: "callback-var", method: "PUT", target: "/c.txt", hdr: http.Header{"X-Oss-Callback-Var": {"e30"}}, want: dropped, header: "X-Oss-Callback-Var"},
		{name: "metadata-directive", method: "PUT", target: "/c.txt", hdr: http.Header{"X-Oss-Metadata-Directive": {"REPLACE"}}, want: dropped, header: "X-Oss-Metadata-Directive"},
		{name: "tagging-directive", method: "PUT", target: "/c.txt", hdr: http.Header{"X-Oss-Tagging-Directive": {"REPLACE"}}, want: dropped, header: "X-Oss-Tagging-Directive"},
		{name: "request-payer", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Request-Payer": {"requester"}}, want: dropped, header: "X-Oss-Request-Payer"},
		{name: "symlink-target", method: "PUT", target: "/c.txt", hdr: http.Header{"X-Oss-Symlink-Target": {"../secret.txt"}}, want: dropped, header: "X-Oss-Symlink-Target"},
		{name: "complete-all", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Complete-All": {"yes"}}, want: dropped, header: "X-Oss-Complete-All"},
		{name: "client x-oss-date", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Date": {"20000101T000000Z"}}, want: kept, header: ""},
		{name: "client authorization", method: "GET", target: "/a.jpg", hdr: http.Header{"Authorization": {"OSS4-HMAC-SHA256 Credential=x"}}, want: kept},

		// Subresources: object operations kept on their methods.
		{name: "versionId", method: "GET", target: "/a.jpg?versionId=null", want: kept, param: "versionId"},
		{name: "partNumber get", method: "GET", target: "/a.jpg?partNumber=1", want: kept, param: "partNumber"},
		{name: "initiate multipart", method: "POST", target: "/mp.bin?uploads", want: kept, param: "uploads", upstreamKey: "site/mp.bin"},
		{name: "upload part", method: "PUT", target: "/mp.bin?partNumber=1&uploadId=u1", want: kept, param: "uploadId"},
		{name: "complete multipart", method: "POST", target: "/mp.bin?uploadId=u1", want: kept, param: "uploadId"},
		{name: "abort multipart", method: "DELETE", target: "/mp.bin?uploadId=u1", want: kept, param: "uploadId"},
		{name: "list parts", method: "GET", target: "/mp.bin?uploadId=u1", want: kept, param: "uploadId"},
		{name: "list parts paging", method: "GET", target: "/mp.bin?uploadId=u1&max-parts=2&part-number-marker=1&encoding-type=url", want: kept, param: "part-number-marker"},
		{name: "initiate encoding-type", method: "POST", target: "/mp.bin?uploads&encoding-type=url", want: kept, param: "encoding-type"},
		{name: "append", method: "POST", target: "/ap.txt?append&position=0", want: kept, param: "append"},
		{name: "response-content-disposition", method: "GET", target: "/a.jpg?response-content-disposition=attachment", want: kept, param: "response-content-disposition"},
		{name: "response-cache-control", method: "GET", target: "/a.jpg?response-cache-control=no-cache", want: kept, param: "response-cache-control"},
		{name: "response-content-type", method: "GET", target: "/a.jpg?response-content-type=text/html", want: dropped, param: "response-content-type"},
		{name: "response-content-encoding", method: "GET", target: "/a.jpg?response-content-encoding=gzip", want: dropped, param: "response-content-encoding"},

		// Reads of other subresources are stripped (a GET stays a GET of
		// the object); writes that name them are refused, never turned
		// into a plain PutObject or DeleteObject.
		{name: "get acl", method: "GET", target: "/a.jpg?acl", want: dropped, param: "acl"},
		{name: "get tagging", method: "GET", target: "/a.jpg?tagging", want: dropped, param: "tagging"},
		{name: "get symlink", method: "GET", target: "/a.jpg?symlink", want: dropped, param: "symlink"},
		{name: "get objectMeta", method: "HEAD", target: "/a.jpg?objectMeta", want: dropped, param: "objectMeta"},
		{name: "client signature", method: "GET", target: "/a.jpg?x-oss-signature=abc&x-oss-credential=AK%2Fx&x-oss-date=20000101T000000Z&x-oss-expires=60&x-oss-signature-version=OSS4-HMAC-SHA256", want: dropped, param: "x-oss-signature"},
		{name: "v1 signature", method: "GET", target: "/a.jpg?OSSAccessKeyId=a&Signature=b&Expires=1&security-token=t", want: dropped, param: "Signature"},
		{name: "put acl", method: "PUT", target: "/a.jpg?acl", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "put tagging", method: "PUT", target: "/a.jpg?tagging", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "delete tagging", method: "DELETE", target: "/a.jpg?tagging", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "put symlink", method: "PUT", target: "/l.txt?symlink", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "restore", method: "POST", target: "/a.jpg?restore", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "rename", method: "POST", target: "/n.jpg?x-oss-rename", hdr: http.Header{"X-Oss-Rename-Source": {"/prv-bucket/secret.txt"}}, want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "put partNumber alone", method: "PUT", target: "/a.jpg?partNumber=1", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "post nothing", method: "POST", target: "/a.jpg", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "post append without position", method: "POST", target: "/a.jpg?append", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "delete version and upload", method: "DELETE", target: "/a.jpg?versionId=1&uploadId=u", want: refused, status: 403, code: "AccessDenied", reason: "method"},
		{name: "delete uploads", method: "DELETE", target: "/a.jpg?uploads", want: refused, status: 403, code: "AccessDenied", reason: "method"},

		// Repeated and malformed query parameters.
		{name: "repeated versionId", method: "GET", target: "/a.jpg?versionId=1&versionId=2", want: refused, status: 400, code: "InvalidArgument", reason: "path"},
		{name: "repeated process", method: "GET", target: "/a.jpg?x-oss-process=image/resize,w_1&x-oss-process=image/info", want: refused, status: 400, code: "InvalidArgument", reason: "path"},
		{name: "repeated case", method: "GET", target: "/a.jpg?uploadId=1&UPLOADID=2", want: refused, status: 400, code: "InvalidArgument", reason: "path"},
		{name: "repeated stripped", method: "GET", target: "/a.jpg?acl&acl", want: refused, status: 400, code: "InvalidArgument", reason: "path"},
		{name: "encoded repeat", method: "GET", target: "/a.jpg?uploadId=1&upload%49d=2", want: refused, status: 400, code: "InvalidArgument", reason: "path"},
		{name: "bad escape", method: "GET", target: "/a.jpg?x-oss-process=%zz", want: refused, status: 400, code: "InvalidArgument", reason: "path"},

		// x-oss-process, query and header forms.
		{name: "resize", method: "GET", target: "/a.jpg?x-oss-process=image/resize,w_100", want: kept, param: "x-oss-process"},
		{name: "chain", method: "GET", target: "/a.jpg?x-oss-process=image/resize,w_100/quality,q_80/format,webp/auto-orient,1/interlace,1/rotate,90/crop,w_10", want: kept, param: "x-oss-process"},
		{name: "info", method: "GET", target: "/a.jpg?x-oss-process=image/info", want: kept, param: "x-oss-process"},
		{name: "average-hue", method: "GET", target: "/a.jpg?x-oss-process=image/average-hue", want: kept, param: "x-oss-process"},
		{name: "style", method: "GET", target: "/a.jpg?x-oss-process=style/thumb", want: kept, param: "x-oss-process"},
		{name: "upper case", method: "GET", target: "/a.jpg?x-oss-process=IMAGE/RESIZE,w_1", want: kept, param: "x-oss-process"},
		{name: "watermark in prefix", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("site/logo.png") + ",t_90", want: kept, param: "x-oss-process"},
		{name: "watermark nested ok", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("site/logo.png?x-oss-process=image/resize,P_30"), want: kept, param: "x-oss-process"},
		{name: "watermark text", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,text_" + b64("hello"), want: kept, param: "x-oss-process"},
		{name: "header resize", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Process": {"image/resize,w_10"}}, want: kept, header: "X-Oss-Process"},
		{name: "saveas", method: "GET", target: "/a.jpg?x-oss-process=image/resize,w_100|sys/saveas,o_" + b64("x.jpg") + ",b_" + b64("other-bucket"), want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "saveas alone", method: "GET", target: "/a.jpg?x-oss-process=sys/saveas,o_eA", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "saveas in image", method: "GET", target: "/a.jpg?x-oss-process=image/saveas,o_eA", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "post process", method: "POST", target: "/a.jpg?x-oss-process", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "put process", method: "PUT", target: "/a.jpg?x-oss-process=image/resize,w_1", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "async process", method: "POST", target: "/a.mp4?x-oss-async-process=video/convert", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "async process get", method: "GET", target: "/a.mp4?x-oss-async-process=video/convert", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "not listed blur", method: "GET", target: "/a.jpg?x-oss-process=image/blur,r_3", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "not listed video", method: "GET", target: "/a.mp4?x-oss-process=video/snapshot,t_1000", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "not listed doc", method: "GET", target: "/a.doc?x-oss-process=doc/preview", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "empty process", method: "GET", target: "/a.jpg?x-oss-process=", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "bare type", method: "GET", target: "/a.jpg?x-oss-process=image", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "trailing slash", method: "GET", target: "/a.jpg?x-oss-process=image/resize,w_1/", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "style with ops", method: "GET", target: "/a.jpg?x-oss-process=style/a/b", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "watermark outside prefix", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("secret.txt"), want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "watermark escape", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("site/../secret.txt"), want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "watermark prefix itself", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("site/"), want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "watermark bad base64", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_%21%21", want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "watermark nested saveas", method: "GET", target: "/a.jpg?x-oss-process=image/watermark,image_" + b64("site/logo.png?x-oss-process=sys/saveas,o_eA"), want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "header saveas", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Process": {"image/resize,w_1|sys/saveas,o_eA"}}, want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "header process on put", method: "PUT", target: "/a.jpg", hdr: http.Header{"X-Oss-Process": {"image/resize,w_1"}}, want: refused, status: 403, code: "AccessDenied", reason: "process"},
		{name: "header async", method: "GET", target: "/a.jpg", hdr: http.Header{"X-Oss-Async-Process": {"video/convert"}}, want: refused, status: 403, code: "AccessDenied", reason: "process"},
	}
	denied := map[string]float64{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.emu.ResetRequests()
			var body *strings.Reader
			if tc.method == "PUT" || tc.method == "POST" {
				body = strings.NewReader("data")
			}
			var resp *http.Response
			if body != nil {
				resp = e.do(tc.method, "tb.test", tc.target, tc.hdr, body)
			} else {
				resp = e.do(tc.method, "tb.test", tc.target, tc.hdr, nil)
			}
			got := readBody(t, resp)
			reqs := e.emu.Requests()
			if tc.want == refused {
				if resp.StatusCode != tc.status || !strings.Contains(got, "<Code>"+tc.code+"</Code>") {
					t.Fatalf("got %d %s, want %d %s", resp.StatusCode, got, tc.status, tc.code)
				}
				if len(reqs) != 0 {
					t.Fatalf("a refused request reached OSS: %s %s?%s", reqs[0].Method, reqs[0].RawPath, reqs[0].RawQuery)
				}
				denied[tc.reason]++
				return
			}
			if len(reqs) != 1 {
				t.Fatalf("OSS saw %d requests (answer %d %s)", len(reqs), resp.StatusCode, got)
			}
			r := reqs[0]
			if !r.Signed || r.Bucket != prvBucket || !strings.HasPrefix(r.Key, "site/") {
				t.Fatalf("upstream: signed=%v bucket=%q key=%q", r.Signed, r.Bucket, r.Key)
			}
			if tc.upstreamKey != "" && r.Key != tc.upstreamKey {
				t.Fatalf("upstream key %q, want %q", r.Key, tc.upstreamKey)
			}
			for k := range r.Header {
				if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-oss-") && !strings.HasPrefix(lk, "x-oss-meta-") {
					switch lk {
					case "x-oss-date", "x-oss-content-sha256", "x-oss-forbid-overwrite", "x-oss-storage-class", "x-oss-tagging",
						"x-oss-server-side-encryption", "x-oss-server-side-data-encryption", "x-oss-server-side-encryption-key-id",
						"x-oss-traffic-limit", "x-oss-process":
					default:
						t.Errorf("upstream carries %s, which no allowlist names", k)
					}
				}
			}
			if r.Header.Get("X-Oss-Date") == "20000101T000000Z" || strings.Contains(r.Header.Get("Authorization"), "Credential=x") {
				t.Errorf("client signing headers reached OSS: %v", r.Header)
			}
			q, err := url.ParseQuery(r.RawQuery)
			if err != nil {
				t.Fatalf("upstream query %q: %v", r.RawQuery, err)
			}
			has := func() bool {
				if tc.header != "" {
					return r.Header.Get(tc.header) != "" && r.Header.Get(tc.header) == tc.hdr.Get(tc.header)
				}
				if tc.param != "" {
					_, ok := q[tc.param]
					return ok
				}
				return tc.want == kept
			}()
			if has != (tc.want == kept) {
				t.Fatalf("upstream header/param present=%v, want kept=%v (query %q, header %v)", has, tc.want == kept, r.RawQuery, r.Header)
			}
			if tc.want == dropped && tc.header == "" && tc.param != "" && len(q) != 0 {
				t.Errorf("upstream query %q: stripped read kept parameters", r.RawQuery)
			}
		})
	}
	for reason, n := range denied {
		if got := counterValue(t, e.reg, "gateway_denied_total", map[string]string{"site": "tb", "reason": reason}); got != n {
			t.Errorf("gateway_denied_total{reason=%q} = %v, want %v", reason, got, n)
		}
	}
	if _, ok := e.emu.Object(prvBucket, "site/b.txt"); ok {
		t.Fatal("a refused copy stored an object")
	}
}

// TestPublicSiteForwardsAsIs: the trust boundary is a private-site rule.
// On a public site OSS judges the client's own request and signatures.
func TestPublicSiteForwardsAsIs(t *testing.T) {
	e := newEnv(t, envOpts{})
	resp := e.do("GET", "pub.test", "/hello.txt?acl&x-oss-process=image/blur,r_1", http.Header{"X-Oss-Callback": {"x"}}, nil)
	readBody(t, resp)
	r := e.emu.Requests()[0]
	if r.RawQuery != "acl&x-oss-process=image/blur,r_1" || r.Header.Get("X-Oss-Callback") != "x" {
		t.Fatalf("public site changed the request: %q %v", r.RawQuery, r.Header)
	}
}

// TestPrivateErrorBodiesAreScrubbed: OSS's error bodies describe how the
// request was signed (our AccessKeyId, the string we signed); a private
// site's client gets them without those elements, with its own Host as
// HostId, in the body and in a HEAD's x-oss-err alike.
func TestPrivateErrorBodiesAreScrubbed(t *testing.T) {
	const token = "sts-token-0123456789"
	for _, tc := range []struct {
		name  string
		creds credentials.CredentialsProvider
		sts   string
		code  string
	}{
		{"signature mismatch", credentials.NewStaticCredentialsProvider(testAK, "wrong-secret"), "", "SignatureDoesNotMatch"},
		{"unknown key", credentials.NewStaticCredentialsProvider("LTAIunknown000001", testSK), "", "InvalidAccessKeyId"},
		{"bad token", credentials.NewStaticCredentialsProvider(testAK, testSK, "stale-token-0123"), token, "InvalidSecurityToken"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{creds: tc.creds, emulatorSTS: tc.sts})
			// What OSS itself answered, for the record: the leak is real.
			e.emu.ResetRequests()
			resp := e.do("GET", "prv.test", "/secret.txt", nil, nil)
			body := readBody(t, resp)
			if resp.StatusCode != 403 || !strings.Contains(body, "<Code>"+tc.code+"</Code>") {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
			for _, want := range []string{"<Message>", "<RequestId>", "<HostId>prv.test</HostId>"} {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %s:\n%s", want, body)
				}
			}
			if tc.code == "SignatureDoesNotMatch" && !strings.Contains(body, "<EC>") {
				t.Errorf("body lacks EC:\n%s", body)
			}
			checkScrubbed(t, body, e.emuAddr)

			resp = e.do("HEAD", "prv.test", "/secret.txt", nil, nil)
			readBody(t, resp)
			raw, err := base64.StdEncoding.DecodeString(resp.Header.Get("X-Oss-Err"))
			if resp.StatusCode != 403 || err != nil || !strings.Contains(string(raw), "<Code>"+tc.code+"</Code>") {
				t.Fatalf("HEAD: %d x-oss-err %q %v", resp.StatusCode, raw, err)
			}
			checkScrubbed(t, string(raw), e.emuAddr)
		})
	}
}

func checkScrubbed(t *testing.T, body, emuAddr string) {
	t.Helper()
	for _, leak := range []string{testAK, "LTAIunknown", "stale-token", "<OSSAccessKeyId>", "<SecurityToken>", "StringToSign",
		"CanonicalRequest", "SignatureProvided", "OSS4-HMAC-SHA256", prvBucket, emuAddr} {
		if strings.Contains(body, leak) {
			t.Errorf("error body shows %q:\n%s", leak, body)
		}
	}
}
