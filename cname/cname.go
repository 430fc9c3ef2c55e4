// Package cname drives the OSS CNAME lifecycle of a bucket through the
// official SDK: ownership tokens (CreateCnameToken, GetCnameToken), binding
// a custom domain with an optional certificate (PutCname), listing the
// bindings (ListCname) and unbinding (DeleteCname).
//
// OSS binds a custom domain to a bucket only after its owner proves control
// of the domain's DNS: CreateCnameToken issues a token (valid 72 hours; asked
// again before then, OSS returns the same one) that the operator publishes
// as the TXT record _dnsauth.<domain>, and PutCname checks that record,
// answering NeedVerifyDomainOwnership until it is there.
//
// The functions take an SDK client for the bucket's region and endpoint and
// return plain values; `gateway cname` prints them.
package cname

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"golang.org/x/net/publicsuffix"
)

// OSS error codes this package tells apart.
const (
	CodeNeedVerifyDomainOwnership = "NeedVerifyDomainOwnership"
	CodeCnameTokenNotFound        = "CnameTokenNotFound"
	CodeCnameAlreadyExists        = "CnameAlreadyExists"
)

// ErrNoToken is returned (wrapped) by GetToken when the bucket has no valid
// token for the domain: none was created, or it expired.
var ErrNoToken = errors.New("no valid CNAME token")

// Token is a CNAME token proving ownership of Domain for Bucket.
type Token struct {
	Bucket  string
	Domain  string
	Value   string
	Expires time.Time // zero when OSS sent a time this package cannot parse
	Created bool      // EnsureToken called CreateCnameToken to get it
}

// Record is the DNS record that proves ownership of a domain.
type Record struct {
	Name  string // fully qualified: _dnsauth.img.example.com
	Zone  string // the registrable domain the record most likely lives in (example.com); "" if unknown
	Host  string // Name relative to Zone (_dnsauth.img), as DNS consoles ask for it; Name when Zone is ""
	Type  string // TXT
	Value string // the token
}

// TXTRecord is the record the operator adds for t: the TXT record
// _dnsauth.<domain> holding the token. As Alibaba's documentation says, the
// host record is "_dnsauth" for the zone's own name and "_dnsauth.image" for
// image.example.com; the zone is guessed as the registrable domain (public
// suffix plus one label), which is where most zones are cut.
func TXTRecord(t Token) Record {
	domain := strings.TrimSuffix(strings.ToLower(t.Domain), ".")
	r := Record{Name: "_dnsauth." + domain, Type: "TXT", Value: t.Value}
	r.Host = r.Name
	if zone, err := publicsuffix.EffectiveTLDPlusOne(domain); err == nil {
		r.Zone = zone
		r.Host = "_dnsauth"
		if sub := strings.TrimSuffix(domain, "."+zone); sub != domain {
			r.Host += "." + sub
		}
	}
	return r
}

