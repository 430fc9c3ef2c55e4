package ossstorage

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/caddyserver/certmagic"

	"github.com/oss-gateway/gateway/internal/testkit"
	"github.com/oss-gateway/gateway/ossclient"
	"github.com/oss-gateway/gateway/ossemu"
)

const (
	testRegion = "cn-hangzhou"
	testBucket = "certs"
	testAK     = "AKIDossstorage"
	testSK     = "SECRETossstorage-do-not-leak"
)

// TestMain runs the helper process of the cross-process lock tests when
// re-executed with OSSSTORAGE_HELPER=1 (see lock_test.go).
func TestMain(m *testing.M) {
	if os.Getenv("OSSSTORAGE_HELPER") == "1" {
		os.Exit(helperMain())
	}
	os.Exit(m.Run())
}

// env is an emulator serving a private bucket on 127.0.0.1.
type env struct {
	e     *ossemu.Emulator
	addr  string
	clock *testkit.Clock
	logs  *testkit.Buffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	c := &testkit.Clock{}
	e := ossemu.New(ossemu.Options{Region: testRegion, Now: c.Now})
	e.AddCredential(testAK, testSK, "")
	e.CreateBucket(testBucket, ossemu.Private)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := e.Serve(ln)
	t.Cleanup(func() { _ = srv.Close() })
	return &env{e: e, addr: ln.Addr().String(), clock: c, logs: &testkit.Buffer{}}
}

// newClient is an SDK client for the emulator at addr, built like the
// gateway builds it.
func newClient(addr, secret string) (*oss.Client, error) {
	return ossclient.New(
		ossclient.Target{Bucket: testBucket, Region: testRegion, Endpoint: "http://" + addr},
		credentials.NewStaticCredentialsProvider(testAK, secret),
		ossclient.Options{},
	)
}

