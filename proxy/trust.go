package proxy

import (
	"encoding/base64"
	"net/http"
	"net/textproto"
	"strings"

	"github.com/oss-gateway/gateway/config"
)

// trustPolicy is what a private site lets a request ask OSS to do. A
// private site signs with the gateway's own credentials, so anything a
// client gets the gateway to send, the client does with those credentials:
// the gateway, not OSS, must confine it to objects under the site's prefix.
// authorize is the one place that decides; the signer only ever sees the
// query and x-oss-* headers it granted.
type trustPolicy struct {
	prefix string
	// headerExact and headerPrefix are oss_headers, lower case: exact
	// names, and the prefixes of the patterns that end in "*".
	headerExact  map[string]bool
	headerPrefix []string
	// actions are [site.process] actions ("image/resize", "style").
	actions map[string]bool
}

func newTrustPolicy(c *config.Site) *trustPolicy {
	p := &trustPolicy{prefix: c.Prefix, headerExact: map[string]bool{}, actions: map[string]bool{}}
	for _, h := range c.OSSHeaders {
		h = strings.ToLower(h)
		if pre, ok := strings.CutSuffix(h, "*"); ok {
			p.headerPrefix = append(p.headerPrefix, pre)
		} else {
			p.headerExact[h] = true
		}
	}
	for _, a := range c.Process.Actions {
		p.actions[strings.ToLower(a)] = true
	}
	return p
}

// grant is what authorize let through: the only query and client x-oss-*
// headers a private site's request to OSS carries.
type grant struct {
	query  string      // canonical V4 encoding, as the signer hashes it
	ossHdr http.Header // client x-oss-* headers to forward; nil when none
}

// Query parameter classes on private sites.
const (
	qStrip   = iota // not the client's to send (signatures) or pointless: removed on every method
	qKeep           // an object operation parameter, kept on the methods listed for it
	qProcess        // x-oss-process: [site.process] decides
	qRefuse         // always refused: it writes with our credentials
)

// objectParams are the query parameters a private site forwards to OSS
// (qKeep, on the methods given), inspects (qProcess), strips or refuses.
// Any other parameter is stripped from a GET or HEAD (it can only turn the
// read into another read, or into nothing) and refuses a PUT, POST or
// DELETE: stripping ?tagging from a PUT would overwrite the object with the
// tagging document, which is turning one operation into another.
var objectParams = map[string]struct {
	class   int
	methods methodSet
}{
	"versionId":  {qKeep, mGet | mHead | mDelete},
	"uploads":    {qKeep, mPost},
	"uploadId":   {qKeep, mGet | mPut | mPost | mDelete},
	"partNumber": {qKeep, mGet | mHead | mPut},
	"append":     {qKeep, mPost},
	"position":   {qKeep, mPost},
	// How OSS encodes keys in multipart results, and ListParts paging.
	"encoding-type":                {qKeep, mGet | mPost},
	"max-parts":                    {qKeep, mGet},
	"part-number-marker":           {qKeep, mGet},
	"response-content-disposition": {qKeep, mGet | mHead},
	"response-cache-control":       {qKeep, mGet | mHead},
	"response-expires":             {qKeep, mGet | mHead},
	"response-content-language":    {qKeep, mGet | mHead},
	// A client that could set the Content-Type of an answer could make any
	// object (an upload, say) render as HTML on the site's origin.
	"response-content-type":     {qStrip, 0},
	"response-content-encoding": {qStrip, 0},
	"x-oss-process":             {qProcess, mGet | mHead},
	"x-oss-async-process":       {qRefuse, 0},
	// Client signatures: the gateway's signature replaces them.
	"x-oss-signature":          {qStrip, 0},
	"x-oss-signature-version":  {qStrip, 0},
	"x-oss-credential":         {qStrip, 0},
	"x-oss-date":               {qStrip, 0},
	"x-oss-expires":            {qStrip, 0},
	"x-oss-additional-headers": {qStrip, 0},
	"x-oss-security-token":     {qStrip, 0},
	"security-token":           {qStrip, 0},
	"OSSAccessKeyId":           {qStrip, 0},
	"Signature":                {qStrip, 0},
	"Expires":                  {qStrip, 0},
}

