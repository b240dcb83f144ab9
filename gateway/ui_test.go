package gateway

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The dashboard's files are served from the binary at /ui/ to anyone
// (/ui redirects there); the state they draw needs read.
func TestDashboardRoutes(t *testing.T) {
	t.Parallel()
	h := testServer(t, testTokens).Handler(http.NotFoundHandler())
	for _, tc := range []struct {
		path, token string
		want        int
		wantBody    string
		wantType    string
	}{
		{"/ui", "", http.StatusMovedPermanently, "", ""},
		{"/ui/", "", http.StatusOK, `<script type="module" src="app.js">`, "text/html"},
		{"/ui/app.js", "", http.StatusOK, "/sluice/v1/ui/state", "javascript"},
		{"/ui/style.css", "", http.StatusOK, "--accent", "text/css"},
		{"/ui/nothing.js", "", http.StatusNotFound, "", ""},
		{"/sluice/v1/ui/state", "", http.StatusUnauthorized, "bearer token is required", ""},
		{"/sluice/v1/ui/state", "Bearer tok-infer", http.StatusForbidden, "lacks scope read", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, tc.path, nil)
		if tc.token != "" {
			r.Header.Set("Authorization", tc.token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want || !strings.Contains(w.Body.String(), tc.wantBody) || !strings.Contains(w.Header().Get("Content-Type"), tc.wantType) {
			t.Errorf("GET %s %q: %d %s %.80q, want %d %s with %q", tc.path, tc.token, w.Code, w.Header().Get("Content-Type"), w.Body, tc.want, tc.wantType, tc.wantBody)
		}
	}
}
