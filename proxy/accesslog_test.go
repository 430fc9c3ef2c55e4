package proxy

import (
	"strings"
	"testing"
)

func TestRedactQuery(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"x-oss-process=image/resize,w_100", "x-oss-process=image/resize,w_100"},
		{"OSSAccessKeyId=LTAI5t&Expires=1700000000&Signature=abc%2Bdef", "OSSAccessKeyId=REDACTED&Expires=1700000000&Signature=REDACTED"},
		{"x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=AK%2F20261121%2Fcn-hangzhou%2Foss%2Faliyun_v4_request&x-oss-date=20261121T000000Z&x-oss-expires=60&x-oss-signature=f00d",
			"x-oss-signature-version=OSS4-HMAC-SHA256&x-oss-credential=REDACTED&x-oss-date=20261121T000000Z&x-oss-expires=60&x-oss-signature=REDACTED"},
		{"security-token=CAIS&x-oss-security-token=CAIS", "security-token=REDACTED&x-oss-security-token=REDACTED"},
		{"auth_key=1444435200-0-0-80cd3862d699b7118eed99103f2a3a4f", "auth_key=REDACTED"},
		{"SIGNATURE=abc", "SIGNATURE=REDACTED"},
		{"x-oss-%73ignature=leak", "x-oss-%73ignature=REDACTED"},
		{"download&signature", "download&signature"},
		{"a=1&&b=2", "a=1&&b=2"},
	} {
		if got := redactQuery(tc.in); got != tc.want {
			t.Errorf("redactQuery(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	long := strings.Repeat("a", 4000)
	if got := redactQuery(long); len(got) > maxLogField+3 {
		t.Errorf("a 4000-byte query is logged as %d bytes", len(got))
	}
}
