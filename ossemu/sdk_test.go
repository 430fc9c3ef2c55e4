package ossemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"

	"github.com/oss-gateway/gateway/internal/testkit"
)

// These tests prove the verifier with the official SDK: whatever the SDK
// signs, the emulator accepts, and tampering is refused.

func TestSDKPrivateBucketRoundTrip(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	ctx := context.Background()
	body := []byte("hello, private world: 0123456789")
	key := "dir/sub dir/a+b=c&d.txt"

	if _, err := c.PutObject(ctx, &oss.PutObjectRequest{
		Bucket:   oss.Ptr("priv"),
		Key:      oss.Ptr(key),
		Body:     bytes.NewReader(body),
		Metadata: map[string]string{"owner": "tests"},
	}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got, ok := e.Object("priv", key); !ok || !bytes.Equal(got, body) {
		t.Fatalf("stored body = %q, %v", got, ok)
	}

	get, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetObject body = %q, %v", got, err)
	}
	if get.Metadata["owner"] != "tests" {
		t.Errorf("metadata = %v", get.Metadata)
	}

	head, err := c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)})
	if err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if head.ContentLength != int64(len(body)) {
		t.Errorf("HeadObject ContentLength = %d", head.ContentLength)
	}

	rng, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key), Range: oss.Ptr("bytes=7-13")})
	if err != nil {
		t.Fatalf("range GetObject: %v", err)
	}
	part, _ := io.ReadAll(rng.Body)
	rng.Body.Close()
	if string(part) != string(body[7:14]) || rng.StatusCode != http.StatusPartialContent {
		t.Errorf("range GetObject = %d %q", rng.StatusCode, part)
	}

	pre, err := c.Presign(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)})
	if err != nil {
		t.Fatalf("Presign: %v", err)
	}
	r := do(t, http.MethodGet, pre.URL, "", nil, "")
	if r.status != http.StatusOK || r.body != string(body) {
		t.Fatalf("presigned GET = %d %q", r.status, r.body)
	}

	reqs := e.Requests()
	if len(reqs) != 5 {
		t.Fatalf("logged %d requests, want 5", len(reqs))
	}
	for _, rq := range reqs {
		if !rq.Signed || rq.Bucket != "priv" || rq.Key != key || rq.Status/100 != 2 {
			t.Errorf("logged %s %s: signed=%v bucket=%q key=%q status=%d", rq.Method, rq.RawPath, rq.Signed, rq.Bucket, rq.Key, rq.Status)
		}
	}
}

