//go:build unix

package browsertest

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
	"github.com/oss-gateway/gateway/proxy"
)

const (
	bucketName = "web-bucket"
	secretText = "SECRET-DATA-42"
	// pageMarker is in page.html's body only; a DOM holding it means the
	// browser rendered the object instead of saving it.
	pageMarker = "GATEWAY-INLINE-PREVIEW-7c41e9"
)

// TestBrowserEnforcesGatewayPolicies checks the gateway's CORS, Referer and
// disposition answers with the only judge that matters for them, a real
// browser, since an HTTP client neither enforces CORS nor chooses between
// rendering and downloading.
//
// Layout, all on loopback:
//
//	emulator  127.0.0.1:E   public-read bucket: data.txt, pic.png, page.html
//	gateway   127.0.0.1:G   site "browser" for Host 127.0.0.1 (CORS, Referer, disposition auto)
//	                        site "download" for Host localhost (disposition attachment)
//	allowed   127.0.0.1:P   page origin the CORS and Referer rules allow
//	other     localhost:O   a different origin (host and port differ), allowed nothing
//
// Each origin serves a page whose script fetch()es http://127.0.0.1:G/data.txt
// and loads <img src=http://127.0.0.1:G/pic.png>, writing the outcomes into
// the DOM. The test drives headless Chromium over the DevTools protocol
// (see browser in chromium_test.go), waits for the page's own promise that
// both have settled, and reads the DOM back. Each check gets a fresh
// browser and profile, so no cache or state carries over between them.
//
// The fetch is made with referrerPolicy "no-referrer" so it is judged by the
// CORS rule alone (an empty Referer passes, allow_empty = true): the
// disallowed origin's fetch reaches OSS and gets a 200, and it is the
// browser that refuses the script the body because the gateway sent no
// Access-Control-Allow-Origin for that Origin. The <img> keeps Chromium's
// default referrer policy, strict-origin-when-cross-origin, which sends a
// cross-origin request only the page's origin plus "/", e.g.
// "http://127.0.0.1:P/"; the allow pattern "http://127.0.0.1:P/*" matches
// that ("*" matches the empty run), and "http://localhost:O/" matches
// nothing, so the gateway answers 403 before OSS is asked.
//
// Navigating straight to http://127.0.0.1:G/page.html shows the page inline:
// the emulator, like OSS on a default bucket domain, adds
// Content-Disposition: attachment and x-oss-force-download, and auto mode
// strips both. The negative control, http://localhost:G/page.html on the
// attachment site, must turn into a download (Chromium reports it; downloads
// are denied, so nothing is written) and not show the marker, proving the
// inline check can fail.
func TestBrowserEnforcesGatewayPolicies(t *testing.T) {
	bin := findChromium(t)

	emu := ossemu.New(ossemu.Options{})
	emu.CreateBucket(bucketName, ossemu.PublicRead)
	emu.PutObject(bucketName, "data.txt", []byte(secretText), http.Header{"Content-Type": {"text/plain"}})
	emu.PutObject(bucketName, "pic.png", tinyPNG(t), http.Header{"Content-Type": {"image/png"}})
	emu.PutObject(bucketName, "page.html",
		[]byte("<!doctype html><html><head><title>page</title></head><body><p id=marker>"+pageMarker+"</p></body></html>"),
		http.Header{"Content-Type": {"text/html"}})
	emuLn := listen(t)
	emuSrv := emu.Serve(emuLn)
	t.Cleanup(func() { emuSrv.Close() })
	emuAddr := emuLn.Addr().String()

	// Listeners first: the config needs the allowed page's port, the pages
	// need the gateway's.
	allowedLn, otherLn, gwLn, credLn := listen(t), listen(t), listen(t), listen(t)
	allowedOrigin := "http://" + allowedLn.Addr().String()
	otherOrigin := "http://localhost:" + port(otherLn)
	gwURL := "http://" + gwLn.Addr().String()
	controlURL := "http://localhost:" + port(gwLn)

	toml := fmt.Sprintf(`
[server]
https_listen = ""
http_listen = "127.0.0.1:0"
upstream_header_timeout = "5s"

[credentials]
source = "env"

[[site]]
name = "browser"
domains = ["127.0.0.1"]
bucket = %[1]q
region = "cn-hangzhou"
endpoint = "http://%[2]s"
access = "public"
tls = "off"

[site.referer]
allow_empty = true
allow = ["%[3]s/*"]

[[site.cors]]
allowed_origins = [%[3]q]
allowed_methods = ["GET", "HEAD"]

[site.disposition]
mode = "auto"

[[site]]
name = "download"
domains = ["localhost"]
bucket = %[1]q
region = "cn-hangzhou"
endpoint = "http://%[2]s"
access = "public"
tls = "off"

[site.disposition]
mode = "attachment"
`, bucketName, emuAddr, allowedOrigin)
	cfg, err := config.Parse("browser.toml", []byte(toml))
	if err != nil {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	h, err := proxy.New(cfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	gw := &recorder{next: h}
	serve(t, gwLn, gw)
	// The same gateway with allow_credentials on the CORS rule, for
	// fetch(..., {credentials: "include"}).
	credTOML := strings.Replace(toml, "allowed_methods = [\"GET\", \"HEAD\"]\n", "allowed_methods = [\"GET\", \"HEAD\"]\nallow_credentials = true\n", 1)
	credCfg, err := config.Parse("browser-cred.toml", []byte(credTOML))
	if err != nil || credTOML == toml {
		t.Fatalf("credentials config: %v", err)
	}
	credH, err := proxy.New(credCfg, proxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	credGW := &recorder{next: credH}
	serve(t, credLn, credGW)
	credURL := "http://" + credLn.Addr().String()
	serve(t, allowedLn, pageHandler(gwURL))
	serve(t, otherLn, pageHandler(gwURL))

	// Premise of the disposition checks: without the gateway, OSS (the
	// emulator) forces the download of page.html on its bucket domain.
	assertForcedByEmulator(t, emuAddr)

	t.Run("allowed origin reads the body and loads the image", func(t *testing.T) {
		gw.reset()
		emu.ResetRequests()
		dom := loadTestPage(t, bin, allowedOrigin+"/")
		wantInDOM(t, dom, `<div id="fetch">ok:`+secretText+`</div>`)
		wantInDOM(t, dom, `<div id="img">loaded:1x1</div>`)

		data := gw.find(t, "127.0.0.1", "/data.txt")
		if data.origin != allowedOrigin || data.status != 200 || data.acao != allowedOrigin {
			t.Errorf("data.txt: Origin %q, status %d, Access-Control-Allow-Origin %q; want %q, 200, %q",
				data.origin, data.status, data.acao, allowedOrigin, allowedOrigin)
		}
		pic := gw.find(t, "127.0.0.1", "/pic.png")
		if pic.referer != allowedOrigin+"/" || pic.status != 200 {
			t.Errorf("pic.png: Referer %q, status %d; want %q (strict-origin-when-cross-origin), 200",
				pic.referer, pic.status, allowedOrigin+"/")
		}
		if n := upstream(emu, "pic.png"); n != 1 {
			t.Errorf("pic.png reached OSS %d times, want 1", n)
		}
	})

	t.Run("disallowed origin is blocked by the browser and the referer rule", func(t *testing.T) {
		gw.reset()
		emu.ResetRequests()
		dom := loadTestPage(t, bin, otherOrigin+"/")
		wantInDOM(t, dom, `<div id="fetch">blocked:TypeError</div>`)
		wantInDOM(t, dom, `<div id="img">error</div>`)
		if strings.Contains(dom, secretText) {
			t.Errorf("the disallowed page's DOM holds %s:\n%s", secretText, dom)
		}

		// The gateway served the body (200), just without CORS headers:
		// it is the browser that kept it from the script.
		data := gw.find(t, "127.0.0.1", "/data.txt")
		if data.origin != otherOrigin || data.status != 200 || data.acao != "" {
			t.Errorf("data.txt: Origin %q, status %d, Access-Control-Allow-Origin %q; want %q, 200, none",
				data.origin, data.status, data.acao, otherOrigin)
		}
		if n := upstream(emu, "data.txt"); n != 1 {
			t.Errorf("data.txt reached OSS %d times, want 1", n)
		}
		// The image was refused by the Referer rule, before OSS.
		pic := gw.find(t, "127.0.0.1", "/pic.png")
		if pic.referer != otherOrigin+"/" || pic.status != 403 {
			t.Errorf("pic.png: Referer %q, status %d; want %q, 403", pic.referer, pic.status, otherOrigin+"/")
		}
		if n := upstream(emu, "pic.png"); n != 0 {
			t.Errorf("a Referer-denied pic.png reached OSS %d times", n)
		}
	})

	t.Run("credentialed fetch needs allow_credentials", func(t *testing.T) {
		gw.reset()
		credGW.reset()
		p := startBrowser(t, bin).newPage()
		p.navigate(allowedOrigin + "/")
		const fetchJS = `fetch(%q, {credentials: "include", referrerPolicy: "no-referrer", cache: "no-store"})
			.then(r => r.text()).then(t => "ok:" + t, e => "blocked:" + e.name)`
		// Without allow_credentials the gateway echoes the Origin but does
		// not allow credentials: the browser keeps the body from the script.
		if got := p.eval(fmt.Sprintf(fetchJS, gwURL+"/data.txt")); got != "blocked:TypeError" {
			t.Errorf("credentialed fetch without allow_credentials: %q, want blocked:TypeError", got)
		}
		if got := p.eval(fmt.Sprintf(fetchJS, credURL+"/data.txt")); got != "ok:"+secretText {
			t.Errorf("credentialed fetch with allow_credentials: %q, want ok:%s", got, secretText)
		}
		data := credGW.find(t, "127.0.0.1", "/data.txt")
		if data.origin != allowedOrigin || data.acao != allowedOrigin {
			t.Errorf("credentialed data.txt: Origin %q, Access-Control-Allow-Origin %q; want the origin echoed", data.origin, data.acao)
		}
	})

	t.Run("auto disposition opens HTML inline", func(t *testing.T) {
		gw.reset()
		b := startBrowser(t, bin)
		b.denyDownloads()
		p := b.newPage()
		p.navigate(gwURL + "/page.html")
		dom := p.dom()
		wantInDOM(t, dom, `<p id="marker">`+pageMarker+`</p>`)
		page := gw.find(t, "127.0.0.1", "/page.html")
		if page.status != 200 || page.disposition != "" || page.forced != "" {
			t.Errorf("page.html: status %d, Content-Disposition %q, x-oss-force-download %q; want 200 and neither",
				page.status, page.disposition, page.forced)
		}
	})

	// The negative control: the same check against a site that forces the
	// download must see a download and no marker, or the check above
	// proves nothing.
	t.Run("negative control: attachment disposition downloads", func(t *testing.T) {
		gw.reset()
		b := startBrowser(t, bin)
		b.denyDownloads()
		p := b.newPage()
		d, navErr := p.navigateToDownload(controlURL + "/page.html")
		if d.URL != controlURL+"/page.html" || d.SuggestedFilename != "page.html" {
			t.Errorf("download: %+v; want %s/page.html saved as page.html", d, controlURL)
		}
		t.Logf("navigation: %q, download: %+v", navErr, d)
		if dom := p.dom(); strings.Contains(dom, pageMarker) {
			t.Errorf("disposition attachment: the browser rendered page.html instead of downloading it:\n%s", dom)
		}
		page := gw.find(t, "localhost", "/page.html")
		if page.status != 200 || !strings.HasPrefix(page.disposition, "attachment") {
			t.Errorf("page.html: status %d, Content-Disposition %q; want 200, attachment", page.status, page.disposition)
		}
	})
}

// loadTestPage opens url (a test page) in a fresh browser and returns its
// DOM once the page's fetch and image have both settled.
func loadTestPage(t *testing.T, bin, url string) string {
	t.Helper()
	p := startBrowser(t, bin).newPage()
	p.navigate(url)
	return p.eval("window.settled.then(() => document.documentElement.outerHTML)")
}

// pageHTML is the test page. Its script records the outcome of a
// cross-origin fetch() and of a cross-origin <img> in the DOM, and exposes
// window.settled, a promise that resolves once both are recorded.
const pageHTML = `<!doctype html>
<html><head><title>browser test</title></head>
<body>
<div id="fetch">pending</div>
<div id="img">pending</div>
<script>
const gw = %q;
function put(id, text) { document.getElementById(id).textContent = text; }
const fetched = fetch(gw + "/data.txt", {referrerPolicy: "no-referrer", cache: "no-store"})
	.then(r => r.text())
	.then(t => put("fetch", "ok:" + t), e => put("fetch", "blocked:" + e.name));
const img = document.createElement("img");
const loaded = new Promise(resolve => {
	img.onload = () => resolve(put("img", "loaded:" + img.naturalWidth + "x" + img.naturalHeight));
	img.onerror = () => resolve(put("img", "error"));
});
img.src = gw + "/pic.png";
document.body.appendChild(img);
window.settled = Promise.all([fetched, loaded]);
</script>
</body></html>
`

// pageHandler serves the test page at "/" and nothing else.
func pageHandler(gwURL string) http.Handler {
	body := fmt.Sprintf(pageHTML, gwURL)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, body)
	})
}

