package main

// [site.retry] end to end: retries of upstream faults and the fallback
// endpoint.

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/ossemu"
)

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
