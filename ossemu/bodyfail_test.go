package ossemu

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/credentials"
	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss/signer"
)

// These tests send signed writes over raw TCP connections whose bodies do
// not arrive whole (a short Content-Length body then a half-close, a close
// or a reset; bad chunk framing) and prove the emulator stores nothing for
// them: PutObject, AppendObject and UploadPart read the whole body before
// they touch any state.

// bodyMode is how a raw request's body is sent.
type bodyMode int

const (
	bodyWhole      bodyMode = iota // Content-Length body sent whole: the control case
	bodyShortHalf                  // fewer bytes than Content-Length, then CloseWrite
	bodyShortClose                 // fewer bytes than Content-Length, then Close
	bodyShortReset                 // fewer bytes than Content-Length, then a TCP RST
	bodyBadChunks                  // chunked, with a chunk-size line that is not hex
)

// String names the mode in subtest names.
func (m bodyMode) String() string {
	return [...]string{"whole", "short then half-close", "short then close", "short then reset", "bad chunk framing"}[m]
}

// canReadAnswer reports whether the client can still read the response.
func (m bodyMode) canReadAnswer() bool {
	return m == bodyWhole || m == bodyShortHalf || m == bodyBadChunks
}

// signedHeader signs a request for /bucket/key?rawQuery with the SDK's V4
// signer, as the gateway would, and returns its headers.
func signedHeader(t *testing.T, method, addr, bucketName, key, rawQuery, ak, sk string) http.Header {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+addr+"/"+bucketName+"/"+key+"?"+rawQuery, nil)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	cred, err := credentials.NewStaticCredentialsProvider(ak, sk).GetCredentials(context.Background())
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	sc := &signer.SigningContext{
		Product: oss.Ptr("oss"), Region: oss.Ptr(testRegion),
		Bucket: oss.Ptr(bucketName), Key: oss.Ptr(key),
		Request: req, Credentials: &cred,
	}
	if err := (&signer.SignerV4{}).Sign(context.Background(), sc); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return req.Header
}

// rawWrite sends one signed request for /bucket/key?rawQuery with body
// over a fresh TCP connection in the given mode. It returns the response
// status and error code when the client can read them, and 0, "" when the
// connection is gone.
func rawWrite(t *testing.T, addr, method, bucketName, key, rawQuery string, body []byte, mode bodyMode) (int, string) {
	t.Helper()
	hdr := signedHeader(t, method, addr, bucketName, key, rawQuery, "AKID", "SECRET")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))

	var head strings.Builder
	fmt.Fprintf(&head, "%s /%s/%s?%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, bucketName, key, rawQuery, addr)
	for k, vs := range hdr {
		for _, v := range vs {
			fmt.Fprintf(&head, "%s: %s\r\n", k, v)
		}
	}
	var payload []byte
	switch mode {
	case bodyWhole:
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(body))
		payload = body
	case bodyBadChunks:
		head.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		half := body[:len(body)/2]
		payload = fmt.Appendf(nil, "%x\r\n%s\r\nzz\r\n%s\r\n0\r\n\r\n", len(half), half, body[len(half):])
	default:
		fmt.Fprintf(&head, "Content-Length: %d\r\n\r\n", len(body)+100)
		payload = body
	}
	if _, err := io.WriteString(conn, head.String()); err != nil {
		t.Fatalf("write head: %v", err)
	}
	if _, err := conn.Write(payload); err != nil {
		t.Fatalf("write body: %v", err)
	}
	tc := conn.(*net.TCPConn)
	switch mode {
	case bodyShortHalf:
		_ = tc.CloseWrite()
	case bodyShortClose:
		_ = tc.Close()
	case bodyShortReset:
		_ = tc.SetLinger(0)
		_ = tc.Close()
	}
	if !mode.canReadAnswer() {
		return 0, ""
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: read response: %v", mode, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, errorCode(string(b))
}

