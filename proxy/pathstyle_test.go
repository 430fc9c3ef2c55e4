package proxy_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

// TestSDKAtTheFixedIP: the Go SDK pointed at the gateway's IP address
// addresses the bucket path-style ("/BUCKET/KEY"); with path_style the
// site maps that to KEY, so writes land where virtual-hosted ones would.
func TestSDKAtTheFixedIP(t *testing.T) {
	e := newEnv(t, envOpts{noDefaults: true, sites: `
[[site]]
name = "ip"
domains = ["127.0.0.1"]
bucket = "prv-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
access = "private"
prefix = "sdk/"
path_style = true
tls = "off"
methods = ["GET", "HEAD", "PUT", "DELETE"]
`})
	c := oss.NewClient(oss.LoadDefaultConfig().
		WithCredentialsProvider(credentials.NewAnonymousCredentialsProvider()).
		WithRegion(region).
		WithEndpoint(e.gw.URL).
		WithRetryMaxAttempts(1))
	ctx := context.Background()
	bkt := oss.Ptr(prvBucket)
	if _, err := c.PutObject(ctx, &oss.PutObjectRequest{Bucket: bkt, Key: oss.Ptr("dir/a.txt"), Body: bytes.NewReader([]byte("via ip"))}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	if got, ok := e.emu.Object(prvBucket, "sdk/dir/a.txt"); !ok || string(got) != "via ip" {
		t.Fatalf("stored at sdk/dir/a.txt: %q %v (requests: %+v)", got, ok, e.emu.Requests())
	}
	if _, ok := e.emu.Object(prvBucket, "sdk/prv-bucket/dir/a.txt"); ok {
		t.Fatal("the bucket name became part of the key")
	}
	r := e.emu.Requests()[0]
	if r.Key != "sdk/dir/a.txt" {
		t.Fatalf("OSS saw key %q", r.Key)
	}
	get, err := c.GetObject(ctx, &oss.GetObjectRequest{Bucket: bkt, Key: oss.Ptr("dir/a.txt")})
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	body, _ := io.ReadAll(get.Body)
	get.Body.Close()
	if string(body) != "via ip" {
		t.Fatalf("GetObject: %q", body)
	}
	if _, err := c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: bkt, Key: oss.Ptr("dir/a.txt")}); err != nil {
		t.Fatalf("DeleteObject: %v", err)
	}
	if _, ok := e.emu.Object(prvBucket, "sdk/dir/a.txt"); ok {
		t.Fatal("not deleted")
	}
	// A path whose first segment is not the bucket is a key as usual.
	e.emu.PutObject(prvBucket, "sdk/other/b.txt", []byte("b"), nil)
	resp := e.do("GET", "127.0.0.1", "/other/b.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "b" {
		t.Fatalf("plain path on a path-style site: %d %q", resp.StatusCode, body)
	}
}