// authorize decides what a private site's request may ask OSS to do, from
// the method, the query left after the gateway took its own parameters,
// and the client's headers. It returns the query and x-oss-* headers to
// sign, or the refusal to answer with.
func (p *trustPolicy) authorize(method, query string, hdr http.Header) (grant, *ossError) {
	var g grant
	var err *ossError
	if g.ossHdr, err = p.authorizeHeaders(method, hdr); err != nil {
		return grant{}, err
	}
	if g.query, err = p.authorizeQuery(method, query); err != nil {
		return grant{}, err
	}
	return g, nil
}

// reads are the methods that cannot change anything: an unknown parameter
// is stripped from them, never refused.
const reads = mGet | mHead | mOptions

// authorizeQuery checks every parameter of raw and re-encodes those it
// keeps as OSS's canonical query encodes them, so the bytes on the wire and
// the bytes the signer hashes are the same.
func (p *trustPolicy) authorizeQuery(method, raw string) (string, *ossError) {
	mbit := methodBit(method)
	if raw == "" && mbit != mPost {
		return "", nil
	}
	var seen [16]string // the names so far; a longer query moves to a map
	names := seen[:0]
	var many map[string]bool
	var b strings.Builder
	var has uint8 // which write operation parameters are present
	const (
		hasUploads = 1 << iota
		hasUploadID
		hasPartNumber
		hasAppend
		hasPosition
		hasVersionID
	)
	for raw != "" {
		var kv string
		kv, raw, _ = strings.Cut(raw, "&")
		if kv == "" {
			continue
		}
		k, v, hasV := strings.Cut(kv, "=")
		dk, err1 := queryUnescape(k)
		dv, err2 := queryUnescape(v)
		if err1 != nil || err2 != nil || dk == "" {
			return "", errBadQuery
		}
		if seenName(&names, &many, dk) {
			return "", errDuplicateQuery // OSS would see another request than the one checked here
		}

		rule, known := objectParams[dk]
		switch {
		case !known && (mbit&reads != 0):
			continue
		case !known:
			return "", errOperationRefused
		case rule.class == qStrip:
			continue
		case rule.class == qRefuse:
			return "", errProcessRefused
		case rule.class == qProcess:
			if mbit&rule.methods == 0 {
				return "", errProcessRefused // POST ?x-oss-process runs sys/saveas from the body
			}
			if err := p.checkProcess(dv, 0); err != nil {
				return "", err
			}
		case mbit&rule.methods == 0:
			if mbit&reads != 0 {
				continue
			}
			return "", errOperationRefused
		}
		switch dk {
		case "uploads":
			has |= hasUploads
		case "uploadId":
			has |= hasUploadID
		case "partNumber":
			has |= hasPartNumber
		case "append":
			has |= hasAppend
		case "position":
			has |= hasPosition
		case "versionId":
			has |= hasVersionID
		}
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		escapeQueryComponent(&b, dk)
		if hasV && dv != "" {
			b.WriteByte('=')
			escapeQueryComponent(&b, dv)
		}
	}
	// Writes name exactly one object operation, whole.
	switch mbit {
	case mPut:
		if has != 0 && has != hasUploadID|hasPartNumber {
			return "", errOperationRefused // UploadPart needs both; anything else is not a PutObject
		}
	case mPost:
		if has != hasUploads && has != hasUploadID && has != hasAppend|hasPosition {
			return "", errOperationRefused
		}
	case mDelete:
		if has != 0 && has != hasUploadID && has != hasVersionID {
			return "", errOperationRefused // DeleteObject or AbortMultipartUpload, not both
		}
	}
	return b.String(), nil
}

// seenName reports whether name (compared case-insensitively) was seen
// before, and records it. A query of many names is checked through a map,
// so no query costs more than linear time.
func seenName(names *[]string, many *map[string]bool, name string) bool {
	if *many == nil {
		for _, n := range *names {
			if strings.EqualFold(n, name) {
				return true
			}
		}
		if len(*names) < cap(*names) {
			*names = append(*names, name)
			return false
		}
		*many = make(map[string]bool, 2*len(*names))
		for _, n := range *names {
			(*many)[strings.ToLower(n)] = true
		}
	}
	l := strings.ToLower(name)
	if (*many)[l] {
		return true
	}
	(*many)[l] = true
	return false
}

