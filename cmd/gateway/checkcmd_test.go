package main

import (
	"bufio"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/ossemu"
)

// TestCheckValidatesAsRunDoes: `gateway check` accepts exactly the configs
// `gateway run` starts with. A url_auth key variable that is unset makes
// both exit 2 with the same file:line: key line; -offline stops after
// validating and sends nothing anywhere.
func TestCheckValidatesAsRunDoes(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	emu.CreateBucket("chkpub", ossemu.PublicRead)
	endpoint := "http://" + emuAddr
	urlAuth := "[site.url_auth]\nenabled = true\nkey_env = \"CHECK_URL_KEY\"\n"
	cfg := strings.NewReplacer("HTTPADDR", "127.0.0.1:0", "ADMINADDR", "127.0.0.1:0").Replace(
		gatewayConfig("", siteTable("pub", "pub.chk.test", "chkpub", endpoint, "public", urlAuth)))
	path := writeConfig(t, "gateway.toml", cfg)
	keyLine := 0
	for i, l := range strings.Split(cfg, "\n") {
		if strings.HasPrefix(l, "key_env") {
			keyLine = i + 1
		}
	}
	wantLine := path + ":" + strconv.Itoa(keyLine) + ": site[0].url_auth.key_env: environment variable CHECK_URL_KEY (url_auth.key_env) is unset or empty\n"

	cases := []struct {
		name   string
		args   []string
		env    []string
		code   int
		stdout []string
		stderr string // exactly
	}{
		{name: "offline, key set", args: []string{"check", "-offline"}, env: []string{"CHECK_URL_KEY=k"},
			stdout: []string{"-offline: nothing probed", "1 checks: 1 ok, 0 warnings, 0 failures"}},
		{name: "offline, key unset", args: []string{"check", "-offline"}, env: []string{"CHECK_URL_KEY="}, code: 2, stderr: wantLine},
		{name: "online, key unset", args: []string{"check"}, env: []string{"CHECK_URL_KEY="}, code: 2, stderr: wantLine},
		{name: "run, key unset", args: []string{"run"}, env: []string{"CHECK_URL_KEY="}, code: 2, stderr: wantLine},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			emu.ResetRequests()
			res := runBin(t, "", tc.env, append(tc.args, "-config", path)...)
			if res.code != tc.code {
				t.Errorf("exit %d, want %d", res.code, tc.code)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(res.stdout, w) {
					t.Errorf("stdout lacks %q", w)
				}
			}
			if tc.code != 0 && res.stdout != "" {
				t.Errorf("stdout %q, want none", res.stdout)
			}
			if res.stderr != tc.stderr {
				t.Errorf("stderr\n%q\nwant\n%q", res.stderr, tc.stderr)
			}
			if n := len(emu.Requests()); n != 0 {
				t.Errorf("%d requests reached OSS", n)
			}
		})
	}
}

// TestCheckStreamsParallelProbes: the probes of all sites run at once and
// each row is printed when its probe finishes. Two sites whose bucket
// answers only after a delay, and one that answers at once: the fast
// site's bucket row is out while the slow ones still wait, and the slow
// ones come out together rather than one delay apart.
func TestCheckStreamsParallelProbes(t *testing.T) {
	emu, emuAddr := startEmulator(t)
	addTestCredential(emu)
	endpoint := "http://" + emuAddr
	const delay = 1500 * time.Millisecond
	var sites []string
	for _, b := range []string{"slow-one", "slow-two", "fast"} {
		emu.CreateBucket(b, ossemu.Private)
		sites = append(sites, siteTable(b, b+".test", b, endpoint, "private", ""))
	}
	emu.AddFault(ossemu.Fault{Bucket: "slow-one", Delay: delay})
	emu.AddFault(ossemu.Fault{Bucket: "slow-two", Delay: delay})
	cfg := strings.NewReplacer("HTTPADDR", "127.0.0.1:0", "ADMINADDR", "127.0.0.1:0").Replace(gatewayConfig("", sites...))
	path := writeConfig(t, "gateway.toml", cfg)

	cmd := exec.Command(gatewayBin, "check", "-config", path, "-timeout", "20s")
	cmd.Env = append(os.Environ(), testCredentials...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	seen := map[string]time.Time{} // SITE CHECK -> when its line was read
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if f := strings.Fields(sc.Text()); len(f) >= 4 {
			seen[f[0]+" "+f[1]] = time.Now()
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("gateway check: %v\n%s", err, strings.Join(lines, "\n"))
	}
	t.Logf("output:\n%s", strings.Join(lines, "\n"))
	fast, one, two := seen["fast bucket"], seen["slow-one bucket"], seen["slow-two bucket"]
	if fast.IsZero() || one.IsZero() || two.IsZero() {
		t.Fatal("a bucket row is missing")
	}
	if !fast.Before(one) || !fast.Before(two) {
		t.Error("the fast site's bucket row was printed after a slow site's: rows are held back")
	}
	if gap := one.Sub(two).Abs(); gap > delay*2/3 {
		t.Errorf("the slow sites' bucket rows were printed %v apart: probed one after the other", gap)
	}
	if !strings.HasPrefix(lines[0], "SITE") || !strings.Contains(lines[len(lines)-1], " 0 failures") {
		t.Errorf("want the header first and the summary last")
	}
}