func TestSDKRefusals(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.AddCredential("STS.AKID", "STSSECRET", "the-token")
	e.CreateBucket("priv", Private)
	e.PutObject("priv", "k.txt", []byte("data"), nil)
	e.PutObject("priv", "other.txt", []byte("other"), nil)
	ctx := context.Background()

	tests := []struct {
		name   string
		client *oss.Client
		status int
		code   string
		ec     string            // EC in the body and x-oss-ec, "" for none
		elems  map[string]string // extra body elements expected
	}{
		{"wrong secret", sdkClient(addr, "AKID", "WRONG", "", testRegion), 403, "SignatureDoesNotMatch", "0002-00000040",
			map[string]string{"OSSAccessKeyId": "AKID", "RecommendDoc": "https://api.aliyun.com/troubleshoot?q=0002-00000040"}},
		{"unknown key id", sdkClient(addr, "NOPE", "SECRET", "", testRegion), 403, "InvalidAccessKeyId", "",
			map[string]string{"OSSAccessKeyId": "NOPE"}},
		{"wrong region", sdkClient(addr, "AKID", "SECRET", "", "cn-shanghai"), 400, "InvalidArgument", "", nil},
		{"sts wrong token", sdkClient(addr, "STS.AKID", "STSSECRET", "other-token", testRegion), 403, "InvalidSecurityToken", "",
			map[string]string{"SecurityToken": "other-token"}},
		{"sts missing token", sdkClient(addr, "STS.AKID", "STSSECRET", "", testRegion), 403, "InvalidSecurityToken", "",
			map[string]string{"SecurityToken": ""}},
		{"long-term key with a token", sdkClient(addr, "AKID", "SECRET", "stray", testRegion), 403, "InvalidSecurityToken", "",
			map[string]string{"SecurityToken": "stray"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.client.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k.txt")})
			se := serviceError(t, err)
			if se.StatusCode != tt.status || se.Code != tt.code {
				t.Errorf("got %d %s (%s), want %d %s", se.StatusCode, se.Code, se.Message, tt.status, tt.code)
			}
			if strings.Contains(string(se.Snapshot), "SECRET") {
				t.Errorf("error body leaks the secret: %s", se.Snapshot)
			}
			if se.EC != tt.ec || se.Headers.Get("X-Oss-Ec") != tt.ec {
				t.Errorf("EC = %q, x-oss-ec = %q, want %q", se.EC, se.Headers.Get("X-Oss-Ec"), tt.ec)
			}
			elems := rootElements(t, se.Snapshot)
			for name, want := range tt.elems {
				if !slices.Contains(elemNames(elems), name) || elemValue(elems, name) != want {
					t.Errorf("<%s> = %q, want %q in %s", name, elemValue(elems, name), want, se.Snapshot)
				}
			}
		})
	}

	t.Run("sts right token", func(t *testing.T) {
		c := sdkClient(addr, "STS.AKID", "STSSECRET", "the-token", testRegion)
		res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k.txt")})
		if err != nil {
			t.Fatalf("GetObject with STS: %v", err)
		}
		res.Body.Close()
		if !lastRequest(t, e).Signed {
			t.Error("STS request not logged as signed")
		}
	})

	t.Run("anonymous", func(t *testing.T) {
		r := do(t, http.MethodGet, "http://"+addr+"/priv/k.txt", "", nil, "")
		if r.status != 403 || errorCode(r.body) != "AccessDenied" {
			t.Errorf("anonymous GET = %d %s", r.status, r.body)
		}
		if lastRequest(t, e).Signed {
			t.Error("anonymous request logged as signed")
		}
	})

	good := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	pre, err := good.Presign(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k.txt")})
	if err != nil {
		t.Fatalf("Presign: %v", err)
	}

	t.Run("presigned key altered", func(t *testing.T) {
		altered := strings.Replace(pre.URL, "/priv/k.txt?", "/priv/other.txt?", 1)
		if altered == pre.URL {
			t.Fatalf("could not alter %s", pre.URL)
		}
		r := do(t, http.MethodGet, altered, "", nil, "")
		if r.status != 403 || errorCode(r.body) != "SignatureDoesNotMatch" {
			t.Errorf("altered presigned GET = %d %s", r.status, r.body)
		}
		if !strings.Contains(r.body, "<StringToSign>") || strings.Contains(r.body, "SECRET") {
			t.Errorf("SignatureDoesNotMatch body should carry StringToSign and no secret: %s", r.body)
		}
	})

	t.Run("presigned query re-encoded equivalently", func(t *testing.T) {
		u, _ := url.Parse(pre.URL)
		// Lowercase hex and '+'-free but differently escaped: same query.
		u.RawQuery = strings.ReplaceAll(u.RawQuery, "%2F", "%2f")
		r := do(t, http.MethodGet, u.String(), "", nil, "")
		if r.status != 200 || r.body != "data" {
			t.Errorf("re-encoded presigned GET = %d %s", r.status, r.body)
		}
	})

	t.Run("presigned extra parameter", func(t *testing.T) {
		r := do(t, http.MethodGet, pre.URL+"&response-content-type=text%2Fhtml", "", nil, "")
		if r.status != 403 || errorCode(r.body) != "SignatureDoesNotMatch" {
			t.Errorf("presigned GET with an unsigned parameter = %d %s", r.status, r.body)
		}
	})
}

func TestSDKClockChecks(t *testing.T) {
	clk := &testkit.Clock{}
	e, addr := startEmulator(t, Options{Region: testRegion, Now: clk.Now})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	e.PutObject("priv", "k", []byte("v"), nil)
	ctx := context.Background()
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)

	pre, err := c.Presign(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k")}, oss.PresignExpires(time.Minute))
	if err != nil {
		t.Fatalf("Presign: %v", err)
	}
	clk.Advance(2 * time.Minute)
	r := do(t, http.MethodGet, pre.URL, "", nil, "")
	if r.status != 403 || errorCode(r.body) != "AccessDenied" || !strings.Contains(r.body, "Request has expired.") {
		t.Errorf("expired presigned GET = %d %s", r.status, r.body)
	}

	clk.Advance(20 * time.Minute)
	_, err = c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k")})
	if se := serviceError(t, err); se.StatusCode != 403 || se.Code != "RequestTimeTooSkewed" {
		t.Errorf("skewed request = %d %s", se.StatusCode, se.Code)
	}

	// The emulator's Date header follows its clock, so the SDK's clock skew
	// correction (with retries allowed) recovers, as it does against OSS.
	retrying := oss.NewClient(oss.LoadDefaultConfig().WithRegion(testRegion).WithEndpoint("http://" + addr).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET")))
	res, err := retrying.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("k")})
	if err != nil {
		t.Fatalf("SDK with clock skew correction: %v", err)
	}
	res.Body.Close()
}

