// Package check implements `gateway check`: it proves, before a deploy or a
// reload, that a valid config will also work against the real world. It
// resolves every upstream host, signs a request to every bucket with the
// configured credentials (or reads public buckets anonymously, as the
// gateway does), reports each domain's certificate and each custom domain's
// CNAME binding, and says for each finding whether it is fine, worth a
// look, or fatal.
//
// The probes run in parallel, all of them within one timeout, so a
// blackholed endpoint or a metadata service that never answers makes its
// row FAIL rather than the command hang, and a slow site does not hold
// the others' rows back (Options.Progress gets each as it finishes). Secrets never reach the report: an AccessKey ID is shown by
// its first four characters only, and provider errors are cut before any
// response body they quote.
package check

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
	proxyupstream "github.com/oss-gateway/gateway/proxy/upstream"
	gwtls "github.com/oss-gateway/gateway/tls"
)

// Status is the verdict of one row. Only FAIL makes `gateway check` exit
// non-zero: a WARN is something an operator should read but that does not
// stop the gateway from serving.
type Status string

// The three verdicts, spelled as the table prints them: problems in capitals
// so they stand out in a column of "ok".
const (
	OK   Status = "ok"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Row is one finding: which site (or "-" for config-wide ones), what was
// checked, against what (a host, a domain, a bucket), the verdict and a
// one-line explanation an operator can act on.
type Row struct {
	Site   string
	Check  string
	Target string
	Status Status
	Detail string
}

// Report is the outcome of a Run, rows in a stable order (config-wide rows
// first, then each site in config order), so that two runs on the same
// world print the same table.
type Report struct {
	Rows []Row
}

// Failed reports whether any row failed; `gateway check` exits 1 then.
func (r Report) Failed() bool {
	return slices.ContainsFunc(r.Rows, func(row Row) bool { return row.Status == Fail })
}

// Count returns how many rows have status s, for the summary line and for
// callers (tests, wrappers) that want the numbers without parsing text.
func (r Report) Count(s Status) int {
	n := 0
	for _, row := range r.Rows {
		if row.Status == s {
			n++
		}
	}
	return n
}

// Print writes the report as an aligned table with columns SITE, CHECK,
// TARGET, STATUS and DETAIL, then a summary line, so the output reads well
// in a terminal and greps well in CI logs (one finding per line).
func (r Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SITE\tCHECK\tTARGET\tSTATUS\tDETAIL")
	for _, row := range r.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n",
			cell(row.Site), cell(row.Check), cell(row.Target), cell(string(row.Status)), oneLine(row.Detail))
	}
	_ = tw.Flush()
	r.summary(w)
}

// summary writes the line that ends a printed report.
func (r Report) summary(w io.Writer) {
	fmt.Fprintf(w, "%d checks: %d ok, %d warnings, %d failures\n",
		len(r.Rows), r.Count(OK), r.Count(Warn), r.Count(Fail))
}

// cell keeps a table cell on one line and never empty (an empty cell makes
// a column hard to read).
func cell(s string) string {
	s = strings.ReplaceAll(oneLine(s), "\t", " ")
	if s == "" {
		return "-"
	}
	return s
}

// Resolver looks up host names; *net.Resolver satisfies it. It is an
// interface so tests can make a name fail to resolve without DNS.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

// Options replace what Run would otherwise take from the environment, for
// tests and for callers that already hold these things.
type Options struct {
	// Credentials replaces the provider [credentials] names.
	Credentials credentials.CredentialsProvider
	// Resolver looks up endpoint host names; nil = net.DefaultResolver.
	Resolver Resolver
	// HTTPClient makes the anonymous requests to public buckets; nil = a
	// client that, like the gateway's transport, ignores environment
	// proxies. Redirects are never followed, whichever client is used.
	HTTPClient *http.Client
	// RootCAs overrides the system roots for HTTPS to OSS (tests against a
	// TLS emulator).
	RootCAs *x509.CertPool
	// Now is the clock certificates are judged by; nil = time.Now.
	Now func() time.Time
	// Timeout bounds the whole run: every probe runs in parallel with the
	// others, and one still unanswered when it passes fails its row;
	// 0 = DefaultTimeout.
	Timeout time.Duration
	// Progress, when set, gets each row as soon as it is known: the
	// config rows first, then each probe's as it finishes. Calls never
	// overlap. Report.Rows has the same rows in a stable order.
	Progress func(Row)
}

