package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/oss-gateway/gateway/proxy/upstream"
)

func TestConnectionListed(t *testing.T) {
	for _, tc := range []struct {
		conn []string
		want bool // names headers to drop
	}{
		{nil, false},
		{[]string{"keep-alive"}, false},
		{[]string{"Keep-Alive, close"}, false},
		{[]string{"close", " keep-alive ,"}, false},
		{[]string{"X-Private-Hop"}, true},
		{[]string{"keep-alive, X-Private-Hop"}, true},
		{[]string{"close", "upgrade"}, true},
		{[]string{"keep-alive-x"}, true},
	} {
		if got := connectionListed(tc.conn) != nil; got != tc.want {
			t.Errorf("connectionListed(%q) names headers: %v, want %v", tc.conn, got, tc.want)
		}
	}
}

// TestUpstreamFailure holds the one mapping from a failed exchange with OSS
// to the client's answer and the retry reason.
func TestUpstreamFailure(t *testing.T) {
	live := context.Background()
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	broken := &uploadBody{}
	broken.failed.Store(errIncompleteBody)
	dialRefused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	for _, tc := range []struct {
		name       string
		ctx        context.Context
		err        error
		upload     *uploadBody
		want       *ossError
		wantReason string
	}{
		{"refused dial", live, dialRefused, nil, errBadGateway, "dial"},
		{"refused, unwrapped", live, fmt.Errorf("x: %w", syscall.ECONNREFUSED), nil, errBadGateway, "dial"},
		{"dial timeout", live, &net.OpError{Op: "dial", Err: os.ErrDeadlineExceeded}, nil, errGatewayTimeout, "timeout"},
		{"header timeout", live, context.DeadlineExceeded, nil, errGatewayTimeout, "timeout"},
		{"reset", live, &net.OpError{Op: "read", Err: syscall.ECONNRESET}, nil, errBadGateway, "reset"},
		{"closed early", live, io.ErrUnexpectedEOF, nil, errBadGateway, "reset"},
		{"client left", gone, errors.New("context canceled"), nil, errClientGone, ""},
		{"client's upload broke", live, &upstream.ClientBodyError{Err: io.ErrUnexpectedEOF}, broken, errIncompleteBody, ""},
		{"upload intact, OSS reset", live, syscall.ECONNRESET, &uploadBody{}, errBadGateway, "reset"},
	} {
		got, reason := upstreamFailure(tc.ctx, tc.err, tc.upload)
		if got != tc.want || reason != tc.wantReason {
			t.Errorf("%s: %v %q, want %v %q", tc.name, got.code, reason, tc.want.code, tc.wantReason)
		}
	}
}
