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

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
)

// runGateway runs server.Run on cfgText (EMU replaced by the emulator's
// address) and returns the listener addresses.
func runGateway(t *testing.T, cfgText string, probe time.Duration) Addrs {
	t.Helper()
	cfg, err := config.Parse("gateway.toml", []byte(cfgText))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan Addrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, cfg, Options{
			Stdout: io.Discard, Stderr: io.Discard, ProbeInterval: probe,
			Credentials: credentials.NewStaticCredentialsProvider("LTAIready", "ready-secret"),
			Listening:   func(a Addrs) { addrs <- a },
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case a := <-addrs:
		return a
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("gateway did not start")
	}
	return Addrs{}
}

func adminGet(t *testing.T, admin, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func readyConfig(emuAddr, allow string) string {
	return fmt.Sprintf(`
[server]
http_listen = "127.0.0.1:0"
https_listen = ""
[admin]
listen = "127.0.0.1:0"
allow = [%s]
[[site]]
name = "pub"
domains = ["pub.test"]
bucket = "pub"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "public"
tls = "off"
[[site]]
name = "priv"
domains = ["priv.test"]
bucket = "priv"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "private"
tls = "off"
`, allow, emuAddr, emuAddr)
}

// TestReadinessFollowsUpstreams proves /readyz is 200 only while every
// site's OSS endpoint answers (probed while idle), turns 503 naming the site
// when OSS stops answering, and recovers when it is back; /healthz stays 200
// throughout.
func TestReadinessFollowsUpstreams(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.CreateBucket("pub", ossemu.PublicRead)
	emu.CreateBucket("priv", ossemu.Private)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	emuAddr := ln.Addr().String()
	srv := emu.Serve(ln)
	a := runGateway(t, readyConfig(emuAddr, `"127.0.0.1/32"`), 100*time.Millisecond)

	waitStatus := func(want int, contains string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		var code int
		var body string
		for time.Now().Before(deadline) {
			if code, body = adminGet(t, a.Admin, "/readyz"); code == want && strings.Contains(body, contains) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("/readyz = %d %q, want %d containing %q", code, body, want, contains)
	}
	waitStatus(200, "ready")
	probes := 0
	for _, r := range emu.Requests() {
		if r.Method == http.MethodHead && r.Key == "" {
			probes++
		}
	}
	if probes < 2 {
		t.Errorf("probes seen by OSS = %d, want one per bucket", probes)
	}

	srv.Close()
	start := time.Now()
	waitStatus(503, "has not answered")
	t.Logf("/readyz failed %s after OSS went away", time.Since(start).Round(time.Millisecond))
	if code, _ := adminGet(t, a.Admin, "/healthz"); code != 200 {
		t.Errorf("/healthz = %d while OSS is away, want 200", code)
	}

	ln2, err := net.Listen("tcp", emuAddr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", emuAddr, err)
	}
	srv2 := emu.Serve(ln2)
	defer srv2.Close()
	waitStatus(200, "ready")
}

// TestPprofOnAdminOnlyBehindAllow proves /debug/pprof is served on the admin
// listener to allowed addresses, refused to others, and absent from the
// public listener.
func TestPprofOnAdminOnlyBehindAllow(t *testing.T) {
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	srv := emu.Serve(ln)
	defer srv.Close()

	a := runGateway(t, readyConfig(ln.Addr().String(), `"127.0.0.1/32"`), 0)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		if code, body := adminGet(t, a.Admin, path); code != 200 || body == "" {
			t.Errorf("admin %s = %d", path, code)
		}
	}
	if code, _ := adminGet(t, a.HTTP, "/debug/pprof/"); code == 200 {
		t.Error("pprof answered on the public listener")
	}

	b := runGateway(t, readyConfig(ln.Addr().String(), `"10.0.0.0/8"`), 0)
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap", "/metrics", "/readyz", "/healthz"} {
		if code, _ := adminGet(t, b.Admin, path); code != 403 {
			t.Errorf("admin %s from a disallowed address = %d, want 403", path, code)
		}
	}
}
