// Package demo runs the gateway in front of the built-in OSS emulator, with a
// public and a private sample bucket, so that anyone can see it work on
// 127.0.0.1 without a cloud account.
package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/server"
)

// Region is the region the demo's emulator and sites use.
const Region = "cn-hangzhou"

// Sample buckets and the domains the demo serves them on.
const (
	PublicBucket  = "demo-public"
	PrivateBucket = "demo-private"
	PublicDomain  = "public.localhost"
	PrivateDomain = "private.localhost"
)

// Options say where the demo listens and where it writes.
type Options struct {
	Listen, Admin  string
	Version        string
	Stdout, Stderr io.Writer
	// Listening, when set, is called with the bound addresses once serving.
	Listening func(Info)
}

// Info is what a running demo can be reached at.
type Info struct {
	Gateway, Admin, Emulator string
	Curl                     []string
	// GoSDK is a whole Go program, printed after the curl lines, that
	// uploads (in parts) and reads back an object of the private bucket
	// with the official OSS Go SDK through the gateway.
	GoSDK string
}

// Run serves the demo until ctx is done.
func Run(ctx context.Context, o Options) error {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	emu := ossemu.New(ossemu.Options{Region: Region})
	ak, sk := "LTAIdemo"+randomHex(8), randomHex(15)
	emu.AddCredential(ak, sk, "")
	emu.CreateBucket(PublicBucket, ossemu.PublicRead)
	emu.CreateBucket(PrivateBucket, ossemu.Private)
	for _, b := range []string{PublicBucket, PrivateBucket} {
		emu.PutObject(b, "hello.txt", []byte("Hello from "+b+", served through OSS Gateway.\n"),
			http.Header{"Content-Type": {"text/plain; charset=utf-8"}})
		emu.PutObject(b, "index.html", []byte("<!doctype html><title>OSS Gateway demo</title><h1>Hello from "+b+"</h1>\n"),
			http.Header{"Content-Type": {"text/html; charset=utf-8"}})
	}
	emu.PutSyntheticObject(PublicBucket, "big.bin", 64<<20, "application/octet-stream")

	emuLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("emulator listener: %w", err)
	}
	emuSrv := emu.Serve(emuLn)
	defer emuSrv.Close()
	emuAddr := emuLn.Addr().String()

	cfg, err := config.Parse("demo.toml", []byte(configText(o.Listen, o.Admin, emuAddr)))
	if err != nil {
		return fmt.Errorf("demo config: %w", err)
	}
	return server.Run(ctx, cfg, server.Options{
		Version:     o.Version,
		Stdout:      o.Stdout,
		Stderr:      o.Stderr,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk),
		Listening: func(a server.Addrs) {
			info := Info{Gateway: a.HTTP, Admin: a.Admin, Emulator: emuAddr, Curl: curlLines(a.HTTP, a.Admin, emuAddr), GoSDK: goSDKProgram(a.HTTP)}
			fmt.Fprintf(o.Stdout, "OSS Gateway demo: gateway on http://%s, OSS emulator on http://%s, admin on http://%s\n", a.HTTP, emuAddr, a.Admin)
			fmt.Fprintf(o.Stdout, "Try (Ctrl-C to stop):\n")
			for _, c := range info.Curl {
				fmt.Fprintln(o.Stdout, c)
			}
			fmt.Fprintf(o.Stdout, "# the official Go SDK through the gateway: save as main.go in a module that requires\n"+
				"# github.com/aliyun/alibabacloud-oss-go-sdk-v2, then go run . (any credentials: the gateway signs)\n")
			fmt.Fprint(o.Stdout, info.GoSDK)
			if o.Listening != nil {
				o.Listening(info)
			}
		},
	})
}

