package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-serve/sluice/gateway/auth"
	"github.com/sluice-serve/sluice/gateway/auth/authtest"
)

// withJWT adds a key set of keys to s.
func withJWT(t testing.TB, s *Server, keys authtest.Keys) {
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, keys.JWKS, 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := auth.LoadJWKS(auth.JWTConfig{JWKSFile: path, Issuer: "https://idp.example", Audience: "sluice"})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.JWT = v
}

func jwtClaims(scope string, exp time.Duration) map[string]any {
	now := time.Now()
	return map[string]any{"iss": "https://idp.example", "aud": "sluice", "sub": "ci-bot", "exp": now.Add(exp).Unix(), "scope": scope}
}

// With a key set beside the token file: a JWT holding the scope passes,
// one lacking it is 403 naming its subject, a bad one 401 naming why;
// opaque tokens still go through the file. With the key set alone, an
// opaque token is refused.
func TestJWTAccess(t *testing.T) {
	t.Parallel()
	keys := authtest.NewKeys(t)
	both := testServer(t, testTokens)
	withJWT(t, both, keys)
	only := testServer(t, "")
	withJWT(t, only, keys)
	ok := func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }
	for _, tc := range []struct {
		s       *Server
		token   string
		want    int
		wantMsg string
	}{
		{both, keys.EC.Mint(t, jwtClaims("infer:a", time.Hour)), http.StatusTeapot, ""},
		{both, keys.RSA.Mint(t, jwtClaims("openid infer", time.Hour)), http.StatusTeapot, ""},
		{both, keys.EC.Mint(t, jwtClaims("infer:b", time.Hour)), http.StatusForbidden, "token ci-bot lacks scope infer or infer:a"},
		{both, keys.EC.Mint(t, jwtClaims("infer", -time.Hour)), http.StatusUnauthorized, "the bearer token is not valid: the token has expired"},
		{both, keys.Other.Mint(t, jwtClaims("infer", time.Hour)), http.StatusUnauthorized, "signature does not verify"},
		{both, "tok-infer-a", http.StatusTeapot, ""},
		{only, keys.EC.Mint(t, jwtClaims("infer", time.Hour)), http.StatusTeapot, ""},
		{only, "tok-infer-a", http.StatusUnauthorized, "accepts JWTs only"},
	} {
		mux := http.NewServeMux()
		tc.s.handle(mux, "/", ok)
		r := httptest.NewRequest("POST", "/a", nil)
		r.Header.Set("Authorization", "Bearer "+tc.token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.wantMsg) {
			t.Errorf("%.20s…: %d %s, want %d with %q", tc.token, w.Code, w.Body, tc.want, tc.wantMsg)
		}
	}
}

// One authorisation check with a JWT the gateway verified before (the
// cached path), against one with an opaque token of the file, in the
// same run.
func BenchmarkAuthorizeJWT(b *testing.B) {
	keys := authtest.NewKeys(b)
	s := testServer(b, testTokens)
	withJWT(b, s, keys)
	app := func() string { rt, _ := s.byPath("/a/x"); return rt.app }
	for _, bc := range []struct{ name, credential string }{
		{"opaque", "Bearer tok-infer-a"},
		{"jwt=ES256", "Bearer " + keys.EC.Mint(b, jwtClaims("infer:a", time.Hour))},
		{"jwt=RS256", "Bearer " + keys.RSA.Mint(b, jwtClaims("infer:a", time.Hour))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := s.authorize(bc.credential, "/", "POST /a/x", app); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
