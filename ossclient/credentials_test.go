package ossclient_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
)

// TestCredentialsProviderSources proves each [credentials] source that
// needs no network yields the keys its config names.
func TestCredentialsProviderSources(t *testing.T) {
	const ak, sk = "LTAItest", "test-secret"
	t.Setenv("OSS_ACCESS_KEY_ID", ak)
	t.Setenv("OSS_ACCESS_KEY_SECRET", sk)
	t.Setenv("OSS_SESSION_TOKEN", "")
	script := fmt.Sprintf(`printf '{"AccessKeyId":"%s","AccessKeySecret":"%s"}'`, ak, sk)
	for _, c := range []config.Credentials{
		{Source: ""},
		{Source: "env"},
		{Source: "process", Process: script},
		{Source: "static", AccessKeyID: ak, AccessKeySecret: sk},
	} {
		t.Run("source="+c.Source, func(t *testing.T) {
			p, err := ossclient.NewCredentialsProvider(c)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.GetCredentials(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got.AccessKeyID != ak || got.AccessKeySecret != sk {
				t.Errorf("keys = %q/%q, want %q/%q", got.AccessKeyID, got.AccessKeySecret, ak, sk)
			}
		})
	}
}

// TestCredentialsProviderUnknownSource: a source without a provider is an
// error naming the key, not a provider that fails at the first request.
func TestCredentialsProviderUnknownSource(t *testing.T) {
	p, err := ossclient.NewCredentialsProvider(config.Credentials{Source: "vault"})
	if err == nil || p != nil {
		t.Fatalf("got %v, %v; want an error", p, err)
	}
	if !strings.Contains(err.Error(), `credentials.source "vault"`) {
		t.Errorf("error %q does not name the key and the value", err)
	}
}
