package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/ossemu"
)

// TestReloadCommand drives a running gateway with `gateway reload`, as
// systemd's ExecReload= does: a good file is live when it exits 0; a
// refused one exits 1 with the problems on stderr while the old config
// keeps serving. The admin address comes from the file's admin.listen,
// even when the rest of the file does not parse.
func TestReloadCommand(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.PublicRead)
	emu.PutObject("bkt", "a.txt", []byte("a"), nil)
	p := startGateway(t, strings.ReplaceAll(reloadConfig, "EMUADDR", emuAddr))
	path := p.cmd.Args[len(p.cmd.Args)-1]
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// refused is the file with a new domain and log.format written as
	// format: the domain must not go live.
	refused := func(format string) string {
		text := strings.Replace(string(orig), `domains = ["files.test"]`, `domains = ["files.test", "new.test", "refused.test"]`, 1)
		return strings.Replace(text, `format = "json"`, format, 1)
	}
	serves := func(host string) bool {
		resp, _ := p.get(t, host, "/a.txt", nil)
		return resp.StatusCode == 200
	}

	cases := []struct {
		name    string
		file    string
		args    []string // after "reload"
		code    int
		stderr  []string // each must be on stderr
		live    string   // a domain served after the reload
		notLive string   // a domain not served after it
	}{
		{
			name: "good file, admin address from -config",
			file: strings.Replace(string(orig), `domains = ["files.test"]`, `domains = ["files.test", "new.test"]`, 1),
			args: []string{"-config", path},
			live: "new.test",
		},
		{
			name:    "refused file",
			file:    refused(`format = "xml"`),
			args:    []string{"-config", path},
			code:    1,
			stderr:  []string{"refused", path + `:15: log.format: "xml" is not "json" or "text"`},
			live:    "new.test",
			notLive: "refused.test",
		},
		{
			name:    "file that is not TOML: the admin address is still found",
			file:    refused(`format = "json`),
			args:    []string{"-config", path},
			code:    1,
			stderr:  []string{path + ":15: invalid TOML"},
			live:    "new.test",
			notLive: "refused.test",
		},
		{
			name: "good file, explicit -admin",
			file: strings.Replace(string(orig), `domains = ["files.test"]`, `domains = ["files.test", "other.test"]`, 1),
			args: []string{"-admin", p.admin},
			live: "other.test",
		},
		{
			name: "good file, run where gateway.toml is, no flags",
			file: strings.Replace(string(orig), `domains = ["files.test"]`, `domains = ["files.test", "third.test"]`, 1),
			live: "third.test",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			write(tc.file)
			res := runBin(t, filepath.Dir(path), nil, append([]string{"reload"}, tc.args...)...)
			if res.code != tc.code {
				t.Fatalf("exit %d, want %d", res.code, tc.code)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("stderr lacks %q", w)
				}
			}
			if tc.code == 0 && !strings.Contains(res.stdout, "live") {
				t.Errorf("stdout %q does not say the config is live", res.stdout)
			}
			// Live as soon as reload returned: no waiting.
			if tc.live != "" && !serves(tc.live) {
				t.Errorf("%s is not served right after the reload", tc.live)
			}
			if tc.notLive != "" && serves(tc.notLive) {
				t.Errorf("%s is served after a refused reload", tc.notLive)
			}
		})
	}
}

// TestHealthcheckCommand: exit 0 when /readyz answers 200, 1 with the
// reason when it answers 503 or nothing listens (one line each time).
func TestHealthcheckCommand(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("bkt", ossemu.Private)
	ready := startGateway(t, fmt.Sprintf(siteConfig, "env", emuAddr, "private"), testCredentials...)
	notReady := startGateway(t, fmt.Sprintf(siteConfig, "env", emuAddr, "private"), "OSS_ACCESS_KEY_ID=", "OSS_ACCESS_KEY_SECRET=")
	closed := freePort(t)
	readyPath := ready.cmd.Args[len(ready.cmd.Args)-1]

	cases := []struct {
		name   string
		dir    string
		args   []string
		code   int
		stderr string
	}{
		{name: "ready, -admin", args: []string{"-admin", ready.admin}},
		{name: "ready, -config", args: []string{"-config", readyPath}},
		{name: "ready, gateway.toml where it runs", dir: filepath.Dir(readyPath)},
		{name: "not ready", args: []string{"-admin", notReady.admin}, code: 1, stderr: "not ready: "},
		{name: "admin port closed", args: []string{"-admin", closed}, code: 1,
			stderr: "gateway healthcheck: cannot reach the admin listener at " + closed + ": connect: connection refused"},
		{name: "-config that does not exist", args: []string{"-config", filepath.Join(t.TempDir(), "none.toml")}, code: 2,
			stderr: "none.toml: no such file or directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res := runBin(t, tc.dir, nil, append([]string{"healthcheck"}, tc.args...)...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			if tc.code == 0 && res.stderr != "" {
				t.Errorf("stderr %q on success", res.stderr)
			}
			if tc.code != 0 && (!strings.Contains(res.stderr, tc.stderr) || strings.Count(res.stderr, "\n") != 1) {
				t.Errorf("stderr %q, want one line with %q", res.stderr, tc.stderr)
			}
		})
	}

	// With no gateway.toml where it runs and no -admin: 127.0.0.1:9090.
	ln, err := net.Listen("tcp", "127.0.0.1:9090")
	if err != nil {
		t.Skipf("127.0.0.1:9090 is taken here (%v): cannot test the default address", err)
	}
	ln.Close()
	res := runBin(t, t.TempDir(), nil, "healthcheck")
	if res.code != 1 || !strings.Contains(res.stderr, "127.0.0.1:9090") {
		t.Errorf("default address: exit %d, stderr %q; want 1 naming 127.0.0.1:9090", res.code, res.stderr)
	}
}

// TestReloadRefusesAdminlessConfig: a file with admin.listen = "" names no
// admin listener to ask; reload says so instead of guessing.
func TestReloadRefusesAdminlessConfig(t *testing.T) {
	path := writeConfig(t, "gateway.toml", "[admin]\nlisten = \"\"\n")
	res := runBin(t, "", nil, "reload", "-config", path)
	if res.code != 2 || !strings.Contains(res.stderr, `admin.listen = ""`) {
		t.Errorf("exit %d, stderr %q", res.code, res.stderr)
	}
}
