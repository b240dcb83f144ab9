package registry

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-serve/sluice/streams"
)

// Code bundles are user code as an artifact: the platform runs replicas
// from a version of one. They live beside models, on the same store (under
// code/) and events topic (keyed code/<name>), with the same guarantees,
// and keep the manifest of handlers and types the code describes itself
// with.

// The formats of a code bundle.
const (
	// FormatGoBinary is one linux/amd64 ELF executable built with the Go
	// SDK; its manifest is what `BINARY describe --json` prints.
	FormatGoBinary = "go-binary"
	// FormatPythonProject is a directory with a pyproject.toml or a
	// requirements*.txt at its root; its manifest is what `python -m
	// sluice describe` prints in its environment (platform/code.PythonEnv).
	FormatPythonProject = "python-project"
	// FormatImage is a container image reference for Kubernetes: no files
	// (stored; no runner yet).
	FormatImage = "image"
)

// BundleFormats lists the formats, in the order help texts show them.
var BundleFormats = []string{FormatGoBinary, FormatPythonProject, FormatImage}

// MaxManifest bounds a bundle version's manifest: every event carries the
// bundle's whole state, manifests included.
const MaxManifest = 64 << 10

// Bundle is a code bundle with its versions and aliases.
type Bundle = Set[BundleVersion]

// BundleVersion is one published version of a code bundle.
type BundleVersion struct {
	Bundle  string `json:"bundle"`
	Version string `json:"version"`
	Format  string `json:"format"`
	// Manifest is the JSON object the code describes itself with (a Go
	// binary's `describe --json`), compacted.
	Manifest json.RawMessage `json:"manifest,omitempty"`
	Image    string          `json:"image,omitempty"` // FormatImage: the reference
	Files    []File          `json:"files"`
	Size     int64           `json:"size"`
	Created  time.Time       `json:"created"`
}

func (v BundleVersion) number() string          { return v.Version }
func (BundleVersion) kind() Kind                { return KindCode }
func (v BundleVersion) files() []File           { return v.Files }
func (BundleVersion) labels() map[string]string { return nil }

// BundleUpload describes a code bundle version to publish. Its number is
// always assigned: a bundle's versions are numbers, so NAME@X reads as a
// version when X is a number and as an alias otherwise.
type BundleUpload struct {
	Name     string
	Format   string
	Manifest json.RawMessage // a JSON object; required for FormatGoBinary
	Image    string          // FormatImage only
	Files    []File          // sizes required; SHA-256 checked when given
	Alias    string          // also point this alias at the version
}

// PublishBundle publishes a code bundle version as Publish does a model's:
// verified streaming, visible only once complete, nothing left on failure.
// A go-binary's ELF header is checked before anything is stored.
func (r *Registry) PublishBundle(ctx context.Context, u BundleUpload, content io.Reader) (*BundleVersion, error) {
	manifest, err := validBundleUpload(&u)
	if err != nil {
		return nil, err
	}
	if u.Format == FormatGoBinary {
		if content, err = checkHead(content, u.Files[0]); err != nil {
			return nil, err
		}
	}
	p := publication{name: u.Name, alias: u.Alias, files: u.Files}
	return publish(ctx, r, &r.code, p, content, func(version string, files []File, size int64, created time.Time) BundleVersion {
		return BundleVersion{Bundle: u.Name, Version: version, Format: u.Format, Manifest: manifest, Image: u.Image,
			Files: files, Size: size, Created: created}
	})
}

// checkHead reads a go-binary's ELF header off content and checks it,
// returning a reader of the whole content.
func checkHead(content io.Reader, f File) (io.Reader, error) {
	head := make([]byte, min(f.Size, elfHeaderSize))
	n, err := io.ReadFull(content, head)
	if err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "file %s: declared %d bytes, received %d", f.Path, f.Size, n)
	}
	if err := CheckGoBinaryHeader(head); err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "%s: %v", f.Path, err)
	}
	return io.MultiReader(bytes.NewReader(head), content), nil
}

// Bundles returns every code bundle, sorted by name.
func (r *Registry) Bundles() []*Bundle {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.code.sorted()
}

// Bundle returns one code bundle.
func (r *Registry) Bundle(name string) (*Bundle, error) { return get(r, &r.code, name) }

// ResolveBundle resolves NAME (the highest version), NAME@VERSION or
// NAME@ALIAS to a version: its files, format and manifest.
func (r *Registry) ResolveBundle(ref string) (*BundleVersion, error) {
	name, version := ParseBundleRef(ref)
	b, err := r.Bundle(name)
	if err != nil {
		return nil, err
	}
	return b.Lookup(version)
}

// ParseBundleRef splits NAME[@VERSION|@ALIAS] into a name and what
// Bundle.Lookup takes: a number, "@alias", or "" for the highest.
func ParseBundleRef(ref string) (name, version string) {
	name, sel, _ := strings.Cut(ref, "@")
	return name, BundleSelector(sel)
}