// DefaultTimeout bounds a Run whose Options.Timeout is 0.
const DefaultTimeout = 30 * time.Second

// ExpiryWarning is how close to its expiry a certificate becomes a warning:
// ACME renews at a third of a 90-day lifetime, so a certificate this close
// to the end means renewal is failing, and a files certificate needs a human.
const ExpiryWarning = 14 * 24 * time.Hour

// maxParallelSites bounds how many sites are probed at once (each runs its
// probes in parallel too).
const maxParallelSites = 16

// ConfigRows are the rows a loaded config gives without any network: that
// it is valid, and each of its warnings. Run starts with them; `gateway
// check -offline` prints only them.
func ConfigRows(cfg *config.Config) []Row {
	rows := []Row{{Site: "-", Check: "config", Target: cfg.Path, Status: OK,
		Detail: fmt.Sprintf("valid, %d site(s)", len(cfg.Sites))}}
	for _, w := range cfg.Warnings() {
		rows = append(rows, Row{Site: "-", Check: "config", Target: cfg.Path, Status: Warn,
			Detail: strings.TrimPrefix(w, cfg.Path+": ")})
	}
	return rows
}

// Run checks cfg (already loaded and validated by config.Load and
// Validate) against the world and returns every finding. Every probe runs
// in parallel within o.Timeout, and Run never returns early: an operator
// fixing a deploy wants every problem in one run, not one per run.
func Run(ctx context.Context, cfg *config.Config, o Options) Report {
	if o.Resolver == nil {
		o.Resolver = net.DefaultResolver
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient(cfg.Server.UpstreamDialTimeout.D(), o.RootCAs)
	}
	c := *o.HTTPClient
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.HTTPClient = &c
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()

	out := &emitter{progress: o.Progress}
	var r Report
	for _, row := range ConfigRows(cfg) {
		out.emit(row)
		r.Rows = append(r.Rows, row)
	}

	// Credentials resolve while the probes that need none (DNS, anonymous
	// reads, certificate files) already run; signed probes wait for them.
	creds := &credentialsResult{done: make(chan struct{})}
	go func() {
		defer close(creds.done)
		creds.provider, creds.row = resolveCredentials(ctx, cfg, o)
		out.emit(creds.row)
	}()

	checks := make([]*siteCheck, len(cfg.Sites))
	sem := make(chan struct{}, maxParallelSites)
	var wg sync.WaitGroup
	for i := range cfg.Sites {
		sc := &siteCheck{cfg: cfg, site: &cfg.Sites[i], o: o, creds: creds, out: out}
		checks[i] = sc
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
			}
			sc.run(ctx)
		}()
	}
	wg.Wait()
	<-creds.done
	r.Rows = append(r.Rows, creds.row)
	for _, sc := range checks {
		r.Rows = append(r.Rows, sc.rows()...)
	}
	return r
}

// emitter hands rows to Options.Progress one at a time.
type emitter struct {
	mu       sync.Mutex
	progress func(Row)
}

func (e *emitter) emit(r Row) {
	if e.progress == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.progress(r)
}

// credentialsResult is the outcome of resolving the credentials, ready
// once done is closed.
type credentialsResult struct {
	done     chan struct{}
	provider credentials.CredentialsProvider // nil: they did not resolve
	row      Row
}

// wait returns the resolved provider (nil when there is none).
func (c *credentialsResult) wait() credentials.CredentialsProvider {
	<-c.done
	return c.provider
}

// defaultHTTPClient is the client for anonymous probes: no environment
// proxy (the gateway uses none) and the configured dial timeout.
func defaultHTTPClient(dial time.Duration, roots *x509.CertPool) *http.Client {
	if dial <= 0 {
		dial = 5 * time.Second
	}
	d := &net.Dialer{Timeout: dial}
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   dial + 5*time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableKeepAlives:     true,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: roots},
	}}
}

