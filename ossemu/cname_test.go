package ossemu

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/internal/testkit"
)

// These tests drive the CNAME operations through the official SDK, so the
// request shapes and XML are the SDK's own.

// cnameConfig is the SDK request body naming domain.
func cnameConfig(domain string) *oss.BucketCnameConfiguration {
	return &oss.BucketCnameConfiguration{Cname: &oss.Cname{Domain: oss.Ptr(domain)}}
}

// testCertificate is a self-signed certificate for domain valid from an
// hour ago until notAfter, and its private key, both PEM.
func testCertificate(t *testing.T, domain string, notAfter time.Time) (certPEM, keyPEM string, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: domain},
		DNSNames:     []string{domain},
		NotBefore:    time.Now().Add(-time.Hour).Truncate(time.Second),
		NotAfter:     notAfter.Truncate(time.Second),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})), leaf
}

// fingerprint is the SHA-1 fingerprint of a certificate as OSS lists it.
func fingerprint(c *x509.Certificate) string {
	sum := sha1.Sum(c.Raw)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// putCname binds domain to bucket, optionally with a certificate.
func putCname(c *oss.Client, bucket, domain string, cert *oss.CertificateConfiguration) error {
	cfg := cnameConfig(domain)
	cfg.Cname.CertificateConfiguration = cert
	_, err := c.PutCname(context.Background(), &oss.PutCnameRequest{Bucket: oss.Ptr(bucket), BucketCnameConfiguration: cfg})
	return err
}

// listCnames lists the bucket's CNAMEs through the SDK.
func listCnames(t *testing.T, c *oss.Client, bucket string) []oss.CnameInfo {
	t.Helper()
	res, err := c.ListCname(context.Background(), &oss.ListCnameRequest{Bucket: oss.Ptr(bucket)})
	if err != nil {
		t.Fatalf("ListCname: %v", err)
	}
	if oss.ToString(res.Bucket) != bucket || oss.ToString(res.Owner) == "" {
		t.Errorf("ListCname bucket=%q owner=%q", oss.ToString(res.Bucket), oss.ToString(res.Owner))
	}
	return res.Cnames
}

// wantServiceError fails unless err is an OSS error with status and code.
func wantServiceError(t *testing.T, what string, err error, status int, code string) *oss.ServiceError {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want %d %s", what, status, code)
	}
	se := serviceError(t, err)
	if se.StatusCode != status || se.Code != code || se.RequestID == "" {
		t.Fatalf("%s: got %d %s (%s, request id %q), want %d %s", what, se.StatusCode, se.Code, se.Message, se.RequestID, status, code)
	}
	return se
}

