package proxy_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// retrySites are a site whose endpoint names the emulator by one host form
// and whose fallback names it by another, so faults can target either.
const retrySites = `
[[site]]
name = "acc"
domains = ["acc.test"]
bucket = "pub-bucket"
region = "cn-hangzhou"
endpoint = "http://EMU"
fallback_endpoint = "http://localhost:EMUPORT"
access = "private"
tls = "off"
methods = ["GET", "HEAD", "PUT"]
[site.retry]
max_attempts = 3
base_delay = "20ms"
max_delay = "100ms"
`

func newRetryEnv(t *testing.T) (*env, string, string) {
	t.Helper()
	// The fallback is the same emulator reached as localhost:PORT, so its
	// Host differs from the primary's (pub-bucket.127.0.0.1:PORT).
	emuPortSites := func(addr string) string {
		_, port, _ := strings.Cut(addr, ":")
		return strings.ReplaceAll(retrySites, "EMUPORT", port)
	}
	e := newEnvWith(t, envOpts{}, emuPortSites)
	_, port, _ := strings.Cut(e.emuAddr, ":")
	return e, "pub-bucket." + e.emuAddr, "pub-bucket.localhost:" + port
}

func TestRetryOn502ThenSuccess(t *testing.T) {
	e, primary, _ := newRetryEnv(t)
	e.emu.AddFault(ossemu.Fault{Host: primary, Key: "hello.txt", Status: 502, Times: 2})
	resp := e.do("GET", "acc.test", "/hello.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "hello public" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if n := e.upstreamCount(); n != 3 {
		t.Fatalf("%d upstream requests, want 3", n)
	}
	// Faults answer before the emulator checks signatures, so only the
	// last request proves its signature; every attempt must carry one.
	reqs := e.emu.Requests()
	for _, r := range reqs {
		if !strings.HasPrefix(r.Header.Get("Authorization"), "OSS4-HMAC-SHA256 ") {
			t.Fatal("a retry was not signed")
		}
	}
	if !reqs[len(reqs)-1].Signed {
		t.Fatal("the successful retry's signature was not verified")
	}
	if got := counterValue(t, e.reg, "gateway_upstream_retries_total", map[string]string{"site": "acc", "reason": "status"}); got != 2 {
		t.Fatalf("retries{status} = %v", got)
	}
}

