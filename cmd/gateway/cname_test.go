package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testcert"

	"github.com/oss-gateway/gateway/ossemu"
)

// cnameTestConfig writes a config with one site, "images", on bucket
// cname-bkt behind the emulator at emuAddr, and returns its path.
func cnameTestConfig(t *testing.T, emuAddr string) string {
	t.Helper()
	cfg := gatewayConfig("", siteTable("images", "img.example.com", "cname-bkt", "http://"+emuAddr, "private", ""))
	cfg = strings.NewReplacer("HTTPADDR", freePort(t), "ADMINADDR", freePort(t)).Replace(cfg)
	path := filepath.Join(t.TempDir(), "gateway.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// cnameTestCertificate writes a self-signed certificate for domain and its
// key to files and returns their paths.
func cnameTestCertificate(t *testing.T, domain string) (certFile, keyFile string) {
	t.Helper()
	return testcert.New(t, testcert.Options{Until: time.Now().Add(30 * 24 * time.Hour)}, domain).Write(t, "")
}

// TestCnameLifecycleThroughTheBinary runs token, a bind refused for want of
// the TXT record, the record added to the emulator's DNS with the value
// printed, a bind that succeeds (then one with a certificate), list and
// unbind, each as a separate run of the real binary.
func TestCnameLifecycleThroughTheBinary(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("cname-bkt", ossemu.Private)
	path := cnameTestConfig(t, emuAddr)
	base := []string{"-config", path, "-site", "images"}
	run := func(action string, extra ...string) binResult {
		t.Helper()
		res := runBin(t, "", testCredentials, append(append([]string{"cname", action}, base...), extra...)...)
		for _, secret := range []string{"resilience-secret"} {
			if strings.Contains(res.stdout+res.stderr, secret) {
				t.Fatalf("cname %s printed the secret:\n%s%s", action, res.stdout, res.stderr)
			}
		}
		return res
	}
	valueLine := regexp.MustCompile(`(?m)^\s+value\s+([0-9a-f]{32})$`)

	// token: a new token and the record to add.
	tok := run("token", "-domain", "img.example.com")
	if tok.code != 0 {
		t.Fatalf("token: exit %d\n%s%s", tok.code, tok.stdout, tok.stderr)
	}
	m := valueLine.FindStringSubmatch(tok.stdout)
	if m == nil {
		t.Fatalf("token printed no value line:\n%s", tok.stdout)
	}
	value := m[1]
	for _, want := range []string{"new token for img.example.com on bucket cname-bkt", "name     _dnsauth.img.example.com", "host     _dnsauth.img ", "type     TXT", "expires  ", "gateway cname bind -config "} {
		if !strings.Contains(tok.stdout, want) {
			t.Errorf("token output lacks %q:\n%s", want, tok.stdout)
		}
	}

	// bind before the record exists: exit 1 and the record to add.
	refused := run("bind", "-domain", "img.example.com")
	if refused.code != 1 {
		t.Fatalf("bind without TXT: exit %d\n%s%s", refused.code, refused.stdout, refused.stderr)
	}
	for _, want := range []string{"NeedVerifyDomainOwnership", "(HTTP 403, request id ", "name     _dnsauth.img.example.com", "type     TXT", "value    " + value, "run this command again"} {
		if !strings.Contains(refused.stderr, want) {
			t.Errorf("refused bind lacks %q:\n%s", want, refused.stderr)
		}
	}
	if len(emu.Cnames("cname-bkt")) != 0 {
		t.Fatal("bound without the TXT record")
	}

	// The operator adds the record as printed; bind succeeds.
	emu.SetTXT("_dnsauth.img.example.com", value)
	bound := run("bind", "-domain", "img.example.com")
	if bound.code != 0 || !strings.Contains(bound.stdout, "bound img.example.com to bucket cname-bkt (site images)") {
		t.Fatalf("bind: exit %d\n%s%s", bound.code, bound.stdout, bound.stderr)
	}
	if got := emu.Cnames("cname-bkt"); len(got) != 1 || got[0] != "img.example.com" {
		t.Fatalf("emulator bindings %v", got)
	}

	// A certificate can be attached afterwards; list shows it.
	certFile, keyFile := cnameTestCertificate(t, "img.example.com")
	withCert := run("bind", "-domain", "img.example.com", "-cert", certFile, "-key", keyFile)
	if withCert.code != 0 || !strings.Contains(withCert.stdout, "with the certificate in "+certFile) {
		t.Fatalf("bind with a certificate: exit %d\n%s%s", withCert.code, withCert.stdout, withCert.stderr)
	}
	list := run("list")
	if list.code != 0 {
		t.Fatalf("list: exit %d\n%s%s", list.code, list.stdout, list.stderr)
	}
	row := regexp.MustCompile(`(?m)^img\.example\.com\s+Enabled\s+\S+Z\s+Upload\s+\S+-cn-hangzhou\s+Enabled\s+\S+Z\s+\S+Z\s+([0-9A-F]{2}:){19}[0-9A-F]{2}$`)
	if !strings.Contains(list.stdout, "bucket cname-bkt (site images): 1 bound domain(s)") || !strings.Contains(list.stdout, "DOMAIN") || !row.MatchString(list.stdout) {
		t.Fatalf("list output:\n%s", list.stdout)
	}
	if strings.Contains(list.stdout, "not bound:") {
		t.Errorf("list calls a bound domain unbound:\n%s", list.stdout)
	}

	// unbind removes it; list then says so.
	unbound := run("unbind", "-domain", "img.example.com")
	if unbound.code != 0 || !strings.Contains(unbound.stdout, "unbound img.example.com from bucket cname-bkt") {
		t.Fatalf("unbind: exit %d\n%s%s", unbound.code, unbound.stdout, unbound.stderr)
	}
	if got := emu.Cnames("cname-bkt"); len(got) != 0 {
		t.Fatalf("emulator bindings after unbind %v", got)
	}
	list = run("list")
	if list.code != 0 || !strings.Contains(list.stdout, "0 bound domain(s)") || !strings.Contains(list.stdout, "not bound: img.example.com (a domain of site images)") {
		t.Fatalf("list after unbind: exit %d\n%s%s", list.code, list.stdout, list.stderr)
	}
	again := run("unbind", "-domain", "img.example.com")
	if again.code != 0 || !strings.Contains(again.stdout, "was not bound") {
		t.Fatalf("second unbind: exit %d\n%s%s", again.code, again.stdout, again.stderr)
	}

	// The token is still valid: token shows the same one.
	tok = run("token", "-domain", "img.example.com")
	if m := valueLine.FindStringSubmatch(tok.stdout); tok.code != 0 || m == nil || m[1] != value || !strings.Contains(tok.stdout, "existing token") {
		t.Fatalf("token again: exit %d\n%s%s", tok.code, tok.stdout, tok.stderr)
	}

	// Every request was signed by the configured credential.
	for _, r := range emu.Requests() {
		if !r.Signed {
			t.Errorf("unsigned request %s %s?%s", r.Method, r.RawPath, r.RawQuery)
		}
	}
}

// TestCnameUsageAndFailures checks exit status 2 (usage or config) without
// a request to OSS, and status 1 with one line naming the OSS error when
// OSS refuses.
func TestCnameUsageAndFailures(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("cname-bkt", ossemu.Private)
	path := cnameTestConfig(t, emuAddr)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	if err := os.WriteFile(bad, []byte("[server]\nbogus = 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	usage := []struct {
		name string
		args []string
		want string
	}{
		{"no action", []string{"cname"}, "usage: gateway cname"},
		{"unknown action", []string{"cname", "frobnicate", "-config", path, "-site", "images"}, `unknown action "frobnicate"`},
		{"token without -domain", []string{"cname", "token", "-config", path, "-site", "images"}, "-domain is required"},
		{"token for a domain the site does not serve", []string{"cname", "token", "-config", path, "-site", "images", "-domain", "other.example.com"}, `"other.example.com" is not one of site "images"'s domains (img.example.com)`},
		{"bind for a domain the site does not serve", []string{"cname", "bind", "-config", path, "-site", "images", "-domain", "other.example.com"}, "is not one of site"},
		{"unbind without -domain", []string{"cname", "unbind", "-config", path, "-site", "images"}, "-domain is required"},
		{"wildcard domain", []string{"cname", "unbind", "-config", path, "-site", "images", "-domain", "*.example.com"}, "wildcard"},
		{"without -site", []string{"cname", "list", "-config", path}, "-site is required"},
		{"unknown site", []string{"cname", "list", "-config", path, "-site", "nope"}, `no site named "nope"`},
		{"-cert on list", []string{"cname", "list", "-config", path, "-site", "images", "-cert", "c.pem", "-key", "k.pem"}, "apply to bind only"},
		{"-cert without -key", []string{"cname", "bind", "-config", path, "-site", "images", "-domain", "img.example.com", "-cert", "c.pem"}, "go together"},
		{"missing certificate file", []string{"cname", "bind", "-config", path, "-site", "images", "-domain", "img.example.com", "-cert", filepath.Join(dir, "none.pem"), "-key", filepath.Join(dir, "none.key")}, "-cert: "},
		{"unknown flag", []string{"cname", "list", "-config", path, "-site", "images", "-bogus"}, "flag provided but not defined"},
		{"stray argument", []string{"cname", "list", "-config", path, "-site", "images", "extra"}, `unexpected argument "extra"`},
		{"missing config", []string{"cname", "list", "-config", filepath.Join(dir, "missing.toml"), "-site", "images"}, "missing.toml: cannot read the file"},
		{"bad config", []string{"cname", "list", "-config", bad, "-site", "images"}, "bad.toml:2: server.bogus"},
	}
	for _, tt := range usage {
		t.Run(tt.name, func(t *testing.T) {
			res := runBin(t, "", testCredentials, tt.args...)
			if res.code != 2 || !strings.Contains(res.stderr, tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", res.code, res.stderr, tt.want)
			}
		})
	}
	if n := len(emu.Requests()); n != 0 {
		t.Fatalf("usage errors sent %d requests to OSS", n)
	}

	// OSS refusing: exit 1, one line with the code and the request ID.
	wrong := runBin(t, "", []string{"OSS_ACCESS_KEY_ID=LTAIresilience", "OSS_ACCESS_KEY_SECRET=not-the-secret"},
		"cname", "list", "-config", path, "-site", "images")
	line := strings.TrimSpace(wrong.stderr)
	if wrong.code != 1 || strings.Contains(line, "\n") || !regexp.MustCompile(`^gateway cname list: SignatureDoesNotMatch: .+ \(HTTP 403, request id [0-9A-F]+\)$`).MatchString(line) {
		t.Fatalf("wrong secret: exit %d, stderr %q", wrong.code, wrong.stderr)
	}
	if strings.Contains(wrong.stderr, "not-the-secret") {
		t.Fatal("the secret was printed")
	}
	noCreds := runBin(t, "", []string{"OSS_ACCESS_KEY_ID=", "OSS_ACCESS_KEY_SECRET="}, "cname", "list", "-config", path, "-site", "images")
	if noCreds.code != 1 || strings.Count(strings.TrimSpace(noCreds.stderr), "\n") != 0 || !strings.HasPrefix(noCreds.stderr, "gateway cname list: ") {
		t.Fatalf("no credentials: exit %d, stderr %q", noCreds.code, noCreds.stderr)
	}
	// A domain bound to another bucket is refused with the code and a hint.
	emu.CreateBucket("elsewhere", ossemu.Private)
	emu.BindDomain("img.example.com", "elsewhere")
	taken := runBin(t, "", testCredentials, "cname", "bind", "-config", path, "-site", "images", "-domain", "img.example.com")
	if taken.code != 1 || !strings.Contains(taken.stderr, "CnameAlreadyExists") || !strings.Contains(taken.stderr, "bound to another bucket") {
		t.Fatalf("bind of a taken domain: exit %d, stderr %q", taken.code, taken.stderr)
	}
}
