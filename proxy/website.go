package proxy

import (
	"io"
	"net/http"
	"strings"

	"github.com/oss-gateway/gateway/config"
)

// websitePolicy is OSS static website hosting (PutBucketWebsite) done at the
// gateway, so it works for private buckets and on any endpoint. It applies
// to GET and HEAD only.
type websitePolicy struct {
	config.Website
}

// active reports whether a 404 from OSS may be turned into something else.
func (w *websitePolicy) active() bool {
	return w.ErrorDocument != "" || (w.Index != "" && w.SupportSubdir)
}

// websiteIndexKey maps a key relative to the site's prefix to the key to
// fetch: "" is the index document; "dir/" is "dir/index" with support_subdir,
// else the root index, as OSS does.
func websiteIndexKey(rel string, w websitePolicy) string {
	switch {
	case rel == "":
		return w.Index
	case strings.HasSuffix(rel, "/"):
		if w.SupportSubdir {
			return rel + w.Index
		}
		return w.Index
	}
	return rel
}

// maxDrain bounds how much of a discarded OSS response is read so its
// connection can be reused; anything larger is cheaper to close.
const maxDrain = 64 << 10

func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, maxDrain)
	resp.Body.Close()
}

// websiteNotFound decides what a website site answers when OSS says the key
// does not exist. It returns the response to send and its status, or a path
// to redirect to. notFound is OSS's 404, returned (with status 404) when
// nothing better exists; any response it does not return is closed.
func (h *Handler) websiteNotFound(r *http.Request, x *exchange, notFound *http.Response) (resp *http.Response, status int, redirect string, oerr *ossError) {
	s := x.site
	w := &s.website
	rel := x.key[len(s.prefix):]
	if w.SupportSubdir && w.Index != "" && rel != "" && !strings.HasSuffix(rel, "/") {
		dirIndex := x.key + "/" + w.Index
		switch w.SubdirType {
		case 0: // 302 to "dir/" when "dir/index" exists
			head, err := h.fetch(r, x, ask{method: http.MethodHead, key: dirIndex})
			if err != nil {
				notFound.Body.Close()
				return nil, 0, "", err
			}
			discard(head)
			if head.StatusCode == http.StatusOK || head.StatusCode == http.StatusNotModified {
				discard(notFound)
				return nil, 0, escapeKeyPath(rel) + "/", nil
			}
		case 2: // serve "dir/index" in place
			idx, err := h.fetch(r, x, ask{method: r.Method, key: dirIndex})
			if err != nil {
				notFound.Body.Close()
				return nil, 0, "", err
			}
			if idx.StatusCode != http.StatusNotFound {
				discard(notFound)
				return idx, idx.StatusCode, "", nil
			}
			discard(idx)
		}
		// 1: plain 404, with the error document below.
	}
	if w.ErrorDocument != "" {
		doc, err := h.fetch(r, x, ask{method: r.Method, key: s.prefix + w.ErrorDocument})
		if err != nil {
			notFound.Body.Close()
			return nil, 0, "", err
		}
		if doc.StatusCode == http.StatusOK {
			discard(notFound)
			return doc, w.ErrorStatus, "", nil
		}
		discard(doc)
	}
	return notFound, http.StatusNotFound, "", nil
}