// TestSDKVirtualHosted sends the SDK to a real OSS endpoint name while
// dialling the emulator, so requests arrive virtual-hosted with the Host
// bucket.oss-cn-hangzhou.aliyuncs.com and canonical URI /bucket/key.
func TestSDKVirtualHosted(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("vbucket", Private)
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
	c := oss.NewClient(oss.LoadDefaultConfig().
		WithRegion(testRegion).
		WithEndpoint("http://oss-cn-hangzhou.aliyuncs.com").
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET")).
		WithHttpClient(hc).
		WithRetryMaxAttempts(1))
	ctx := context.Background()
	if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr("vbucket"), Key: oss.Ptr("a/b.txt"), Body: strings.NewReader("virtual")}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("vbucket"), Key: oss.Ptr("a/b.txt")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != "virtual" {
		t.Errorf("body = %q", b)
	}
	rq := lastRequest(t, e)
	if rq.Host != "vbucket.oss-cn-hangzhou.aliyuncs.com" || rq.RawPath != "/a/b.txt" || !rq.Signed || rq.Bucket != "vbucket" {
		t.Errorf("logged host=%q path=%q signed=%v bucket=%q", rq.Host, rq.RawPath, rq.Signed, rq.Bucket)
	}
}

// TestSignerQueryEncodingEquivalence signs with the SDK's signer a query
// encoded one way and sends it encoded another, equivalent way: OSS decodes
// and re-encodes, so it verifies; a different value does not.
func TestSignerQueryEncodingEquivalence(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	e.PutObject("priv", "k", []byte("v"), nil)

	send := func(signedQuery, sentQuery string) response {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/priv/k?"+signedQuery, nil)
		cred, _ := credentials.NewStaticCredentialsProvider("AKID", "SECRET").GetCredentials(context.Background())
		sc := &signer.SigningContext{
			Product: oss.Ptr("oss"), Region: oss.Ptr(testRegion),
			Bucket: oss.Ptr("priv"), Key: oss.Ptr("k"),
			Request: req, Credentials: &cred,
		}
		if err := (&signer.SignerV4{}).Sign(context.Background(), sc); err != nil {
			t.Fatalf("sign: %v", err)
		}
		return do(t, http.MethodGet, "http://"+addr+"/priv/k?"+sentQuery, "", req.Header, "")
	}
	if r := send("response-content-type=text%2Fplain", "response-content-type=text/plain"); r.status != 200 || r.header.Get("Content-Type") != "text/plain" {
		t.Errorf("equivalent encoding = %d %s", r.status, r.body)
	}
	if r := send("response-content-type=text%2Fplain", "response-content-type=text%2Fhtml"); r.status != 403 || errorCode(r.body) != "SignatureDoesNotMatch" {
		t.Errorf("different value = %d %s", r.status, r.body)
	}
}