// BundleSelector turns a version or an alias, as a user writes either
// (no '@' needed: aliases are never numbers), into what Lookup takes.
func BundleSelector(s string) string {
	s = strings.TrimPrefix(s, "@")
	if _, err := strconv.Atoi(s); err == nil || s == "" {
		return s
	}
	return "@" + s
}

// OpenBundle streams one file of a code bundle version from the store.
func (r *Registry) OpenBundle(ctx context.Context, v *BundleVersion, f File) (io.ReadCloser, error) {
	return r.open(ctx, KindCode, v.Bundle, v.Version, f)
}

// SetBundleAlias points alias at a code bundle's version, moving it if set.
func (r *Registry) SetBundleAlias(ctx context.Context, name, alias, version string) (*Bundle, error) {
	return setAlias(ctx, r, &r.code, name, alias, BundleSelector(version))
}

// DeleteBundleVersion removes a code bundle's version, refused while an
// alias points at it unless force, as DeleteVersion does a model's.
func (r *Registry) DeleteBundleVersion(ctx context.Context, name, version string, force bool) (*Bundle, error) {
	return deleteVersion(ctx, r, &r.code, name, BundleSelector(version), force)
}

// validBundleUpload checks everything about a bundle upload that needs no
// state, and returns its manifest compacted.
func validBundleUpload(u *BundleUpload) (json.RawMessage, error) {
	if err := CheckBundleNames(u.Name, u.Alias); err != nil {
		return nil, err
	}
	if err := validFiles(u.Files); err != nil {
		return nil, err
	}
	manifest, err := CompactManifest(u.Manifest)
	if err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) (json.RawMessage, error) {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "format %s: %s", u.Format, fmt.Sprintf(format, args...))
	}
	if u.Format != FormatImage && u.Image != "" {
		return bad("an image reference is for format %s only", FormatImage)
	}
	switch u.Format {
	case FormatGoBinary:
		if len(u.Files) != 1 {
			return bad("one file, the binary; got %d", len(u.Files))
		}
		if manifest == nil {
			return bad("the manifest (the binary's `describe --json`) is required")
		}
	case FormatPythonProject:
		if !HasPythonProjectFile(u.Files) {
			return bad("no pyproject.toml or requirements*.txt at the project's root")
		}
	case FormatImage:
		if len(u.Files) != 0 {
			return bad("an image reference has no files; got %d", len(u.Files))
		}
		if _, err := ParseImageRef(u.Image); err != nil {
			return nil, err
		}
	default:
		return nil, streams.Errorf(streams.CodeInvalidArgument, "format %q: want one of %s", u.Format, strings.Join(BundleFormats, ", "))
	}
	return manifest, nil
}

// CheckBundleNames validates a code bundle name, and an alias when not
// empty, as a publish would.
func CheckBundleNames(name, alias string) error {
	if err := ValidName("code bundle name", name, maxModelName); err != nil {
		return err
	}
	if alias != "" {
		return validAlias(alias)
	}
	return nil
}

// CompactManifest checks a manifest is a JSON object within MaxManifest,
// and compacts it; an empty one is none.
func CompactManifest(m json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(m)) == 0 {
		return nil, nil
	}
	if len(m) > MaxManifest {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "manifest: %d bytes, over the limit of %d", len(m), MaxManifest)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m, &obj); err != nil || obj == nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "manifest: not a JSON object: %s", quoteStart(m))
	}
	var b bytes.Buffer
	if err := json.Compact(&b, m); err != nil {
		return nil, streams.Errorf(streams.CodeInvalidArgument, "manifest: %v", err)
	}
	return b.Bytes(), nil
}

// quoteStart quotes the first bytes of b for an error message.
func quoteStart(b []byte) string {
	const n = 120
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + "..."
	}
	return strconv.Quote(string(b))
}

// HasPythonProjectFile reports whether files has a pyproject.toml or a
// requirements*.txt at its root: what makes a directory a python-project.
func HasPythonProjectFile(files []File) bool {
	for _, f := range files {
		if f.Path == "pyproject.toml" {
			return true
		}
		if ok, _ := path.Match("requirements*.txt", f.Path); ok {
			return true
		}
	}
	return false
}

// elfHeaderSize is the size of an ELF64 file header.
const elfHeaderSize = 64

