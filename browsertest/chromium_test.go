//go:build unix

package browsertest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// requireBrowserEnv, set to "1", turns a missing Chromium from a skip into a
// failure. .ci/run sets it, so CI cannot pass by silently skipping the test.
const requireBrowserEnv = "GATEWAY_REQUIRE_BROWSER"

// chromiumTimeout bounds every Chromium run. A run normally takes about a
// second; the virtual time budget below is well inside this.
const chromiumTimeout = 30 * time.Second

// findChromium returns the Chromium binary (the Debian package `chromium`,
// which .ci/run installs) or skips the test, unless GATEWAY_REQUIRE_BROWSER=1.
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "headless Chromium not found (install the Debian package `chromium`, as .ci/run does)"
	if os.Getenv(requireBrowserEnv) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", msg, requireBrowserEnv)
	}
	t.Skipf("%s; set %s=1 to make this a failure", msg, requireBrowserEnv)
	return ""
}

// chromiumFlags are the flags of every run.
//
// --headless --no-sandbox --disable-gpu: a browser without a display that
// runs as root in a container. --no-first-run and a fresh --user-data-dir:
// no profile state (cache, cookies, HSTS) leaks between runs, so each page
// load is judged on its own. The rest switch off Chromium's background
// traffic (component updates, sync, QUIC probes, variations and safe
// browsing fetches): on a closed network those connections fail and slow or
// disturb the run, and the test must touch nothing but loopback.
var chromiumFlags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--no-first-run",
	"--no-default-browser-check",
	"--disable-background-networking",
	"--disable-quic",
	"--disable-component-update",
	"--disable-sync",
	"--disable-extensions",
	"--disable-default-apps",
	"--disable-dev-shm-usage",
	"--mute-audio",
}

// dumpDOM opens url in a fresh headless Chromium and returns the serialized
// DOM (--dump-dom) once the page has settled.
//
// Why --dump-dom and not the DevTools protocol: it needs no dependency and
// no websocket client, and with --virtual-time-budget it is deterministic
// enough for these pages. Virtual time only advances while no network fetch
// is pending, so the budget expires (and the DOM is dumped) only after the
// page's fetch() and <img> have finished and their handlers have written the
// outcome into the DOM. Every assertion looks for a positive outcome string
// ("ok:…", "blocked:…", "loaded", "error"), so a run that dumped too early
// fails with "pending" in the DOM rather than passing by accident.
//
// Chromium runs in its own process group with HOME and the XDG directories
// pointed at a temporary directory (so a download, the negative control,
// lands there and not in the user's home). The whole group is killed when
// the run ends or the timeout expires, so no renderer or helper process
// outlives the test.
func dumpDOM(t *testing.T, bin, url string) string {
	t.Helper()
	home := t.TempDir()
	profile := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
	defer cancel()

	args := append(append([]string(nil), chromiumFlags...),
		"--user-data-dir="+profile,
		"--virtual-time-budget=10000",
		"--dump-dom",
		url,
	)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HOME="+home,
		"XDG_CONFIG_HOME="+home+"/.config",
		"XDG_CACHE_HOME="+home+"/.cache",
		"XDG_DATA_HOME="+home+"/.local/share",
		"XDG_DOWNLOAD_DIR="+home+"/Downloads",
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr

	start := time.Now()
	err := cmd.Start()
	if err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	err = cmd.Wait()
	killGroup(t, cmd.Process.Pid)
	t.Logf("chromium %s: %v", url, time.Since(start).Round(time.Millisecond))
	if ctx.Err() != nil {
		t.Fatalf("chromium %s: no result within %v\nstderr (tail):\n%s", url, chromiumTimeout, tail(stderr.String(), 20))
	}
	if err != nil {
		t.Fatalf("chromium %s: %v\nstderr (tail):\n%s", url, err, tail(stderr.String(), 20))
	}
	return stdout.String()
}

// killGroup kills what is left of Chromium's process group (zygote,
// renderers, utility processes linger for a moment after the browser
// process exits) and waits, briefly, for the group to be gone, so that the
// profile directory can be removed and nothing outlives the test.
func killGroup(t *testing.T, pgid int) {
	t.Helper()
	if err := syscall.Kill(-pgid, syscall.SIGKILL); errors.Is(err, syscall.ESRCH) {
		return
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Killed but not yet reaped by init: harmless, but worth a note.
	t.Logf("chromium process group %d still listed 5s after SIGKILL", pgid)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
