package ossclient

import (
	"fmt"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"

	"github.com/oss-gateway/gateway/config"
)

// NewCredentialsProvider returns the official SDK provider that [credentials]
// names. The proxy signs with it, and so do the control-plane clients this
// package builds, so one config section means the same keys everywhere.
// Providers that reach out (process, ECS RAM role) are wrapped in the SDK's
// fetcher, which caches credentials and refreshes them before they expire,
// so signing never waits on a process or the metadata service except when
// the cache is empty.
func NewCredentialsProvider(c config.Credentials) (credentials.CredentialsProvider, error) {
	switch c.Source {
	case "", "env":
		return credentials.NewEnvironmentVariableCredentialsProvider(), nil
	case "static":
		return credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.AccessKeySecret, c.SecurityToken), nil
	case "process":
		p := credentials.NewProcessCredentialsProvider(c.Process)
		return credentials.NewCredentialsFetcherProvider(credentials.CredentialsFetcherFunc(p.GetCredentials)), nil
	case "ecs_ram_role":
		// NewEcsRoleCredentialsProvider is already the refreshing form.
		return credentials.NewEcsRoleCredentialsProvider(credentials.EcsRamRole(c.RAMRole)), nil
	}
	return nil, fmt.Errorf("credentials.source %q: unknown provider", c.Source)
}
