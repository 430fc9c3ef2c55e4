// Package interop_test proves that real OSS clients work through the
// gateway: the official Go SDK v2 (this package) and ali-oss for Node.js
// (node/suite.js, run by alioss_test.go). Every test builds an OSS emulator
// and a gateway in front of it, both on 127.0.0.1, with one private site,
// and checks each client operation against what the emulator stored.
package interop_test

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/proxy"
)

const (
	region = "cn-hangzhou"
	bucket = "prv-bucket"
	// The gateway's own credentials, the only ones the emulator accepts.
	gwAK = "LTAIgatewaykey001"
	gwSK = "gateway-secret-0123456789"
	// A client's credentials, unknown to the emulator: a request that
	// reached OSS signed with them would be refused there.
	clientAK = "LTAIclientkey0001"
	clientSK = "client-secret-abcdef"
	// domain is the site's custom domain; clients resolve it to the test
	// listener themselves.
	domain = "files.test"
	// sitePrefix confines the site: every key a client names lands under it.
	sitePrefix = "interop/"
	// ossDomain is the bucket's own OSS domain for region: ali-oss sends it
	// as the Host when its endpoint is an IP address.
	ossDomain = bucket + ".oss-" + region + ".aliyuncs.com"
)

// seenRequest is one request as it reached the gateway from the client.
type seenRequest struct {
	Method, Host, URI, Proto, UserAgent string
	TLS                                 bool
	SNI                                 string // TLS server name the client sent
}

// gateway is an emulator and a gateway in front of it, served over plain
// HTTP/1.1 (h1) and over TLS with HTTP/2 offered (h2).
type gateway struct {
	t    testing.TB
	emu  *ossemu.Emulator
	h1   *httptest.Server
	h2   *httptest.Server
	logs *testkit.Buffer

	mu   sync.Mutex
	seen []seenRequest
}

// gwOpts tune newGateway.
type gwOpts struct {
	domains []string // the site's domains; nil = files.test and 127.0.0.1
}

// newGateway starts an emulator with one private bucket and a gateway with
// one private site over it: every method, prefix interop/, path_style.
func newGateway(t testing.TB, o gwOpts) *gateway {
	t.Helper()
	emu := ossemu.New(ossemu.Options{Region: region})
	emu.AddCredential(gwAK, gwSK, "")
	emu.CreateBucket(bucket, ossemu.Private)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	domains := o.domains
	if domains == nil {
		domains = []string{domain, "127.0.0.1"}
	}
	quoted := make([]string, len(domains))
	for i, d := range domains {
		quoted[i] = `"` + d + `"`
	}
	server := "https_listen = \"\"\nhttp_listen = \"127.0.0.1:0\"\nupstream_header_timeout = \"5s\"\n"
	// .ci/run may run tests once per upstream client, as for ./proxy/.
	if mode := os.Getenv("GATEWAY_TEST_UPSTREAM_TRANSPORT"); mode != "" {
		server += "upstream_transport = \"" + mode + "\"\n"
	}
	text := "[server]\n" + server + `
[credentials]
source = "env"

[[site]]
name = "files"
domains = [` + strings.Join(quoted, ", ") + `]
bucket = "` + bucket + `"
region = "` + region + `"
endpoint = "http://` + ln.Addr().String() + `"
access = "private"
prefix = "` + sitePrefix + `"
path_style = true
tls = "off"
methods = ["GET", "HEAD", "PUT", "POST", "DELETE"]

[site.limits]
per_ip_rps = 0
site_rps = 0
`
	cfg, err := config.Parse("interop.toml", []byte(text))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	logs := &testkit.Buffer{}
	h, err := proxy.New(cfg, proxy.Options{
		Metrics:     proxy.NewMetrics(prometheus.NewRegistry()),
		AccessLog:   slog.New(slog.NewJSONHandler(logs, nil)),
		Credentials: credentials.NewStaticCredentialsProvider(gwAK, gwSK),
	})
	if err != nil {
		t.Fatal(err)
	}
	g := &gateway{t: t, emu: emu, logs: logs}
	// The wrapper only notes what the client sent; the gateway's handler
	// gets the request and the ResponseWriter untouched.
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen := seenRequest{Method: r.Method, Host: r.Host, URI: r.RequestURI, Proto: r.Proto, UserAgent: r.UserAgent(), TLS: r.TLS != nil}
		if r.TLS != nil {
			seen.SNI = r.TLS.ServerName
		}
		g.mu.Lock()
		g.seen = append(g.seen, seen)
		g.mu.Unlock()
		h.ServeHTTP(w, r)
	})
	g.h1 = httptest.NewServer(wrapped)
	t.Cleanup(g.h1.Close)
	g.h2 = httptest.NewUnstartedServer(wrapped)
	g.h2.EnableHTTP2 = true
	g.h2.StartTLS()
	t.Cleanup(g.h2.Close)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("gateway access log:\n%s", g.logs.String())
		}
	})
	return g
}

// seenRequests returns what reached the gateway so far.
func (g *gateway) seenRequests() []seenRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]seenRequest(nil), g.seen...)
}

// object returns what the emulator stores under the site key key.
func (g *gateway) object(key string) ([]byte, bool) {
	return g.emu.Object(bucket, sitePrefix+key)
}

// proto names how a client reaches the gateway.
type proto string

const (
	h1 proto = "h1" // HTTP/1.1 over plain TCP
	h2 proto = "h2" // HTTP/2 over TLS
)

// server is the test server for p.
func (g *gateway) server(p proto) *httptest.Server {
	if p == h2 {
		return g.h2
	}
	return g.h1
}

// protoRecorder counts the answers a client got, and how many of them came
// over HTTP/2.
type protoRecorder struct {
	rt      http.RoundTripper
	mu      sync.Mutex
	h2, all int
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(r)
	if err == nil {
		p.mu.Lock()
		p.all++
		if resp.ProtoMajor == 2 {
			p.h2++
		}
		p.mu.Unlock()
	}
	return resp, err
}

func (p *protoRecorder) counts() (h2, all int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.h2, p.all
}

// transport is a client transport for p that sends every connection to the
// test listener, whatever host the URL names (custom domain included), as
// DNS pointing the domain at the gateway would.
func (g *gateway) transport(p proto) *http.Transport {
	addr := g.server(p).Listener.Addr().String()
	return &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
		ForceAttemptHTTP2: p == h2,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
}

// baseURL is the URL a client uses to reach the gateway over p: the custom
// domain (on the default port, as in production) or the fixed IP.
func (g *gateway) baseURL(p proto, viaIP bool) string {
	scheme := "http"
	if p == h2 {
		scheme = "https"
	}
	if viaIP {
		u, _ := url.Parse(g.server(p).URL)
		return scheme + "://" + u.Host
	}
	return scheme + "://" + domain
}

// ossRequests are the emulator's logged requests that satisfy keep.
func (g *gateway) ossRequests(keep func(ossemu.Request) bool) []ossemu.Request {
	var out []ossemu.Request
	for _, r := range g.emu.Requests() {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// isUploadPart reports whether r is an UploadPart of key.
func isUploadPart(key string) func(ossemu.Request) bool {
	return func(r ossemu.Request) bool {
		q, _ := url.ParseQuery(r.RawQuery)
		return r.Method == http.MethodPut && r.Key == sitePrefix+key && q.Has("partNumber") && q.Has("uploadId")
	}
}

// partNumbers lists the partNumber of each request, in log order.
func partNumbers(rs []ossemu.Request) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		q, _ := url.ParseQuery(r.RawQuery)
		out[i] = q.Get("partNumber")
	}
	return out
}
