// Command herd is the bench kit's client for the cache runs of
// bench/run.sh. It checks every body it reads: byte o of every object the
// bench upstream serves is o % 251, so a length and that pattern prove a
// cached or coalesced body whole and correct.
//
//	herd -url http://127.0.0.1:18086/obj/herd/64m -n 500 [-host H]
//		n concurrent GETs of one URL, released together (the thundering
//		herd on a cold object): every answer must be 200 with the whole
//		body.
//	herd -url 'http://127.0.0.1:18086/obj/%d/1k' -keys 32768 [-from 0] [-c 128] [-want-header X-Cache=HIT]
//		one GET of each key from..keys-1 (%d in the URL) with c at a time:
//		warms a cache with a hot set, or (with -want-header) checks that
//		every key is now a hit.
//
// It prints one line of key=value results and exits 1 when any request
// failed a check.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oss-gateway/gateway/bench/internal/synth"
)

// The body pattern (package synth): byte o of every object is o % period.
const (
	period = synth.Period
	chunk  = synth.Chunk
)

// pattern[start%period:][:n] is the next n <= chunk bytes of any body.
var pattern = synth.Pattern()

// checkBody reads r to its end and reports how many bytes it had and
// whether all of them follow the pattern; buf is scratch of chunk bytes.
func checkBody(r io.Reader, buf []byte) (n int64, ok bool, err error) {
	ok = true
	for {
		k, rerr := r.Read(buf)
		if k > 0 {
			off := int(n % period)
			if ok && !bytes.Equal(buf[:k], pattern[off:off+k]) {
				ok = false
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, ok, nil
		}
		if rerr != nil {
			return n, ok, rerr
		}
	}
}

// result is one request's outcome.
type result struct {
	status     int
	n          int64
	want       int64 // Content-Length, or -1
	ok         bool  // 200, a whole body of the pattern, the wanted header
	header     string
	err        error
	ttfb, took time.Duration
}

// config is what one invocation does.
type config struct {
	url        string // with %d for the key number in warm mode
	host       string
	n          int // herd: concurrent requests of url
	from, keys int // warm: keys from..keys-1
	conc       int
	size       int64  // expected body length; 0 = the Content-Length
	wantName   string // header checked on every answer, e.g. X-Cache
	wantValue  string
	reportName string // header whose values are counted
	timeout    time.Duration
}

func newClient(conns int, timeout time.Duration) *http.Client {
	return &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			DisableCompression:  true,
			ForceAttemptHTTP2:   false,
			ReadBufferSize:      64 << 10,
		},
	}
}

// get does one GET and checks it.
func get(ctx context.Context, c *http.Client, cfg *config, url string, buf []byte) result {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return result{err: err}
	}
	if cfg.host != "" {
		req.Host = cfg.host
	}
	resp, err := c.Do(req)
	if err != nil {
		return result{err: err, took: time.Since(start)}
	}
	defer resp.Body.Close()
	r := result{status: resp.StatusCode, want: resp.ContentLength, ttfb: time.Since(start)}
	if cfg.reportName != "" {
		r.header = resp.Header.Get(cfg.reportName)
	}
	r.n, r.ok, r.err = checkBody(resp.Body, buf)
	r.took = time.Since(start)
	want := cfg.size
	if want == 0 {
		want = r.want
	}
	r.ok = r.ok && r.err == nil && r.status == http.StatusOK && r.n == want && want >= 0
	if cfg.wantName != "" && resp.Header.Get(cfg.wantName) != cfg.wantValue {
		r.ok = false
	}
	return r
}

var bufs = sync.Pool{New: func() any { return make([]byte, chunk) }}

// herd sends cfg.n GETs of cfg.url at once: every goroutine has its
// connection's request ready and they are released together.
func herd(ctx context.Context, cfg *config) []result {
	c := newClient(cfg.n, cfg.timeout)
	out := make([]result, cfg.n)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	for i := range cfg.n {
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			buf := bufs.Get().([]byte)
			defer bufs.Put(buf)
			ready.Done()
			<-gate
			out[i] = get(ctx, c, cfg, cfg.url, buf)
		}()
	}
	ready.Wait()
	close(gate)
	done.Wait()
	return out
}

// warm GETs each key from..keys-1 once, cfg.conc at a time.
func warm(ctx context.Context, cfg *config) []result {
	c := newClient(cfg.conc, cfg.timeout)
	out := make([]result, cfg.keys-cfg.from)
	var next atomic.Int64
	next.Store(int64(cfg.from))
	var wg sync.WaitGroup
	for range cfg.conc {
		wg.Go(func() {
			buf := bufs.Get().([]byte)
			defer bufs.Put(buf)
			for {
				k := int(next.Add(1) - 1)
				if k >= cfg.keys {
					return
				}
				out[k-cfg.from] = get(ctx, c, cfg, strings.Replace(cfg.url, "%d", strconv.Itoa(k), 1), buf)
			}
		})
	}
	wg.Wait()
	return out
}

