//go:build unix

package browsertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// requireBrowserEnv, set to "1", turns a missing Chromium from a skip into a
// failure. .ci/run sets it, so CI cannot pass by silently skipping the test.
const requireBrowserEnv = "GATEWAY_REQUIRE_BROWSER"

// chromiumTimeout bounds every Chromium run, start to kill. A run normally
// takes well under two seconds.
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
// may run as root in a container. --no-first-run and a fresh
// --user-data-dir per run: no profile state (cache, cookies, HSTS) leaks
// between runs, so each page load is judged on its own. The rest switch off
// Chromium's background traffic (component updates, sync, QUIC, variations
// and safe browsing fetches): on a closed network those connections fail
// and slow or disturb the run, and the test must touch nothing but loopback.
// --host-resolver-rules makes every name but localhost (and every address
// but 127.0.0.1: the rules see IP literals too) unresolvable, so even
// a background fetch these flags miss cannot leave the machine (the test's
// servers are reached by IP literal or as localhost).
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
	"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
}

// browser is one headless Chromium driven over the DevTools protocol on
// --remote-debugging-pipe: JSON messages, each ended by a NUL byte, written
// to the browser's fd 3 and read from its fd 4.
//
// Why not --dump-dom: it needs even less code and works for pages that
// render, but when a navigation turns into a download (the negative
// control) Chromium 156 sometimes exits at once and sometimes hangs until
// killed, after saving the file. Why a pipe and not --remote-debugging-port:
// no websocket client is needed, no port is opened, and nothing else on the
// machine can talk to the browser. Why not chromedp: it would add a
// dependency tree to go.mod for the four commands this test needs. The
// protocol also lets the test wait for exactly what it asserts on (the
// page's own promise, the load event, the download event) instead of
// guessing a time budget.
type browser struct {
	t      *testing.T
	cmd    *exec.Cmd
	ctx    context.Context
	toB    *os.File // our end of the browser's fd 3
	stderr string   // file with the browser's stderr, for failure messages
	exited chan struct{}

	mu      sync.Mutex
	nextID  int
	pending map[int]chan message
	events  []event       // every event received, in order
	changed chan struct{} // closed and replaced when events grows
	readErr error
}

// message is a DevTools protocol message: a command, its reply, or an event.
type message struct {
	ID        int             `json:"id,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    any             `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// event is a DevTools event; session "" is the browser's own.
type event struct {
	method, session string
	params          json.RawMessage
}

// startBrowser starts a fresh headless Chromium. It is killed, with every
// process it started, when the test ends or chromiumTimeout expires.
//
// Chromium runs in its own process group with HOME, TMPDIR and the XDG
// directories pointed at temporary directories, so nothing it writes lands
// in the user's home or stays in /tmp (a killed browser leaves its
// org.chromium.* singleton directory there). Killing the group takes the
// zygote, renderers and utility processes along; they would otherwise
// linger after the browser process.
func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	home, profile := t.TempDir(), t.TempDir()
	// TMPDIR gets a short path of its own: Chromium puts its singleton
	// socket there, and t.TempDir's long names overflow the 108 bytes a
	// Unix socket path may have. A killed browser leaves that directory
	// behind, so it is removed here, after the browser (cleanups run last
	// registered first).
	tmp, err := os.MkdirTemp("", "chromium")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)

	args := append(append([]string(nil), chromiumFlags...),
		"--user-data-dir="+profile,
		"--remote-debugging-pipe",
		"about:blank",
	)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(),
		"HOME="+home,
		"TMPDIR="+tmp,
		"XDG_CONFIG_HOME="+filepath.Join(home, ".config"),
		"XDG_CACHE_HOME="+filepath.Join(home, ".cache"),
		"XDG_DATA_HOME="+filepath.Join(home, ".local", "share"),
		"XDG_DOWNLOAD_DIR="+filepath.Join(home, "Downloads"),
	)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	// Stderr goes to a file, not a pipe: a pipe would make Wait wait for
	// every child holding it open.
	stderrPath := filepath.Join(home, "stderr.log")
	stderr, err := os.Create(stderrPath)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	defer stderr.Close()
	cmd.Stderr = stderr

	bRead, toB, err := os.Pipe() // the browser reads commands on fd 3
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	fromB, bWrite, err := os.Pipe() // and writes replies and events on fd 4
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{bRead, bWrite}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	bRead.Close()
	bWrite.Close()

	b := &browser{t: t, cmd: cmd, ctx: ctx, toB: toB, stderr: stderrPath,
		exited: make(chan struct{}), pending: make(map[int]chan message), changed: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	go b.read(fromB)
	start := time.Now()
	t.Cleanup(func() {
		b.close()
		cancel()
		toB.Close()
		fromB.Close()
		t.Logf("chromium ran %v", time.Since(start).Round(time.Millisecond))
	})
	return b
}

