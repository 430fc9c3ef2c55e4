package cname

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/oss-gateway/gateway/internal/testcert"
	"github.com/oss-gateway/gateway/internal/testkit"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/ossemu"
)

const region = "cn-hangzhou"

// emulator serves an emulator on loopback with a credential and buckets.
func emulator(t *testing.T, now func() time.Time, buckets ...string) (*ossemu.Emulator, string) {
	t.Helper()
	e := ossemu.New(ossemu.Options{Region: region, Now: now})
	e.AddCredential("LTAIcname", "cname-secret", "")
	for _, b := range buckets {
		e.CreateBucket(b, ossemu.Private)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := e.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e, ln.Addr().String()
}

// client is the SDK client `gateway cname` would build for bucket.
func client(t *testing.T, addr, bucket string) *oss.Client {
	t.Helper()
	c, err := ossclient.New(ossclient.Target{Bucket: bucket, Region: region, Endpoint: "http://" + addr},
		credentials.NewStaticCredentialsProvider("LTAIcname", "cname-secret"), ossclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// certificate is a self-signed certificate for domain and its key, PEM.
func certificate(t *testing.T, domain string) (certPEM, keyPEM string, leaf *x509.Certificate) {
	t.Helper()
	p := testcert.New(t, testcert.Options{}, domain)
	return string(p.CertPEM), string(p.KeyPEM), p.Leaf
}

func TestTXTRecord(t *testing.T) {
	tests := []struct {
		domain, name, host, zone string
	}{
		{"img.example.com", "_dnsauth.img.example.com", "_dnsauth.img", "example.com"},
		{"example.com", "_dnsauth.example.com", "_dnsauth", "example.com"},
		{"image.oss-example.cn", "_dnsauth.image.oss-example.cn", "_dnsauth.image", "oss-example.cn"},
		{"a.b.example.com.cn", "_dnsauth.a.b.example.com.cn", "_dnsauth.a.b", "example.com.cn"},
		{"IMG.Example.COM.", "_dnsauth.img.example.com", "_dnsauth.img", "example.com"},
		{"com", "_dnsauth.com", "_dnsauth.com", ""}, // a public suffix: no zone to guess
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			r := TXTRecord(Token{Domain: tt.domain, Value: "tok"})
			if r.Name != tt.name || r.Host != tt.host || r.Zone != tt.zone || r.Type != "TXT" || r.Value != "tok" {
				t.Errorf("TXTRecord = %+v, want name %q host %q zone %q", r, tt.name, tt.host, tt.zone)
			}
		})
	}
}

func TestInstruction(t *testing.T) {
	exp := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	got := Instruction(Token{Bucket: "bkt", Domain: "img.example.com", Value: "0123abcd", Expires: exp})
	for _, want := range []string{
		"  name     _dnsauth.img.example.com\n",
		"  host     _dnsauth.img   (host record in the zone example.com)\n",
		"  type     TXT\n",
		"  value    0123abcd\n",
		"  expires  2030-01-02T03:04:05Z",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("instruction lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(Instruction(Token{Domain: "img.example.com", Value: "v"}), "expires") {
		t.Error("an unknown expiry is printed")
	}
}

func TestErrorLine(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"service error", &oss.ServiceError{Code: "NeedVerifyDomainOwnership", Message: "The ownership is\nnot verified.", RequestID: "5C3D", StatusCode: 403},
			"NeedVerifyDomainOwnership: The ownership is not verified (HTTP 403, request id 5C3D)"},
		{"wrapped service error", fmt.Errorf("operation error PutCname: %w", &oss.ServiceError{Code: "AccessDenied", StatusCode: 403}),
			"AccessDenied: Forbidden (HTTP 403, request id none)"},
		{"multi-line error", errors.New("dial tcp:\n connection refused"), "dial tcp: connection refused"},
		{"provider quoting a body", errors.New(`refresh failed, response body: {"SecurityToken":"secret"}`), "refresh failed, (response body withheld)"},
		{"long error", errors.New(strings.Repeat("x", 400)), strings.Repeat("x", 300) + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorLine(tt.err); got != tt.want {
				t.Errorf("ErrorLine = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidDomain(t *testing.T) {
	for d, ok := range map[string]bool{
		"img.example.com": true, "": false, "*.example.com": false, "203.0.113.7": false, "2001:db8::1": false, "localhost": false,
	} {
		if got := ValidDomain(d) == ""; got != ok {
			t.Errorf("ValidDomain(%q) = %q", d, ValidDomain(d))
		}
	}
}

// TestLifecycle walks one domain through token, refused bind, TXT record,
// bind with and without a certificate, list and unbind, step by step
// against the emulator through the SDK client `gateway cname` uses.
func TestLifecycle(t *testing.T) {
	e, addr := emulator(t, nil, "site-bkt", "other-bkt")
	c := client(t, addr, "site-bkt")
	other := client(t, addr, "other-bkt")
	ctx := context.Background()
	const domain = "img.example.com"
	certPEM, keyPEM, leaf := certificate(t, domain)
	var token Token

	steps := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"no token yet", func(t *testing.T) {
			if _, err := GetToken(ctx, c, "site-bkt", domain); !errors.Is(err, ErrNoToken) {
				t.Fatalf("GetToken = %v, want ErrNoToken", err)
			}
		}},
		{"bind without a token", func(t *testing.T) {
			err := Bind(ctx, c, "site-bkt", domain, nil)
			var oe *OwnershipError
			if !errors.As(err, &oe) || oe.Token != nil || oe.Domain != domain {
				t.Fatalf("Bind = %#v, want an OwnershipError without a token", err)
			}
			if !strings.HasPrefix(err.Error(), "NeedVerifyDomainOwnership: ") || !strings.Contains(err.Error(), "request id ") {
				t.Errorf("error line %q", err.Error())
			}
		}},
		{"token is created", func(t *testing.T) {
			var err error
			token, err = EnsureToken(ctx, c, "site-bkt", domain, time.Now())
			if err != nil || !token.Created || len(token.Value) != 32 || token.Bucket != "site-bkt" || token.Domain != domain {
				t.Fatalf("EnsureToken = %+v, %v", token, err)
			}
			if d := time.Until(token.Expires); d < 71*time.Hour || d > 73*time.Hour {
				t.Errorf("expires in %s", d)
			}
		}},
		{"token is reused", func(t *testing.T) {
			again, err := EnsureToken(ctx, c, "site-bkt", domain, time.Now())
			if err != nil || again.Created || again.Value != token.Value {
				t.Fatalf("second EnsureToken = %+v, %v; want the same token, not created", again, err)
			}
		}},
		{"bind before the TXT record names the record", func(t *testing.T) {
			err := Bind(ctx, c, "site-bkt", domain, nil)
			var oe *OwnershipError
			if !errors.As(err, &oe) || oe.Token == nil || oe.Token.Value != token.Value {
				t.Fatalf("Bind = %v, want an OwnershipError with the token", err)
			}
			if Code(err) != CodeNeedVerifyDomainOwnership {
				t.Errorf("Code = %q", Code(err))
			}
			if r := TXTRecord(*oe.Token); r.Name != "_dnsauth."+domain || r.Value != token.Value {
				t.Errorf("record %+v", r)
			}
		}},
		{"bind after the TXT record", func(t *testing.T) {
			e.SetTXT(TXTRecord(token).Name, token.Value)
			if err := Bind(ctx, c, "site-bkt", domain, nil); err != nil {
				t.Fatalf("Bind: %s", ErrorLine(err))
			}
		}},
		{"list shows the binding", func(t *testing.T) {
			list, err := List(ctx, c, "site-bkt")
			if err != nil || len(list) != 1 || list[0].Domain != domain || list[0].Status != "Enabled" || list[0].Cert != nil || list[0].LastModified.IsZero() {
				t.Fatalf("List = %+v, %v", list, err)
			}
		}},
		{"bind with a certificate", func(t *testing.T) {
			e.SetTXT(TXTRecord(token).Name) // not needed once bound
			if err := Bind(ctx, c, "site-bkt", domain, &Certificate{CertPEM: certPEM, KeyPEM: keyPEM}); err != nil {
				t.Fatalf("Bind with a certificate: %s", ErrorLine(err))
			}
			list, err := List(ctx, c, "site-bkt")
			if err != nil || len(list) != 1 || list[0].Cert == nil {
				t.Fatalf("List = %+v, %v", list, err)
			}
			ci := list[0].Cert
			if ci.Type != "Upload" || ci.ID == "" || ci.Status != "Enabled" || ci.Fingerprint == "" || ci.Created.IsZero() ||
				!ci.ValidFrom.Equal(leaf.NotBefore) || !ci.ValidUntil.Equal(leaf.NotAfter) {
				t.Errorf("certificate %+v, want validity %s - %s", ci, leaf.NotBefore, leaf.NotAfter)
			}
		}},
		{"replacing the certificate needs no previous ID", func(t *testing.T) {
			cert2, key2, leaf2 := certificate(t, domain)
			if err := Bind(ctx, c, "site-bkt", domain, &Certificate{CertPEM: cert2, KeyPEM: key2}); err != nil {
				t.Fatalf("Bind with a second certificate: %s", ErrorLine(err))
			}
			if list, _ := List(ctx, c, "site-bkt"); len(list) != 1 || list[0].Cert == nil || !list[0].Cert.ValidUntil.Equal(leaf2.NotAfter) {
				t.Fatalf("List = %+v", list)
			}
		}},
		{"a certificate for another name is refused", func(t *testing.T) {
			wrongCert, wrongKey, _ := certificate(t, "www.example.net")
			err := Bind(ctx, c, "site-bkt", domain, &Certificate{CertPEM: wrongCert, KeyPEM: wrongKey})
			if Code(err) != "InvalidArgument" || !strings.Contains(ErrorLine(err), "(HTTP 400, request id ") {
				t.Fatalf("Bind = %v", err)
			}
		}},
		{"another bucket cannot bind it", func(t *testing.T) {
			ot, err := EnsureToken(ctx, other, "other-bkt", domain, time.Now())
			if err != nil {
				t.Fatal(err)
			}
			e.SetTXT(TXTRecord(ot).Name, ot.Value)
			if err := Bind(ctx, other, "other-bkt", domain, nil); Code(err) != CodeCnameAlreadyExists {
				t.Fatalf("Bind on another bucket = %v", err)
			}
		}},
		{"unbind from another bucket changes nothing", func(t *testing.T) {
			was, err := Unbind(ctx, other, "other-bkt", domain)
			if err != nil || was {
				t.Fatalf("Unbind = %v, %v", was, err)
			}
			if got := e.Cnames("site-bkt"); len(got) != 1 {
				t.Fatalf("Cnames = %v", got)
			}
		}},
		{"unbind", func(t *testing.T) {
			was, err := Unbind(ctx, c, "site-bkt", domain)
			if err != nil || !was {
				t.Fatalf("Unbind = %v, %v", was, err)
			}
			if list, err := List(ctx, c, "site-bkt"); err != nil || len(list) != 0 {
				t.Fatalf("List after Unbind = %+v, %v", list, err)
			}
		}},
		{"unbind again", func(t *testing.T) {
			if was, err := Unbind(ctx, c, "site-bkt", domain); err != nil || was {
				t.Fatalf("second Unbind = %v, %v", was, err)
			}
		}},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.run) {
			t.FailNow() // later steps build on earlier ones
		}
	}
}

// TestEnsureTokenAfterExpiry checks that an expired token is replaced.
func TestEnsureTokenAfterExpiry(t *testing.T) {
	clk := &testkit.Clock{}
	_, addr := emulator(t, clk.Now, "bkt-exp")
	c := client(t, addr, "bkt-exp") // retries on: the SDK corrects the clock skew below
	ctx := context.Background()
	first, err := EnsureToken(ctx, c, "bkt-exp", "old.example.com", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(73 * time.Hour)
	second, err := EnsureToken(ctx, c, "bkt-exp", "old.example.com", clk.Now())
	if err != nil {
		t.Fatal(ErrorLine(err))
	}
	if !second.Created || second.Value == first.Value || !second.Expires.After(first.Expires) {
		t.Fatalf("after expiry: first %+v, second %+v", first, second)
	}
}

// TestErrorsFromOSS runs every operation against a bucket that does not
// exist: each error is OSS's, renders as one line, and never carries the
// secret.
func TestErrorsFromOSS(t *testing.T) {
	_, addr := emulator(t, nil)
	c := client(t, addr, "missing-bkt")
	ctx := context.Background()
	ops := []struct {
		name string
		run  func() error
	}{
		{"GetToken", func() error { _, err := GetToken(ctx, c, "missing-bkt", "a.example.com"); return err }},
		{"EnsureToken", func() error { _, err := EnsureToken(ctx, c, "missing-bkt", "a.example.com", time.Now()); return err }},
		{"Bind", func() error { return Bind(ctx, c, "missing-bkt", "a.example.com", nil) }},
		{"List", func() error { _, err := List(ctx, c, "missing-bkt"); return err }},
		{"Unbind", func() error { _, err := Unbind(ctx, c, "missing-bkt", "a.example.com"); return err }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.run()
			line := ErrorLine(err)
			if Code(err) != "NoSuchBucket" || errors.Is(err, ErrNoToken) || !strings.HasPrefix(line, "NoSuchBucket: The specified bucket does not exist (HTTP 404, request id ") {
				t.Fatalf("%s: %q", op.name, line)
			}
			if strings.Contains(line, "\n") || strings.Contains(line, "cname-secret") || strings.Contains(line, "LTAIcname") {
				t.Errorf("line %q", line)
			}
		})
	}
}
