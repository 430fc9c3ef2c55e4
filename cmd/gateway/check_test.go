package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/ossemu"
)

// runCheck writes cfg (HTTPADDR and ADMINADDR filled in; nothing listens on
// them, check never starts a server) as name and runs `gateway check` on it
// with env added to the environment.
func runCheck(t *testing.T, name, cfg string, env ...string) (code int, stdout, stderr string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	cfg = strings.NewReplacer("HTTPADDR", freePort(t), "ADMINADDR", freePort(t)).Replace(cfg)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// The environment's own OSS_* variables must not decide the outcome.
	res := runBin(t, "", append([]string{"OSS_ACCESS_KEY_ID=", "OSS_ACCESS_KEY_SECRET=", "OSS_SESSION_TOKEN="}, env...), "check", "-config", path)
	return res.code, res.stdout, res.stderr
}

// TestCheckExitStatus runs the binary's `gateway check` the way CI or a
// deploy script would and relies only on its exit status and output:
// 0 on a config that works, 1 with the failing row printed when a check
// fails, 2 with a file:line problem on a config that does not load.
func TestCheckExitStatus(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	emu.CreateBucket("chk", ossemu.Private)
	emu.CreateBucket("chkpub", ossemu.PublicRead)
	emu.BindDomain("chk.test", "chk")
	emu.BindDomain("pub.chk.test", "chkpub")
	endpoint := "http://" + emuAddr
	healthy := gatewayConfig("",
		siteTable("private", "chk.test", "chk", endpoint, "private", ""),
		siteTable("public", "pub.chk.test", "chkpub", endpoint, "public", ""))

	t.Run("healthy config exits 0", func(t *testing.T) {
		code, out, _ := runCheck(t, "gateway.toml", healthy, testCredentials...)
		if code != 0 {
			t.Fatalf("exit %d, want 0", code)
		}
		for _, want := range []string{"SITE", "STATUS", "private", "public", "signed GetBucketInfo ok", "anonymous reads reach the bucket", "bound to bucket chk", " 0 failures"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if strings.Contains(out, "FAIL") || strings.Contains(out, "WARN") {
			t.Error("a healthy config printed a WARN or FAIL row")
		}
		if strings.Contains(out, "resilience-secret") || strings.Contains(out, "LTAIresilience") {
			t.Error("credentials in the output")
		}
	})

	t.Run("failing check exits 1", func(t *testing.T) {
		code, out, errOut := runCheck(t, "gateway.toml", healthy,
			"OSS_ACCESS_KEY_ID=LTAIresilience", "OSS_ACCESS_KEY_SECRET=a-wrong-secret")
		if code != 1 {
			t.Fatalf("exit %d, want 1", code)
		}
		var row string
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, "FAIL") {
				row = l
				break
			}
		}
		if f := strings.Fields(row); len(f) < 4 || f[0] != "private" || f[1] != "bucket" || f[2] != "chk" || f[3] != "FAIL" ||
			!strings.Contains(row, "SignatureDoesNotMatch") {
			t.Errorf("failing row %q, want site private, check bucket, target chk, FAIL, SignatureDoesNotMatch", row)
		}
		if !strings.Contains(out, "1 failures") {
			t.Error("summary does not count one failure")
		}
		if strings.Contains(out+errOut, "a-wrong-secret") || strings.Contains(out+errOut, "LTAIresilience") {
			t.Error("credentials in the output")
		}
	})

	t.Run("bad config exits 2", func(t *testing.T) {
		bad := strings.Replace(healthy, "[server]\n", "[server]\nbogus = 1\n", 1)
		code, out, errOut := runCheck(t, "bad.toml", bad, testCredentials...)
		if code != 2 {
			t.Fatalf("exit %d, want 2", code)
		}
		if !strings.Contains(errOut, "bad.toml:3: server.bogus") {
			t.Errorf("stderr lacks the file:line problem %q", "bad.toml:3: server.bogus")
		}
		if out != "" {
			t.Errorf("a bad config printed a table: %q", out)
		}
	})
}
