package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossemu"
)

func TestBinaryServesSignedRequestsAndStopsCleanly(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.AddCredential("LTAIbinary", "binary-secret", "")
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("from the binary"), nil)

	p := startGateway(t, fmt.Sprintf(siteConfig, "env", emuAddr, "private"),
		"OSS_ACCESS_KEY_ID=LTAIbinary", "OSS_ACCESS_KEY_SECRET=binary-secret")
	resp, body := p.get(t, "files.test", "/a.txt", nil)
	if resp.StatusCode != 200 || string(body) != "from the binary" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if !clientRequests(emu)[0].Signed {
		t.Fatal("not signed")
	}
	ready, _ := http.Get("http://" + p.admin + "/readyz")
	ready.Body.Close()
	if ready.StatusCode != 200 {
		t.Fatalf("readyz %d", ready.StatusCode)
	}
	// The request is counted once its handler returns, which may be just
	// after the client has read the whole answer.
	var mb []byte
	testkit.Eventually(t, 10*time.Second, "the request counted in /metrics", func() bool {
		mb = []byte(scrape(t, p.admin))
		return strings.Contains(string(mb), `gateway_requests_total{code="200",method="GET",site="files"} 1`)
	})
	for _, want := range []string{
		`gateway_requests_total{code="200",method="GET",site="files"} 1`,
		`gateway_build_info{goversion="go`,
		`gateway_upstream_requests_total{code="200",endpoint="primary",site="files"} 1`,
		"gateway_request_duration_seconds_bucket",
		"gateway_response_bytes_total",
		"go_goroutines",
		"process_resident_memory_bytes",
	} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(mb), "binary-secret") {
		t.Fatal("secret leaked into metrics")
	}

	// The access log is one JSON line per request on stdout; it follows the
	// answer and reaches the test through a pipe.
	testkit.Eventually(t, 10*time.Second, "the access log line on stdout", func() bool { return strings.HasSuffix(p.stdout.String(), "\n") })
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(p.stdout.String())), &line); err != nil {
		t.Fatalf("access log %q: %v", p.stdout.String(), err)
	}
	if line["site"] != "files" || line["status"] != float64(200) || line["upstream_request_id"] == "" {
		t.Fatalf("access log line %v", line)
	}

	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr.String())
	}
	// Wait has copied everything the process wrote: all of both logs.
	if strings.Contains(p.stderr.String(), "binary-secret") || strings.Contains(p.stdout.String(), "binary-secret") {
		t.Fatal("secret leaked into the logs")
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(gatewayBin, "version").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^gateway \S+ commit \S+ go1\.\d+`).Match(out) {
		t.Fatalf("version output %q", out)
	}
}

func TestBadConfigExits2WithOneLinePerProblem(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.toml")
	os.WriteFile(path, []byte(`[server]
http_listen = "127.0.0.1:0"
bogus = 1

[[site]]
name = "a"
domains = ["*.example.com"]
bucket = "Bad_Bucket"
region = "cn-hangzhou"
`), 0o600)
	cmd := exec.Command(gatewayBin, "run", "-config", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("exit %v, want status 2", err)
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, want := range []string{"bad.toml:3: server.bogus", "site[0].domains[0]", "site[0].bucket"} {
		found := false
		for _, l := range lines {
			found = found || strings.Contains(l, want)
		}
		if !found {
			t.Errorf("no line mentions %q:\n%s", want, stderr.String())
		}
	}
	for _, args := range [][]string{{"run", "-nosuchflag"}, {"frobnicate"}, {"run", "-config", filepath.Join(dir, "missing.toml")}} {
		if err := exec.Command(gatewayBin, args...).Run(); err == nil || err.(*exec.ExitError).ExitCode() != 2 {
			t.Errorf("%v: exit %v, want 2", args, err)
		}
	}
}

// TestDemoCurlLinesWorkAsPrinted runs `gateway demo` and each curl line it
// prints, exactly as printed, through a shell; then the Go SDK program it
// prints, as printed, with go run.
func TestDemoCurlLinesWorkAsPrinted(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	gw, admin := freePort(t), freePort(t)
	cmd := exec.Command(gatewayBin, "demo", "-listen", gw, "-admin", admin)
	stdout, _ := cmd.StdoutPipe()
	var stderr testkit.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	sc := bufio.NewScanner(stdout)
	var curls []string
	var program strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "curl ") {
			curls = append(curls, line)
		}
		if line == "package main" || program.Len() > 0 {
			program.WriteString(line + "\n")
			if line == "}" && strings.Contains(program.String(), "func main()") {
				break
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	if len(curls) < 8 {
		t.Fatalf("demo printed %d curl lines:\n%s", len(curls), stderr.String())
	}
	// What each printed line must show, in order.
	want := []string{"200 OK", "200 OK", "403 Forbidden", "206 1048576", "421 Misdirected Request", "400 Bad Request", "gateway_requests_total{", "200 OK"}
	for i, c := range curls {
		out, err := exec.Command("sh", "-c", c).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", c, err, out)
		}
		if i < len(want) && !strings.Contains(string(out), want[i]) {
			t.Errorf("%s\nprinted:\n%s\nwant it to contain %q", c, out, want[i])
		}
	}

	// The Go SDK program, in this module (which requires the SDK).
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	defer os.Remove("testdata") // only if nothing else is in it
	dir, err := os.MkdirTemp("testdata", "demosdk-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(program.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	run := exec.Command("go", "run", ".")
	run.Dir = dir
	out, err := run.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "uploaded in parts and read back 360000 bytes") {
		t.Fatalf("the demo's Go SDK program: %v\n%s\n%s", err, out, program.String())
	}
	t.Logf("go run of the printed program: %s", out)
}

// TestStreaming1GiBKeepsRSSLow streams a 1 GiB object through the binary
// and reads the gateway's peak RSS (VmHWM) from /proc.
func TestStreaming1GiBKeepsRSSLow(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB stream")
	}
	const size = 1 << 30
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutSyntheticObject("bkt", "huge.bin", size, "application/octet-stream")
	p := startGateway(t, fmt.Sprintf(siteConfig, "env", emuAddr, "public"))

	req, _ := http.NewRequest("GET", "http://"+p.http+"/huge.bin", nil)
	req.Host = "files.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n int64
	buf := make([]byte, 1<<20)
	for {
		m, err := io.ReadFull(resp.Body, buf)
		// Spot-check the first bytes of every MiB against the content.
		for i := 0; i < 64 && i < m; i++ {
			if buf[i] != ossemu.SyntheticByte(n+int64(i)) {
				t.Fatalf("byte %d differs", n+int64(i))
			}
		}
		n += int64(m)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if n != size {
		t.Fatalf("received %d bytes, want %d", n, size)
	}
	hwm := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("gateway peak RSS after streaming 1 GiB: %.1f MiB", float64(hwm)/(1<<20))
	if hwm > 64<<20 {
		t.Fatalf("peak RSS %d bytes exceeds 64 MiB", hwm)
	}
}

// peakRSS reads VmHWM, the process's peak resident set, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// TestECSRAMRoleCredentialsRefresh runs the binary with credentials from
// the ECS metadata service, played by a loopback HTTP proxy (the SDK's
// metadata client honours HTTP_PROXY), with credentials that expire within
// seconds: the gateway must fetch new ones and keep signing.
func TestECSRAMRoleCredentialsRefresh(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.PutObject("bkt", "a.txt", []byte("ecs"), nil)
	var fetches atomic.Int32
	meta := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Host != "100.100.100.200" {
			http.Error(w, "unexpected host", 502)
			return
		}
		switch r.URL.Path {
		case "/latest/meta-data/ram/security-credentials/":
			io.WriteString(w, "gateway-role")
		case "/latest/meta-data/ram/security-credentials/gateway-role":
			n := fetches.Add(1)
			ak, sk, tok := fmt.Sprintf("STS.key%d", n), fmt.Sprintf("secret%d", n), fmt.Sprintf("token%d", n)
			emu.AddCredential(ak, sk, tok)
			json.NewEncoder(w).Encode(map[string]any{
				"AccessKeyId": ak, "AccessKeySecret": sk, "SecurityToken": tok,
				"Expiration": time.Now().Add(2 * time.Second).UTC().Format(time.RFC3339), "Code": "Success",
			})
		default:
			http.NotFound(w, r)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go meta.Serve(ln)
	defer meta.Close()

	p := startGateway(t, fmt.Sprintf(siteConfig, "ecs_ram_role", emuAddr, "private"),
		"HTTP_PROXY=http://"+ln.Addr().String(), "http_proxy=http://"+ln.Addr().String(), "NO_PROXY=", "no_proxy=")
	for i := 0; i < 2; i++ {
		resp, body := p.get(t, "files.test", "/a.txt", nil)
		if resp.StatusCode != 200 || string(body) != "ecs" {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, body)
		}
		if i == 0 {
			time.Sleep(3 * time.Second) // past the first credentials' expiry
		}
	}
	reqs := clientRequests(emu)
	first, last := reqs[0].Header.Get("X-Oss-Security-Token"), reqs[len(reqs)-1].Header.Get("X-Oss-Security-Token")
	if fetches.Load() < 2 || first == last || !reqs[len(reqs)-1].Signed {
		t.Fatalf("credentials not refreshed: %d fetches, tokens %q then %q", fetches.Load(), first, last)
	}
}

func TestReloadOnSIGHUPAndAdminAllowlist(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("a"), nil)
	cfg := fmt.Sprintf(siteConfig, "env", emuAddr, "public")
	p := startGateway(t, cfg)
	path := p.cmd.Args[len(p.cmd.Args)-1]

	resp, _ := p.get(t, "other.test", "/a.txt", nil)
	if resp.StatusCode != 421 {
		t.Fatalf("before reload: %d", resp.StatusCode)
	}
	written, _ := os.ReadFile(path)
	grown := strings.Replace(string(written), `domains = ["files.test"]`, `domains = ["files.test", "other.test"]`, 1)
	os.WriteFile(path, []byte(grown), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testkit.Eventually(t, 10*time.Second, "other.test served after the reload", func() bool { r, _ := p.get(t, "other.test", "/a.txt", nil); return r.StatusCode == 200 })

	// A broken file keeps the running config and counts an error.
	os.WriteFile(path, []byte(grown+"\nnonsense = true\n"), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	p.waitStderr(t, "config reload failed")
	if r, _ := p.get(t, "other.test", "/a.txt", nil); r.StatusCode != 200 {
		t.Fatalf("bad reload changed the config: %d", r.StatusCode)
	}
	m := scrape(t, p.admin)
	if !strings.Contains(m, `gateway_config_reloads_total{result="error"} 1`) || !strings.Contains(m, `gateway_config_reloads_total{result="success"} 1`) {
		t.Fatalf("reload metrics:\n%s", grep(m, "reloads"))
	}

	// Admin paths are refused to addresses outside admin.allow, after a reload too.
	os.WriteFile(path, []byte(strings.Replace(grown, "[admin]", "[admin]\nallow = [\"10.0.0.0/8\"]", 1)), 0o600)
	p.cmd.Process.Signal(syscall.SIGHUP)
	testkit.Eventually(t, 10*time.Second, "/metrics refused after the admin.allow reload", func() bool {
		r, err := http.Get("http://" + p.admin + "/metrics")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 403
	})
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		r, err := http.Get("http://" + p.admin + path)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != 403 {
			t.Errorf("%s from outside admin.allow: %d", path, r.StatusCode)
		}
	}
}

func TestNotReadyWithoutCredentialsButStillServesPublicSites(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.Private)
	emu.CreateBucket("pub", ossemu.PublicRead)
	emu.PutObject("pub", "a.txt", []byte("a"), nil)
	cfg := fmt.Sprintf(siteConfig, "env", emuAddr, "private") + fmt.Sprintf(`
[[site]]
name = "pub"
domains = ["pub.test"]
bucket = "pub"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "public"
tls = "off"
`, emuAddr)
	p := startGateway(t, cfg, "OSS_ACCESS_KEY_ID=", "OSS_ACCESS_KEY_SECRET=")
	r, err := http.Get("http://" + p.admin + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if r.StatusCode != 503 || !strings.Contains(string(body), "credentials") {
		t.Fatalf("readyz %d %q", r.StatusCode, body)
	}
	if resp, body := p.get(t, "files.test", "/a.txt", nil); resp.StatusCode != 503 || !strings.Contains(string(body), "<Code>ServiceUnavailable</Code>") {
		t.Fatalf("private site without credentials: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.get(t, "pub.test", "/a.txt", nil); resp.StatusCode != 200 {
		t.Fatalf("public site: %d", resp.StatusCode)
	}
}

func TestSignPrintsAURLTheGatewayAccepts(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "clip.mp4", []byte("video"), nil)
	cfg := fmt.Sprintf(siteConfig, "env", emuAddr, "public") + `
[site.url_auth]
enabled = true
key_env = "SIGN_TEST_KEY"
ttl = "5m"
`
	p := startGateway(t, cfg, "SIGN_TEST_KEY=sign-secret")
	path := p.cmd.Args[len(p.cmd.Args)-1]

	sign := exec.Command(gatewayBin, "sign", "-config", path, "-url", "http://files.test/clip.mp4")
	sign.Env = append(os.Environ(), "SIGN_TEST_KEY=sign-secret")
	out, err := sign.Output()
	if err != nil {
		t.Fatalf("gateway sign: %v", err)
	}
	signed := strings.TrimSpace(string(out))
	if !regexp.MustCompile(`^http://files\.test/clip\.mp4\?auth_key=\d+-[0-9a-f]+-0-[0-9a-f]{32}$`).MatchString(signed) {
		t.Fatalf("signed URL %q", signed)
	}
	if resp, body := p.get(t, "files.test", strings.TrimPrefix(signed, "http://files.test"), nil); resp.StatusCode != 200 || string(body) != "video" {
		t.Fatalf("signed URL refused: %d %s", resp.StatusCode, body)
	}
	if resp, _ := p.get(t, "files.test", "/clip.mp4", nil); resp.StatusCode != 403 {
		t.Fatalf("unsigned URL: %d", resp.StatusCode)
	}
	// Without the key in the environment, sign fails clearly.
	noKey := exec.Command(gatewayBin, "sign", "-config", path, "-url", "http://files.test/clip.mp4")
	noKey.Env = append(os.Environ(), "SIGN_TEST_KEY=")
	if out, err := noKey.CombinedOutput(); err == nil || !strings.Contains(string(out), "SIGN_TEST_KEY") {
		t.Fatalf("sign without key: %v %s", err, out)
	}
}

func TestProxyProtocolFromTrustedSLB(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("a"), nil)
	cfg := strings.Replace(fmt.Sprintf(siteConfig, "env", emuAddr, "public"), "[admin]",
		"proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[admin]", 1) + `
[site.limits]
allow_ips = ["203.0.113.0/24"]
`
	p := startGateway(t, cfg)
	send := func(prefix string) string {
		c, err := net.Dial("tcp", p.http)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "%sGET /a.txt HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n", prefix)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Status
	}
	// The SLB names the client; allow_ips judges that client.
	if got := send("PROXY TCP4 203.0.113.5 127.0.0.1 40000 80\r\n"); !strings.HasPrefix(got, "200") {
		t.Fatalf("client in allow_ips behind PROXY protocol: %s", got)
	}
	if got := send("PROXY TCP4 198.51.100.5 127.0.0.1 40000 80\r\n"); !strings.HasPrefix(got, "403") {
		t.Fatalf("client outside allow_ips behind PROXY protocol: %s", got)
	}
	// A health check without a header is judged on its socket address.
	if got := send(""); !strings.HasPrefix(got, "403") {
		t.Fatalf("no header: %s", got)
	}
	p.waitStdout(t, `"client_ip":"203.0.113.5"`)
}