// authorizeHeaders returns the client x-oss-* headers a private site
// forwards: those oss_headers lists and x-oss-process when [site.process]
// allows it. Headers that would copy from elsewhere or change an ACL are
// refused, whatever oss_headers says: dropping them would quietly store an
// empty object, or a private one, instead of what the client asked for.
// Names are compared in lower case with "_" read as "-", so no spelling of
// a refused header slips past.
func (p *trustPolicy) authorizeHeaders(method string, hdr http.Header) (http.Header, *ossError) {
	var out http.Header
	for k, vv := range hdr {
		if !isOSSHeader(k) {
			continue
		}
		name := ossHeaderName(k)
		switch {
		case name == "x-oss-date" || name == "x-oss-content-sha256" || name == "x-oss-security-token":
			continue // the gateway's signature sets these
		case strings.HasPrefix(name, "x-oss-copy-source") || name == "x-oss-object-acl" || name == "x-oss-acl":
			return nil, errHeaderRefused
		case name == "x-oss-async-process":
			return nil, errProcessRefused
		case name == "x-oss-process":
			if len(vv) != 1 || (method != http.MethodGet && method != http.MethodHead) {
				return nil, errProcessRefused
			}
			if err := p.checkProcess(vv[0], 0); err != nil {
				return nil, err
			}
		case !p.allowsHeader(name):
			continue
		}
		if out == nil {
			out = make(http.Header, 4)
		}
		out[textproto.CanonicalMIMEHeaderKey(name)] = vv
	}
	return out, nil
}

// ossHeaderName is k in lower case with "_" as "-".
func ossHeaderName(k string) string {
	b := []byte(k)
	for i, c := range b {
		switch {
		case c == '_':
			b[i] = '-'
		case 'A' <= c && c <= 'Z':
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func (p *trustPolicy) allowsHeader(name string) bool {
	if p.headerExact[name] {
		return true
	}
	for _, pre := range p.headerPrefix {
		if strings.HasPrefix(name, pre) {
			return true
		}
	}
	return false
}

// maxProcessDepth bounds watermark images that carry their own
// x-oss-process.
const maxProcessDepth = 2

// checkProcess checks an x-oss-process value: every operation of every
// stage of the chain ("image/resize,w_100/quality,q_80|...") must be in
// [site.process] actions ("style" covers style/NAME); sys/* (saveas) never
// is. A watermark's image_ names an object OSS reads with our credentials,
// so it must be a key under the site's prefix, and its own processing is
// checked the same way. Anything that does not parse is refused.
func (p *trustPolicy) checkProcess(v string, depth int) *ossError {
	if v == "" || depth > maxProcessDepth {
		return errProcessRefused
	}
	for stage := range strings.SplitSeq(v, "|") {
		typ, ops, ok := strings.Cut(stage, "/")
		typ = strings.ToLower(typ)
		if !ok || typ == "" || ops == "" || typ == "sys" {
			return errProcessRefused
		}
		if typ == "style" {
			if !p.actions["style"] || strings.ContainsAny(ops, "/,") {
				return errProcessRefused
			}
			continue
		}
		for op := range strings.SplitSeq(ops, "/") {
			name, params, _ := strings.Cut(op, ",")
			name = strings.ToLower(name)
			if name == "" || strings.Contains(name, "saveas") || !p.actions[typ+"/"+name] {
				return errProcessRefused
			}
			if typ == "image" && name == "watermark" {
				if err := p.checkWatermark(params, depth); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkWatermark checks the image_ parameter of a watermark operation.
func (p *trustPolicy) checkWatermark(params string, depth int) *ossError {
	for param := range strings.SplitSeq(params, ",") {
		enc, ok := strings.CutPrefix(param, "image_")
		if !ok {
			continue
		}
		raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(enc, "="))
		if err != nil {
			return errProcessRefused
		}
		key, nested, hasQuery := strings.Cut(string(raw), "?")
		if !validKeyPath(key) || key == "" || !strings.HasPrefix(key, p.prefix) || len(key) == len(p.prefix) {
			return errProcessRefused
		}
		if hasQuery {
			pv, ok := strings.CutPrefix(nested, "x-oss-process=")
			if !ok {
				return errProcessRefused
			}
			if err := p.checkProcess(pv, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
