// Package upstream is how the gateway talks to OSS: where a site's
// endpoint keyword or URL points (Resolve, ServiceHost), the HTTP/1.1
// transports that carry the bytes (New: the gateway's own client or
// net/http's, by upstream_transport), the transport step every request
// takes (Client.Do, which also guards a streamed body against stalls), and
// the way an answer's body reaches the client (Stream: socket to socket
// with splice(2) where both ends allow it, pooled buffers otherwise).
//
// The proxy decides what to ask OSS and what to do with the answer; this
// package owns everything about connections: pooling keyed by all that
// makes one distinct, the framing of requests and responses, which
// connection may be reused, and which side of a broken copy failed. Nothing
// outside it reads a connection's buffers.
package upstream
