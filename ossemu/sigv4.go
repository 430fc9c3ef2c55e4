package ossemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file verifies OSS Signature V4 independently of the SDK's signer, so
// that a request the emulator accepts proves the gateway signed it right.

const (
	algorithmV4       = "OSS4-HMAC-SHA256"
	unsignedPayload   = "UNSIGNED-PAYLOAD"
	scopeTerminator   = "aliyun_v4_request"
	iso8601DateTime   = "20060102T150405Z"
	iso8601Date       = "20060102"
	maxClockSkew      = 15 * time.Minute
	maxPresignExpires = 7 * 24 * 3600 // seconds, OSS's limit for V4 URLs
)

// sigParams is the signature information a request carries, from either
// the Authorization header or the presigned query.
type sigParams struct {
	query      bool     // presigned query form
	akID       string   // AccessKey ID
	scopeDate  string   // YYYYMMDD from the credential scope
	region     string   // region from the credential scope
	product    string   // "oss"
	terminator string   // "aliyun_v4_request"
	additional []string // AdditionalHeaders, lowercase, as sent
	signature  string
	datetime   string // x-oss-date
	expires    int64  // presigned only
	token      string // x-oss-security-token
}

// authenticate verifies the request's V4 signature if it has one. signed is
// false for anonymous requests; a request that carries a signature either
// verifies or gets an error.
func (c *call) authenticate() (signed bool, _ *apiError) {
	q := c.r.URL.Query()
	auth := c.r.Header.Get("Authorization")
	isQuery := q.Has("x-oss-signature") || q.Has("x-oss-credential") || q.Has("x-oss-signature-version")
	switch {
	case auth != "" && isQuery:
		return false, invalidArgument("Only one authentication mechanism is allowed: Authorization header or signature query parameters.")
	case auth != "":
		if !strings.HasPrefix(auth, algorithmV4+" ") {
			return false, &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "The emulator only accepts OSS4-HMAC-SHA256 (Signature V4) authorization.", nil}
		}
	case isQuery:
	case q.Has("OSSAccessKeyId"):
		return false, &apiError{http.StatusForbidden, "SignatureDoesNotMatch", "The emulator only accepts OSS4-HMAC-SHA256 (Signature V4) presigned URLs.", nil}
	default:
		return false, nil
	}

	var p sigParams
	var aerr *apiError
	if auth != "" {
		p, aerr = parseAuthHeader(auth, c.r.Header)
	} else {
		p, aerr = parseAuthQuery(q)
	}
	if aerr != nil {
		return false, aerr
	}
	if aerr := c.e.checkScope(p); aerr != nil {
		return false, aerr
	}
	if aerr := c.e.checkTime(p); aerr != nil {
		return false, aerr
	}
	c.e.mu.RLock()
	cred, known := c.e.creds[p.akID]
	c.e.mu.RUnlock()
	if !known {
		return false, &apiError{http.StatusForbidden, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.",
			[]xmlField{{"OSSAccessKeyId", p.akID}}}
	}
	if p.token != cred.token {
		return false, &apiError{http.StatusForbidden, "InvalidSecurityToken", "The security token you provided is invalid.",
			[]xmlField{{"SecurityToken", p.token}}}
	}

	canonical, err := canonicalRequest(c.r.Method, c.bucket, c.key, c.r.URL.RawQuery, c.r.Header, c.r.Host, p.additional)
	if err != nil {
		return false, invalidArgument(fmt.Sprintf("Cannot canonicalize the query string: %v.", err))
	}
	scope := p.scopeDate + "/" + p.region + "/" + p.product + "/" + p.terminator
	sts := stringToSign(p.datetime, scope, canonical)
	want := signatureV4(cred.secret, p.scopeDate, p.region, p.product, sts)
	if !hmac.Equal([]byte(want), []byte(strings.ToLower(p.signature))) {
		return false, errSignatureMismatch(p, sts, canonical)
	}
	return true, nil
}

// ecSignatureMismatch is the EC OSS gives a V4 SignatureDoesNotMatch.
const ecSignatureMismatch = "0002-00000040"

// errSignatureMismatch is OSS's V4 SignatureDoesNotMatch with the elements
// it adds, in its order, so a signer can be debugged against the emulator
// exactly as against OSS: what was received, what the server signed
// (string and bytes) and from which canonical request, then the EC.
func errSignatureMismatch(p sigParams, sts, canonical string) *apiError {
	extra := []xmlField{
		{"OSSAccessKeyId", p.akID},
		{"SignatureProvided", p.signature},
		{"StringToSign", sts},
		{"StringToSignBytes", hexBytes(sts)},
		{"CanonicalRequest", canonical},
	}
	return &apiError{http.StatusForbidden, "SignatureDoesNotMatch",
		"The request signature we calculated does not match the signature you provided. Check your key and signing method.",
		append(extra, errorCodeFields(ecSignatureMismatch)...)}
}

