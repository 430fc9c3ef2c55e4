package main

// Resilience tests against the real binary (issue 4): slow and stalled
// clients, reloads and drains under traffic, hostile input, retries through
// faults on the emulator, and a soak under random faults. Each test starts
// its own emulator and gateway, so they share nothing but the binary.
//
// Timing: the machine these run on is shared and small, so no test asserts a
// tight wall-clock bound. Upper bounds exist only to turn a hang into a
// failure, and they are generous.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// gatewayConfig is a config with one HTTP listener and an admin listener
// (HTTPADDR and ADMINADDR, filled in by startGateway), server holding extra
// [server] keys, and the given [[site]] tables.
func gatewayConfig(server string, sites ...string) string {
	return fmt.Sprintf(`
[server]
http_listen = "HTTPADDR"
https_listen = ""
%s

[admin]
listen = "ADMINADDR"

[credentials]
source = "env"
`, server) + strings.Join(sites, "\n")
}

// siteTable is a [[site]] on bucket reached at endpoint; extra is appended
// inside the site (keys, then sub-tables such as [site.retry]).
func siteTable(name, domain, bucket, endpoint, access, extra string) string {
	return fmt.Sprintf(`
[[site]]
name = %q
domains = [%q]
bucket = %q
region = "cn-hangzhou"
endpoint = %q
access = %q
tls = "off"
%s
`, name, domain, bucket, endpoint, access, extra)
}

// testCredentials are the AccessKey the emulator accepts and the gateway
// signs with, for private sites.
var testCredentials = []string{"OSS_ACCESS_KEY_ID=LTAIresilience", "OSS_ACCESS_KEY_SECRET=resilience-secret"}

func addTestCredential(emu *ossemu.Emulator) {
	emu.AddCredential("LTAIresilience", "resilience-secret", "")
}

// metricValue returns the value of one series (name and labels exactly as
// the exposition writes them, labels sorted) in a /metrics scrape.
func metricValue(m, series string) (float64, bool) {
	for _, line := range strings.Split(m, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitUntil polls cond every 50 ms for up to d; it reports whether cond held.
// Unlike waitFor it lets the caller choose the bound and the failure message.
func waitUntil(d time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(d); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

// waitExit waits up to d for the gateway to exit and returns its exit error
// (nil = status 0). A gateway still running after d is killed and the test
// fails: that is a hang. Wait always returns before waitExit does, so the
// cleanup startGateway registered never races with it.
func waitExit(t *testing.T, p *process, d time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		p.cmd.Process.Kill()
		<-done
		t.Fatalf("gateway still running %s after SIGTERM\n%s", d, p.stderr.String())
		return nil
	}
}

// waitClosed waits up to d for ch to be closed; what names it in the
// failure.
func waitClosed(t *testing.T, ch <-chan struct{}, d time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(d):
		t.Fatalf("no %s within %s", what, d)
	}
}

// accessLog returns the access log lines (JSON, one per request) written
// so far.
func accessLog(p *process) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// accessLine returns the first access log line for key, if any.
func accessLine(p *process, key string) (map[string]any, bool) {
	for _, m := range accessLog(p) {
		if m["key"] == key {
			return m, true
		}
	}
	return nil, false
}

// synthBlocks[h][k] is byte k of a 256-byte block of synthetic content whose
// high part is h: SyntheticByte(i) is byte(i) ^ high(i>>8).
var synthBlocks = func() (b [256][256]byte) {
	for h := range 256 {
		for k := range 256 {
			b[h][k] = byte(k) ^ byte(h)
		}
	}
	return b
}()

// synthMismatch returns the index in b of the first byte that differs from
// the synthetic object's content at offset off, or -1. It compares whole
// blocks with bytes.Equal, so checking 64 MiB stays cheap under -race.
func synthMismatch(off int64, b []byte) int {
	for j := 0; j < len(b); {
		i := off + int64(j)
		lo := int(byte(i))
		hi := ossemu.SyntheticByte(i - int64(lo))
		n := min(256-lo, len(b)-j)
		if !bytes.Equal(b[j:j+n], synthBlocks[hi][lo:lo+n]) {
			for k := range n {
				if b[j+k] != ossemu.SyntheticByte(i+int64(k)) {
					return j + k
				}
			}
		}
		j += n
	}
	return -1
}

// smallWindowDialer makes a dialer whose sockets have a small receive buffer and
// announce a small MSS, so the kernel cannot absorb a download the client
// reads slowly (or not at all) and the gateway's writes really block. The
// MSS matters most: on loopback it is 64 KiB, and Linux sizes the sender's
// buffer in segments, so the gateway's socket would grow to 4 MiB and
// swallow a 2 MiB body whole. With 2048 the gateway's send buffer settles
// around 1.5 MiB, as it would for a real client on a fast path: big enough
// to matter, too small to hide the download.
func smallWindowDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10),
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 2048))
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// rawGET opens a connection with a small receive buffer, sends a GET for
// path on host and reads the response headers. The caller reads the body at
// its own pace and closes conn.
func rawGET(t *testing.T, addr, host, path string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := smallWindowDialer().Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, resp
}

