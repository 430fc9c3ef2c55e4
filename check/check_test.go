package check_test

import (
	"bytes"
	"context"
	"encoding/pem"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testcert"
	"github.com/oss-gateway/gateway/internal/testkit"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/check"
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossemu"
)

const (
	testKeyID  = "LTAIcheckkey"
	testSecret = "check-secret-never-printed"
)

// startEmulator serves a fresh emulator on loopback with the test
// credential registered.
func startEmulator(t *testing.T) (*ossemu.Emulator, string) {
	t.Helper()
	emu := ossemu.New(ossemu.Options{Region: "cn-hangzhou"})
	emu.AddCredential(testKeyID, testSecret, "")
	return emu, testkit.Serve(t, emu.Serve)
}

// parseConfig validates doc exactly as `gateway check` loads a file.
func parseConfig(t *testing.T, doc string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.toml")
	cfg, err := config.Parse(path, []byte(doc))
	if err != nil {
		t.Fatalf("config:\n%v\n%s", err, doc)
	}
	return cfg
}

// static is a provider for id/secret; failing is one that never resolves.
func static(id, secret string) credentials.CredentialsProvider {
	return credentials.NewStaticCredentialsProvider(id, secret)
}

var failing = credentials.CredentialsProviderFunc(func(context.Context) (credentials.Credentials, error) {
	return credentials.Credentials{}, errors.New("access key id or access key secret is empty!")
})

// noDNS fails every lookup, as a region that does not exist would.
type noDNS struct{}

