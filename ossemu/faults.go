package ossemu

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Fault makes matching requests misbehave the way a flaky network or an
// overloaded OSS does, so tests can prove retries, resumes and timeouts.
// Empty match fields match anything. A fault may combine Delay with one of
// Status, ResetBeforeHeaders or CutAfter.
type Fault struct {
	Host   string // "" = any; else the request Host exactly (port included if sent)
	Bucket string // "" = any
	Key    string // "" = any
	Method string // "" = any
	Times  int    // matching requests it applies to; 0 = every one

	// Status > 0 answers this status with an OSS XML error body (Code
	// BadGateway for 502, ServiceUnavailable 503, GatewayTimeout 504,
	// InternalError otherwise).
	Status int
	// ResetBeforeHeaders closes the connection with a TCP RST without
	// writing anything.
	ResetBeforeHeaders bool
	// CutAfter > 0 sends the normal headers (full Content-Length) and this
	// many body bytes, then aborts the connection.
	CutAfter int64
	// Delay waits before answering, stopping early if the client goes away.
	Delay time.Duration
}

// faultEntry is a registered fault and how many more times it applies.
type faultEntry struct {
	f         Fault
	remaining int
}

// faultSet is the ordered list of registered faults.
type faultSet struct {
	mu   sync.Mutex
	list []*faultEntry
}

// AddFault registers f after the existing faults and returns a function
// that removes it.
func (e *Emulator) AddFault(f Fault) (remove func()) {
	fe := &faultEntry{f: f, remaining: f.Times}
	s := &e.faults
	s.mu.Lock()
	s.list = append(s.list, fe)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.list {
			if x == fe {
				s.list = append(s.list[:i:i], s.list[i+1:]...)
				return
			}
		}
	}
}

// ClearFaults removes every fault.
func (e *Emulator) ClearFaults() {
	e.faults.mu.Lock()
	defer e.faults.mu.Unlock()
	e.faults.list = nil
}

// take returns the first fault matching the request that has uses left,
// and consumes one use.
func (s *faultSet) take(host, bucketName, key, method string) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, fe := range s.list {
		f := fe.f
		if (f.Host != "" && f.Host != host) || (f.Bucket != "" && f.Bucket != bucketName) ||
			(f.Key != "" && f.Key != key) || (f.Method != "" && f.Method != method) {
			continue
		}
		if f.Times > 0 {
			if fe.remaining <= 0 {
				continue
			}
			fe.remaining--
		}
		return f, true
	}
	return Fault{}, false
}

// applyFault carries out f; it reports whether the request should then be
// answered normally (possibly with its body cut).
func (c *call) applyFault(f Fault) (proceed bool) {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			return false
		}
	}
	switch {
	case f.ResetBeforeHeaders:
		c.reset()
		return false
	case f.Status > 0:
		c.fail(faultError(f.Status))
		return false
	case f.CutAfter > 0:
		c.w.cutAfter = f.CutAfter
	}
	return true
}

// faultError is the OSS error answered for an injected status.
func faultError(status int) *apiError {
	switch status {
	case http.StatusBadGateway:
		return &apiError{status, "BadGateway", "Injected fault: bad gateway.", nil}
	case http.StatusServiceUnavailable:
		return &apiError{status, "ServiceUnavailable", "Injected fault: service unavailable.", nil}
	case http.StatusGatewayTimeout:
		return &apiError{status, "GatewayTimeout", "Injected fault: gateway timeout.", nil}
	default:
		return &apiError{status, "InternalError", "Injected fault: internal error.", nil}
	}
}

// reset closes the client connection with SO_LINGER 0, so the client sees
// a TCP RST and no response at all.
func (c *call) reset() {
	conn, _, err := http.NewResponseController(c.w.ResponseWriter).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2, a recorder): abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
