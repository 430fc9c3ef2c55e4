package proxy

import (
	"net/http"
	"time"
)

// A body of bulkMin bytes or more, stored or from OSS, goes out with the
// client socket's TCP_NOTSENT_LOWAT lifted (bulkSend) when the connection's
// progress deadline is at least bulkDeadline (or there is none): without
// the mark a blocked write waits for a third of the send buffer (up to
// 4 MiB) to drain, which a reader of 48 KiB/s or more does within 30 s.
const (
	bulkMin      = 1 << 20
	bulkDeadline = 30 * time.Second
)

// liftLowat lifts r's send low-water mark for a body of n bytes when the
// progress deadline d allows it, and returns what puts it back (nil when
// nothing was lifted).
func liftLowat(r *http.Request, n int64, d time.Duration) (restore func()) {
	if n < bulkMin || (d != 0 && d < bulkDeadline) {
		return nil
	}
	return bulkSend(r)
}
