package testkit

import (
	"io"
	"net"
	"testing"
)

// Listen opens a listener on a free port of 127.0.0.1, closed when the
// test ends. Tests listen on loopback only: nothing they start should be
// reachable from the network, and port 0 lets parallel tests never clash.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.1: %v", err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// Serve starts serve on a Listen listener, closes what it returns when the
// test ends, and returns the address (host:port) it listens on.
//
// It takes the serve method rather than an emulator so that this package
// imports nothing of the module: packages whose own tests use testkit,
// ossemu's among them, can then use it without an import cycle. Start an
// OSS emulator with
//
//	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
//	addr := testkit.Serve(t, emu.Serve)
func Serve[C io.Closer](t testing.TB, serve func(net.Listener) C) string {
	t.Helper()
	ln := Listen(t)
	srv := serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}
