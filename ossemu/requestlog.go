package ossemu

import (
	"net/http"
	"sync"
	"time"
)

// Request is one request the emulator received, so tests can assert on what
// the gateway actually sent upstream (host, path, signing, retries).
type Request struct {
	Method, Host, RawPath, RawQuery string
	Header                          http.Header // clone of the request headers
	Bucket, Key                     string
	Signed                          bool      // a V4 signature (header or query) was present and verified
	Status                          int       // status answered (0 if a fault reset the connection or the client left during a delay)
	Time                            time.Time // when it was received
}

// requestLog is the ordered log of requests.
type requestLog struct {
	mu      sync.Mutex
	entries []*Request
}

// start appends r as received and returns it for finish.
func (l *requestLog) start(r Request) *Request {
	p := &r
	l.mu.Lock()
	l.entries = append(l.entries, p)
	l.mu.Unlock()
	return p
}

// setStatus records the status of a logged request. It runs before the
// status is written, so a client that has its response sees it logged.
func (l *requestLog) setStatus(p *Request, status int) {
	l.mu.Lock()
	p.Status = status
	l.mu.Unlock()
}

// setSigned records that a logged request carried a verified signature.
func (l *requestLog) setSigned(p *Request) {
	l.mu.Lock()
	p.Signed = true
	l.mu.Unlock()
}

// Requests returns a copy of the log of every request received, in order.
func (e *Emulator) Requests() []Request {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	out := make([]Request, len(e.log.entries))
	for i, p := range e.log.entries {
		out[i] = *p
		out[i].Header = p.Header.Clone()
	}
	return out
}

// ResetRequests empties the request log.
func (e *Emulator) ResetRequests() {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	e.log.entries = nil
}
