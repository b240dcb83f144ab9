package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/platform/controller"
	"github.com/sluice-serve/sluice/replicas"
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

// The dashboard's state gives each deployment the slowest of its live
// replicas' reported handler p99 (a replica that ran nothing does not
// lower it; one past the last bucket makes it -1), next to the bounds.
func TestDashboardStateHandlerP99(t *testing.T) {
	t.Parallel()
	ctx, namer, store, caller, log := statusPlatform(t, "uip", "name: a\nroute_prefix: /a\ningress: D\ndeployments:\n"+
		"  - {name: D, handler: H}\n  - {name: E, handler: H}\n  - {name: F, handler: H}\n"+
		"edges:\n  - {from: D, to: E}\n  - {from: E, to: F}\n")
	reports := replicas.NewReports()
	for _, r := range []replicas.Report{
		{Deployment: "D", Instance: "d1", HandlerP99: 0.025},
		{Deployment: "D", Instance: "d2", HandlerP99: 0.1},
		{Deployment: "D", Instance: "d3"}, // idle
		{Deployment: "E", Instance: "e1", HandlerP99: -1},
		{Deployment: "E", Instance: "e2", HandlerP99: 5},
		{Deployment: "F", Instance: "f1"},
	} {
		r.App, r.Ready, r.At = "a", true, time.Now()
		b, _ := json.Marshal(r)
		reports.Apply(ctx, &kgo.Record{Key: []byte(replicas.ReportKey("a", r.Deployment, r.Instance)), Value: b})
	}
	s := New(Config{Caller: caller, Namer: namer, Control: controller.NewStatus(controller.StatusConfig{Namer: namer, Store: store, Replicas: reports, Log: log}), Log: log})

	rec := httptest.NewRecorder()
	s.uiState(rec, httptest.NewRequest(http.MethodGet, "/sluice/v1/ui/state", nil))
	var st struct {
		Applications []struct {
			Deployments []struct {
				Name       string   `json:"name"`
				HandlerP99 *float64 `json:"handler_p99_seconds"`
			} `json:"deployments"`
		} `json:"applications"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || len(st.Applications) != 1 {
		t.Fatalf("state %s: %v", rec.Body.Bytes(), err)
	}
	want := map[string]float64{"D": 0.1, "E": -1, "F": 0}
	for _, d := range st.Applications[0].Deployments {
		got := 0.0
		if d.HandlerP99 != nil {
			got = *d.HandlerP99
		}
		if got != want[d.Name] {
			t.Errorf("deployment %s: handler p99 %v, want %v", d.Name, got, want[d.Name])
		}
		delete(want, d.Name)
	}
	if len(want) > 0 {
		t.Errorf("state lacks deployments %v", want)
	}
}
