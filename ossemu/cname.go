package ossemu

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// This file answers the bucket CNAME operations as the official SDK sends
// them (api_op_bucket_cname.go):
//
//	CreateCnameToken  POST /?cname&comp=token   <BucketCnameConfiguration>
//	GetCnameToken     GET  /?comp=token&cname=D
//	PutCname          POST /?cname&comp=add     <BucketCnameConfiguration>
//	ListCname         GET  /?cname
//	DeleteCname       POST /?cname&comp=delete  <BucketCnameConfiguration>
//
// Ownership is proven as on OSS: CreateCnameToken issues a random token for
// a bucket and domain, valid 72 hours (a second call within that time
// returns the same token), and PutCname binds the domain only when the TXT
// record _dnsauth.<domain> holds that token. SetTXT plays the DNS. A bound
// domain routes requests like BindDomain; a domain bound to one bucket
// cannot be bound to another until DeleteCname releases it.

// cnameTokenTTL is how long a CNAME token stays valid (OSS: 72 hours).
const cnameTokenTTL = 72 * time.Hour

// cnameState is the emulator's CNAME bookkeeping, guarded by Emulator.mu.
// Its maps are created on first use so New need not know about them.
type cnameState struct {
	tokens  map[cnameKey]cnameToken // (bucket, domain) -> token
	txt     map[string][]string     // DNS name -> TXT values (SetTXT)
	meta    map[string]*cnameMeta   // bound domain -> details of its binding
	certs   map[string]*cnameCert   // CertId -> certificate, for CertId-only PutCname
	certSeq int
}

// cnameKey names the bucket and domain a token was issued for.
type cnameKey struct{ bucket, domain string }

// cnameToken is one issued ownership token.
type cnameToken struct {
	value   string
	expires time.Time
}

// cnameMeta is what ListCname reports about a binding made by PutCname.
// Domains bound with BindDomain have none (they list without details).
type cnameMeta struct {
	bucket   string
	modified time.Time
	cert     *cnameCert
}

// cnameCert is a certificate attached to a bound domain.
type cnameCert struct {
	typ         string // "Upload" (PEM sent with PutCname) or "CAS" (CertId only)
	id          string
	created     time.Time
	detailed    bool // the emulator saw the certificate, so the fields below are set
	fingerprint string
	notBefore   time.Time
	notAfter    time.Time
}

// init creates the maps on first use; e.mu must be held for writing.
func (s *cnameState) init() {
	if s.tokens == nil {
		s.tokens = make(map[cnameKey]cnameToken)
		s.txt = make(map[string][]string)
		s.meta = make(map[string]*cnameMeta)
		s.certs = make(map[string]*cnameCert)
	}
}

// SetTXT stands in for DNS: it sets the TXT record name (such as
// "_dnsauth.img.example.com") to values, replacing what was there; no
// values deletes the record. PutCname reads these records to verify domain
// ownership.
func (e *Emulator) SetTXT(name string, values ...string) {
	name = normalizeHost(strings.TrimSpace(name))
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cname.init()
	if len(values) == 0 {
		delete(e.cname.txt, name)
		return
	}
	e.cname.txt[name] = slices.Clone(values)
}

