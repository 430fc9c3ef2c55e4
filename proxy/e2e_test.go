package proxy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/proxy"
)

const (
	region    = "cn-hangzhou"
	testAK    = "LTAItestkey0001"
	testSK    = "testsecret-0123456789abcdef"
	pubBucket = "pub-bucket"
	prvBucket = "prv-bucket"
)

// env is a gateway in front of an emulator, both on 127.0.0.1.
type env struct {
	t       testing.TB
	emu     *ossemu.Emulator
	emuAddr string
	gw      *httptest.Server
	h       *proxy.Handler
	reg     *prometheus.Registry
	logs    *testkit.Buffer
}

// envOpts tune newEnv.
type envOpts struct {
	server      string // extra [server] lines
	sites       string // extra [[site]] tables, EMU replaced by the emulator address
	creds       credentials.CredentialsProvider
	transport   http.RoundTripper
	noDefaults  bool
	emulatorSTS string // security token for testAK, "" = long-term key
	top         string // top-level tables before [credentials], e.g. [cache]
}

const defaultSites = `
[[site]]
name = "pub"
domains = ["pub.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]

[[site]]
name = "prv"
domains = ["prv.test", "127.0.0.1"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
tls = "off"

[[site]]
name = "jail"
domains = ["jail.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "jail/"
tls = "off"
methods = ["GET", "HEAD", "PUT"]

[[site]]
name = "pubview"
domains = ["pubview.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "public"
tls = "off"
`

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	return newEnvWith(t, o, nil)
}

