package interop_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/ossemu"
)

// randomBytes is n reproducible pseudo-random bytes.
func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// sdkClient is a Go SDK client of the gateway over p, at the custom domain
// (CNAME mode) or at the fixed IP (the SDK then addresses path-style), with
// one attempt per request so that every request the test sees is one the
// client made. wrap, if not nil, wraps its transport.
type sdkClient struct {
	*oss.Client
	rec  *protoRecorder
	http *http.Client
}

func newSDKClient(g *gateway, p proto, viaIP bool, creds credentials.CredentialsProvider, wrap func(http.RoundTripper) http.RoundTripper) *sdkClient {
	rec := &protoRecorder{rt: g.transport(p)}
	var rt http.RoundTripper = rec
	if wrap != nil {
		rt = wrap(rt)
	}
	hc := &http.Client{Transport: rt}
	cfg := oss.LoadDefaultConfig().
		WithCredentialsProvider(creds).
		WithRegion(region).
		WithEndpoint(g.baseURL(p, viaIP)).
		WithRetryMaxAttempts(1).
		WithHttpClient(hc)
	if !viaIP {
		cfg = cfg.WithUseCName(true)
	}
	return &sdkClient{Client: oss.NewClient(cfg), rec: rec, http: hc}
}

// anonymous is what clients of a private site use: the gateway signs.
func anonymous() credentials.CredentialsProvider {
	return credentials.NewAnonymousCredentialsProvider()
}

var bkt = oss.Ptr(bucket) // in CNAME mode the SDK ignores it: the site names the bucket

// TestGoSDK runs the Go SDK v2's operations through a private site over
// HTTP/1.1 and HTTP/2, at the custom domain and at the fixed IP, and checks
// each against what the emulator stored.
func TestGoSDK(t *testing.T) {
	for _, p := range []proto{h1, h2} {
		for _, viaIP := range []bool{false, true} {
			addressing := "domain"
			if viaIP {
				addressing = "ip"
			}
			t.Run(string(p)+"/"+addressing, func(t *testing.T) {
				t.Parallel()
				runGoSDK(t, p, viaIP)
			})
		}
	}
}

