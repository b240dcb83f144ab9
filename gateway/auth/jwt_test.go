package auth

import (
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/gateway/auth/authtest"
)

func testVerifier(t testing.TB, keys authtest.Keys) *JWTVerifier {
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, keys.JWKS, 0o600); err != nil {
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
	keys := authtest.NewKeys(t)
	v := testVerifier(t, keys)
	now := time.Now()
	hs := func() string { // HS256 keyed with the RSA key's public modulus: the confusion attack
		head := authtest.B64([]byte(`{"alg":"HS256","kid":"r1"}`))
		body, _ := json.Marshal(claims(now))
		in := head + "." + authtest.B64(body)
		m := hmac.New(sha256.New, keys.RSA.Signer.(*rsa.PrivateKey).N.Bytes())
		m.Write([]byte(in))
		return in + "." + authtest.B64(m.Sum(nil))
	}
	none := func() string {
		body, _ := json.Marshal(claims(now))
		return authtest.B64([]byte(`{"alg":"none"}`)) + "." + authtest.B64(body) + "."
	}
	critical := func() string { // signed, with an extension it must understand
		body, _ := json.Marshal(claims(now))
		in := authtest.B64([]byte(`{"alg":"ES256","kid":"e1","crit":["exp-x"],"exp-x":1}`)) + "." + authtest.B64(body)
		tok := keys.EC.Mint(t, claims(now))
		return in + tok[strings.LastIndex(tok, "."):]
	}
	tampered := func() string {
		tok := keys.RSA.Mint(t, claims(now))
		parts := strings.Split(tok, ".")
		body, _ := json.Marshal(claims(now, "scope", "admin"))
		return parts[0] + "." + authtest.B64(body) + "." + parts[2]
	}
	for _, tc := range []struct {
		name   string
		token  string
		want   error
		scopes []string
	}{
		{"RS256", keys.RSA.Mint(t, claims(now)), nil, []string{"infer:a", "read"}},
		{"ES256", keys.EC.Mint(t, claims(now)), nil, []string{"infer:a", "read"}},
		{"scp array", keys.EC.Mint(t, claims(now, "scope", nil, "scp", []string{"deploy"})), nil, []string{"deploy"}},
		{"scopes array", keys.EC.Mint(t, claims(now, "scope", nil, "scopes", []string{"admin"})), nil, []string{"admin"}},
		{"aud array", keys.EC.Mint(t, claims(now, "aud", []string{"other", "sluice"})), nil, []string{"infer:a", "read"}},
		{"within leeway", keys.EC.Mint(t, claims(now, "exp", now.Add(-10*time.Second).Unix())), nil, []string{"infer:a", "read"}},
		{"expired", keys.EC.Mint(t, claims(now, "exp", now.Add(-time.Minute).Unix())), ErrExpired, nil},
		{"not yet valid", keys.EC.Mint(t, claims(now, "nbf", now.Add(time.Minute).Unix())), ErrNotYetValid, nil},
		{"no exp", keys.EC.Mint(t, claims(now, "exp", nil)), ErrMissingClaim, nil},
		{"no sub", keys.EC.Mint(t, claims(now, "sub", nil)), ErrMissingClaim, nil},
		{"wrong issuer", keys.EC.Mint(t, claims(now, "iss", "https://evil.example")), ErrIssuer, nil},
		{"wrong audience", keys.EC.Mint(t, claims(now, "aud", "billing")), ErrAudience, nil},
		{"audience among words", keys.EC.Mint(t, claims(now, "aud", "billing sluice")), ErrAudience, nil},
		{"wrongly signed", keys.Other.Mint(t, claims(now)), ErrSignature, nil},
		{"tampered payload", tampered(), ErrSignature, nil},
		{"unknown kid", authtest.Key{Kid: "r9", Alg: "RS256", Signer: keys.RSA.Signer}.Mint(t, claims(now)), ErrUnknownKey, nil},
		{"alg none", none(), ErrAlgorithm, nil},
		{"HS256 with the public key", hs(), ErrAlgorithm, nil},
		{"RS256 header on the EC key", authtest.Key{Kid: "e1", Alg: "RS256", Signer: keys.RSA.Signer}.Mint(t, claims(now)), ErrAlgorithm, nil},
		{"malformed header", "eyJub3QganNvbg.e30.AA", ErrMalformed, nil},
		{"crit header", critical(), ErrMalformed, nil},
		{"malformed signature", keys.EC.Mint(t, claims(now)) + "!", ErrMalformed, nil},
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
	keys := authtest.NewKeys(t)
	v := testVerifier(t, keys)
	now := time.Now()
	v.now = func() time.Time { return now }
	tok := keys.RSA.Mint(t, claims(now, "exp", now.Add(time.Minute).Unix()))
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
	_ = json.Unmarshal(keys.JWKS, &set)
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
		{"even exponent", `{"keys":[{"kty":"RSA","n":"` + authtest.B64(make([]byte, 256)) + `","e":"Ag"}]}`, "keys[0].e: 2 is not an RSA public exponent"},
		{"short rsa", `{"keys":[{"kty":"RSA","n":"` + authtest.B64(make([]byte, 128)) + `","e":"AQAB"}]}`, "keys[0].n: a 0-bit RSA key is too short"},
		{"bad curve", `{"keys":[{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}]}`, `keys[0].crv: "P-521" is not accepted`},
		{"point off curve", `{"keys":[{"kty":"EC","crv":"P-256","x":"` + authtest.B64(make([]byte, 32)) + `","y":"` + authtest.B64(make([]byte, 32)) + `"}]}`, "keys[0].x: not a point on P-256"},
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
	keys := authtest.NewKeys(b)
	v := testVerifier(b, keys)
	now := time.Now()
	for _, s := range []authtest.Key{keys.RSA, keys.EC} {
		tok := s.Mint(b, claims(now))
		b.Run("cached/"+s.Alg, func(b *testing.B) {
			for b.Loop() {
				if _, err := v.Verify(tok); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("uncached/"+s.Alg, func(b *testing.B) {
			ks := v.keys.Load()
			for b.Loop() {
				if _, _, err := v.verify(ks, tok, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Any bearer shaped or not like a JWT is refused or accepted without a
// panic, and a refusal is one of the reasons a 401 names.
func FuzzVerify(f *testing.F) {
	keys := authtest.NewKeys(f)
	v := testVerifier(f, keys)
	now := time.Now()
	f.Add(keys.RSA.Mint(f, claims(now)))
	f.Add(keys.EC.Mint(f, claims(now, "aud", []string{"a", "sluice"})))
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("eyJ..")
	f.Add("not a token")
	reasons := []error{ErrMalformed, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrExpired, ErrNotYetValid, ErrIssuer, ErrAudience, ErrMissingClaim}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Verify(token)
		if err == nil {
			if id == nil || id.Name == "" {
				t.Fatalf("accepted without an identity: %q", token)
			}
			return
		}
		for _, r := range reasons {
			if errors.Is(err, r) {
				return
			}
		}
		t.Fatalf("refusal %v is none of the reasons", err)
	})
}

// A key set that decodes is never empty; none panics.
func FuzzParseJWKS(f *testing.F) {
	f.Add(authtest.NewKeys(f).JWKS)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS("f.json", data)
		if err == nil && len(keys) == 0 {
			t.Fatal("an empty key set parsed")
		}
	})
}
