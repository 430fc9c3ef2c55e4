package tls

import (
	"errors"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/tls/ossstorage"
)

// newStorage opens [tls] storage: a directory, or "oss://bucket/prefix" so a
// fleet shares one certificate per domain. An OSS bucket is reached with the
// region, endpoint and scheme of the first site that serves that bucket, or
// else of the first site (a certificate bucket usually sits in the fleet's
// region); use a URL endpoint on that site to point elsewhere.
func newStorage(cfg *config.Config, o Options) (certmagic.Storage, error) {
	rest, ok := strings.CutPrefix(cfg.TLS.Storage, "oss://")
	if !ok {
		return &certmagic.FileStorage{Path: cfg.TLS.Storage}, nil
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	t, err := StorageTarget(cfg, bucket)
	if err != nil {
		return nil, err
	}
	if o.Credentials == nil {
		return nil, errors.New("oss storage needs credentials")
	}
	client, err := ossclient.New(t, o.Credentials, ossclient.Options{DialTimeout: cfg.Server.UpstreamDialTimeout.D(), RootCAs: o.RootCAs})
	if err != nil {
		return nil, err
	}
	return ossstorage.New(client, bucket, strings.TrimSuffix(prefix, "/"), ossstorage.Options{Logger: o.Logger}), nil
}

// StorageTarget is how the certificate bucket is reached (see newStorage).
func StorageTarget(cfg *config.Config, bucket string) (ossclient.Target, error) {
	if len(cfg.Sites) == 0 {
		return ossclient.Target{}, errors.New("oss storage needs a site to take the region and endpoint from")
	}
	s := &cfg.Sites[0]
	for i := range cfg.Sites {
		if cfg.Sites[i].Bucket == bucket {
			s = &cfg.Sites[i]
			break
		}
	}
	t := ossclient.ForSite(s)
	t.Bucket = bucket
	return t, nil
}
