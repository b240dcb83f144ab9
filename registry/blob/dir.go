package blob

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
)

const (
	// sidecarSuffix names the file beside each object that holds its SHA-256.
	sidecarSuffix = ".sha256"
	// tmpPrefix names the files a Put writes before it renames them into place.
	tmpPrefix = ".sluice-tmp-"
	// dirLockStripes bounds the per-key locks a Dir keeps.
	dirLockStripes = 64
	copyBufSize    = 1 << 20
)

// Dir is a Store on a local directory, for `sluice dev`. Key "a/b" is the
// file <root>/a/b and its SHA-256 is in <root>/a/b.sha256.
//
// Puts are atomic: an object is written to a temporary file in its own
// directory and renamed into place, so a half-written object is never
// visible. Objects are never changed in place, which lets Copy hard-link.
// Dir orders its own readers and writers; other processes writing the same
// directory concurrently are not coordinated with (a missing or stale-looking
// sidecar only costs a recomputation).
type Dir struct {
	root string
	// locks orders a key's sidecar and data renames against readers that
	// open the data and read the sidecar; never two held at once.
	locks [dirLockStripes]sync.RWMutex
}

var _ Store = (*Dir)(nil)

// NewDir returns a Dir rooted at root, creating the directory if needed.
func NewDir(root string) (*Dir, error) {
	if root == "" {
		return nil, errors.New("blob dir: empty root")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob dir %q: %w", root, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return nil, fmt.Errorf("blob dir: %w", err)
	}
	return &Dir{root: abs}, nil
}

// Root is the directory the store lives in.
func (d *Dir) Root() string { return d.root }

