package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	gohash "hash"
	"log/slog"
	"math"
	"math/big"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// JSON Web Tokens. A bearer that looks like a JWT (LooksLikeJWT) is
// verified against the public keys of a JWKS file, which an identity
// provider publishes and an operator mounts (reloaded on change like the
// token file): a signature by one of its keys, with an asymmetric
// algorithm the key fits (RS256/384/512, ES256/384; never none, never an
// HMAC: a public key is no secret), the issuer and the audience the
// gateway was given, and exp/nbf with a small leeway. The token's
// subject is the identity; its scopes come from a claim.
//
// A token verified once is kept, by its SHA-256, until it expires (a
// bounded cache belonging to the key set in force: a reload that drops a
// key drops what it verified), so a client sending the same token on
// every call pays one hash and one map lookup, not a signature check.

// Why a JWT is refused: the error's text is what a 401 says, naming the
// reason and nothing of the gateway's configuration.
var (
	ErrMalformed    = errors.New("the token is not a well-formed JWT")
	ErrAlgorithm    = errors.New("the token's algorithm is not accepted (RS256, RS384, RS512, ES256, ES384)")
	ErrUnknownKey   = errors.New("the token's signing key (kid) is not in the key set")
	ErrSignature    = errors.New("the token's signature does not verify")
	ErrExpired      = errors.New("the token has expired")
	ErrNotYetValid  = errors.New("the token is not valid yet (nbf)")
	ErrIssuer       = errors.New("the token's issuer is not accepted")
	ErrAudience     = errors.New("the token's audience is not accepted")
	ErrMissingClaim = errors.New("the token lacks a required claim")
)

// JWTConfig is what the gateway accepts of a JWT.
type JWTConfig struct {
	JWKSFile string // the JSON Web Key Set (RFC 7517) of the issuer's public keys
	Issuer   string // the iss every token must carry (required)
	Audience string // a value the token's aud must hold (required)
	// ScopeClaim names the claim holding the scopes: a space-separated
	// string or an array of strings. Empty: scope, then scp, then scopes.
	ScopeClaim string
	// NameClaim names the claim holding the identity's name (default sub).
	NameClaim string
	// Leeway is the clock skew allowed on exp and nbf (default 30s).
	Leeway time.Duration
	// CacheSize bounds the verified tokens kept (default 10000).
	CacheSize int
}

// Defaults of JWTConfig.
const (
	DefaultJWTLeeway    = 30 * time.Second
	DefaultJWTCacheSize = 10000
)

// Validate names the first missing or contradictory field.
func (c JWTConfig) Validate() error {
	switch {
	case c.JWKSFile == "":
		return errors.New("jwks file: missing")
	case c.Issuer == "":
		return errors.New("jwt issuer: missing: a JWKS file needs the issuer its tokens must name (--jwt-issuer)")
	case c.Audience == "":
		return errors.New("jwt audience: missing: a JWKS file needs the audience its tokens must name (--jwt-audience), else a token minted for another service would pass")
	case c.Leeway < 0 || c.Leeway > 5*time.Minute:
		return fmt.Errorf("jwt leeway: %s is outside 0 to 5m", c.Leeway)
	case c.CacheSize < 0:
		return fmt.Errorf("jwt cache size: %d is negative", c.CacheSize)
	}
	return nil
}

func (c JWTConfig) withDefaults() JWTConfig {
	if c.NameClaim == "" {
		c.NameClaim = "sub"
	}
	if c.Leeway == 0 {
		c.Leeway = DefaultJWTLeeway
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultJWTCacheSize
	}
	return c
}

// LooksLikeJWT reports whether a bearer token has a JWT's shape: three
// parts separated by dots, the first a base64url JSON object.
func LooksLikeJWT(token string) bool {
	return strings.HasPrefix(token, "eyJ") && strings.Count(token, ".") == 2
}

// JWTVerifier verifies JWTs against the keys of a JWKS file, reloaded
// when it changes.
type JWTVerifier struct {
	cfg  JWTConfig
	keys atomic.Pointer[keySet]
	now  func() time.Time
	mu   sync.Mutex // guards mod
	mod  stamp
}

// keySet is one version of the JWKS file and the tokens it verified.
type keySet struct {
	keys  []jwk
	cache tokenCache
}

type jwk struct {
	kid string
	alg string // "" when the set does not pin it
	pub crypto.PublicKey
}

// LoadJWKS reads the key set of cfg.JWKSFile; an error names the key and
// the field at fault.
func LoadJWKS(cfg JWTConfig) (*JWTVerifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	v := &JWTVerifier{cfg: cfg.withDefaults(), now: time.Now}
	if _, err := v.Reload(); err != nil {
		return nil, err
	}
	return v, nil
}

