package cache

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The crash tests run this test binary again as a child that fills the
// cache in a directory and is SIGKILLed, then open the directory.
const (
	crashDirEnv  = "OSSGW_CACHE_CRASH_DIR"
	crashModeEnv = "OSSGW_CACHE_CRASH_MODE"
)

// crashSize is the body size of key i in the child's fills.
func crashSize(mode string, i int) int {
	if mode == "midway" {
		if i < 2 {
			return 100 << 10
		}
		return 64 << 20
	}
	return []int{4 << 20, 64 << 10, 1 << 20}[i%3]
}

// TestCrashChild is the child: "midway" stores two small objects, then
// starts a 64 MiB fill that holds after 16 MiB and says so; "loop" stores
// objects back to back until killed, saying which are complete.
func TestCrashChild(t *testing.T) {
	dir, mode := os.Getenv(crashDirEnv), os.Getenv(crashModeEnv)
	if dir == "" {
		t.Skip("the child process of TestCrashMidWrite")
	}
	c, err := Open(Options{Dir: dir, MaxSize: 1 << 30, Memory: 1 << 20})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for i := 0; ; i++ {
		f := newFetcher(payload(crashSize(mode, i), uint64(i)), `"`+strconv.Itoa(i)+`"`)
		if mode == "midway" && i == 2 {
			f.holdAt = 16 << 20
			f.gate = nil // never opens
			fl := c.Fill(key(strconv.Itoa(i)), func(ctx context.Context) (Meta, io.ReadCloser, bool, error) {
				m, b, ok, err := f.fetch(ctx)
				return m, &announcingBody{testBody: b.(*testBody)}, ok, err
			})
			_, _ = fl.Wait(context.Background())
			select {}
		}
		fillAndWait(t, c, key(strconv.Itoa(i)), f)
		fmt.Printf("stored %d\n", i)
	}
}

// announcingBody prints "midway" when the fill asks for the bytes past
// holdAt: everything before them has been written to the temporary file.
type announcingBody struct {
	*testBody
	said bool
}

func (b *announcingBody) Read(p []byte) (int, error) {
	if b.pos >= b.holdAt && !b.said {
		b.said = true
		fmt.Println("midway")
	}
	return b.testBody.Read(p)
}

func TestCrashMidWrite(t *testing.T) {
	if os.Getenv(crashDirEnv) != "" {
		t.Skip("in the child")
	}
	for _, mode := range []string{"midway", "loop"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashModeEnv+"="+mode)
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() }) // if the test fails before its kill
			stored := map[int]bool{}
			lines := bufio.NewScanner(out)
			for lines.Scan() {
				line := lines.Text()
				if n, ok := strings.CutPrefix(line, "stored "); ok {
					i, _ := strconv.Atoi(n)
					stored[i] = true
				}
				if line == "midway" || mode == "loop" && len(stored) >= 4 {
					break
				}
			}
			if mode == "loop" {
				time.Sleep(time.Duration(time.Now().UnixNano()%20) * time.Millisecond) // somewhere in the next fill
			}
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, out)
			_ = cmd.Wait()
			if len(stored) < 2 {
				t.Fatalf("the child stored %d objects before the kill", len(stored))
			}
			var tmp int
			if top, err := os.ReadDir(dir); err == nil {
				for _, de := range top {
					if strings.HasPrefix(de.Name(), tmpPrefix) {
						tmp++
					}
				}
			}
			if mode == "midway" && tmp == 0 {
				t.Fatal("no temporary file: the kill was not mid-write")
			}

			c := openT(t, Options{Dir: dir})
			if top, _ := os.ReadDir(dir); true {
				for _, de := range top {
					if strings.HasPrefix(de.Name(), tmpPrefix) {
						t.Errorf("Open left %s", de.Name())
					}
				}
			}
			hits := 0
			for i := range len(stored) + 3 {
				o, ok := c.Lookup(key(strconv.Itoa(i)))
				if !ok {
					if stored[i] {
						t.Errorf("object %d was complete before the kill but is gone", i)
					}
					continue
				}
				hits++
				var b bytes.Buffer
				if _, err := o.WriteTo(&b); err != nil {
					t.Errorf("object %d: %v", i, err)
				}
				if !bytes.Equal(b.Bytes(), payload(crashSize(mode, i), uint64(i))) {
					t.Errorf("object %d: a wrong body after the crash", i)
				}
				_ = o.Close()
			}
			if mode == "midway" {
				if hits != 2 {
					t.Fatalf("%d entries after the crash, want the 2 complete ones", hits)
				}
			}
			t.Logf("%s: %d complete before the kill, %d temporary files, %d entries after Open", mode, len(stored), tmp, hits)
		})
	}
}