func (noDNS) LookupHost(_ context.Context, host string) ([]string, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// certPair writes a certificate for names, valid from..until and signed by
// a throwaway CA named "Check Test CA", and returns the PEM files and the
// leaf's DER.
func certPair(t *testing.T, dir string, from, until time.Time, names ...string) (certFile, keyFile string, der []byte) {
	t.Helper()
	p := testcert.New(t, testcert.Options{From: from, Until: until, Issuer: "Check Test CA"}, names...)
	certFile, keyFile = p.Write(t, dir)
	return certFile, keyFile, p.Leaf.Raw
}

// storeACMECert puts der where the gateway's ACME issuer (Let's Encrypt
// production, the default CA) keeps domain's certificate in a file storage.
func storeACMECert(t *testing.T, storage, domain string, der []byte) {
	t.Helper()
	issuerKey := (&certmagic.ACMEIssuer{CA: certmagic.LetsEncryptProductionCA}).IssuerKey()
	fs := &certmagic.FileStorage{Path: storage}
	err := fs.Store(context.Background(), certmagic.StorageKeys.SiteCert(issuerKey, domain),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	if err != nil {
		t.Fatal(err)
	}
}

// want is one row a case expects: the check and target it is about, its
// status, and text its detail must contain.
type want struct {
	check, target string
	status        check.Status
	detail        string
}

// site is a [[site]] table; extra goes inside it.
func site(name, domains, bucket, endpoint, access, extra string) string {
	return `
[[site]]
name = "` + name + `"
domains = [` + domains + `]
bucket = "` + bucket + `"
region = "cn-hangzhou"
endpoint = "` + endpoint + `"
access = "` + access + `"
` + extra
}

func TestRun(t *testing.T) {
	emu, addr := startEmulator(t)
	endpoint := "http://" + addr
	emu.CreateBucket("priv", ossemu.Private)
	emu.CreateBucket("pub", ossemu.PublicRead)
	emu.CreateBucket("slow", ossemu.Private)
	emu.BindDomain("files.test", "priv")
	emu.BindDomain("www.pub.test", "pub")
	emu.AddFault(ossemu.Fault{Bucket: "slow", Delay: time.Minute})

	now := time.Now()
	dir := t.TempDir()
	goodCert, goodKey, goodDER := certPair(t, dir, now.Add(-24*time.Hour), now.Add(60*24*time.Hour), "good.test")
	soonCert, soonKey, soonDER := certPair(t, dir, now.Add(-80*24*time.Hour), now.Add(5*24*time.Hour), "soon.test")
	oldCert, oldKey, _ := certPair(t, dir, now.Add(-90*24*time.Hour), now.Add(-24*time.Hour), "old.test")
	storage := filepath.Join(dir, "acme")
	storeACMECert(t, storage, "issued.test", goodDER)
	storeACMECert(t, storage, "renewing.test", soonDER)

	head := `
[tls]
storage = "` + storage + `"
`
	off := "tls = \"off\"\n"
	files := func(cert, key string) string {
		return "tls = \"files\"\ncert_file = \"" + cert + "\"\nkey_file = \"" + key + "\"\n"
	}

	cases := []struct {
		name       string
		doc        string
		creds      credentials.CredentialsProvider
		resolver   check.Resolver
		timeout    time.Duration
		want       []want
		absent     []string // checks that must have no row
		failed     bool
		onlyOK     bool // every row ok (a healthy config)
		notInPrint []string
	}{
		{
			name:   "healthy private site",
			doc:    head + site("files", `"files.test"`, "priv", endpoint, "private", off),
			creds:  static(testKeyID, testSecret),
			onlyOK: true,
			want: []want{
				{"config", "", check.OK, "valid, 1 site"},
				{"credentials", "source env", check.OK, "AccessKey LTAI… resolved"},
				{"endpoint", "127.0.0.1", check.OK, "IP address"},
				{"bucket", "priv", check.OK, "signed GetBucketInfo ok (ACL private"},
				{"cname", "files.test", check.OK, "bound to bucket priv"},
				{"tls", "files.test", check.OK, "off"},
			},
			notInPrint: []string{testSecret, testKeyID},
		},
		{
			name:       "wrong secret",
			doc:        head + site("files", `"files.test"`, "priv", endpoint, "private", off),
			creds:      static(testKeyID, "not-the-secret-either"),
			failed:     true,
			want:       []want{{"bucket", "priv", check.Fail, "SignatureDoesNotMatch (HTTP 403)"}},
			notInPrint: []string{testSecret, "not-the-secret-either", testKeyID},
		},
		{
			name:       "unknown access key",
			doc:        head + site("files", `"files.test"`, "priv", endpoint, "private", off),
			creds:      static("LTAIunknownkey", testSecret),
			failed:     true,
			want:       []want{{"bucket", "priv", check.Fail, "InvalidAccessKeyId (HTTP 403)"}, {"bucket", "priv", check.Fail, "request id "}},
			notInPrint: []string{testSecret, "LTAIunknownkey"},
		},
		{
			name:   "missing bucket",
			doc:    head + site("gone", `"gone.test"`, "nosuchbucket", endpoint, "private", off),
			creds:  static(testKeyID, testSecret),
			failed: true,
			want:   []want{{"bucket", "nosuchbucket", check.Fail, "NoSuchBucket"}},
		},
		{
			name:   "credentials missing for a private site",
			doc:    head + site("files", `"files.test"`, "priv", endpoint, "private", off),
			creds:  failing,
			failed: true,
			want: []want{
				{"credentials", "source env", check.Fail, "private sites cannot sign"},
				{"bucket", "priv", check.Fail, "no credentials"},
				{"cname", "files.test", check.Warn, "ListCname needs credentials"},
			},
		},
		{
			name:  "public site on a public-read bucket without credentials",
			doc:   head + site("pub", `"www.pub.test"`, "pub", endpoint, "public", off),
			creds: failing,
			want: []want{
				{"credentials", "source env", check.Warn, "only public sites"},
				{"bucket", "pub", check.OK, "answered 404 NoSuchKey"},
				{"cname", "www.pub.test", check.Warn, "ListCname needs credentials"},
			},
		},
		{
			name:   "public site on a private bucket",
			doc:    head + site("pub", `"files.test"`, "priv", endpoint, "public", off),
			creds:  failing,
			failed: true,
			want:   []want{{"bucket", "priv", check.Fail, `403 AccessDenied: bucket is not public-read: set access = "private"`}},
		},
		{
			name:   "public site on a missing bucket",
			doc:    head + site("pub", `"files.test"`, "nosuchbucket", endpoint, "public", off),
			creds:  failing,
			failed: true,
			want:   []want{{"bucket", "nosuchbucket", check.Fail, "NoSuchBucket: the bucket does not exist"}},
		},
		{
			name:  "public site whose credentials cannot read the bucket",
			doc:   head + site("pub", `"www.pub.test"`, "pub", endpoint, "public", off),
			creds: static(testKeyID, "wrong-secret"),
			want: []want{
				{"bucket", "pub", check.Warn, "credentials cannot read it: signed GetBucketInfo failed: SignatureDoesNotMatch"},
				{"cname", "www.pub.test", check.Warn, "ListCname failed: SignatureDoesNotMatch"},
			},
			notInPrint: []string{"wrong-secret"},
		},
		{
			name:     "unresolvable keyword endpoint",
			doc:      head + strings.Replace(site("far", `"far.test"`, "priv", "public", "private", off), "cn-hangzhou", "cn-nowhere-test", 1),
			creds:    static(testKeyID, testSecret),
			resolver: noDNS{},
			failed:   true,
			want:     []want{{"endpoint", "priv.oss-cn-nowhere-test.aliyuncs.com", check.Fail, "does not resolve"}},
			absent:   []string{"bucket", "cname"},
		},
		{
			name:     "unresolvable fallback endpoint",
			doc:      head + site("files", `"files.test"`, "priv", endpoint, "private", off+"fallback_endpoint = \"accelerate\"\n"),
			creds:    static(testKeyID, testSecret),
			resolver: noDNS{},
			failed:   true,
			want: []want{
				{"endpoint", "127.0.0.1", check.OK, "IP address"},
				{"fallback", "priv.oss-accelerate.aliyuncs.com", check.Fail, "does not resolve"},
				{"bucket", "priv", check.OK, "GetBucketInfo ok"},
			},
		},
		{
			name:    "upstream that never answers",
			doc:     head + site("slow", `"files.test"`, "slow", endpoint, "private", off),
			creds:   static(testKeyID, testSecret),
			timeout: 300 * time.Millisecond,
			failed:  true,
			want:    []want{{"bucket", "slow", check.Fail, "no answer within 300ms"}},
		},
		{
			name:  "tls files, good certificate",
			doc:   head + site("good", `"good.test"`, "priv", endpoint, "private", files(goodCert, goodKey)),
			creds: static(testKeyID, testSecret),
			want:  []want{{"tls", "good.test", check.OK, `issuer "Check Test CA", expires`}, {"tls", "good.test", check.OK, "(in 59 days)"}},
		},
		{
			name:  "tls files, certificate not covering a domain",
			doc:   head + site("good", `"good.test", "other.test"`, "priv", endpoint, "private", files(goodCert, goodKey)),
			creds: static(testKeyID, testSecret),
			want: []want{
				{"tls", "good.test", check.OK, `issuer "Check Test CA"`},
				{"tls", "other.test", check.Warn, "does not cover other.test"},
			},
		},
		{
			name:  "tls files, expiring in 5 days",
			doc:   head + site("soon", `"soon.test"`, "priv", endpoint, "private", files(soonCert, soonKey)),
			creds: static(testKeyID, testSecret),
			want:  []want{{"tls", "soon.test", check.Warn, "expires in 4 days"}},
		},
		{
			name:   "tls files, expired",
			doc:    head + site("old", `"old.test"`, "priv", endpoint, "private", files(oldCert, oldKey)),
			creds:  static(testKeyID, testSecret),
			failed: true,
			want:   []want{{"tls", "old.test", check.Fail, "expired"}},
		},
		{
			name:  "tls acme",
			doc:   head + site("acme", `"new.test", "issued.test", "renewing.test", "192.0.2.7"`, "priv", endpoint, "private", "tls = \"acme\"\n"),
			creds: static(testKeyID, testSecret),
			want: []want{
				{"tls", "new.test", check.Warn, "not obtained yet (the running gateway orders it)"},
				{"tls", "issued.test", check.OK, `ACME: issuer "Check Test CA"`},
				{"tls", "renewing.test", check.Warn, "expires in 4 days"},
				{"tls", "192.0.2.7", check.OK, "no ACME for IP addresses"},
			},
		},
		{
			name:  "cname: bound and unbound domains",
			doc:   head + site("files", `"files.test", "unbound.test", "192.0.2.8", "priv.oss-cn-hangzhou.aliyuncs.com"`, "priv", endpoint, "private", off),
			creds: static(testKeyID, testSecret),
			want: []want{
				{"cname", "files.test", check.OK, "bound to bucket priv"},
				{"cname", "unbound.test", check.Warn, "not bound to bucket priv; needed only if the gateway sends it as Host"},
			},
			absent: []string{"cname 192.0.2.8", "cname priv.oss-cn-hangzhou.aliyuncs.com"},
		},
		{
			name:   "cname: upstream_host is an unbound domain",
			doc:    head + site("files", `"unbound.test"`, "priv", endpoint, "private", off+"upstream_host = \"unbound.test\"\n"),
			creds:  static(testKeyID, testSecret),
			failed: true,
			want:   []want{{"cname", "unbound.test", check.Fail, "unbound.test is not bound to bucket priv, and upstream_host is unbound.test"}},
		},
		{
			name:  "cname: upstream_host is a bound domain",
			doc:   head + site("files", `"cdn.test"`, "priv", endpoint, "private", off+"upstream_host = \"files.test\"\n"),
			creds: static(testKeyID, testSecret),
			want: []want{
				{"cname", "cdn.test", check.Warn, "not bound"},
				{"cname", "files.test", check.OK, "bound to bucket priv"},
			},
		},
		{
			name:   "cname: upstream_host custom but ListCname impossible",
			doc:    head + site("pub", `"www.pub.test"`, "pub", endpoint, "public", off+"upstream_host = \"www.pub.test\"\n"),
			creds:  failing,
			failed: true,
			want:   []want{{"cname", "www.pub.test", check.Fail, "upstream_host www.pub.test must be bound to bucket pub"}},
		},
		{
			name:  "config warnings",
			doc:   "[server]\nhttps_listen = \"\"\n" + head + site("good", `"good.test"`, "priv", endpoint, "private", files(goodCert, goodKey)),
			creds: static(testKeyID, testSecret),
			want:  []want{{"config", "", check.Warn, `site[0].tls: is "files" but server.https_listen is ""`}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := parseConfig(t, tc.doc)
			rep := check.Run(context.Background(), cfg, check.Options{
				Credentials: tc.creds,
				Resolver:    tc.resolver,
				Timeout:     tc.timeout,
			})
			var out bytes.Buffer
			rep.Print(&out)
			t.Logf("\n%s", out.String())

			if rep.Failed() != tc.failed {
				t.Errorf("Failed() = %v, want %v", rep.Failed(), tc.failed)
			}
			if tc.onlyOK && (rep.Count(check.Warn) != 0 || rep.Count(check.Fail) != 0) {
				t.Errorf("want every row ok")
			}
			for _, w := range tc.want {
				if !hasRow(rep, w) {
					t.Errorf("no row %s %s %s containing %q", w.check, w.target, w.status, w.detail)
				}
			}
			for _, a := range tc.absent {
				chk, target, _ := strings.Cut(a, " ")
				for _, r := range rep.Rows {
					if r.Check == chk && (target == "" || r.Target == target) {
						t.Errorf("unexpected row %+v", r)
					}
				}
			}
			for _, s := range tc.notInPrint {
				if strings.Contains(out.String(), s) {
					t.Errorf("output contains %q", s)
				}
			}
			if tc.failed && !strings.Contains(out.String(), "FAIL") {
				t.Error("no FAIL in the table")
			}
			if !strings.Contains(out.String(), "checks: ") {
				t.Error("no summary line")
			}
		})
	}
}

func hasRow(rep check.Report, w want) bool {
	for _, r := range rep.Rows {
		if r.Check == w.check && (w.target == "" || r.Target == w.target) && r.Status == w.status && strings.Contains(r.Detail, w.detail) {
			return true
		}
	}
	return false
}

// TestPrint pins the table layout and the summary line.
func TestPrint(t *testing.T) {
	rep := check.Report{Rows: []check.Row{
		{Site: "-", Check: "config", Target: "gw.toml", Status: check.OK, Detail: "valid"},
		{Site: "img", Check: "bucket", Target: "b", Status: check.Fail, Detail: "line one\nline two"},
		{Site: "img", Check: "tls", Target: "img.test", Status: check.Warn, Detail: "soon"},
	}}
	var out bytes.Buffer
	rep.Print(&out)
	want := "" +
		"SITE  CHECK   TARGET    STATUS  DETAIL\n" +
		"-     config  gw.toml   ok      valid\n" +
		"img   bucket  b         FAIL    line one line two\n" +
		"img   tls     img.test  WARN    soon\n" +
		"3 checks: 1 ok, 1 warnings, 1 failures\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
	if !rep.Failed() || (check.Report{Rows: rep.Rows[2:]}).Failed() {
		t.Error("Failed() wrong")
	}
}
