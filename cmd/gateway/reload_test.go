package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// reloadConfig is the config TestReloadAppliesEveryKey starts from; each
// step rewrites some of its keys.
const reloadConfig = `
[server]
http_listen = "HTTPADDR"
https_listen = ""
read_header_timeout = "10s"
idle_timeout = "120s"
max_header_bytes = 65536
upstream_header_timeout = "5s"
trusted_proxies = []

[admin]
listen = "ADMINADDR"

[log]
format = "json"
level = "info"
access_log = true

[credentials]
source = "env"

[[site]]
name = "files"
domains = ["files.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://EMUADDR"
access = "public"
tls = "off"

[site.limits]
allow_ips = ["127.0.0.0/8", "203.0.113.0/24"]
`

// TestReloadAppliesEveryKey changes each reloadable key by SIGHUP and
// watches its effect on the running binary: server timeouts and the header
// limit (the http.Server is replaced, the socket kept), the upstream header
// timeout (the transport is rebuilt), trusted proxies, log format, level
// and access log, and site limits. Listen addresses and proxy_protocol
// keep their running values, with a warning naming the key.
func TestReloadAppliesEveryKey(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("a"), nil)
	emu.PutObject("bkt", "slow.txt", []byte("slow"), nil)
	p := startGateway(t, strings.ReplaceAll(reloadConfig, "EMUADDR", emuAddr))
	path := p.cmd.Args[len(p.cmd.Args)-1]
	cfg, _ := os.ReadFile(path)
	text := string(cfg)
	reloads := 0
	set := func(t *testing.T, pairs ...string) {
		t.Helper()
		for i := 0; i+1 < len(pairs); i += 2 {
			if !strings.Contains(text, pairs[i]) {
				t.Fatalf("config has no %q", pairs[i])
			}
			text = strings.Replace(text, pairs[i], pairs[i+1], 1)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		reloads++
		want := fmt.Sprintf(`gateway_config_reloads_total{result="success"} %d`, reloads)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testkit.Eventually(t, 10*time.Second, "reload "+strconv.Itoa(reloads)+" counted", func() bool { return strings.Contains(scrape(t, p.admin), want) })
	}
	get := func(hdr http.Header) int {
		resp, _ := p.get(t, "files.test", "/a.txt", hdr)
		return resp.StatusCode
	}

	t.Run("max_header_bytes", func(t *testing.T) {
		big := http.Header{"X-Big": {strings.Repeat("b", 8<<10)}}
		if got := get(big); got != 200 {
			t.Fatalf("8 KiB header before: %d", got)
		}
		set(t, "max_header_bytes = 65536", "max_header_bytes = 2048")
		if got := get(big); got != 431 {
			t.Fatalf("8 KiB header after max_header_bytes = 2048: %d", got)
		}
		if got := get(nil); got != 200 {
			t.Fatalf("small request after: %d", got)
		}
	})

	t.Run("read_header_timeout", func(t *testing.T) {
		set(t, `read_header_timeout = "10s"`, `read_header_timeout = "300ms"`)
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprint(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n") // and never the end of the head
		_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
		start := time.Now()
		_, err = io.ReadAll(c)
		if err != nil || time.Since(start) > 7*time.Second {
			t.Fatalf("half a head was not cut by the new read_header_timeout: %v after %v", err, time.Since(start))
		}
	})

	t.Run("idle_timeout", func(t *testing.T) {
		set(t, `idle_timeout = "120s"`, `idle_timeout = "300ms"`)
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		br := bufio.NewReader(c)
		fmt.Fprint(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		_ = c.SetReadDeadline(time.Now().Add(8 * time.Second))
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("idle keep-alive connection not closed by the new idle_timeout: %v", err)
		}
	})

	t.Run("upstream_header_timeout", func(t *testing.T) {
		remove := emu.AddFault(ossemu.Fault{Key: "slow.txt", Delay: 1500 * time.Millisecond, Times: 1})
		if resp, _ := p.get(t, "files.test", "/slow.txt", nil); resp.StatusCode != 200 {
			t.Fatalf("slow object within 5s: %d", resp.StatusCode)
		}
		remove()
		set(t, `upstream_header_timeout = "5s"`, `upstream_header_timeout = "300ms"`)
		remove = emu.AddFault(ossemu.Fault{Key: "slow.txt", Delay: 1500 * time.Millisecond})
		defer remove()
		if resp, _ := p.get(t, "files.test", "/slow.txt", nil); resp.StatusCode != 504 {
			t.Fatalf("slow object after upstream_header_timeout = 300ms: %d", resp.StatusCode)
		}
	})

	t.Run("trusted_proxies", func(t *testing.T) {
		set(t, `allow_ips = ["127.0.0.0/8", "203.0.113.0/24"]`, `allow_ips = ["203.0.113.0/24"]`)
		xff := http.Header{"X-Forwarded-For": {"203.0.113.9"}}
		if got := get(xff); got != 403 {
			t.Fatalf("X-Forwarded-For from an untrusted peer was believed: %d", got)
		}
		set(t, "trusted_proxies = []", `trusted_proxies = ["127.0.0.1/32"]`)
		if got := get(xff); got != 200 {
			t.Fatalf("X-Forwarded-For from a newly trusted proxy: %d", got)
		}
	})

	t.Run("limits", func(t *testing.T) {
		set(t, `allow_ips = ["203.0.113.0/24"]`, "allow_ips = []\nper_ip_rps = 0.01\nper_ip_burst = 1")
		if a, b := get(nil), get(nil); a != 200 || b != 429 {
			t.Fatalf("per_ip_rps after reload: %d then %d", a, b)
		}
		set(t, "per_ip_rps = 0.01\nper_ip_burst = 1", "per_ip_rps = 0\nper_ip_burst = 0")
	})

	t.Run("log", func(t *testing.T) {
		set(t, `format = "json"`, `format = "text"`)
		p.waitStderr(t, "msg=\"config reloaded\"")
		before := len(p.stdout.String())
		get(nil)
		testkit.Eventually(t, 10*time.Second, "a text access line", func() bool { return strings.Contains(p.stdout.String()[before:], "status=200") }) // the line follows the answer
		set(t, `level = "info"`, `level = "error"`, "access_log = true", "access_log = false")
		n := strings.Count(p.stderr.String(), "config reloaded")
		before = len(p.stdout.String())
		get(nil)
		set(t, `level = "error"`, `level = "warn"`) // logged at info: must not appear
		get(nil)
		time.Sleep(200 * time.Millisecond) // an access line would follow its answer at once
		if got := strings.Count(p.stderr.String(), "config reloaded"); got != n {
			t.Errorf("info lines still logged at level = error")
		}
		if tail := p.stdout.String()[before:]; tail != "" {
			t.Errorf("access log still written with access_log = false: %q", tail)
		}
	})

	t.Run("listeners kept", func(t *testing.T) {
		other := freePort(t)
		set(t, `http_listen = "`+p.http+`"`, `http_listen = "`+other+`"`, "trusted_proxies = [\"127.0.0.1/32\"]", "trusted_proxies = [\"127.0.0.1/32\"]\nproxy_protocol = true")
		// The warnings precede the reload counter, but stderr reaches the
		// test through a pipe: wait for them rather than read once.
		for _, key := range []string{"server.http_listen", "server.proxy_protocol"} {
			p.waitStderr(t, key)
		}
		if got := get(nil); got != 200 {
			t.Fatalf("old address after a reload that changed it: %d", got)
		}
		if c, err := net.DialTimeout("tcp", other, time.Second); err == nil {
			c.Close()
			t.Fatal("the new http_listen address was opened by a reload")
		}
	})
}

// TestAdminReloadIsSynchronous: POST /-/reload answers 200 once the new
// config is live and 400 with the validation errors when it is refused;
// both reload series exist from the start and the last-reload gauges
// follow, so the reload alert can fire on the first failure.
func TestAdminReloadIsSynchronous(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("a"), nil)
	p := startGateway(t, strings.ReplaceAll(reloadConfig, "EMUADDR", emuAddr))
	path := p.cmd.Args[len(p.cmd.Args)-1]
	text, _ := os.ReadFile(path)

	m := scrape(t, p.admin)
	for _, want := range []string{
		`gateway_config_reloads_total{result="error"} 0`,
		`gateway_config_reloads_total{result="success"} 0`,
		"gateway_config_last_reload_successful 1",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("at start, metrics lack %q:\n%s", want, grep(m, "reload"))
		}
	}
	started, ok := metricValue(m, "gateway_config_last_reload_success_timestamp_seconds")
	if !ok || started < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Fatalf("last reload timestamp at start: %v %v", started, ok)
	}

	post := func() (int, string) {
		resp, err := http.Post("http://"+p.admin+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// Refused: the answer names the key, and the gauge drops at once.
	bad := strings.Replace(string(text), `format = "json"`, `format = "xml"`, 1)
	os.WriteFile(path, []byte(bad), 0o600)
	if code, body := post(); code != 400 || !strings.Contains(body, "log.format") {
		t.Fatalf("bad config: %d %q", code, body)
	}
	m = scrape(t, p.admin)
	if !strings.Contains(m, "gateway_config_last_reload_successful 0") || !strings.Contains(m, `gateway_config_reloads_total{result="error"} 1`) {
		t.Fatalf("after a refused reload:\n%s", grep(m, "reload"))
	}
	if resp, _ := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 200 {
		t.Fatalf("a refused reload changed the running config: %d", resp.StatusCode)
	}
	// Live when the answer comes: the new domain routes right away.
	good := strings.Replace(string(text), `domains = ["files.test"]`, `domains = ["files.test", "new.test"]`, 1)
	os.WriteFile(path, []byte(good), 0o600)
	if code, body := post(); code != 200 || body != "reloaded\n" {
		t.Fatalf("good config: %d %q", code, body)
	}
	if resp, _ := p.get(t, "new.test", "/a.txt", nil); resp.StatusCode != 200 {
		t.Fatalf("new domain right after the reload answered: %d", resp.StatusCode)
	}
	m = scrape(t, p.admin)
	if !strings.Contains(m, "gateway_config_last_reload_successful 1") || !strings.Contains(m, `gateway_config_reloads_total{result="success"} 1`) {
		t.Fatalf("after a good reload:\n%s", grep(m, "reload"))
	}
	if ts, _ := metricValue(m, "gateway_config_last_reload_success_timestamp_seconds"); ts <= started {
		t.Fatalf("last reload timestamp did not move: %v <= %v", ts, started)
	}
	resp, err := http.Get("http://" + p.admin + "/-/reload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 {
		t.Fatalf("GET /-/reload: %d", resp.StatusCode)
	}
}

// TestReloadAppliesCredentials: [credentials] applies on reload: a private
// site that had no usable keys (503) signs with the new ones.
func TestReloadAppliesCredentials(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("private"), nil)
	p := startGateway(t, gatewayConfig("", siteTable("files", "files.test", "bkt", "http://"+emuAddr, "private", "")),
		"OSS_ACCESS_KEY_ID=", "OSS_ACCESS_KEY_SECRET=")
	if resp, _ := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 503 {
		t.Fatalf("without credentials: %d", resp.StatusCode)
	}
	path := p.cmd.Args[len(p.cmd.Args)-1]
	text, _ := os.ReadFile(path)
	static := strings.Replace(string(text), `source = "env"`, "source = \"static\"\naccess_key_id = \"LTAIresilience\"\naccess_key_secret = \"resilience-secret\"", 1)
	if err := os.WriteFile(path, []byte(static), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+p.admin+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	if resp, body := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 200 || string(body) != "private" {
		t.Fatalf("after the reload to static keys: %d %q", resp.StatusCode, body)
	}
}

// TestReloadUnderLoadDropsNothing proves a SIGHUP reload is invisible to
// traffic: four keep-alive clients hammer the gateway while the config is
// rewritten (a domain added and idle_timeout changed each time, so each
// reload also replaces the http.Server on the open socket) and reloaded
// five times, and every single response is a 200 with the right body; a
// download in flight across all five reloads completes intact.
func TestReloadUnderLoadDropsNothing(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("steady body"), nil)
	emu.PutSyntheticObject("bkt", "big.bin", 16<<20, "")
	p := startGateway(t, gatewayConfig(`idle_timeout = "120s"`, siteTable("files", "files.test", "bkt", "http://"+emuAddr, "public", "")))
	path := p.cmd.Args[len(p.cmd.Args)-1]
	written, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var (
		stop     atomic.Bool
		served   atomic.Int64
		mu       sync.Mutex
		failures []string
		wg       sync.WaitGroup
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest("GET", "http://"+p.http+"/a.txt", nil)
				req.Host = "files.test"
				resp, err := client.Do(req)
				var body []byte
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 || string(body) != "steady body" {
					mu.Lock()
					if err != nil {
						failures = append(failures, err.Error())
					} else {
						failures = append(failures, fmt.Sprintf("%d %q", resp.StatusCode, body))
					}
					mu.Unlock()
					continue
				}
				served.Add(1)
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { stop.Store(true); wg.Wait() })
	defer stopLoad() // also when a t.Fatal ends the test early

	// A download read at 4 MiB/s, in flight while every reload happens.
	dlConn, dlResp := rawGET(t, p.http, "files.test", "/big.bin")
	if dlResp.StatusCode != 200 {
		t.Fatalf("big.bin: %d", dlResp.StatusCode)
	}
	type result struct {
		n        int64
		err      error
		bad      int64
		finished time.Time
	}
	dl := make(chan result, 1)
	go func() {
		defer dlConn.Close()
		n, err, bad := pacedRead(dlResp.Body, 4<<20, 64<<10, nil)
		dl <- result{n, err, bad, time.Now()}
	}()

	start := time.Now()
	domains := []string{"files.test"}
	for i := 1; i <= 5; i++ {
		time.Sleep(300 * time.Millisecond)
		domains = append(domains, fmt.Sprintf("r%d.test", i))
		cfg := strings.Replace(string(written), `domains = ["files.test"]`, `domains = ["`+strings.Join(domains, `", "`)+`"]`, 1)
		cfg = strings.Replace(cfg, `idle_timeout = "120s"`, fmt.Sprintf(`idle_timeout = "%ds"`, 120+i), 1)
		// Write beside and rename, as an operator's deploy tool would, so
		// the gateway never reads a half-written file.
		tmp := filepath.Join(filepath.Dir(path), "next.toml")
		if err := os.WriteFile(tmp, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
		p.cmd.Process.Signal(syscall.SIGHUP)
		// One reload at a time: signals sent faster than the gateway takes
		// them may be merged, which would make the count below a lie.
		want := float64(i)
		if !testkit.Within(15*time.Second, func() bool {
			v, _ := metricValue(scrape(t, p.admin), `gateway_config_reloads_total{result="success"}`)
			return v >= want
		}) {
			t.Fatalf("reload %d not counted:\n%s\n%s", i, grep(scrape(t, p.admin), "reloads"), p.stderr.String())
		}
	}
	reloaded := time.Now()
	if d := 3*time.Second - time.Since(start); d > 0 {
		time.Sleep(d)
	}
	stopLoad()
	loadTime := time.Since(start)

	select {
	case res := <-dl:
		if res.err != nil || res.n != 16<<20 || res.bad >= 0 {
			t.Errorf("download across the reloads: %d of %d bytes, err %v, first wrong byte at %d", res.n, 16<<20, res.err, res.bad)
		}
		if res.finished.Before(reloaded) {
			t.Logf("the download finished before the last reload; it spanned only some of them")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("download across the reloads did not finish in 60 s")
	}

	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed during reloads; first: %s", len(failures), int(served.Load())+len(failures), failures[0])
	}
	if served.Load() == 0 {
		t.Fatal("no request served")
	}
	m := scrape(t, p.admin)
	if v, _ := metricValue(m, `gateway_config_reloads_total{result="success"}`); v != 5 {
		t.Errorf("reloads: %s", grep(m, "reloads"))
	}
	if v, ok := metricValue(m, `gateway_config_reloads_total{result="error"}`); ok && v != 0 {
		t.Errorf("reloads: %s", grep(m, "reloads"))
	}
	// Every reload took effect: the domain the last one added is served.
	if resp, body := p.get(t, "r5.test", "/a.txt", nil); resp.StatusCode != 200 || string(body) != "steady body" {
		t.Errorf("r5.test after the reloads: %d %q", resp.StatusCode, body)
	}
	t.Logf("%d requests served across 5 reloads in %s, none failed", served.Load(), loadTime.Round(time.Millisecond))
}