// Put writes r to key through a temporary file and renames it into place.
func (d *Dir) Put(ctx context.Context, key string, r io.Reader, size int64) (Info, error) {
	p, err := d.path(key)
	if err != nil {
		return Info{}, err
	}
	tmp, err := d.createTemp(p)
	if err != nil {
		return Info{}, fmt.Errorf("put %q: %w", key, err)
	}
	defer removeTemp(tmp)

	h := sha256.New()
	sr := newSizedReader(ctxReader{ctx: ctx, r: r}, size)
	n, err := io.CopyBuffer(io.MultiWriter(tmp, h), sr, make([]byte, copyBufSize))
	if err != nil {
		return Info{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := finishTemp(tmp); err != nil {
		return Info{}, fmt.Errorf("put %q: %w", key, err)
	}
	sum := hex.EncodeToString(h.Sum(nil))
	fi, err := os.Stat(tmp.Name())
	if err != nil {
		return Info{}, fmt.Errorf("put %q: %w", key, err)
	}
	if err := d.install(key, p, tmp.Name(), sum); err != nil {
		return Info{}, fmt.Errorf("put %q: %w", key, err)
	}
	return Info{Key: key, Size: n, SHA256: sum, Modified: fi.ModTime()}, nil
}

// Get opens key. Its SHA-256 comes from the sidecar, or is computed (and the
// sidecar written) when the sidecar is missing.
func (d *Dir) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	f, info, err := d.open(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	return &dirReader{ctx: ctx, f: f}, info, nil
}

// Stat describes key, computing its SHA-256 when the sidecar is missing.
func (d *Dir) Stat(ctx context.Context, key string) (Info, error) {
	f, info, err := d.open(ctx, key)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return info, nil
}

// Delete removes key and its sidecar; a missing key is not an error.
func (d *Dir) Delete(ctx context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete %q: %w", key, err)
	}
	mu := d.lock(key)
	mu.Lock()
	defer mu.Unlock()
	for _, name := range []string{p + sidecarSuffix, p} {
		if err := os.Remove(name); err != nil && !isNotExist(err) {
			return fmt.Errorf("delete %q: %w", key, err)
		}
	}
	return nil
}

// List walks the directory under prefix. SHA256 is filled from sidecars only;
// it is "" for an object without one (Stat computes it).
func (d *Dir) List(ctx context.Context, prefix string) ([]Info, error) {
	if err := validatePrefix(prefix); err != nil {
		return nil, err
	}
	start := d.root
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = filepath.Join(d.root, filepath.FromSlash(prefix[:i]))
	}
	infos := []Info{}
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if isNotExist(err) {
				return nil // gone since it was listed, or no such prefix
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.IsDir() {
			if p != start && reservedName(e.Name()) {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() || reservedName(e.Name()) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		fi, err := e.Info()
		if isNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		sum, _ := readSidecar(p + sidecarSuffix)
		infos = append(infos, Info{Key: key, Size: fi.Size(), SHA256: sum, Modified: fi.ModTime()})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %q: %w", prefix, err)
	}
	slices.SortFunc(infos, func(a, b Info) int { return strings.Compare(a.Key, b.Key) })
	return infos, nil
}

// Copy hard-links src to dst (objects are never changed in place), falling
// back to copying the bytes where the file system cannot link. A linked
// copy shares the source's modification time.
func (d *Dir) Copy(ctx context.Context, dst, src string) error {
	dp, err := d.path(dst)
	if err != nil {
		return err
	}
	sp, err := d.path(src)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	if err := d.copy(ctx, dst, dp, src, sp); err != nil {
		return fmt.Errorf("copy %q to %q: %w", src, dst, err)
	}
	return nil
}

func (d *Dir) copy(ctx context.Context, dst, dp, src, sp string) error {
	if err := os.MkdirAll(filepath.Dir(dp), 0o755); err != nil {
		return err
	}
	tmpName := filepath.Join(filepath.Dir(dp), tmpPrefix+rand.Text())
	defer os.Remove(tmpName) // a no-op once installed

	// Link (or open) the source and read its sidecar as one step against
	// a concurrent Put of src.
	mu := d.lock(src)
	mu.RLock()
	sum, _ := readSidecar(sp + sidecarSuffix)
	linkErr := os.Link(sp, tmpName)
	var f *os.File
	if linkErr != nil {
		var err error
		f, err = openObject(sp)
		if err != nil {
			mu.RUnlock()
			if errors.Is(err, ErrNotFound) {
				return fmt.Errorf("%w: %q", ErrNotFound, src)
			}
			return err
		}
	}
	mu.RUnlock()

	if linkErr != nil {
		defer f.Close()
		tmp, err := os.OpenFile(tmpName, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return err
		}
		defer tmp.Close()
		h := sha256.New()
		if _, err := io.CopyBuffer(io.MultiWriter(tmp, h), ctxReader{ctx: ctx, r: f}, make([]byte, copyBufSize)); err != nil {
			return err
		}
		if err := finishTemp(tmp); err != nil {
			return err
		}
		sum = hex.EncodeToString(h.Sum(nil))
	} else if sum == "" {
		var err error
		if sum, err = hashFile(ctx, tmpName); err != nil {
			return err
		}
	}
	return d.install(dst, dp, tmpName, sum)
}

// path maps a key to its file, rejecting keys that could leave the root or
// collide with the store's own files.
func (d *Dir) path(key string) (string, error) {
	if err := validateKey(key); err != nil {
		return "", err
	}
	for seg := range strings.SplitSeq(key, "/") {
		if reservedName(seg) {
			return "", fmt.Errorf("%w %q: segment %q is reserved (names starting with %q or ending in %q)",
				ErrInvalidKey, key, seg, tmpPrefix, sidecarSuffix)
		}
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

func reservedName(name string) bool {
	return strings.HasPrefix(name, tmpPrefix) || strings.HasSuffix(name, sidecarSuffix)
}

func (d *Dir) lock(key string) *sync.RWMutex {
	h := fnv.New32a()
	io.WriteString(h, key)
	return &d.locks[h.Sum32()%dirLockStripes]
}

func (d *Dir) createTemp(p string) (*os.File, error) {
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, tmpPrefix+"*")
}

// install moves a finished temporary file to p with sum as its sidecar. The
// old sidecar goes first, so a crash part-way leaves an object without a
// sidecar (its hash is recomputed), never one with a wrong sidecar.
func (d *Dir) install(key, p, tmpName, sum string) error {
	side, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return err
	}
	defer removeTemp(side)
	if _, err := io.WriteString(side, sum+"\n"); err != nil {
		return err
	}
	if err := finishTemp(side); err != nil {
		return err
	}

	mu := d.lock(key)
	mu.Lock()
	defer mu.Unlock()
	if err := os.Remove(p + sidecarSuffix); err != nil && !isNotExist(err) {
		return err
	}
	if err := os.Rename(tmpName, p); err != nil {
		return err
	}
	if err := os.Rename(side.Name(), p+sidecarSuffix); err != nil {
		return err
	}
	syncDir(filepath.Dir(p))
	return nil
}

// open opens key's data and finds its SHA-256.
func (d *Dir) open(ctx context.Context, key string) (*os.File, Info, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, Info{}, fmt.Errorf("open %q: %w", key, err)
	}
	mu := d.lock(key)
	mu.RLock()
	f, err := openObject(p)
	var sum string
	if err == nil {
		sum, _ = readSidecar(p + sidecarSuffix)
	}
	mu.RUnlock()
	if errors.Is(err, ErrNotFound) {
		return nil, Info{}, fmt.Errorf("%w: %q", ErrNotFound, key)
	}
	if err != nil {
		return nil, Info{}, fmt.Errorf("open %q: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Info{}, fmt.Errorf("open %q: %w", key, err)
	}
	if sum == "" {
		// The open file is immutable (writers rename over it), so its hash
		// is this object's even if a Put replaces the key meanwhile.
		if sum, err = hashReader(ctx, io.NewSectionReader(f, 0, fi.Size())); err != nil {
			f.Close()
			return nil, Info{}, fmt.Errorf("hash %q: %w", key, err)
		}
		d.saveSidecar(key, p, fi, sum)
	}
	return f, Info{Key: key, Size: fi.Size(), SHA256: sum, Modified: fi.ModTime()}, nil
}

// saveSidecar records a computed hash, if key still names the file that was
// hashed and no valid sidecar appeared meanwhile. Best effort: failing only costs
// another computation later.
func (d *Dir) saveSidecar(key, p string, hashed os.FileInfo, sum string) {
	side, err := os.CreateTemp(filepath.Dir(p), tmpPrefix+"*")
	if err != nil {
		return
	}
	defer removeTemp(side)
	if _, err := io.WriteString(side, sum+"\n"); err != nil || finishTemp(side) != nil {
		return
	}
	mu := d.lock(key)
	mu.Lock()
	defer mu.Unlock()
	cur, err := os.Stat(p)
	if err != nil || !os.SameFile(cur, hashed) {
		return
	}
	if _, err := readSidecar(p + sidecarSuffix); err == nil {
		return // a Put got there first
	}
	os.Rename(side.Name(), p+sidecarSuffix)
}

// openObject opens a stored object; ErrNotFound when there is no regular
// file at p.
func openObject(p string) (*os.File, error) {
	f, err := os.Open(p)
	if isNotExist(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, ErrNotFound
	}
	return f, nil
}

// readSidecar returns the hex digest stored at p, "" when it is missing or
// malformed.
func readSidecar(p string) (string, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	sum := strings.TrimSpace(string(b))
	if !isHexSHA256(sum) {
		return "", fmt.Errorf("malformed sidecar %s", p)
	}
	return sum, nil
}

func isHexSHA256(s string) bool {
	if len(s) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}

func hashFile(ctx context.Context, p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashReader(ctx, f)
}

func hashReader(ctx context.Context, r io.Reader) (string, error) {
	h := sha256.New()
	if _, err := io.CopyBuffer(h, ctxReader{ctx: ctx, r: r}, make([]byte, copyBufSize)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// finishTemp makes a temporary file's contents durable and readable by
// others, and closes it.
func finishTemp(f *os.File) error {
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// removeTemp discards a temporary file that was not renamed into place.
func removeTemp(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

func syncDir(dir string) {
	if f, err := os.Open(dir); err == nil {
		f.Sync()
		f.Close()
	}
}

// isNotExist also treats "a/b" under a file "a" (ENOTDIR) as missing.
func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// dirReader is the object stream Get returns; reads fail once ctx is done.
type dirReader struct {
	ctx context.Context
	f   *os.File
}

func (r *dirReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.f.Read(p)
}

func (r *dirReader) Close() error { return r.f.Close() }