// waitLogged waits until the emulator has answered the last logged request
// for method and key with rawQuery and returns it. The status is logged
// before it is written, after the operation has decided whether to store
// anything (and after the signature was verified and logged), so it is
// safe to inspect the state then. Callers make the request unique in the
// log (ResetRequests, or a unique query) so an older answer is not taken
// for it.
func waitLogged(t *testing.T, e *Emulator, method, key, rawQuery string) Request {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := e.Requests()
		for i := len(rs) - 1; i >= 0; i-- {
			if r := rs[i]; r.Method == method && r.Key == key && r.RawQuery == rawQuery {
				if r.Status != 0 {
					return r
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s %s?%s: no answer logged", method, key, rawQuery)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stateOf renders what the emulator stores for the bucket: every object
// (type, content) and every pending upload's parts, so a test can assert
// that a failed write changed nothing at all.
func stateOf(e *Emulator, bucketName string) string {
	e.mu.RLock()
	b := e.buckets[bucketName]
	var lines []string
	for k, o := range b.objects {
		lines = append(lines, fmt.Sprintf("object %s %s %s %q", k, o.objectType, o.etag, o.data))
	}
	for _, u := range b.uploads {
		for _, p := range u.sortedParts() {
			lines = append(lines, fmt.Sprintf("upload %s %s part %d %s %q", u.key, u.id, p.number, p.etag, p.data))
		}
	}
	e.mu.RUnlock()
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestFailedBodyStoresNothing(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.AddCredential("AKID", "SECRET", "")
	e.CreateBucket("priv", Private)
	e.PutObject("priv", "existing.txt", []byte("old content"), nil)
	body := []byte("this body never arrives whole")

	// An appendable object and an upload with a part 1, made through the
	// same raw path so the control case proves the path itself works.
	if st, code := rawWrite(t, addr, http.MethodPost, "priv", "log", "append&position=0", []byte("abc"), bodyWhole); st != 200 {
		t.Fatalf("first append = %d %s", st, code)
	}
	uploadID := mpInitiateSigned(t, e, addr, "priv", "mp.bin")
	if st, code := rawWrite(t, addr, http.MethodPut, "priv", "mp.bin", "partNumber=1&uploadId="+uploadID, []byte("original part"), bodyWhole); st != 200 {
		t.Fatalf("UploadPart 1 = %d %s", st, code)
	}

	ops := []struct {
		name, method, key, query string
		check                    func(t *testing.T) // what must still hold after a failed body
	}{
		{"PutObject new", http.MethodPut, "new.txt", "", func(t *testing.T) {
			if _, ok := e.Object("priv", "new.txt"); ok {
				t.Error("object stored")
			}
		}},
		{"PutObject over existing", http.MethodPut, "existing.txt", "", func(t *testing.T) {
			if b, _ := e.Object("priv", "existing.txt"); string(b) != "old content" {
				t.Errorf("object = %q", b)
			}
		}},
		{"AppendObject new", http.MethodPost, "log-new", "append&position=0", func(t *testing.T) {
			if _, ok := e.Object("priv", "log-new"); ok {
				t.Error("object stored")
			}
		}},
		{"AppendObject existing", http.MethodPost, "log", "append&position=3", func(t *testing.T) {
			if b, _ := e.Object("priv", "log"); string(b) != "abc" {
				t.Errorf("object = %q", b)
			}
		}},
		{"UploadPart new number", http.MethodPut, "mp.bin", "partNumber=2&uploadId=" + uploadID, func(t *testing.T) {
			if ps, ok := e.PendingParts("priv", "mp.bin", uploadID); !ok || len(ps) != 1 || ps[0].Number != 1 {
				t.Errorf("parts = %+v %v", ps, ok)
			}
		}},
		{"UploadPart replacing a part", http.MethodPut, "mp.bin", "partNumber=1&uploadId=" + uploadID, func(t *testing.T) {
			if ps, ok := e.PendingParts("priv", "mp.bin", uploadID); !ok || len(ps) != 1 || string(ps[0].Data) != "original part" {
				t.Errorf("parts = %+v %v", ps, ok)
			}
		}},
	}
	modes := []bodyMode{bodyShortHalf, bodyShortClose, bodyShortReset, bodyBadChunks}
	for _, op := range ops {
		for _, mode := range modes {
			t.Run(op.name+"/"+mode.String(), func(t *testing.T) {
				e.ResetRequests()
				before := stateOf(e, "priv")
				st, code := rawWrite(t, addr, op.method, "priv", op.key, op.query, body, mode)
				if mode.canReadAnswer() && (st != http.StatusBadRequest || code != "IncompleteBody") {
					t.Errorf("answer = %d %s, want 400 IncompleteBody", st, code)
				}
				rq := waitLogged(t, e, op.method, op.key, op.query)
				if rq.Status != http.StatusBadRequest {
					t.Errorf("logged status = %d, want 400", rq.Status)
				}
				if !rq.Signed {
					t.Error("request not verified as signed: the failure may be the signature's, not the body's")
				}
				op.check(t)
				if after := stateOf(e, "priv"); after != before {
					t.Errorf("state changed:\nbefore\n%s\nafter\n%s", before, after)
				}
			})
		}
	}
}

// mpInitiateSigned starts a multipart upload with a signed request and
// returns its ID.
func mpInitiateSigned(t *testing.T, e *Emulator, addr, bucketName, key string) string {
	t.Helper()
	hdr := signedHeader(t, http.MethodPost, addr, bucketName, key, "uploads", "AKID", "SECRET")
	if r := do(t, http.MethodPost, "http://"+addr+"/"+bucketName+"/"+key+"?uploads", "", hdr, ""); r.status != 200 {
		t.Fatalf("InitiateMultipartUpload = %d %s", r.status, r.body)
	}
	us := e.Uploads(bucketName)
	for i := len(us) - 1; i >= 0; i-- {
		if us[i].Key == key {
			return us[i].UploadID
		}
	}
	t.Fatalf("no upload for %s", key)
	return ""
}