// Cnames returns the custom domains bound to bucket (by PutCname or
// BindDomain), sorted.
func (e *Emulator) Cnames(bucket string) []string {
	e.mu.RLock()
	defer e.mu.RUnlock()
	var out []string
	for d, b := range e.domains {
		if b == bucket {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// serveCname dispatches the bucket requests that carry the cname parameter.
// They are owner operations: a verified signature is required even on
// public buckets.
func (c *call) serveCname(q url.Values) {
	if !c.signed {
		c.fail(&apiError{http.StatusForbidden, "AccessDenied", "Anonymous access is forbidden for this operation.", nil})
		return
	}
	comp := q.Get("comp")
	switch c.r.Method {
	case http.MethodGet:
		switch comp {
		case "":
			c.listCname()
		case "token":
			c.getCnameToken(q.Get("cname"))
		default:
			c.fail(errNotImplemented())
		}
	case http.MethodPost:
		switch comp {
		case "token":
			c.createCnameToken()
		case "add":
			c.putCname()
		case "delete":
			c.deleteCname()
		default:
			c.fail(errNotImplemented())
		}
	default:
		c.fail(errMethodNotAllowed())
	}
}

// cnameConfiguration is the request body of CreateCnameToken, PutCname and
// DeleteCname.
type cnameConfiguration struct {
	XMLName xml.Name `xml:"BucketCnameConfiguration"`
	Cname   struct {
		Domain     string             `xml:"Domain"`
		IsWildCard bool               `xml:"IsWildCard"`
		Cert       *certConfiguration `xml:"CertificateConfiguration"`
	} `xml:"Cname"`
}

// certConfiguration is PutCname's CertificateConfiguration.
type certConfiguration struct {
	CertID            string `xml:"CertId"`
	Certificate       string `xml:"Certificate"`
	PrivateKey        string `xml:"PrivateKey"`
	PreviousCertID    string `xml:"PreviousCertId"`
	Force             bool   `xml:"Force"`
	DeleteCertificate bool   `xml:"DeleteCertificate"`
}

// maxCnameBody bounds the XML body of the CNAME operations (a certificate
// chain and its key fit many times over).
const maxCnameBody = 1 << 20

// readCnameConfiguration reads and checks the request body and returns it
// with its domain normalised.
func (c *call) readCnameConfiguration() (*cnameConfiguration, string, *apiError) {
	if c.r.ContentLength > maxCnameBody {
		return nil, "", &apiError{http.StatusBadRequest, "EntityTooLarge", "The request body is too large.", nil}
	}
	c.r.Body = http.MaxBytesReader(c.w, c.r.Body, maxCnameBody)
	data, aerr := c.readBody()
	if aerr != nil {
		return nil, "", aerr
	}
	var cfg cnameConfiguration
	if err := xml.Unmarshal(data, &cfg); err != nil {
		return nil, "", &apiError{http.StatusBadRequest, "MalformedXML", "The XML you provided was not well-formed or did not validate against our published schema.", nil}
	}
	if cfg.Cname.IsWildCard {
		return nil, "", invalidArgument("The emulator does not support wildcard domain names.")
	}
	domain, aerr := cnameDomain(cfg.Cname.Domain)
	if aerr != nil {
		return nil, "", aerr
	}
	return &cfg, domain, nil
}

// cnameDomain normalises a custom domain name and checks that OSS could
// bind it: a DNS name of at least two labels, no wildcard, no IP address.
func cnameDomain(raw string) (string, *apiError) {
	d := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(raw), "."))
	switch {
	case d == "":
		return "", invalidArgument("The Domain element is required.")
	case strings.Contains(d, "*"):
		return "", invalidArgument("Wildcard domain names cannot be bound.")
	case net.ParseIP(strings.Trim(d, "[]")) != nil:
		return "", invalidArgument("An IP address cannot be bound as a custom domain name.")
	case len(d) > 253 || !strings.Contains(d, "."):
		return "", invalidArgument(fmt.Sprintf("%q is not a valid domain name.", raw))
	}
	for _, label := range strings.Split(d, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", invalidArgument(fmt.Sprintf("%q is not a valid domain name.", raw))
		}
		for i := 0; i < len(label); i++ {
			if ch := label[i]; !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-') {
				return "", invalidArgument(fmt.Sprintf("%q is not a valid domain name.", raw))
			}
		}
	}
	return d, nil
}

// cnameTokenResult is the answer of CreateCnameToken and GetCnameToken.
type cnameTokenResult struct {
	XMLName    xml.Name `xml:"CnameToken"`
	Bucket     string   `xml:"Bucket"`
	Cname      string   `xml:"Cname"`
	Token      string   `xml:"Token"`
	ExpireTime string   `xml:"ExpireTime"`
}

// createCnameToken answers CreateCnameToken: the bucket's valid token for
// the domain, or a new one.
func (c *call) createCnameToken() {
	_, domain, aerr := c.readCnameConfiguration()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	now := c.e.now().UTC()
	k := cnameKey{c.bucket, domain}
	c.e.mu.Lock()
	c.e.cname.init()
	tok, ok := c.e.cname.tokens[k]
	if !ok || !now.Before(tok.expires) {
		tok = cnameToken{value: newCnameToken(), expires: now.Add(cnameTokenTTL)}
		c.e.cname.tokens[k] = tok
	}
	c.e.mu.Unlock()
	c.writeXML(cnameTokenResult{Bucket: c.bucket, Cname: domain, Token: tok.value, ExpireTime: tok.expires.Format(http.TimeFormat)})
}

// newCnameToken returns 32 random hex digits, the shape of OSS's tokens.
func newCnameToken() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return hex.EncodeToString(b[:])
}