// pacedRead reads body at about rate bytes per second (0 = as fast as it
// comes) in reads of up to chunk bytes, checking every byte against the
// synthetic content from offset 0, until the body ends or breaks.
// onProgress, when set, sees the running total after each read. It returns
// the bytes read, the read error (nil at a clean end, io.ErrUnexpectedEOF or
// a reset when the body was cut), and the offset of the first wrong byte
// (-1 when none).
func pacedRead(body io.Reader, rate float64, chunk int, onProgress func(int64)) (n int64, err error, bad int64) {
	buf := make([]byte, chunk)
	start := time.Now()
	bad = -1
	for {
		m, rerr := body.Read(buf)
		if i := synthMismatch(n, buf[:m]); i >= 0 && bad < 0 {
			bad = n + int64(i)
		}
		n += int64(m)
		if onProgress != nil && m > 0 {
			onProgress(n)
		}
		if rerr == io.EOF {
			return n, nil, bad
		}
		if rerr != nil {
			return n, rerr, bad
		}
		if rate > 0 {
			if d := time.Duration(float64(n)/rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
}

// TestSlowlorisDroppedSlowReaderServed proves the client-connection timeouts
// tell an attacker from a slow phone: with read_header_timeout = 1s and
// idle_timeout = 3s, a client that trickles its headers is disconnected, a
// client that reads a 2 MiB body at 64 KiB/s (far longer than idle_timeout
// in all) gets every byte right, and a client that stops reading a 64 MiB
// body is dropped, freeing its request, soon after idle_timeout.
func TestSlowlorisDroppedSlowReaderServed(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutSyntheticObject("bkt", "slow.bin", 2<<20, "")
	emu.PutSyntheticObject("bkt", "stall.bin", 64<<20, "")
	ep := "http://" + emuAddr
	p := startGateway(t, gatewayConfig(`read_header_timeout = "1s"
idle_timeout = "3s"`,
		siteTable("files", "files.test", "bkt", ep, "public", ""),
		siteTable("stall", "stall.test", "bkt", ep, "public", "")))

	var wg sync.WaitGroup
	defer wg.Wait()

	// Slowloris: a request line, then one header byte every 500 ms.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		io.WriteString(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nX-Slow: ")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			tick := time.NewTicker(500 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		start := time.Now()
		c.SetReadDeadline(start.Add(15 * time.Second))
		got, err := io.ReadAll(c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("slowloris client still connected after %s (read %q)", time.Since(start).Round(time.Millisecond), got)
			return
		}
		if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 4")) {
			t.Errorf("slowloris client got %q", got)
		}
		t.Logf("slowloris client dropped after %s (%v, %d bytes)", time.Since(start).Round(time.Millisecond), err, len(got))
	}()

	// A reader that stops: headers, then nothing.
	stallConn, stallResp := rawGET(t, p.http, "stall.test", "/stall.bin")
	if stallResp.StatusCode != 200 {
		t.Fatalf("stall.bin: %d", stallResp.StatusCode)
	}
	stalledAt := time.Now()

	// A slow reader: 8 KiB every 125 ms, 64 KiB/s, about 32 s for 2 MiB.
	slowConn, slowResp := rawGET(t, p.http, "files.test", "/slow.bin")
	if slowResp.StatusCode != 200 || slowResp.ContentLength != 2<<20 {
		t.Fatalf("slow.bin: %d, %d bytes", slowResp.StatusCode, slowResp.ContentLength)
	}
	slowDone := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(slowDone)
		defer slowConn.Close()
		start := time.Now()
		n, err, bad := pacedRead(slowResp.Body, 64<<10, 8<<10, nil)
		if err != nil || n != 2<<20 || bad >= 0 {
			t.Errorf("slow reader: %d of %d bytes, err %v, first wrong byte at %d", n, 2<<20, err, bad)
			return
		}
		t.Logf("slow reader received 2 MiB intact in %s", time.Since(start).Round(time.Millisecond))
	}()

	// The stalled request leaves the gateway (inflight back to 0, access
	// log written) once a write has been blocked for idle_timeout.
	dropped := waitUntil(20*time.Second, func() bool {
		v, ok := metricValue(scrape(t, p.admin), `gateway_inflight_requests{site="stall"}`)
		_, logged := accessLine(p, "stall.bin")
		return ok && v == 0 && logged
	})
	if !dropped {
		t.Errorf("a client that stopped reading is still being served %s later", time.Since(stalledAt).Round(time.Millisecond))
	} else {
		line, _ := accessLine(p, "stall.bin")
		t.Logf("stalled reader dropped after %s: %v bytes sent", time.Since(stalledAt).Round(time.Millisecond), line["bytes_out"])
		if b, _ := line["bytes_out"].(float64); b >= 64<<20 {
			t.Errorf("stalled reader: access log says all %v bytes were sent", line["bytes_out"])
		}
		// The connection itself is closed: what the kernel buffered drains,
		// then the body ends short.
		stallConn.SetReadDeadline(time.Now().Add(15 * time.Second))
		n, err := io.Copy(io.Discard, stallResp.Body)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("stalled reader's connection still open after the gateway gave up on it")
		} else if err == nil {
			t.Errorf("stalled reader's body ended cleanly after %d bytes; want it cut", n)
		}
	}

	<-slowDone
	// The slow download stayed in the gateway for longer than idle_timeout,
	// so its writes really waited on the client and were not all absorbed
	// by socket buffers: the per-write deadline is what kept it alive.
	waitUntil(10*time.Second, func() bool { _, ok := accessLine(p, "slow.bin"); return ok })
	line, ok := accessLine(p, "slow.bin")
	if !ok {
		t.Fatal("no access log line for slow.bin")
	}
	if d, _ := line["duration"].(float64); d <= 3 {
		t.Errorf("slow download took %.1fs in the gateway, no longer than idle_timeout: the test proved nothing", d)
	}
	if line["status"] != float64(200) || line["bytes_out"] != float64(2<<20) {
		t.Errorf("slow.bin access log: %v", line)
	}
	if resp, body := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("after: %d %q", resp.StatusCode, body)
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
		if !waitUntil(15*time.Second, func() bool {
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

// TestSIGTERMDrainsInFlightDownload proves the shutdown sequence with a
// download running: /readyz fails at once while the listener still takes
// connections for shutdown_delay, then new connections are refused, the
// in-flight 64 MiB download finishes intact within shutdown_grace, and the
// process exits 0.
func TestSIGTERMDrainsInFlightDownload(t *testing.T) {
	const size = 64 << 20
	const delay = 2 * time.Second
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutSyntheticObject("bkt", "big.bin", size, "")
	p := startGateway(t, gatewayConfig(`shutdown_grace = "20s"
shutdown_delay = "2s"`, siteTable("files", "files.test", "bkt", "http://"+emuAddr, "public", "")))

	conn, resp := rawGET(t, p.http, "files.test", "/big.bin")
	if resp.StatusCode != 200 || resp.ContentLength != size {
		t.Fatalf("big.bin: %d, %d bytes", resp.StatusCode, resp.ContentLength)
	}
	firstMiB := make(chan struct{})
	type result struct {
		n        int64
		err      error
		bad      int64
		finished time.Time
	}
	done := make(chan result, 1)
	go func() {
		defer conn.Close()
		var once sync.Once
		// 16 MiB/s: about 4 s for the whole object.
		n, err, bad := pacedRead(resp.Body, 16<<20, 256<<10, func(n int64) {
			if n >= 1<<20 {
				once.Do(func() { close(firstMiB) })
			}
		})
		once.Do(func() { close(firstMiB) })
		done <- result{n, err, bad, time.Now()}
	}()
	waitClosed(t, firstMiB, 30*time.Second, "the first MiB of big.bin")

	sigterm := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)

	// /readyz fails at once (the admin listener stays up during the drain).
	if !waitUntil(10*time.Second, func() bool {
		r, err := http.Get("http://" + p.admin + "/readyz")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 503
	}) {
		t.Errorf("/readyz never answered 503 after SIGTERM")
	}
	notReady := time.Since(sigterm)

	// During shutdown_delay the listener still serves, so the SLB can
	// notice /readyz before connections start being refused. Only judged
	// when the machine was quick enough for the answer to mean something.
	nc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", "http://"+p.http+"/a.txt", nil)
	req.Host = "files.test"
	r, err := nc.Do(req)
	if err == nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	if elapsed := time.Since(sigterm); (err != nil || r.StatusCode != 200) && elapsed < delay/2 {
		t.Errorf("new request %s after SIGTERM, within shutdown_delay: %v", elapsed.Round(time.Millisecond), err)
	}

	// Then new connections are refused, but not before shutdown_delay.
	refused := waitUntil(15*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", p.http, time.Second)
		if err != nil {
			return true
		}
		c.Close()
		return false
	})
	refusedAfter := time.Since(sigterm)
	if !refused {
		t.Errorf("listener still accepting %s after SIGTERM", refusedAfter.Round(time.Millisecond))
	} else if refusedAfter < delay-50*time.Millisecond {
		t.Errorf("connections refused %s after SIGTERM, before shutdown_delay (%s)", refusedAfter.Round(time.Millisecond), delay)
	}

	var res result
	select {
	case res = <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("download did not finish within 60 s of SIGTERM")
	}
	if res.err != nil || res.n != size || res.bad >= 0 {
		t.Errorf("in-flight download: %d of %d bytes, err %v, first wrong byte at %d", res.n, size, res.err, res.bad)
	}
	if err := waitExit(t, p, 30*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	exited := time.Since(sigterm)
	t.Logf("readyz 503 after %s, connections refused after %s, download finished after %s, exit 0 after %s",
		notReady.Round(time.Millisecond), refusedAfter.Round(time.Millisecond),
		res.finished.Sub(sigterm).Round(time.Millisecond), exited.Round(time.Millisecond))
}

// TestSIGTERMCutsWhatOutlivesGrace proves shutdown_grace is a bound: a
// download that would take 10 s is cut 1 s after SIGTERM, the client sees a
// broken body (never a short one passed off as whole), the process still
// exits 0 promptly, and stderr says how many requests it cut.
func TestSIGTERMCutsWhatOutlivesGrace(t *testing.T) {
	const size = 64 << 20
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutSyntheticObject("bkt", "big.bin", size, "")
	p := startGateway(t, gatewayConfig(`shutdown_grace = "1s"`, siteTable("files", "files.test", "bkt", "http://"+emuAddr, "public", "")))

	conn, resp := rawGET(t, p.http, "files.test", "/big.bin")
	if resp.StatusCode != 200 {
		t.Fatalf("big.bin: %d", resp.StatusCode)
	}
	firstMiB := make(chan struct{})
	type result struct {
		n   int64
		err error
		bad int64
	}
	done := make(chan result, 1)
	go func() {
		defer conn.Close()
		var once sync.Once
		// 6.4 MiB/s: 10 s for the whole object.
		n, err, bad := pacedRead(resp.Body, size/10, 64<<10, func(n int64) {
			if n >= 1<<20 {
				once.Do(func() { close(firstMiB) })
			}
		})
		once.Do(func() { close(firstMiB) })
		done <- result{n, err, bad}
	}()
	waitClosed(t, firstMiB, 30*time.Second, "the first MiB of big.bin")
	sigterm := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := waitExit(t, p, 15*time.Second); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	exited := time.Since(sigterm)

	var res result
	select {
	case res = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("client still reading 30 s after the gateway exited")
	}
	if res.err == nil || res.n >= size {
		t.Errorf("client read %d of %d bytes and err %v: want a broken body", res.n, size, res.err)
	}
	if res.bad >= 0 {
		t.Errorf("byte %d of the cut body is wrong", res.bad)
	}
	stderr := p.stderr.String()
	if !strings.Contains(stderr, "cutting requests still running") || !strings.Contains(stderr, `"cut":1`) {
		t.Errorf("stderr does not report the cut request:\n%s", stderr)
	}
	t.Logf("exit 0 %s after SIGTERM; client got %d of %d bytes, then %v", exited.Round(time.Millisecond), res.n, size, res.err)
}

// rawRoundTrip sends raw on a fresh connection and reads one response. A
// nil response with a non-nil error means the server closed (or reset) the
// connection without answering. No answer and no close within 15 s is a
// hang and fails the test.
func rawRoundTrip(t *testing.T, addr, raw string) (*http.Response, []byte, error) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	// Written concurrently: a server may answer (431) and hang up before it
	// has read everything.
	go io.WriteString(c, raw)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("no answer and no close within 15 s to %.80q", raw)
	}
	if err != nil {
		return nil, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("body of the answer to %.80q never ended", raw)
	}
	return resp, body, nil
}