// TestSignerGatewayAddressing signs like the gateway does for a URL
// endpoint (SDK signer, canonical URI /bucket/key) and sends the request
// with Host BUCKET.127.0.0.1:PORT and path /key: it verifies, and the same
// signature replayed against another key does not.
func TestSignerGatewayAddressing(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("gw", Private)
	e.PutObject("gw", "img/a b.jpg", []byte("jpeg"), nil)
	e.PutObject("gw", "img/other.jpg", []byte("other"), nil)

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/img/a%20b.jpg", nil)
	cred, _ := credentials.NewStaticCredentialsProvider("AKID", "SECRET").GetCredentials(context.Background())
	sc := &signer.SigningContext{
		Product: oss.Ptr("oss"), Region: oss.Ptr(testRegion),
		Bucket: oss.Ptr("gw"), Key: oss.Ptr("img/a b.jpg"),
		Request: req, Credentials: &cred,
	}
	if err := (&signer.SignerV4{}).Sign(context.Background(), sc); err != nil {
		t.Fatalf("sign: %v", err)
	}
	host := "gw." + addr
	if r := do(t, http.MethodGet, "http://"+addr+"/img/a%20b.jpg", host, req.Header, ""); r.status != 200 || r.body != "jpeg" {
		t.Fatalf("gateway-style GET = %d %s", r.status, r.body)
	}
	if rq := lastRequest(t, e); !rq.Signed || rq.Host != host || rq.Bucket != "gw" || rq.Key != "img/a b.jpg" {
		t.Errorf("logged %+v", rq)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/img/other.jpg", host, req.Header, ""); r.status != 403 || errorCode(r.body) != "SignatureDoesNotMatch" {
		t.Errorf("replayed signature on another key = %d %s", r.status, r.body)
	}
}