func runGoSDK(t *testing.T, p proto, viaIP bool) {
	g := newGateway(t, gwOpts{})
	c := newSDKClient(g, p, viaIP, anonymous(), nil)
	ctx := context.Background()

	t.Run("PutObject", func(t *testing.T) {
		body := []byte("put through the gateway")
		if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr("dir/put.txt"), Body: bytes.NewReader(body)}); err != nil {
			t.Fatalf("PutObject: %v", err)
		}
		if got, ok := g.object("dir/put.txt"); !ok || !bytes.Equal(got, body) {
			t.Fatalf("stored %q %v", got, ok)
		}
		puts := g.ossRequests(func(r ossemu.Request) bool { return r.Method == "PUT" && r.Key == sitePrefix+"dir/put.txt" })
		if len(puts) != 1 || !puts[0].Signed {
			t.Fatalf("OSS saw %+v, want one PUT signed by the gateway", puts)
		}
	})

	t.Run("KeysAndMetadata", func(t *testing.T) {
		// Keys the SDK must escape, and the headers a private site passes:
		// x-oss-meta-* (oss_headers), Content-Type, Cache-Control.
		for _, key := range []string{"dir/a b+c%d.txt", "中文/ü é.txt", "x/~!@$&'()*,;=:.txt", "q?x#y.txt"} {
			if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr(key), Body: strings.NewReader(key),
				Metadata: map[string]string{"Owner": "interop"}, ContentType: oss.Ptr("text/x-test"), CacheControl: oss.Ptr("no-cache")}); err != nil {
				t.Fatalf("PutObject %q: %v", key, err)
			}
			if got, ok := g.object(key); !ok || string(got) != key {
				t.Fatalf("stored at %q: %q %v", key, got, ok)
			}
			res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr(key)})
			if err != nil {
				t.Fatalf("GetObject %q: %v", key, err)
			}
			got, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if string(got) != key || res.Metadata["owner"] != "interop" || oss.ToString(res.ContentType) != "text/x-test" || res.Headers.Get("Cache-Control") != "no-cache" {
				t.Fatalf("GetObject %q: %q, metadata %v, Content-Type %q, Cache-Control %q", key, got, res.Metadata, oss.ToString(res.ContentType), res.Headers.Get("Cache-Control"))
			}
		}
	})

	getBody := randomBytes(1, 300<<10+17)
	g.emu.PutObject(bucket, sitePrefix+"get.bin", getBody, http.Header{"Content-Type": {"application/octet-stream"}})
	var getETag string
	t.Run("GetObject", func(t *testing.T) {
		res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("get.bin")})
		if err != nil {
			t.Fatalf("GetObject: %v", err)
		}
		got, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || !bytes.Equal(got, getBody) {
			t.Fatalf("GetObject: %d bytes of %d, %v", len(got), len(getBody), err)
		}
		getETag = oss.ToString(res.ETag)
	})
	t.Run("GetObjectRange", func(t *testing.T) {
		res, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("get.bin"), Range: oss.Ptr("bytes=1000-1999")})
		if err != nil {
			t.Fatalf("GetObject range: %v", err)
		}
		got, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 206 || !bytes.Equal(got, getBody[1000:2000]) {
			t.Fatalf("range: status %d, %d bytes", res.StatusCode, len(got))
		}
		if want := fmt.Sprintf("bytes 1000-1999/%d", len(getBody)); oss.ToString(res.ContentRange) != want {
			t.Fatalf("Content-Range %q, want %q", oss.ToString(res.ContentRange), want)
		}
	})
	t.Run("HeadObject", func(t *testing.T) {
		res, err := c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: bkt, Key: oss.Ptr("get.bin")})
		if err != nil {
			t.Fatalf("HeadObject: %v", err)
		}
		if res.ContentLength != int64(len(getBody)) || oss.ToString(res.ETag) == "" || (getETag != "" && oss.ToString(res.ETag) != getETag) {
			t.Fatalf("HeadObject: length %d ETag %q (GET's ETag %q)", res.ContentLength, oss.ToString(res.ETag), getETag)
		}
	})

	t.Run("NoSuchKey", func(t *testing.T) {
		// OSS's error passes through (scrubbed on a private site) and the SDK
		// still reads its code and request ID; HEAD has no body to read.
		_, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("missing.txt")})
		var se *oss.ServiceError
		if !errors.As(err, &se) || se.StatusCode != 404 || se.Code != "NoSuchKey" || se.RequestID == "" {
			t.Fatalf("GetObject of a missing key: %v, want a 404 NoSuchKey ServiceError with a RequestId", err)
		}
		_, err = c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: bkt, Key: oss.Ptr("missing.txt")})
		if !errors.As(err, &se) || se.StatusCode != 404 {
			t.Fatalf("HeadObject of a missing key: %v, want a 404 ServiceError", err)
		}
	})

	t.Run("Uploader", func(t *testing.T) {
		body := randomBytes(2, 3<<19+123) // 1.5 MiB and a bit: 13 parts of 128 KiB
		const key = "up/multi.bin"
		u := oss.NewUploader(c, func(o *oss.UploaderOptions) {
			o.PartSize = 128 << 10
			o.ParallelNum = 3
		})
		if _, err := u.UploadFrom(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr(key)}, bytes.NewReader(body)); err != nil {
			t.Fatalf("UploadFrom: %v", err)
		}
		if got, _ := g.object(key); !bytes.Equal(got, body) {
			t.Fatalf("stored %d bytes, want %d", len(got), len(body))
		}
		parts := g.ossRequests(isUploadPart(key))
		if len(parts) != 13 {
			t.Fatalf("OSS saw %d UploadPart requests, want 13: %v", len(parts), partNumbers(parts))
		}
		if ups := g.emu.Uploads(bucket); len(ups) != 0 {
			t.Fatalf("uploads left pending: %+v", ups)
		}
	})

	t.Run("UploaderAbort", func(t *testing.T) {
		// Without a checkpoint the Uploader aborts a failed upload
		// (AbortMultipartUpload, DELETE ?uploadId) so no parts are left.
		fc := newSDKClient(g, p, viaIP, anonymous(), func(rt http.RoundTripper) http.RoundTripper { return newFailParts(rt) })
		const key = "up/aborted.bin"
		u := oss.NewUploader(fc, func(o *oss.UploaderOptions) {
			o.PartSize = 100 << 10
			o.ParallelNum = 3
		})
		if _, err := u.UploadFrom(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr(key)}, bytes.NewReader(randomBytes(5, 500<<10))); err == nil {
			t.Fatal("the failing upload succeeded")
		}
		aborts := g.ossRequests(func(r ossemu.Request) bool {
			q, _ := url.ParseQuery(r.RawQuery)
			return r.Method == "DELETE" && r.Key == sitePrefix+key && q.Has("uploadId")
		})
		if len(aborts) != 1 || aborts[0].Status != 204 {
			t.Fatalf("OSS saw aborts %+v, want one answered 204", aborts)
		}
		if ups := g.emu.Uploads(bucket); len(ups) != 0 {
			t.Fatalf("uploads left pending: %+v", ups)
		}
		if _, ok := g.object(key); ok {
			t.Fatal("the aborted upload stored the object")
		}
	})

	t.Run("UploaderResume", func(t *testing.T) { uploaderResume(t, g, p, viaIP) })

	t.Run("Downloader", func(t *testing.T) {
		body := randomBytes(3, 5<<18+7) // 1.25 MiB and a bit: 11 ranges of 128 KiB
		g.emu.PutObject(bucket, sitePrefix+"down.bin", body, nil)
		g.emu.ResetRequests()
		d := oss.NewDownloader(c, func(o *oss.DownloaderOptions) {
			o.PartSize = 128 << 10
			o.ParallelNum = 3
		})
		path := filepath.Join(t.TempDir(), "down.bin")
		res, err := d.DownloadFile(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("down.bin")}, path)
		if err != nil {
			t.Fatalf("DownloadFile: %v", err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, body) || res.Written != int64(len(body)) {
			t.Fatalf("downloaded %d bytes (written %d) of %d: %v", len(got), res.Written, len(body), err)
		}
		ranged := g.ossRequests(func(r ossemu.Request) bool {
			return r.Method == "GET" && r.Key == sitePrefix+"down.bin" && r.Header.Get("Range") != ""
		})
		if len(ranged) != 11 {
			t.Fatalf("OSS saw %d ranged GETs, want 11", len(ranged))
		}
	})

	t.Run("AppendObject", func(t *testing.T) {
		const key = "log/append.txt"
		r1, err := c.AppendObject(ctx, &oss.AppendObjectRequest{Bucket: bkt, Key: oss.Ptr(key), Position: oss.Ptr(int64(0)), Body: strings.NewReader("first,")})
		if err != nil {
			t.Fatalf("AppendObject 1: %v", err)
		}
		if r1.NextPosition != 6 {
			t.Fatalf("next position %d", r1.NextPosition)
		}
		if _, err := c.AppendObject(ctx, &oss.AppendObjectRequest{Bucket: bkt, Key: oss.Ptr(key), Position: oss.Ptr(r1.NextPosition), Body: strings.NewReader("second")}); err != nil {
			t.Fatalf("AppendObject 2: %v", err)
		}
		if got, _ := g.object(key); string(got) != "first,second" {
			t.Fatalf("stored %q", got)
		}
	})

	t.Run("DeleteObject", func(t *testing.T) {
		g.emu.PutObject(bucket, sitePrefix+"del.txt", []byte("bye"), nil)
		if _, err := c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: bkt, Key: oss.Ptr("del.txt")}); err != nil {
			t.Fatalf("DeleteObject: %v", err)
		}
		if _, ok := g.object("del.txt"); ok {
			t.Fatal("the object is still stored")
		}
	})

	t.Run("CopyObjectRefused", func(t *testing.T) {
		g.emu.PutObject(bucket, sitePrefix+"src.txt", []byte("source"), nil)
		g.emu.ResetRequests()
		_, err := c.CopyObject(ctx, &oss.CopyObjectRequest{Bucket: bkt, Key: oss.Ptr("copy.txt"), SourceKey: oss.Ptr("src.txt")})
		var se *oss.ServiceError
		if !errors.As(err, &se) || se.StatusCode != 403 || se.Code != "AccessDenied" {
			t.Fatalf("CopyObject: %v, want a 403 AccessDenied ServiceError", err)
		}
		if _, ok := g.object("copy.txt"); ok {
			t.Fatal("the copy was stored")
		}
		if rs := g.emu.Requests(); len(rs) != 0 {
			t.Fatalf("the refused copy reached OSS: %+v", rs)
		}
	})

	t.Run("Presign", func(t *testing.T) { presign(t, g, p, viaIP) })

	if h2n, all := c.rec.counts(); p == h2 && h2n != all {
		t.Fatalf("%d of %d answers over HTTP/2", h2n, all)
	}
	checkAddressing(t, g, p, viaIP)
}