func TestSDKCnameLifecycle(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("site", PublicRead)
	e.CreateBucket("other", Private)
	e.PutObject("site", "index.html", []byte("<html>hi</html>"), http.Header{"Content-Type": {"text/html"}})
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	ctx := context.Background()
	const domain = "img.example.com"

	// No token yet.
	_, err := c.GetCnameToken(ctx, &oss.GetCnameTokenRequest{Bucket: oss.Ptr("site"), Cname: oss.Ptr(domain)})
	if se := wantServiceError(t, "GetCnameToken before CreateCnameToken", err, 404, "CnameTokenNotFound"); se.EC != "0018-00000301" {
		t.Errorf("EC = %q", se.EC)
	}

	// CreateCnameToken issues a random token valid 72 hours; asking again
	// within that time returns the same token.
	before := time.Now()
	created, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("site"), BucketCnameConfiguration: cnameConfig("IMG.Example.com.")})
	if err != nil {
		t.Fatalf("CreateCnameToken: %v", err)
	}
	tok := created.CnameToken
	if tok == nil || oss.ToString(tok.Bucket) != "site" || oss.ToString(tok.Cname) != domain {
		t.Fatalf("CreateCnameToken = %+v", tok)
	}
	token := oss.ToString(tok.Token)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(token) {
		t.Fatalf("token %q is not 32 hex digits", token)
	}
	exp, err := time.Parse(http.TimeFormat, oss.ToString(tok.ExpireTime))
	if err != nil {
		t.Fatalf("ExpireTime %q: %v", oss.ToString(tok.ExpireTime), err)
	}
	if d := exp.Sub(before); d < 72*time.Hour-time.Minute || d > 72*time.Hour+time.Minute {
		t.Errorf("token valid for %s, want 72h", d)
	}
	again, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("site"), BucketCnameConfiguration: cnameConfig(domain)})
	if err != nil || oss.ToString(again.CnameToken.Token) != token {
		t.Fatalf("second CreateCnameToken = %v, %v; want the same token", again, err)
	}
	got, err := c.GetCnameToken(ctx, &oss.GetCnameTokenRequest{Bucket: oss.Ptr("site"), Cname: oss.Ptr(domain)})
	if err != nil || oss.ToString(got.CnameToken.Token) != token || oss.ToString(got.CnameToken.ExpireTime) != oss.ToString(tok.ExpireTime) {
		t.Fatalf("GetCnameToken = %+v, %v", got, err)
	}

	// Without the TXT record, or with another value in it, OSS refuses.
	err = putCname(c, "site", domain, nil)
	if se := wantServiceError(t, "PutCname without TXT", err, 403, "NeedVerifyDomainOwnership"); se.EC != "0018-00000115" || !strings.Contains(se.Message, "_dnsauth."+domain) {
		t.Errorf("EC %q, message %q", se.EC, se.Message)
	}
	e.SetTXT("_dnsauth."+domain, "not-the-token")
	wantServiceError(t, "PutCname with a wrong TXT", putCname(c, "site", domain, nil), 403, "NeedVerifyDomainOwnership")
	e.SetTXT("_dnsauth.other.example.com", token)
	wantServiceError(t, "PutCname with the TXT on another name", putCname(c, "site", domain, nil), 403, "NeedVerifyDomainOwnership")
	if got := e.Cnames("site"); len(got) != 0 {
		t.Fatalf("refused PutCname bound %v", got)
	}

	// With the token among the TXT values, the domain binds and routes.
	e.SetTXT("_dnsauth.IMG.example.com.", "v=spf1 -all", token)
	if err := putCname(c, "site", domain, nil); err != nil {
		t.Fatalf("PutCname with the TXT record: %v", err)
	}
	if got := e.Cnames("site"); len(got) != 1 || got[0] != domain {
		t.Fatalf("Cnames = %v", got)
	}
	r := do(t, http.MethodGet, "http://"+addr+"/index.html", domain, nil, "")
	if r.status != 200 || r.body != "<html>hi</html>" || r.header.Get("X-Oss-Force-Download") != "" || r.header.Get("Content-Disposition") != "" {
		t.Fatalf("GET through the bound domain = %d %q %v", r.status, r.body, r.header)
	}
	list := listCnames(t, c, "site")
	if len(list) != 1 || oss.ToString(list[0].Domain) != domain || oss.ToString(list[0].Status) != "Enabled" || list[0].Certificate != nil {
		t.Fatalf("ListCname = %+v", list)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z", oss.ToString(list[0].LastModified)); err != nil {
		t.Errorf("LastModified %q: %v", oss.ToString(list[0].LastModified), err)
	}

	// Once bound, certificate changes need no TXT record (it may be deleted).
	e.SetTXT("_dnsauth." + domain)
	certPEM, keyPEM, leaf := testCertificate(t, domain, time.Now().Add(90*24*time.Hour))
	if err := putCname(c, "site", domain, &oss.CertificateConfiguration{Certificate: oss.Ptr(certPEM), PrivateKey: oss.Ptr(keyPEM), Force: oss.Ptr(true)}); err != nil {
		t.Fatalf("PutCname with a certificate: %v", err)
	}
	list = listCnames(t, c, "site")
	if len(list) != 1 || list[0].Certificate == nil {
		t.Fatalf("ListCname after the certificate = %+v", list)
	}
	ci := list[0].Certificate
	firstID := oss.ToString(ci.CertId)
	if oss.ToString(ci.Type) != "Upload" || !strings.HasSuffix(firstID, "-"+testRegion) || oss.ToString(ci.Status) != "Enabled" {
		t.Errorf("certificate type=%q id=%q status=%q", oss.ToString(ci.Type), firstID, oss.ToString(ci.Status))
	}
	if oss.ToString(ci.Fingerprint) != fingerprint(leaf) {
		t.Errorf("fingerprint %q, want %q", oss.ToString(ci.Fingerprint), fingerprint(leaf))
	}
	if oss.ToString(ci.ValidStartDate) != leaf.NotBefore.UTC().Format(http.TimeFormat) || oss.ToString(ci.ValidEndDate) != leaf.NotAfter.UTC().Format(http.TimeFormat) {
		t.Errorf("validity %q - %q, want %s - %s", oss.ToString(ci.ValidStartDate), oss.ToString(ci.ValidEndDate), leaf.NotBefore, leaf.NotAfter)
	}
	if _, err := time.Parse(http.TimeFormat, oss.ToString(ci.CreationDate)); err != nil {
		t.Errorf("CreationDate %q: %v", oss.ToString(ci.CreationDate), err)
	}

	// Replacing a certificate needs Force or the current certificate's ID.
	cert2, key2, leaf2 := testCertificate(t, domain, time.Now().Add(180*24*time.Hour))
	err = putCname(c, "site", domain, &oss.CertificateConfiguration{Certificate: oss.Ptr(cert2), PrivateKey: oss.Ptr(key2), PreviousCertId: oss.Ptr("0-wrong")})
	wantServiceError(t, "PutCname replacing with a wrong PreviousCertId", err, 400, "InvalidArgument")
	if err := putCname(c, "site", domain, &oss.CertificateConfiguration{Certificate: oss.Ptr(cert2), PrivateKey: oss.Ptr(key2), PreviousCertId: oss.Ptr(firstID)}); err != nil {
		t.Fatalf("PutCname replacing with PreviousCertId: %v", err)
	}
	if ci := listCnames(t, c, "site")[0].Certificate; ci == nil || oss.ToString(ci.Fingerprint) != fingerprint(leaf2) || oss.ToString(ci.CertId) == firstID {
		t.Fatalf("replaced certificate = %+v", ci)
	}

	// A CertId the emulator has seen brings that certificate back.
	if err := putCname(c, "site", domain, &oss.CertificateConfiguration{CertId: oss.Ptr(firstID), Force: oss.Ptr(true)}); err != nil {
		t.Fatalf("PutCname with CertId: %v", err)
	}
	if ci := listCnames(t, c, "site")[0].Certificate; ci == nil || oss.ToString(ci.CertId) != firstID || oss.ToString(ci.Fingerprint) != fingerprint(leaf) {
		t.Fatalf("certificate by CertId = %+v", ci)
	}

	// Certificates that cannot serve the domain are refused and change nothing.
	otherCert, otherKey, _ := testCertificate(t, "www.example.net", time.Now().Add(24*time.Hour))
	_, strayKey, _ := testCertificate(t, domain, time.Now().Add(24*time.Hour))
	expiredCert, expiredKey, _ := testCertificate(t, domain, time.Now().Add(-time.Minute))
	for name, cc := range map[string]*oss.CertificateConfiguration{
		"other domain":    {Certificate: oss.Ptr(otherCert), PrivateKey: oss.Ptr(otherKey), Force: oss.Ptr(true)},
		"key mismatch":    {Certificate: oss.Ptr(certPEM), PrivateKey: oss.Ptr(strayKey), Force: oss.Ptr(true)},
		"expired":         {Certificate: oss.Ptr(expiredCert), PrivateKey: oss.Ptr(expiredKey), Force: oss.Ptr(true)},
		"no private key":  {Certificate: oss.Ptr(certPEM), Force: oss.Ptr(true)},
		"not PEM at all":  {Certificate: oss.Ptr("hello"), PrivateKey: oss.Ptr("world"), Force: oss.Ptr(true)},
		"certificate key": {Certificate: oss.Ptr(certPEM), PrivateKey: oss.Ptr(certPEM), Force: oss.Ptr(true)},
	} {
		wantServiceError(t, "PutCname with a bad certificate ("+name+")", putCname(c, "site", domain, cc), 400, "InvalidArgument")
	}
	if ci := listCnames(t, c, "site")[0].Certificate; ci == nil || oss.ToString(ci.CertId) != firstID {
		t.Fatalf("a refused certificate changed the binding: %+v", ci)
	}

	// DeleteCertificate detaches it and keeps the binding.
	if err := putCname(c, "site", domain, &oss.CertificateConfiguration{DeleteCertificate: oss.Ptr(true)}); err != nil {
		t.Fatalf("PutCname DeleteCertificate: %v", err)
	}
	if list := listCnames(t, c, "site"); len(list) != 1 || list[0].Certificate != nil {
		t.Fatalf("after DeleteCertificate: %+v", list)
	}

	// Another bucket cannot take the domain, nor release it.
	e.SetTXT("_dnsauth."+domain, token)
	wantServiceError(t, "PutCname of a domain bound elsewhere", putCname(c, "other", domain, nil), 409, "CnameAlreadyExists")
	if _, err := c.DeleteCname(ctx, &oss.DeleteCnameRequest{Bucket: oss.Ptr("other"), BucketCnameConfiguration: cnameConfig(domain)}); err != nil {
		t.Fatalf("DeleteCname from another bucket: %v", err)
	}
	if got := e.Cnames("site"); len(got) != 1 {
		t.Fatalf("another bucket's DeleteCname unbound the domain: %v", got)
	}

	// DeleteCname unbinds: the Host no longer reaches the bucket.
	if _, err := c.DeleteCname(ctx, &oss.DeleteCnameRequest{Bucket: oss.Ptr("site"), BucketCnameConfiguration: cnameConfig(domain)}); err != nil {
		t.Fatalf("DeleteCname: %v", err)
	}
	if got := e.Cnames("site"); len(got) != 0 {
		t.Fatalf("Cnames after DeleteCname = %v", got)
	}
	if list := listCnames(t, c, "site"); len(list) != 0 {
		t.Fatalf("ListCname after DeleteCname = %+v", list)
	}
	if r := do(t, http.MethodGet, "http://"+addr+"/index.html", domain, nil, ""); r.status != 404 || errorCode(r.body) != "NoSuchBucket" {
		t.Fatalf("GET through the unbound domain = %d %s", r.status, r.body)
	}
	// Deleting again is not an error.
	if _, err := c.DeleteCname(ctx, &oss.DeleteCnameRequest{Bucket: oss.Ptr("site"), BucketCnameConfiguration: cnameConfig(domain)}); err != nil {
		t.Fatalf("second DeleteCname: %v", err)
	}
}