// TestSDKMultipart drives the multipart API with the official SDK's
// low-level calls against a private bucket at OSS's real 100 KiB minimum
// part size, with a key the SDK sends and decodes with encoding-type=url.
func TestSDKMultipart(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	ctx := context.Background()
	key := "dir/a b+c&d.bin"
	parts := [][]byte{
		bytes.Repeat([]byte("1"), 100<<10),
		bytes.Repeat([]byte("2"), 100<<10+7),
		[]byte("the short last part"),
	}

	ini, err := c.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{
		Bucket: oss.Ptr("priv"), Key: oss.Ptr(key),
		ContentType: oss.Ptr("application/x-test"), Metadata: map[string]string{"owner": "sdk"},
	})
	if err != nil {
		t.Fatalf("InitiateMultipartUpload: %v", err)
	}
	if oss.ToString(ini.Key) != key || oss.ToString(ini.Bucket) != "priv" || oss.ToString(ini.UploadId) == "" {
		t.Fatalf("InitiateMultipartUpload = %+v", ini)
	}
	id := ini.UploadId

	var done []oss.UploadPart
	for i := len(parts) - 1; i >= 0; i-- { // any order: Complete lists them sorted
		res, err := c.UploadPart(ctx, &oss.UploadPartRequest{
			Bucket: oss.Ptr("priv"), Key: oss.Ptr(key), UploadId: id,
			PartNumber: int32(i + 1), Body: bytes.NewReader(parts[i]),
		})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		if oss.ToString(res.ETag) != partETag(string(parts[i])) {
			t.Errorf("UploadPart %d ETag = %s", i+1, oss.ToString(res.ETag))
		}
		done = append(done, oss.UploadPart{PartNumber: int32(i + 1), ETag: res.ETag})
	}

	lp, err := c.ListParts(ctx, &oss.ListPartsRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key), UploadId: id, MaxParts: 2})
	if err != nil {
		t.Fatalf("ListParts: %v", err)
	}
	if oss.ToString(lp.Key) != key || !lp.IsTruncated || lp.NextPartNumberMarker != 2 || len(lp.Parts) != 2 ||
		lp.Parts[1].Size != int64(len(parts[1])) || oss.ToString(lp.Parts[1].ETag) != partETag(string(parts[1])) || lp.Parts[0].LastModified == nil {
		t.Errorf("ListParts = %+v", lp)
	}
	var listed []int32
	for p := c.NewListPartsPaginator(&oss.ListPartsRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key), UploadId: id}, func(o *oss.PaginatorOptions) { o.Limit = 1 }); p.HasNext(); {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("ListParts page: %v", err)
		}
		for _, part := range page.Parts {
			listed = append(listed, part.PartNumber)
		}
	}
	if fmt.Sprint(listed) != "[1 2 3]" {
		t.Errorf("paginated ListParts = %v", listed)
	}

	lu, err := c.ListMultipartUploads(ctx, &oss.ListMultipartUploadsRequest{Bucket: oss.Ptr("priv")})
	if err != nil || len(lu.Uploads) != 1 || oss.ToString(lu.Uploads[0].Key) != key || oss.ToString(lu.Uploads[0].UploadId) != oss.ToString(id) {
		t.Errorf("ListMultipartUploads = %+v, %v", lu, err)
	}

	cm, err := c.CompleteMultipartUpload(ctx, &oss.CompleteMultipartUploadRequest{
		Bucket: oss.Ptr("priv"), Key: oss.Ptr(key), UploadId: id,
		CompleteMultipartUpload: &oss.CompleteMultipartUpload{Parts: done},
	})
	if err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	wantETag := multipartETag(string(parts[0]), string(parts[1]), string(parts[2]))
	if oss.ToString(cm.Key) != key || oss.ToString(cm.ETag) != wantETag || oss.ToString(cm.HashCRC64) == "" {
		t.Errorf("CompleteMultipartUpload = %+v", cm)
	}

	get, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, err := io.ReadAll(get.Body)
	get.Body.Close()
	if err != nil || !bytes.Equal(got, bytes.Join(parts, nil)) {
		t.Fatalf("GetObject body: %d bytes, %v", len(got), err)
	}
	if oss.ToString(get.ObjectType) != "Multipart" || oss.ToString(get.ETag) != wantETag ||
		oss.ToString(get.ContentType) != "application/x-test" || get.Metadata["owner"] != "sdk" {
		t.Errorf("GetObject type=%s etag=%s content-type=%s meta=%v", oss.ToString(get.ObjectType), oss.ToString(get.ETag), oss.ToString(get.ContentType), get.Metadata)
	}

	t.Run("complete all", func(t *testing.T) {
		ini, err := c.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("all.bin")})
		if err != nil {
			t.Fatalf("InitiateMultipartUpload: %v", err)
		}
		for i, p := range parts {
			if _, err := c.UploadPart(ctx, &oss.UploadPartRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("all.bin"), UploadId: ini.UploadId, PartNumber: int32(i + 1), Body: bytes.NewReader(p)}); err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
		}
		cm, err := c.CompleteMultipartUpload(ctx, &oss.CompleteMultipartUploadRequest{
			Bucket: oss.Ptr("priv"), Key: oss.Ptr("all.bin"), UploadId: ini.UploadId, CompleteAll: oss.Ptr("yes"),
		})
		if err != nil || oss.ToString(cm.ETag) != wantETag {
			t.Fatalf("CompleteMultipartUpload with complete-all = %+v, %v", cm, err)
		}
	})

	t.Run("parts below 100 KiB", func(t *testing.T) {
		ini, err := c.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("small.bin")})
		if err != nil {
			t.Fatalf("InitiateMultipartUpload: %v", err)
		}
		var ps []oss.UploadPart
		for n := int32(1); n <= 2; n++ {
			res, err := c.UploadPart(ctx, &oss.UploadPartRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("small.bin"), UploadId: ini.UploadId, PartNumber: n, Body: strings.NewReader("tiny")})
			if err != nil {
				t.Fatalf("UploadPart: %v", err)
			}
			ps = append(ps, oss.UploadPart{PartNumber: n, ETag: res.ETag})
		}
		_, err = c.CompleteMultipartUpload(ctx, &oss.CompleteMultipartUploadRequest{
			Bucket: oss.Ptr("priv"), Key: oss.Ptr("small.bin"), UploadId: ini.UploadId,
			CompleteMultipartUpload: &oss.CompleteMultipartUpload{Parts: ps},
		})
		if se := serviceError(t, err); se.StatusCode != 400 || se.Code != "EntityTooSmall" {
			t.Errorf("Complete with small parts = %d %s", se.StatusCode, se.Code)
		}
	})

	t.Run("abort", func(t *testing.T) {
		ini, err := c.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("gone.bin")})
		if err != nil {
			t.Fatalf("InitiateMultipartUpload: %v", err)
		}
		if _, err := c.UploadPart(ctx, &oss.UploadPartRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("gone.bin"), UploadId: ini.UploadId, PartNumber: 1, Body: strings.NewReader("data")}); err != nil {
			t.Fatalf("UploadPart: %v", err)
		}
		if _, err := c.AbortMultipartUpload(ctx, &oss.AbortMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("gone.bin"), UploadId: ini.UploadId}); err != nil {
			t.Fatalf("AbortMultipartUpload: %v", err)
		}
		_, err = c.ListParts(ctx, &oss.ListPartsRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("gone.bin"), UploadId: ini.UploadId})
		if se := serviceError(t, err); se.StatusCode != 404 || se.Code != "NoSuchUpload" {
			t.Errorf("ListParts after abort = %d %s", se.StatusCode, se.Code)
		}
		_, err = c.AbortMultipartUpload(ctx, &oss.AbortMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("gone.bin"), UploadId: ini.UploadId})
		if se := serviceError(t, err); se.StatusCode != 404 || se.Code != "NoSuchUpload" {
			t.Errorf("second abort = %d %s", se.StatusCode, se.Code)
		}
		if _, ok := e.Object("priv", "gone.bin"); ok {
			t.Error("an aborted upload made an object")
		}
	})

	if us := e.Uploads("priv"); len(us) != 1 || us[0].Key != "small.bin" {
		t.Errorf("uploads left = %+v", us)
	}
	for _, rq := range e.Requests() {
		if !rq.Signed {
			t.Errorf("%s %s?%s not verified as signed", rq.Method, rq.RawPath, rq.RawQuery)
		}
	}
}

