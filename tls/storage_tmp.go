package tls

import (
	"errors"

	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/config"
)

func newStorage(cfg *config.Config, o Options) (certmagic.Storage, error) {
	if len(cfg.TLS.Storage) > 6 && cfg.TLS.Storage[:6] == "oss://" {
		return nil, errors.New("tmp")
	}
	return &certmagic.FileStorage{Path: cfg.TLS.Storage}, nil
}
