package interop_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// nodeScript is the ali-oss suite, relative to this package's directory
// (where go test runs it).
const nodeScript = "node/suite.js"

// requireNode finds node and the ali-oss module that .ci/run installs into
// node/node_modules. Without them the test fails when GATEWAY_REQUIRE_NODE
// is 1 (CI) and is skipped otherwise, saying why: it never passes silently.
func requireNode(t *testing.T) string {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("GATEWAY_REQUIRE_NODE") == "1" {
			t.Fatalf("GATEWAY_REQUIRE_NODE=1 but %s: the ali-oss interop suite cannot run (bash .ci/run installs Node.js and ali-oss)", why)
		}
		t.Skipf("%s: skipping the ali-oss interop suite (bash .ci/run installs it; GATEWAY_REQUIRE_NODE=1 makes this a failure)", why)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "ali-oss", "package.json")); err != nil {
		missing("the ali-oss module is not installed in interop/node/node_modules (run: cd interop/node && npm ci)")
	}
	return node
}

// nodeResult is one operation's outcome as suite.js reports it.
type nodeResult struct {
	Op          string         `json:"op"`
	OK          bool           `json:"ok"`
	Unsupported string         `json:"unsupported"`
	Error       *nodeError     `json:"error"`
	Data        map[string]any `json:"data"`
}

type nodeError struct {
	Name    string `json:"name"`
	Code    string `json:"code"`
	Status  int    `json:"status"`
	Message string `json:"message"`
}

// nodeRun is one run of suite.js.
type nodeRun struct {
	Node    string       `json:"node"`
	AliOSS  string       `json:"aliOss"`
	Results []nodeResult `json:"results"`
}

func (r *nodeRun) result(op string) (nodeResult, bool) {
	for _, x := range r.Results {
		if x.Op == op {
			return x, true
		}
	}
	return nodeResult{}, false
}

// aliMode is one way of pointing ali-oss at the gateway.
type aliMode struct {
	name    string
	tls     bool // https:// to the TLS listener (ali-oss speaks HTTP/1.1 there too)
	viaIP   bool // endpoint http(s)://127.0.0.1:PORT, ali-oss's default addressing
	v4      bool // authorizationV4: true
	domains []string
}

// runNode runs suite.js against g in mode m and parses its result line.
func runNode(t *testing.T, node string, g *gateway, m aliMode, keyBase, only string) *nodeRun {
	t.Helper()
	srv := g.h1
	scheme := "http"
	if m.tls {
		srv, scheme = g.h2, "https"
	}
	u, _ := url.Parse(srv.URL)
	endpoint := scheme + "://" + domain + ":" + u.Port()
	cname := "1"
	if m.viaIP {
		endpoint, cname = scheme+"://"+u.Host, "0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, nodeScript)
	cmd.Env = append(os.Environ(),
		"GW_ENDPOINT="+endpoint,
		"GW_CNAME="+cname,
		"GW_RESOLVE="+domain,
		"GW_BUCKET="+bucket,
		"GW_REGION=oss-"+region,
		"GW_KEYBASE="+keyBase,
		"GW_ONLY="+only,
		"GW_V4="+map[bool]string{true: "1", false: "0"}[m.v4],
		"NODE_OPTIONS=",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("node %s: %v\nstdout:\n%s\nstderr:\n%s", nodeScript, err, stdout.String(), stderr.String())
	}
	t.Logf("node %s (%s, endpoint %s) took %v", nodeScript, m.name, endpoint, time.Since(start).Round(time.Millisecond))
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "INTEROP_RESULT "); ok {
			var run nodeRun
			if err := json.Unmarshal([]byte(line), &run); err != nil {
				t.Fatalf("result line: %v\n%s", err, line)
			}
			return &run
		}
	}
	t.Fatalf("node %s printed no INTEROP_RESULT line\nstdout:\n%s\nstderr:\n%s", nodeScript, stdout.String(), stderr.String())
	return nil
}

