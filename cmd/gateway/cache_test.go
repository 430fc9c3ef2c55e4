package main

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// TestRunWithCache starts the binary with an object cache: the config
// checks run before it listens must not hold the cache directory (it is
// locked by the one cache that serves), the second GET is a HIT, and after
// a restart the stored copy is served without OSS.
func TestRunWithCache(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("cached body"), nil)
	dir := t.TempDir()
	cfg := gatewayConfig("", fmt.Sprintf(`
[[site]]
name = "files"
domains = ["files.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "public"
tls = "off"

[site.cache]
enabled = true
ttl = "1h"
`, emuAddr)) + fmt.Sprintf(`
[cache]
path = %q
memory = "1MiB"
`, dir)
	run := func(want ...string) {
		t.Helper()
		p := startGateway(t, cfg)
		for _, w := range want {
			resp, body := p.get(t, "files.test", "/a.txt", nil)
			if resp.StatusCode != 200 || string(body) != "cached body" || resp.Header.Get("X-Cache") != w {
				t.Fatalf("GET: %d %q X-Cache %q, want 200 and %s\n%s", resp.StatusCode, body, resp.Header.Get("X-Cache"), w, p.stderr.String())
			}
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := waitExit(t, p, 30*time.Second); err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
		}
	}
	run("MISS", "HIT")
	gets := func() int {
		n := 0
		for _, r := range clientRequests(emu) {
			if r.Method == "GET" && strings.HasSuffix(r.Key, "a.txt") {
				n++
			}
		}
		return n
	}
	before := gets()
	run("HIT")
	if n := gets(); n != before {
		t.Fatalf("%d OSS GETs after the restart, want the stored copy", n-before)
	}
}