// CheckGoBinaryHeader checks the start of a file is the header of what
// format go-binary runs: a 64-bit little-endian ELF executable for
// x86-64 Linux. The error says what the file is instead.
func CheckGoBinaryHeader(head []byte) error {
	if len(head) < 4 || string(head[:4]) != elf.ELFMAG {
		what := "a plain file"
		if bytes.HasPrefix(head, []byte("#!")) {
			line, _, _ := bytes.Cut(head, []byte("\n"))
			what = "a script (" + strconv.Quote(string(line)) + ")"
		}
		return fmt.Errorf("not an ELF binary: %s; format %s is a linux/amd64 executable built with the Sluice SDK", what, FormatGoBinary)
	}
	if len(head) < 20 {
		return fmt.Errorf("a truncated ELF header (%d bytes)", len(head))
	}
	class, data, osabi := elf.Class(head[elf.EI_CLASS]), elf.Data(head[elf.EI_DATA]), elf.OSABI(head[elf.EI_OSABI])
	var machine elf.Machine
	var typ elf.Type
	switch data {
	case elf.ELFDATA2LSB:
		typ, machine = elf.Type(binary.LittleEndian.Uint16(head[16:])), elf.Machine(binary.LittleEndian.Uint16(head[18:]))
	case elf.ELFDATA2MSB:
		typ, machine = elf.Type(binary.BigEndian.Uint16(head[16:])), elf.Machine(binary.BigEndian.Uint16(head[18:]))
	}
	want := fmt.Sprintf("want linux/amd64 (%s, %s, %s)", elf.ELFCLASS64, elf.ELFDATA2LSB, elf.EM_X86_64)
	switch {
	case class != elf.ELFCLASS64 || data != elf.ELFDATA2LSB || machine != elf.EM_X86_64:
		return fmt.Errorf("an ELF binary for %s (%s, %s, %s), %s", archName(class, machine), class, data, machine, want)
	case osabi != elf.ELFOSABI_NONE && osabi != elf.ELFOSABI_LINUX:
		return fmt.Errorf("an x86-64 ELF binary for %s, want linux/amd64", osabi)
	case typ != elf.ET_EXEC && typ != elf.ET_DYN:
		return fmt.Errorf("an ELF %s, not an executable", typ)
	}
	return nil
}

// archName names an ELF machine as GOARCH would, where there is one.
func archName(class elf.Class, m elf.Machine) string {
	names := map[elf.Machine]string{elf.EM_X86_64: "amd64", elf.EM_386: "386", elf.EM_AARCH64: "arm64", elf.EM_ARM: "arm",
		elf.EM_RISCV: "riscv64", elf.EM_PPC64: "ppc64", elf.EM_S390: "s390x", elf.EM_MIPS: "mips", elf.EM_LOONGARCH: "loong64"}
	if n, ok := names[m]; ok {
		if m == elf.EM_RISCV && class == elf.ELFCLASS32 {
			return "riscv32"
		}
		return n
	}
	return m.String()
}

// ImageRef is a container image reference:
// [DOMAIN/]PATH[:TAG][@DIGEST], with a tag or a digest.
type ImageRef struct {
	Domain, Path, Tag, Digest string
}

func (i ImageRef) String() string {
	s := i.Path
	if i.Domain != "" {
		s = i.Domain + "/" + s
	}
	if i.Tag != "" {
		s += ":" + i.Tag
	}
	if i.Digest != "" {
		s += "@" + i.Digest
	}
	return s
}

// The grammar of github.com/distribution/reference, less IPv6 domains.
var (
	imageDomain    = regexp.MustCompile(`^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?$`)
	imageComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*$`)
	imageTag       = regexp.MustCompile(`^[\w][\w.-]{0,127}$`)
	imageDigest    = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}$`)
)

// maxImageName bounds the name (domain and path) of an image reference.
const maxImageName = 255

// ParseImageRef parses a container image reference. It must name a tag
// or a digest: a bare name would mean whatever :latest is when a node
// pulls it.
func ParseImageRef(s string) (ImageRef, error) {
	bad := func(why string) (ImageRef, error) {
		return ImageRef{}, streams.Errorf(streams.CodeInvalidArgument, "image reference %s: %s", strconv.Quote(s), why)
	}
	var ref ImageRef
	rest, digest, hasDigest := strings.Cut(s, "@")
	if hasDigest {
		if !imageDigest.MatchString(digest) {
			return bad("the digest is not ALGORITHM:HEX (sha256:...)")
		}
		ref.Digest = digest
	}
	// A tag follows the last ':' after the last '/' (a domain's port has
	// a '/' after it).
	if i := strings.LastIndexByte(rest, ':'); i > strings.LastIndexByte(rest, '/') {
		rest, ref.Tag = rest[:i], rest[i+1:]
		if !imageTag.MatchString(ref.Tag) {
			return bad("the tag is not 1 to 128 of letters, digits, '_', '.', '-' (not starting with '.' or '-')")
		}
	}
	if rest == "" {
		return bad("no image name")
	}
	if len(rest) > maxImageName {
		return bad(fmt.Sprintf("the name is %d bytes, over %d", len(rest), maxImageName))
	}
	if first, after, ok := strings.Cut(rest, "/"); ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		if !imageDomain.MatchString(first) {
			return bad("the registry host " + strconv.Quote(first) + " is not a host name with an optional port")
		}
		ref.Domain, rest = first, after
	}
	for _, c := range strings.Split(rest, "/") {
		if !imageComponent.MatchString(c) {
			return bad("path component " + strconv.Quote(c) + " is not lower-case letters and digits separated by '.', '_', '__' or '-'")
		}
	}
	ref.Path = rest
	if ref.Tag == "" && ref.Digest == "" {
		return bad("name a tag or, better, a digest (NAME:TAG, NAME@sha256:...): nothing else pins what nodes run")
	}
	return ref, nil
}
