package code

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sluice-serve/sluice/platform/spec"
)

// Cache keeps bundle binaries on a node's disk by content: DIR/<sha256>/bin.
// A binary is written to a temporary directory while its SHA-256 is
// computed, checked against the pin, and renamed into place whole, so a
// binary in the cache is always complete and the one deployed; replicas
// of every application that run the same version share it.
type Cache struct{ Dir string }

// BinaryName is the file a cached bundle's binary is kept as.
const BinaryName = "bin"

// Path is where the pinned binary is once cached.
func (c Cache) Path(pin *spec.BundlePin) string {
	return filepath.Join(c.Dir, pin.SHA256, BinaryName)
}

// ErrChecksum is wrapped when a downloaded binary is not the one pinned.
var ErrChecksum = errors.New("checksum mismatch")

// Get returns the path of the pinned binary, downloading it with open
// when it is not cached yet. A local binary (`sluice dev`) is run where
// it is, once its content is checked against the pin.
func (c Cache) Get(ctx context.Context, pin *spec.BundlePin, open func(context.Context) (io.ReadCloser, error)) (string, error) {
	if pin.Path != "" {
		sum, err := FileSHA256(pin.Path)
		if err != nil {
			return "", err
		}
		if sum != pin.SHA256 {
			return "", fmt.Errorf("%s changed since it was deployed (sha256 %s, deployed %s): %w", pin.Path, short(sum), short(pin.SHA256), ErrChecksum)
		}
		return filepath.Abs(pin.Path)
	}
	dst := c.Path(pin)
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(c.Dir, ".fetch-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	rc, err := open(ctx)
	if err != nil {
		return "", fmt.Errorf("bundle %s@%s: %w", pin.Name, pin.Version, err)
	}
	defer rc.Close()
	f, err := os.OpenFile(filepath.Join(tmp, BinaryName), os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), rc)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("bundle %s@%s: download: %w", pin.Name, pin.Version, err)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != pin.SHA256 {
		return "", fmt.Errorf("bundle %s@%s: sha256 %s, pinned %s: %w", pin.Name, pin.Version, short(sum), short(pin.SHA256), ErrChecksum)
	}
	if err := os.Rename(tmp, filepath.Dir(dst)); err != nil {
		if _, serr := os.Stat(dst); serr == nil {
			return dst, nil // another replica cached it first
		}
		return "", err
	}
	return dst, nil
}
