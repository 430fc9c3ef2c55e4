package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"
)

// signRequest signs out, already addressed and with its final headers and
// query, with the official SDK's V4 signer. The canonical URI the signer
// builds is /bucket/key whatever the Host, as OSS requires.
func signRequest(ctx context.Context, out *http.Request, bucket, key, region string, cred *credentials.Credentials, now time.Time) error {
	product := "oss"
	sc := &signer.SigningContext{
		Product:     &product,
		Region:      &region,
		Bucket:      &bucket,
		Key:         &key,
		Request:     out,
		Credentials: cred,
		Time:        now,
	}
	var v4 signer.SignerV4
	return v4.Sign(ctx, sc)
}

// signCache reuses the SDK's V4 signature for requests whose signed content
// is the same within one second. V4 signs the method, /bucket/key, the
// query, Content-Type, Content-MD5 and the x-oss-* headers, and dates the
// signature to the second (x-oss-date): two such requests in the same
// second get byte-identical signatures, so the second one copies the first
// one's headers instead of running the signer (four HMAC key derivations,
// a canonical request and some 80 allocations). A hot object, the usual
// load behind a gateway, is signed once a second, not once a request.
// Requests carrying any x-oss-* header of their own are always signed
// afresh. The table is cleared each second and holds at most
// signCacheSize entries.
type signCache struct {
	mu  sync.Mutex
	sec int64
	m   map[string]*signedHeaders
}

// signCacheSize bounds a site's table: distinct objects fetched in one
// second beyond it are signed each time.
const signCacheSize = 4096

// signedHeaders are what the signer adds to a request.
type signedHeaders struct {
	accessKeyID, accessKeySecret, securityToken string // the credentials they were made with
	date, ossDate, sha256, authz                string
}

// sign signs out like signRequest, from the table when it can.
func (c *signCache) sign(ctx context.Context, out *http.Request, bucket, key, region string, cred *credentials.Credentials, now time.Time) error {
	var buf [512]byte
	k, ok := signatureKey(buf[:0], out, bucket, key, region)
	if !ok {
		return signRequest(ctx, out, bucket, key, region, cred, now)
	}
	sec := now.Unix()
	c.mu.Lock()
	if c.sec != sec {
		c.sec = sec
		clear(c.m)
	}
	e := c.m[string(k)]
	c.mu.Unlock()
	if e != nil && e.accessKeyID == cred.AccessKeyID && e.accessKeySecret == cred.AccessKeySecret && e.securityToken == cred.SecurityToken {
		h := out.Header
		h["Date"] = []string{e.date}
		h["X-Oss-Date"] = []string{e.ossDate}
		h["X-Oss-Content-Sha256"] = []string{e.sha256}
		if e.securityToken != "" {
			h["X-Oss-Security-Token"] = []string{e.securityToken}
		}
		h["Authorization"] = []string{e.authz}
		return nil
	}
	// Sign at the start of the second, so every request of it matches.
	if err := signRequest(ctx, out, bucket, key, region, cred, time.Unix(sec, 0)); err != nil {
		return err
	}
	e = &signedHeaders{
		accessKeyID:     cred.AccessKeyID,
		accessKeySecret: cred.AccessKeySecret,
		securityToken:   cred.SecurityToken,
		date:            out.Header.Get("Date"),
		ossDate:         out.Header.Get("X-Oss-Date"),
		sha256:          out.Header.Get("X-Oss-Content-Sha256"),
		authz:           out.Header.Get("Authorization"),
	}
	c.mu.Lock()
	if c.sec == sec && len(c.m) < signCacheSize {
		if c.m == nil {
			c.m = make(map[string]*signedHeaders)
		}
		c.m[string(k)] = e
	}
	c.mu.Unlock()
	return nil
}

// signatureKey appends to b everything V4 signs in out but the time, or
// returns false when out carries x-oss-* headers of its own (those are
// signed too, and not worth keying on).
func signatureKey(b []byte, out *http.Request, bucket, key, region string) ([]byte, bool) {
	for k := range out.Header {
		if len(k) > 6 && strings.EqualFold(k[:6], "x-oss-") {
			return nil, false
		}
	}
	for _, s := range [...]string{out.Method, region, bucket, key, out.URL.RawQuery} {
		b = append(b, s...)
		b = append(b, 0)
	}
	for _, h := range [...]string{"Content-Type", "Content-Md5"} {
		for _, v := range out.Header[h] {
			b = append(b, v...)
			b = append(b, 1)
		}
		b = append(b, 0)
	}
	return b, true
}

func queryUnescape(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 && strings.IndexByte(s, '+') < 0 {
		return s, nil
	}
	return url.QueryUnescape(s)
}

// escapeQueryComponent percent-encodes everything but OSS's unreserved set,
// with upper-case hex: the canonical form of a V4 query component.
func escapeQueryComponent(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; unreserved(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
	}
}