// Path is the JWKS file's path.
func (v *JWTVerifier) Path() string { return v.cfg.JWKSFile }

// Keys is the number of keys in force.
func (v *JWTVerifier) Keys() int { return len(v.keys.Load().keys) }

// Reload reads the file again if it changed since the last read. On an
// error the keys in force stay. changed reports a new set in force.
func (v *JWTVerifier) Reload() (changed bool, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	path := v.cfg.JWKSFile
	fi, err := os.Stat(path)
	if err != nil {
		return false, fmt.Errorf("jwks file: %w", err)
	}
	st := stamp{fi.ModTime(), fi.Size()}
	if v.keys.Load() != nil && st == v.mod {
		return false, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return false, fmt.Errorf("jwks file: %w", err)
	}
	v.mod = st
	keys, err := ParseJWKS(path, data)
	if err != nil {
		return false, err
	}
	v.keys.Store(&keySet{keys: keys, cache: tokenCache{max: v.cfg.CacheSize, m: map[[sha256.Size]byte]cached{}}})
	return true, nil
}

// Watch reloads the file when it changes, looking every poll, until ctx
// ends. A file that does not parse is logged and the keys in force stay.
func (v *JWTVerifier) Watch(ctx context.Context, poll time.Duration, log *slog.Logger) {
	watch(ctx, poll, func() {
		switch changed, err := v.Reload(); {
		case err != nil:
			log.Error("jwks file not reloaded; the previous keys stay in force", "path", v.Path(), "err", err)
		case changed:
			log.Info("jwks file reloaded", "path", v.Path(), "keys", v.Keys())
		}
	})
}

// watch calls reload every poll until ctx ends.
func watch(ctx context.Context, poll time.Duration, reload func()) {
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		reload()
	}
}

// Verify authenticates a JWT. The error is one of the Err values above,
// wrapped with detail a caller may see.
func (v *JWTVerifier) Verify(token string) (*Identity, error) {
	ks := v.keys.Load()
	now := v.now()
	sum := sha256.Sum256([]byte(token))
	if id, exp, ok := ks.cache.get(sum); ok {
		if now.After(exp.Add(v.cfg.Leeway)) {
			ks.cache.drop(sum)
			return nil, ErrExpired
		}
		return id, nil
	}
	id, exp, err := v.verify(ks, token, now)
	if err != nil {
		return nil, err
	}
	ks.cache.put(sum, id, exp, now)
	return id, nil
}

// algorithms are the accepted signature algorithms: asymmetric only.
var algorithms = map[string]struct {
	hash  crypto.Hash
	new   func() gohash.Hash
	curve elliptic.Curve // nil: RSA
}{
	"RS256": {crypto.SHA256, sha256.New, nil},
	"RS384": {crypto.SHA384, sha512.New384, nil},
	"RS512": {crypto.SHA512, sha512.New, nil},
	"ES256": {crypto.SHA256, sha256.New, elliptic.P256()},
	"ES384": {crypto.SHA384, sha512.New384, elliptic.P384()},
}

