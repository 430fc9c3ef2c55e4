package proxy_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oss-gateway/gateway/internal/framing"
	"github.com/oss-gateway/gateway/internal/testkit"
)

// lowatConns accepts connections with TCP_NOTSENT_LOWAT at the server's
// 128 KiB and keeps them, so the test can read the mark while a response
// is on its way.
type lowatConns struct {
	net.Listener
	mu    sync.Mutex
	conns []*net.TCPConn
}

func (l *lowatConns) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		raw, _ := tc.SyscallConn()
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, 128<<10)
		})
		l.mu.Lock()
		l.conns = append(l.conns, tc)
		l.mu.Unlock()
	}
	return c, err
}

func (l *lowatConns) lowat(t *testing.T) int {
	t.Helper()
	l.mu.Lock()
	tc := l.conns[len(l.conns)-1]
	l.mu.Unlock()
	raw, _ := tc.SyscallConn()
	v := -1
	_ = raw.Control(func(fd uintptr) {
		v, _ = unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
	})
	return v
}

// TestLargeBodiesLiftSendLowat: a large body, stored (a HIT) or streamed
// from OSS (a site without cache), goes out with the client socket's
// TCP_NOTSENT_LOWAT lifted, so sendfile or splice is not woken every
// 128 KiB, and the connection gets its mark back afterwards; with a
// progress deadline too short for a slow reader to drain a send buffer
// (idle_timeout = 5s) the mark stays where the server set it.
func TestLargeBodiesLiftSendLowat(t *testing.T) {
	for _, tc := range []struct {
		idle string
		host string
		want int
	}{
		{"120s", "cpub.test", 8 << 20},
		{"5s", "cpub.test", 128 << 10},
		{"120s", "nocache.test", 8 << 20},
		{"5s", "nocache.test", 128 << 10},
	} {
		t.Run(tc.host+"/idle_timeout="+tc.idle, func(t *testing.T) {
			e := newEnv(t, envOpts{
				server: fmt.Sprintf("idle_timeout = %q\n", tc.idle),
				top:    fmt.Sprintf("[cache]\npath = %q\nmax_size = \"256MiB\"\nmemory = \"1MiB\"\nmax_object_size = \"64MiB\"\n", t.TempDir()),
				sites:  fmt.Sprintf(cacheSites, "1h", "1h", "1h", "1h"),
			})
			big := make([]byte, 32<<20)
			e.emu.PutObject(pubBucket, "big.bin", big, nil)
			e.emu.PutObject(prvBucket, "big.bin", big, nil)
			ln := &lowatConns{Listener: testkit.Listen(t)}
			srv := &http.Server{Handler: e.h, ConnContext: framing.ConnContext}
			go srv.Serve(framing.NewListener(ln))
			t.Cleanup(func() { _ = srv.Close() })
			client := &http.Client{Transport: &http.Transport{}} // one kept-alive connection
			t.Cleanup(client.CloseIdleConnections)
			get := func() *http.Response {
				req, _ := http.NewRequest("GET", "http://"+ln.Addr().String()+"/big.bin", nil)
				req.Host = tc.host
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp
			}
			resp := get()
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			wantCache := ""
			if tc.host == "cpub.test" {
				wantCache = "HIT"
				testkit.Eventually(t, 10*time.Second, "the fill stored", func() bool {
					r := get()
					defer r.Body.Close()
					io.Copy(io.Discard, r.Body)
					return r.Header.Get("X-Cache") == "HIT"
				})
			}
			resp = get() // a body the client does not read yet
			if resp.StatusCode != 200 || resp.Header.Get("X-Cache") != wantCache {
				t.Fatalf("%d, X-Cache %q", resp.StatusCode, resp.Header.Get("X-Cache"))
			}
			// The sender blocks on a full socket with its mark lifted, or
			// (short deadline) never lifts it.
			if tc.want == 8<<20 {
				testkit.Within(5*time.Second, func() bool { return ln.lowat(t) == tc.want })
			} else {
				time.Sleep(200 * time.Millisecond)
			}
			if got := ln.lowat(t); got != tc.want {
				t.Errorf("TCP_NOTSENT_LOWAT while a 32 MiB body goes out: %d, want %d", got, tc.want)
			}
			if n, _ := io.Copy(io.Discard, resp.Body); n != int64(len(big)) {
				t.Fatalf("body: %d bytes", n)
			}
			resp.Body.Close()
			testkit.Eventually(t, 5*time.Second, "the server's mark back", func() bool { return ln.lowat(t) == 128<<10 })
		})
	}
}