func (v *env) client(t *testing.T) *oss.Client {
	t.Helper()
	c, err := newClient(v.addr, testSK)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

// storage is a Storage on the env's bucket; o.Logger defaults to the env's
// log sink.
func (v *env) storage(t *testing.T, prefix string, o Options) *Storage {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(v.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return New(v.client(t), testBucket, prefix, o)
}

// object returns a stored object's body, failing if it is missing.
func (v *env) object(t *testing.T, name string) []byte {
	t.Helper()
	b, ok := v.e.Object(testBucket, name)
	if !ok {
		t.Fatalf("object %q missing", name)
	}
	return b
}

// certmagicTree is a storage tree shaped like certmagic's, with names that
// order differently per component than as whole strings
// ("example.com" < "example.com.au" but "example.com/" > "example.com.au").
func certmagicTree() map[string][]byte {
	ca := "certificates/acme-v02.api.letsencrypt.org-directory"
	tree := map[string][]byte{
		"acme/acme-v02.api.letsencrypt.org-directory/users/default/default.key":  []byte("-----BEGIN EC PRIVATE KEY-----\n"),
		"acme/acme-v02.api.letsencrypt.org-directory/users/default/default.json": []byte(`{"status":"valid"}`),
		"ocsp/example.com-1a2b3c": {0, 1, 2},
		"last_clean.json":         []byte(`{}`),
	}
	for _, site := range []string{"example.com", "example.com.au", "www.example.com", "wildcard_.example.org"} {
		for _, ext := range []string{".crt", ".key", ".json"} {
			tree[ca+"/"+site+"/"+site+ext] = []byte(site + ext)
		}
	}
	return tree
}

// fill stores every key of tree in each storage.
func fill(t *testing.T, tree map[string][]byte, ss ...certmagic.Storage) {
	t.Helper()
	for k, val := range tree {
		for _, s := range ss {
			if err := s.Store(context.Background(), k, val); err != nil {
				t.Fatalf("store %q in %v: %v", k, s, err)
			}
		}
	}
}

func TestStoreLoadRoundTrip(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	random := make([]byte, 256<<10)
	_, _ = rand.Read(random)
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	tests := []struct {
		name, prefix, key string
		value             []byte
		object            string // expected object name
	}{
		{"binary under prefix", "certmagic", "certificates/ca/example.com/example.com.key", every, "certmagic/certificates/ca/example.com/example.com.key"},
		{"large random", "certmagic", "big.bin", random, "certmagic/big.bin"},
		{"empty value", "certmagic", "empty", []byte{}, "certmagic/empty"},
		{"no prefix", "", "certificates/x/y.crt", []byte("pem"), "certificates/x/y.crt"},
		{"slashes trimmed", "/fleet/tls/", "/a/b.json/", []byte("{}"), "fleet/tls/a/b.json"},
		{"odd characters", "p", "dir with space/a+b=c&d ключ.txt", []byte("odd"), "p/dir with space/a+b=c&d ключ.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := v.storage(t, tt.prefix, Options{})
			v.e.ResetRequests()
			if err := s.Store(ctx, tt.key, tt.value); err != nil {
				t.Fatalf("Store: %v", err)
			}
			if got := v.object(t, tt.object); !bytes.Equal(got, tt.value) {
				t.Fatalf("object %q holds %d bytes, want %d", tt.object, len(got), len(tt.value))
			}
			reqs := v.e.Requests()
			if len(reqs) != 1 || reqs[0].Method != "PUT" || !reqs[0].Signed {
				t.Fatalf("requests = %+v, want one signed PUT", reqs)
			}
			if acl := reqs[0].Header.Get("X-Oss-Object-Acl"); acl != "private" {
				t.Errorf("x-oss-object-acl = %q, want private", acl)
			}
			got, err := s.Load(ctx, tt.key)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if !bytes.Equal(got, tt.value) {
				t.Fatalf("Load returned %d bytes that differ from the %d stored", len(got), len(tt.value))
			}
		})
	}

	t.Run("overwrite", func(t *testing.T) {
		s := v.storage(t, "certmagic", Options{})
		for _, val := range []string{"first", "second, longer"} {
			if err := s.Store(ctx, "k", []byte(val)); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := s.Load(ctx, "k"); err != nil || string(got) != "second, longer" {
			t.Fatalf("Load = %q, %v", got, err)
		}
	})
}

func TestMissingAndErrors(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	s := v.storage(t, "p", Options{})
	fill(t, map[string][]byte{"dir/file": []byte("x")}, s)

	notExist := []struct {
		name string
		op   func() error
		want string
	}{
		{"load", func() error { _, err := s.Load(ctx, "nope"); return err }, `oss storage oss://certs/p: load "nope": `},
		{"load a directory", func() error { _, err := s.Load(ctx, "dir"); return err }, `load "dir"`},
		{"stat", func() error { _, err := s.Stat(ctx, "nope"); return err }, `stat "nope"`},
		{"stat partial component", func() error { _, err := s.Stat(ctx, "di"); return err }, `stat "di"`},
		{"list", func() error { _, err := s.List(ctx, "nope", true); return err }, `list "nope"`},
		{"list partial component", func() error { _, err := s.List(ctx, "di", false); return err }, `list "di"`},
	}
	for _, tt := range notExist {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op()
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("err = %v, want fs.ErrNotExist", err)
			}
			if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q, want one line containing %q", err, tt.want)
			}
		})
	}

	t.Run("delete missing is not an error", func(t *testing.T) {
		if err := s.Delete(ctx, "nope/nothing"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("empty keys refused", func(t *testing.T) {
		if err := s.Store(ctx, "", []byte("x")); err == nil {
			t.Error("Store of empty key succeeded")
		}
		if err := s.Delete(ctx, "/"); err == nil {
			t.Error("Delete of the root succeeded")
		}
		if _, err := s.Load(ctx, "x"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Load after refused Store: %v", err)
		}
	})
	t.Run("missing bucket is an error, not fs.ErrNotExist", func(t *testing.T) {
		nb := New(v.client(t), "no-such-bucket", "p", Options{})
		_, err := nb.Load(ctx, "k")
		var se *oss.ServiceError
		if err == nil || errors.Is(err, fs.ErrNotExist) || !errors.As(err, &se) || se.Code != "NoSuchBucket" {
			t.Fatalf("err = %v, want a NoSuchBucket *oss.ServiceError that is not fs.ErrNotExist", err)
		}
		if nb.Exists(ctx, "k") {
			t.Error("Exists in a missing bucket")
		}
	})
	t.Run("errors carry no credentials", func(t *testing.T) {
		c, err := newClient(v.addr, "WRONG-"+testSK)
		if err != nil {
			t.Fatal(err)
		}
		bad := New(c, testBucket, "p", Options{})
		err = bad.Store(ctx, "k", []byte("x"))
		var se *oss.ServiceError
		if !errors.As(err, &se) || se.Code != "SignatureDoesNotMatch" {
			t.Fatalf("err = %v, want SignatureDoesNotMatch", err)
		}
		if msg := err.Error(); strings.Contains(msg, testSK) || strings.Contains(msg, "\n") ||
			!strings.HasPrefix(msg, `oss storage oss://certs/p: store "k": OSS 403 SignatureDoesNotMatch`) {
			t.Errorf("error message = %q", msg)
		}
	})
}

func TestExistsStat(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	s := v.storage(t, "tls", Options{})
	before := time.Now().Add(-time.Second)
	fill(t, certmagicTree(), s)
	// outside the prefix, and a sibling prefix sharing its first letters
	v.e.PutObject(testBucket, "elsewhere/file", []byte("x"), nil)
	v.e.PutObject(testBucket, "tlsx/certificates/z", []byte("x"), nil)
	after := time.Now().Add(time.Second)

	site := "certificates/acme-v02.api.letsencrypt.org-directory/example.com"
	tests := []struct {
		key      string
		exists   bool
		terminal bool
		size     int64
	}{
		{site + "/example.com.crt", true, true, int64(len("example.com.crt"))},
		{site + "/example.com.key", true, true, int64(len("example.com.key"))},
		{"/" + site + "/", true, false, 0},
		{"certificates", true, false, 0},
		{"", true, false, 0},                       // the storage root
		{"certificates/acme-v02", false, false, 0}, // not a whole component
		{site + "/example.com", false, false, 0},   // not a whole component
		{"elsewhere/file", false, false, 0},        // outside the prefix
		{"z", false, false, 0},                     // in the sibling prefix
		{"certificates/acme-v02.api.letsencrypt.org-directory/nope.org", false, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := s.Exists(ctx, tt.key); got != tt.exists {
				t.Fatalf("Exists = %v, want %v", got, tt.exists)
			}
			ki, err := s.Stat(ctx, tt.key)
			if !tt.exists {
				if !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("Stat err = %v, want fs.ErrNotExist", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Stat: %v", err)
			}
			if ki.Key != strings.Trim(tt.key, "/") || ki.IsTerminal != tt.terminal || ki.Size != tt.size {
				t.Fatalf("Stat = %+v, want key %q terminal %v size %d", ki, tt.key, tt.terminal, tt.size)
			}
			if tt.terminal && (ki.Modified.Before(before) || ki.Modified.After(after)) {
				t.Errorf("Modified = %v, want within [%v, %v]", ki.Modified, before, after)
			}
		})
	}
}

func TestList(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	// two keys a page, so every listing below takes several requests
	s := v.storage(t, "tls", Options{ListPageSize: 2})
	fsRef := &certmagic.FileStorage{Path: filepath.Join(t.TempDir(), "ref")}
	fill(t, certmagicTree(), s, fsRef)
	v.e.PutObject(testBucket, "tlsx/certificates/z", []byte("x"), nil)
	v.e.PutObject(testBucket, "elsewhere/file", []byte("x"), nil)

	ca := "certificates/acme-v02.api.letsencrypt.org-directory"
	tests := []struct {
		path      string
		recursive bool
		want      []string // nil: as FileStorage lists it
	}{
		{"", false, []string{"acme", "certificates", "last_clean.json", "ocsp"}},
		{"certificates", false, []string{ca}},
		{ca, false, []string{ca + "/example.com", ca + "/example.com.au", ca + "/wildcard_.example.org", ca + "/www.example.com"}},
		{ca + "/", false, nil},
		{ca + "/example.com", false, []string{ca + "/example.com/example.com.crt", ca + "/example.com/example.com.json", ca + "/example.com/example.com.key"}},
		{ca + "/example.com", true, nil},
		{"certificates", true, nil},
		{"acme", true, nil},
		{"", true, nil},
		{"last_clean.json", false, []string{}},
		{"last_clean.json", true, []string{}},
	}
	for _, tt := range tests {
		name := tt.path
		if tt.recursive {
			name += " recursive"
		}
		t.Run(name, func(t *testing.T) {
			v.e.ResetRequests()
			got, err := s.List(ctx, tt.path, tt.recursive)
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			want := tt.want
			ref, refErr := fsRef.List(ctx, tt.path, tt.recursive)
			if refErr != nil {
				t.Fatalf("FileStorage.List: %v", refErr)
			}
			if want == nil {
				want = ref
			} else if len(want) > 0 && !slices.Equal(want, ref) {
				t.Fatalf("test table disagrees with FileStorage: %q vs %q", want, ref)
			}
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("List(%q, %v) =\n%q\nwant\n%q", tt.path, tt.recursive, got, want)
			}
			// entries OSS returns: objects when recursive, else files and
			// common prefixes
			n := len(want)
			if tt.recursive {
				n = 0
				for k := range certmagicTree() {
					if p := strings.Trim(tt.path, "/"); p == "" || strings.HasPrefix(k, p+"/") {
						n++
					}
				}
			}
			if n > 2 {
				pages := 0
				for _, r := range v.e.Requests() {
					if strings.Contains(r.RawQuery, "continuation-token=") {
						pages++
					}
				}
				if pages == 0 {
					t.Errorf("%d entries listed without a continuation token: pagination not exercised", n)
				}
			}
		})
	}
	t.Run("recursive lists every file", func(t *testing.T) {
		got, err := s.List(ctx, "", true)
		if err != nil {
			t.Fatal(err)
		}
		for k := range certmagicTree() {
			if !slices.Contains(got, k) {
				t.Errorf("%q missing from recursive listing", k)
			}
		}
	})
	t.Run("folder marker objects", func(t *testing.T) {
		v.e.PutObject(testBucket, "tls/markers/", nil, nil)
		v.e.PutObject(testBucket, "tls/markers/sub/", nil, nil)
		v.e.PutObject(testBucket, "tls/markers/sub/f", []byte("x"), nil)
		for _, tt := range []struct {
			recursive bool
			want      []string
		}{
			{false, []string{"markers/sub"}},
			{true, []string{"markers/sub", "markers/sub/f"}},
		} {
			got, err := s.List(ctx, "markers", tt.recursive)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("List(markers, %v) = %q, %v; want %q", tt.recursive, got, err, tt.want)
			}
		}
	})
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	ca := "certificates/acme-v02.api.letsencrypt.org-directory"
	tests := []struct {
		name, key string
		gone      []string // keys that must be gone
		kept      []string // keys that must remain
	}{
		{"one file", ca + "/example.com/example.com.key",
			[]string{ca + "/example.com/example.com.key"},
			[]string{ca + "/example.com/example.com.crt", ca + "/example.com.au/example.com.au.key"}},
		{"a site directory", ca + "/example.com",
			[]string{ca + "/example.com/example.com.crt", ca + "/example.com/example.com.key", ca + "/example.com/example.com.json"},
			[]string{ca + "/example.com.au/example.com.au.crt", ca + "/www.example.com/www.example.com.crt"}},
		{"a directory with a trailing slash", "certificates/",
			[]string{ca + "/example.com/example.com.crt", ca + "/www.example.com/www.example.com.json"},
			[]string{"acme/acme-v02.api.letsencrypt.org-directory/users/default/default.key", "last_clean.json"}},
		{"a partial component deletes nothing", ca + "/example.c",
			nil,
			[]string{ca + "/example.com/example.com.crt"}},
		{"a missing key", "nope", nil, []string{"last_clean.json"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t)
			s := v.storage(t, "tls", Options{ListPageSize: 2})
			fill(t, certmagicTree(), s)
			v.e.PutObject(testBucket, "tlsx/certificates/z", []byte("x"), nil)
			if err := s.Delete(ctx, tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			for _, k := range tt.gone {
				if s.Exists(ctx, k) {
					t.Errorf("%q still exists", k)
				}
			}
			for _, k := range tt.kept {
				if !s.Exists(ctx, k) {
					t.Errorf("%q was deleted", k)
				}
			}
			if s.Exists(ctx, strings.Trim(tt.key, "/")) {
				t.Errorf("%q still exists", tt.key)
			}
			if _, ok := v.e.Object(testBucket, "tlsx/certificates/z"); !ok {
				t.Error("an object of a sibling prefix was deleted")
			}
		})
	}
}

