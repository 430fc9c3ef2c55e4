package server

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/cache"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
)

// Run opens [cache] path, serves a cache-enabled site through it, wires
// the admin /-/purge, and closes the cache at shutdown (its directory lock
// is free once Run returns).
func TestRunCache(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.CreateBucket("pub", ossemu.PublicRead)
	emu.PutObject("pub", "hello.txt", []byte("hello"), nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	defer srv.Close()
	dir := t.TempDir()
	cfg, err := config.Parse("gateway.toml", []byte(fmt.Sprintf(`
[server]
http_listen = "127.0.0.1:0"
https_listen = ""
shutdown_grace = "2s"
[admin]
listen = "127.0.0.1:0"
allow = ["127.0.0.1/32"]
[cache]
path = %q
max_size = "16MiB"
memory = "1MiB"
max_object_size = "1MiB"
[[site]]
name = "pub"
domains = ["pub.test"]
bucket = "pub"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "public"
tls = "off"
[site.cache]
enabled = true
ttl = "1m"
`, dir, ln.Addr())))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addrs := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{
			Stdout: io.Discard, Stderr: io.Discard,
			Credentials: credentials.NewStaticCredentialsProvider("LTAIready", "ready-secret"),
			Listening:   func(a Addrs) { addrs <- a },
		})
	}()
	var a Addrs
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start")
	}
	get := func() string {
		req, _ := http.NewRequest("GET", "http://"+a.HTTP+"/hello.txt", nil)
		req.Host = "pub.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.Header.Get("X-Cache") + " " + string(b)
	}
	if got := get(); got != "MISS hello" {
		t.Fatalf("first GET: %q", got)
	}
	if got := get(); got != "HIT hello" {
		t.Fatalf("second GET: %q", got)
	}
	resp, err := http.Post("http://"+a.Admin+"/-/purge?site=pub&key=hello.txt", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(b)) != "1" {
		t.Fatalf("purge: %d %q", resp.StatusCode, b)
	}
	if got := get(); got != "MISS hello" {
		t.Fatalf("GET after purge: %q", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	c, err := cache.Open(cache.Options{Dir: dir, MaxSize: 16 << 20})
	if err != nil {
		t.Fatalf("the cache is still locked after Run returned: %v", err)
	}
	c.Close()
}