// Instruction is the text telling an operator which record to add for t,
// one item per line, ending in a newline.
func Instruction(t Token) string {
	r := TXTRecord(t)
	var b strings.Builder
	fmt.Fprintf(&b, "To prove you own %s, add this record at its DNS provider:\n", t.Domain)
	fmt.Fprintf(&b, "  name     %s\n", r.Name)
	if r.Zone != "" {
		fmt.Fprintf(&b, "  host     %s   (host record in the zone %s)\n", r.Host, r.Zone)
	}
	fmt.Fprintf(&b, "  type     %s\n", r.Type)
	fmt.Fprintf(&b, "  value    %s\n", r.Value)
	if !t.Expires.IsZero() {
		fmt.Fprintf(&b, "  expires  %s (bind the domain before then; the record may be deleted after binding)\n", t.Expires.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// GetToken returns the bucket's token for domain (GetCnameToken). When
// there is none, or it expired, the error wraps ErrNoToken.
func GetToken(ctx context.Context, c *oss.Client, bucket, domain string) (Token, error) {
	res, err := c.GetCnameToken(ctx, &oss.GetCnameTokenRequest{Bucket: oss.Ptr(bucket), Cname: oss.Ptr(domain)})
	if err != nil {
		if Code(err) == CodeCnameTokenNotFound {
			return Token{}, fmt.Errorf("%w for %s on bucket %s", ErrNoToken, domain, bucket)
		}
		return Token{}, err
	}
	t := tokenFrom(res.CnameToken, bucket, domain)
	if t.Value == "" {
		return Token{}, fmt.Errorf("%w for %s on bucket %s (OSS answered without one)", ErrNoToken, domain, bucket)
	}
	return t, nil
}

// EnsureToken returns a token for domain that is valid at now: the
// existing one (GetCnameToken) or, when there is none or it has expired, a
// new one (CreateCnameToken).
func EnsureToken(ctx context.Context, c *oss.Client, bucket, domain string, now time.Time) (Token, error) {
	t, err := GetToken(ctx, c, bucket, domain)
	switch {
	case err == nil && (t.Expires.IsZero() || t.Expires.After(now)):
		return t, nil
	case err != nil && !errors.Is(err, ErrNoToken):
		return Token{}, err
	}
	res, err := c.CreateCnameToken(ctx, &oss.CreateCnameTokenRequest{
		Bucket:                   oss.Ptr(bucket),
		BucketCnameConfiguration: &oss.BucketCnameConfiguration{Cname: &oss.Cname{Domain: oss.Ptr(domain)}},
	})
	if err != nil {
		return Token{}, err
	}
	t = tokenFrom(res.CnameToken, bucket, domain)
	if t.Value == "" {
		return Token{}, fmt.Errorf("CreateCnameToken for %s on bucket %s answered without a token", domain, bucket)
	}
	t.Created = true
	return t, nil
}

// tokenFrom converts the SDK's token, defaulting bucket and domain.
func tokenFrom(ct *oss.CnameToken, bucket, domain string) Token {
	t := Token{Bucket: bucket, Domain: domain}
	if ct == nil {
		return t
	}
	if v := oss.ToString(ct.Bucket); v != "" {
		t.Bucket = v
	}
	if v := oss.ToString(ct.Cname); v != "" {
		t.Domain = v
	}
	t.Value = oss.ToString(ct.Token)
	t.Expires = parseTime(oss.ToString(ct.ExpireTime))
	return t
}

// Certificate is what Bind attaches to the domain: a PEM certificate chain
// and its private key, or the ID of a certificate already in Alibaba Cloud
// Certificate Management Service.
type Certificate struct {
	CertPEM string
	KeyPEM  string
	CertID  string
}

// OwnershipError is Bind's error when OSS wants proof of ownership
// (NeedVerifyDomainOwnership). Token is the bucket's current token for the
// domain, to publish as a TXT record, or nil when there is none (it must be
// created first).
type OwnershipError struct {
	Domain string
	Token  *Token
	Err    error // the OSS error
}

// Error is the OSS error in one line.
func (e *OwnershipError) Error() string { return ErrorLine(e.Err) }

// Unwrap exposes the OSS error.
func (e *OwnershipError) Unwrap() error { return e.Err }

// Bind maps domain to bucket (PutCname), with cert when it is not nil,
// replacing any certificate the domain has. When OSS asks for proof of
// ownership, the error is an *OwnershipError carrying the token to publish
// (looked up with GetCnameToken).
func Bind(ctx context.Context, c *oss.Client, bucket, domain string, cert *Certificate) error {
	cn := &oss.Cname{Domain: oss.Ptr(domain)}
	if cert != nil {
		cc := &oss.CertificateConfiguration{Force: oss.Ptr(true)}
		if cert.CertPEM != "" || cert.KeyPEM != "" {
			cc.Certificate, cc.PrivateKey = oss.Ptr(cert.CertPEM), oss.Ptr(cert.KeyPEM)
		}
		if cert.CertID != "" {
			cc.CertId = oss.Ptr(cert.CertID)
		}
		cn.CertificateConfiguration = cc
	}
	_, err := c.PutCname(ctx, &oss.PutCnameRequest{
		Bucket:                   oss.Ptr(bucket),
		BucketCnameConfiguration: &oss.BucketCnameConfiguration{Cname: cn},
	})
	if err == nil {
		return nil
	}
	if Code(err) != CodeNeedVerifyDomainOwnership {
		return err
	}
	oe := &OwnershipError{Domain: domain, Err: err}
	if t, terr := GetToken(ctx, c, bucket, domain); terr == nil {
		oe.Token = &t
	}
	return oe
}

// Binding is one custom domain bound to a bucket, as ListCname reports it.
type Binding struct {
	Domain       string
	Status       string    // Enabled | Disabled
	LastModified time.Time // zero if not reported
	Cert         *CertInfo // nil: no certificate
}

// CertInfo is the certificate attached to a bound domain.
type CertInfo struct {
	Type        string // CAS | Upload
	ID          string
	Status      string // Enabled | Disabled
	Fingerprint string
	Created     time.Time // zero if not reported
	ValidFrom   time.Time
	ValidUntil  time.Time
}

// List returns the domains bound to bucket (ListCname), sorted by domain.
func List(ctx context.Context, c *oss.Client, bucket string) ([]Binding, error) {
	res, err := c.ListCname(ctx, &oss.ListCnameRequest{Bucket: oss.Ptr(bucket)})
	if err != nil {
		return nil, err
	}
	out := make([]Binding, 0, len(res.Cnames))
	for _, ci := range res.Cnames {
		b := Binding{
			Domain:       oss.ToString(ci.Domain),
			Status:       oss.ToString(ci.Status),
			LastModified: parseTime(oss.ToString(ci.LastModified)),
		}
		if cc := ci.Certificate; cc != nil {
			b.Cert = &CertInfo{
				Type:        oss.ToString(cc.Type),
				ID:          oss.ToString(cc.CertId),
				Status:      oss.ToString(cc.Status),
				Fingerprint: oss.ToString(cc.Fingerprint),
				Created:     parseTime(oss.ToString(cc.CreationDate)),
				ValidFrom:   parseTime(oss.ToString(cc.ValidStartDate)),
				ValidUntil:  parseTime(oss.ToString(cc.ValidEndDate)),
			}
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Domain < out[j].Domain })
	return out, nil
}

// Unbind removes domain from bucket (DeleteCname). wasBound reports whether
// ListCname showed the domain bound to this bucket beforehand; OSS answers
// DeleteCname of a domain it does not bind to the bucket with success too.
func Unbind(ctx context.Context, c *oss.Client, bucket, domain string) (wasBound bool, err error) {
	list, err := List(ctx, c, bucket)
	if err != nil {
		return false, err
	}
	for _, b := range list {
		wasBound = wasBound || strings.EqualFold(b.Domain, domain)
	}
	_, err = c.DeleteCname(ctx, &oss.DeleteCnameRequest{
		Bucket:                   oss.Ptr(bucket),
		BucketCnameConfiguration: &oss.BucketCnameConfiguration{Cname: &oss.Cname{Domain: oss.Ptr(domain)}},
	})
	if err != nil {
		return false, err
	}
	return wasBound, nil
}

// Code is the OSS error code in err, or "" when err is not an OSS answer.
func Code(err error) string {
	var se *oss.ServiceError
	if errors.As(err, &se) {
		return se.Code
	}
	return ""
}

// ErrorLine renders err as one line an operator can act on: for an OSS
// answer its code, message, HTTP status and request ID (never the request's
// credentials, which OSS does not echo in these fields); otherwise the error
// text on one line, cut short, without any response body a credentials
// provider quoted.
func ErrorLine(err error) string {
	if err == nil {
		return ""
	}
	var se *oss.ServiceError
	if errors.As(err, &se) {
		msg := oneLine(strings.TrimSpace(se.Message))
		if msg == "" {
			msg = http.StatusText(se.StatusCode)
		}
		id := se.RequestID
		if id == "" {
			id = "none"
		}
		return fmt.Sprintf("%s: %s (HTTP %d, request id %s)", se.Code, strings.TrimSuffix(msg, "."), se.StatusCode, id)
	}
	msg := oneLine(err.Error())
	if i := strings.Index(msg, "response body"); i >= 0 {
		msg = msg[:i] + "(response body withheld)"
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// oneLine joins the lines of s with spaces.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// ValidDomain reports why domain cannot be bound to a bucket, or "": OSS
// binds DNS names only, without wildcards.
func ValidDomain(domain string) string {
	switch {
	case domain == "":
		return "a domain is required"
	case strings.Contains(domain, "*"):
		return "wildcard domains cannot be bound"
	case net.ParseIP(strings.Trim(domain, "[]")) != nil:
		return "an IP address cannot be bound; OSS binds domain names only"
	case !strings.Contains(domain, "."):
		return "not a fully qualified domain name"
	}
	return ""
}

// parseTime reads the time formats OSS uses in these answers: RFC 1123 GMT
// (with or without a zero-padded day) and ISO 8601. Unknown formats give
// the zero time.
func parseTime(s string) time.Time {
	s = strings.TrimSpace(s)
	for _, layout := range []string{http.TimeFormat, "Mon, 2 Jan 2006 15:04:05 GMT", time.RFC1123, time.RFC1123Z, time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}