func TestFallbackAfterAttemptsAreSpent(t *testing.T) {
	e, primary, fallback := newRetryEnv(t)
	e.emu.AddFault(ossemu.Fault{Host: primary, Status: 504})
	resp := e.do("GET", "acc.test", "/hello.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 200 || body != "hello public" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	reqs := e.emu.Requests()
	if len(reqs) != 4 {
		t.Fatalf("%d upstream requests, want 3 on the primary and 1 on the fallback", len(reqs))
	}
	for i, r := range reqs {
		want := primary
		if i == 3 {
			want = fallback
		}
		if r.Host != want || r.Header.Get("Authorization") == "" {
			t.Fatalf("request %d: Host %q, want %q", i, r.Host, want)
		}
	}
	if !reqs[3].Signed {
		t.Fatal("the fallback's fresh signature was not verified")
	}
	if got := counterValue(t, e.reg, "gateway_upstream_requests_total", map[string]string{"site": "acc", "endpoint": "fallback", "code": "200"}); got != 1 {
		t.Fatalf("fallback requests %v", got)
	}
	// Every attempt failing: OSS's last answer passes through.
	e.emu.AddFault(ossemu.Fault{Host: fallback, Status: 504})
	resp = e.do("GET", "acc.test", "/hello.txt", nil, nil)
	if body := readBody(t, resp); resp.StatusCode != 504 || !strings.Contains(body, "GatewayTimeout") {
		t.Fatalf("all failing: %d %s", resp.StatusCode, body)
	}
}

func TestNonIdempotentRequestsAreNotRetried(t *testing.T) {
	e, primary, _ := newRetryEnv(t)
	e.emu.AddFault(ossemu.Fault{Host: primary, Method: "PUT", Status: 502})
	resp := e.do("PUT", "acc.test", "/new.txt", nil, strings.NewReader("body"))
	if readBody(t, resp); resp.StatusCode != 502 {
		t.Fatalf("PUT: %d", resp.StatusCode)
	}
	if n := e.upstreamCount(); n != 1 {
		t.Fatalf("PUT sent %d times", n)
	}
}

func TestResetsAndDialErrorsAreRetried(t *testing.T) {
	e, primary, _ := newRetryEnv(t)
	e.emu.AddFault(ossemu.Fault{Host: primary, ResetBeforeHeaders: true, Times: 2})
	resp := e.do("GET", "acc.test", "/hello.txt", nil, nil)
	if readBody(t, resp); resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
	if got := counterValue(t, e.reg, "gateway_upstream_retries_total", map[string]string{"reason": "reset"}); got < 1 {
		t.Fatalf("retries{reset} = %v", got)
	}
}

func TestClientLeavingMidBackoffStopsRetries(t *testing.T) {
	e := newEnvWith(t, envOpts{}, func(string) string {
		return strings.ReplaceAll(strings.ReplaceAll(strings.ReplaceAll(retrySites, `fallback_endpoint = "http://localhost:EMUPORT"`, ""),
			`base_delay = "20ms"`, `base_delay = "2s"`), `max_delay = "100ms"`, `max_delay = "2s"`)
	})
	e.emu.AddFault(ossemu.Fault{Status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.gw.URL+"/hello.txt", nil)
	req.Host = "acc.test"
	done := make(chan struct{})
	go func() {
		defer close(done)
		if resp, err := e.gw.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	testkit.Eventually(t, 10*time.Second, "the request at the upstream", func() bool { return e.upstreamCount() >= 1 })
	cancel()
	<-done
	// Full jitter may have made the first backoff near zero; what matters
	// is that nothing is sent once the client is gone.
	atCancel := e.upstreamCount()
	time.Sleep(2500 * time.Millisecond) // past any backoff that was still running
	if n := e.upstreamCount(); n != atCancel || n > 2 {
		t.Fatalf("%d upstream requests after the client left (%d when it left)", n, atCancel)
	}
}

func TestRetryBudgetBoundsRetries(t *testing.T) {
	e, primary, _ := newRetryEnv(t)
	e.emu.AddFault(ossemu.Fault{Host: primary, Status: 503})
	e.emu.AddFault(ossemu.Fault{Status: 503})              // the fallback too: a full outage
	first := time.Now().UnixNano() / int64(10*time.Second) // the budget window
	for i := 0; i < 20; i++ {
		readBody(t, e.do("GET", "acc.test", "/hello.txt", nil, nil))
	}
	// 20 requests, ratio 0.2: the floor of 10 retries a window applies, in
	// each budget window the loop touched (windows are wall-clock aligned).
	windows := time.Now().UnixNano()/int64(10*time.Second) - first + 1
	retries := counterValue(t, e.reg, "gateway_upstream_retries_total", map[string]string{"site": "acc"})
	if retries > float64(10*windows) || int64(e.upstreamCount()) > 20+10*windows {
		t.Fatalf("%v retries, %d upstream requests for 20 client requests in an outage", retries, e.upstreamCount())
	}
}

func TestMidStreamResumeIsByteIdentical(t *testing.T) {
	e, _, _ := newRetryEnv(t)
	const size = 256 << 20
	e.emu.PutSyntheticObject(pubBucket, "big.bin", size, "application/octet-stream")
	e.emu.AddFault(ossemu.Fault{Key: "big.bin", CutAfter: 40 << 20, Times: 3})
	for _, tc := range []struct {
		name       string
		rng        string
		start, end int64
	}{
		{"whole", "", 0, size - 1},
		{"range", "bytes=1000-200000000", 1000, 200000000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := http.Header{}
			if tc.rng != "" {
				hdr.Set("Range", tc.rng)
			}
			resp := e.do("GET", "acc.test", "/big.bin", hdr, nil)
			defer resp.Body.Close()
			off := tc.start
			buf := make([]byte, 1<<20)
			for {
				n, err := resp.Body.Read(buf)
				for i := 0; i < n; i++ {
					if buf[i] != ossemu.SyntheticByte(off+int64(i)) {
						t.Fatalf("byte %d differs", off+int64(i))
					}
				}
				off += int64(n)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d bytes: %v", off-tc.start, err)
				}
			}
			if off != tc.end+1 {
				t.Fatalf("body ended at %d, want %d", off, tc.end+1)
			}
		})
		e.emu.AddFault(ossemu.Fault{Key: "big.bin", CutAfter: 40 << 20, Times: 3})
	}
	if got := counterValue(t, e.reg, "gateway_upstream_retries_total", map[string]string{"reason": "body_cut"}); got != 6 {
		t.Fatalf("retries{body_cut} = %v, want 6", got)
	}
}

func TestObjectChangedMidResumeBreaksTheConnection(t *testing.T) {
	e, _, _ := newRetryEnv(t)
	e.emu.PutSyntheticObject(pubBucket, "v.bin", 8<<20, "application/octet-stream")
	e.emu.AddFault(ossemu.Fault{Key: "v.bin", CutAfter: 1 << 20, Times: 1})
	e.emu.AddFault(ossemu.Fault{Key: "v.bin", Delay: 500 * time.Millisecond, Times: 1})
	resp := e.do("GET", "acc.test", "/v.bin", nil, nil)
	defer resp.Body.Close()
	first := make([]byte, 1<<20)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		t.Fatal(err)
	}
	// While the resume waits on OSS, the object is replaced.
	e.emu.PutSyntheticObject(pubBucket, "v.bin", 8<<20, "application/octet-stream")
	rest, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("client got a clean end after %d more bytes of a changed object", len(rest))
	}
	last := e.emu.Requests()[len(e.emu.Requests())-1]
	if last.Header.Get("If-Match") == "" || !strings.HasPrefix(last.Header.Get("Range"), "bytes=1048576-") || last.Status != 412 {
		t.Fatalf("resume request: Range %q If-Match %q status %d", last.Header.Get("Range"), last.Header.Get("If-Match"), last.Status)
	}
}