// resolveCredentials asks the provider for keys once and returns a static
// provider holding them (so every later call signs with the same keys and
// no call waits on a process or the metadata service again), or nil when
// they cannot be had. A failure is fatal only when something needs keys (a
// private site, or ACME certificates kept on OSS): public sites forward
// unsigned.
func resolveCredentials(ctx context.Context, cfg *config.Config, o Options) (credentials.CredentialsProvider, Row) {
	source := cfg.Credentials.Source
	if source == "" {
		source = "env"
	}
	row := Row{Site: "-", Check: "credentials", Target: "source " + source}
	var needs []string
	if slices.ContainsFunc(cfg.Sites, func(s config.Site) bool { return s.Access == "private" }) {
		needs = append(needs, "private sites cannot sign")
	}
	if strings.HasPrefix(cfg.TLS.Storage, "oss://") && slices.ContainsFunc(cfg.Sites, func(s config.Site) bool { return s.TLS == "acme" }) {
		needs = append(needs, "the oss:// certificate storage cannot be read")
	}
	failed := func(why string) (credentials.CredentialsProvider, Row) {
		row.Status = Warn
		row.Detail = why + "; only public sites are configured, and they forward unsigned"
		if len(needs) > 0 {
			row.Status = Fail
			row.Detail = why + "; " + strings.Join(needs, ", and ")
		}
		return nil, row
	}

	p := o.Credentials
	if p == nil {
		var err error
		if p, err = ossclient.NewCredentialsProvider(cfg.Credentials); err != nil {
			return failed(redact(err))
		}
	}
	c, err := within(ctx, o.Timeout, p.GetCredentials)
	if err != nil {
		return failed("cannot resolve: " + redact(err))
	}
	if !c.HasKeys() {
		return failed("the provider returned no AccessKey")
	}
	row.Status = OK
	row.Detail = "AccessKey " + maskID(c.AccessKeyID) + " resolved"
	if c.SecurityToken != "" {
		row.Detail += " (STS, with a security token)"
	}
	if c.Expires != nil {
		row.Detail += ", expires " + c.Expires.UTC().Format(time.RFC3339)
	}
	return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.AccessKeySecret, c.SecurityToken), row
}

// maskID shows at most the first four characters of an AccessKey ID: enough
// to tell which key is in use, too little to be a secret's worth.
func maskID(id string) string {
	n := min(4, len(id)/2)
	return id[:n] + "…"
}

// redact keeps a provider's error readable but cuts anything it echoes
// from its source (the SDK's ECS provider quotes the metadata response,
// which can hold a security token), as the proxy does in its logs.
func redact(err error) string {
	msg := oneLine(err.Error())
	if i := strings.Index(msg, "response body"); i >= 0 {
		msg = msg[:i] + "(response body withheld)"
	}
	return clip(msg, 200)
}

// within runs f and returns when either f does or ctx (which carries the
// run's timeout d) is done, so that a callee that ignores its context (a
// credentials process, a storage backend) still cannot hang the check.
func within[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f(ctx)
		ch <- result{v, err}
	}()
	select {
	case res := <-ch:
		return res.v, res.err
	case <-ctx.Done():
		var zero T
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return zero, fmt.Errorf("no answer within %s", d)
		}
		return zero, ctx.Err()
	}
}

// siteCheck runs the probes of one site in parallel. Each probe writes
// only its own slot, so the report keeps a stable order (endpoint,
// fallback, bucket, cname, tls) whatever order they finish in.
type siteCheck struct {
	cfg   *config.Config
	site  *config.Site
	o     Options
	creds *credentialsResult
	out   *emitter
	slots [numSlots][]Row
}

// The probes of a site, in report order.
const (
	slotEndpoint = iota
	slotFallback
	slotBucket
	slotCname
	slotTLS
	numSlots
)

func (sc *siteCheck) add(slot int, check, target string, st Status, format string, args ...any) {
	row := Row{Site: sc.site.Name, Check: check, Target: target, Status: st, Detail: fmt.Sprintf(format, args...)}
	sc.slots[slot] = append(sc.slots[slot], row)
	sc.out.emit(row)
}

// rows are the site's rows in report order, once run returned.
func (sc *siteCheck) rows() []Row {
	var rows []Row
	for _, s := range sc.slots {
		rows = append(rows, s...)
	}
	return rows
}

// signer waits for the credentials; nil when they did not resolve.
func (sc *siteCheck) signer() credentials.CredentialsProvider { return sc.creds.wait() }

