package config

import (
	"reflect"
	"time"
)

// The defaults below are the documented ones (gateway.example.toml). Decoding starts from them and
// overwrites only the keys that the file writes, so a key left out of the
// file, including a boolean whose default is true, keeps its default, and a
// key written with its zero value ("", 0, false, []) keeps that value.

// defaultConfig returns a Config holding every top-level default and no sites.
func defaultConfig() Config {
	return Config{
		Server: Server{
			HTTPListen:            ":80",
			HTTPSListen:           ":443",
			RedirectHTTP:          true,
			ReadHeaderTimeout:     Duration(10 * time.Second),
			IdleTimeout:           Duration(120 * time.Second),
			WriteTimeout:          0,
			MaxHeaderBytes:        65536,
			ShutdownGrace:         Duration(30 * time.Second),
			ShutdownDelay:         0,
			UpstreamDialTimeout:   Duration(5 * time.Second),
			UpstreamHeaderTimeout: Duration(30 * time.Second),
			TrustedProxies:        nil,
			ProxyProtocol:         false,
			UpstreamTransport:     "native",
		},
		Admin: Admin{
			Listen: "127.0.0.1:9090",
			// ::1 too, so that `curl localhost:9090` works where localhost
			// resolves to the IPv6 loopback first.
			Allow: []string{"127.0.0.1/32", "::1/128"},
		},
		Log: Log{
			Format:          "json",
			Level:           "info",
			AccessLog:       true,
			AccessLogSample: 1,
		},
		Credentials: Credentials{
			Source: "env",
		},
		Cache: Cache{
			Path:          "",
			MaxSize:       10 << 30,
			Memory:        256 << 20,
			MaxObjectSize: 256 << 20,
		},
		TLS: TLS{
			ACMECA:         "", // Let's Encrypt production
			Storage:        "/var/lib/gateway",
			MinVersion:     "1.2",
			HSTS:           "max-age=31536000",
			ACMEChallenges: []string{"http-01", "tls-alpn-01"},
		},
	}
}

// defaultSite returns a [[site]] holding every default. Access defaults to
// "public", the least privilege: unsigned requests then reach only what OSS
// already serves anonymously, and signing with the gateway's own credentials
// has to be asked for.
func defaultSite() Site {
	return Site{
		Endpoint:       "public",
		UpstreamScheme: "https",
		Access:         "public",
		Methods:        []string{"GET", "HEAD"},
		TLS:            "acme",
		CORSVaryOrigin: false,
		OSSHeaders: []string{"x-oss-meta-*", "x-oss-forbid-overwrite", "x-oss-storage-class", "x-oss-tagging",
			"x-oss-server-side-encryption", "x-oss-server-side-data-encryption",
			"x-oss-server-side-encryption-key-id", "x-oss-traffic-limit"},
		Referer: Referer{
			AllowEmpty:         true,
			AllowTruncateQuery: true,
			TruncatePath:       false,
		},
		Disposition: Disposition{
			Mode:           "auto",
			DownloadParam:  "download",
			FixContentType: true,
		},
		Website: Website{
			SubdirType:  0,
			ErrorStatus: 404,
		},
		Retry: Retry{
			MaxAttempts: 3,
			BaseDelay:   Duration(100 * time.Millisecond),
			MaxDelay:    Duration(2 * time.Second),
			OnStatus:    []int{502, 503, 504},
			BudgetRatio: 0.2,
		},
		URLAuth: URLAuth{
			Enabled: false,
			TTL:     Duration(30 * time.Minute),
		},
		Cache: SiteCache{
			Enabled:      false,
			TTL:          Duration(10 * time.Minute),
			StaleIfError: Duration(time.Hour),
		},
		Process: Process{
			Actions: []string{"image/resize", "image/crop", "image/format", "image/quality", "image/rotate",
				"image/auto-orient", "image/interlace", "image/info", "image/average-hue", "style"},
		},
	}
}

// defaultCORSRule returns a [[site.cors]] rule holding every default.
func defaultCORSRule() CORSRule {
	return CORSRule{
		AllowedMethods: []string{"GET", "HEAD"},
		MaxAgeSeconds:  0,
	}
}

// newElem returns the starting value of a new element of a slice of t: the
// defaults for array-of-tables elements, the zero value for everything else.
func newElem(t reflect.Type) reflect.Value {
	v := reflect.New(t).Elem()
	switch t {
	case reflect.TypeFor[Site]():
		v.Set(reflect.ValueOf(defaultSite()))
	case reflect.TypeFor[CORSRule]():
		v.Set(reflect.ValueOf(defaultCORSRule()))
	}
	return v
}