// TestAliOSS runs ali-oss (Node.js) through a private site: at the custom
// domain (cname: true) over HTTP and HTTPS, with V1 and V4 client
// signatures (both stripped), and at the fixed IP with ali-oss's default
// addressing. ali-oss speaks HTTP/1.1 only (urllib on Node's http and
// https modules), so there is no HTTP/2 mode.
func TestAliOSS(t *testing.T) {
	node := requireNode(t)
	modes := []aliMode{
		{name: "h1/domain"},
		{name: "h1/domain/v4sig", v4: true},
		{name: "h1-tls/domain", tls: true},
		// At an IP endpoint ali-oss sends Host: BUCKET.REGION.aliyuncs.com
		// (see TestAliOSSAtIPSendsTheBucketDomain), so the site must list it.
		{name: "h1/ip", viaIP: true, domains: []string{domain, "127.0.0.1", ossDomain}},
		{name: "h1-tls/ip", tls: true, viaIP: true, domains: []string{domain, "127.0.0.1", ossDomain}},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			runAliOSS(t, node, m)
		})
	}
}

func runAliOSS(t *testing.T, node string, m aliMode) {
	g := newGateway(t, gwOpts{domains: m.domains})
	const base = "node/"
	run := runNode(t, node, g, m, base, "")
	t.Logf("node %s, ali-oss %s", run.Node, run.AliOSS)

	// check runs one operation's subtest: suite.js's own verdict first,
	// then what the emulator stored.
	check := func(op string, verify func(t *testing.T)) {
		t.Run(op, func(t *testing.T) {
			r, ok := run.result(op)
			switch {
			case !ok:
				t.Fatalf("suite.js reported no %q", op)
			case r.Unsupported != "":
				t.Skipf("ali-oss cannot do this here: %s", r.Unsupported)
			case !r.OK:
				t.Fatalf("%s failed in ali-oss: %+v", op, r.Error)
			}
			if verify != nil {
				verify(t)
			}
		})
	}
	key := func(name string) string { return base + name }
	stored := func(t *testing.T, name, want string) {
		t.Helper()
		if got, ok := g.object(key(name)); !ok || string(got) != want {
			t.Fatalf("stored at %s: %q %v, want %q", sitePrefix+key(name), got, ok, want)
		}
	}

	check("put", func(t *testing.T) {
		puts := g.ossRequests(func(r ossemu.Request) bool { return r.Method == "PUT" && r.Key == sitePrefix+key("hello.txt") })
		if len(puts) != 1 || puts[0].Status != 200 || !puts[0].Signed {
			t.Fatalf("OSS saw %+v, want one PUT signed by the gateway", puts)
		}
	})
	check("get", nil)
	check("rangeGet", func(t *testing.T) {
		ranged := g.ossRequests(func(r ossemu.Request) bool {
			return r.Method == "GET" && r.Key == sitePrefix+key("hello.txt") && r.Header.Get("Range") == "bytes=6-9"
		})
		if len(ranged) != 1 || ranged[0].Status != 206 {
			t.Fatalf("OSS saw %+v, want one GET with Range bytes=6-9 answered 206", ranged)
		}
	})
	check("head", nil)
	check("noSuchKey", nil)
	check("keysAndMetadata", func(t *testing.T) { stored(t, "dir/a b+c%d 中文.txt", key("dir/a b+c%d 中文.txt")) })
	check("multipartUpload", func(t *testing.T) {
		r, _ := run.result("multipartUpload")
		got, ok := g.object(key("mp.bin"))
		sum := sha256.Sum256(got)
		if !ok || float64(len(got)) != r.Data["size"] || hex.EncodeToString(sum[:]) != r.Data["sha256"] {
			t.Fatalf("stored %d bytes (%v), ali-oss sent %v bytes", len(got), ok, r.Data["size"])
		}
		if parts := g.ossRequests(isUploadPart(key("mp.bin"))); len(parts) != 4 {
			t.Fatalf("OSS saw %d UploadPart requests, want 4: %v", len(parts), partNumbers(parts))
		}
		if ups := g.emu.Uploads(bucket); len(ups) != 0 {
			t.Fatalf("uploads left pending: %+v", ups)
		}
	})
	check("append", func(t *testing.T) { stored(t, "log.txt", "one,two") })
	check("copyRefused", func(t *testing.T) {
		if _, ok := g.object(key("copy.txt")); ok {
			t.Fatal("the copy was stored")
		}
		for _, r := range g.emu.Requests() {
			if r.Header.Get("X-Oss-Copy-Source") != "" || r.Key == sitePrefix+key("copy.txt") {
				t.Fatalf("the refused copy reached OSS: %+v", r)
			}
		}
	})
	check("signatureUrlGet", nil)
	check("signatureUrlPut", func(t *testing.T) { stored(t, "signed-v1.txt", "signed v1 put") })
	check("signatureUrlV4Get", nil)
	check("signatureUrlV4Put", func(t *testing.T) { stored(t, "signed-v4.txt", "signed v4 put") })
	check("delete", func(t *testing.T) {
		if _, ok := g.object(key("hello.txt")); ok {
			t.Fatal("the object is still stored")
		}
	})

	// Nothing reached OSS with the client's signature: the emulator knows
	// only the gateway's key, and every request it answered was signed.
	for _, r := range g.emu.Requests() {
		if !r.Signed || strings.Contains(r.RawQuery, clientAK) || strings.Contains(r.Header.Get("Authorization"), clientAK) {
			t.Errorf("OSS saw %s %s?%s signed=%v with the client's credentials", r.Method, r.RawPath, r.RawQuery, r.Signed)
		}
	}
	checkAliAddressing(t, g, m)
}