// TestBadInputNeitherCrashesNorMisroutes throws malformed and hostile
// requests at the gateway: oversized and numerous headers, request
// smuggling framing, absurd ranges, garbage request lines, ambiguous hosts,
// absolute-form targets and NUL/CRLF injection. None may crash or hang it,
// none answered by the gateway may reach OSS, and none may reach a bucket
// other than the one the routed site names: after each, a normal GET still
// works, and the second site's bucket (behind allow_ips) never sees a
// request at all.
func TestBadInputNeitherCrashesNorMisroutes(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.CreateBucket("secret", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	emu.PutObject("secret", "a.txt", []byte("secret"), nil)
	emu.PutSyntheticObject("bkt", "r.bin", 1<<20, "")
	ep := "http://" + emuAddr
	p := startGateway(t, gatewayConfig(`max_header_bytes = 65536`,
		siteTable("files", "files.test", "bkt", ep, "public", ""),
		siteTable("other", "other.test", "secret", ep, "public", `
[site.limits]
allow_ips = ["203.0.113.0/24"]
`)))

	// stillServes proves the gateway survived: a normal GET on a new
	// connection answers the right object.
	stillServes := func(t *testing.T) {
		t.Helper()
		resp, body := p.get(t, "files.test", "/a.txt", nil)
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("normal GET afterwards: %d %q", resp.StatusCode, body)
		}
	}
	// send runs raw and returns the answer (nil when the connection was
	// closed without one) and the requests OSS saw because of it.
	send := func(t *testing.T, raw string) (*http.Response, []byte, []ossemu.Request) {
		t.Helper()
		before := len(clientRequests(emu))
		resp, body, err := rawRoundTrip(t, p.http, raw)
		if err != nil {
			t.Logf("connection closed without an answer: %v", err)
		}
		return resp, body, clientRequests(emu)[before:]
	}
	status := func(resp *http.Response) int {
		if resp == nil {
			return 0
		}
		return resp.StatusCode
	}
	const get = "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n"

	// Requests the gateway (or net/http inside it) must refuse itself:
	// want lists the acceptable statuses, 0 = closed without an answer.
	refused := []struct {
		name string
		raw  string
		want []int
	}{
		{"headers larger than max_header_bytes", get + "X-Big: " + strings.Repeat("a", 128<<10) + "\r\n\r\n", []int{431}},
		{"content-length and transfer-encoding", "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}},
		{"two host headers", "GET /a.txt HTTP/1.1\r\nHost: files.test\r\nHost: other.test\r\n\r\n", []int{400}},
		{"host list", "GET /a.txt HTTP/1.1\r\nHost: files.test, other.test\r\n\r\n", []int{400, 421}},
		{"host with space", "GET /a.txt HTTP/1.1\r\nHost: files.test other.test\r\n\r\n", []int{400, 421}},
		{"garbage request line", "GARBAGE\r\n\r\n", []int{0, 400}},
		{"method only", "GET\r\n\r\n", []int{0, 400}},
		{"extra field in request line", "GET /a.txt HTTP/1.1 extra\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"unknown protocol version", "GET /a.txt HTTP/9.9\r\nHost: files.test\r\n\r\n", []int{0, 400, 505}},
		{"TLS handshake on the plain port", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", []int{0, 400}},
		{"binary garbage", "\x00\x01\x02\xff\xfe\r\n\r\n", []int{0, 400}},
		{"encoded NUL in path", "GET /a%00.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
		{"raw NUL in path", "GET /a\x00.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"raw CR in path", "GET /a.txt\rX-Injected: yes HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"raw CRLF in path", "GET /a.txt\r\nX-Injected: yes HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{0, 400}},
		{"encoded dot segments", "GET /%2e%2e/secret/a.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
		{"encoded slash", "GET /..%2fsecret%2fa.txt HTTP/1.1\r\nHost: files.test\r\n\r\n", []int{400}},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			resp, body, up := send(t, c.raw)
			got := status(resp)
			ok := false
			for _, w := range c.want {
				ok = ok || got == w
			}
			if !ok {
				t.Errorf("status %d (%q), want one of %v", got, body, c.want)
			}
			if len(up) > 0 {
				t.Errorf("reached OSS: %s %s%s (bucket %q key %q)", up[0].Method, up[0].Host, up[0].RawPath, up[0].Bucket, up[0].Key)
			}
			stillServes(t)
		})
	}

	// Many small headers within max_header_bytes are a legal request: it is
	// served from the right object (or refused whole), nothing else.
	t.Run("5000 small headers", func(t *testing.T) {
		var b strings.Builder
		b.WriteString(get)
		for i := range 5000 {
			fmt.Fprintf(&b, "X-H%04d: v\r\n", i)
		}
		b.WriteString("\r\n")
		resp, body, up := send(t, b.String())
		switch got := status(resp); {
		case got == 200 && string(body) == "hello":
		case got == 431 && len(up) == 0:
		default:
			t.Errorf("status %d %q", got, body)
		}
		for _, r := range up {
			if r.Bucket != "bkt" || r.Key != "a.txt" {
				t.Errorf("reached %s/%s", r.Bucket, r.Key)
			}
		}
		stillServes(t)
	})

	// Absurd ranges are OSS's to judge: passed through untouched, and the
	// answer is sane (no 5xx; a 206 covers what it says it covers).
	for _, rng := range []string{
		"bytes=99999999999999999999-",
		"bytes=-0",
		"bytes=5-1",
		"bytes=-99999999999999999999",
		"bytes=0-0,2-2" + func() string {
			var b strings.Builder
			for i := 2; i < 1000; i++ {
				fmt.Fprintf(&b, ",%d-%d", 2*i, 2*i)
			}
			return b.String()
		}(),
	} {
		t.Run("range "+rng[:min(len(rng), 30)], func(t *testing.T) {
			resp, body, up := send(t, "GET /r.bin HTTP/1.1\r\nHost: files.test\r\nRange: "+rng+"\r\n\r\n")
			got := status(resp)
			switch {
			case got == 0 || got >= 500:
				t.Errorf("status %d %q", got, body)
			case got == 200:
				if len(body) != 1<<20 || synthMismatch(0, body) >= 0 {
					t.Errorf("200 with a body of %d bytes that is not the object", len(body))
				}
			case got == 206:
				var first, last, total int64
				if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &first, &last, &total); err != nil ||
					int64(len(body)) != last-first+1 || synthMismatch(first, body) >= 0 {
					t.Errorf("206 %q with %d bytes that are not that range", resp.Header.Get("Content-Range"), len(body))
				}
			}
			if len(up) != 1 || up[0].Bucket != "bkt" || up[0].Key != "r.bin" || up[0].Header.Get("Range") != rng {
				t.Errorf("upstream requests %d; want the one GET of bkt/r.bin with the client's Range", len(up))
			}
			t.Logf("status %d, %d bytes", got, len(body))
			stillServes(t)
		})
	}

	// Percent-encoded CR LF are part of the key (or query), never a header
	// break, on the way to OSS or back.
	for _, target := range []string{"/a.txt%0d%0aX-Injected:%20yes", "/a.txt?x=%0d%0aX-Injected:%20yes"} {
		t.Run("encoded CRLF "+target, func(t *testing.T) {
			resp, body, up := send(t, "GET "+target+" HTTP/1.1\r\nHost: files.test\r\n\r\n")
			if got := status(resp); got == 0 || got >= 500 || resp.Header.Get("X-Injected") != "" {
				t.Errorf("status %d, header %q, %q", got, resp.Header.Get("X-Injected"), body)
			}
			for _, r := range up {
				if r.Bucket != "bkt" || r.Header.Get("X-Injected") != "" {
					t.Errorf("reached %s/%q with X-Injected %q", r.Bucket, r.Key, r.Header.Get("X-Injected"))
				}
			}
			stillServes(t)
		})
	}

	// Absolute-form targets: the site is the one net/http puts in r.Host
	// (RFC 9112 section 3.2.2: the target's authority wins over the Host
	// header), and that same site's rules and bucket apply. A plain net/http
	// server tells what r.Host each request gets.
	echo := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Host) })}
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go echo.Serve(eln)
	defer echo.Close()
	for _, c := range []struct{ target, host string }{
		{"http://other.test/a.txt", "files.test"},
		{"http://files.test/a.txt", "other.test"},
		{"http://unknown.test/a.txt", "files.test"},
		{"http://files.test@other.test/a.txt", "files.test"},
		{"http://other.test:80/a.txt", "files.test"},
	} {
		t.Run("absolute-form "+c.target+" host "+c.host, func(t *testing.T) {
			raw := "GET " + c.target + " HTTP/1.1\r\nHost: " + c.host + "\r\n\r\n"
			eresp, rhost, err := rawRoundTrip(t, eln.Addr().String(), raw)
			if err != nil || eresp.StatusCode != 200 {
				t.Fatalf("net/http refuses %q: %v", raw, err)
			}
			resp, body, up := send(t, raw)
			got := status(resp)
			routed, _, _ := strings.Cut(strings.ToLower(string(rhost)), ":")
			switch routed {
			case "files.test":
				if got != 200 || string(body) != "hello" {
					t.Errorf("r.Host %q: %d %q, want files.test's a.txt", rhost, got, body)
				}
			case "other.test":
				if got != 403 {
					t.Errorf("r.Host %q: %d %q, want other.test's allow_ips refusal", rhost, got, body)
				}
			default:
				if got != 421 {
					t.Errorf("r.Host %q: %d %q, want 421", rhost, got, body)
				}
			}
			for _, r := range up {
				if r.Bucket != "bkt" {
					t.Errorf("reached bucket %q", r.Bucket)
				}
			}
			t.Logf("r.Host %q: %d", rhost, got)
			stillServes(t)
		})
	}

	for _, r := range clientRequests(emu) {
		if r.Bucket != "bkt" {
			t.Errorf("a request reached bucket %q: %s %s%s", r.Bucket, r.Method, r.Host, r.RawPath)
		}
	}
}

