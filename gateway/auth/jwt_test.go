package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// signer mints test tokens with one key of the test's key set.
type signer struct {
	kid, alg string
	key      crypto.Signer
}

func b64(data []byte) string { return base64.RawURLEncoding.EncodeToString(data) }

func (s signer) mint(t testing.TB, claims map[string]any) string {
	head, _ := json.Marshal(map[string]string{"alg": s.alg, "kid": s.kid, "typ": "JWT"})
	body, _ := json.Marshal(claims)
	input := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	var err error
	switch k := s.key.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var der []byte
		if der, err = ecdsa.SignASN1(rand.Reader, k, sum[:]); err == nil {
			sig = rawECDSA(t, der)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// rawECDSA turns an ASN.1 signature into JWS's r||s of 32 bytes each.
func rawECDSA(t testing.TB, der []byte) []byte {
	// SEQUENCE { INTEGER r, INTEGER s }, short lengths for P-256.
	out := make([]byte, 64)
	i := 2
	for half := range 2 {
		n := int(der[i+1])
		v := der[i+2 : i+2+n]
		for len(v) > 32 && v[0] == 0 {
			v = v[1:]
		}
		copy(out[half*32+32-len(v):half*32+32], v)
		i += 2 + n
	}
	return out
}

type testKeys struct {
	rsa, ec, other signer // other is not in the set
	jwks           []byte
}

func newTestKeys(t testing.TB) testKeys {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ok, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pt, _ := ek.PublicKey.Bytes()
	set := map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": b64(rk.N.Bytes()), "e": b64([]byte{1, 0, 1})},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": b64(pt[1:33]), "y": b64(pt[33:])},
	}}
	data, _ := json.Marshal(set)
	return testKeys{rsa: signer{"r1", "RS256", rk}, ec: signer{"e1", "ES256", ek}, other: signer{"e1", "ES256", ok}, jwks: data}
}