func (sc *siteCheck) run(ctx context.Context) {
	s := sc.site
	var wg sync.WaitGroup
	goProbe := func(f func()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f()
		}()
	}
	goProbe(func() {
		primary, err := upstreamFor(s, s.Endpoint)
		if err != nil {
			sc.add(slotEndpoint, "endpoint", s.Endpoint, Fail, "%v", err)
			return
		}
		if !sc.resolve(ctx, slotEndpoint, "endpoint", primary) {
			return
		}
		goProbe(func() { sc.bucket(ctx, primary) })
		goProbe(func() { sc.cname(ctx) })
	})
	if s.FallbackEndpoint != "" {
		goProbe(func() {
			if fb, err := upstreamFor(s, s.FallbackEndpoint); err != nil {
				sc.add(slotFallback, "fallback", s.FallbackEndpoint, Fail, "%v", err)
			} else {
				sc.resolve(ctx, slotFallback, "fallback", fb)
			}
		})
	}
	goProbe(func() { sc.tls(ctx) })
	wg.Wait()
}

// upstream is where a site's requests go, by the same upstream addressing
// rules as the proxy.
type upstream struct {
	scheme string // http or https
	addr   string // host[:port] connected to (and the TLS SNI)
	host   string // host name of addr, looked up in DNS
	header string // Host header sent
}

// upstreamFor returns the upstream of endpoint (a keyword or a URL) for s,
// addressed exactly as the proxy addresses it.
func upstreamFor(s *config.Site, endpoint string) (upstream, error) {
	a, err := proxyupstream.Resolve(s, endpoint)
	if err != nil {
		return upstream{}, err
	}
	return upstream{scheme: a.Scheme, addr: a.Addr, host: hostOnly(a.Addr), header: a.Host}, nil
}

// hostOnly strips a port and IPv6 brackets from host[:port].
func hostOnly(hp string) string {
	if h, _, err := net.SplitHostPort(hp); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hp, "["), "]")
}

// resolve looks up the host an upstream connects to and reports whether it
// resolved (an IP literal needs no lookup).
func (sc *siteCheck) resolve(ctx context.Context, slot int, check string, u upstream) bool {
	if net.ParseIP(u.host) != nil {
		sc.add(slot, check, u.host, OK, "IP address, no lookup needed")
		return true
	}
	addrs, err := within(ctx, sc.o.Timeout, func(ctx context.Context) ([]string, error) {
		return sc.o.Resolver.LookupHost(ctx, u.host)
	})
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		detail := "does not resolve: " + clip(oneLine(err.Error()), 200)
		if check == "endpoint" {
			detail += " (bucket and CNAME checks skipped)"
		}
		sc.add(slot, check, u.host, Fail, "%s", detail)
		return false
	}
	shown := addrs
	more := ""
	if len(shown) > 3 {
		shown, more = shown[:3], fmt.Sprintf(" (+%d more)", len(addrs)-3)
	}
	sc.add(slot, check, u.host, OK, "resolves to %s%s", strings.Join(shown, ", "), more)
	return true
}

// client is an SDK client for the site's bucket signing with the resolved
// credentials.
func (sc *siteCheck) client(signer credentials.CredentialsProvider) (*oss.Client, error) {
	return ossclient.New(ossclient.ForSite(sc.site), signer, ossclient.Options{
		DialTimeout: sc.cfg.Server.UpstreamDialTimeout.D(),
		RootCAs:     sc.o.RootCAs,
	})
}

// bucket proves the gateway can read the site's bucket the way it will:
// signed for a private site, anonymously for a public one.
func (sc *siteCheck) bucket(ctx context.Context, u upstream) {
	s := sc.site
	if s.Access == "private" {
		signer := sc.signer()
		if signer == nil {
			sc.add(slotBucket, "bucket", s.Bucket, Fail, "not checked: no credentials to sign with (see the credentials row)")
			return
		}
		st, detail := sc.signedRead(ctx, signer)
		sc.add(slotBucket, "bucket", s.Bucket, st, "%s", detail)
		return
	}

	st, detail := sc.anonymousRead(ctx, u)
	if signer := sc.signer(); st == OK && signer != nil {
		// The gateway never signs for a public site, so the credentials
		// failing here only matters to other tools (CNAME, storage).
		if sst, sdetail := sc.signedRead(ctx, signer); sst != OK {
			st, detail = Warn, detail+"; but the credentials cannot read it: "+sdetail
		}
	}
	sc.add(slotBucket, "bucket", s.Bucket, st, "%s", detail)
}