func TestString(t *testing.T) {
	v := newEnv(t)
	for prefix, want := range map[string]string{
		"":            "oss://certs",
		"/":           "oss://certs",
		"certmagic":   "oss://certs/certmagic",
		"/fleet/tls/": "oss://certs/fleet/tls",
		"a/b":         "oss://certs/a/b",
	} {
		if got := New(v.client(t), testBucket, prefix).String(); got != want {
			t.Errorf("prefix %q: String() = %q, want %q", prefix, got, want)
		}
	}
}

func TestOptionsNormalized(t *testing.T) {
	v := newEnv(t)
	tests := []struct {
		name string
		in   Options
		want Options // Logger ignored
	}{
		{"zero is production", Options{}, Options{LockRefresh: 5 * time.Second, LockStaleAfter: 30 * time.Second, LockPoll: time.Second, LockConfirmDelay: 2 * time.Second, ListPageSize: 1000}},
		{"slow refresh stretches staleness", Options{LockRefresh: 20 * time.Second}, Options{LockRefresh: 20 * time.Second, LockStaleAfter: 120 * time.Second, LockPoll: time.Second, LockConfirmDelay: 2 * time.Second, ListPageSize: 1000}},
		{"short staleness speeds refresh and confirmation", Options{LockStaleAfter: 3 * time.Second}, Options{LockRefresh: time.Second, LockStaleAfter: 3 * time.Second, LockPoll: time.Second, LockConfirmDelay: 750 * time.Millisecond, ListPageSize: 1000}},
		{"page size capped", Options{ListPageSize: 5000}, Options{LockRefresh: 5 * time.Second, LockStaleAfter: 30 * time.Second, LockPoll: time.Second, LockConfirmDelay: 2 * time.Second, ListPageSize: 1000}},
		{"explicit values kept", fastOpts(), Options{LockRefresh: tRefresh, LockStaleAfter: tStale, LockPoll: tPoll, LockConfirmDelay: tConfirm, ListPageSize: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := New(v.client(t), testBucket, "", tt.in).o
			got.Logger = nil
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
