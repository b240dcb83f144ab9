// Package authtest mints what an identity provider would for tests: a
// JSON Web Key Set of an RSA and an EC public key, and JWTs signed by
// their private halves (or by a key outside the set).
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"testing"
)

// Key signs tokens: Kid and Alg go in the header as they are, so a test
// can name a key or an algorithm the signature does not fit.
type Key struct {
	Kid, Alg string
	Signer   crypto.Signer
}

// Keys are an issuer's keys: RSA (kid r1, RS256) and EC (kid e1, ES256)
// are in JWKS; Other (kid e1) is not.
type Keys struct {
	RSA, EC, Other Key
	JWKS           []byte
}

// B64 is base64url without padding, as JWTs encode their parts.
func B64(data []byte) string { return base64.RawURLEncoding.EncodeToString(data) }

// NewKeys generates the keys and their JWKS.
func NewKeys(t testing.TB) Keys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := ek.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(map[string]any{"keys": []map[string]string{
		{"kty": "RSA", "kid": "r1", "use": "sig", "alg": "RS256", "n": B64(rk.N.Bytes()), "e": B64(big.NewInt(int64(rk.E)).Bytes())},
		{"kty": "EC", "kid": "e1", "crv": "P-256", "x": B64(pt[1:33]), "y": B64(pt[33:])},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return Keys{RSA: Key{"r1", "RS256", rk}, EC: Key{"e1", "ES256", ek}, Other: Key{"e1", "ES256", ok}, JWKS: data}
}

// Mint signs claims with SHA-256 (RS256 or ES256 by the key's type).
func (k Key) Mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	head, err := json.Marshal(map[string]string{"alg": k.Alg, "kid": k.Kid, "typ": "JWT"})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	input := B64(head) + "." + B64(body)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch key := k.Signer.(type) {
	case *rsa.PrivateKey:
		sig, err = rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	case *ecdsa.PrivateKey:
		var r, s *big.Int
		if r, s, err = ecdsa.Sign(rand.Reader, key, sum[:]); err == nil {
			sig = make([]byte, 64)
			r.FillBytes(sig[:32])
			s.FillBytes(sig[32:])
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + B64(sig)
}