func TestSDKCnameTokenIsPerBucket(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("bkt-a", Private)
	e.CreateBucket("bkt-b", Private)
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	ctx := context.Background()
	const domain = "cdn.example.org"

	tokenFor := func(bucket string) string {
		t.Helper()
		res, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr(bucket), BucketCnameConfiguration: cnameConfig(domain)})
		if err != nil {
			t.Fatalf("CreateCnameToken %s: %v", bucket, err)
		}
		return oss.ToString(res.CnameToken.Token)
	}
	tokenA := tokenFor("bkt-a")
	e.SetTXT("_dnsauth."+domain, tokenA)

	// Bucket a's token proves nothing for bucket b, before and after b has
	// its own token.
	wantServiceError(t, "PutCname on b with a's token, b has none", putCname(c, "bkt-b", domain, nil), 403, "NeedVerifyDomainOwnership")
	tokenB := tokenFor("bkt-b")
	if tokenB == tokenA {
		t.Fatal("two buckets got the same token")
	}
	wantServiceError(t, "PutCname on b with a's token", putCname(c, "bkt-b", domain, nil), 403, "NeedVerifyDomainOwnership")
	if len(e.Cnames("bkt-b")) != 0 {
		t.Fatal("b bound with a's token")
	}

	// A token is also per domain.
	e.SetTXT("_dnsauth.www.example.org", tokenA)
	wantServiceError(t, "PutCname of another domain with a's token", putCname(c, "bkt-a", "www.example.org", nil), 403, "NeedVerifyDomainOwnership")

	// The rightful bucket binds; then the other one meets CnameAlreadyExists.
	e.SetTXT("_dnsauth."+domain, tokenB)
	if err := putCname(c, "bkt-b", domain, nil); err != nil {
		t.Fatalf("PutCname on b with b's token: %v", err)
	}
	e.SetTXT("_dnsauth."+domain, tokenA, tokenB)
	wantServiceError(t, "PutCname on a after b bound it", putCname(c, "bkt-a", domain, nil), 409, "CnameAlreadyExists")

	// A domain bound with BindDomain (the console) counts as bound too, and
	// ListCname lists it.
	e.BindDomain("static.example.org", "bkt-a")
	e.SetTXT("_dnsauth.static.example.org", tokenFor("bkt-b"))
	wantServiceError(t, "PutCname of a console-bound domain", putCname(c, "bkt-b", "static.example.org", nil), 409, "CnameAlreadyExists")
	if list := listCnames(t, c, "bkt-a"); len(list) != 1 || oss.ToString(list[0].Domain) != "static.example.org" || oss.ToString(list[0].Status) != "Enabled" {
		t.Fatalf("ListCname a = %+v", list)
	}
}