// getCnameToken answers GetCnameToken.
func (c *call) getCnameToken(raw string) {
	domain, aerr := cnameDomain(raw)
	if aerr != nil {
		c.fail(aerr)
		return
	}
	now := c.e.now().UTC()
	c.e.mu.RLock()
	tok, ok := c.e.cname.tokens[cnameKey{c.bucket, domain}]
	c.e.mu.RUnlock()
	if !ok || !now.Before(tok.expires) {
		c.fail(&apiError{http.StatusNotFound, "CnameTokenNotFound", "Cname token not found.", []xmlField{
			{"Bucket", c.bucket}, {"Cname", domain}, {"EC", "0018-00000301"},
		}})
		return
	}
	c.writeXML(cnameTokenResult{Bucket: c.bucket, Cname: domain, Token: tok.value, ExpireTime: tok.expires.Format(http.TimeFormat)})
}

// putCname answers PutCname: bind the domain once its ownership is proven,
// and attach, replace or delete its certificate.
func (c *call) putCname() {
	cfg, domain, aerr := c.readCnameConfiguration()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	now := c.e.now().UTC()
	cc := cfg.Cname.Cert
	var upload *cnameCert
	if cc != nil && !cc.DeleteCertificate && (cc.Certificate != "" || cc.PrivateKey != "") {
		if upload, aerr = parseUploadedCert(cc.Certificate, cc.PrivateKey, domain, now); aerr != nil {
			c.fail(aerr)
			return
		}
	}
	c.e.mu.Lock()
	aerr = c.e.bindCnameLocked(c.bucket, domain, cc, upload, now)
	c.e.mu.Unlock()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
}

// bindCnameLocked checks and makes a PutCname binding; e.mu must be held
// for writing. Nothing changes unless every check passes.
func (e *Emulator) bindCnameLocked(bucket, domain string, cc *certConfiguration, upload *cnameCert, now time.Time) *apiError {
	e.cname.init()
	owner, bound := e.domains[domain]
	if bound && owner != bucket {
		return &apiError{http.StatusConflict, "CnameAlreadyExists",
			"The specified domain name is already mapped to another bucket. Unmap it from that bucket first.", nil}
	}
	if !bound {
		// Ownership is verified when a domain is first mapped; later calls
		// (certificate changes) need no TXT record, as on OSS.
		tok, ok := e.cname.tokens[cnameKey{bucket, domain}]
		if !ok || !now.Before(tok.expires) || !slices.Contains(e.cname.txt["_dnsauth."+domain], tok.value) {
			return &apiError{http.StatusForbidden, "NeedVerifyDomainOwnership",
				"The ownership of the domain name is not verified. Create a CnameToken with CreateCnameToken, add it as the TXT record _dnsauth." + domain + ", and try again.",
				[]xmlField{{"EC", "0018-00000115"}}}
		}
	}
	meta := e.cname.meta[domain]
	if meta == nil || meta.bucket != bucket || !bound {
		meta = &cnameMeta{bucket: bucket}
	}
	cert := meta.cert
	if cc != nil {
		switch {
		case cc.DeleteCertificate:
			cert = nil
		case upload != nil || cc.CertID != "":
			if cert != nil && !cc.Force && cc.PreviousCertID != cert.id {
				return invalidArgument(fmt.Sprintf("PreviousCertId %q does not name the certificate bound to the domain; set Force to replace it.", cc.PreviousCertID))
			}
			cert = e.attachCertLocked(cc.CertID, upload, now)
		}
	}
	meta.cert = cert
	meta.modified = now
	e.domains[domain] = bucket
	e.cname.meta[domain] = meta
	return nil
}

// attachCertLocked returns the certificate a PutCname attaches: the one
// uploaded (registered under certID or a new ID), or the one certID names.
// A CertId the emulator never saw stands for a certificate in Certificate
// Management Service, which the emulator cannot read: it lists without
// dates or fingerprint.
func (e *Emulator) attachCertLocked(certID string, upload *cnameCert, now time.Time) *cnameCert {
	if upload != nil {
		cert := *upload
		cert.id = certID
		if cert.id == "" {
			e.cname.certSeq++
			cert.id = fmt.Sprintf("%d-%s", 10000000+e.cname.certSeq, e.region)
		}
		cert.created = now
		e.cname.certs[cert.id] = &cert
		return &cert
	}
	if known, ok := e.cname.certs[certID]; ok {
		cert := *known
		cert.created = now
		return &cert
	}
	return &cnameCert{typ: "CAS", id: certID, created: now}
}

// parseUploadedCert checks a PEM certificate chain and private key sent
// with PutCname: they must parse, belong together, cover domain and not
// have expired.
func parseUploadedCert(certPEM, keyPEM, domain string, now time.Time) (*cnameCert, *apiError) {
	if certPEM == "" || keyPEM == "" {
		return nil, invalidArgument("Certificate and PrivateKey must be sent together.")
	}
	pair, err := tls.X509KeyPair([]byte(certPEM), []byte(keyPEM))
	if err != nil {
		return nil, invalidArgument(fmt.Sprintf("The certificate and private key are not a valid PEM key pair: %v.", err))
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, invalidArgument(fmt.Sprintf("The certificate cannot be parsed: %v.", err))
	}
	if err := leaf.VerifyHostname(domain); err != nil {
		return nil, invalidArgument(fmt.Sprintf("The certificate does not cover %s.", domain))
	}
	if now.After(leaf.NotAfter) {
		return nil, invalidArgument("The certificate has expired.")
	}
	sum := sha1.Sum(leaf.Raw)
	hexes := make([]string, len(sum))
	for i, b := range sum {
		hexes[i] = fmt.Sprintf("%02X", b)
	}
	return &cnameCert{
		typ:         "Upload",
		detailed:    true,
		fingerprint: strings.Join(hexes, ":"),
		notBefore:   leaf.NotBefore.UTC(),
		notAfter:    leaf.NotAfter.UTC(),
	}, nil
}

// listCnameResult is ListCname's answer.
type listCnameResult struct {
	XMLName xml.Name    `xml:"ListCnameResult"`
	Bucket  string      `xml:"Bucket"`
	Owner   string      `xml:"Owner"`
	Cnames  []cnameInfo `xml:"Cname"`
}

// cnameInfo is one <Cname> of ListCname.
type cnameInfo struct {
	Domain       string         `xml:"Domain"`
	LastModified string         `xml:"LastModified,omitempty"`
	Status       string         `xml:"Status"`
	Certificate  *cnameCertInfo `xml:"Certificate,omitempty"`
}

// cnameCertInfo is the <Certificate> of a bound domain.
type cnameCertInfo struct {
	Type           string `xml:"Type"`
	CertID         string `xml:"CertId"`
	Status         string `xml:"Status"`
	CreationDate   string `xml:"CreationDate"`
	Fingerprint    string `xml:"Fingerprint,omitempty"`
	ValidStartDate string `xml:"ValidStartDate,omitempty"`
	ValidEndDate   string `xml:"ValidEndDate,omitempty"`
}

// emulatorOwner is the bucket owner ListCname names.
const emulatorOwner = "ossemu"

// listCname answers ListCname: every domain bound to the bucket, sorted.
func (c *call) listCname() {
	res := listCnameResult{Bucket: c.bucket, Owner: emulatorOwner, Cnames: []cnameInfo{}}
	c.e.mu.RLock()
	for d, b := range c.e.domains {
		if b != c.bucket {
			continue
		}
		info := cnameInfo{Domain: d, Status: "Enabled"}
		if m := c.e.cname.meta[d]; m != nil && m.bucket == b {
			info.LastModified = m.modified.Format("2006-01-02T15:04:05.000Z")
			if cert := m.cert; cert != nil {
				ci := &cnameCertInfo{Type: cert.typ, CertID: cert.id, Status: "Enabled", CreationDate: cert.created.Format(http.TimeFormat)}
				if cert.detailed {
					ci.Fingerprint = cert.fingerprint
					ci.ValidStartDate = cert.notBefore.Format(http.TimeFormat)
					ci.ValidEndDate = cert.notAfter.Format(http.TimeFormat)
				}
				info.Certificate = ci
			}
		}
		res.Cnames = append(res.Cnames, info)
	}
	c.e.mu.RUnlock()
	sort.Slice(res.Cnames, func(i, j int) bool { return res.Cnames[i].Domain < res.Cnames[j].Domain })
	c.writeXML(res)
}

// deleteCname answers DeleteCname. A domain not bound to this bucket is
// left alone (bound elsewhere or not at all) and the answer is still 200,
// as OSS answers.
func (c *call) deleteCname() {
	_, domain, aerr := c.readCnameConfiguration()
	if aerr != nil {
		c.fail(aerr)
		return
	}
	c.e.mu.Lock()
	if c.e.domains[domain] == c.bucket {
		delete(c.e.domains, domain)
		delete(c.e.cname.meta, domain)
	}
	c.e.mu.Unlock()
	c.w.Header().Set("Content-Length", "0")
	c.w.WriteHeader(http.StatusOK)
}
