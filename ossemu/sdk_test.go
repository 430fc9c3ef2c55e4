package ossemu

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
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
