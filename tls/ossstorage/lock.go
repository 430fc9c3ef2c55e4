package ossstorage

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/aliyun/alibabacloud-oss-go-sdk-v2/oss"
	"github.com/caddyserver/certmagic"
)

// lockMeta is the JSON body of a lock object.
type lockMeta struct {
	Token   string    `json:"token"`   // random, per acquisition
	Created time.Time `json:"created"` // holder's clock
	Updated time.Time `json:"updated"` // holder's clock, rewritten every LockRefresh
	Holder  string    `json:"holder"`  // hostname
	PID     int       `json:"pid"`
}

// lockState is a lock object as read.
type lockState struct {
	meta         lockMeta
	valid        bool   // the body parsed and has a token
	sig          string // ETag, or the body: changes with every refresh
	lastModified time.Time
	serverNow    time.Time // the response's Date: OSS's clock
}

// observation is what a waiter last saw of a lock and since when (by its
// monotonic clock).
type observation struct {
	sig   string
	since time.Time
}

// gate serializes the goroutines of one process that want the same lock,
// so that at most one of them holds it (Unlock names only the lock) and the
// others wait without polling OSS. refs counts the gate's holder and
// waiters; the gate is dropped when it reaches zero.
type gate struct {
	ch   chan struct{}
	refs int
}

// heldLock is a lock this Storage holds in OSS.
type heldLock struct {
	key   string
	token string
	gate  *gate
	stop  chan struct{} // closed by halt
	done  chan struct{} // closed when the refresher has returned
	once  sync.Once
}

// halt stops the refresher and waits until it has returned, so that no
// refresh is in flight afterwards.
func (h *heldLock) halt() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// httpDateResolution is the granularity of Date and Last-Modified.
const httpDateResolution = time.Second

// lockKey is the object name of a lock.
func (s *Storage) lockKey(name string) string {
	return s.objectKey("locks/" + certmagic.StorageKeys.Safe(name) + ".lock")
}

// Lock acquires the named lock, blocking until it is obtained or ctx is
// done (then it returns ctx.Err()). The lock is released with Unlock.
//
// Algorithm. The lock is the object <prefix>/locks/<name>.lock, created by
// a PutObject with x-oss-forbid-overwrite: true, which OSS performs
// atomically: exactly one of several concurrent creators succeeds, the
// others get 409 FileAlreadyExists. The body is JSON: a random token,
// created and updated times, hostname and pid. While held, a goroutine
// re-reads the lock every LockRefresh and, if the token is still ours,
// rewrites it with a new updated time (a plain overwrite). A waiter reads
// the lock after each failed create and, if it is not stale, waits
// LockPoll (jittered by ±50%) and tries again. A lock is stale when
//
//   - OSS's own clock says it has not been written for LockStaleAfter (the
//     response's Date minus the object's Last-Modified, plus one second for
//     the resolution of HTTP dates; both are OSS's clock, so skew between
//     gateways does not matter; without a Date header, the holder's
//     updated time is compared with the waiter's clock instead), or
//   - the waiter itself has seen it unchanged (same ETag) for
//     LockStaleAfter by its monotonic clock, which also covers a holder
//     whose clock runs ahead or a lock body that is not ours.
//
// A waiter deletes a stale lock and tries the atomic create again. As
// DeleteObject is unconditional, waiters that read the same stale lock may
// all delete it, and a late delete can remove the lock that another waiter
// (one that broke it too, or one that merely polled at the right moment)
// has just created in its place. So a create that succeeds after at least
// one failed create in the same Lock call is confirmed: the creator pauses
// LockConfirmDelay and re-reads the lock; if the token is no longer its
// own, its lock was deleted and someone else's stands, so it goes back to
// waiting. Only an uncontended acquisition (the very first create
// succeeds) skips the pause; contended ones, where another gateway has
// usually just done the work, pay LockConfirmDelay once.
//
// Residual race (documented, not solved: OSS has no conditional delete):
//
//   - A delete that lands more than LockConfirmDelay after the read that
//     judged the lock stale (a waiter paused between the two) can still
//     remove a lock whose creator has confirmed it.
//   - A newcomer whose very first create succeeds skips the confirmation;
//     if that create lands in the round trip between another waiter's
//     read of a stale lock and its delete (the stale lock having just been
//     deleted by a third), the newcomer's lock is deleted while it works.
//   - A holder cut off from OSS for LockStaleAfter loses its lock while
//     still working, and its next refresh (a read, then an overwrite) can,
//     in the instant between the two, overwrite a successor's lock.
//
// In each case two holders overlap; the loser notices on its next refresh
// (or at Unlock, which then returns ErrLockLost) and logs an error. All of
// them need a holder already declared dead, as with certmagic's
// FileStorage, whose documentation accepts the same trade-off; callers
// must tolerate a rare overlap by re-checking their work under the lock
// (certmagic does: it looks for the certificate in storage before
// ordering, and a duplicate order is harmless).
//
// Within one process, goroutines wanting the same name on the same Storage
// wait on an in-process gate first, so at most one of them is in OSS.
func (s *Storage) Lock(ctx context.Context, name string) error {
	_, err := s.lock(ctx, name, true)
	return err
}