// checkAddressing asserts how the SDK addressed the gateway: at the custom
// domain, Host is the domain and the path the key (CNAME mode); at the
// fixed IP, Host is IP:port and the path /BUCKET/KEY (path style, which the
// site's path_style maps back to KEY).
func checkAddressing(t *testing.T, g *gateway, p proto, viaIP bool) {
	t.Helper()
	seen := g.seenRequests()
	if len(seen) == 0 {
		t.Fatal("no request reached the gateway")
	}
	ipHost := strings.TrimPrefix(strings.TrimPrefix(g.baseURL(p, true), "http://"), "https://")
	wantProto := "HTTP/1.1"
	if p == h2 {
		wantProto = "HTTP/2.0"
	}
	for _, r := range seen {
		pathStyle := strings.HasPrefix(r.URI, "/"+bucket+"/")
		switch {
		case r.Proto != wantProto:
			t.Errorf("%s %s came over %s, want %s", r.Method, r.URI, r.Proto, wantProto)
		case viaIP && (r.Host != ipHost || !pathStyle):
			t.Errorf("at the IP: Host %q %s %s, want Host %q and a path-style path", r.Host, r.Method, r.URI, ipHost)
		case !viaIP && (r.Host != domain || pathStyle):
			t.Errorf("at the domain: Host %q %s %s, want Host %q and the key as the path", r.Host, r.Method, r.URI, domain)
		}
	}
}

