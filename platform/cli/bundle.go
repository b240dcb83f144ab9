package cli

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/registry"
)

// sdkModule is the module a go-binary must link.
const sdkModule = "github.com/sluice-serve/sluice"

// bundleOptions are `code push`'s flags about the bundle.
type bundleOptions struct {
	format   string        // "": by what PATH is
	manifest string        // a file to read the manifest from, instead of describe
	timeout  time.Duration // of describe
	// importPath, for a python-project: MODULE:ATTR of the application
	// its manifest describes (python -m sluice describe, in the project's
	// environment); appName names that application ("": the SDK's default).
	importPath, appName string
}

// pushBundle is what `code push` uploads.
type pushBundle struct {
	format   string
	manifest json.RawMessage
	image    string
	files    []artifactFile
}

// prepareBundle checks what PATH is against its format, refusing it with
// the reason, and gathers its files and manifest. A go-binary must be a
// linux/amd64 ELF executable built with the SDK that answers describe
// --json, run here (the registry may not be able to run it) within
// opts.timeout; a python-project a directory with a pyproject.toml or a
// requirements*.txt; an image a reference with a tag or a digest.
func prepareBundle(ctx context.Context, path string, opts bundleOptions, env Env) (*pushBundle, error) {
	b := &pushBundle{format: opts.format}
	st, statErr := os.Stat(path)
	if b.format == "" {
		switch {
		case statErr != nil:
			return nil, fmt.Errorf("%w (for an image reference, give --format image)", statErr)
		case st.IsDir():
			b.format = registry.FormatPythonProject
		default:
			b.format = registry.FormatGoBinary
		}
	}
	if opts.manifest != "" {
		m, err := os.ReadFile(opts.manifest)
		if err != nil {
			return nil, fmt.Errorf("--manifest: %w", err)
		}
		if b.manifest, err = registry.CompactManifest(m); err != nil {
			return nil, fmt.Errorf("--manifest %s: %w", opts.manifest, err)
		}
	}
	switch b.format {
	case registry.FormatGoBinary:
		if statErr != nil {
			return nil, statErr
		}
		if st.IsDir() {
			return nil, fmt.Errorf("%s is a directory; format %s is one file, the binary (a project directory is --format %s)", path, registry.FormatGoBinary, registry.FormatPythonProject)
		}
		if err := checkGoBinary(path); err != nil {
			return nil, err
		}
		if b.manifest == nil {
			m, err := describeBinary(ctx, path, opts.timeout)
			if err != nil {
				return nil, err
			}
			b.manifest = m
		}
		files, err := scanArtifact(path, nil)
		if err != nil {
			return nil, err
		}
		b.files = files
	case registry.FormatPythonProject:
		if statErr != nil {
			return nil, statErr
		}
		if !st.IsDir() {
			return nil, fmt.Errorf("%s is a file; format %s is a directory with a pyproject.toml or a requirements*.txt", path, registry.FormatPythonProject)
		}
		files, err := scanArtifact(path, skipPythonJunk(path))
		if err != nil {
			return nil, err
		}
		var listed []registry.File
		for _, f := range files {
			listed = append(listed, registry.File{Path: f.rel})
		}
		if !registry.HasPythonProjectFile(listed) {
			return nil, fmt.Errorf("%s has no pyproject.toml or requirements*.txt at its root: not a %s", path, registry.FormatPythonProject)
		}
		b.files = files
		if b.manifest == nil && opts.importPath != "" {
			m, err := describePython(ctx, files, opts.importPath, opts.appName, opts.timeout, env)
			if err != nil {
				return nil, err
			}
			b.manifest = m
		}
	case registry.FormatImage:
		ref, err := registry.ParseImageRef(path)
		if err != nil {
			return nil, err
		}
		if ref.Digest == "" {
			fmt.Fprintf(env.Stderr, "sluice: %s names a tag, which can move; a digest (@sha256:...) pins the image\n", path)
		}
		b.image = ref.String()
	default:
		return nil, usageError("--format %q: want one of %s", b.format, strings.Join(registry.BundleFormats, ", "))
	}
	return b, nil
}