// verify checks a token not in the cache: shape, algorithm, key,
// signature, then the claims.
func (v *JWTVerifier) verify(ks *keySet, token string, now time.Time) (*Identity, time.Time, error) {
	var never time.Time
	if strings.Count(token, ".") != 2 {
		return nil, never, fmt.Errorf("%w: want three parts separated by dots", ErrMalformed)
	}
	head, rest, _ := strings.Cut(token, ".")
	payload, sig64, _ := strings.Cut(rest, ".")
	var h struct {
		Alg  string          `json:"alg"`
		Kid  string          `json:"kid"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := decodeSegment(head, &h); err != nil {
		return nil, never, fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Crit != nil {
		// RFC 7515 4.1.11: extensions a verifier does not understand
		// must refuse the token, and this one understands none.
		return nil, never, fmt.Errorf("%w: header: crit extensions are not understood", ErrMalformed)
	}
	alg, ok := algorithms[h.Alg]
	if !ok {
		return nil, never, fmt.Errorf("%w: got %q", ErrAlgorithm, h.Alg)
	}
	key, err := ks.key(h.Kid, h.Alg, alg.curve)
	if err != nil {
		return nil, never, err
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil {
		return nil, never, fmt.Errorf("%w: signature is not base64url", ErrMalformed)
	}
	d := alg.new()
	d.Write([]byte(token[:len(head)+1+len(payload)]))
	digest := d.Sum(nil)
	switch pub := key.pub.(type) {
	case *rsa.PublicKey:
		if rsa.VerifyPKCS1v15(pub, alg.hash, digest, sig) != nil {
			return nil, never, ErrSignature
		}
	case *ecdsa.PublicKey:
		n := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*n || !ecdsa.Verify(pub, digest, new(big.Int).SetBytes(sig[:n]), new(big.Int).SetBytes(sig[n:])) {
			return nil, never, ErrSignature
		}
	}
	var claims map[string]json.RawMessage
	if err := decodeSegment(payload, &claims); err != nil {
		return nil, never, fmt.Errorf("%w: payload: %v", ErrMalformed, err)
	}
	return v.identity(claims, now)
}

// key finds the key a token names: by kid, or the only key fitting the
// algorithm when the token names none.
func (ks *keySet) key(kid, alg string, curve elliptic.Curve) (*jwk, error) {
	fits := func(k *jwk) bool {
		if k.alg != "" && k.alg != alg {
			return false
		}
		switch pub := k.pub.(type) {
		case *rsa.PublicKey:
			return curve == nil
		case *ecdsa.PublicKey:
			return curve != nil && pub.Curve == curve
		}
		return false
	}
	var found *jwk
	for i := range ks.keys {
		k := &ks.keys[i]
		if kid != "" && k.kid != kid {
			continue
		}
		if kid == "" && found != nil && fits(k) {
			return nil, fmt.Errorf("%w: the token names no kid and several keys fit", ErrUnknownKey)
		}
		if fits(k) {
			found = k
		} else if kid != "" {
			return nil, fmt.Errorf("%w: key %q does not sign with %s", ErrAlgorithm, kid, alg)
		}
	}
	if found == nil {
		if kid == "" {
			return nil, fmt.Errorf("%w: the token names no kid", ErrUnknownKey)
		}
		return nil, fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
	}
	return found, nil
}

// identity checks the registered claims and reads the name and scopes.
func (v *JWTVerifier) identity(claims map[string]json.RawMessage, now time.Time) (*Identity, time.Time, error) {
	var never time.Time
	exp, ok, err := numericDate(claims, "exp")
	switch {
	case err != nil:
		return nil, never, err
	case !ok:
		return nil, never, fmt.Errorf("%w: exp", ErrMissingClaim)
	case now.After(exp.Add(v.cfg.Leeway)):
		return nil, never, ErrExpired
	}
	switch nbf, ok, err := numericDate(claims, "nbf"); {
	case err != nil:
		return nil, never, err
	case ok && now.Add(v.cfg.Leeway).Before(nbf):
		return nil, never, ErrNotYetValid
	}
	var iss string
	if json.Unmarshal(claims["iss"], &iss) != nil || iss != v.cfg.Issuer {
		return nil, never, ErrIssuer
	}
	if aud, err := audience(claims["aud"]); err != nil || !slices.Contains(aud, v.cfg.Audience) {
		return nil, never, ErrAudience
	}
	var name string
	if json.Unmarshal(claims[v.cfg.NameClaim], &name) != nil || name == "" {
		return nil, never, fmt.Errorf("%w: %s", ErrMissingClaim, v.cfg.NameClaim)
	}
	id := &Identity{Name: name}
	for _, c := range v.scopeClaims() {
		raw, ok := claims[c]
		if !ok {
			continue
		}
		scopes, err := strings1(raw)
		if err != nil {
			return nil, never, fmt.Errorf("%w: claim %s: want a string or an array of strings", ErrMalformed, c)
		}
		for _, sc := range scopes {
			// An identity provider grants scopes of other services too
			// (openid, email): those grant nothing here.
			if id.grantScope(sc) {
				id.grant = append(id.grant, sc)
			}
		}
		break
	}
	return id, exp, nil
}

func (v *JWTVerifier) scopeClaims() []string {
	if v.cfg.ScopeClaim != "" {
		return []string{v.cfg.ScopeClaim}
	}
	return []string{"scope", "scp", "scopes"}
}

// numericDate reads a NumericDate claim (seconds since the epoch).
func numericDate(claims map[string]json.RawMessage, name string) (time.Time, bool, error) {
	raw, ok := claims[name]
	if !ok {
		return time.Time{}, false, nil
	}
	var secs float64
	if err := json.Unmarshal(raw, &secs); err != nil || math.IsNaN(secs) || math.Abs(secs) > 1e11 {
		return time.Time{}, false, fmt.Errorf("%w: %s is not a number of seconds", ErrMalformed, name)
	}
	whole, frac := math.Modf(secs)
	return time.Unix(int64(whole), int64(frac*1e9)), true, nil
}

// audience reads the aud claim (RFC 7519 4.1.3): one string or an array
// of strings, each whole; a string is not split into words as a scope
// claim is, or "billing sluice" would pass for "sluice".
func audience(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}

// strings1 reads a claim that is a string (space-separated words) or an
// array of strings.
func strings1(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return strings.Fields(one), nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}

// decodeSegment decodes one base64url JSON part of a token.
func decodeSegment(seg string, v any) error {
	data, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return errors.New("not base64url")
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errors.New("not a JSON object")
	}
	return nil
}

// ParseJWKS reads a JSON Web Key Set: RSA keys of 2048 bits or more and
// EC keys on P-256 and P-384 are kept; keys for encryption (use enc) and
// of other types are skipped; a symmetric key, a key that does not
// decode or a set with no usable key is an error naming the key and the
// field.
func ParseJWKS(name string, data []byte) ([]jwk, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Kid string `json:"kid"`
			Use string `json:"use"`
			Alg string `json:"alg"`
			N   string `json:"n"`
			E   string `json:"e"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Y   string `json:"y"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("%s: not a JSON Web Key Set: %v", name, err)
	}
	var keys []jwk
	kids := map[string]bool{}
	for i, k := range set.Keys {
		bad := func(field, format string, args ...any) error {
			return fmt.Errorf("%s: keys[%d].%s: %s", name, i, field, fmt.Sprintf(format, args...))
		}
		if k.Use == "enc" {
			continue
		}
		if k.Alg != "" {
			if _, ok := algorithms[k.Alg]; !ok {
				return nil, bad("alg", "%q is not accepted (RS256, RS384, RS512, ES256, ES384)", k.Alg)
			}
		}
		if k.Kid != "" && kids[k.Kid] {
			return nil, bad("kid", "%q is given twice", k.Kid)
		}
		key := jwk{kid: k.Kid, alg: k.Alg}
		switch k.Kty {
		case "RSA":
			n, err := base64.RawURLEncoding.DecodeString(k.N)
			if err != nil || len(n) == 0 {
				return nil, bad("n", "not base64url")
			}
			e, err := base64.RawURLEncoding.DecodeString(k.E)
			if err != nil || len(e) == 0 || len(e) > 4 {
				return nil, bad("e", "not a base64url exponent")
			}
			pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
			if pub.E < 3 || pub.E%2 == 0 {
				return nil, bad("e", "%d is not an RSA public exponent", pub.E)
			}
			if pub.N.BitLen() < 2048 {
				return nil, bad("n", "a %d-bit RSA key is too short (want 2048 bits or more)", pub.N.BitLen())
			}
			key.pub = pub
		case "EC":
			var curve elliptic.Curve
			switch k.Crv {
			case "P-256":
				curve = elliptic.P256()
			case "P-384":
				curve = elliptic.P384()
			default:
				return nil, bad("crv", "%q is not accepted (P-256, P-384)", k.Crv)
			}
			size := (curve.Params().BitSize + 7) / 8
			x, errX := base64.RawURLEncoding.DecodeString(k.X)
			y, errY := base64.RawURLEncoding.DecodeString(k.Y)
			if errX != nil || errY != nil || len(x) != size || len(y) != size {
				return nil, bad("x", "want base64url coordinates of %d bytes", size)
			}
			// The uncompressed point, checked to be on the curve.
			point := append(append([]byte{4}, x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(curve, point)
			if err != nil {
				return nil, bad("x", "not a point on %s", k.Crv)
			}
			key.pub = pub
		case "oct":
			return nil, bad("kty", "a symmetric key is not accepted: tokens must be signed with a private key whose public half is in this set")
		default:
			continue // OKP and others: not used here
		}
		if alg, ok := algorithms[k.Alg]; ok {
			if _, isEC := key.pub.(*ecdsa.PublicKey); isEC != (alg.curve != nil) {
				return nil, bad("alg", "%s does not fit a key of type %s", k.Alg, k.Kty)
			}
		}
		kids[k.Kid] = true
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no signing key (RSA, or EC on P-256 or P-384)", name)
	}
	return keys, nil
}

// tokenCache holds verified tokens by their SHA-256 until they expire.
type tokenCache struct {
	max int
	mu  sync.RWMutex // guards m
	m   map[[sha256.Size]byte]cached
}

type cached struct {
	id  *Identity
	exp time.Time
}

func (c *tokenCache) get(sum [sha256.Size]byte) (*Identity, time.Time, bool) {
	c.mu.RLock()
	e, ok := c.m[sum]
	c.mu.RUnlock()
	return e.id, e.exp, ok
}

func (c *tokenCache) drop(sum [sha256.Size]byte) {
	c.mu.Lock()
	delete(c.m, sum)
	c.mu.Unlock()
}

// put keeps a verified token. A full cache first drops the expired
// entries, then, if still full, an eighth of the rest (map order is
// random: no caller can choose which).
func (c *tokenCache) put(sum [sha256.Size]byte, id *Identity, exp, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for k, e := range c.m {
			if now.After(e.exp) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) < c.max-c.max/8 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[sum] = cached{id, exp}
}