// signedRead calls GetBucketInfo with V4. A RAM policy may grant object
// reads without oss:GetBucketInfo; when OSS denies GetBucketInfo, a signed
// HEAD of a key that does not exist tells the two apart (404 means the
// request was authorised).
func (sc *siteCheck) signedRead(ctx context.Context, signer credentials.CredentialsProvider) (Status, string) {
	c, err := sc.client(signer)
	if err != nil {
		return Fail, err.Error()
	}
	bucket := sc.site.Bucket
	info, err := within(ctx, sc.o.Timeout, func(ctx context.Context) (*oss.GetBucketInfoResult, error) {
		return c.GetBucketInfo(ctx, &oss.GetBucketInfoRequest{Bucket: oss.Ptr(bucket)})
	})
	if err == nil {
		d := "signed GetBucketInfo ok"
		var extra []string
		if info.BucketInfo.ACL != nil {
			extra = append(extra, "ACL "+*info.BucketInfo.ACL)
		}
		if info.BucketInfo.Location != nil {
			extra = append(extra, "location "+*info.BucketInfo.Location)
		}
		if len(extra) > 0 {
			d += " (" + strings.Join(extra, ", ") + ")"
		}
		return OK, d
	}
	var se *oss.ServiceError
	if errors.As(err, &se) && se.Code == "AccessDenied" {
		key := sc.site.Prefix + randomKey()
		_, herr := within(ctx, sc.o.Timeout, func(ctx context.Context) (*oss.HeadObjectResult, error) {
			return c.HeadObject(ctx, &oss.HeadObjectRequest{Bucket: oss.Ptr(bucket), Key: oss.Ptr(key)})
		})
		var hse *oss.ServiceError
		if errors.As(herr, &hse) && hse.StatusCode == http.StatusNotFound && hse.Code != "NoSuchBucket" {
			return OK, "GetBucketInfo denied (" + describe(err) + "), but a signed HEAD of a missing key answered 404: the credentials can read objects"
		}
	}
	return Fail, "signed GetBucketInfo failed: " + describe(err)
}

// anonymousRead sends what the gateway sends for a public site, an unsigned
// request over the site's upstream, for a key that does not exist: 404
// NoSuchKey proves the bucket is there and anonymous reads reach it
// without reading any object.
func (sc *siteCheck) anonymousRead(ctx context.Context, u upstream) (Status, string) {
	ref := &url.URL{Scheme: u.scheme, Host: u.addr, Path: "/" + sc.site.Prefix + randomKey()}
	type answer struct {
		status int
		code   string
	}
	a, err := within(ctx, sc.o.Timeout, func(ctx context.Context) (answer, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, ref.String(), nil)
		if err != nil {
			return answer{}, err
		}
		req.Host = u.header
		resp, err := sc.o.HTTPClient.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return answer{resp.StatusCode, errorCode(resp.Header.Get("X-Oss-Err"))}, nil
	})
	if err != nil {
		return Fail, "anonymous HEAD failed: " + clip(oneLine(err.Error()), 200)
	}
	what := fmt.Sprintf("anonymous HEAD of a missing key answered %d", a.status)
	if a.code != "" {
		what += " " + a.code
	}
	switch {
	case a.status == http.StatusNotFound && a.code == "NoSuchBucket":
		return Fail, what + ": the bucket does not exist"
	case a.status == http.StatusNotFound, a.status >= 200 && a.status < 300, a.status == http.StatusNotModified:
		return OK, what + ": anonymous reads reach the bucket"
	case a.status == http.StatusForbidden:
		return Fail, what + `: bucket is not public-read: set access = "private"`
	}
	return Fail, what
}

// errorCode decodes the Code of the error body OSS puts, base64-encoded, in
// x-oss-err on HEAD answers (they have no body).
func errorCode(b64 string) string {
	if b64 == "" {
		return ""
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return ""
	}
	var e struct {
		Code string `xml:"Code"`
	}
	if xml.Unmarshal(raw, &e) != nil {
		return ""
	}
	return e.Code
}

// randomKey is a key no bucket holds, so probes never read or change data.
func randomKey() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "gateway-check-" + hex.EncodeToString(b[:])
}