// summary is the key=value line for results.
func summary(rs []result, wall time.Duration, reportName string) (string, bool) {
	var ok, bad, neterr int
	var bytesIn int64
	statuses := map[int]int{}
	headers := map[string]int{}
	var ttfb, took []time.Duration
	var firstErr error
	for _, r := range rs {
		bytesIn += r.n
		if r.err != nil && r.status == 0 {
			neterr++
		} else {
			statuses[r.status]++
		}
		if r.ok {
			ok++
		} else {
			bad++
			if firstErr == nil {
				firstErr = r.err
				if firstErr == nil {
					firstErr = fmt.Errorf("status %d, %d bytes (Content-Length %d), header %q", r.status, r.n, r.want, r.header)
				}
			}
		}
		if reportName != "" {
			v := r.header
			if v == "" {
				v = "-"
			}
			headers[v]++
		}
		ttfb = append(ttfb, r.ttfb)
		took = append(took, r.took)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "requests=%d ok=%d bad=%d net_errors=%d bytes=%d wall_ms=%.1f", len(rs), ok, bad, neterr, bytesIn, ms(wall))
	fmt.Fprintf(&b, " statuses=%s", joinCounts(statuses))
	if reportName != "" {
		hs := map[string]int{}
		for k, v := range headers {
			hs[k] = v
		}
		fmt.Fprintf(&b, " %s=%s", strings.ToLower(reportName), joinStrCounts(hs))
	}
	fmt.Fprintf(&b, " ttfb_ms_p50=%.1f ttfb_ms_max=%.1f total_ms_p50=%.1f total_ms_max=%.1f", ms(pct(ttfb, 50)), ms(pct(ttfb, 100)), ms(pct(took, 50)), ms(pct(took, 100)))
	if firstErr != nil {
		fmt.Fprintf(&b, " first_error=%q", firstErr.Error())
	}
	return b.String(), bad == 0
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// pct is the p-th percentile (nearest rank) of ds; it sorts ds.
func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	i := (len(ds)*p + 99) / 100
	return ds[max(i, 1)-1]
}

func joinCounts(m map[int]int) string {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d:%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ",")
}

func joinStrCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+":"+strconv.Itoa(m[k]))
	}
	return strings.Join(parts, ",")
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("herd", flag.ContinueOnError)
	cfg := &config{}
	fs.StringVar(&cfg.url, "url", "", "URL to GET; with %d, the key number (warm mode)")
	fs.StringVar(&cfg.host, "host", "", "Host header")
	fs.IntVar(&cfg.n, "n", 500, "herd: concurrent GETs of -url")
	fs.IntVar(&cfg.from, "from", 0, "warm: first key number")
	fs.IntVar(&cfg.keys, "keys", 0, "warm: GET keys -from..keys-1 once each (needs %d in -url)")
	fs.IntVar(&cfg.conc, "c", 128, "warm: requests at a time")
	fs.Int64Var(&cfg.size, "size", 0, "expected body length (0 = the Content-Length)")
	want := fs.String("want-header", "", "NAME=VALUE every answer must carry, e.g. X-Cache=HIT")
	fs.StringVar(&cfg.reportName, "report-header", "", "header whose values are counted, e.g. X-Cache")
	fs.DurationVar(&cfg.timeout, "timeout", 5*time.Minute, "per-request timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.url == "" {
		return errors.New("-url is required")
	}
	if *want != "" {
		name, value, ok := strings.Cut(*want, "=")
		if !ok {
			return fmt.Errorf("-want-header %q: want NAME=VALUE", *want)
		}
		cfg.wantName, cfg.wantValue = name, value
		if cfg.reportName == "" {
			cfg.reportName = name
		}
	}
	warmMode := strings.Contains(cfg.url, "%d")
	switch {
	case warmMode && (cfg.keys <= cfg.from || cfg.from < 0 || cfg.conc < 1):
		return fmt.Errorf("warm mode (%%d in -url) needs 0 <= -from < -keys and -c >= 1")
	case !warmMode && cfg.n < 1:
		return errors.New("-n must be at least 1")
	}
	start := time.Now()
	var rs []result
	if warmMode {
		rs = warm(context.Background(), cfg)
	} else {
		rs = herd(context.Background(), cfg)
	}
	line, ok := summary(rs, time.Since(start), cfg.reportName)
	fmt.Fprintln(stdout, line)
	if !ok {
		return errFailed
	}
	return nil
}

var errFailed = errors.New("some requests failed their checks")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "herd:", err)
		os.Exit(1)
	}
}