// TryLock is Lock without waiting for a live holder: it reports false if
// the lock is held (a stale lock is still broken and taken). certmagic uses
// it to let one gateway of the fleet fetch ACME renewal info.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	return s.lock(ctx, name, false)
}

// lock is Lock (wait) or TryLock.
func (s *Storage) lock(ctx context.Context, name string, wait bool) (bool, error) {
	g, ok, err := s.enterGate(ctx, name, wait)
	if err != nil || !ok {
		return false, err
	}
	got, err := s.acquire(ctx, name, g, wait)
	if !got {
		s.leaveGate(name, g)
	}
	return got, err
}

// acquire takes the lock in OSS (see Lock).
func (s *Storage) acquire(ctx context.Context, name string, g *gate, wait bool) (bool, error) {
	key := s.lockKey(name)
	token := crand.Text()
	log := s.log.With("lock", name)
	var (
		contended bool // a create of ours has failed: confirm a successful one
		obs       observation
		quick     int // consecutive retries without a pause
		attempts  int
	)
	for {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		attempts++
		if !wait && attempts > 3 {
			return false, nil
		}
		now := time.Now()
		meta := lockMeta{Token: token, Created: now, Updated: now, Holder: s.holder, PID: s.pid}
		err := s.putLock(ctx, key, meta, true)
		if err != nil && !isAlreadyExists(err) {
			// the put may have applied although it reported an error
			s.releaseIfOurs(key, token)
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			return false, s.errorf("lock", name, err)
		}
		if err != nil {
			contended = true
			// Held. Read it: it may even be ours, if the SDK retried a
			// create that had applied and got 409 for the retry.
			var st lockState
			st, err = s.readLock(ctx, key)
			switch {
			case isNotFound(err):
				// released, or broken as stale, in between: create again
				if quick++; quick > 3 {
					quick = 0
					if err := s.pause(ctx); err != nil {
						return false, err
					}
				}
				continue
			case err != nil:
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				return false, s.errorf("lock", name, err)
			case !st.valid || st.meta.Token != token:
				if reason := s.staleness(st, &obs, time.Now()); reason != "" {
					log.Warn("breaking stale lock", "reason", reason, "holder", st.meta.Holder, "pid", st.meta.PID, "updated", st.meta.Updated)
					if err := s.deleteObject(ctx, key); err != nil {
						if ctx.Err() != nil {
							return false, ctx.Err()
						}
						return false, s.errorf("lock", name, err)
					}
					continue
				}
				if !wait {
					return false, nil
				}
				quick = 0
				if err := s.pause(ctx); err != nil {
					return false, err
				}
				continue
			}
			meta = st.meta
		}
		// Created (or found ours).
		if contended {
			ok, err := s.confirm(ctx, key, token)
			if err != nil {
				s.releaseIfOurs(key, token)
				if ctx.Err() != nil {
					return false, ctx.Err()
				}
				return false, s.errorf("lock", name, err)
			}
			if !ok {
				log.Warn("our new lock was deleted by a waiter breaking an older one; waiting again")
				if !wait {
					return false, nil
				}
				if err := s.pause(ctx); err != nil {
					return false, err
				}
				continue
			}
		}
		s.hold(name, key, g, meta)
		return true, nil
	}
}

// staleness returns why st is stale, or "" if it is not (see Lock). obs is
// updated with what was seen.
func (s *Storage) staleness(st lockState, obs *observation, now time.Time) string {
	if !st.serverNow.IsZero() && !st.lastModified.IsZero() {
		if age := st.serverNow.Sub(st.lastModified); age > s.o.LockStaleAfter+httpDateResolution {
			return fmt.Sprintf("last written %s ago by OSS's clock", age)
		}
	} else if st.valid {
		ref := st.meta.Updated
		if ref.IsZero() {
			ref = st.meta.Created
		}
		if age := now.Sub(ref); !ref.IsZero() && age > s.o.LockStaleAfter {
			return fmt.Sprintf("updated %s ago by the holder's clock", age)
		}
	}
	if st.sig != obs.sig || obs.since.IsZero() {
		*obs = observation{sig: st.sig, since: now}
		return ""
	}
	if d := now.Sub(obs.since); d > s.o.LockStaleAfter {
		return fmt.Sprintf("unchanged for %s", d.Round(time.Millisecond))
	}
	return ""
}

// confirm waits LockConfirmDelay and reports whether the lock still carries
// token.
func (s *Storage) confirm(ctx context.Context, key, token string) (bool, error) {
	if err := sleep(ctx, s.o.LockConfirmDelay); err != nil {
		return false, err
	}
	st, err := s.readLock(ctx, key)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.valid && st.meta.Token == token, nil
}

// pause waits LockPoll, jittered uniformly by ±50%, or until ctx is done.
func (s *Storage) pause(ctx context.Context) error {
	p := int64(s.o.LockPoll)
	return sleep(ctx, time.Duration(p/2+rand.Int64N(p+1)))
}

// sleep waits d or until ctx is done (then it returns ctx.Err()).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// putLock writes a lock object; exclusive sets x-oss-forbid-overwrite.
func (s *Storage) putLock(ctx context.Context, key string, meta lockMeta, exclusive bool) error {
	body, err := json.Marshal(meta)
	if err != nil {
		return err
	}
	req := &oss.PutObjectRequest{
		Bucket:      oss.Ptr(s.bucket),
		Key:         oss.Ptr(key),
		Body:        bytes.NewReader(body),
		ContentType: oss.Ptr("application/json"),
		Acl:         oss.ObjectACLPrivate,
	}
	if exclusive {
		req.ForbidOverwrite = oss.Ptr("true")
	}
	_, err = s.client.PutObject(ctx, req)
	return err
}

// maxLockBody bounds what is read of a lock object.
const maxLockBody = 64 << 10

// readLock reads a lock object.
func (s *Storage) readLock(ctx context.Context, key string) (lockState, error) {
	res, err := s.client.GetObject(ctx, &oss.GetObjectRequest{Bucket: oss.Ptr(s.bucket), Key: oss.Ptr(key)})
	if err != nil {
		return lockState{}, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxLockBody))
	if err != nil {
		return lockState{}, err
	}
	st := lockState{sig: oss.ToString(res.ETag)}
	if st.sig == "" {
		st.sig = string(body)
	}
	if json.Unmarshal(body, &st.meta) == nil && st.meta.Token != "" {
		st.valid = true
	}
	if res.LastModified != nil {
		st.lastModified = *res.LastModified
	}
	if t, err := http.ParseTime(res.Headers.Get("Date")); err == nil {
		st.serverNow = t
	}
	return st, nil
}

// releaseIfOurs deletes the lock if it carries token, best effort, for the
// error paths of Lock.
func (s *Storage) releaseIfOurs(key, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := s.readLock(ctx, key)
	if err == nil && st.valid && st.meta.Token == token {
		_ = s.deleteObject(ctx, key)
	}
}

// hold records a lock acquired in OSS and starts its refresher.
func (s *Storage) hold(name, key string, g *gate, meta lockMeta) {
	h := &heldLock{key: key, token: meta.Token, gate: g, stop: make(chan struct{}), done: make(chan struct{})}
	s.mu.Lock()
	s.held[name] = h
	s.mu.Unlock()
	go s.keepFresh(name, h, meta)
}

// keepFresh refreshes a held lock every LockRefresh until Unlock stops it
// or the lock turns out to be lost. A failed refresh is retried at the next
// tick. It never cancels a request in flight: Unlock waits for it, so that
// a late refresh cannot re-create the lock after Unlock deleted it.
func (s *Storage) keepFresh(name string, h *heldLock, meta lockMeta) {
	defer close(h.done)
	t := time.NewTicker(s.o.LockRefresh)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.o.LockStaleAfter/2)
		lost, err := s.refresh(ctx, h, &meta)
		cancel()
		if lost != "" {
			s.log.Error("lock lost while held; mutual exclusion may have been violated", "lock", name, "reason", lost)
			return
		}
		if err != nil {
			s.log.Warn("refreshing lock failed; retrying", "lock", name, "err", compact(err))
		}
	}
}

// refresh rewrites the lock with a new updated time if it is still ours;
// lost says why it is not.
func (s *Storage) refresh(ctx context.Context, h *heldLock, meta *lockMeta) (lost string, err error) {
	st, err := s.readLock(ctx, h.key)
	if isNotFound(err) {
		return "lock object deleted", nil
	}
	if err != nil {
		return "", err
	}
	if !st.valid || st.meta.Token != h.token {
		return fmt.Sprintf("taken over by %s pid %d", st.meta.Holder, st.meta.PID), nil
	}
	meta.Updated = time.Now()
	return "", s.putLock(ctx, h.key, *meta, false)
}

// Unlock releases a lock taken with Lock or TryLock: it stops the
// refresher, then deletes the lock object if it still carries our token.
// It returns an error wrapping ErrNotLocked for a lock this Storage does
// not hold, and one wrapping ErrLockLost if the lock object is gone or
// belongs to another holder (which is left alone). Either way the lock is
// no longer held by this Storage afterwards.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	h := s.held[name]
	delete(s.held, name)
	s.mu.Unlock()
	if h == nil {
		return fmt.Errorf("oss storage %s: unlock %q: %w", s, name, ErrNotLocked)
	}
	defer s.leaveGate(name, h.gate)
	h.halt()

	st, err := s.readLock(ctx, h.key)
	switch {
	case isNotFound(err):
		return fmt.Errorf("oss storage %s: unlock %q: %w: the lock object is gone", s, name, ErrLockLost)
	case err != nil:
		return s.errorf("unlock", name, err)
	case !st.valid || st.meta.Token != h.token:
		return fmt.Errorf("oss storage %s: unlock %q: %w: now held by %s pid %d", s, name, ErrLockLost, st.meta.Holder, st.meta.PID)
	}
	if err := s.deleteObject(ctx, h.key); err != nil {
		return s.errorf("unlock", name, err)
	}
	return nil
}

// enterGate takes the in-process gate of name: waiting for it (until ctx is
// done) or, without wait, only if it is free.
func (s *Storage) enterGate(ctx context.Context, name string, wait bool) (*gate, bool, error) {
	s.mu.Lock()
	g := s.gates[name]
	if g == nil {
		g = &gate{ch: make(chan struct{}, 1)}
		s.gates[name] = g
	}
	g.refs++
	s.mu.Unlock()
	if !wait {
		select {
		case g.ch <- struct{}{}:
			return g, true, nil
		default:
			s.dropGate(name, g)
			return nil, false, nil
		}
	}
	select {
	case g.ch <- struct{}{}:
		return g, true, nil
	case <-ctx.Done():
		s.dropGate(name, g)
		return nil, false, ctx.Err()
	}
}

// leaveGate releases a gate taken with enterGate.
func (s *Storage) leaveGate(name string, g *gate) {
	<-g.ch
	s.dropGate(name, g)
}

// dropGate drops one reference to g.
func (s *Storage) dropGate(name string, g *gate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g.refs--; g.refs == 0 && s.gates[name] == g {
		delete(s.gates, name)
	}
}
