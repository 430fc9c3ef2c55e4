package cache

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func sizeName(n int) string {
	switch {
	case n >= 1<<20:
		return strconv.Itoa(n>>20) + "MiB"
	case n >= 1<<10:
		return strconv.Itoa(n>>10) + "KiB"
	}
	return strconv.Itoa(n) + "B"
}

// benchCache stores one object of size and returns its key; memory picks
// the tier that serves its hits.
func benchCache(b *testing.B, memory bool, size int) (*Cache, Key) {
	o := Options{MaxSize: 1 << 30}
	if memory {
		o.Memory, o.MemoryObjectSize = 256<<20, 1<<20
	}
	c := openT(b, o)
	k := key("bench-" + sizeName(size))
	fillAndWait(b, c, k, newFetcher(payload(size, 50), `"b"`))
	ob, ok := c.Lookup(k) // the first hit verifies / promotes
	if !ok {
		b.Fatal("miss")
	}
	_, inMem := ob.Bytes()
	_ = ob.Close()
	if inMem != memory {
		b.Fatalf("object in memory %v, want %v", inMem, memory)
	}
	return c, k
}

// BenchmarkHit is a whole hit: Lookup, WriteTo a writer that discards
// (io.Discard: a memory body is one Write; a file body is read through an
// 8 KiB buffer, so this measures the worst, user-space path), Close.
func BenchmarkHit(b *testing.B) {
	for _, memory := range []bool{true, false} {
		tier := map[bool]string{true: "memory", false: "disk"}[memory]
		for _, size := range []int{1 << 10, 256 << 10, 64 << 20} {
			if memory && size > 1<<20 {
				continue
			}
			b.Run(tier+"/"+sizeName(size), func(b *testing.B) {
				c, k := benchCache(b, memory, size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					o, ok := c.Lookup(k)
					if !ok {
						b.Fatal("miss")
					}
					if _, err := o.WriteTo(io.Discard); err != nil {
						b.Fatal(err)
					}
					_ = o.Close()
				}
			})
		}
	}
}

// BenchmarkHitParallel is memory and disk hits of a 1 KiB object from
// every core at once (lock contention on the hit path).
func BenchmarkHitParallel(b *testing.B) {
	for _, memory := range []bool{true, false} {
		b.Run(map[bool]string{true: "memory", false: "disk"}[memory]+"/1KiB", func(b *testing.B) {
			c, k := benchCache(b, memory, 1<<10)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					o, ok := c.Lookup(k)
					if !ok {
						b.Error("miss")
						return
					}
					_, _ = o.WriteTo(io.Discard)
					_ = o.Close()
				}
			})
		})
	}
}

// BenchmarkHitTCP sends disk hits over a loopback TCP connection: "sendfile"
// is WriteTo (the *io.LimitedReader over the *os.File reaches
// TCPConn.ReadFrom), "copy" hides the reader's type so the same bytes go
// through a 32 KiB user-space buffer. syscr/op is the process's read-type
// syscalls per hit from /proc/self/io (sendfile counts as one per call);
// the draining side's reads (1 MiB buffer) are in both.
func BenchmarkHitTCP(b *testing.B) {
	for _, size := range []int{256 << 10, 64 << 20} {
		for _, mode := range []string{"sendfile", "copy"} {
			b.Run(sizeName(size)+"/"+mode, func(b *testing.B) {
				c, k := benchCache(b, false, size)
				server, drained := loopbackPair(b)
				buf := make([]byte, 32<<10)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				before := syscr(b)
				var sent int64
				for b.Loop() {
					o, ok := c.Lookup(k)
					if !ok {
						b.Fatal("miss")
					}
					var n int64
					var err error
					if mode == "sendfile" {
						n, err = o.WriteTo(server)
					} else {
						r, rerr := o.Reader(0, o.Size())
						if rerr != nil {
							b.Fatal(rerr)
						}
						n, err = io.CopyBuffer(struct{ io.Writer }{server}, struct{ io.Reader }{r}, buf)
					}
					if err != nil {
						b.Fatal(err)
					}
					sent += n
					_ = o.Close()
				}
				for drained.Load() < sent {
					// the last bytes are still in the socket buffers
				}
				b.ReportMetric(float64(syscr(b)-before)/float64(b.N), "syscr/op")
			})
		}
	}
}

// loopbackPair returns the server side of a 127.0.0.1 TCP connection whose
// client side is drained (and counted) by a goroutine.
func loopbackPair(b *testing.B) (*net.TCPConn, *atomic.Int64) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		b.Fatal(err)
	}
	var drained atomic.Int64
	var wg sync.WaitGroup
	wg.Go(func() {
		buf := make([]byte, 1<<20)
		for {
			n, err := client.Read(buf)
			drained.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
	b.Cleanup(func() {
		_ = server.Close()
		_ = client.Close()
		wg.Wait()
	})
	return server.(*net.TCPConn), &drained
}

// syscr reads this process's read-type syscall count.
func syscr(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "syscr: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no syscr in /proc/self/io")
	return 0
}

// BenchmarkFill is a miss of a new key with w concurrent clients doing what
// the proxy does: Lookup, and on a miss Fill and read the whole body. A
// client that comes after the entry is stored hits instead; fetches/op
// shows the coalescing (1 = every concurrent miss shared one fetch).
func BenchmarkFill(b *testing.B) {
	for _, size := range []int{256 << 10, 4 << 20} {
		for _, waiters := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/waiters=%d", sizeName(size), waiters), func(b *testing.B) {
				c := openT(b, Options{MaxSize: 512 << 20, Memory: 64 << 20})
				data := payload(size, 51)
				var fetches atomic.Int64
				fetch := func(context.Context) (Meta, io.ReadCloser, bool, error) {
					fetches.Add(1)
					return okMeta(int64(size), `"f"`), io.NopCloser(bytes.NewReader(data)), true, nil
				}
				b.SetBytes(int64(size * waiters))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					i++
					k := key("fill-" + strconv.Itoa(i))
					var wg sync.WaitGroup
					for range waiters {
						wg.Go(func() {
							if o, ok := c.Lookup(k); ok {
								_, _ = o.WriteTo(io.Discard)
								_ = o.Close()
								return
							}
							fl := c.Fill(k, fetch)
							defer fl.Close()
							if _, err := fl.Wait(context.Background()); err != nil {
								b.Error(err)
								return
							}
							if n, err := io.Copy(io.Discard, fl); err != nil || n != int64(size) {
								b.Errorf("%d bytes, %v", n, err)
							}
						})
					}
					wg.Wait()
				}
				b.ReportMetric(float64(fetches.Load())/float64(i), "fetches/op")
			})
		}
	}
}