// TestRetriesThroughTheBinary proves [site.retry] end to end with faults on
// the emulator: a GET that meets 502 twice, or a reset, is retried into a
// 200; a primary that answers 504 past max_attempts, or cannot be dialled,
// is given up for fallback_endpoint (the same emulator reached as
// localhost, so faults can target the primary's Host alone); and a PUT
// that meets a 502 is never retried, on the primary or the fallback.
func TestRetriesThroughTheBinary(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	for _, k := range []string{"a.txt", "b.txt", "c.txt", "d.txt"} {
		emu.PutObject("bkt", k, []byte("body of "+k), nil)
	}
	_, port, _ := net.SplitHostPort(emuAddr)
	primaryHost, fallbackHost := "bkt."+emuAddr, "bkt.localhost:"+port
	dead := freePort(t) // nothing listens here: dial errors
	retry := `methods = ["GET", "HEAD", "PUT"]
fallback_endpoint = "http://localhost:` + port + `"
[site.retry]
max_attempts = 3
base_delay = "20ms"
max_delay = "100ms"
on_status = [502, 503, 504]
`
	p := startGateway(t, gatewayConfig("",
		siteTable("files", "files.test", "bkt", "http://"+emuAddr, "private", retry),
		siteTable("dead", "dead.test", "bkt", "http://"+dead, "private", retry)),
		testCredentials...)

	// upstream returns the requests OSS saw for key since the log was reset.
	upstream := func(key string) []ossemu.Request {
		var out []ossemu.Request
		for _, r := range clientRequests(emu) {
			if r.Key == key {
				out = append(out, r)
			}
		}
		return out
	}
	describe := func(rs []ossemu.Request) string {
		var b strings.Builder
		for _, r := range rs {
			fmt.Fprintf(&b, " %s %s -> %d;", r.Method, r.Host, r.Status)
		}
		return b.String()
	}
	emu.ResetRequests()

	t.Run("502 twice then 200", func(t *testing.T) {
		emu.AddFault(ossemu.Fault{Host: primaryHost, Key: "a.txt", Status: 502, Times: 2})
		resp, body := p.get(t, "files.test", "/a.txt", nil)
		if resp.StatusCode != 200 || string(body) != "body of a.txt" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		up := upstream("a.txt")
		if len(up) != 3 || up[0].Status != 502 || up[1].Status != 502 || up[2].Status != 200 || up[2].Host != primaryHost || !up[2].Signed {
			t.Errorf("upstream:%s", describe(up))
		}
	})

	// Two resets: Go's transport silently replays a GET whose reused idle
	// connection was reset, so the first may never reach the gateway's
	// retry loop; the second, on a fresh connection, always does.
	t.Run("resets then 200", func(t *testing.T) {
		emu.AddFault(ossemu.Fault{Host: primaryHost, Key: "d.txt", ResetBeforeHeaders: true, Times: 2})
		resp, body := p.get(t, "files.test", "/d.txt", nil)
		if resp.StatusCode != 200 || string(body) != "body of d.txt" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		if up := upstream("d.txt"); len(up) != 3 || up[0].Status != 0 || up[1].Status != 0 || up[2].Status != 200 {
			t.Errorf("upstream:%s", describe(up))
		}
		if v, _ := metricValue(scrape(t, p.admin), `gateway_upstream_retries_total{reason="reset",site="files"}`); v < 1 {
			t.Errorf("no retry counted for reason reset")
		}
	})

	t.Run("504 past max_attempts falls back", func(t *testing.T) {
		emu.AddFault(ossemu.Fault{Host: primaryHost, Key: "b.txt", Status: 504})
		resp, body := p.get(t, "files.test", "/b.txt", nil)
		if resp.StatusCode != 200 || string(body) != "body of b.txt" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
		up := upstream("b.txt")
		ok := len(up) == 4
		for i, r := range up {
			if i < 3 {
				ok = ok && r.Host == primaryHost && r.Status == 504
			} else {
				ok = ok && r.Host == fallbackHost && r.Status == 200 && r.Signed
			}
		}
		if !ok {
			t.Errorf("want 3 attempts on the primary, then one signed on the fallback; upstream:%s", describe(up))
		}
	})

	t.Run("dial errors fall back", func(t *testing.T) {
		resp, body := p.get(t, "dead.test", "/a.txt", nil)
		if resp.StatusCode != 200 || string(body) != "body of a.txt" {
			t.Fatalf("%d %q", resp.StatusCode, body)
		}
	})

	t.Run("PUT facing 502 is not retried", func(t *testing.T) {
		emu.AddFault(ossemu.Fault{Key: "c.txt", Method: "PUT", Status: 502, Times: 5})
		req, _ := http.NewRequest("PUT", "http://"+p.http+"/c.txt", strings.NewReader("new content"))
		req.Host = "files.test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Errorf("PUT: %d, want OSS's 502 passed back", resp.StatusCode)
		}
		var puts []ossemu.Request
		for _, r := range upstream("c.txt") {
			if r.Method == "PUT" {
				puts = append(puts, r)
			}
		}
		if len(puts) != 1 {
			t.Errorf("PUT sent %d times:%s", len(puts), describe(puts))
		}
		if b, _ := emu.Object("bkt", "c.txt"); string(b) != "body of c.txt" {
			t.Errorf("object changed to %q", b)
		}
	})

	m := scrape(t, p.admin)
	for series, want := range map[string]float64{
		`gateway_upstream_retries_total{reason="status",site="files"}`:                 2 + 3, // 502 x2; 504 x2 then the fallback
		`gateway_upstream_requests_total{code="200",endpoint="fallback",site="files"}`: 1,
		`gateway_upstream_requests_total{code="504",endpoint="primary",site="files"}`:  3,
		`gateway_upstream_requests_total{code="502",endpoint="primary",site="files"}`:  3, // 2 GETs, 1 PUT
		`gateway_upstream_retries_total{reason="dial",site="dead"}`:                    3, // 2 on the primary, then the fallback
		`gateway_upstream_requests_total{code="200",endpoint="fallback",site="dead"}`:  1,
	} {
		if v, _ := metricValue(m, series); v != want {
			t.Errorf("%s = %v, want %v", series, v, want)
		}
	}
	if t.Failed() {
		t.Logf("metrics:\n%s", grep(m, "gateway_upstream"))
	}
}

