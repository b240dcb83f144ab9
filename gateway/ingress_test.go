package gateway

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/sluice-serve/sluice/platform/spec"
)

// An HTTP ingress gets the path below the route's prefix, the raw query,
// and the end-to-end headers: hop-by-hop ones, and those Connection
// names, stay with the connection.
func TestHTTPRequestRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix, target, path, query string
	}{
		{"/predict", "/predict/affine/2?x=1&x=2", "/affine/2", "x=1&x=2"},
		{"/predict", "/predict", "/", ""},
		{"/predict", "/predict/", "/", ""},
		{"/", "/a%2Fb/c", "/a%2Fb/c", ""},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://example.com"+tc.target, nil)
		got := httpRequest(r, tc.prefix)
		if got.Method != "GET" || got.Path != tc.path || got.Query != tc.query {
			t.Errorf("%s under %s: %+v, want path %s query %s", tc.target, tc.prefix, got, tc.path, tc.query)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "http://example.com/p/x", nil)
	r.Header = http.Header{
		"Accept": {"a", "b"}, "Content-Type": {"application/json"}, "X-Tenant": {"t"},
		"Connection": {"keep-alive, X-Private"}, "X-Private": {"p"}, "Keep-Alive": {"timeout=5"}, "Te": {"trailers"},
		"Trailer": {"X-T"}, "Transfer-Encoding": {"chunked"}, "Upgrade": {"h2c"}, "Proxy-Authorization": {"secret"}, "Proxy-Other": {"o"},
	}
	got := httpRequest(r, "/p")
	want := http.Header{"Accept": {"a", "b"}, "X-Tenant": {"t"}, "Host": {"example.com"}}
	if !reflect.DeepEqual(got.Header, want) {
		t.Fatalf("headers %v, want %v", got.Header, want)
	}
}

func TestServesHTTP(t *testing.T) {
	t.Parallel()
	app := &spec.App{Ingress: "W", Deployments: []spec.Deployment{{Name: "M"}, {Name: "W", HTTP: true}}}
	if !servesHTTP(app) {
		t.Fatal("an HTTP ingress is not served as one")
	}
	app.Ingress = "M"
	if servesHTTP(app) {
		t.Fatal("an application whose other deployment is marked is served as HTTP")
	}
}