// cname reports, for each custom domain of the site (and a custom
// upstream_host), whether it is bound to the bucket. As documented, an
// unbound domain is a warning, and a failure only when upstream_host is
// that domain, since OSS then routes by it.
func (sc *siteCheck) cname(ctx context.Context) {
	s := sc.site
	upHost := ""
	if s.UpstreamHost != "" {
		upHost = strings.TrimSuffix(strings.ToLower(hostOnly(s.UpstreamHost)), ".")
		if !customDomain(upHost) {
			upHost = ""
		}
	}
	var domains []string
	for _, d := range s.Domains {
		if customDomain(d) {
			domains = append(domains, d)
		}
	}
	if upHost != "" && !slices.Contains(domains, upHost) {
		domains = append(domains, upHost)
	}
	if len(domains) == 0 {
		return
	}
	target := strings.Join(domains, ",")
	cannotList := func(why string) {
		if upHost != "" {
			sc.add(slotCname, "cname", target, Fail, "%s; upstream_host %s must be bound to bucket %s", why, upHost, s.Bucket)
			return
		}
		sc.add(slotCname, "cname", target, Warn, "%s; bindings are needed only if the gateway sends a domain as Host", why)
	}
	signer := sc.signer()
	if signer == nil {
		cannotList("not checked: ListCname needs credentials")
		return
	}
	c, err := sc.client(signer)
	if err != nil {
		cannotList(err.Error())
		return
	}
	res, err := within(ctx, sc.o.Timeout, func(ctx context.Context) (*oss.ListCnameResult, error) {
		return c.ListCname(ctx, &oss.ListCnameRequest{Bucket: oss.Ptr(s.Bucket)})
	})
	if err != nil {
		cannotList("ListCname failed: " + describe(err))
		return
	}
	bound := map[string]string{} // domain -> status
	for _, ci := range res.Cnames {
		if ci.Domain == nil {
			continue
		}
		st := ""
		if ci.Status != nil {
			st = *ci.Status
		}
		bound[strings.TrimSuffix(strings.ToLower(*ci.Domain), ".")] = st
	}
	for _, d := range domains {
		st, ok := bound[d]
		switch {
		case ok && (st == "" || strings.EqualFold(st, "Enabled")):
			sc.add(slotCname, "cname", d, OK, "bound to bucket %s", s.Bucket)
		case d == upHost && ok:
			sc.add(slotCname, "cname", d, Fail, "bound to bucket %s but %s, and upstream_host is %s: OSS needs the binding enabled", s.Bucket, st, d)
		case d == upHost:
			sc.add(slotCname, "cname", d, Fail, "%s is not bound to bucket %s, and upstream_host is %s: OSS needs the binding (gateway cname token/bind -site %s -domain %s)", d, s.Bucket, d, s.Name, d)
		case ok:
			sc.add(slotCname, "cname", d, Warn, "bound to bucket %s but %s; needed only if the gateway sends it as Host", s.Bucket, st)
		default:
			sc.add(slotCname, "cname", d, Warn, "not bound to bucket %s; needed only if the gateway sends it as Host", s.Bucket)
		}
	}
}

// customDomain reports whether d is a name OSS would need bound: not an IP
// address and not one of OSS's own domains (*.aliyuncs.com), which reach a
// bucket without a binding.
func customDomain(d string) bool {
	return d != "" && net.ParseIP(d) == nil && !strings.HasSuffix(d, ".aliyuncs.com")
}

