//go:build !linux

package server

import "net"

// withSendLowat is a no-op where TCP_NOTSENT_LOWAT is not available.
func withSendLowat(ln net.Listener) net.Listener { return ln }
