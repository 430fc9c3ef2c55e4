package main

// The harness for tests that run the real binary: it is built once, each
// test starts its own emulator and gateway (on 127.0.0.1 only) and shares
// nothing with the others but the binary. Also here: the config builders,
// metrics and access log readers, and the slow and raw clients the
// resilience tests share.
//
// Timing: the machine these run on is shared and small, so no test asserts
// a tight wall-clock bound. Upper bounds exist only to turn a hang into a
// failure, and they are generous. What the gateway writes to stdout and
// stderr reaches the test through a pipe, after whatever the test can see
// over the network: wait for a line (waitStdout, waitStderr, waitAccessLine,
// testkit.Eventually), never read once right after the action.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

// gatewayBin is the binary built once for every test in this package: what
// these tests start is what operators run.
var gatewayBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "gateway-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gatewayBin = filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", gatewayBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build gateway:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		// A port just closed can be handed out again at once: never give
		// the same one twice in a run, or two listeners of one config clash.
		if _, dup := handedPorts.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
}

// handedPorts are the addresses freePort has returned in this test run.
var handedPorts sync.Map

// binResult is how one run of the binary to completion ended.
type binResult struct {
	code           int
	stdout, stderr string
}

// runBin runs the gateway binary with args in dir ("" = here), with env
// added to the environment, and returns its exit status and output: for
// the commands that end on their own (check, cname, config, reload...).
func runBin(t *testing.T, dir string, env []string, args ...string) binResult {
	t.Helper()
	cmd := exec.Command(gatewayBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	res := binResult{stdout: out.String(), stderr: errb.String()}
	switch {
	case err == nil:
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	t.Logf("gateway %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), res.code, res.stdout, res.stderr)
	return res
}

// process is a running gateway binary.
type process struct {
	cmd    *exec.Cmd
	stdout *testkit.Buffer
	stderr *testkit.Buffer
	http   string
	admin  string
}

// startGateway writes cfg (with HTTPADDR and ADMINADDR replaced by free
// ports) and runs the binary on it until it is ready. The process is
// killed when the test ends, and its stderr logged if the test failed.
func startGateway(t *testing.T, cfg string, env ...string) *process {
	t.Helper()
	return startGatewayOn(t, cfg, freePort(t), env...)
}

// startGatewayOn is startGateway with the HTTP address chosen by the caller
// (an ACME server must know it before the gateway starts).
func startGatewayOn(t *testing.T, cfg, httpAddr string, env ...string) *process {
	t.Helper()
	p := &process{stdout: &testkit.Buffer{}, stderr: &testkit.Buffer{}, http: httpAddr, admin: freePort(t)}
	path := filepath.Join(t.TempDir(), "gateway.toml")
	cfg = strings.NewReplacer("HTTPADDR", p.http, "ADMINADDR", p.admin).Replace(cfg)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(gatewayBin, "run", "-config", path)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		if t.Failed() {
			t.Logf("gateway stderr:\n%s", p.stderr.String())
		}
	})
	if !testkit.Within(20*time.Second, func() bool {
		resp, err := http.Get("http://" + p.admin + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}) {
		t.Fatalf("gateway did not start:\n%s", p.stderr.String())
	}
	return p
}

// get sends a GET for path to the gateway's HTTP listener with Host host
// and returns the answer with its whole body.
func (p *process) get(t *testing.T, host, path string, hdr http.Header) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.http+path, nil)
	req.Host = host
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// waitStdout waits for s to appear on the gateway's stdout (the access
// log), which follows the answer it describes through a pipe.
func (p *process) waitStdout(t *testing.T, s string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%q on the gateway's stdout", s), func() bool { return strings.Contains(p.stdout.String(), s) })
}

// waitStderr waits for s to appear on the gateway's stderr (its own log),
// which reaches the test through a pipe after the effect it reports.
func (p *process) waitStderr(t *testing.T, s string) {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, fmt.Sprintf("%q on the gateway's stderr", s), func() bool { return strings.Contains(p.stderr.String(), s) })
}

// startEmulator serves a fresh emulator for region cn-hangzhou, the one
// every config here names, on loopback until the test ends.
func startEmulator(t *testing.T) (*ossemu.Emulator, string) {
	t.Helper()
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	return emu, testkit.Serve(t, emu.Serve)
}

// clientRequests are the requests the emulator saw for client traffic: the
// gateway's readiness probes (HEAD of a bucket root) are left out.
func clientRequests(emu *ossemu.Emulator) []ossemu.Request {
	var out []ossemu.Request
	for _, r := range emu.Requests() {
		if r.Header.Get("User-Agent") != "oss-gateway-probe" {
			out = append(out, r)
		}
	}
	return out
}

// siteConfig is a whole config with one site, files.test on bucket bkt,
// for fmt.Sprintf with the credentials source, the emulator's address and
// the site's access.
const siteConfig = `
[server]
http_listen = "HTTPADDR"
https_listen = ""

[admin]
listen = "ADMINADDR"

[credentials]
source = "%s"

[[site]]
name = "files"
domains = ["files.test"]
bucket = "bkt"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "%s"
tls = "off"
`

// gatewayConfig is a config with one HTTP listener and an admin listener
// (HTTPADDR and ADMINADDR, filled in by startGateway), server holding extra
// [server] keys, and the given [[site]] tables.
func gatewayConfig(server string, sites ...string) string {
	return fmt.Sprintf(`
[server]
http_listen = "HTTPADDR"
https_listen = ""
%s

[admin]
listen = "ADMINADDR"

[credentials]
source = "env"
`, server) + strings.Join(sites, "\n")
}

