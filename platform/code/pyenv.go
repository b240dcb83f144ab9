package code

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	pysdk "github.com/sluice-serve/sluice/python"
	"github.com/sluice-serve/sluice/registry"
)

// DefaultPythonBuildTimeout bounds the preparation of one Python
// environment (venv creation and pip install), the first time a node
// runs a python-project bundle version.
const DefaultPythonBuildTimeout = 10 * time.Minute

// PythonEnvVar names the interpreter environments are built with
// (default python3 on $PATH); it must be Python 3.10 or later.
const PythonEnvVar = "SLUICE_PYTHON"

// ProjectSHA256 is a python-project bundle's identity, what its pin
// carries: the SHA-256 of its files' paths and SHA-256s, sorted by path.
func ProjectSHA256(files []registry.File) string {
	sorted := slices.Clone(files)
	slices.SortFunc(sorted, func(a, b registry.File) int { return strings.Compare(a.Path, b.Path) })
	h := sha256.New()
	for _, f := range sorted {
		fmt.Fprintf(h, "%s\x00%s\n", f.Path, f.SHA256)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// PythonEnv prepares the environments of python-project bundles, once per
// bundle content and SDK, under Dir/python/<sha256[:16]>-<sdk>/: project/
// (the bundle's files) and venv/ (a virtual environment whose path has the
// SDK the platform embeds, extracted once under Dir/python/sdk-<sdk>, with
// the SDK's requirements and the project's installed by pip). An
// environment is built in a temporary directory and renamed into place
// whole, so one in the cache is always complete; replicas of every
// application that run the same version share it.
type PythonEnv struct {
	Dir    string // the code cache
	Python string // the interpreter; default $SLUICE_PYTHON, else python3
	// Timeout bounds one build; default DefaultPythonBuildTimeout.
	Timeout time.Duration
}

// Env is a prepared environment.
type Env struct {
	Python  string // the venv's interpreter
	Project string // the bundle's files, the directory its modules import from
	Built   bool   // built by this call, not found in the cache
}

func (e PythonEnv) root() string { return filepath.Join(e.Dir, "python") }

func (e PythonEnv) interpreter() string {
	if e.Python != "" {
		return e.Python
	}
	if p := os.Getenv(PythonEnvVar); p != "" {
		return p
	}
	return "python3"
}

// Path is where the environment of the bundle of that identity is.
func (e PythonEnv) Path(sha string) string {
	return filepath.Join(e.root(), short16(sha)+"-"+pysdk.Version())
}

func short16(s string) string { return s[:min(len(s), 16)] }

// ErrPython is wrapped when no suitable interpreter is found.
var ErrPython = errors.New("no Python 3.10 or later")

// Get returns the environment of the bundle whose identity is sha,
// building it when it is not cached: fill writes the bundle's files into
// the directory it is given.
func (e PythonEnv) Get(ctx context.Context, sha string, fill func(ctx context.Context, dir string) error) (Env, error) {
	dst := e.Path(sha)
	env := Env{Python: filepath.Join(dst, "venv", "bin", "python"), Project: filepath.Join(dst, "project")}
	if _, err := os.Stat(filepath.Join(dst, ".ready")); err == nil {
		return env, nil
	}
	ctx, cancel := context.WithTimeout(ctx, cmpDur(e.Timeout, DefaultPythonBuildTimeout))
	defer cancel()
	py := e.interpreter()
	if out, err := exec.CommandContext(ctx, py, "-c", "import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)").CombinedOutput(); err != nil {
		return Env{}, fmt.Errorf("%w: %s (%s: set %s): %s", ErrPython, py, err, PythonEnvVar, bytes.TrimSpace(out))
	}
	sdk, err := e.sdk()
	if err != nil {
		return Env{}, err
	}
	tmp, err := os.MkdirTemp(e.root(), ".build-")
	if err != nil {
		return Env{}, err
	}
	defer os.RemoveAll(tmp)
	project := filepath.Join(tmp, "project")
	if err := os.MkdirAll(project, 0o755); err != nil {
		return Env{}, err
	}
	if err := fill(ctx, project); err != nil {
		return Env{}, err
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = tmp
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, tail(out))
		}
		return nil
	}
	venv := filepath.Join(tmp, "venv")
	if err := run(py, "-m", "venv", venv); err != nil {
		return Env{}, err
	}
	vpy := filepath.Join(venv, "bin", "python")
	site, err := exec.CommandContext(ctx, vpy, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").Output()
	if err != nil {
		return Env{}, fmt.Errorf("python environment: its site-packages: %w", err)
	}
	// The SDK by path: no build, no index; its place does not move.
	if err := os.WriteFile(filepath.Join(strings.TrimSpace(string(site)), "sluice-sdk.pth"), []byte(filepath.Join(sdk, "src")+"\n"), 0o644); err != nil {
		return Env{}, err
	}
	reqs, err := pysdk.Requirements()
	if err != nil {
		return Env{}, err
	}
	args := append([]string{"-m", "pip", "install", "-q"}, reqs...)
	matches, _ := filepath.Glob(filepath.Join(project, "requirements*.txt"))
	slices.Sort(matches)
	for _, m := range matches {
		req, extra, err := sdkRequirements(m)
		if err != nil {
			return Env{}, fmt.Errorf("python environment: %w", err)
		}
		args = append(append(args, "-r", req), extra...)
	}
	if len(matches) == 0 {
		if _, err := os.Stat(filepath.Join(project, "pyproject.toml")); err == nil {
			args = append(args, project) // the project's own package and its dependencies
		}
	}
	if err := run(vpy, args...); err != nil {
		return Env{}, fmt.Errorf("python environment: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".ready"), nil, 0o644); err != nil {
		return Env{}, err
	}
	if err := os.Rename(tmp, dst); err != nil {
		if _, serr := os.Stat(filepath.Join(dst, ".ready")); serr == nil {
			return env, nil // another replica built it first
		}
		return Env{}, err
	}
	env.Built = true
	return env, nil
}

// sdk extracts the embedded SDK once and returns its directory.
func (e PythonEnv) sdk() (string, error) {
	dst := filepath.Join(e.root(), "sdk-"+pysdk.Version())
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(e.root(), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(e.root(), ".sdk-")
	if err != nil {
		return "", err
	}
	if err := pysdk.Extract(tmp); err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.RemoveAll(tmp)
		if _, serr := os.Stat(dst); serr != nil {
			return "", err
		}
	}
	return dst, nil
}

func cmpDur(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// tail is the end of a command's output, for an error.
func tail(out []byte) string {
	s := strings.TrimSpace(string(out))
	if len(s) > 600 {
		s = "..." + s[len(s)-600:]
	}
	return s
}

// sdkLine is a requirement naming the SDK itself: sluice, with extras, a
// version or markers (case as pip folds it).
var sdkLine = regexp.MustCompile(`(?i)^\s*sluice\s*(?:\[([^\]]*)\])?\s*(?:[<>=!~;@].*)?$`)

// sdkRequirements reads a project's requirements file. The SDK is never
// installed from an index (it is embedded, and an index's "sluice" is
// not it): a line naming it (`sluice[ingress]`) is left out, in a copy
// beside the file, and its extras' requirements are returned to install
// instead. Without such a line the file is used as it is.
func sdkRequirements(path string) (file string, extra []string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", nil, err
	}
	lines := strings.Split(string(b), "\n")
	found := false
	for i, l := range lines {
		m := sdkLine.FindStringSubmatch(strings.TrimSuffix(l, "\r"))
		if m == nil {
			continue
		}
		found = true
		lines[i] = "# " + l + " (the SDK is the platform's)"
		for _, name := range strings.Split(m[1], ",") {
			if name = strings.TrimSpace(name); name == "" {
				continue
			}
			reqs, ok, err := pysdk.ExtraRequirements(name)
			if err != nil {
				return "", nil, err
			}
			if !ok {
				return "", nil, fmt.Errorf("%s:%d: sluice[%s]: the SDK has no extra %q", filepath.Base(path), i+1, m[1], name)
			}
			extra = append(extra, reqs...)
		}
	}
	if !found {
		return path, nil, nil
	}
	copyPath := filepath.Join(filepath.Dir(path), ".sluice-"+filepath.Base(path))
	return copyPath, extra, os.WriteFile(copyPath, []byte(strings.Join(lines, "\n")), 0o644)
}