// failParts makes UploadParts fail without reaching the gateway, as a
// network that drops during an upload would: parts 1 and 2 go through,
// then part 3 and every later part fail. Part 3 fails only once 1 and 2
// have their answers, so the upload left behind holds exactly parts 1-2.
type failParts struct {
	rt    http.RoundTripper
	mu    sync.Mutex
	armed bool
	done  map[int]bool
	cond  *sync.Cond
	sent  []int // part numbers sent on while armed
}

func newFailParts(rt http.RoundTripper) *failParts {
	f := &failParts{rt: rt, armed: true, done: map[int]bool{}}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *failParts) disarm() {
	f.mu.Lock()
	f.armed = false
	f.mu.Unlock()
}

func (f *failParts) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	n, err := strconv.Atoi(q.Get("partNumber"))
	f.mu.Lock()
	armed := f.armed
	f.mu.Unlock()
	if !armed || r.Method != http.MethodPut || err != nil || !q.Has("uploadId") {
		return f.rt.RoundTrip(r)
	}
	if n <= 2 {
		f.mu.Lock()
		f.sent = append(f.sent, n)
		f.mu.Unlock()
		resp, err := f.rt.RoundTrip(r)
		f.mu.Lock()
		f.done[n] = true
		f.cond.Broadcast()
		f.mu.Unlock()
		return resp, err
	}
	// Wait (bounded) for parts 1 and 2 to be answered, then fail.
	deadline := time.AfterFunc(10*time.Second, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer deadline.Stop()
	start := time.Now()
	f.mu.Lock()
	for !(f.done[1] && f.done[2]) && time.Since(start) < 10*time.Second {
		f.cond.Wait()
	}
	f.mu.Unlock()
	if r.Body != nil {
		r.Body.Close()
	}
	return nil, fmt.Errorf("test: connection lost before part %d", n)
}