// newEnvWith is newEnv with extra sites computed from the emulator's
// address, for sites that must name it in more than one way.
func newEnvWith(t testing.TB, o envOpts, moreSites func(emuAddr string) string) *env {
	t.Helper()
	emu := ossemu.New(ossemu.Options{Region: region})
	emu.AddCredential(testAK, testSK, o.emulatorSTS)
	emu.CreateBucket(pubBucket, ossemu.PublicRead)
	emu.CreateBucket(prvBucket, ossemu.Private)
	emu.PutObject(pubBucket, "hello.txt", []byte("hello public"), http.Header{"Content-Type": {"text/plain"}})
	emu.PutObject(prvBucket, "secret.txt", []byte("hello private"), http.Header{"Content-Type": {"text/plain"}})
	emu.PutObject(prvBucket, "jail/in.txt", []byte("inside"), nil)
	emu.PutObject(prvBucket, "page.html", []byte("<h1>hi</h1>"), http.Header{"Content-Type": {"text/html"}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	emuAddr := ln.Addr().String()

	sites := o.sites
	if moreSites != nil {
		sites += moreSites(emuAddr)
	}
	if !o.noDefaults {
		sites = defaultSites + sites
	}
	server := o.server
	// .ci/run runs this package's tests once per upstream client.
	if mode := os.Getenv("GATEWAY_TEST_UPSTREAM_TRANSPORT"); mode != "" && !strings.Contains(server, "upstream_transport") {
		server = "upstream_transport = \"" + mode + "\"\n" + server
	}
	if !strings.Contains(server, "upstream_header_timeout") {
		server += "\nupstream_header_timeout = \"2s\"\n"
	}
	text := "[server]\nhttps_listen = \"\"\nhttp_listen = \"127.0.0.1:0\"\n" + server +
		"\n" + o.top + "\n[credentials]\nsource = \"env\"\n" + strings.ReplaceAll(sites, "EMU", emuAddr)
	cfg, err := config.Parse("test.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	creds := o.creds
	if creds == nil {
		creds = credentials.NewStaticCredentialsProvider(testAK, testSK)
	}
	reg := prometheus.NewRegistry()
	logs := &testkit.Buffer{}
	h, err := proxy.New(cfg, proxy.Options{
		Metrics:     proxy.NewMetrics(reg),
		AccessLog:   slog.New(slog.NewJSONHandler(logs, nil)),
		Credentials: creds,
		Transport:   o.transport,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() }) // runs after gw.Close
	gw := httptest.NewServer(h)
	t.Cleanup(gw.Close)
	return &env{t: t, emu: emu, emuAddr: emuAddr, gw: gw, h: h, reg: reg, logs: logs}
}

// do sends method target to the gateway with the given Host.
func (e *env) do(method, host, target string, hdr http.Header, body io.Reader) *http.Response {
	e.t.Helper()
	req, err := http.NewRequest(method, e.gw.URL+target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := e.gw.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

// raw sends a request line exactly as written, for paths a URL parser would
// clean up.
func (e *env) raw(method, host, target string) *http.Response {
	e.t.Helper()
	c, err := net.Dial("tcp", e.gw.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", method, target, host)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// gatewayError checks an error the gateway made itself.
func gatewayError(t *testing.T, resp *http.Response, status int, code string) {
	t.Helper()
	body := readBody(t, resp)
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/xml" {
		t.Fatalf("Content-Type %q", ct)
	}
	id := resp.Header.Get("X-Request-Id")
	if len(id) != 24 {
		t.Fatalf("X-Request-Id %q", id)
	}
	for _, want := range []string{`<?xml version="1.0" encoding="UTF-8"?>`, "<Code>" + code + "</Code>", "<RequestId>" + id + "</RequestId>", "<HostId>"} {
		if !strings.Contains(body, want) {
			t.Fatalf("body lacks %q:\n%s", want, body)
		}
	}
}

func (e *env) upstreamCount() int { return len(e.emu.Requests()) }

func TestUnknownHostIs421WithoutUpstream(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, host := range []string{"nope.test", "pub.test.evil.com", "evil.com", "prv.test.127.0.0.1"} {
		gatewayError(t, e.do("GET", host, "/hello.txt", nil, nil), http.StatusMisdirectedRequest, "MisdirectedRequest")
	}
	if n := e.upstreamCount(); n != 0 {
		t.Fatalf("%d upstream requests for unknown hosts", n)
	}
	if got := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": "unknown", "code": "421"}); got != 4 {
		t.Fatalf("unknown-site requests counted %v, want 4", got)
	}
}

func TestHostNormalisation(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, host := range []string{"pub.test", "PUB.Test", "pub.test.", "pub.test:8080", "Pub.TEST.:443"} {
		resp := e.do("GET", host, "/hello.txt", nil, nil)
		if body := readBody(t, resp); resp.StatusCode != 200 || body != "hello public" {
			t.Fatalf("Host %q: %d %q", host, resp.StatusCode, body)
		}
	}
}

func TestBadPathsAre400WithoutUpstream(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, target := range []string{
		"/../prv-bucket/secret.txt", "/a/../secret.txt", "/./secret.txt", "/%2e%2e/secret.txt", "/%2E./x",
		"/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b", "/a%00b", "//secret.txt", "/",
	} {
		resp := e.raw("GET", "jail.test", target)
		gatewayError(t, resp, http.StatusBadRequest, "InvalidObjectName")
	}
	if n := e.upstreamCount(); n != 0 {
		t.Fatalf("%d upstream requests for bad paths", n)
	}
	if got := counterValue(t, e.reg, "gateway_denied_total", map[string]string{"site": "jail", "reason": "path"}); got != 12 {
		t.Fatalf("denied{path} = %v", got)
	}
}

func TestPrefixConfinesKeys(t *testing.T) {
	e := newEnv(t, envOpts{})
	resp := e.do("GET", "jail.test", "/in.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "inside" {
		t.Fatalf("jail GET: %d %q", resp.StatusCode, body)
	}
	reqs := e.emu.Requests()
	if got := reqs[len(reqs)-1].Key; got != "jail/in.txt" {
		t.Fatalf("upstream key %q", got)
	}
	// secret.txt exists in the bucket but outside the prefix: OSS is asked
	// for jail/secret.txt, which does not exist.
	resp = e.do("GET", "jail.test", "/secret.txt", nil, nil)
	readBody(t, resp)
	if resp.StatusCode != 404 {
		t.Fatalf("outside prefix: %d", resp.StatusCode)
	}
}

func TestPublicGetIsUnsignedAndPassesThrough(t *testing.T) {
	e := newEnv(t, envOpts{})
	resp := e.do("GET", "pub.test", "/hello.txt", nil, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || body != "hello public" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Oss-Request-Id") == "" || resp.Header.Get("ETag") == "" {
		t.Fatalf("headers missing: %v", resp.Header)
	}
	r := e.emu.Requests()[0]
	if r.Signed || r.Header.Get("Authorization") != "" {
		t.Fatalf("public request was signed: %+v", r.Header)
	}
	if want := pubBucket + "." + e.emuAddr; r.Host != want {
		t.Fatalf("upstream Host %q, want %q", r.Host, want)
	}
}

func TestPrivateGetIsSignedAndVerified(t *testing.T) {
	e := newEnv(t, envOpts{})
	hdr := http.Header{"Authorization": {"OSS4-HMAC-SHA256 Credential=LTAIattacker/20200101/cn-hangzhou/oss/aliyun_v4_request,Signature=00"},
		"X-Oss-Security-Token": {"forged"}, "Cookie": {"session=1"}}
	resp := e.do("GET", "prv.test", "/secret.txt?x-oss-signature=bogus&x-oss-credential=LTAIx%2F1&x-oss-date=20200101T000000Z&OSSAccessKeyId=x&Signature=y&Expires=1&acl", hdr, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 200 || body != "hello private" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	r := e.emu.Requests()[0]
	if !r.Signed {
		t.Fatal("the emulator did not verify a signature")
	}
	if !strings.Contains(r.Header.Get("Authorization"), "Credential="+testAK+"/") || r.RawQuery != "" {
		t.Fatalf("client auth leaked upstream: auth %q query %q", r.Header.Get("Authorization"), r.RawQuery)
	}
	if r.Header.Get("X-Oss-Security-Token") != "" || r.Header.Get("Cookie") != "" {
		t.Fatalf("client token or cookie forwarded: %v", r.Header)
	}
	// The bucket is private: the same request unsigned, straight to the
	// emulator, is refused. The gateway's signature is what made it work.
	direct, err := http.Get("http://" + e.emuAddr + "/" + prvBucket + "/secret.txt")
	if err != nil {
		t.Fatal(err)
	}
	readBody(t, direct)
	if direct.StatusCode != 403 {
		t.Fatalf("direct unsigned GET: %d", direct.StatusCode)
	}
}

// TestHotPrivateObjectSignaturesVerify proves requests for a hot object,
// which the signature cache answers after the first, are each accepted by
// OSS (the emulator verifies V4 on every request). TestSignCache proves
// the hits.
func TestHotPrivateObjectSignaturesVerify(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = 20
	for i := 0; i < n; i++ {
		if resp := e.do("GET", "prv.test", "/secret.txt", nil, nil); readBody(t, resp) != "hello private" {
			t.Fatalf("request %d: %d", i, resp.StatusCode)
		}
	}
	reqs := e.emu.Requests()
	for _, r := range reqs {
		if !r.Signed {
			t.Fatal("a request reached OSS without a verified signature")
		}
	}
	if len(reqs) != n {
		t.Fatalf("%d upstream requests for %d client requests", len(reqs), n)
	}
}

func TestPrivateKeysNeedingEscapes(t *testing.T) {
	e := newEnv(t, envOpts{})
	for _, key := range []string{"a b+c.txt", "dir/你好 (1).jpg", "q=1&x;y.txt", "~tilde*star'quote.txt"} {
		e.emu.PutObject(prvBucket, key, []byte("v:"+key), nil)
		target := (&urlPath{key}).String()
		resp := e.do("GET", "prv.test", target, nil, nil)
		if body := readBody(t, resp); resp.StatusCode != 200 || body != "v:"+key {
			t.Fatalf("key %q via %q: %d %q", key, target, resp.StatusCode, body)
		}
	}
}

// urlPath escapes a key into a request path the way browsers do.
type urlPath struct{ key string }

func (u *urlPath) String() string {
	var b strings.Builder
	b.WriteByte('/')
	for i := 0; i < len(u.key); i++ {
		c := u.key[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/-._~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func TestPrivateQueryParamsAreSigned(t *testing.T) {
	e := newEnv(t, envOpts{})
	resp := e.do("GET", "prv.test", "/secret.txt?versionId=null&x-oss-process=image%2fresize,w_10", nil, nil)
	readBody(t, resp)
	r := e.emu.Requests()[0]
	if !r.Signed || r.RawQuery == "" {
		t.Fatalf("signed=%v query=%q status=%d", r.Signed, r.RawQuery, resp.StatusCode)
	}
}

func TestSTSCredentials(t *testing.T) {
	const token = "sts-token-abc/+="
	e := newEnv(t, envOpts{emulatorSTS: token, creds: credentials.NewStaticCredentialsProvider(testAK, testSK, token)})
	resp := e.do("GET", "prv.test", "/secret.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := e.emu.Requests()[0].Header.Get("X-Oss-Security-Token"); got != token {
		t.Fatalf("token upstream %q", got)
	}
}

func TestWrongCredentialsPassOSSErrorThrough(t *testing.T) {
	e := newEnv(t, envOpts{creds: credentials.NewStaticCredentialsProvider(testAK, "wrong-secret")})
	resp := e.do("GET", "prv.test", "/secret.txt", nil, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 403 || !strings.Contains(body, "<Code>SignatureDoesNotMatch</Code>") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if strings.Contains(body, "wrong-secret") || strings.Contains(e.logs.String(), "wrong-secret") {
		t.Fatal("secret leaked")
	}
}

func TestUnresolvableCredentials(t *testing.T) {
	failing := credentials.CredentialsProviderFunc(func(context.Context) (credentials.Credentials, error) {
		return credentials.Credentials{}, errors.New("metadata service unreachable")
	})
	e := newEnv(t, envOpts{creds: failing})
	gatewayError(t, e.do("GET", "prv.test", "/secret.txt", nil, nil), http.StatusServiceUnavailable, "ServiceUnavailable")
	if n := e.upstreamCount(); n != 0 {
		t.Fatalf("%d upstream requests without credentials", n)
	}
	resp := e.do("GET", "pub.test", "/hello.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("public site broken by missing credentials: %d", resp.StatusCode)
	}
	if err := e.h.Ready(context.Background()); err == nil {
		t.Fatal("Ready with unresolvable credentials")
	}
}

func TestEnvAndProcessCredentialProviders(t *testing.T) {
	t.Setenv("OSS_ACCESS_KEY_ID", testAK)
	t.Setenv("OSS_ACCESS_KEY_SECRET", testSK)
	t.Setenv("OSS_SESSION_TOKEN", "")
	script := fmt.Sprintf(`printf '{"AccessKeyId":"%s","AccessKeySecret":"%s"}'`, testAK, testSK)
	for _, c := range []config.Credentials{
		{Source: "env"},
		{Source: "process", Process: script},
		{Source: "static", AccessKeyID: testAK, AccessKeySecret: testSK},
	} {
		t.Run(c.Source, func(t *testing.T) {
			p, err := ossclient.NewCredentialsProvider(c)
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, envOpts{creds: p})
			resp := e.do("GET", "prv.test", "/secret.txt", nil, nil)
			if body := readBody(t, resp); resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
}

func TestPublicSitePassesClientSignatures(t *testing.T) {
	e := newEnv(t, envOpts{})
	client := oss.NewClient(oss.LoadDefaultConfig().
		WithRegion(region).
		WithEndpoint("http://" + e.emuAddr).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider(testAK, testSK)))
	pre, err := client.Presign(context.Background(), &oss.GetObjectRequest{Bucket: oss.Ptr(prvBucket), Key: oss.Ptr("secret.txt")})
	if err != nil {
		t.Fatal(err)
	}
	q := pre.URL[strings.IndexByte(pre.URL, '?'):]
	resp := e.do("GET", "pubview.test", "/secret.txt"+q, nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "hello private" {
		t.Fatalf("presigned through public site: %d %q", resp.StatusCode, body)
	}
	r := e.emu.Requests()[0]
	if !r.Signed || r.RawQuery != q[1:] {
		t.Fatalf("client signature altered: signed=%v query %q", r.Signed, r.RawQuery)
	}
	// Without a signature, OSS's own refusal passes through unchanged.
	resp = e.do("GET", "pubview.test", "/secret.txt", nil, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 403 || !strings.Contains(body, "<Code>AccessDenied</Code>") || resp.Header.Get("X-Oss-Request-Id") == "" {
		t.Fatalf("unsigned: %d %s", resp.StatusCode, body)
	}
}

func TestRangeConditionalAndHead(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.emu.PutSyntheticObject(pubBucket, "big.bin", 8<<20, "application/octet-stream")
	resp := e.do("GET", "pub.test", "/big.bin", http.Header{"Range": {"bytes=1000000-1000999"}}, nil)
	body := readBody(t, resp)
	if resp.StatusCode != 206 || len(body) != 1000 || resp.Header.Get("Content-Range") != "bytes 1000000-1000999/8388608" {
		t.Fatalf("range: %d len %d %q", resp.StatusCode, len(body), resp.Header.Get("Content-Range"))
	}
	for i := 0; i < len(body); i++ {
		if body[i] != ossemu.SyntheticByte(1000000+int64(i)) {
			t.Fatalf("byte %d differs", i)
		}
	}
	for _, name := range []string{"pub.test", "prv.test"} {
		key := "/hello.txt"
		if name == "prv.test" {
			key = "/secret.txt"
		}
		head := e.do("HEAD", name, key, nil, nil)
		if b := readBody(t, head); head.StatusCode != 200 || b != "" || head.ContentLength <= 0 {
			t.Fatalf("%s HEAD: %d len %d body %q", name, head.StatusCode, head.ContentLength, b)
		}
		etag := head.Header.Get("ETag")
		nm := e.do("GET", name, key, http.Header{"If-None-Match": {etag}}, nil)
		if b := readBody(t, nm); nm.StatusCode != 304 || b != "" {
			t.Fatalf("%s If-None-Match: %d %q", name, nm.StatusCode, b)
		}
		ims := e.do("GET", name, key, http.Header{"If-Modified-Since": {head.Header.Get("Last-Modified")}}, nil)
		if readBody(t, ims); ims.StatusCode != 304 {
			t.Fatalf("%s If-Modified-Since: %d", name, ims.StatusCode)
		}
		im := e.do("GET", name, key, http.Header{"If-Match": {`"0000"`}}, nil)
		if readBody(t, im); im.StatusCode != 412 {
			t.Fatalf("%s If-Match: %d", name, im.StatusCode)
		}
	}
}

func TestWritesOnlyWhenListed(t *testing.T) {
	e := newEnv(t, envOpts{})
	// prv lists only GET and HEAD.
	resp := e.do("PUT", "prv.test", "/new.txt", nil, strings.NewReader("x"))
	if resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("Allow %q", resp.Header.Get("Allow"))
	}
	gatewayError(t, resp, http.StatusMethodNotAllowed, "MethodNotAllowed")
	gatewayError(t, e.do("DELETE", "prv.test", "/secret.txt", nil, nil), http.StatusMethodNotAllowed, "MethodNotAllowed")
	gatewayError(t, e.do("PROPFIND", "prv.test", "/secret.txt", nil, nil), http.StatusMethodNotAllowed, "MethodNotAllowed")
	if n := e.upstreamCount(); n != 0 {
		t.Fatalf("%d upstream requests for refused methods", n)
	}
	if got := counterValue(t, e.reg, "gateway_requests_total", map[string]string{"site": "prv", "method": "other"}); got != 1 {
		t.Fatalf("PROPFIND not counted as method=other: %v", got)
	}

	// jail lists PUT: a signed upload lands under the prefix.
	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	resp = e.do("PUT", "jail.test", "/up/load.bin", http.Header{"Content-Type": {"application/x-test"}, "X-Oss-Meta-Owner": {"me"}}, bytes.NewReader(payload))
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %s", resp.StatusCode, body)
	}
	got, ok := e.emu.Object(prvBucket, "jail/up/load.bin")
	if !ok || !bytes.Equal(got, payload) {
		t.Fatalf("upload stored %v, %d bytes", ok, len(got))
	}
	if v := counterValue(t, e.reg, "gateway_request_bytes_total", map[string]string{"site": "jail"}); v != float64(len(payload)) {
		t.Fatalf("request bytes %v", v)
	}

	// pub lists writes but the bucket is public-read: OSS refuses the
	// anonymous PUT and the refusal passes through.
	resp = e.do("PUT", "pub.test", "/x.txt", nil, strings.NewReader("x"))
	if body := readBody(t, resp); resp.StatusCode != 403 || !strings.Contains(body, "AccessDenied") {
		t.Fatalf("anonymous PUT on public-read: %d %s", resp.StatusCode, body)
	}
}

func TestChunkedUploadAndAppendAndDelete(t *testing.T) {
	e := newEnv(t, envOpts{sites: `
[[site]]
name = "rw"
domains = ["rw.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
`})
	// An upload of unknown length streams through chunked.
	pr, pw := io.Pipe()
	go func() {
		for i := 0; i < 64; i++ {
			pw.Write(bytes.Repeat([]byte{byte('a' + i%26)}, 4096))
		}
		pw.Close()
	}()
	resp := e.do("PUT", "rw.test", "/stream.bin", nil, pr)
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("chunked PUT: %d %s", resp.StatusCode, body)
	}
	if got, _ := e.emu.Object(prvBucket, "stream.bin"); len(got) != 64*4096 {
		t.Fatalf("stored %d bytes", len(got))
	}
	resp = e.do("POST", "rw.test", "/log.txt?append&position=0", nil, strings.NewReader("one,"))
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("append: %d %s", resp.StatusCode, body)
	}
	resp = e.do("POST", "rw.test", "/log.txt?append&position=4", nil, strings.NewReader("two"))
	if body := readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("append 2: %d %s", resp.StatusCode, body)
	}
	if got, _ := e.emu.Object(prvBucket, "log.txt"); string(got) != "one,two" {
		t.Fatalf("appended %q", got)
	}
	resp = e.do("DELETE", "rw.test", "/log.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 204 {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	if _, ok := e.emu.Object(prvBucket, "log.txt"); ok {
		t.Fatal("object still there")
	}
}

func TestHopByHopHeadersAndForwardedFor(t *testing.T) {
	for _, tc := range []struct {
		name, server, wantXFF string
	}{
		{"untrusted", "", "127.0.0.1"},
		{"trusted", `trusted_proxies = ["127.0.0.1/32"]`, "198.51.100.7, 127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{server: tc.server})
			hdr := http.Header{
				"Connection":      {"X-Private-Hop"},
				"X-Private-Hop":   {"secret"},
				"Keep-Alive":      {"timeout=5"},
				"Te":              {"trailers"},
				"X-Forwarded-For": {"198.51.100.7"},
				"X-End-To-End":    {"kept"},
			}
			resp := e.do("GET", "pub.test", "/hello.txt", hdr, nil)
			readBody(t, resp)
			r := e.emu.Requests()[0]
			for _, k := range []string{"X-Private-Hop", "Keep-Alive", "Te"} {
				if r.Header.Get(k) != "" {
					t.Errorf("hop-by-hop %s forwarded", k)
				}
			}
			if r.Header.Get("X-End-To-End") != "kept" {
				t.Error("end-to-end header dropped")
			}
			if got := r.Header.Get("X-Forwarded-For"); got != tc.wantXFF {
				t.Errorf("X-Forwarded-For %q, want %q", got, tc.wantXFF)
			}
			want := "127.0.0.1"
			if tc.name == "trusted" {
				want = "198.51.100.7"
			}
			if line := lastLogLine(t, e.logs); line["client_ip"] != want {
				t.Errorf("access log client_ip %v, want %s", line["client_ip"], want)
			}
		})
	}
}

func TestUpstreamUnreachableAndTimeout(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	e := newEnv(t, envOpts{server: `upstream_header_timeout = "300ms"`, sites: `
[[site]]
name = "dead"
domains = ["dead.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://` + deadAddr + `"
access = "public"
tls = "off"
`})
	gatewayError(t, e.do("GET", "dead.test", "/hello.txt", nil, nil), http.StatusBadGateway, "BadGateway")

	remove := e.emu.AddFault(ossemu.Fault{Key: "hello.txt", Delay: 2 * time.Second})
	defer remove()
	start := time.Now()
	gatewayError(t, e.do("GET", "pub.test", "/hello.txt", nil, nil), http.StatusGatewayTimeout, "GatewayTimeout")
	if el := time.Since(start); el > 1900*time.Millisecond {
		t.Fatalf("504 came after %v, not at the header timeout", el)
	}
}

func TestUpstreamCutMidBodyBreaksClientConnection(t *testing.T) {
	// A body without an ETag cannot be resumed safely: the cut must reach
	// the client as a broken connection, never as a short body.
	addr := lockstepUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1048576")
		w.Write(make([]byte, 100<<10))
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	})
	e := newEnv(t, envOpts{noDefaults: true, sites: siteFor(addr)})
	resp := e.do("GET", "lock.test", "/obj", nil, nil)
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil || n >= 1<<20 {
		t.Fatalf("client read %d bytes with err %v; a cut body must surface as an error", n, err)
	}
}

func TestKeywordEndpointsAndCNAMEMode(t *testing.T) {
	// A transport that dials the emulator whatever the host, so the real
	// OSS host names of keyword endpoints can be checked end to end.
	var emuAddr string
	tr := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, emuAddr)
	}}
	sites := ""
	for _, ep := range []string{"public", "internal", "accelerate", "dualstack"} {
		sites += fmt.Sprintf(`
[[site]]
name = "kw-%s"
domains = ["%s.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "%s"
upstream_scheme = "http"
access = "private"
tls = "off"
`, ep, ep, ep)
	}
	sites += `
[[site]]
name = "cname"
domains = ["cname.test"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
upstream_host = "static.example.com"
access = "private"
tls = "off"
`
	e := newEnv(t, envOpts{sites: sites, transport: tr})
	emuAddr = e.emuAddr
	e.emu.BindDomain("static.example.com", prvBucket)
	want := map[string]string{
		"public.test":     "prv-bucket.oss-cn-hangzhou.aliyuncs.com",
		"internal.test":   "prv-bucket.oss-cn-hangzhou-internal.aliyuncs.com",
		"accelerate.test": "prv-bucket.oss-accelerate.aliyuncs.com",
		"dualstack.test":  "prv-bucket.cn-hangzhou.oss.aliyuncs.com",
		"cname.test":      "static.example.com",
	}
	for host, upstreamHost := range want {
		e.emu.ResetRequests()
		resp := e.do("GET", host, "/page.html", nil, nil)
		if body := readBody(t, resp); resp.StatusCode != 200 || body != "<h1>hi</h1>" {
			t.Fatalf("%s: %d %q", host, resp.StatusCode, body)
		}
		r := e.emu.Requests()[0]
		if r.Host != upstreamHost || !r.Signed {
			t.Fatalf("%s: upstream Host %q signed %v, want %q", host, r.Host, r.Signed, upstreamHost)
		}
		// OSS forces downloads of web pages on its own domains only, and
		// the default disposition (auto) undoes exactly that: on every
		// endpoint the page previews.
		if resp.Header.Get("X-Oss-Force-Download") != "" || resp.Header.Get("Content-Disposition") != "" {
			t.Fatalf("%s: forced download reached the client: %v", host, resp.Header)
		}
	}
}

func TestMetricsAndAccessLog(t *testing.T) {
	e := newEnv(t, envOpts{})
	for i := 0; i < 3; i++ {
		readBody(t, e.do("GET", "pub.test", "/hello.txt", nil, nil))
	}
	readBody(t, e.do("GET", "prv.test", "/missing.txt", nil, nil))
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"gateway_requests_total", map[string]string{"site": "pub", "method": "GET", "code": "200"}, 3},
		{"gateway_requests_total", map[string]string{"site": "prv", "method": "GET", "code": "404"}, 1},
		{"gateway_response_bytes_total", map[string]string{"site": "pub"}, 3 * float64(len("hello public"))},
		{"gateway_upstream_requests_total", map[string]string{"site": "pub", "endpoint": "primary", "code": "200"}, 3},
		{"gateway_upstream_requests_total", map[string]string{"site": "prv", "endpoint": "primary", "code": "404"}, 1},
		{"gateway_inflight_requests", map[string]string{"site": "pub"}, 0},
	}
	for _, c := range checks {
		if got := counterValue(t, e.reg, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := histogramCount(t, e.reg, "gateway_request_duration_seconds", map[string]string{"site": "pub", "method": "GET"}); n != 3 {
		t.Errorf("duration histogram count %d", n)
	}
	if n := histogramCount(t, e.reg, "gateway_upstream_duration_seconds", map[string]string{"site": "pub", "endpoint": "primary"}); n != 3 {
		t.Errorf("upstream duration histogram count %d", n)
	}
	line := lastLogLine(t, e.logs)
	for _, k := range []string{"time", "site", "host", "method", "key", "query", "status", "bytes_in", "bytes_out", "duration",
		"upstream_time", "retries", "client_ip", "user_agent", "referer", "request_id", "upstream_request_id", "denied"} {
		if _, ok := line[k]; !ok {
			t.Errorf("access log lacks %q: %v", k, line)
		}
	}
	if line["site"] != "prv" || line["key"] != "missing.txt" || line["status"] != float64(404) || line["upstream_request_id"] == "" {
		t.Errorf("access log line %v", line)
	}
	if strings.Contains(e.logs.String(), testSK) {
		t.Error("secret in access log")
	}
}

func lastLogLine(t *testing.T, logs *testkit.Buffer) map[string]any {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatalf("access log line not JSON: %v: %q", err, lines[len(lines)-1])
	}
	return m
}

// metricFamily finds the series of name whose labels include want.
func findMetric(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) []*dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []*dto.Metric
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if have[k] != v {
					continue next
				}
			}
			out = append(out, m)
		}
	}
	return out
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) float64 {
	var sum float64
	for _, m := range findMetric(t, reg, name, want) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		}
	}
	return sum
}

