package ossemu

import (
	"encoding/xml"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

// This file answers the few bucket-level reads a health check or
// `gateway check` needs to prove it can read a bucket: ListObjects (V1 and
// V2), GetBucketInfo, GetBucketAcl and GetBucketLocation; and
// ListMultipartUploads (multipart.go).

// isListParam reports whether k is a query parameter of ListObjects or
// ListObjectsV2 (anything else names a bucket subresource).
func isListParam(k string) bool {
	switch k {
	case "prefix", "delimiter", "marker", "max-keys", "encoding-type",
		"list-type", "continuation-token", "start-after", "fetch-owner":
		return true
	}
	return false
}

// serveBucket dispatches requests that name a bucket but no key.
func (c *call) serveBucket(acl ACL) {
	q := c.r.URL.Query()
	if q.Has("cname") {
		c.serveCname(q)
		return
	}
	switch c.r.Method {
	case http.MethodGet:
	case http.MethodHead:
		c.w.WriteHeader(http.StatusOK)
		return
	default:
		c.fail(errMethodNotAllowed())
		return
	}
	switch {
	case q.Has("uploads"):
		c.listUploads(q)
	case q.Has("bucketInfo"):
		c.bucketInfo(acl)
	case q.Has("acl"):
		c.writeXML(bucketACLResult{Grant: acl.String()})
	case q.Has("location"):
		c.writeXML(locationResult{Region: "oss-" + c.e.region})
	default:
		for k := range q {
			if !isListParam(k) {
				c.fail(errNotImplemented())
				return
			}
		}
		c.listObjects(q.Get("list-type") == "2")
	}
}

// writeXML answers 200 with v as an XML document.
func (c *call) writeXML(v any) {
	body, err := xml.MarshalIndent(v, "", "  ")
	if err != nil {
		c.fail(&apiError{http.StatusInternalServerError, "InternalError", "encode response: " + err.Error(), nil})
		return
	}
	body = append([]byte(xml.Header), body...)
	h := c.w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	c.w.WriteHeader(http.StatusOK)
	_, _ = c.w.Write(body)
}

// bucketACLResult is GetBucketAcl's answer.
type bucketACLResult struct {
	XMLName xml.Name `xml:"AccessControlPolicy"`
	Owner   owner    `xml:"Owner"`
	Grant   string   `xml:"AccessControlList>Grant"`
}

// owner is the bucket owner OSS reports.
type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

// locationResult is GetBucketLocation's answer.
type locationResult struct {
	XMLName xml.Name `xml:"LocationConstraint"`
	Region  string   `xml:",chardata"`
}

// bucketInfoResult is GetBucketInfo's answer (the fields a check reads).
type bucketInfoResult struct {
	XMLName          xml.Name `xml:"BucketInfo"`
	Name             string   `xml:"Bucket>Name"`
	Location         string   `xml:"Bucket>Location"`
	CreationDate     string   `xml:"Bucket>CreationDate"`
	ExtranetEndpoint string   `xml:"Bucket>ExtranetEndpoint"`
	IntranetEndpoint string   `xml:"Bucket>IntranetEndpoint"`
	StorageClass     string   `xml:"Bucket>StorageClass"`
	Owner            owner    `xml:"Bucket>Owner"`
	Grant            string   `xml:"Bucket>AccessControlList>Grant"`
}

// bucketInfo answers GetBucketInfo.
func (c *call) bucketInfo(acl ACL) {
	c.e.mu.RLock()
	created := c.e.buckets[c.bucket].created
	c.e.mu.RUnlock()
	c.writeXML(bucketInfoResult{
		Name:             c.bucket,
		Location:         "oss-" + c.e.region,
		CreationDate:     created.Format("2006-01-02T15:04:05.000Z"),
		ExtranetEndpoint: "oss-" + c.e.region + ".aliyuncs.com",
		IntranetEndpoint: "oss-" + c.e.region + "-internal.aliyuncs.com",
		StorageClass:     "Standard",
		Grant:            acl.String(),
	})
}

// listEntry is one <Contents> element.
type listEntry struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Type         string `xml:"Type"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

// listResult is the answer of ListObjects and ListObjectsV2.
type listResult struct {
	XMLName               xml.Name       `xml:"ListBucketResult"`
	Name                  string         `xml:"Name"`
	Prefix                string         `xml:"Prefix"`
	Marker                *string        `xml:"Marker,omitempty"`
	StartAfter            *string        `xml:"StartAfter,omitempty"`
	ContinuationToken     *string        `xml:"ContinuationToken,omitempty"`
	MaxKeys               int            `xml:"MaxKeys"`
	Delimiter             string         `xml:"Delimiter"`
	IsTruncated           bool           `xml:"IsTruncated"`
	NextMarker            string         `xml:"NextMarker,omitempty"`
	NextContinuationToken string         `xml:"NextContinuationToken,omitempty"`
	KeyCount              *int           `xml:"KeyCount,omitempty"`
	Contents              []listEntry    `xml:"Contents"`
	CommonPrefixes        []commonPrefix `xml:"CommonPrefixes"`
}

// commonPrefix is one <CommonPrefixes> element.
type commonPrefix struct {
	Prefix string `xml:"Prefix"`
}

// listObjects answers ListObjects (v2 false) or ListObjectsV2.
func (c *call) listObjects(v2 bool) {
	q := c.r.URL.Query()
	prefix, delim := q.Get("prefix"), q.Get("delimiter")
	maxKeys := 100
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			c.fail(invalidArgument("max-keys must be an integer from 1 to 1000."))
			return
		}
		maxKeys = n
	}
	after := q.Get("marker")
	if v2 {
		after = max(q.Get("start-after"), q.Get("continuation-token"))
	}

	type item struct {
		key string
		o   *object
	}
	c.e.mu.RLock()
	var items []item
	for k, o := range c.e.buckets[c.bucket].objects {
		if strings.HasPrefix(k, prefix) && k > after {
			items = append(items, item{k, o})
		}
	}
	c.e.mu.RUnlock()
	sort.Slice(items, func(i, j int) bool { return items[i].key < items[j].key })

	res := listResult{Name: c.bucket, Prefix: prefix, MaxKeys: maxKeys, Delimiter: delim}
	seen := make(map[string]bool)
	last := ""
	for _, it := range items {
		cp := ""
		if i := strings.Index(it.key[len(prefix):], delim); delim != "" && i >= 0 {
			cp = it.key[:len(prefix)+i+len(delim)]
			if seen[cp] {
				last = it.key
				continue
			}
		}
		if len(res.Contents)+len(res.CommonPrefixes) == maxKeys {
			res.IsTruncated = true
			break
		}
		last = it.key
		if cp != "" {
			seen[cp] = true
			res.CommonPrefixes = append(res.CommonPrefixes, commonPrefix{cp})
			continue
		}
		res.Contents = append(res.Contents, listEntry{
			Key:          it.key,
			LastModified: it.o.lastModified.UTC().Format("2006-01-02T15:04:05.000Z"),
			ETag:         it.o.etag,
			Type:         it.o.objectType,
			Size:         it.o.size,
			StorageClass: "Standard",
		})
	}
	if v2 {
		n := len(res.Contents) + len(res.CommonPrefixes)
		res.KeyCount = &n
		if v := q.Get("start-after"); v != "" {
			res.StartAfter = &v
		}
		if v := q.Get("continuation-token"); v != "" {
			res.ContinuationToken = &v
		}
		if res.IsTruncated {
			res.NextContinuationToken = last
		}
	} else {
		m := q.Get("marker")
		res.Marker = &m
		if res.IsTruncated {
			res.NextMarker = last
		}
	}
	c.writeXML(res)
}