func configText(listen, admin, emu string) string {
	return strings.NewReplacer("LISTEN", listen, "ADMIN", admin, "EMU", emu, "REGION", Region,
		"PUBBUCKET", PublicBucket, "PRIVBUCKET", PrivateBucket, "PUBDOMAIN", PublicDomain, "PRIVDOMAIN", PrivateDomain).Replace(`
[server]
http_listen = "LISTEN"
https_listen = ""

[admin]
listen = "ADMIN"

[[site]]
name = "public"
domains = ["PUBDOMAIN", "127.0.0.1"]
bucket = "PUBBUCKET"
region = "REGION"
endpoint = "http://EMU"
access = "public"
tls = "off"

[[site]]
name = "private"
domains = ["PRIVDOMAIN", "localhost"]
bucket = "PRIVBUCKET"
region = "REGION"
endpoint = "http://EMU"
access = "private"
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]
path_style = true                # SDKs at http://localhost:PORT send /BUCKET/KEY
`)
}

// goSDKProgram is the Go program the demo prints: a multipart upload with
// the SDK's Uploader and a read back, path-style at http://localhost:PORT.
func goSDKProgram(gw string) string {
	_, port, _ := net.SplitHostPort(gw)
	return strings.NewReplacer("PORT", port, "REGION", Region, "PRIVBUCKET", PrivateBucket).Replace(`package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

func main() {
	client := oss.NewClient(oss.LoadDefaultConfig().
		WithRegion("REGION").
		WithEndpoint("http://localhost:PORT"). // the gateway
		WithUsePathStyle(true).
		WithCredentialsProvider(credentials.NewAnonymousCredentialsProvider()))
	ctx := context.Background()
	bucket, key := oss.Ptr("PRIVBUCKET"), oss.Ptr("from-go-sdk.txt")
	body := strings.Repeat("multipart through OSS Gateway\n", 12000) // 360 KiB: 4 parts
	up := oss.NewUploader(client, func(o *oss.UploaderOptions) { o.PartSize = 100 << 10 })
	if _, err := up.UploadFrom(ctx, &oss.PutObjectRequest{Bucket: bucket, Key: key}, strings.NewReader(body)); err != nil {
		log.Fatal(err)
	}
	get, err := client.GetObject(ctx, &oss.GetObjectRequest{Bucket: bucket, Key: key})
	if err != nil {
		log.Fatal(err)
	}
	defer get.Body.Close()
	got, err := io.ReadAll(get.Body)
	if err != nil || string(got) != body {
		log.Fatalf("read back %d bytes: %v", len(got), err)
	}
	fmt.Printf("uploaded in parts and read back %d bytes as %s/%s\n", len(got), *bucket, *key)
}
`)
}

// curlLines are commands that work exactly as printed.
func curlLines(gw, admin, emu string) []string {
	return []string{
		"# a public object (the site's domain is the Host; 127.0.0.1 is also one of its domains)",
		fmt.Sprintf("curl -i http://%s/hello.txt", gw),
		"# a private object: the gateway signs the request with OSS Signature V4",
		fmt.Sprintf("curl -i -H 'Host: %s' http://%s/hello.txt", PrivateDomain, gw),
		"# the same object straight from the emulator, unsigned: 403 AccessDenied",
		fmt.Sprintf("curl -i -H 'Host: %s.%s' http://%s/hello.txt", PrivateBucket, emu, emu),
		"# a byte range of a 64 MiB object",
		fmt.Sprintf("curl -s -o /dev/null -w '%%{http_code} %%{size_download}\\n' -H 'Range: bytes=1048576-2097151' http://%s/big.bin", gw),
		"# an unknown host (421) and a path that tries to escape (400)",
		fmt.Sprintf("curl -i -H 'Host: unknown.example' http://%s/hello.txt", gw),
		fmt.Sprintf("curl -i --path-as-is http://%s/a/../hello.txt", gw),
		"# metrics and readiness",
		fmt.Sprintf("curl -s http://%s/metrics | grep ^gateway_requests_total", admin),
		fmt.Sprintf("curl -i http://%s/readyz", admin),
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
