package proxy

import (
	"github.com/oss-gateway/gateway/config"
	"github.com/oss-gateway/gateway/proxy/upstream"
)

// endpoint is one place a site's requests can go, with what the request
// path keeps beside the address: the metrics label and the health table's
// entry.
type endpoint struct {
	upstream.Endpoint
	label  string // "primary" or "fallback"
	health *upstreamHealth
}

func resolveEndpoint(s *config.Site, ep, label string) (*endpoint, error) {
	e, err := upstream.Resolve(s, ep)
	if err != nil {
		return nil, err
	}
	return &endpoint{Endpoint: e, label: label}, nil
}