// onlyReader hides every method of a reader but Read, so the SDK's
// uploader takes its buffered path for streams of unknown length.
type onlyReader struct{ r io.Reader }

// Read reads from the wrapped reader.
func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

// TestSDKUploader uploads about 1 MiB with the SDK's high-level Uploader
// (64 KiB parts, 3 in parallel, CRC-64 checked against Complete's answer)
// from a seekable reader and from a plain stream.
func TestSDKUploader(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion, MinPartSize: 16 << 10})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	data := make([]byte, 1<<20+777)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	const partSize = 64 << 10
	wantParts := (len(data) + partSize - 1) / partSize

	tests := []struct {
		name string
		body io.Reader
	}{
		{"seekable", bytes.NewReader(data)},
		{"stream", onlyReader{bytes.NewReader(data)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.ResetRequests()
			key := "upload/" + tt.name + ".bin"
			u := oss.NewUploader(c, func(o *oss.UploaderOptions) {
				o.PartSize = partSize
				o.ParallelNum = 3
			})
			res, err := u.UploadFrom(context.Background(), &oss.PutObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)}, tt.body)
			if err != nil {
				t.Fatalf("UploadFrom: %v", err)
			}
			if !strings.HasSuffix(oss.ToString(res.ETag), fmt.Sprintf(`-%d"`, wantParts)) {
				t.Errorf("ETag = %s, want a %d-part multipart ETag", oss.ToString(res.ETag), wantParts)
			}
			get, err := c.GetObject(context.Background(), &oss.GetObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr(key)})
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			got, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("GetObject: %d bytes (want %d), equal=%v, %v", len(got), len(data), bytes.Equal(got, data), err)
			}
			if us := e.Uploads("priv"); len(us) != 0 {
				t.Errorf("uploads left: %+v", us)
			}
			puts := 0
			for _, rq := range e.Requests() {
				if rq.Method == http.MethodPut && strings.Contains(rq.RawQuery, "partNumber=") {
					puts++
				}
				if !rq.Signed || rq.Status != 200 && rq.Status != 204 {
					t.Errorf("%s %s?%s: signed=%v status=%d", rq.Method, rq.RawPath, rq.RawQuery, rq.Signed, rq.Status)
				}
			}
			if puts != wantParts {
				t.Errorf("%d UploadPart requests, want %d", puts, wantParts)
			}
		})
	}
}

