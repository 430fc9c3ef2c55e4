package server

import (
	"net"

	"golang.org/x/sys/unix"
)

// notSentLowat bounds the unsent bytes a client socket may queue. Without
// it Linux grows the send buffer to megabytes and wakes a blocked writer
// only after a third of it has drained, which for a client reading at
// 64 KiB/s is longer than any sane per-write deadline: steady slow readers
// would be taken for stalled ones. With it, every write completes once the
// queue is below this mark, so progress is seen every couple of seconds.
const notSentLowat = 128 << 10

// lowatListener sets TCP_NOTSENT_LOWAT on every accepted connection.
type lowatListener struct{ net.Listener }

func (l lowatListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return c, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		if raw, err := tc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_NOTSENT_LOWAT, notSentLowat)
			})
		}
	}
	return c, nil
}

func withSendLowat(ln net.Listener) net.Listener { return lowatListener{ln} }