// checkAliAddressing asserts the Host and path ali-oss sent: the custom
// domain with its port and the key as the path (cname: true); at an IP
// endpoint, Host BUCKET.oss-REGION.aliyuncs.com (no port) and still the key
// as the path, the bucket not in it. Presigned URLs fetched by a plain
// client carry the URL's own host.
func checkAliAddressing(t *testing.T, g *gateway, m aliMode) {
	t.Helper()
	srv := g.h1
	if m.tls {
		srv = g.h2
	}
	u, _ := url.Parse(srv.URL)
	want := domain + ":" + u.Port()
	if m.viaIP {
		want = ossDomain
	}
	n := 0
	for _, r := range g.seenRequests() {
		if !strings.HasPrefix(r.UserAgent, "aliyun-sdk-nodejs/") {
			continue // a presigned URL fetched by Node's plain http client
		}
		n++
		if r.Host != want || !strings.HasPrefix(r.URI, "/node/") || r.Proto != "HTTP/1.1" || r.TLS != m.tls {
			t.Errorf("ali-oss sent %s %s Host %q over %s (TLS %v); want Host %q, the key as the path, HTTP/1.1 (TLS %v)", r.Method, r.URI, r.Host, r.Proto, r.TLS, want, m.tls)
		}
		if n == 1 {
			t.Logf("ali-oss sent: %s %s, Host: %s (%s, TLS server name %q)", r.Method, r.URI, r.Host, r.Proto, r.SNI)
		}
	}
	if n == 0 {
		t.Error("no request from ali-oss reached the gateway")
	}
}

// TestAliOSSAtIPSendsTheBucketDomain: pointed at an IP address, ali-oss
// connects to it but sends Host: BUCKET.oss-REGION.aliyuncs.com (its
// createRequest replaces the Host for IP endpoints) and the key alone as
// the path. A site that lists only the IP therefore never sees it: the
// gateway answers 421 MisdirectedRequest, and nothing reaches OSS.
func TestAliOSSAtIPSendsTheBucketDomain(t *testing.T) {
	node := requireNode(t)
	g := newGateway(t, gwOpts{domains: []string{domain, "127.0.0.1"}})
	run := runNode(t, node, g, aliMode{name: "h1/ip, IP only in domains", viaIP: true}, "node/", "put")
	r, ok := run.result("put")
	if !ok || r.OK || r.Error == nil || r.Error.Status != 421 || r.Error.Code != "MisdirectedRequest" {
		t.Fatalf("put at the IP with only the IP routed: %+v, want a 421 MisdirectedRequest", r)
	}
	seen := g.seenRequests()
	if len(seen) != 1 || seen[0].Host != ossDomain || seen[0].URI != "/node/hello.txt" {
		t.Fatalf("ali-oss sent %+v; want Host %q and path /node/hello.txt", seen, ossDomain)
	}
	if rs := g.emu.Requests(); len(rs) != 0 {
		t.Fatalf("OSS saw %+v", rs)
	}
}