// tls reports each domain's certificate as the gateway would serve it.
func (sc *siteCheck) tls(ctx context.Context) {
	s := sc.site
	switch s.TLS {
	case "off":
		for _, d := range s.Domains {
			sc.add(slotTLS, "tls", d, OK, `off: served over plain HTTP only`)
		}
	case "files":
		cert, err := gwtls.FilesCertificate(s, gwtls.Options{Now: sc.o.Now})
		for _, d := range s.Domains {
			if err != nil {
				sc.add(slotTLS, "tls", d, Fail, "%s", clip(oneLine(err.Error()), 300))
				continue
			}
			st, detail := sc.judge(cert)
			if herr := cert.VerifyHostname(d); herr != nil && st == OK {
				st, detail = Warn, detail+"; the certificate does not cover "+d+", so clients will refuse it"
			}
			sc.add(slotTLS, "tls", d, st, "%s", detail)
		}
	case "acme":
		for _, d := range s.Domains {
			if net.ParseIP(d) != nil {
				sc.add(slotTLS, "tls", d, OK, "no ACME for IP addresses")
				continue
			}
			cert, err := within(ctx, sc.o.Timeout, func(ctx context.Context) (*x509.Certificate, error) {
				return gwtls.StoredCertificate(ctx, sc.cfg, gwtls.Options{Credentials: sc.storageCredentials(), RootCAs: sc.o.RootCAs}, d)
			})
			switch {
			case errors.Is(err, gwtls.ErrNotObtained):
				sc.add(slotTLS, "tls", d, Warn, "ACME certificate not obtained yet (the running gateway orders it)")
			case err != nil:
				sc.add(slotTLS, "tls", d, Fail, "ACME storage %s: %s", sc.cfg.TLS.Storage, clip(oneLine(err.Error()), 300))
			default:
				st, detail := sc.judge(cert)
				sc.add(slotTLS, "tls", d, st, "ACME: %s", detail)
			}
		}
	}
}

// storageCredentials are the credentials an oss:// certificate storage
// signs with: the resolved ones, or a provider that says why there are none
// (so the storage error names the real cause).
func (sc *siteCheck) storageCredentials() credentials.CredentialsProvider {
	if signer := sc.signer(); signer != nil {
		return signer
	}
	return credentials.CredentialsProviderFunc(func(context.Context) (credentials.Credentials, error) {
		return credentials.Credentials{}, errors.New("credentials did not resolve")
	})
}

// judge turns a certificate's validity into a verdict: expired or not yet
// valid fails, expiring within ExpiryWarning warns.
func (sc *siteCheck) judge(cert *x509.Certificate) (Status, string) {
	now := sc.o.Now()
	issuer := issuerName(cert)
	end := cert.NotAfter.UTC().Format("2006-01-02 15:04 MST")
	switch left := cert.NotAfter.Sub(now); {
	case left <= 0:
		return Fail, fmt.Sprintf("issuer %s, expired %s", issuer, end)
	case now.Before(cert.NotBefore):
		return Fail, fmt.Sprintf("issuer %s, not valid before %s", issuer, cert.NotBefore.UTC().Format("2006-01-02 15:04 MST"))
	case left < ExpiryWarning:
		return Warn, fmt.Sprintf("issuer %s, expires in %s (%s): renew it", issuer, daysLeft(left), end)
	default:
		return OK, fmt.Sprintf("issuer %s, expires %s (in %s)", issuer, end, daysLeft(left))
	}
}

// daysLeft renders a remaining validity in whole days, or hours when less
// than a day is left.
func daysLeft(d time.Duration) string {
	if d < 24*time.Hour {
		return fmt.Sprintf("%d hours", int(d.Hours()))
	}
	n := int(d.Hours() / 24)
	if n == 1 {
		return "1 day"
	}
	return fmt.Sprintf("%d days", n)
}

// issuerName is the issuer's common name, else its organisation, else the
// whole distinguished name.
func issuerName(c *x509.Certificate) string {
	if c.Issuer.CommonName != "" {
		return fmt.Sprintf("%q", c.Issuer.CommonName)
	}
	if len(c.Issuer.Organization) > 0 {
		return fmt.Sprintf("%q", c.Issuer.Organization[0])
	}
	return fmt.Sprintf("%q", c.Issuer.String())
}

// describe renders an SDK error as one line: an OSS error by its code,
// HTTP status, message and request ID (what Alibaba support asks for);
// anything else by its text.
func describe(err error) string {
	var se *oss.ServiceError
	if errors.As(err, &se) {
		s := se.Code
		if s == "" {
			s = "error"
		}
		s += fmt.Sprintf(" (HTTP %d)", se.StatusCode)
		if se.Message != "" {
			s += ": " + strings.TrimSuffix(oneLine(se.Message), ".")
		}
		if se.RequestID != "" {
			s += ", request id " + se.RequestID
		}
		return clip(s, 400)
	}
	return clip(oneLine(err.Error()), 300)
}

// oneLine keeps a message on one line whatever a library put in it.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.NewReplacer("\r", " ", "\n", " ").Replace(s)), " ")
}

// clip cuts s to at most n bytes, on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }
