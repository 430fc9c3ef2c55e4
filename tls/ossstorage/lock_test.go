package ossstorage

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"

	"github.com/oss-gateway/gateway/internal/testkit"
)

// Lock timings for tests: short, but with the same proportions as the
// defaults where it matters (a live holder refreshes several times per
// stale interval).
const (
	tRefresh = 100 * time.Millisecond
	tStale   = 600 * time.Millisecond
	tPoll    = 25 * time.Millisecond
	tConfirm = 100 * time.Millisecond
)

func fastOpts() Options {
	return Options{LockRefresh: tRefresh, LockStaleAfter: tStale, LockPoll: tPoll, LockConfirmDelay: tConfirm}
}

const certLock = "issue_cert_example.com"

// lockObject reads and decodes a lock object from the emulator.
func (v *env) lockObject(t *testing.T, name string) lockMeta {
	t.Helper()
	var m lockMeta
	if err := json.Unmarshal(v.object(t, name), &m); err != nil {
		t.Fatalf("lock object %q: %v", name, err)
	}
	return m
}

// guard counts concurrent holders of a lock.
type guard struct {
	active   atomic.Int32
	overlaps atomic.Int32
	counter  int // protected only by the lock under test
}

func (g *guard) critical(hold time.Duration) {
	if g.active.Add(1) != 1 {
		g.overlaps.Add(1)
	}
	g.counter++
	time.Sleep(hold)
	g.active.Add(-1)
}

func TestLockObject(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	s := v.storage(t, "tls", fastOpts())
	v.e.ResetRequests()
	if err := s.Lock(ctx, "Issue Cert *.Example.com"); err != nil {
		t.Fatal(err)
	}
	name := "tls/locks/issue_cert_wildcard_.example.com.lock" // certmagic.StorageKeys.Safe
	m := v.lockObject(t, name)
	host, _ := os.Hostname()
	if len(m.Token) < 16 || m.PID != os.Getpid() || m.Holder != host || m.Created.IsZero() || !m.Updated.Equal(m.Created) {
		t.Fatalf("lock body = %+v", m)
	}
	reqs := v.e.Requests()
	if len(reqs) != 1 || reqs[0].Method != "PUT" || reqs[0].Key != name ||
		reqs[0].Header.Get("X-Oss-Forbid-Overwrite") != "true" || reqs[0].Header.Get("X-Oss-Object-Acl") != "private" {
		t.Fatalf("lock create requests = %+v", reqs)
	}

	// the refresher rewrites updated, keeping the token
	time.Sleep(3 * tRefresh)
	m2 := v.lockObject(t, name)
	if m2.Token != m.Token || !m2.Updated.After(m.Updated) || !m2.Created.Equal(m.Created) {
		t.Fatalf("after refresh: %+v, before %+v", m2, m)
	}
	if err := s.Unlock(ctx, "Issue Cert *.Example.com"); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.e.Object(testBucket, name); ok {
		t.Fatal("lock object left after Unlock")
	}
	// no refresh after Unlock re-creates it
	time.Sleep(2 * tRefresh)
	if _, ok := v.e.Object(testBucket, name); ok {
		t.Fatal("lock object re-created after Unlock")
	}
	if len(s.gates) != 0 || len(s.held) != 0 {
		t.Errorf("state left behind: %d gates, %d held", len(s.gates), len(s.held))
	}
}

// Many goroutines, on four Storages (two goroutines each, so both the
// in-process gate and OSS arbitrate), increment a plain counter under the
// lock: the race detector and an atomic count of holders see no overlap.
func TestLockMutualExclusion(t *testing.T) {
	v := newEnv(t)
	o := Options{LockRefresh: 200 * time.Millisecond, LockStaleAfter: 3 * time.Second, LockPoll: 20 * time.Millisecond, LockConfirmDelay: 50 * time.Millisecond}
	const storages, perStorage, rounds = 4, 2, 4
	var g guard
	var wg sync.WaitGroup
	errs := make(chan error, storages*perStorage*rounds)
	start := time.Now()
	for range storages {
		s := v.storage(t, "tls", o)
		for range perStorage {
			wg.Go(func() {
				for range rounds {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					if err := s.Lock(ctx, certLock); err != nil {
						cancel()
						errs <- err
						return
					}
					g.critical(5 * time.Millisecond)
					if err := s.Unlock(ctx, certLock); err != nil {
						errs <- err
					}
					cancel()
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := g.overlaps.Load(); n != 0 {
		t.Errorf("%d overlapping holders", n)
	}
	if want := storages * perStorage * rounds; g.counter != want {
		t.Errorf("counter = %d, want %d", g.counter, want)
	}
	if logs := v.logs.String(); strings.Contains(logs, "stale") || strings.Contains(logs, "lost") {
		t.Errorf("unexpected lock trouble:\n%s", logs)
	}
	t.Logf("%d acquisitions in %v", g.counter, time.Since(start))
}

// Waiters give up when their context ends, and leave the lock alone.
func TestLockHonoursContext(t *testing.T) {
	v := newEnv(t)
	holder := v.storage(t, "tls", fastOpts())
	if err := holder.Lock(context.Background(), certLock); err != nil {
		t.Fatal(err)
	}
	token := v.lockObject(t, "tls/locks/"+certLock+".lock").Token
	other := v.storage(t, "tls", fastOpts())

	tests := []struct {
		name string
		s    *Storage // same Storage: waits on the in-process gate
		ctx  func() (context.Context, context.CancelFunc)
		want error
	}{
		{"other storage, cancel", other, cancelAfter(150 * time.Millisecond), context.Canceled},
		{"other storage, deadline", other, deadlineAfter(150 * time.Millisecond), context.DeadlineExceeded},
		{"same storage, cancel", holder, cancelAfter(150 * time.Millisecond), context.Canceled},
		{"same storage, deadline", holder, deadlineAfter(150 * time.Millisecond), context.DeadlineExceeded},
		{"already cancelled", other, cancelAfter(0), context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			err := tt.s.Lock(ctx, certLock)
			if err != tt.want {
				t.Fatalf("Lock = %v, want %v", err, tt.want)
			}
			if d := time.Since(start); d > 150*time.Millisecond+tStale/2 {
				t.Errorf("Lock returned %v after the start, long after its context ended", d)
			}
		})
	}
	// the live lock survived all this (well past LockStaleAfter) untouched
	if m := v.lockObject(t, "tls/locks/"+certLock+".lock"); m.Token != token {
		t.Fatal("the held lock was replaced")
	}
	if err := holder.Unlock(context.Background(), certLock); err != nil {
		t.Fatal(err)
	}
	if len(holder.gates) != 0 || len(other.gates) != 0 {
		t.Errorf("gates left behind: %d, %d", len(holder.gates), len(other.gates))
	}
}

func cancelAfter(d time.Duration) func() (context.Context, context.CancelFunc) {
	return func() (context.Context, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		if d == 0 {
			cancel()
		} else {
			time.AfterFunc(d, cancel)
		}
		return ctx, cancel
	}
}

func deadlineAfter(d time.Duration) func() (context.Context, context.CancelFunc) {
	return func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(context.Background(), d)
	}
}

func TestTryLock(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	a, b := v.storage(t, "tls", fastOpts()), v.storage(t, "tls", fastOpts())
	if ok, err := a.TryLock(ctx, certLock); !ok || err != nil {
		t.Fatalf("TryLock on a free lock = %v, %v", ok, err)
	}
	for _, s := range []*Storage{a, b} {
		if ok, err := s.TryLock(ctx, certLock); ok || err != nil {
			t.Fatalf("TryLock on a held lock = %v, %v", ok, err)
		}
	}
	if err := a.Unlock(ctx, certLock); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(ctx, certLock); !ok || err != nil {
		t.Fatalf("TryLock after Unlock = %v, %v", ok, err)
	}
	if err := b.Unlock(ctx, certLock); err != nil {
		t.Fatal(err)
	}
}

func TestUnlockNotHeld(t *testing.T) {
	name := "tls/locks/" + certLock + ".lock"
	tests := []struct {
		name    string
		setup   func(t *testing.T, v *env, a, b *Storage) *Storage // returns who unlocks
		want    error
		objLeft string // token the lock object must still carry ("" = none)
	}{
		{"never locked", func(t *testing.T, v *env, a, b *Storage) *Storage { return b }, ErrNotLocked, ""},
		{"held by another storage", func(t *testing.T, v *env, a, b *Storage) *Storage {
			mustLock(t, a)
			return b
		}, ErrNotLocked, "a"},
		{"unlocked twice", func(t *testing.T, v *env, a, b *Storage) *Storage {
			mustLock(t, a)
			if err := a.Unlock(context.Background(), certLock); err != nil {
				t.Fatal(err)
			}
			return a
		}, ErrNotLocked, ""},
		{"replaced by a foreign holder", func(t *testing.T, v *env, a, b *Storage) *Storage {
			mustLock(t, a)
			v.e.PutObject(testBucket, name, []byte(`{"token":"foreign","holder":"elsewhere","pid":1}`), nil)
			return a
		}, ErrLockLost, "foreign"},
		{"lock object deleted", func(t *testing.T, v *env, a, b *Storage) *Storage {
			mustLock(t, a)
			if _, err := v.client(t).DeleteObject(context.Background(), &oss.DeleteObjectRequest{Bucket: oss.Ptr(testBucket), Key: oss.Ptr(name)}); err != nil {
				t.Fatal(err)
			}
			return a
		}, ErrLockLost, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newEnv(t)
			a, b := v.storage(t, "tls", fastOpts()), v.storage(t, "tls", fastOpts())
			var aToken string
			u := tt.setup(t, v, a, b)
			if body, ok := v.e.Object(testBucket, name); ok {
				var m lockMeta
				_ = json.Unmarshal(body, &m)
				aToken = m.Token
			}
			err := u.Unlock(context.Background(), certLock)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Unlock = %v, want %v", err, tt.want)
			}
			body, ok := v.e.Object(testBucket, name)
			switch {
			case tt.objLeft == "" && ok:
				t.Fatalf("lock object left: %s", body)
			case tt.objLeft == "foreign" && (!ok || !strings.Contains(string(body), `"foreign"`)):
				t.Fatalf("foreign lock touched: %s, %v", body, ok)
			case tt.objLeft == "a" && (!ok || !strings.Contains(string(body), aToken)):
				t.Fatalf("a's lock touched: %s, %v", body, ok)
			}
			// whoever unlocked can lock again, and a still can release
			_ = a.Unlock(context.Background(), certLock)
			if tt.objLeft != "foreign" {
				mustLock(t, u)
				if err := u.Unlock(context.Background(), certLock); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func mustLock(t *testing.T, s *Storage) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Lock(ctx, certLock); err != nil {
		t.Fatal(err)
	}
}

// A lock nobody refreshes is broken after LockStaleAfter, whichever way it
// went stale.
func TestStaleLockTakeover(t *testing.T) {
	name := "tls/locks/" + certLock + ".lock"
	now := time.Now()
	valid := func(updated time.Time) []byte {
		b, _ := json.Marshal(lockMeta{Token: "dead", Created: updated, Updated: updated, Holder: "gone", PID: 1})
		return b
	}
	tests := []struct {
		name    string
		body    []byte
		age     time.Duration // Last-Modified this far in the past, by OSS's clock
		fast    bool          // broken at once (by OSS's clock), else after watching it for LockStaleAfter
		wantWhy string
	}{
		{"written an hour ago by OSS's clock", valid(now.Add(-time.Hour)), time.Hour, true, "by OSS's clock"},
		{"just written, then abandoned", valid(now), 0, false, "unchanged"},
		{"holder's clock an hour ahead", valid(now.Add(time.Hour)), 0, false, "unchanged"},
		{"holder's clock an hour behind", valid(now.Add(-time.Hour)), 0, false, "unchanged"},
		{"not a lock body", []byte("garbage"), 0, false, "unchanged"},
		{"empty body", nil, 0, false, "unchanged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			v.clock.Set(-tt.age)
			v.e.PutObject(testBucket, name, tt.body, nil)
			v.clock.Set(0)
			s := v.storage(t, "tls", fastOpts())
			start := time.Now()
			mustLock(t, s)
			d := time.Since(start)
			if tt.fast && d >= tStale {
				t.Errorf("took %v to break a lock stale by OSS's clock", d)
			}
			if !tt.fast && d < tStale {
				t.Errorf("broke a lock after %v, before LockStaleAfter", d)
			}
			if d > tStale+2*time.Second {
				t.Errorf("took %v", d)
			}
			if m := v.lockObject(t, name); m.PID != os.Getpid() || m.Token == "dead" {
				t.Fatalf("lock after takeover = %+v", m)
			}
			if logs := v.logs.String(); !strings.Contains(logs, "breaking stale lock") || !strings.Contains(logs, tt.wantWhy) {
				t.Errorf("logs = %s", logs)
			}
			if err := s.Unlock(context.Background(), certLock); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// A holder whose refresher stopped (a hung process) loses its lock; its
// late Unlock reports that and leaves the successor's lock alone.
func TestStaleLockRefresherStopped(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	a, b := v.storage(t, "tls", fastOpts()), v.storage(t, "tls", fastOpts())
	mustLock(t, a)
	a.mu.Lock()
	h := a.held[certLock]
	a.mu.Unlock()
	h.halt() // the holder hangs: no more refreshes

	start := time.Now()
	mustLock(t, b)
	if d := time.Since(start); d < tStale {
		t.Errorf("lock broken after %v, before LockStaleAfter", d)
	}
	bToken := v.lockObject(t, "tls/locks/"+certLock+".lock").Token
	if err := a.Unlock(ctx, certLock); !errors.Is(err, ErrLockLost) {
		t.Fatalf("late Unlock = %v, want ErrLockLost", err)
	}
	if m := v.lockObject(t, "tls/locks/"+certLock+".lock"); m.Token != bToken {
		t.Fatal("late Unlock touched the successor's lock")
	}
	if err := b.Unlock(ctx, certLock); err != nil {
		t.Fatal(err)
	}
}

// Several waiters wait on a lock whose holder died; they judge it stale at
// about the same moment and all break it, so deletes cross creates: the
// confirmation keeps their critical sections apart, and every one of them
// gets the lock in turn.
func TestStaleTakeoverRace(t *testing.T) {
	o := Options{LockRefresh: 200 * time.Millisecond, LockStaleAfter: time.Second, LockPoll: tPoll, LockConfirmDelay: 250 * time.Millisecond}
	for round := range 2 {
		t.Run(strconv.Itoa(round), func(t *testing.T) {
			t.Parallel()
			v := newEnv(t)
			name := "tls/locks/" + certLock + ".lock"
			dead, _ := json.Marshal(lockMeta{Token: "dead", Created: time.Now(), Updated: time.Now(), Holder: "gone", PID: 1})
			v.e.PutObject(testBucket, name, dead, nil)
			const waiters = 6
			var (
				g    guard
				wg   sync.WaitGroup
				errs = make(chan error, 2*waiters)
			)
			for range waiters {
				s := v.storage(t, "tls", o)
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					if err := s.Lock(ctx, certLock); err != nil {
						errs <- err
						return
					}
					g.critical(30 * time.Millisecond)
					if err := s.Unlock(ctx, certLock); err != nil {
						errs <- err
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := g.overlaps.Load(); n != 0 {
				t.Errorf("%d overlapping holders\n%s", n, v.logs.String())
			}
			if g.counter != waiters {
				t.Errorf("counter = %d, want %d", g.counter, waiters)
			}
			t.Logf("stale lock breaks: %d, lost confirmations: %d",
				strings.Count(v.logs.String(), "breaking stale lock"), strings.Count(v.logs.String(), "our new lock was deleted"))
		})
	}
}

// The confirmation, step by step: a waiter creates the lock after the
// holder released it; before its confirmation, a late delete (by a waiter
// that had judged the old lock stale) removes it and that waiter's lock
// takes its place. The first waiter must notice and wait again.
func TestConfirmDetectsCrossedDelete(t *testing.T) {
	v := newEnv(t)
	ctx := context.Background()
	name := "tls/locks/" + certLock + ".lock"
	o := Options{LockRefresh: 200 * time.Millisecond, LockStaleAfter: 2 * time.Second, LockPoll: tPoll, LockConfirmDelay: 400 * time.Millisecond}
	s := v.storage(t, "tls", o)
	c := v.client(t)
	put := func(token string) {
		b, _ := json.Marshal(lockMeta{Token: token, Created: time.Now(), Updated: time.Now(), Holder: "other", PID: 1})
		v.e.PutObject(testBucket, name, b, nil)
	}
	del := func() {
		if _, err := c.DeleteObject(ctx, &oss.DeleteObjectRequest{Bucket: oss.Ptr(testBucket), Key: oss.Ptr(name)}); err != nil {
			t.Fatal(err)
		}
	}
	put("first")
	done := make(chan error, 1)
	go func() { done <- s.Lock(ctx, certLock) }()
	time.Sleep(100 * time.Millisecond) // s has found the lock held
	del()                              // the holder releases

	// s creates its lock; swap it for another before s confirms
	deadline := time.Now().Add(5 * time.Second)
	for {
		if b, ok := v.e.Object(testBucket, name); ok && !strings.Contains(string(b), `"first"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiter never created its lock")
		}
		time.Sleep(time.Millisecond)
	}
	del()
	put("crossed")
	select {
	case err := <-done:
		t.Fatalf("Lock returned (%v) although its lock was replaced before confirmation", err)
	case <-time.After(o.LockConfirmDelay + 300*time.Millisecond):
	}
	if m := v.lockObject(t, name); m.Token != "crossed" {
		t.Fatalf("the other waiter's lock was touched: %+v", m)
	}
	del() // the other waiter finishes
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return after the lock was released")
	}
	if m := v.lockObject(t, name); m.PID != os.Getpid() {
		t.Fatalf("lock = %+v", m)
	}
	if !strings.Contains(v.logs.String(), "our new lock was deleted") {
		t.Errorf("logs = %s", v.logs)
	}
	if err := s.Unlock(ctx, certLock); err != nil {
		t.Fatal(err)
	}
}

// --- across processes ---

// helperMain is the body of a helper process (TestMain). Environment:
// OSSSTORAGE_ADDR (emulator), OSSSTORAGE_MODE (order, hold). It prints
// READY, waits for a line on stdin, then:
//   - order: takes the lock, "orders" the certificate unless it exists,
//     appends "<pid> wrote|found <acquired ns> <released ns>" to a log
//     object, unlocks, prints DONE;
//   - hold: takes the lock, prints LOCKED, and keeps it (refreshing) until
//     killed or told to stop on stdin.
func helperMain() int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	client, err := newClient(os.Getenv("OSSSTORAGE_ADDR"), testSK)
	if err != nil {
		return fail(err)
	}
	o := fastOpts()
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	s := New(client, testBucket, "tls", o)
	fmt.Println("READY")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		return fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Lock(ctx, certLock); err != nil {
		return fail(err)
	}
	acquired := time.Now()
	switch os.Getenv("OSSSTORAGE_MODE") {
	case "hold":
		fmt.Println("LOCKED")
		_, _ = in.ReadString('\n')
	case "order":
		const cert = "certificates/ca/example.com/example.com.crt"
		action := "found"
		if !s.Exists(ctx, cert) {
			time.Sleep(300 * time.Millisecond) // the ACME order
			if err := s.Store(ctx, cert, []byte(fmt.Sprintf("cert from pid %d", os.Getpid()))); err != nil {
				return fail(err)
			}
			action = "wrote"
		}
		log, err := s.Load(ctx, "order.log")
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(err)
		}
		log = fmt.Appendf(log, "%d %s %d %d\n", os.Getpid(), action, acquired.UnixNano(), time.Now().UnixNano())
		if err := s.Store(ctx, "order.log", log); err != nil {
			return fail(err)
		}
	}
	if err := s.Unlock(ctx, certLock); err != nil {
		return fail(err)
	}
	fmt.Println("DONE")
	return 0
}

// helper is a running helper process.
type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stderr *testkit.Buffer
	exited chan error
}

func startHelper(t *testing.T, v *env, mode string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "OSSSTORAGE_HELPER=1", "OSSSTORAGE_ADDR="+v.addr, "OSSSTORAGE_MODE="+mode)
	h := &helper{cmd: cmd, lines: make(chan string, 8), stderr: &testkit.Buffer{}, exited: make(chan error, 1)}
	cmd.Stderr = h.stderr
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		h.exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-h.exited
		h.exited <- nil
	})
	return h
}

// expect waits for the helper to print line.
func (h *helper) expect(t *testing.T, line string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case got, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper %d exited before %q; stderr:\n%s", h.cmd.Process.Pid, line, h.stderr)
			}
			if got == line {
				return
			}
		case <-timeout:
			t.Fatalf("helper %d: no %q; stderr:\n%s", h.cmd.Process.Pid, line, h.stderr)
		}
	}
}

func (h *helper) send(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(h.stdin, "GO\n"); err != nil {
		t.Fatal(err)
	}
}

// wait waits for the helper to exit and checks it succeeded.
func (h *helper) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-h.exited:
		h.exited <- err
		if err != nil {
			t.Fatalf("helper %d: %v; stderr:\n%s", h.cmd.Process.Pid, err, h.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper %d did not exit", h.cmd.Process.Pid)
	}
}

// Three processes race to "order" the same certificate: exactly one orders
// it, the others find it, and their critical sections do not overlap.
func TestLockAcrossProcesses(t *testing.T) {
	v := newEnv(t)
	const procs = 3
	var hs []*helper
	for range procs {
		hs = append(hs, startHelper(t, v, "order"))
	}
	for _, h := range hs {
		h.expect(t, "READY")
	}
	start := time.Now()
	for _, h := range hs {
		h.send(t)
	}
	for _, h := range hs {
		h.wait(t)
	}
	t.Logf("%d processes done in %v", procs, time.Since(start))

	type entry struct {
		pid               int
		action            string
		acquired, release int64
	}
	var entries []entry
	for _, line := range strings.Split(strings.TrimSpace(string(v.object(t, "tls/order.log"))), "\n") {
		var e entry
		if _, err := fmt.Sscanf(line, "%d %s %d %d", &e.pid, &e.action, &e.acquired, &e.release); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	if len(entries) != procs {
		t.Fatalf("log has %d entries, want %d:\n%s", len(entries), procs, v.object(t, "tls/order.log"))
	}
	writers, pids := 0, map[int]bool{}
	for i, e := range entries {
		pids[e.pid] = true
		if e.action == "wrote" {
			writers++
			if got, want := string(v.object(t, "tls/certificates/ca/example.com/example.com.crt")), fmt.Sprintf("cert from pid %d", e.pid); got != want {
				t.Errorf("certificate = %q, want %q", got, want)
			}
		}
		for _, f := range entries[:i] {
			if e.acquired < f.release && f.acquired < e.release {
				t.Errorf("pids %d and %d held the lock at the same time", e.pid, f.pid)
			}
		}
	}
	if writers != 1 || len(pids) != procs || pids[os.Getpid()] {
		t.Errorf("%d writers among pids %v, want exactly 1 among %d helper processes", writers, pids, procs)
	}
	if _, ok := v.e.Object(testBucket, "tls/locks/"+certLock+".lock"); ok {
		t.Error("lock object left behind")
	}
}

// A helper process holds the lock: it stays held well past LockStaleAfter
// while the process lives (its refresher works across processes), and is
// broken after LockStaleAfter once the process is killed without
// unlocking.
func TestStaleLockAfterHolderProcessDies(t *testing.T) {
	v := newEnv(t)
	h := startHelper(t, v, "hold")
	h.expect(t, "READY")
	h.send(t)
	h.expect(t, "LOCKED")
	name := "tls/locks/" + certLock + ".lock"
	before := v.lockObject(t, name)
	if before.PID != h.cmd.Process.Pid {
		t.Fatalf("lock held by pid %d, want helper %d", before.PID, h.cmd.Process.Pid)
	}

	s := v.storage(t, "tls", fastOpts())
	ctx, cancel := context.WithTimeout(context.Background(), 2*tStale)
	err := s.Lock(ctx, certLock)
	cancel()
	if err != context.DeadlineExceeded {
		t.Fatalf("Lock while a live process holds it = %v, want DeadlineExceeded", err)
	}
	if after := v.lockObject(t, name); after.Token != before.Token || !after.Updated.After(before.Updated) {
		t.Fatalf("holder's lock not refreshed: before %+v, after %+v", before, after)
	}

	if err := h.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-h.exited
	h.exited <- nil
	killed := time.Now()
	mustLock(t, s)
	d := time.Since(killed)
	t.Logf("lock of a killed holder broken %v after the kill", d)
	if d < tStale || d > tStale+3*time.Second {
		t.Errorf("lock broken %v after the holder died; LockStaleAfter is %v", d, tStale)
	}
	if m := v.lockObject(t, name); m.PID != os.Getpid() {
		t.Errorf("lock now held by pid %d, want %d", m.PID, os.Getpid())
	}
	if !strings.Contains(v.logs.String(), "breaking stale lock") {
		t.Errorf("logs = %s", v.logs)
	}
	if err := s.Unlock(context.Background(), certLock); err != nil {
		t.Fatal(err)
	}
}
