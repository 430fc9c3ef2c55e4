package ossemu

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentUse hammers one emulator from many goroutines (requests,
// fixture puts, faults, log reads) so -race can prove it safe.
func TestConcurrentUse(t *testing.T) {
	e, addr := startEmulator(t, Options{Region: testRegion})
	e.CreateBucket("rw", PublicReadWrite)
	client := &http.Client{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				key := fmt.Sprintf("k%d", i%4)
				url := "http://" + addr + "/rw/" + key
				switch (g + i) % 5 {
				case 0:
					req, _ := http.NewRequest(http.MethodPut, url, strings.NewReader(strings.Repeat("x", i)))
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				case 1:
					if resp, err := client.Get(url); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
				case 2:
					e.PutObject("rw", key, []byte("fixture"), nil)
				case 3:
					remove := e.AddFault(Fault{Key: key, Status: 503, Times: 1})
					_ = e.Requests()
					remove()
				case 4:
					req, _ := http.NewRequest(http.MethodDelete, url, nil)
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
					e.CreateBucket("rw", PublicReadWrite)
				}
			}
		}()
	}
	wg.Wait()
	if n := len(e.Requests()); n == 0 {
		t.Fatal("no requests logged")
	}
	e.ResetRequests()
	if n := len(e.Requests()); n != 0 {
		t.Errorf("after ResetRequests: %d entries", n)
	}
}
