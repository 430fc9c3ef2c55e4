package ossemu

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
)

func TestFaultStatus(t *testing.T) {
	tests := []struct {
		status int
		code   string
	}{
		{502, "BadGateway"},
		{503, "ServiceUnavailable"},
		{504, "GatewayTimeout"},
		{500, "InternalError"},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			e, addr := startEmulator(t, Options{Region: testRegion})
			e.CreateBucket("pub", PublicRead)
			e.PutObject("pub", "k", []byte("v"), nil)
			e.AddFault(Fault{Bucket: "pub", Key: "k", Method: http.MethodGet, Status: tt.status, Times: 2})
			url := "http://" + addr + "/pub/k"
			for i := range 2 {
				r := do(t, http.MethodGet, url, "", nil, "")
				if r.status != tt.status || errorCode(r.body) != tt.code || r.header.Get("X-Oss-Request-Id") == "" {
					t.Fatalf("request %d = %d %s", i, r.status, r.body)
				}
			}
			if r := do(t, http.MethodGet, url, "", nil, ""); r.status != 200 || r.body != "v" {
				t.Errorf("after Times ran out = %d %s", r.status, r.body)
			}
			if r := do(t, http.MethodHead, url, "", nil, ""); r.status != 200 {
				t.Errorf("other method = %d", r.status)
			}
			rs := e.Requests()
			if len(rs) != 4 || rs[0].Status != tt.status || rs[2].Status != 200 {
				t.Errorf("log = %+v", rs)
			}
		})
	}
}

func TestFaultMatchingAndRemoval(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "a", []byte("a"), nil)
	e.PutObject("pub", "b", []byte("b"), nil)
	url := "http://" + addr + "/pub/"

	e.AddFault(Fault{Host: "other.example.com", Status: 500})
	e.AddFault(Fault{Key: "zzz", Status: 500})
	e.AddFault(Fault{Bucket: "nope", Status: 500})
	if r := do(t, http.MethodGet, url+"a", "", nil, ""); r.status != 200 {
		t.Errorf("non-matching faults applied: %d", r.status)
	}
	if r := do(t, http.MethodGet, url+"a", "other.example.com", nil, ""); r.status != 500 {
		t.Errorf("host-matched fault not applied: %d", r.status)
	}

	// Order: the first matching fault with uses left wins.
	e.ClearFaults()
	e.AddFault(Fault{Key: "a", Status: 503, Times: 1})
	remove := e.AddFault(Fault{Status: 502})
	if r := do(t, http.MethodGet, url+"a", "", nil, ""); r.status != 503 {
		t.Errorf("first fault = %d", r.status)
	}
	if r := do(t, http.MethodGet, url+"a", "", nil, ""); r.status != 502 {
		t.Errorf("second fault = %d", r.status)
	}
	if r := do(t, http.MethodGet, url+"b", "", nil, ""); r.status != 502 {
		t.Errorf("every-time fault = %d", r.status)
	}
	remove()
	remove() // idempotent
	if r := do(t, http.MethodGet, url+"b", "", nil, ""); r.status != 200 {
		t.Errorf("after remove = %d", r.status)
	}
}

func TestFaultResetBeforeHeaders(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "k", []byte("v"), nil)
	e.AddFault(Fault{Key: "k", ResetBeforeHeaders: true, Times: 1})

	resp, err := freshClient().Get("http://" + addr + "/pub/k")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("got a response (%d), want a connection error", resp.StatusCode)
	}
	if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, io.EOF) {
		t.Errorf("want a connection reset, got %v", err)
	}
	if rq := lastRequest(t, e); rq.Status != 0 {
		t.Errorf("logged status = %d, want 0", rq.Status)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/pub/k", "", nil, ""); r.status != 200 {
		t.Errorf("after the reset = %d", r.status)
	}
}

func TestFaultCutAfter(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	body := strings.Repeat("0123456789", 100)
	e.PutObject("pub", "k", []byte(body), nil)
	e.PutSyntheticObject("pub", "syn", 1<<20, "")

	tests := []struct {
		key, rng string
		cut      int64
		length   int64
		want     func(i int64) byte
	}{
		{"k", "", 100, 1000, func(i int64) byte { return body[i] }},
		{"k", "bytes=500-", 37, 500, func(i int64) byte { return body[500+i] }},
		{"syn", "", 100000, 1 << 20, SyntheticByte},
	}
	for _, tt := range tests {
		t.Run(tt.key+tt.rng, func(t *testing.T) {
			remove := e.AddFault(Fault{Key: tt.key, CutAfter: tt.cut, Times: 1})
			defer remove()
			req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/pub/"+tt.key, nil)
			if tt.rng != "" {
				req.Header.Set("Range", tt.rng)
			}
			resp, err := freshClient().Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			if resp.ContentLength != tt.length {
				t.Errorf("Content-Length = %d, want the full %d", resp.ContentLength, tt.length)
			}
			got, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read error = %v, want unexpected EOF", err)
			}
			if int64(len(got)) != tt.cut {
				t.Fatalf("read %d bytes, want %d", len(got), tt.cut)
			}
			for i, b := range got {
				if b != tt.want(int64(i)) {
					t.Fatalf("byte %d = %#x, want %#x", i, b, tt.want(int64(i)))
				}
			}
		})
	}
}

func TestFaultDelay(t *testing.T) {
	e := New(Options{Region: testRegion})
	e.CreateBucket("pub", PublicRead)
	e.PutObject("pub", "k", []byte("v"), nil)
	ln := testkit.Listen(t)
	srv := e.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/pub/k"

	remove := e.AddFault(Fault{Key: "k", Delay: 150 * time.Millisecond, Times: 1})
	start := time.Now()
	if r := do(t, http.MethodGet, url, "", nil, ""); r.status != 200 || r.body != "v" {
		t.Errorf("delayed GET = %d %s", r.status, r.body)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, want >= 150ms", d)
	}
	remove()

	// Delay combined with a status.
	remove = e.AddFault(Fault{Key: "k", Delay: 50 * time.Millisecond, Status: 503, Times: 1})
	if r := do(t, http.MethodGet, url, "", nil, ""); r.status != 503 {
		t.Errorf("delay+status = %d", r.status)
	}
	remove()

	// A client that gives up ends the delay: the handler returns, so the
	// server shuts down promptly instead of waiting out the hour.
	e.AddFault(Fault{Key: "k", Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if resp, err := freshClient().Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("client deadline did not cut the delayed request")
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		t.Errorf("handler still delaying after the client left: %v", err)
	}
	if rq := lastRequest(t, e); rq.Status != 0 {
		t.Errorf("logged status = %d, want 0 for an abandoned request", rq.Status)
	}
}
