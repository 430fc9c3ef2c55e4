package proxy_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

// protoRecorder counts the answers that came over HTTP/2.
type protoRecorder struct {
	rt      http.RoundTripper
	h2, all atomic.Int64
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(r)
	if err == nil {
		p.all.Add(1)
		if resp.ProtoMajor == 2 {
			p.h2.Add(1)
		}
	}
	return resp, err
}

// TestGoSDKOverHTTP2: the official Go SDK's own client, speaking HTTP/2 to
// a private site (custom domain, CNAME mode), reads, writes, appends,
// uploads in parts and deletes. Its GET, HEAD and DELETE carry an empty
// DATA frame, which is no body.
func TestGoSDKOverHTTP2(t *testing.T) {
	e, h2srv := uploadEnv(t)
	addr := h2srv.Listener.Addr().String()
	rec := &protoRecorder{rt: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	cfg := oss.LoadDefaultConfig().
		WithCredentialsProvider(credentials.NewAnonymousCredentialsProvider()).
		WithRegion(region).
		WithEndpoint("https://up.test").
		WithUseCName(true).
		WithRetryMaxAttempts(1).
		WithHttpClient(&http.Client{Transport: rec})
	c := oss.NewClient(cfg)
	ctx := context.Background()
	bkt := oss.Ptr(prvBucket) // ignored in CNAME mode: the site names the bucket

	data := bytes.Repeat([]byte("0123456789abcdef"), 8192) // 128 KiB
	if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/a.bin"), Body: bytes.NewReader(data)}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	get, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/a.bin")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	got, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("GetObject returned %d bytes", len(got))
	}
	rng, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/a.bin"), Range: oss.Ptr("bytes=16-31")})
	if err != nil {
		t.Fatalf("GetObject range: %v", err)
	}
	got, _ = io.ReadAll(rng.Body)
	rng.Body.Close()
	if string(got) != "0123456789abcdef" {
		t.Fatalf("range %q", got)
	}
	if _, err := c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/a.bin")}); err != nil {
		t.Fatalf("HeadObject: %v", err)
	}
	if _, err := c.AppendObject(ctx, &oss.AppendObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/log.txt"), Position: oss.Ptr(int64(0)), Body: bytes.NewReader([]byte("one"))}); err != nil {
		t.Fatalf("AppendObject: %v", err)
	}

	init, err := c.InitiateMultipartUpload(ctx, &oss.InitiateMultipartUploadRequest{Bucket: bkt, Key: oss.Ptr("sdk/mp.bin")})
	if err != nil {
		t.Fatalf("InitiateMultipartUpload: %v", err)
	}
	var parts []oss.UploadPart
	for i, p := range [][]byte{data[:100<<10], data[100<<10:]} {
		up, err := c.UploadPart(ctx, &oss.UploadPartRequest{Bucket: bkt, Key: oss.Ptr("sdk/mp.bin"), UploadId: init.UploadId, PartNumber: int32(i + 1), Body: bytes.NewReader(p)})
		if err != nil {
			t.Fatalf("UploadPart %d: %v", i+1, err)
		}
		parts = append(parts, oss.UploadPart{PartNumber: int32(i + 1), ETag: up.ETag})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &oss.CompleteMultipartUploadRequest{Bucket: bkt, Key: oss.Ptr("sdk/mp.bin"), UploadId: init.UploadId,
		CompleteMultipartUpload: &oss.CompleteMultipartUpload{Parts: parts}}); err != nil {
		t.Fatalf("CompleteMultipartUpload: %v", err)
	}
	if stored, _ := e.emu.Object(prvBucket, "up/sdk/mp.bin"); !bytes.Equal(stored, data) {
		t.Fatalf("multipart stored %d bytes", len(stored))
	}
	if _, err := c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/a.bin")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, ok := e.emu.Object(prvBucket, "up/sdk/a.bin"); ok {
		t.Fatal("DeleteObject left the object")
	}
	// A copy is refused: the trust boundary, as the SDK reports it.
	_, err = c.CopyObject(ctx, &oss.CopyObjectRequest{Bucket: bkt, Key: oss.Ptr("sdk/copy.bin"), SourceKey: oss.Ptr("secret.txt")})
	var se *oss.ServiceError
	if !errors.As(err, &se) || se.StatusCode != 403 || se.Code != "AccessDenied" {
		t.Fatalf("CopyObject: %v", err)
	}
	if rec.h2.Load() != rec.all.Load() || rec.all.Load() < 10 {
		t.Fatalf("%d of %d answers over HTTP/2", rec.h2.Load(), rec.all.Load())
	}
}