// siteTable is a [[site]] on bucket reached at endpoint; extra is appended
// inside the site (keys, then sub-tables such as [site.retry]).
func siteTable(name, domain, bucket, endpoint, access, extra string) string {
	return fmt.Sprintf(`
[[site]]
name = %q
domains = [%q]
bucket = %q
region = "cn-hangzhou"
endpoint = %q
access = %q
tls = "off"
%s
`, name, domain, bucket, endpoint, access, extra)
}

// testCredentials are the AccessKey the emulator accepts and the gateway
// signs with, for private sites.
var testCredentials = []string{"OSS_ACCESS_KEY_ID=LTAIresilience", "OSS_ACCESS_KEY_SECRET=resilience-secret"}

// addTestCredential makes emu accept testCredentials.
func addTestCredential(emu *ossemu.Emulator) {
	emu.AddCredential("LTAIresilience", "resilience-secret", "")
}

// scrape returns the gateway's /metrics exposition.
func scrape(t *testing.T, admin string) string {
	t.Helper()
	r, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(r.Body)
	return string(b)
}

// grep returns the lines of s that contain sub, for failure messages.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// metricValue returns the value of one series (name and labels exactly as
// the exposition writes them, labels sorted) in a /metrics scrape.
func metricValue(m, series string) (float64, bool) {
	for _, line := range strings.Split(m, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			return v, err == nil
		}
	}
	return 0, false
}

// accessLog returns the access log lines (JSON, one per request) written
// so far.
func accessLog(p *process) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.stdout.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "request" {
			out = append(out, m)
		}
	}
	return out
}

// accessLine returns the first access log line for key, if any.
func accessLine(p *process, key string) (map[string]any, bool) {
	for _, m := range accessLog(p) {
		if m["key"] == key {
			return m, true
		}
	}
	return nil, false
}

// waitAccessLine waits up to d for the access log line of key and returns
// it: the line is written after the request ends and reaches the test
// through a pipe.
func waitAccessLine(t *testing.T, p *process, key string, d time.Duration) map[string]any {
	t.Helper()
	var line map[string]any
	testkit.Eventually(t, d, "the access log line for "+key, func() bool {
		var ok bool
		line, ok = accessLine(p, key)
		return ok
	})
	return line
}

// synthBlocks[h][k] is byte k of a 256-byte block of synthetic content whose
// high part is h: SyntheticByte(i) is byte(i) ^ high(i>>8).
var synthBlocks = func() (b [256][256]byte) {
	for h := range 256 {
		for k := range 256 {
			b[h][k] = byte(k) ^ byte(h)
		}
	}
	return b
}()

// synthMismatch returns the index in b of the first byte that differs from
// the synthetic object's content at offset off, or -1. It compares whole
// blocks with bytes.Equal, so checking 64 MiB stays cheap under -race.
func synthMismatch(off int64, b []byte) int {
	for j := 0; j < len(b); {
		i := off + int64(j)
		lo := int(byte(i))
		hi := ossemu.SyntheticByte(i - int64(lo))
		n := min(256-lo, len(b)-j)
		if !bytes.Equal(b[j:j+n], synthBlocks[hi][lo:lo+n]) {
			for k := range n {
				if b[j+k] != ossemu.SyntheticByte(i+int64(k)) {
					return j + k
				}
			}
		}
		j += n
	}
	return -1
}

// smallWindowDialer makes a dialer whose sockets have a small receive buffer and
// announce a small MSS, so the kernel cannot absorb a download the client
// reads slowly (or not at all) and the gateway's writes really block. The
// MSS matters most: on loopback it is 64 KiB, and Linux sizes the sender's
// buffer in segments, so the gateway's socket would grow to 4 MiB and
// swallow a 2 MiB body whole. With 2048 the gateway's send buffer settles
// around 1.5 MiB, as it would for a real client on a fast path: big enough
// to matter, too small to hide the download.
func smallWindowDialer() *net.Dialer {
	return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = errors.Join(
				syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10),
				syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, 2048))
		})
		if err != nil {
			return err
		}
		return serr
	}}
}

// rawGET opens a connection with a small receive buffer, sends a GET for
// path on host and reads the response headers. The caller reads the body at
// its own pace and closes conn.
func rawGET(t *testing.T, addr, host, path string) (net.Conn, *http.Response) {
	t.Helper()
	c, err := smallWindowDialer().Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, host)
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, resp
}

// pacedRead reads body at about rate bytes per second (0 = as fast as it
// comes) in reads of up to chunk bytes, checking every byte against the
// synthetic content from offset 0, until the body ends or breaks.
// onProgress, when set, sees the running total after each read. It returns
// the bytes read, the read error (nil at a clean end, io.ErrUnexpectedEOF or
// a reset when the body was cut), and the offset of the first wrong byte
// (-1 when none).
func pacedRead(body io.Reader, rate float64, chunk int, onProgress func(int64)) (n int64, err error, bad int64) {
	buf := make([]byte, chunk)
	start := time.Now()
	bad = -1
	for {
		m, rerr := body.Read(buf)
		if i := synthMismatch(n, buf[:m]); i >= 0 && bad < 0 {
			bad = n + int64(i)
		}
		n += int64(m)
		if onProgress != nil && m > 0 {
			onProgress(n)
		}
		if rerr == io.EOF {
			return n, nil, bad
		}
		if rerr != nil {
			return n, rerr, bad
		}
		if rate > 0 {
			if d := time.Duration(float64(n)/rate*float64(time.Second)) - time.Since(start); d > 0 {
				time.Sleep(d)
			}
		}
	}
}
