package proxy

import (
	"strings"
	"testing"
)

func TestScrubErrorBody(t *testing.T) {
	const host = "img.example.com"
	tests := []struct {
		name      string
		in        string
		want      []string // substrings the scrubbed body has
		forbidden []string // and must not have
	}{
		{
			name: "signature mismatch",
			in: `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SignatureDoesNotMatch</Code><Message>m</Message>` +
				`<RequestId>R1</RequestId><HostId>bkt.oss-cn-hangzhou.aliyuncs.com</HostId><OSSAccessKeyId>LTAIkey</OSSAccessKeyId>` +
				`<SignatureProvided>abc</SignatureProvided><StringToSign>OSS4-HMAC-SHA256\n...</StringToSign><StringToSignBytes>4F 53</StringToSignBytes>` +
				`<CanonicalRequest>GET\n/bkt/k</CanonicalRequest><EC>0002-00000040</EC><RecommendDoc>https://api.aliyun.com/troubleshoot?q=0002-00000040</RecommendDoc></Error>`,
			want:      []string{"<Code>SignatureDoesNotMatch</Code>", "<Message>m</Message>", "<RequestId>R1</RequestId>", "<HostId>img.example.com</HostId>", "<EC>0002-00000040</EC>", "<RecommendDoc>"},
			forbidden: []string{"LTAIkey", "abc", "OSS4-HMAC", "4F 53", "/bkt/k", "aliyuncs.com</HostId>"},
		},
		{
			name:      "bucket name and RAM detail",
			in:        `<Error><Code>AccessDenied</Code><Message>You have no right.</Message><BucketName>secret-bucket</BucketName><AccessDeniedDetail><AuthPrincipalDisplayName>gateway-role</AuthPrincipalDisplayName></AccessDeniedDetail></Error>`,
			want:      []string{"<Code>AccessDenied</Code>", "<BucketName>img.example.com</BucketName>"},
			forbidden: []string{"secret-bucket", "gateway-role", "AccessDeniedDetail"},
		},
		{
			name:      "element holding the access key",
			in:        `<Error><Code>InvalidArgument</Code><Message>bad</Message><ArgumentValue>Credential=LTAIsecretid/2026</ArgumentValue><ArgumentName>x</ArgumentName></Error>`,
			want:      []string{"<ArgumentName>x</ArgumentName>"},
			forbidden: []string{"LTAIsecretid"},
		},
		{
			name:      "not XML",
			in:        `<html><body>LTAIsecretid bad gateway</body></html>`,
			want:      []string{"<Code>UpstreamError</Code>", "<HostId>img.example.com</HostId>"},
			forbidden: []string{"LTAIsecretid", "html"},
		},
		{
			name:      "truncated",
			in:        `<Error><Code>SignatureDoesNotMatch</Code><StringToSign>OSS4`,
			want:      []string{"<Code>UpstreamError</Code>"},
			forbidden: []string{"OSS4", "SignatureDoesNotMatch"},
		},
		{
			name:      "escaping kept",
			in:        `<Error><Code>NoSuchKey</Code><Message>a &lt;b&gt; &amp; c</Message><Key>x&amp;y</Key></Error>`,
			want:      []string{"<Message>a &lt;b&gt; &amp; c</Message>", "<Key>x&amp;y</Key>"},
			forbidden: []string{"<b>"},
		},
		{name: "empty", in: ``, want: []string{"<Code>UpstreamError</Code>"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := string(scrubErrorBody([]byte(tc.in), host, 403, []string{"LTAIsecretid", ""}))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("lacks %q:\n%s", w, got)
				}
			}
			for _, f := range tc.forbidden {
				if strings.Contains(got, f) {
					t.Errorf("keeps %q:\n%s", f, got)
				}
			}
		})
	}
}