// failPartTransport fails the first UploadPart of one part number after
// sending part of its body, so the emulator sees a body cut short.
type failPartTransport struct {
	base     http.RoundTripper
	part     string
	mu       sync.Mutex
	failed   bool
	rawQuery string // the failed request's query
}

// RoundTrip cuts the body of the first matching UploadPart.
func (f *failPartTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	f.mu.Lock()
	fail := !f.failed && req.Method == http.MethodPut && req.URL.Query().Get("partNumber") == f.part
	if fail {
		f.failed, f.rawQuery = true, req.URL.RawQuery
	}
	f.mu.Unlock()
	if fail && req.Body != nil {
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(io.MultiReader(io.LimitReader(req.Body, 1000), iotest.ErrReader(errors.New("client gave up"))))
	}
	return f.base.RoundTrip(req)
}

// TestSDKUploaderResume makes the SDK's checkpointed Uploader fail on part
// 3 with a body cut short, proves the emulator stored nothing for it, then
// resumes: the Uploader finds parts 1 and 2 through ListParts and uploads
// only the rest.
func TestSDKUploaderResume(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion, MinPartSize: 1 << 10})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	ft := &failPartTransport{base: &http.Transport{}, part: "3"}
	c := oss.NewClient(oss.LoadDefaultConfig().
		WithRegion(testRegion).
		WithEndpoint("http://" + addr).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET")).
		WithHttpClient(&http.Client{Transport: ft}).
		WithRetryMaxAttempts(1))
	dir := t.TempDir()
	file := filepath.Join(dir, "src.bin")
	data := bytes.Repeat([]byte("0123456789abcdef"), 20<<10/16*5) // 100 KiB: 5 parts of 20 KiB
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	u := oss.NewUploader(c, func(o *oss.UploaderOptions) {
		o.PartSize = 20 << 10
		o.ParallelNum = 1
		o.EnableCheckpoint = true
		o.CheckpointDir = filepath.Join(dir, "cp")
	})
	req := &oss.PutObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("resumed.bin")}
	if err := os.Mkdir(filepath.Join(dir, "cp"), 0o700); err != nil {
		t.Fatal(err)
	}

	_, err := u.UploadFile(context.Background(), req, file)
	if err == nil {
		t.Fatal("the first UploadFile succeeded despite the cut part")
	}
	ft.mu.Lock()
	cut := ft.rawQuery
	ft.mu.Unlock()
	if rq := waitLogged(t, e, http.MethodPut, "resumed.bin", cut); rq.Status != http.StatusBadRequest || !rq.Signed {
		t.Errorf("cut UploadPart answered %d (signed %v), want 400 after verifying the signature", rq.Status, rq.Signed)
	}
	us := e.Uploads("priv")
	if len(us) != 1 {
		t.Fatalf("uploads after the failure = %+v", us)
	}
	ps, _ := e.PendingParts("priv", "resumed.bin", us[0].UploadID)
	for _, p := range ps {
		if p.Number >= 3 {
			t.Errorf("part %d stored after the failure (%d bytes)", p.Number, p.Size)
		}
	}
	if len(ps) != 2 {
		t.Errorf("parts after the failure = %d, want 2", len(ps))
	}

	e.ResetRequests()
	if _, err := u.UploadFile(context.Background(), req, file); err != nil {
		t.Fatalf("resumed UploadFile: %v", err)
	}
	if got, ok := e.Object("priv", "resumed.bin"); !ok || !bytes.Equal(got, data) {
		t.Fatalf("resumed object: %d bytes, %v", len(got), ok)
	}
	var listParts, puts []string
	for _, rq := range e.Requests() {
		q, _ := url.ParseQuery(rq.RawQuery)
		switch {
		case rq.Method == http.MethodGet && q.Has("uploadId"):
			listParts = append(listParts, rq.RawQuery)
		case rq.Method == http.MethodPut:
			puts = append(puts, q.Get("partNumber"))
		}
	}
	if len(listParts) == 0 || fmt.Sprint(puts) != "[3 4 5]" {
		t.Errorf("resume sent ListParts %v and parts %v, want ListParts and parts [3 4 5]", listParts, puts)
	}
}