// checkGoBinary refuses what is not a linux/amd64 Go executable that links
// the SDK, saying what it is instead.
func checkGoBinary(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	head := make([]byte, 64)
	n, err := io.ReadFull(f, head)
	f.Close()
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return err
	}
	info, biErr := buildinfo.ReadFile(path)
	if err := registry.CheckGoBinaryHeader(head[:n]); err != nil {
		if biErr == nil {
			return fmt.Errorf("%s: %w (Go build for %s/%s)", path, err, setting(info, "GOOS"), setting(info, "GOARCH"))
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	if biErr != nil {
		return fmt.Errorf("%s: not a Go binary (%v); format %s is a binary built with the Sluice SDK", path, biErr, registry.FormatGoBinary)
	}
	if goos, goarch := setting(info, "GOOS"), setting(info, "GOARCH"); goos != "linux" || goarch != "amd64" {
		return fmt.Errorf("%s: a Go binary for %s/%s, want linux/amd64", path, goos, goarch)
	}
	if info.Main.Path != sdkModule && !linksModule(info, sdkModule) {
		return fmt.Errorf("%s: a Go binary of %s that does not link the Sluice SDK (%s)", path, info.Main.Path, sdkModule)
	}
	return nil
}

func setting(info *buildinfo.BuildInfo, key string) string {
	for _, s := range info.Settings {
		if s.Key == key {
			return s.Value
		}
	}
	return "?"
}

func linksModule(info *buildinfo.BuildInfo, path string) bool {
	for _, d := range info.Deps {
		if d.Path == path {
			return true
		}
	}
	return false
}

// describeBinary runs `BINARY describe --json` in an empty directory,
// with no input, for at most timeout, and returns the JSON object it
// printed, compacted.
func describeBinary(ctx context.Context, path string, timeout time.Duration) (json.RawMessage, error) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		return nil, fmt.Errorf("this machine (%s/%s) cannot run a linux/amd64 binary to read its manifest: run `%s describe --json > manifest.json` where it runs and push with --manifest manifest.json",
			runtime.GOOS, runtime.GOARCH, filepath.Base(path))
	}
	abs, err := filepath.Abs(path) // a bare name would be looked up in $PATH
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "sluice-describe-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, abs, "describe", "--json")
	cmd.Dir = dir
	stdout, stderr := &capped{max: registry.MaxManifest}, &capped{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = time.Second // a child that keeps the pipes open does not hold the push
	runErr := cmd.Run()
	what := fmt.Sprintf("%s describe --json", filepath.Base(path))
	printed := func() string { // its first lines
		out := strings.TrimSpace(strings.TrimSpace(string(stdout.b)) + "\n" + strings.TrimSpace(string(stderr.b)))
		if out == "" {
			return "nothing"
		}
		if lines := strings.SplitN(out, "\n", 4); len(lines) > 3 {
			out = strings.Join(lines[:3], "\n") + "..."
		}
		if len(out) > 200 {
			out = out[:200] + "..."
		}
		return strconv.Quote(out)
	}
	var exit *exec.ExitError
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("%s did not answer within %s and was stopped (it printed %s): is it built with a Sluice SDK that has describe?", what, timeout, printed())
	case errors.As(runErr, &exit):
		return nil, fmt.Errorf("%s exited with status %d; it printed %s: is it built with a Sluice SDK that has describe?", what, exit.ExitCode(), printed())
	case runErr != nil:
		return nil, fmt.Errorf("cannot run %s: %w", what, runErr)
	case stdout.over:
		return nil, fmt.Errorf("%s printed more than %d bytes", what, registry.MaxManifest)
	}
	m, err := registry.CompactManifest(stdout.b)
	if err != nil || m == nil {
		return nil, fmt.Errorf("%s printed no JSON object: it printed %s", what, printed())
	}
	return m, nil
}

// capped keeps the first max bytes written to it and notes whether more
// came; it never fails a write, so the writer is not killed by a pipe.
type capped struct {
	b    []byte
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - len(c.b)
	if len(p) > room {
		c.over = true
		c.b = append(c.b, p[:max(room, 0)]...)
	} else {
		c.b = append(c.b, p...)
	}
	return len(p), nil
}

// skipPythonJunk leaves out of the python-project at root what is never
// its source: version control, tools' caches, bytecode, and virtual
// environments (a directory with a pyvenv.cfg).
func skipPythonJunk(root string) func(rel string, d fs.DirEntry) bool {
	return func(rel string, d fs.DirEntry) bool {
		if !d.IsDir() {
			return strings.HasSuffix(d.Name(), ".pyc")
		}
		switch d.Name() {
		case ".git", ".hg", "__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache":
			return true
		}
		_, err := os.Stat(filepath.Join(root, rel, "pyvenv.cfg"))
		return err == nil
	}
}
