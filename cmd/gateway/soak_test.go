package main

// A soak under random upstream faults: no wrong byte, no hang, no leak.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

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
