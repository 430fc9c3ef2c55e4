// Package ossstorage is a certmagic.Storage on an Alibaba Cloud OSS bucket,
// so that a fleet of gateways shares one certificate per domain and only one
// of them orders it.
//
// Every certmagic key is one object, "<prefix>/<key>" (just "<key>" with an
// empty prefix); directories are implicit, as in certmagic's FileStorage.
// Locks are objects "<prefix>/locks/<name>.lock" created with
// x-oss-forbid-overwrite, OSS's only atomic create; see [Storage.Lock].
//
// Security: certificate private keys and ACME account keys are stored as
// ordinary objects, protected only by access control and whatever
// server-side encryption the bucket applies. The bucket MUST be private: no
// public-read(-write) bucket ACL, no bucket policy granting anonymous or
// broad read, and ideally credentials scoped to the prefix. Every object is
// written with x-oss-object-acl: private, so that a bucket later made public
// does not expose them, but that is defence in depth, not a substitute for a
// private bucket. Errors never contain credentials.
package ossstorage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/caddyserver/certmagic"
)

// Interface guards.
var (
	_ certmagic.Storage   = (*Storage)(nil)
	_ certmagic.TryLocker = (*Storage)(nil)
	_ fmt.Stringer        = (*Storage)(nil)
)

// Defaults of Options.
const (
	// DefaultLockRefresh is certmagic FileStorage's freshness interval.
	DefaultLockRefresh = 5 * time.Second
	// DefaultLockStaleAfter is six refresh intervals: a live holder must
	// miss five refreshes in a row (each a PUT the SDK already retries)
	// before a waiter may break its lock, which absorbs slow or failing
	// OSS requests, GC pauses and the one-second resolution of HTTP dates,
	// while a crashed holder delays the next order by at most half a
	// minute, nothing next to an ACME order or certmagic's retry backoff.
	// (FileStorage uses two intervals, but it talks to a local disk.)
	DefaultLockStaleAfter = 30 * time.Second
	// DefaultLockPoll is how often a waiter looks at a held lock, on
	// average (each wait is jittered by ±50%).
	DefaultLockPoll = 1 * time.Second
	// DefaultLockConfirmDelay is the pause before a contended acquisition
	// re-reads its new lock (see Options.LockConfirmDelay): far above an
	// OSS round trip, small next to an ACME order.
	DefaultLockConfirmDelay = 2 * time.Second
	// DefaultListPageSize is the largest page ListObjectsV2 returns.
	DefaultListPageSize = 1000
)

// ErrNotLocked is returned (wrapped) by Unlock for a lock this Storage does
// not hold.
var ErrNotLocked = errors.New("lock not held by this storage")

// ErrLockLost is returned (wrapped) by Unlock when the lock object was
// deleted or taken over by another holder while we held it (it was judged
// stale); mutual exclusion may have been violated.
var ErrLockLost = errors.New("lock was lost to another holder")

// Options tune a Storage. The zero value is the production setting.
type Options struct {
	// LockRefresh is how often a holder rewrites its lock's "updated"
	// time. 0 = DefaultLockRefresh.
	LockRefresh time.Duration
	// LockStaleAfter is how long a lock may go without a refresh before a
	// waiter breaks it. 0 = max(DefaultLockStaleAfter, 6*LockRefresh). It
	// must be at least twice LockRefresh; otherwise LockRefresh is lowered
	// to a third of it.
	LockStaleAfter time.Duration
	// LockPoll is the mean interval between a waiter's looks at a held
	// lock. 0 = DefaultLockPoll.
	LockPoll time.Duration
	// LockConfirmDelay is how long a contended acquisition (one whose
	// first create failed) waits after its successful create before
	// re-reading the lock to confirm that a late delete, aimed at a stale
	// lock it replaced, did not remove it (see Storage.Lock). It must
	// exceed the time a waiter may take between reading a stale lock and
	// deleting it: one round trip, plus pauses. 0 =
	// min(DefaultLockConfirmDelay, LockStaleAfter/4); larger values are
	// capped at LockStaleAfter/4.
	LockConfirmDelay time.Duration
	// ListPageSize is the max-keys of each ListObjectsV2 request, 1 to
	// 1000. 0 = DefaultListPageSize.
	ListPageSize int
	// Logger receives lock takeovers and lost locks. nil = slog.Default().
	Logger *slog.Logger
}