// close asks the browser to quit, gives it a moment, then kills its whole
// process group and waits until no process of the group is left running.
func (b *browser) close() {
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Second)
	defer cancel()
	_ = b.call(ctx, "", "Browser.close", nil, nil)
	select {
	case <-b.exited:
	case <-ctx.Done():
	}
	pgid := b.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-b.exited
	deadline := time.Now().Add(5 * time.Second)
	for groupRunning(pgid) {
		if time.Now().After(deadline) {
			b.t.Errorf("chromium process group %d still running 5s after SIGKILL", pgid)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// groupRunning reports whether a process of group pgid is still running.
// The browser's children outlive it as orphans, and once killed they stay
// zombies until init reaps them, which takes init a second or two in some
// containers and forever under a PID 1 that never reaps; a zombie runs
// nothing and holds no files, so on Linux, where /proc tells, zombies do
// not count.
func groupRunning(pgid int) bool {
	if err := syscall.Kill(-pgid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return true // no /proc: signal 0 is all there is
	}
	group := strconv.Itoa(pgid)
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// "pid (comm) state ppid pgrp ...": comm may hold spaces and
		// parentheses, so split after the last ')'.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) >= 3 && f[2] == group && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// read dispatches the browser's messages until the pipe closes.
func (b *browser) read(r io.Reader) {
	buf := make([]byte, 0, 64<<10)
	chunk := make([]byte, 64<<10)
	var err error
	for {
		var n int
		n, err = r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		for {
			i := bytes.IndexByte(buf, 0)
			if i < 0 {
				break
			}
			b.dispatch(buf[:i])
			buf = buf[i+1:]
		}
		if err != nil {
			break
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.readErr = fmt.Errorf("devtools pipe closed: %w", err)
	for id, ch := range b.pending {
		close(ch)
		delete(b.pending, id)
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *browser) dispatch(raw []byte) {
	var m struct {
		message
		Params json.RawMessage `json:"params"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if m.ID != 0 {
		if ch, ok := b.pending[m.ID]; ok {
			delete(b.pending, m.ID)
			ch <- m.message
		}
		return
	}
	b.events = append(b.events, event{method: m.Method, session: m.SessionID, params: m.Params})
	close(b.changed)
	b.changed = make(chan struct{})
}

// mark returns the position in the event log that a following waitFor
// starts from: take it before the command whose events are awaited.
func (b *browser) mark() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events)
}

// waitFor returns the first event from position from on that match
// accepts, failing the test when the browser's time is up first.
func (b *browser) waitFor(from int, what string, match func(event) bool) event {
	b.t.Helper()
	for {
		b.mu.Lock()
		for _, e := range b.events[from:] {
			if match(e) {
				b.mu.Unlock()
				return e
			}
		}
		from = len(b.events)
		changed, readErr := b.changed, b.readErr
		b.mu.Unlock()
		if readErr != nil {
			b.fatal("waiting for %s: %v", what, readErr)
		}
		select {
		case <-changed:
		case <-b.ctx.Done():
			b.fatal("no %s within %v", what, chromiumTimeout)
		}
	}
}

// call sends a command (to session, "" = the browser) and decodes its
// result into result (when not nil).
func (b *browser) call(ctx context.Context, session, method string, params, result any) error {
	b.mu.Lock()
	if b.readErr != nil {
		b.mu.Unlock()
		return b.readErr
	}
	b.nextID++
	id := b.nextID
	ch := make(chan message, 1)
	b.pending[id] = ch
	b.mu.Unlock()

	data, err := json.Marshal(message{ID: id, SessionID: session, Method: method, Params: params})
	if err != nil {
		return err
	}
	if _, err := b.toB.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return fmt.Errorf("%s: devtools pipe closed", method)
		}
		if m.Error != nil {
			return fmt.Errorf("%s: %d %s", method, m.Error.Code, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// must is call for the test's own steps: any error fails the test.
func (b *browser) must(session, method string, params, result any) {
	b.t.Helper()
	if err := b.call(b.ctx, session, method, params, result); err != nil {
		b.fatal("%v", err)
	}
}

// fatal fails the test with the tail of the browser's stderr.
func (b *browser) fatal(format string, args ...any) {
	b.t.Helper()
	log, _ := os.ReadFile(b.stderr)
	b.t.Fatalf("chromium: %s\nstderr (tail):\n%s", fmt.Sprintf(format, args...), tail(string(log), 15))
}

// page is a tab attached with a flat session.
type page struct {
	b       *browser
	session string
}

// newPage opens a blank tab and enables its page events.
func (b *browser) newPage() *page {
	b.t.Helper()
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.must("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.must("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	p := &page{b: b, session: attached.SessionID}
	b.must(p.session, "Page.enable", nil, nil)
	b.must(p.session, "Page.setLifecycleEventsEnabled", map[string]any{"enabled": true}, nil)
	return p
}

// navigation is Page.navigate's result.
type navigation struct {
	LoaderID  string `json:"loaderId"`
	ErrorText string `json:"errorText"`
}

// loadOf matches the load lifecycle event (window's load: images included)
// of the document navigation nav created, and no earlier document's.
func (p *page) loadOf(nav navigation) func(event) bool {
	return func(e event) bool {
		if e.method != "Page.lifecycleEvent" || e.session != p.session {
			return false
		}
		var lc struct {
			LoaderID string `json:"loaderId"`
			Name     string `json:"name"`
		}
		return json.Unmarshal(e.params, &lc) == nil && lc.Name == "load" && lc.LoaderID == nav.LoaderID
	}
}

// navigate loads url and waits for its load event.
func (p *page) navigate(url string) {
	p.b.t.Helper()
	from := p.b.mark()
	var nav navigation
	p.b.must(p.session, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		p.b.fatal("navigate %s: %s", url, nav.ErrorText)
	}
	p.b.waitFor(from, "load event of "+url, p.loadOf(nav))
}

// eval evaluates a JavaScript expression, awaiting it when it is a
// promise, and returns its string value.
func (p *page) eval(expr string) string {
	p.b.t.Helper()
	var res struct {
		Result struct {
			Value any `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	p.b.must(p.session, "Runtime.evaluate", map[string]any{
		"expression": expr, "awaitPromise": true, "returnByValue": true,
	}, &res)
	if res.ExceptionDetails != nil {
		p.b.fatal("evaluate %s: %s", expr, res.ExceptionDetails.Text)
	}
	s, _ := res.Result.Value.(string)
	return s
}

// dom returns the serialized DOM of the page's main document.
func (p *page) dom() string {
	p.b.t.Helper()
	return p.eval("document.documentElement.outerHTML")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// denyDownloads makes the browser refuse every download, and report each
// one with a Browser.downloadWillBegin event, so a download is observed
// without anything being written to disk.
func (b *browser) denyDownloads() {
	b.t.Helper()
	b.must("", "Browser.setDownloadBehavior", map[string]any{"behavior": "deny", "eventsEnabled": true}, nil)
}

// download is what Browser.downloadWillBegin reports.
type download struct {
	URL               string `json:"url"`
	SuggestedFilename string `json:"suggestedFilename"`
}

// navigateToDownload navigates to url, which must turn into a download
// instead of a document, and returns the download and the navigation's
// error text. A document that loads instead fails the test at once.
func (p *page) navigateToDownload(url string) (download, string) {
	p.b.t.Helper()
	from := p.b.mark()
	var nav navigation
	p.b.must(p.session, "Page.navigate", map[string]any{"url": url}, &nav)
	loaded := p.loadOf(nav)
	e := p.b.waitFor(from, "download of "+url, func(e event) bool {
		return (e.method == "Browser.downloadWillBegin" && e.session == "") || loaded(e)
	})
	if e.method != "Browser.downloadWillBegin" {
		p.b.t.Fatalf("%s opened as a page instead of downloading:\n%s", url, p.dom())
	}
	var d download
	if err := json.Unmarshal(e.params, &d); err != nil {
		p.b.fatal("downloadWillBegin: %v", err)
	}
	return d, nav.ErrorText
}
