package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/oss-gateway/gateway/proxy/upstream"
)

// BenchmarkTransport is a whole GET on loopback sockets, client to gateway
// to an OSS stand-in, for each upstream client (upstream_transport) and
// object size: the numbers README's performance section quotes when it
// compares native with stdlib. Run with -benchtime and -count, and compare
// the two modes within one run (the machine's noise cancels out).
func BenchmarkTransport(b *testing.B) {
	sizes := []int{1 << 10, 256 << 10, 64 << 20}
	blob := make([]byte, sizes[len(sizes)-1])
	for i := range blob {
		blob[i] = byte('a' + i%26)
	}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Path[1:])
		if err != nil || n > len(blob) {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Length", strconv.Itoa(n))
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Etag", `"0123456789ABCDEF0123456789ABCDEF"`)
		h.Set("X-Oss-Request-Id", "5F0000000000000000000000")
		_, _ = w.Write(blob[:n])
	}))
	defer up.Close()
	upAddr := up.Listener.Addr().String()

	for _, mode := range []string{"native", "stdlib"} {
		h := benchHandler(b, "public", `endpoint = "http://`+upAddr+`"`+"\n", Options{
			Transport: upstream.New(upstream.Options{Mode: mode, DialTimeout: 5e9, HeaderTimeout: 30e9}),
		})
		gw := httptest.NewServer(h)
		client := &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 64,
			DisableCompression:  true,
			DialContext:         (&net.Dialer{}).DialContext,
		}}
		for _, size := range sizes {
			b.Run(fmt.Sprintf("%s/%s", mode, sizeName(size)), func(b *testing.B) {
				url := gw.URL + "/" + strconv.Itoa(size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, _ := http.NewRequest("GET", url, nil)
						req.Host = "img.example.com"
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						n, _ := io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != 200 || n != int64(size) {
							b.Errorf("%d, %d bytes", resp.StatusCode, n)
							return
						}
					}
				})
			})
		}
		client.CloseIdleConnections()
		gw.Close()
	}
}

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}
