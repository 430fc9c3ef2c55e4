//go:build !linux

package proxy

import "net/http"

// bulkSend is a no-op where TCP_NOTSENT_LOWAT is not available.
func bulkSend(*http.Request) (restore func()) { return nil }