// vmRSS reads the resident set of pid, in bytes.
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, _ := strconv.ParseInt(f[0], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// soakDuration is how long TestSoakUnderRandomFaults runs: 60 s, or
// GATEWAY_SOAK (a Go duration) when set.
func soakDuration(t *testing.T) time.Duration {
	if v := os.Getenv("GATEWAY_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("GATEWAY_SOAK=%q: %v", v, err)
		}
		return d
	}
	return 60 * time.Second
}

// TestSoakUnderRandomFaults runs a mixed load through a signed site while
// the emulator keeps misbehaving at random (error statuses, resets, cut
// bodies, delays). It proves that whatever fails, no client ever receives a
// wrong byte (a cut body is acceptable, a spliced or shifted one is not), no
// request hangs, the gateway leaks neither goroutines nor memory, and it is
// healthy afterwards.
func TestSoakUnderRandomFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("soak")
	}
	const bigSize = 4 << 20
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	small := make([]byte, 1024)
	for i := range small {
		small[i] = byte('a' + i%26)
	}
	emu.PutObject("bkt", "s.txt", small, nil)
	emu.PutSyntheticObject("bkt", "big.bin", bigSize, "")
	p := startGateway(t, gatewayConfig("", siteTable("files", "files.test", "bkt", "http://"+emuAddr, "private", `
[site.retry]
base_delay = "20ms"
max_delay = "200ms"
`)), testCredentials...)
	resp, _ := p.get(t, "files.test", "/s.txt", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" {
		t.Fatalf("s.txt: %d, ETag %q", resp.StatusCode, etag)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}, Timeout: 30 * time.Second}
	defer client.CloseIdleConnections()
	var (
		mu     sync.Mutex
		kinds  = map[string]int{}
		served atomic.Int64
	)
	record := func(kind string) {
		mu.Lock()
		kinds[kind]++
		mu.Unlock()
	}
	// one runs a random request and checks what came back. A wrong byte,
	// a hang or an answer no fault can explain fails the test.
	one := func(rng *rand.Rand) {
		req, _ := http.NewRequest("GET", "http://"+p.http+"/s.txt", nil)
		req.Host = "files.test"
		var op string
		var first, last int64
		switch n := rng.IntN(100); {
		case n < 40:
			op = "get"
		case n < 70:
			op = "range"
			req.URL.Path = "/big.bin"
			first = rng.Int64N(bigSize)
			last = min(first+rng.Int64N(1<<20), bigSize-1)
			req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
		case n < 85:
			op = "head"
			req.Method = "HEAD"
		default:
			op = "304"
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := client.Do(req)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("%s %s: no answer in 30 s: %v", op, req.Header.Get("Range"), err)
			}
			record(op + ": transport error")
			return
		}
		defer resp.Body.Close()
		body, rerr := io.ReadAll(resp.Body)
		var ne net.Error
		if errors.As(rerr, &ne) && ne.Timeout() {
			t.Errorf("%s %s: body stalled for 30 s", op, req.Header.Get("Range"))
		}
		switch code := resp.StatusCode; {
		case code == 502 || code == 503 || code == 504:
			record(fmt.Sprintf("%s: %d", op, code))
			return
		case op == "get" && code == 200, op == "304" && code == 200:
			if !bytes.HasPrefix(small, body) {
				t.Errorf("%s: wrong body %q", op, body)
			}
		case op == "range" && code == 206:
			var a, b, total int64
			if _, err := fmt.Sscanf(resp.Header.Get("Content-Range"), "bytes %d-%d/%d", &a, &b, &total); err != nil || a != first || b != last || total != bigSize {
				t.Errorf("range %d-%d: Content-Range %q", first, last, resp.Header.Get("Content-Range"))
			} else if i := synthMismatch(first, body); i >= 0 || int64(len(body)) > last-first+1 {
				t.Errorf("range %d-%d: byte %d of %d is wrong", first, last, i, len(body))
			}
		case op == "head" && code == 200:
			if resp.ContentLength != int64(len(small)) || resp.Header.Get("ETag") != etag {
				t.Errorf("head: length %d, ETag %q", resp.ContentLength, resp.Header.Get("ETag"))
			}
		case op == "304" && code == 304:
		default:
			t.Errorf("%s %s: unexpected %d %.200q", op, req.Header.Get("Range"), code, body)
			record(fmt.Sprintf("%s: %d", op, code))
			return
		}
		if rerr != nil {
			record(op + ": body cut")
			return
		}
		if op == "get" && len(body) != len(small) {
			t.Errorf("get: clean end after %d of %d bytes", len(body), len(small))
		}
		if op == "range" && int64(len(body)) != last-first+1 {
			t.Errorf("range: clean end after %d of %d bytes", len(body), last-first+1)
		}
		served.Add(1)
	}
	load := func(d time.Duration) {
		var wg sync.WaitGroup
		deadline := time.Now().Add(d)
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
				for time.Now().Before(deadline) {
					one(rng)
				}
			}()
		}
		wg.Wait()
	}
	type figures struct {
		goroutines float64
		rss        int64
	}
	measure := func(idle time.Duration) figures {
		client.CloseIdleConnections()
		time.Sleep(idle)
		g, ok := metricValue(scrape(t, p.admin), "go_goroutines")
		if !ok {
			t.Fatal("no go_goroutines in /metrics")
		}
		return figures{g, vmRSS(t, p.cmd.Process.Pid)}
	}

	load(3 * time.Second) // warm-up: pools, buffers, the runtime's own
	served.Store(0)
	clear(kinds)
	before := measure(time.Second)
	retriesBefore := scrape(t, p.admin)

	// The fault injector: a new fault every 10-60 ms, up to six live at
	// once, the oldest removed first.
	stop := make(chan struct{})
	var injected atomic.Int64
	var fwg sync.WaitGroup
	fwg.Add(1)
	go func() {
		defer fwg.Done()
		rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
		var live []func()
		defer func() {
			for _, rm := range live {
				rm()
			}
		}()
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(10+rng.IntN(50)) * time.Millisecond):
			}
			f := ossemu.Fault{Key: []string{"", "s.txt", "big.bin"}[rng.IntN(3)], Times: 1 + rng.IntN(3)}
			switch rng.IntN(4) {
			case 0:
				f.Status = []int{502, 503, 504}[rng.IntN(3)]
			case 1:
				f.ResetBeforeHeaders = true
			case 2:
				f.CutAfter = 1 + rng.Int64N(1<<20)
			}
			if rng.IntN(2) == 0 {
				f.Delay = time.Duration(rng.IntN(200)) * time.Millisecond
			}
			live = append(live, emu.AddFault(f))
			injected.Add(1)
			if len(live) > 6 {
				live[0]()
				live = live[1:]
			}
		}
	}()
	d := soakDuration(t)
	load(d)
	close(stop)
	fwg.Wait()
	emu.ClearFaults()
	after := measure(3 * time.Second)

	m := scrape(t, p.admin)
	var retryLines []string
	for _, reason := range []string{"status", "reset", "dial", "timeout", "body_cut"} {
		series := `gateway_upstream_retries_total{reason="` + reason + `",site="files"}`
		v1, _ := metricValue(m, series)
		v0, _ := metricValue(retriesBefore, series)
		retryLines = append(retryLines, fmt.Sprintf("%s=%.0f", reason, v1-v0))
	}
	var kindLines []string
	total := 0
	for k, n := range kinds {
		kindLines = append(kindLines, fmt.Sprintf("%s=%d", k, n))
		total += n
	}
	sort.Strings(kindLines)
	t.Logf("soak %s: %d requests served intact, %d failed (%s), %d faults injected", d, served.Load(), total, strings.Join(kindLines, ", "), injected.Load())
	t.Logf("retries counted by the gateway: %s", strings.Join(retryLines, ", "))
	t.Logf("goroutines %.0f -> %.0f, RSS %.1f MiB -> %.1f MiB", before.goroutines, after.goroutines,
		float64(before.rss)/(1<<20), float64(after.rss)/(1<<20))

	if served.Load() == 0 {
		t.Error("no request was served intact")
	}
	if after.goroutines > before.goroutines+10 {
		t.Errorf("goroutines grew from %.0f to %.0f", before.goroutines, after.goroutines)
	}
	if after.rss >= 2*before.rss+16<<20 {
		t.Errorf("RSS grew from %d to %d bytes", before.rss, after.rss)
	}
	if v, _ := metricValue(m, `gateway_inflight_requests{site="files"}`); v != 0 {
		t.Errorf("%v requests still in flight after the load stopped", v)
	}
	// Still healthy: ready, and serving both objects right.
	for _, path := range []string{"/healthz", "/readyz"} {
		r, err := http.Get("http://" + p.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 200 {
			t.Errorf("%s: %d", path, r.StatusCode)
		}
	}
	if resp, body := p.get(t, "files.test", "/s.txt", nil); resp.StatusCode != 200 || !bytes.Equal(body, small) {
		t.Errorf("s.txt after the soak: %d", resp.StatusCode)
	}
	if resp, body := p.get(t, "files.test", "/big.bin", http.Header{"Range": {"bytes=1000-2000999"}}); resp.StatusCode != 206 || len(body) != 2000000 || synthMismatch(1000, body) >= 0 {
		t.Errorf("big.bin range after the soak: %d, %d bytes", resp.StatusCode, len(body))
	}
}