func TestSDKCnameTokenExpires(t *testing.T) {
	clk := &testkit.Clock{}
	e, addr := startEmulator(t, Options{Region: testRegion, Now: clk.Now})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("bkt", Private)
	ctx := context.Background()
	// Retries allowed: after the clock moves, the SDK corrects its skew from
	// the emulator's Date header, as it does against OSS.
	c := oss.NewClient(oss.LoadDefaultConfig().WithRegion(testRegion).WithEndpoint("http://" + addr).
		WithCredentialsProvider(credentials.NewStaticCredentialsProvider("AKID", "SECRET")))
	const domain = "old.example.com"

	res, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("bkt"), BucketCnameConfiguration: cnameConfig(domain)})
	if err != nil {
		t.Fatalf("CreateCnameToken: %v", err)
	}
	old := oss.ToString(res.CnameToken.Token)
	e.SetTXT("_dnsauth."+domain, old)

	clk.Advance(72*time.Hour + time.Minute)
	_, err = c.GetCnameToken(ctx, &oss.GetCnameTokenRequest{Bucket: oss.Ptr("bkt"), Cname: oss.Ptr(domain)})
	wantServiceError(t, "GetCnameToken after 72h", err, 404, "CnameTokenNotFound")
	wantServiceError(t, "PutCname with an expired token", putCname(c, "bkt", domain, nil), 403, "NeedVerifyDomainOwnership")

	res, err = c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("bkt"), BucketCnameConfiguration: cnameConfig(domain)})
	if err != nil {
		t.Fatalf("CreateCnameToken after expiry: %v", err)
	}
	fresh := oss.ToString(res.CnameToken.Token)
	if fresh == old {
		t.Fatal("an expired token was issued again")
	}
	e.SetTXT("_dnsauth."+domain, fresh)
	if err := putCname(c, "bkt", domain, nil); err != nil {
		t.Fatalf("PutCname with the new token: %v", err)
	}
}