// hexBytes renders s as space-separated upper-case two-digit hex bytes
// ("OSS" -> "4F 53 53"), as OSS's StringToSignBytes does.
func hexBytes(s string) string {
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)*3)
	for i := 0; i < len(s); i++ {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, hexDigits[s[i]>>4], hexDigits[s[i]&15])
	}
	return string(b)
}

// invalidArgument is OSS's 400 for malformed signature information.
func invalidArgument(msg string) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidArgument", msg, nil}
}

// parseAuthHeader parses
// "OSS4-HMAC-SHA256 Credential=AK/DATE/REGION/oss/aliyun_v4_request[,AdditionalHeaders=a;b],Signature=HEX".
func parseAuthHeader(auth string, h http.Header) (sigParams, *apiError) {
	p := sigParams{datetime: h.Get("X-Oss-Date"), token: h.Get("X-Oss-Security-Token")}
	var credential string
	var haveCred, haveSig bool
	for _, field := range strings.Split(strings.TrimPrefix(auth, algorithmV4+" "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(field), "=")
		if !ok {
			return p, invalidArgument("Authorization header is invalid: every field must be key=value.")
		}
		switch k {
		case "Credential":
			credential, haveCred = v, true
		case "AdditionalHeaders":
			p.additional = splitAdditional(v)
		case "Signature":
			p.signature, haveSig = v, true
		default:
			return p, invalidArgument("Authorization header is invalid: unknown field " + k + ".")
		}
	}
	if !haveCred || !haveSig {
		return p, invalidArgument("Authorization header is invalid: Credential and Signature are required.")
	}
	if p.datetime == "" {
		return p, invalidArgument("The x-oss-date header is required with a V4 Authorization header.")
	}
	if aerr := p.setCredential(credential); aerr != nil {
		return p, aerr
	}
	return p, nil
}

// parseAuthQuery parses the x-oss-* parameters of a presigned V4 URL.
func parseAuthQuery(q url.Values) (sigParams, *apiError) {
	p := sigParams{
		query:     true,
		datetime:  q.Get("x-oss-date"),
		signature: q.Get("x-oss-signature"),
		token:     q.Get("x-oss-security-token"),
	}
	if v := q.Get("x-oss-signature-version"); v != algorithmV4 {
		return p, invalidArgument("x-oss-signature-version must be " + algorithmV4 + ".")
	}
	for _, name := range []string{"x-oss-credential", "x-oss-date", "x-oss-expires", "x-oss-signature"} {
		if q.Get(name) == "" {
			return p, invalidArgument("The presigned URL lacks " + name + ".")
		}
	}
	exp, err := strconv.ParseInt(q.Get("x-oss-expires"), 10, 64)
	if err != nil || exp <= 0 || exp > maxPresignExpires {
		return p, invalidArgument("x-oss-expires must be an integer from 1 to 604800.")
	}
	p.expires = exp
	p.additional = splitAdditional(q.Get("x-oss-additional-headers"))
	if aerr := p.setCredential(q.Get("x-oss-credential")); aerr != nil {
		return p, aerr
	}
	return p, nil
}

// setCredential splits AK/DATE/REGION/PRODUCT/aliyun_v4_request.
func (p *sigParams) setCredential(credential string) *apiError {
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" {
		return invalidArgument("The credential must be <AccessKeyId>/<SignDate>/<Region>/oss/aliyun_v4_request.")
	}
	p.akID, p.scopeDate, p.region, p.product, p.terminator = parts[0], parts[1], parts[2], parts[3], parts[4]
	return nil
}

// splitAdditional splits "a;b" into lowercase header names.
func splitAdditional(v string) []string {
	if v == "" {
		return nil
	}
	names := strings.Split(v, ";")
	for i, n := range names {
		names[i] = strings.ToLower(strings.TrimSpace(n))
	}
	return names
}

// checkScope checks the credential scope against the emulator's region.
func (e *Emulator) checkScope(p sigParams) *apiError {
	switch {
	case p.product != "oss":
		return invalidArgument(fmt.Sprintf("Invalid product %q in the credential scope, expecting \"oss\".", p.product))
	case p.terminator != scopeTerminator:
		return invalidArgument(fmt.Sprintf("Invalid credential scope terminator %q, expecting %q.", p.terminator, scopeTerminator))
	case p.region != e.region:
		return invalidArgument(fmt.Sprintf("Invalid signing region in the credential scope: %q, expecting %q.", p.region, e.region))
	}
	if _, err := time.Parse(iso8601Date, p.scopeDate); err != nil {
		return invalidArgument(fmt.Sprintf("Invalid sign date %q in the credential scope, expecting YYYYMMDD.", p.scopeDate))
	}
	return nil
}