// TestAmbiguousFramingIsRefusedAndClosed: a request head with both
// Content-Length and Transfer-Encoding, after a clean request on the same
// keep-alive connection, gets 400 InvalidRequest, the connection closes,
// nothing reaches OSS, and the refusal is logged and counted.
func TestAmbiguousFramingIsRefusedAndClosed(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("hello"), nil)
	p := startGateway(t, gatewayConfig("", siteTable("files", "files.test", "bkt", "http://"+emuAddr, "private", `methods = ["GET", "HEAD", "PUT"]`)), testCredentials...)

	for _, order := range []string{"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "transfer-encoding: chunked\r\ncontent-length: 5\r\n"} {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(c)
		fmt.Fprint(c, "GET /a.txt HTTP/1.1\r\nHost: files.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("clean request first: %d %q", resp.StatusCode, body)
		}
		before := len(clientRequests(emu))
		fmt.Fprint(c, "PUT /b.txt HTTP/1.1\r\nHost: files.test\r\n"+order+"\r\n5\r\nhello\r\n0\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(body), "<Code>InvalidRequest</Code>") || !resp.Close {
			t.Fatalf("%q: %d close=%v %s", order, resp.StatusCode, resp.Close, body)
		}
		if _, err := br.ReadByte(); !errors.Is(err, io.EOF) {
			t.Fatalf("%q: connection still open after the refusal (%v)", order, err)
		}
		c.Close()
		if up := clientRequests(emu)[before:]; len(up) != 0 {
			t.Fatalf("reached OSS: %v", up[0])
		}
		if _, ok := emu.Object("bkt", "b.txt"); ok {
			t.Fatal("stored")
		}
	}
	if v, ok := metricValue(scrape(t, p.admin), `gateway_requests_total{code="400",method="PUT",site="files"}`); !ok || v != 2 {
		t.Fatalf("requests{code=400} = %v %v", v, ok)
	}
}
