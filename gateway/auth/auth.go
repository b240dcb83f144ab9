// Package auth holds the gateway's bearer tokens: the token file (names,
// SHA-256 hashes of the tokens, scopes), its reloads, and the check of
// one credential against one scope. It knows nothing of the gateway's
// methods; the gateway's table maps each of them to a Scope.
package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"gopkg.in/yaml.v3"
)

// Scope is what a call needs, or what a token grants.
type Scope string

// The scopes. A token grants `infer:<app>` too: inference on that one
// application (its routes, its name and the registry models it serves).
const (
	Open        Scope = ""             // no credential: health
	Infer       Scope = "infer"        // inference on every application and model
	Read        Scope = "read"         // status, specs, listings, metadata, metrics
	Deploy      Scope = "deploy"       // deploy and delete applications
	ModelsWrite Scope = "models:write" // push, alias and delete versions of models and code bundles
	Admin       Scope = "admin"        // everything
)

// InferPrefix starts a scope of inference on one application.
const InferPrefix = "infer:"

var bits = map[Scope]uint8{Infer: 1, Read: 2, Deploy: 4, ModelsWrite: 8, Admin: 16}

// Identity is a token's holder and what it may do.
type Identity struct {
	Name  string
	bits  uint8
	apps  []string  // infer:<app>
	words [4]uint64 // the token's SHA-256
	grant []string  // as written, for messages
}

// Allows reports whether id may make a call needing scope; app is the
// application an inference reaches ("" when it reaches none known).
func (id *Identity) Allows(need Scope, app string) bool {
	if need == Open || id.bits&(bits[Admin]|bits[need]) != 0 {
		return true
	}
	return need == Infer && app != "" && slices.Contains(id.apps, app)
}

// grantScope adds one scope to id; false when it is not one of Sluice's.
func (id *Identity) grantScope(sc string) bool {
	switch b, ok := bits[Scope(sc)]; {
	case ok:
		id.bits |= b
	case strings.HasPrefix(sc, InferPrefix) && len(sc) > len(InferPrefix):
		id.apps = append(id.apps, sc[len(InferPrefix):])
	default:
		return false
	}
	return true
}

// Scopes are the scopes id was granted, as the file wrote them.
func (id *Identity) Scopes() []string { return slices.Clone(id.grant) }

// Set is one version of the token file.
type Set struct{ ids []Identity }

// Authenticate finds the identity of a token. Its hash is compared with
// every entry's, all of them, without a branch on the bytes: neither the
// time nor the order says which entry came near. (subtle's byte loop
// would do the same at a few times the cost with many tokens.)
func (s *Set) Authenticate(token string) (*Identity, bool) {
	sum := words(sha256.Sum256([]byte(token)))
	found := -1
	for i := range s.ids {
		h := &s.ids[i].words
		diff := (sum[0] ^ h[0]) | (sum[1] ^ h[1]) | (sum[2] ^ h[2]) | (sum[3] ^ h[3])
		equal := int(((diff | -diff) >> 63) ^ 1) // 1 when diff is 0
		found = subtle.ConstantTimeSelect(equal, i, found)
	}
	if found < 0 {
		return nil, false
	}
	return &s.ids[found], true
}

// words are a hash as four words, for a comparison without branches.
func words(h [sha256.Size]byte) (w [4]uint64) {
	for i := range w {
		w[i] = binary.LittleEndian.Uint64(h[8*i:])
	}
	return w
}

// Len is the number of tokens.
func (s *Set) Len() int { return len(s.ids) }

// File is the token file as written.
type File struct {
	Tokens []Token `yaml:"tokens"`
}

// Token is one entry of the file.
type Token struct {
	Name        string   `yaml:"name"`
	TokenSHA256 string   `yaml:"token_sha256"` // hex of the SHA-256 of the token; never the token
	Scopes      []string `yaml:"scopes"`
}

