package proxy

import (
	"net/http"

	"golang.org/x/sys/unix"

	"github.com/oss-gateway/gateway/internal/framing"
)

// bulkLowat is the TCP_NOTSENT_LOWAT of a client socket while a large
// stored body goes out: above the largest send buffer Linux grows to, so
// the mark no longer wakes the sender.
const bulkLowat = 8 << 20

// bulkSend lifts the TCP_NOTSENT_LOWAT of r's connection for one large
// body and returns the function that puts the connection's own mark back
// (nil when there is nothing to lift: HTTP/2, TLS, no socket). The server
// keeps the mark low so that a blocked write returns, and a slow reader
// shows progress, within a per-write deadline; for a 64 MiB body to a fast
// client that costs a sendfile call and a goroutine switch per 128 KiB,
// three times the CPU nginx spends. Callers lift it only when the
// connection's deadline is long enough for a slow reader to drain a third
// of a full send buffer (see bulkDeadline).
func bulkSend(r *http.Request) (restore func()) {
	c := framing.FromRequest(r)
	if c == nil {
		return nil
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return nil
	}
	old := -1
	_ = raw.Control(func(fd uintptr) {
		v, err := unix.GetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT)
		if err == nil && unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, bulkLowat) == nil {
			old = v
		}
	})
	if old < 0 {
		return nil
	}
	return func() {
		_ = raw.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, old)
		})
	}
}
