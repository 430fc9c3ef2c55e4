//go:build !unix

package cache

import (
	"fmt"
	"os"
	"path/filepath"
)

// lockDir only creates Dir/.lock where flock is not available.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, ".lock")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: opening %s: %w", p, err)
	}
	return f, nil
}