// Parse reads a token file strictly: an unknown field, a missing one, a
// hash that is not 64 hex digits, an unknown scope or a name or hash
// given twice is an error naming the line and the field.
func Parse(name string, data []byte) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", name, cleanYAML(err))
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	lines := entryLines(&root)
	s := &Set{}
	names, hashes := map[string]bool{}, map[string]bool{}
	for i, t := range f.Tokens {
		line := 0
		if i < len(lines) {
			line = lines[i]
		}
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("%s:%d: tokens[%d].%s: %s", name, line, i, field, fmt.Sprintf(format, args...))
		}
		if t.Name == "" {
			return nil, bad("name", "missing")
		}
		if names[t.Name] {
			return nil, bad("name", "%q is given twice", t.Name)
		}
		h, err := hex.DecodeString(t.TokenSHA256)
		if err != nil || len(h) != sha256.Size {
			return nil, bad("token_sha256", "want 64 hex digits, the SHA-256 of the token (printf %%s TOKEN | sha256sum), got %d characters", len(t.TokenSHA256))
		}
		key := strings.ToLower(t.TokenSHA256)
		if hashes[key] {
			return nil, bad("token_sha256", "the same token hash is given twice")
		}
		if len(t.Scopes) == 0 {
			return nil, bad("scopes", "missing: give at least one of infer, infer:<app>, read, deploy, models:write, admin")
		}
		id := Identity{Name: t.Name, grant: t.Scopes}
		id.words = words([sha256.Size]byte(h))
		for _, sc := range t.Scopes {
			if !id.grantScope(sc) {
				return nil, bad("scopes", "unknown scope %q (want infer, infer:<app>, read, deploy, models:write or admin)", sc)
			}
		}
		names[t.Name], hashes[key] = true, true
		s.ids = append(s.ids, id)
	}
	return s, nil
}

// entryLines are the lines of the entries of tokens:, in order.
func entryLines(root *yaml.Node) []int {
	if root.Kind != yaml.DocumentNode || len(root.Content) == 0 || root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == "tokens" && m.Content[i+1].Kind == yaml.SequenceNode {
			var lines []int
			for _, e := range m.Content[i+1].Content {
				lines = append(lines, e.Line)
			}
			return lines
		}
	}
	return nil
}

// cleanYAML drops yaml.v3's "yaml: unmarshal errors:" preamble and the Go
// type names from its messages: "line 3: field tokn not found".
func cleanYAML(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n  ")
	msg = strings.ReplaceAll(msg, "\n  ", "; ")
	for _, t := range []string{" in type auth.File", " in type auth.Token"} {
		msg = strings.ReplaceAll(msg, t, "")
	}
	return errors.New(msg)
}

// Keeper holds the tokens of one file, reloaded when it changes.
type Keeper struct {
	path string
	set  atomic.Pointer[Set]
	mu   sync.Mutex // guards mod
	mod  stamp
}

type stamp struct {
	at   time.Time
	size int64
}

// Load reads the token file at path; an error names the line and field.
func Load(path string) (*Keeper, error) {
	k := &Keeper{path: path}
	if _, err := k.Reload(); err != nil {
		return nil, err
	}
	return k, nil
}

// Tokens is the set in force.
func (k *Keeper) Tokens() *Set { return k.set.Load() }

// Path is the file's path.
func (k *Keeper) Path() string { return k.path }

// Reload reads the file again if it changed since the last read. On an
// error the tokens in force stay. changed reports a new set in force.
func (k *Keeper) Reload() (changed bool, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		return false, fmt.Errorf("auth file: %w", err)
	}
	st := stamp{fi.ModTime(), fi.Size()}
	if k.set.Load() != nil && st == k.mod {
		return false, nil
	}
	data, err := os.ReadFile(k.path)
	if err != nil {
		return false, fmt.Errorf("auth file: %w", err)
	}
	k.mod = st // a bad file is not read again until it changes
	s, err := Parse(k.path, data)
	if err != nil {
		return false, err
	}
	k.set.Store(s)
	return true, nil
}

// DefaultPoll is how often Watch looks at the file.
const DefaultPoll = 2 * time.Second

// Watch reloads the file when its modification time or size changes,
// looking every poll, until ctx ends. A file that does not parse is
// logged and the tokens in force stay.
func (k *Keeper) Watch(ctx context.Context, poll time.Duration, log *slog.Logger) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		switch changed, err := k.Reload(); {
		case err != nil:
			log.Error("auth file not reloaded; the previous tokens stay in force", "path", k.path, "err", err)
		case changed:
			log.Info("auth file reloaded", "path", k.path, "tokens", k.Tokens().Len())
		}
	}
}