// checkTime checks x-oss-date: format, agreement with the scope date, clock
// skew for headers, validity window for presigned URLs.
func (e *Emulator) checkTime(p sigParams) *apiError {
	t, err := time.Parse(iso8601DateTime, p.datetime)
	if err != nil {
		return invalidArgument(fmt.Sprintf("Invalid x-oss-date %q, expecting YYYYMMDDTHHMMSSZ.", p.datetime))
	}
	if t.Format(iso8601Date) != p.scopeDate {
		return invalidArgument(fmt.Sprintf("The credential scope date %s does not match x-oss-date %s.", p.scopeDate, p.datetime))
	}
	now := e.now().UTC()
	if p.query {
		if now.After(t.Add(time.Duration(p.expires) * time.Second)) {
			return &apiError{http.StatusForbidden, "AccessDenied", "Request has expired.", nil}
		}
		if t.Sub(now) > maxClockSkew {
			return &apiError{http.StatusForbidden, "AccessDenied", "Request is not valid yet: x-oss-date is in the future.", nil}
		}
		return nil
	}
	if d := now.Sub(t); d > maxClockSkew || d < -maxClockSkew {
		return &apiError{http.StatusForbidden, "RequestTimeTooSkewed", fmt.Sprintf(
			"The difference between the request time (%s) and the server time (%s) is too large.",
			t.Format(time.RFC3339), now.Format(time.RFC3339)), nil}
	}
	return nil
}

// canonicalRequest builds the V4 canonical request:
//
//	METHOD \n /bucket/key (URI-escaped, '/' kept) \n canonical query \n
//	canonical headers \n additional header names \n payload hash
//
// host is the request's Host, used when "host" is an additional header
// (servers keep Host out of the header map).
func canonicalRequest(method, bucketName, key, rawQuery string, h http.Header, host string, additional []string) (string, error) {
	uri := "/"
	if bucketName != "" {
		uri += bucketName + "/"
	}
	uri += key
	query, err := canonicalQuery(rawQuery)
	if err != nil {
		return "", fmt.Errorf("canonical query: %w", err)
	}
	payload := h.Get("X-Oss-Content-Sha256")
	if payload == "" {
		payload = unsignedPayload
	}
	var b strings.Builder
	b.WriteString(method + "\n")
	b.WriteString(uriEscape(uri, false) + "\n")
	b.WriteString(query + "\n")
	b.WriteString(canonicalHeaders(h, host, additional) + "\n")
	b.WriteString(strings.Join(additional, ";") + "\n")
	b.WriteString(payload)
	return b.String(), nil
}

// canonicalHeaders lists every x-oss-* header, Content-Type and
// Content-MD5 present, plus the additional headers, as sorted lowercase
// "name:trimmed,values\n" lines.
func canonicalHeaders(h http.Header, host string, additional []string) string {
	extra := make(map[string]bool, len(additional))
	for _, a := range additional {
		extra[a] = true
	}
	values := make(map[string][]string)
	for k, vs := range h {
		low := strings.ToLower(k)
		if strings.HasPrefix(low, "x-oss-") || low == "content-type" || low == "content-md5" || extra[low] {
			for _, v := range vs {
				values[low] = append(values[low], strings.TrimSpace(v))
			}
		}
	}
	if extra["host"] && len(values["host"]) == 0 {
		values["host"] = []string{strings.TrimSpace(host)}
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k + ":" + strings.Join(values[k], ",") + "\n")
	}
	return b.String()
}

// canonicalQuery decodes the received query and re-encodes it canonically:
// every parameter but x-oss-signature, keys and values percent-encoded with
// only unreserved characters left, sorted by encoded key, "k=v" or bare "k"
// when the value is empty. Re-encoding lets an equivalent but differently
// encoded query verify, as OSS does.
func canonicalQuery(raw string) (string, error) {
	type pair struct{ k, v string }
	var pairs []pair
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err := url.QueryUnescape(k)
		if err != nil {
			return "", fmt.Errorf("decode key %q: %w", k, err)
		}
		dv, err := url.QueryUnescape(v)
		if err != nil {
			return "", fmt.Errorf("decode value of %q: %w", dk, err)
		}
		if dk == "x-oss-signature" {
			continue
		}
		pairs = append(pairs, pair{uriEscape(dk, true), uriEscape(dv, true)})
	}
	sort.SliceStable(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	var b strings.Builder
	for i, p := range pairs {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		if p.v != "" {
			b.WriteString("=" + p.v)
		}
	}
	return b.String(), nil
}

// uriEscape percent-encodes every byte except A-Z a-z 0-9 - . _ ~ (and '/'
// unless escapeSlash), with uppercase hex.
func uriEscape(s string, escapeSlash bool) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unreserved(c) || (c == '/' && !escapeSlash) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// unreserved reports whether c is left as is by uriEscape.
func unreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// stringToSign is "OSS4-HMAC-SHA256\nDATETIME\nSCOPE\nhex(sha256(canonical))".
func stringToSign(datetime, scope, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	return algorithmV4 + "\n" + datetime + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
}

// signatureV4 derives the signing key from the secret and the scope and
// signs stringToSign with it, in lowercase hex.
func signatureV4(secret, date, region, product, stringToSign string) string {
	key := []byte("aliyun_v4" + secret)
	for _, part := range []string{date, region, product, scopeTerminator} {
		key = hmacSHA256(key, part)
	}
	return hex.EncodeToString(hmacSHA256(key, stringToSign))
}

// hmacSHA256 is HMAC-SHA256(key, msg).
func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}