// uploaderResume interrupts a checkpointed upload after parts 1 and 2,
// runs it again, and checks that the second run resumed the same upload
// (ListParts through the gateway) and sent only the missing parts.
func uploaderResume(t *testing.T, g *gateway, p proto, viaIP bool) {
	var fp *failParts
	c := newSDKClient(g, p, viaIP, anonymous(), func(rt http.RoundTripper) http.RoundTripper {
		fp = newFailParts(rt)
		return fp
	})
	ctx := context.Background()
	const key = "up/resume.bin"
	const partSize = 100 << 10
	body := randomBytes(4, 10*partSize+999) // 11 parts
	dir := t.TempDir()
	src := filepath.Join(dir, "resume.bin")
	if err := os.WriteFile(src, body, 0o600); err != nil {
		t.Fatal(err)
	}
	cpDir := filepath.Join(dir, "checkpoints")
	if err := os.Mkdir(cpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	u := oss.NewUploader(c, func(o *oss.UploaderOptions) {
		o.PartSize = partSize
		o.ParallelNum = 3
		o.EnableCheckpoint = true
		// The SDK keeps its checkpoint in filepath.Dir(CheckpointDir): the
		// trailing slash makes that cpDir itself.
		o.CheckpointDir = cpDir + string(filepath.Separator)
	})
	req := &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr(key)}

	g.emu.ResetRequests()
	if _, err := u.UploadFile(ctx, req, src); err == nil {
		t.Fatal("the interrupted upload succeeded")
	}
	if _, ok := g.object(key); ok {
		t.Fatal("an interrupted upload stored the object")
	}
	ups := g.emu.Uploads(bucket)
	if len(ups) != 1 {
		t.Fatalf("pending uploads after the interruption: %+v", ups)
	}
	uploadID := ups[0].UploadID
	pending, _ := g.emu.PendingParts(bucket, sitePrefix+key, uploadID)
	var have []int
	for _, pp := range pending {
		have = append(have, pp.Number)
	}
	if !slices.Equal(have, []int{1, 2}) {
		t.Fatalf("parts stored after the interruption: %v, want [1 2]", have)
	}
	if cps, _ := filepath.Glob(filepath.Join(cpDir, "*")); len(cps) != 1 {
		t.Fatalf("checkpoint files: %v", cps)
	}

	fp.disarm()
	g.emu.ResetRequests()
	if _, err := u.UploadFile(ctx, req, src); err != nil {
		t.Fatalf("resumed upload: %v", err)
	}
	if got, _ := g.object(key); !bytes.Equal(got, body) {
		t.Fatalf("stored %d bytes, want %d", len(got), len(body))
	}
	resent := partNumbers(g.ossRequests(isUploadPart(key)))
	slices.SortFunc(resent, func(a, b string) int { x, _ := strconv.Atoi(a); y, _ := strconv.Atoi(b); return x - y })
	if want := []string{"3", "4", "5", "6", "7", "8", "9", "10", "11"}; !slices.Equal(resent, want) {
		t.Fatalf("the resumed run sent parts %v, want %v", resent, want)
	}
	for _, r := range g.emu.Requests() {
		q, _ := url.ParseQuery(r.RawQuery)
		if q.Has("uploads") {
			t.Fatal("the resumed run started a new multipart upload")
		}
		if q.Has("uploadId") && q.Get("uploadId") != uploadID {
			t.Fatalf("the resumed run used upload %q, not %q", q.Get("uploadId"), uploadID)
		}
	}
	listed := g.ossRequests(func(r ossemu.Request) bool {
		q, _ := url.ParseQuery(r.RawQuery)
		return r.Method == "GET" && q.Has("uploadId")
	})
	if len(listed) == 0 {
		t.Fatal("the resumed run never listed the parts (ListParts)")
	}
	if ups := g.emu.Uploads(bucket); len(ups) != 0 {
		t.Fatalf("uploads left pending: %+v", ups)
	}
}

// presign signs URLs with a client's own static credential (the SDK signs
// nothing with anonymous credentials). A private site strips that
// signature and signs with the gateway's; the emulator knows only the
// gateway's key, so a request that reached it with the client's signature
// would be refused.
func presign(t *testing.T, g *gateway, p proto, viaIP bool) {
	c := newSDKClient(g, p, viaIP, credentials.NewStaticCredentialsProvider(clientAK, clientSK), nil)
	ctx := context.Background()
	const key = "signed/presigned.txt"
	body := []byte("stored through a presigned PUT")

	put, err := c.Presign(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr(key)}, oss.PresignExpires(10*time.Minute))
	if err != nil {
		t.Fatalf("Presign PUT: %v", err)
	}
	if !strings.Contains(put.URL, "x-oss-signature=") {
		t.Fatalf("presigned URL carries no signature: %s", put.URL)
	}
	req, err := http.NewRequest(put.Method, put.URL, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range put.SignedHeaders {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("presigned PUT: %v", err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("presigned PUT %s: %d %s", put.URL, resp.StatusCode, msg)
	}
	if got, _ := g.object(key); !bytes.Equal(got, body) {
		t.Fatalf("presigned PUT stored %q", got)
	}
	for _, r := range g.ossRequests(func(r ossemu.Request) bool { return r.Key == sitePrefix+key }) {
		if !r.Signed || strings.Contains(r.RawQuery, clientAK) {
			t.Fatalf("OSS saw %s ?%s signed=%v: the client's signature went through", r.Method, r.RawQuery, r.Signed)
		}
	}

	get, err := c.Presign(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr(key)}, oss.PresignExpires(10*time.Minute))
	if err != nil {
		t.Fatalf("Presign GET: %v", err)
	}
	resp, err = c.http.Get(get.URL)
	if err != nil {
		t.Fatalf("presigned GET: %v", err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, body) {
		t.Fatalf("presigned GET %s: %d %q", get.URL, resp.StatusCode, got)
	}
}