func TestSDKCnameRefusals(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("open", PublicReadWrite)
	e.CreateBucket("priv", Private)
	e.BindDomain("bound.example.com", "open")
	ctx := context.Background()

	// Anonymous requests, shaped as the SDK sends them, are refused on every
	// bucket, even one anonymous clients may write to, and change nothing.
	body := `<BucketCnameConfiguration><Cname><Domain>bound.example.com</Domain></Cname></BucketCnameConfiguration>`
	requests := []struct{ name, method, query, body string }{
		{"ListCname", http.MethodGet, "cname", ""},
		{"GetCnameToken", http.MethodGet, "comp=token&cname=bound.example.com", ""},
		{"CreateCnameToken", http.MethodPost, "cname&comp=token", body},
		{"PutCname", http.MethodPost, "cname&comp=add", body},
		{"DeleteCname", http.MethodPost, "cname&comp=delete", body},
	}
	for _, bucket := range []string{"open", "priv"} {
		for _, rq := range requests {
			t.Run("anonymous "+rq.name+" on "+bucket, func(t *testing.T) {
				r := do(t, rq.method, "http://"+addr+"/"+bucket+"/?"+rq.query, "", http.Header{"Content-Type": {"application/xml"}}, rq.body)
				if r.status != 403 || errorCode(r.body) != "AccessDenied" {
					t.Errorf("= %d %s", r.status, r.body)
				}
			})
		}
	}
	if got := e.Cnames("open"); len(got) != 1 {
		t.Fatalf("anonymous DeleteCname changed the bindings: %v", got)
	}

	// A signature by an unknown key or a wrong secret is refused.
	for _, tt := range []struct {
		name, ak, sk, code string
	}{
		{"unknown key", "NOPE", "SECRET", "InvalidAccessKeyId"},
		{"wrong secret", "AKID", "WRONG", "SignatureDoesNotMatch"},
	} {
		c := sdkClient(addr, tt.ak, tt.sk, "", testRegion)
		_, err := c.ListCname(ctx, &oss.ListCnameRequest{Bucket: oss.Ptr("priv")})
		wantServiceError(t, "ListCname with "+tt.name, err, 403, tt.code)
		_, err = c.DeleteCname(ctx, &oss.DeleteCnameRequest{Bucket: oss.Ptr("open"), BucketCnameConfiguration: cnameConfig("bound.example.com")})
		wantServiceError(t, "DeleteCname with "+tt.name, err, 403, tt.code)
	}

	// Names OSS cannot bind, and buckets that do not exist.
	c := sdkClient(addr, "AKID", "SECRET", "", testRegion)
	for _, d := range []string{"*.example.com", "203.0.113.7", "localhost", "bad_name.example.com", "-x.example.com"} {
		_, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("priv"), BucketCnameConfiguration: cnameConfig(d)})
		wantServiceError(t, "CreateCnameToken "+d, err, 400, "InvalidArgument")
	}
	_, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{Bucket: oss.Ptr("nosuch"), BucketCnameConfiguration: cnameConfig("a.example.com")})
	wantServiceError(t, "CreateCnameToken on a missing bucket", err, 404, "NoSuchBucket")
	_, err = c.ListCname(ctx, &oss.ListCnameRequest{Bucket: oss.Ptr("nosuch")})
	wantServiceError(t, "ListCname on a missing bucket", err, 404, "NoSuchBucket")

	// The other bucket subresources still answer as before.
	if r := do(t, http.MethodGet, "http://"+addr+"/open/?website", "", nil, ""); r.status != 501 {
		t.Errorf("GET ?website = %d", r.status)
	}
}
