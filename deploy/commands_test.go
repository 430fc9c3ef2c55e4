package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// TestDeployCommandsWork runs the commands the unit and the image run, as
// written there (only the binary and the config path swapped for test
// ones), against each other: the unit's ExecStart serves, the image's
// HEALTHCHECK passes once it is ready, the unit's ExecReload exits 0 on a
// good file and 1 on a refused one, and the gateway keeps serving.
func TestDeployCommandsWork(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the gateway binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "gateway")
	build := exec.Command("go", "build", "-o", bin, "./cmd/gateway")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	u, _ := loadUnit(t)
	start := strings.Fields(u.get("Service", "ExecStart"))
	reload := strings.Fields(u.get("Service", "ExecReload"))
	df := loadDockerfile(t)
	hc, ok := healthcheck(df.stages[len(df.stages)-1].last("HEALTHCHECK"))
	if !ok {
		t.Fatal("the Dockerfile has no HEALTHCHECK in exec form")
	}
	cfgPath := filepath.Join(dir, "gateway.toml")
	argv := func(words []string) []string {
		out := []string{bin}
		for _, w := range words[1:] {
			if strings.HasPrefix(w, "/etc/gateway/") {
				w = cfgPath
			}
			out = append(out, w)
		}
		return out
	}

	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.CreateBucket("deploy-bkt", ossemu.PublicRead)
	emu.PutObject("deploy-bkt", "a.txt", []byte("a"), nil)
	eln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := emu.Serve(eln)
	t.Cleanup(func() { srv.Close() })
	httpAddr, adminPort := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(adminPort)
	// As in a container: the admin listener on every address, loopback
	// allowed.
	cfg := fmt.Sprintf(`
[server]
http_listen = %q
https_listen = ""

[admin]
listen = ":%s"
allow = ["127.0.0.1/32", "::1/128"]

[log]
format = "json"

[[site]]
name = "files"
domains = ["files.test"]
bucket = "deploy-bkt"
region = "cn-hangzhou"
endpoint = "http://%s"
access = "public"
tls = "off"
`, httpAddr, port, eln.Addr())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	gw := exec.Command(argv(start)[0], argv(start)[1:]...)
	var logs bytes.Buffer
	gw.Stderr = &logs
	if err := gw.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = gw.Process.Kill()
		_ = gw.Wait()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	run := func(words []string) (int, string) {
		cmd := exec.Command(argv(words)[0], argv(words)[1:]...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0, string(out)
		case errors.As(err, &ee):
			return ee.ExitCode(), string(out)
		}
		t.Fatal(err)
		return 0, ""
	}

	var code int
	var out string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, out = run(hc); code == 0 {
			break
		}
	}
	if code != 0 {
		t.Fatalf("HEALTHCHECK %q: exit %d\n%s", hc, code, out)
	}

	good := strings.Replace(cfg, `domains = ["files.test"]`, `domains = ["files.test", "new.test"]`, 1)
	if err := os.WriteFile(cfgPath, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run(reload); code != 0 {
		t.Fatalf("ExecReload %q on a good file: exit %d\n%s", reload, code, out)
	}
	bad := strings.Replace(good, `format = "json"`, `format = "yaml"`, 1)
	if err := os.WriteFile(cfgPath, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := run(reload); code != 1 || !strings.Contains(out, "log.format") {
		t.Fatalf("ExecReload %q on a refused file: exit %d, want 1 naming log.format\n%s", reload, code, out)
	}
	if code, out := run(hc); code != 0 {
		t.Fatalf("HEALTHCHECK after a refused reload: exit %d\n%s", code, out)
	}
	if gw.ProcessState != nil {
		t.Fatal("the gateway exited")
	}
}

// freeAddr is a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