func testVerifier(t testing.TB, keys testKeys) *JWTVerifier {
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, keys.jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := LoadJWKS(JWTConfig{JWKSFile: path, Issuer: "https://idp.example", Audience: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claims(now time.Time, extra ...any) map[string]any {
	c := map[string]any{"iss": "https://idp.example", "aud": "sluice", "sub": "alice",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "scope": "openid infer:a read"}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == nil {
			delete(c, extra[i].(string))
		} else {
			c[extra[i].(string)] = extra[i+1]
		}
	}
	return c
}

// A token signed by a key of the set, by the issuer, for the audience,
// within its validity is the identity its sub names with the scopes of
// its claim (scope as words, scp or scopes as arrays); every other token
// is refused with the reason.
func TestJWTVerify(t *testing.T) {
	t.Parallel()
	keys := newTestKeys(t)
	v := testVerifier(t, keys)
	now := time.Now()
	hs := func() string { // HS256 keyed with the RSA key's public modulus: the confusion attack
		head := b64([]byte(`{"alg":"HS256","kid":"r1"}`))
		body, _ := json.Marshal(claims(now))
		in := head + "." + b64(body)
		m := hmac.New(sha256.New, keys.rsa.key.(*rsa.PrivateKey).N.Bytes())
		m.Write([]byte(in))
		return in + "." + b64(m.Sum(nil))
	}
	none := func() string {
		body, _ := json.Marshal(claims(now))
		return b64([]byte(`{"alg":"none"}`)) + "." + b64(body) + "."
	}
	tampered := func() string {
		tok := keys.rsa.mint(t, claims(now))
		parts := strings.Split(tok, ".")
		body, _ := json.Marshal(claims(now, "scope", "admin"))
		return parts[0] + "." + b64(body) + "." + parts[2]
	}
	for _, tc := range []struct {
		name   string
		token  string
		want   error
		scopes []string
	}{
		{"RS256", keys.rsa.mint(t, claims(now)), nil, []string{"infer:a", "read"}},
		{"ES256", keys.ec.mint(t, claims(now)), nil, []string{"infer:a", "read"}},
		{"scp array", keys.ec.mint(t, claims(now, "scope", nil, "scp", []string{"deploy"})), nil, []string{"deploy"}},
		{"scopes array", keys.ec.mint(t, claims(now, "scope", nil, "scopes", []string{"admin"})), nil, []string{"admin"}},
		{"aud array", keys.ec.mint(t, claims(now, "aud", []string{"other", "sluice"})), nil, []string{"infer:a", "read"}},
		{"within leeway", keys.ec.mint(t, claims(now, "exp", now.Add(-10*time.Second).Unix())), nil, []string{"infer:a", "read"}},
		{"expired", keys.ec.mint(t, claims(now, "exp", now.Add(-time.Minute).Unix())), ErrExpired, nil},
		{"not yet valid", keys.ec.mint(t, claims(now, "nbf", now.Add(time.Minute).Unix())), ErrNotYetValid, nil},
		{"no exp", keys.ec.mint(t, claims(now, "exp", nil)), ErrMissingClaim, nil},
		{"no sub", keys.ec.mint(t, claims(now, "sub", nil)), ErrMissingClaim, nil},
		{"wrong issuer", keys.ec.mint(t, claims(now, "iss", "https://evil.example")), ErrIssuer, nil},
		{"wrong audience", keys.ec.mint(t, claims(now, "aud", "billing")), ErrAudience, nil},
		{"wrongly signed", keys.other.mint(t, claims(now)), ErrSignature, nil},
		{"tampered payload", tampered(), ErrSignature, nil},
		{"unknown kid", signer{"r9", "RS256", keys.rsa.key}.mint(t, claims(now)), ErrUnknownKey, nil},
		{"alg none", none(), ErrAlgorithm, nil},
		{"HS256 with the public key", hs(), ErrAlgorithm, nil},
		{"RS256 header on the EC key", signer{"e1", "RS256", keys.rsa.key}.mint(t, claims(now)), ErrAlgorithm, nil},
		{"malformed header", "eyJub3QganNvbg.e30.AA", ErrMalformed, nil},
		{"malformed signature", keys.ec.mint(t, claims(now)) + "!", ErrMalformed, nil},
	} {
		id, err := v.Verify(tc.token)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
			continue
		}
		if err != nil {
			if strings.Contains(err.Error(), "idp.example") || strings.Contains(err.Error(), "sluice") {
				t.Errorf("%s: %v says what the gateway expects", tc.name, err)
			}
			continue
		}
		if id.Name != "alice" || strings.Join(id.Scopes(), " ") != strings.Join(tc.scopes, " ") {
			t.Errorf("%s: identity %s with %v, want alice with %v", tc.name, id.Name, id.Scopes(), tc.scopes)
		}
	}
}

// A verified token is served from the cache until it expires, then
// refused; a reload of the key set drops what the old set verified.
func TestJWTCache(t *testing.T) {
	t.Parallel()
	keys := newTestKeys(t)
	v := testVerifier(t, keys)
	now := time.Now()
	v.now = func() time.Time { return now }
	tok := keys.rsa.mint(t, claims(now, "exp", now.Add(time.Minute).Unix()))
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := v.Verify(tok); err != nil || again != first {
		t.Fatalf("second verify: %v, %p vs %p: want the cached identity", err, again, first)
	}
	v.now = func() time.Time { return now.Add(2 * time.Minute) }
	if _, err := v.Verify(tok); !errors.Is(err, ErrExpired) {
		t.Fatalf("past exp + leeway: %v, want expired", err)
	}
	// Drop the RSA key: the token it signed is refused at once.
	v.now = func() time.Time { return now }
	var set map[string][]map[string]string
	_ = json.Unmarshal(keys.jwks, &set)
	set["keys"] = set["keys"][1:]
	data, _ := json.Marshal(set)
	if err := os.WriteFile(v.Path(), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if changed, err := v.Reload(); err != nil || !changed {
		t.Fatalf("reload: %v %v", changed, err)
	}
	if _, err := v.Verify(tok); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("after the key left the set: %v, want unknown key", err)
	}
}

// The cache holds at most its size.
func TestJWTCacheBound(t *testing.T) {
	t.Parallel()
	c := tokenCache{max: 16, m: map[[32]byte]cached{}}
	now := time.Now()
	for i := range 100 {
		c.put(sha256.Sum256([]byte{byte(i)}), &Identity{}, now.Add(time.Hour), now)
		if len(c.m) > 16 {
			t.Fatalf("after %d puts the cache holds %d", i+1, len(c.m))
		}
	}
}

// A bad key set is refused naming the key and field; an incomplete
// configuration names what is missing.
func TestJWKSErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, data, want string }{
		{"not json", `{`, "j.json: not a JSON Web Key Set"},
		{"empty", `{"keys":[]}`, "j.json: no signing key"},
		{"symmetric", `{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`, "keys[0].kty: a symmetric key is not accepted"},
		{"short rsa", `{"keys":[{"kty":"RSA","n":"` + b64(make([]byte, 128)) + `","e":"AQAB"}]}`, "keys[0].n: a 0-bit RSA key is too short"},
		{"bad curve", `{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}`, `keys[0].crv: "P-521" is not accepted`},
		{"point off curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + b64(make([]byte, 32)) + `","y":"` + b64(make([]byte, 32)) + `"}]}`, "keys[0].x: not a point on P-256"},
		{"hmac alg", `{"keys":[{"kty":"RSA","alg":"HS256"}]}`, `keys[0].alg: "HS256" is not accepted`},
	} {
		if _, err := ParseJWKS("j.json", []byte(tc.data)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	for _, tc := range []struct {
		cfg  JWTConfig
		want string
	}{
		{JWTConfig{JWKSFile: "j", Audience: "a"}, "jwt issuer: missing"},
		{JWTConfig{JWKSFile: "j", Issuer: "i"}, "jwt audience: missing"},
		{JWTConfig{JWKSFile: "/no/such/jwks.json", Issuer: "i", Audience: "a"}, "/no/such/jwks.json"},
	} {
		if _, err := LoadJWKS(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// One JWT check on the cached path (the same token again, as a client
// sends it on every call), and the first verification of an RS256 and
// an ES256 token.
func BenchmarkJWTVerify(b *testing.B) {
	keys := newTestKeys(b)
	v := testVerifier(b, keys)
	now := time.Now()
	for _, s := range []signer{keys.rsa, keys.ec} {
		tok := s.mint(b, claims(now))
		b.Run("cached/"+s.alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("uncached/"+s.alg, func(b *testing.B) {
			ks := v.keys.Load()
			for b.Loop() {
				if _, _, err := v.verify(ks, tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