// TestSDKWrongSecretWrites signs writes with a wrong secret: each gets
// SignatureDoesNotMatch with its EC exposed by the SDK's ServiceError, and
// nothing is stored.
func TestSDKWrongSecretWrites(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion, MinPartSize: 1 << 10})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	good := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	bad := sdkClient(addr, "AKID", "WRONG", "", testRegion)
	ctx := context.Background()
	ini, err := good.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("mp.bin")})
	if err != nil {
		t.Fatalf("InitiateMultipartUpload: %v", err)
	}
	big := bytes.Repeat([]byte("x"), 10<<10)

	tests := []struct {
		name string
		run  func() error
	}{
		{"PutObject", func() error {
			_, err := bad.PutObject(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("put.bin"), Body: bytes.NewReader(big)})
			return err
		}},
		{"UploadPart", func() error {
			_, err := bad.UploadPart(ctx, &oss.UploadPartRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("mp.bin"), UploadId: ini.UploadId, PartNumber: 1, Body: bytes.NewReader(big)})
			return err
		}},
		{"Uploader", func() error {
			u := oss.NewUploader(bad, func(o *oss.UploaderOptions) { o.PartSize = 4 << 10; o.ParallelNum = 3 })
			_, err := u.UploadFrom(ctx, &oss.PutObjectRequest{Bucket: oss.Ptr("priv"), Key: oss.Ptr("up.bin")}, bytes.NewReader(big))
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			se := serviceError(t, tt.run())
			if se.StatusCode != 403 || se.Code != "SignatureDoesNotMatch" || se.EC != "0002-00000040" {
				t.Errorf("got %d %s EC=%q", se.StatusCode, se.Code, se.EC)
			}
			elems := rootElements(t, se.Snapshot)
			if elemValue(elems, "StringToSignBytes") == "" || elemValue(elems, "CanonicalRequest") == "" {
				t.Errorf("body lacks the signing details: %s", se.Snapshot)
			}
		})
	}
	for _, key := range []string{"put.bin", "up.bin", "mp.bin"} {
		if _, ok := e.Object("priv", key); ok {
			t.Errorf("%s stored", key)
		}
	}
	if ps, ok := e.PendingParts("priv", "mp.bin", oss.ToString(ini.UploadId)); !ok || len(ps) != 0 {
		t.Errorf("parts stored: %+v %v", ps, ok)
	}
	if us := e.Uploads("priv"); len(us) != 1 {
		t.Errorf("uploads = %+v, want only the one the good client started", us)
	}
}