func histogramCount(t *testing.T, reg *prometheus.Registry, name string, want map[string]string) uint64 {
	var n uint64
	for _, m := range findMetric(t, reg, name, want) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// TestAccessLogFields proves the access log line carries what a log
// pipeline needs, with signature values removed from the query, and that
// sampling keeps every error while dropping most successes.
func TestAccessLogFields(t *testing.T) {
	e := newEnv(t, envOpts{server: "upstream_header_timeout = \"2s\"\n[log]\naccess_log_sample = 0.001\n"})
	hdr := http.Header{"User-Agent": {"pipeline-test/1.0"}, "Referer": {"https://web.example.com/page"}}
	resp := e.do("GET", "pub.test", "/hello.txt?x-oss-process=image/resize,w_10&OSSAccessKeyId=LTAIclient&Expires=9999999999&Signature=c2VjcmV0", hdr, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// A 200 may be sampled out; a refused request never is.
	resp = e.do("GET", "pub.test", "/missing-object.txt?x-oss-signature=deadbeef", hdr, nil)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 400 {
		t.Fatalf("a malformed signature got %d from OSS", resp.StatusCode)
	}
	line := lastLogLine(t, e.logs)
	want := map[string]any{
		"site": "pub", "host": "pub.test", "method": "GET", "key": "missing-object.txt",
		"query": "x-oss-signature=REDACTED", "status": float64(resp.StatusCode), "user_agent": "pipeline-test/1.0",
		"referer": "https://web.example.com/page", "client_ip": "127.0.0.1", "retries": float64(0), "denied": "",
	}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("access log %s = %v, want %v", k, line[k], v)
		}
	}
	if ut, _ := line["upstream_time"].(float64); ut <= 0 {
		t.Errorf("upstream_time = %v, want > 0", line["upstream_time"])
	}
	if line["request_id"] != resp.Header.Get("X-Request-Id") || line["upstream_request_id"] == "" {
		t.Errorf("request ids: %v / %v", line["request_id"], line["upstream_request_id"])
	}
	if strings.Contains(e.logs.String(), "deadbeef") || strings.Contains(e.logs.String(), "c2VjcmV0") {
		t.Errorf("a signature value reached the access log:\n%s", e.logs.String())
	}

	// Sampling: 300 successes at 0.1%, then 20 refusals (denied by method).
	before := strings.Count(e.logs.String(), "\n")
	for i := 0; i < 300; i++ {
		resp := e.do("GET", "pub.test", "/hello.txt", nil, nil)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	successes := strings.Count(e.logs.String(), "\n") - before
	if successes > 30 {
		t.Errorf("%d of 300 successes logged at access_log_sample = 0.001", successes)
	}
	before = strings.Count(e.logs.String(), "\n")
	for i := 0; i < 20; i++ {
		resp := e.do("PATCH", "prv.test", "/secret.txt", nil, nil)
		resp.Body.Close()
	}
	if refused := strings.Count(e.logs.String(), "\n") - before; refused != 20 {
		t.Errorf("%d of 20 refusals logged, want all", refused)
	}
	t.Logf("logged %d of 300 successes and all refusals", successes)
}
