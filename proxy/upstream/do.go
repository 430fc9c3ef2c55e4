package upstream

import (
	"io"
	"net/http"
	"time"
)

// Client is the proxy's transport step: it sends one request to OSS and
// returns the response with its headers read and a body the caller streams
// with Stream. It is the only way the proxy reaches OSS, whichever
// transport carries the bytes.
type Client struct {
	rt    http.RoundTripper
	stall time.Duration
}

// NewClient sends requests with rt (New's transport, or one a test
// injects). stall bounds the silence in a streamed body: an OSS body that
// makes no progress for that long fails with errStalled (0 = unbounded).
func NewClient(rt http.RoundTripper, stall time.Duration) *Client {
	return &Client{rt: rt, stall: stall}
}

// Do sends req. A body that arrived whole with the headers is returned as
// it is; one still on the wire gets the stall guard.
func (c *Client) Do(req *http.Request) (*http.Response, error) {
	resp, err := c.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if c.stall > 0 && resp.Body != http.NoBody && !inMemory(resp.Body) {
		resp.Body = newStallGuard(resp.Body, c.stall)
	}
	return resp, nil
}

// inMemory reports a body that arrived whole with its headers, which no
// stall can hold up.
func inMemory(body io.ReadCloser) bool {
	b, ok := body.(*upBody)
	return ok && b.inMemory
}