// tinyPNG is a real 1x1 PNG, so that a loaded image proves decoding worked.
func tinyPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 1, 1))
	img.Set(0, 0, color.RGBA{R: 200, G: 30, B: 30, A: 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// assertForcedByEmulator checks that the emulator itself forces the download
// of page.html on its bucket domain, so that the inline result is the
// gateway's doing.
func assertForcedByEmulator(t *testing.T, emuAddr string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+emuAddr+"/page.html", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = bucketName + "." + emuAddr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Disposition") != "attachment" || resp.Header.Get("X-Oss-Force-Download") != "true" {
		t.Fatalf("emulator page.html: %d, Content-Disposition %q, x-oss-force-download %q; the test assumes a forced download",
			resp.StatusCode, resp.Header.Get("Content-Disposition"), resp.Header.Get("X-Oss-Force-Download"))
	}
}

func wantInDOM(t *testing.T, dom, want string) {
	t.Helper()
	if !strings.Contains(dom, want) {
		t.Errorf("DOM lacks %q:\n%s", want, dom)
	}
}

// upstream counts the requests for key that reached the emulator.
func upstream(emu *ossemu.Emulator, key string) int {
	n := 0
	for _, r := range emu.Requests() {
		if r.Bucket == bucketName && r.Key == key {
			n++
		}
	}
	return n
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func port(ln net.Listener) string {
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// serve serves h on ln until the test ends.
func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
}

// seen is one request the gateway answered, as the browser saw it.
type seen struct {
	host, path      string
	origin, referer string
	status          int
	acao            string // Access-Control-Allow-Origin
	disposition     string // Content-Disposition
	forced          string // x-oss-force-download
}

// recorder wraps the gateway and logs what it answered, so the test can
// tell the gateway's decision from the browser's.
type recorder struct {
	next http.Handler
	mu   sync.Mutex
	log  []seen
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	// Logged when the status goes out, before the browser can have the
	// response, so the log is complete by the time Chromium exits.
	sw := &statusWriter{ResponseWriter: w, sent: func(status int, h http.Header) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		rec.log = append(rec.log, seen{
			host: host, path: r.URL.Path,
			origin: r.Header.Get("Origin"), referer: r.Header.Get("Referer"),
			status:      status,
			acao:        h.Get("Access-Control-Allow-Origin"),
			disposition: h.Get("Content-Disposition"),
			forced:      h.Get("X-Oss-Force-Download"),
		})
	}}
	rec.next.ServeHTTP(sw, r)
	sw.snapshot(http.StatusOK)
}

func (rec *recorder) reset() {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	rec.log = nil
}

// find returns the one request for host and path, failing unless there is
// exactly one.
func (rec *recorder) find(t *testing.T, host, path string) seen {
	t.Helper()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var got []seen
	for _, s := range rec.log {
		if s.host == host && s.path == path {
			got = append(got, s)
		}
	}
	if len(got) != 1 {
		t.Fatalf("gateway saw %d requests for http://%s%s, want 1; all: %+v", len(got), host, path, rec.log)
	}
	return got[0]
}

// statusWriter reports the status and the headers as they are sent.
type statusWriter struct {
	http.ResponseWriter
	sent func(status int, h http.Header)
	done bool
}

func (w *statusWriter) snapshot(status int) {
	if !w.done {
		w.done = true
		w.sent(status, w.ResponseWriter.Header().Clone())
	}
}

func (w *statusWriter) WriteHeader(code int) {
	if code >= 200 || code == http.StatusSwitchingProtocols {
		w.snapshot(code)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	w.snapshot(http.StatusOK)
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Flush() {
	w.snapshot(http.StatusOK)
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the real writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
