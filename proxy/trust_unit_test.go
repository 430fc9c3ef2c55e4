package proxy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/config"
)

func TestAuthorizeQueryRepeatsInLongQueries(t *testing.T) {
	p := newTrustPolicy(&config.Site{})
	var parts []string
	for i := 0; i < 40; i++ {
		parts = append(parts, fmt.Sprintf("p%d=1", i))
	}
	if q, err := p.authorizeQuery("GET", strings.Join(parts, "&")); err != nil || q != "" {
		t.Fatalf("40 distinct unknown names on a GET: %q %v", q, err)
	}
	for _, dup := range []string{"p3=2", "P39=2", "p17"} {
		if _, err := p.authorizeQuery("GET", strings.Join(append(parts, dup), "&")); err != errDuplicateQuery {
			t.Errorf("repeat %q after 40 names: %v", dup, err)
		}
	}
}

func TestAuthorizeQueryCanonicalEncoding(t *testing.T) {
	p := newTrustPolicy(&config.Site{Process: config.Process{Actions: []string{"image/resize"}}})
	for in, want := range map[string]string{
		"":                                   "",
		"x-oss-process=image%2fresize,w_100": "x-oss-process=image%2Fresize%2Cw_100",
		"versionId=abc&acl":                  "versionId=abc",
		"partNumber=1&uploadId=u+1":          "partNumber=1&uploadId=u%201",
		"cachebuster=123&&":                  "",
	} {
		if got, err := p.authorizeQuery("GET", in); err != nil || got != want {
			t.Errorf("authorizeQuery(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