// Storage is a certmagic.Storage and certmagic.TryLocker on one OSS bucket
// and key prefix. It is safe for concurrent use.
type Storage struct {
	client *oss.Client
	bucket string
	prefix string // no leading or trailing slash; "" = bucket root
	o      Options
	log    *slog.Logger
	holder string // hostname recorded in locks
	pid    int

	mu    sync.Mutex
	gates map[string]*gate     // lock name -> in-process gate
	held  map[string]*heldLock // lock name -> lock held in OSS
}

// New returns a Storage keeping objects in bucket under prefix (leading and
// trailing slashes are ignored; "" is the bucket root). At most one Options
// may be given. It panics if client is nil.
func New(client *oss.Client, bucket, prefix string, opts ...Options) *Storage {
	if client == nil {
		panic("ossstorage.New: nil client")
	}
	if len(opts) > 1 {
		panic("ossstorage.New: more than one Options")
	}
	var o Options
	if len(opts) == 1 {
		o = opts[0]
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LockRefresh <= 0 {
		o.LockRefresh = DefaultLockRefresh
	}
	if o.LockStaleAfter <= 0 {
		o.LockStaleAfter = max(DefaultLockStaleAfter, 6*o.LockRefresh)
	}
	if o.LockStaleAfter < 2*o.LockRefresh {
		o.LockRefresh = o.LockStaleAfter / 3
	}
	if o.LockPoll <= 0 {
		o.LockPoll = DefaultLockPoll
	}
	if o.LockConfirmDelay <= 0 {
		o.LockConfirmDelay = DefaultLockConfirmDelay
	}
	o.LockConfirmDelay = min(o.LockConfirmDelay, o.LockStaleAfter/4)
	if o.ListPageSize <= 0 || o.ListPageSize > DefaultListPageSize {
		o.ListPageSize = DefaultListPageSize
	}
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	s := &Storage{
		client: client,
		bucket: bucket,
		prefix: strings.Trim(prefix, "/"),
		o:      o,
		holder: host,
		pid:    os.Getpid(),
		gates:  make(map[string]*gate),
		held:   make(map[string]*heldLock),
	}
	s.log = o.Logger.With("storage", s.String())
	return s
}

// String identifies the storage as "oss://bucket/prefix" (certmagic logs it
// and uses it to tell storages apart).
func (s *Storage) String() string {
	if s.prefix == "" {
		return "oss://" + s.bucket
	}
	return "oss://" + s.bucket + "/" + s.prefix
}

// cleanKey strips the leading and trailing slashes certmagic keys never
// have.
func cleanKey(key string) string { return strings.Trim(key, "/") }

// objectKey is the object name of a (clean, non-empty) key.
func (s *Storage) objectKey(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

// dirPrefix is the object-name prefix of everything under a clean key ("" =
// the storage root).
func (s *Storage) dirPrefix(key string) string {
	switch {
	case key == "" && s.prefix == "":
		return ""
	case key == "":
		return s.prefix + "/"
	default:
		return s.objectKey(key) + "/"
	}
}

// Store writes value at key, replacing any previous value, as a private
// object.
func (s *Storage) Store(ctx context.Context, key string, value []byte) error {
	key = cleanKey(key)
	if key == "" {
		return s.errorf("store", key, errors.New("empty key"))
	}
	_, err := s.client.PutObject(ctx, &oss.PutObjectRequest{
		Bucket:      oss.Ptr(s.bucket),
		Key:         oss.Ptr(s.objectKey(key)),
		Body:        bytes.NewReader(value),
		ContentType: oss.Ptr("application/octet-stream"),
		Acl:         oss.ObjectACLPrivate,
	})
	if err != nil {
		return s.errorf("store", key, err)
	}
	return nil
}

// Load returns the value at key; a missing key is an error satisfying
// errors.Is(err, fs.ErrNotExist).
func (s *Storage) Load(ctx context.Context, key string) ([]byte, error) {
	key = cleanKey(key)
	if key == "" {
		return nil, s.errorf("load", key, errors.New("empty key"))
	}
	res, err := s.client.GetObject(ctx, &oss.GetObjectRequest{
		Bucket: oss.Ptr(s.bucket),
		Key:    oss.Ptr(s.objectKey(key)),
	})
	if err != nil {
		return nil, s.errorf("load", key, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, s.errorf("load", key, err)
	}
	return data, nil
}

// Delete deletes key and, if key is a directory, every key under it, like
// FileStorage's os.RemoveAll. A missing key is not an error. The empty key
// (the whole storage) is refused.
func (s *Storage) Delete(ctx context.Context, key string) error {
	key = cleanKey(key)
	if key == "" {
		return s.errorf("delete", key, errors.New("refusing to delete the storage root"))
	}
	if err := s.deleteObject(ctx, s.objectKey(key)); err != nil {
		return s.errorf("delete", key, err)
	}
	var names []string
	err := s.listObjects(ctx, s.dirPrefix(key), false, func(p oss.ObjectProperties, _ string) {
		names = append(names, oss.ToString(p.Key))
	})
	if err != nil {
		return s.errorf("delete", key, err)
	}
	if err := s.deleteObjects(ctx, names); err != nil {
		return s.errorf("delete", key, err)
	}
	return nil
}

// deleteConcurrency bounds the DeleteObject calls of one directory delete.
const deleteConcurrency = 8

// deleteObjects deletes the named objects with a few calls in flight. (One
// DeleteObject per key rather than DeleteMultipleObjects: certmagic's
// directories hold a handful of keys, and it keeps to the operations the
// repository's emulator implements.)
func (s *Storage) deleteObjects(ctx context.Context, names []string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, deleteConcurrency)
	)
	for _, name := range names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := s.deleteObject(ctx, name); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("%q: %w", name, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// deleteObject deletes one object; OSS answers 204 for a missing one too.
func (s *Storage) deleteObject(ctx context.Context, name string) error {
	_, err := s.client.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: oss.Ptr(s.bucket), Key: oss.Ptr(name)})
	if err != nil && !isNotFound(err) {
		return compact(err)
	}
	return nil
}

// Exists reports whether key is a file or a directory, and false when it
// cannot tell.
func (s *Storage) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// Stat describes key: a file (an object) with its size and Last-Modified,
// or a directory (a prefix of other keys, IsTerminal false). A missing key
// is an error satisfying errors.Is(err, fs.ErrNotExist).
func (s *Storage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	key = cleanKey(key)
	if key != "" {
		res, err := s.client.HeadObject(ctx, &oss.HeadObjectRequest{
			Bucket: oss.Ptr(s.bucket),
			Key:    oss.Ptr(s.objectKey(key)),
		})
		if err == nil {
			ki := certmagic.KeyInfo{Key: key, Size: res.ContentLength, IsTerminal: true}
			if res.LastModified != nil {
				ki.Modified = *res.LastModified
			}
			return ki, nil
		}
		if !isNotFound(err) {
			return certmagic.KeyInfo{}, s.errorf("stat", key, err)
		}
	}
	res, err := s.client.ListObjectsV2(ctx, &oss.ListObjectsV2Request{
		Bucket:  oss.Ptr(s.bucket),
		Prefix:  oss.Ptr(s.dirPrefix(key)),
		MaxKeys: 1,
	})
	if err != nil {
		return certmagic.KeyInfo{}, s.errorf("stat", key, err)
	}
	if len(res.Contents) == 0 {
		return certmagic.KeyInfo{}, s.errorf("stat", key, fs.ErrNotExist)
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// List returns the keys under the directory path, as FileStorage does:
// full keys ("path/child"), immediate children (files and directories) when
// not recursive, and every file and every directory below path when
// recursive, in directory-walk order. A path that is a file lists as empty;
// a path that does not exist is an error satisfying errors.Is(err,
// fs.ErrNotExist). Objects whose names end in "/" (folder markers made by
// the console) only make their directory exist.
func (s *Storage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	path = cleanKey(path)
	dir := s.dirPrefix(path)
	join := func(rel string) string {
		if path == "" {
			return rel
		}
		return path + "/" + rel
	}
	seen := make(map[string]bool)
	var keys []string
	add := func(k string) {
		if k != path && !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	found := false
	err := s.listObjects(ctx, dir, !recursive, func(p oss.ObjectProperties, commonPrefix string) {
		found = true
		if commonPrefix != "" {
			add(join(strings.TrimSuffix(strings.TrimPrefix(commonPrefix, dir), "/")))
			return
		}
		rel := strings.Trim(strings.TrimPrefix(oss.ToString(p.Key), dir), "/")
		if rel == "" {
			return
		}
		if recursive {
			// every directory on the way down is a key too
			for i := range len(rel) {
				if rel[i] == '/' {
					add(join(rel[:i]))
				}
			}
		}
		add(join(rel))
	})
	if err != nil {
		return nil, s.errorf("list", path, err)
	}
	if !found {
		if path != "" {
			if ki, err := s.Stat(ctx, path); err == nil && ki.IsTerminal {
				return nil, nil
			}
		}
		return nil, s.errorf("list", path, fs.ErrNotExist)
	}
	slices.SortFunc(keys, walkOrder)
	return keys, nil
}

// walkOrder sorts keys as filepath.Walk visits them: component by
// component, so "a/b" and everything under it come before "a/b-c".
func walkOrder(a, b string) int {
	return slices.Compare(strings.Split(a, "/"), strings.Split(b, "/"))
}

// listObjects calls fn for every object under prefix, or, with delimit,
// for every object directly under it and every common prefix (with p
// zero), following continuation tokens.
func (s *Storage) listObjects(ctx context.Context, prefix string, delimit bool, fn func(p oss.ObjectProperties, commonPrefix string)) error {
	req := &oss.ListObjectsV2Request{
		Bucket:  oss.Ptr(s.bucket),
		Prefix:  oss.Ptr(prefix),
		MaxKeys: int32(s.o.ListPageSize),
	}
	if delimit {
		req.Delimiter = oss.Ptr("/")
	}
	pages := s.client.NewListObjectsV2Paginator(req)
	for pages.HasNext() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return compact(err)
		}
		for _, p := range page.Contents {
			fn(p, "")
		}
		for _, cp := range page.CommonPrefixes {
			if v := oss.ToString(cp.Prefix); v != "" {
				fn(oss.ObjectProperties{}, v)
			}
		}
		if page.IsTruncated && oss.ToString(page.NextContinuationToken) == "" {
			return errors.New("truncated listing without a continuation token")
		}
	}
	return nil
}

// errorf wraps err with the storage, the operation and the key. Not-found
// errors also wrap fs.ErrNotExist; OSS service errors are shortened to
// their status, code, message and request ID (the SDK's own message spans
// lines and repeats the endpoint) but still match *oss.ServiceError.
func (s *Storage) errorf(op, key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("oss storage %s: %s %q: %w", s, op, key, err)
	}
	if isNotFound(err) {
		return fmt.Errorf("oss storage %s: %s %q: %w: %w", s, op, key, fs.ErrNotExist, compact(err))
	}
	return fmt.Errorf("oss storage %s: %s %q: %w", s, op, key, compact(err))
}

// isNotFound reports whether err is OSS's answer for a missing object
// (NoSuchKey, or a bodiless 404 to a HEAD). NoSuchBucket is not: a
// misconfigured bucket must not look like an empty storage.
func isNotFound(err error) bool {
	var se *oss.ServiceError
	if !errors.As(err, &se) {
		return false
	}
	return se.Code == "NoSuchKey" || (se.StatusCode == 404 && (se.Code == "" || se.Code == "BadErrorResponse"))
}

// isAlreadyExists reports whether err is the 409 of a put with
// x-oss-forbid-overwrite on an existing object.
func isAlreadyExists(err error) bool {
	var se *oss.ServiceError
	return errors.As(err, &se) && (se.Code == "FileAlreadyExists" || (se.StatusCode == 409 && se.Code == ""))
}

// serviceError is a one-line rendering of an *oss.ServiceError that still
// unwraps to the SDK's error chain.
type serviceError struct {
	se  *oss.ServiceError
	err error
}

func (e *serviceError) Error() string {
	msg := fmt.Sprintf("OSS %d %s", e.se.StatusCode, e.se.Code)
	if e.se.Message != "" {
		msg += ": " + e.se.Message
	}
	if e.se.RequestID != "" {
		msg += " (request " + e.se.RequestID + ")"
	}
	return msg
}

func (e *serviceError) Unwrap() error { return e.err }

// compact shortens OSS service errors (see errorf).
func compact(err error) error {
	var se *oss.ServiceError
	if errors.As(err, &se) {
		if _, done := err.(*serviceError); !done {
			return &serviceError{se: se, err: err}
		}
	}
	return err
}
