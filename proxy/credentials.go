package proxy

import (
	"context"
	"fmt"
	"strings"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
)

// resolveCredentials asks p for keys and insists they are usable: a provider
// that answers with empty keys is as broken as one that errors.
func resolveCredentials(ctx context.Context, p credentials.CredentialsProvider) (credentials.Credentials, error) {
	if p == nil {
		return credentials.Credentials{}, fmt.Errorf("no credentials provider configured")
	}
	c, err := p.GetCredentials(ctx)
	if err != nil {
		return c, fmt.Errorf("resolve credentials: %s", redactProviderError(err))
	}
	if !c.HasKeys() {
		return c, fmt.Errorf("resolve credentials: provider returned no access key")
	}
	return c, nil
}

// redactProviderError keeps a provider's error readable for operators but
// cuts anything a provider echoes from its source: the SDK's ECS provider
// quotes the metadata response body, which can hold a security token.
func redactProviderError(err error) string {
	msg := err.Error()
	if i := strings.Index(msg, "response body"); i >= 0 {
		msg = msg[:i] + "(response body withheld)"
	}
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return msg
}
