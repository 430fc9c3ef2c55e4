package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

// pattern is size bytes that differ with their offset, so a byte lost,
// doubled or reordered shows.
func pattern(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

type sendResult struct {
	spliced bool
	n       int64
	err     error
}

// spliceEnv is an upstream that serves body (cut after cutAt bytes when
// cutAt > 0) and a gateway-like handler that fetches it with the upstream
// client and sends it with sendBody.
func spliceEnv(t *testing.T, body []byte, cutAt int) (gw *httptest.Server, results chan sendResult, conns func() int64) {
	t.Helper()
	addr, nconns := rawServer(t, func(n int64, req *http.Request, w *bufio.Writer) bool {
		w.WriteString("HTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
		if cutAt > 0 {
			w.Write(body[:cutAt])
			return false
		}
		w.Write(body)
		return true
	})
	c := newTestClient()
	results = make(chan sendResult, 4)
	gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := get(t, c, addr, "GET", nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer resp.Body.Close()
		src, _ := spliceSource(resp.Body)
		copyResponseHeader(w.Header(), resp.Header)
		w.WriteHeader(resp.StatusCode)
		x := &exchange{w: w, st: &state{progressTimeout: 5 * time.Second}, site: &site{}}
		n, err := (&Handler{}).sendBody(r, x, w, resp.Body)
		results <- sendResult{src != nil, n, err}
	}))
	t.Cleanup(gw.Close)
	return gw, results, nconns.Load
}

// TestSendBodySplicesWholeBodies proves a large body on plain TCP goes by
// splice, arrives byte for byte, and leaves its connection reusable.
func TestSendBodySplicesWholeBodies(t *testing.T) {
	body := pattern(3<<20 + 17)
	gw, results, conns := spliceEnv(t, body, 0)
	for i := 0; i < 2; i++ {
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := <-results
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("client got %d bytes (err %v), want the %d sent", len(got), err, len(body))
		}
		if !res.spliced || res.err != nil || res.n != int64(len(body)) {
			t.Fatalf("sendBody: %+v", res)
		}
	}
	if n := conns(); n != 1 {
		t.Fatalf("%d upstream connections for two spliced bodies, want 1 reused", n)
	}
}

// TestSendBodyTellsWhichSideBroke proves a splice failure is blamed on the
// right end: OSS cutting the body is an upstream error (which the resume
// then repairs), the client leaving is errClientWrite (which ends it).
func TestSendBodyTellsWhichSideBroke(t *testing.T) {
	t.Run("upstream cut", func(t *testing.T) {
		body := pattern(4 << 20)
		gw, results, _ := spliceEnv(t, body, 1<<20+5)
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res := <-results
		if !res.spliced || res.err == nil || errors.Is(res.err, errClientWrite) {
			t.Fatalf("sendBody: %+v, want an upstream error", res)
		}
		if res.n != 1<<20+5 || !bytes.Equal(got, body[:len(got)]) {
			t.Fatalf("sent %d, client got %d bytes", res.n, len(got))
		}
	})
	t.Run("client left", func(t *testing.T) {
		body := pattern(64 << 20)
		gw, results, _ := spliceEnv(t, body, 0)
		resp, err := http.Get(gw.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.CopyN(io.Discard, resp.Body, 256<<10)
		resp.Body.Close() // closes the connection: the body was not read out
		select {
		case res := <-results:
			if !res.spliced || !errors.Is(res.err, errClientWrite) {
				t.Fatalf("sendBody: %+v, want errClientWrite", res)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("sendBody still sending 10s after the client left")
		}
	})
}
