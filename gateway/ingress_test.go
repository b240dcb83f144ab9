package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
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

// The prefix is cut from the path in the form the route matched it
// (decoded, Server.byPath), however the client escaped it; what is below
// keeps the client's escapes and decodes to the decoded path less the
// prefix.
func TestHTTPRequestPathBelowPrefix(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		prefix, target, path string
	}{
		{"/app", "/app/x", "/x"},
		{"/app", "/%61pp/x", "/x"},                           // the prefix escaped
		{"/app", "/%61%70%70", "/"},                          // all of it, escaped
		{"/app", "/%61pp/%7Ex%20y", "/%7Ex%20y"},             // below: as sent
		{"/app", "/%61pp/a%2Fb", "/a%2Fb"},                   // an escaped slash below stays one
		{"/app", "/app%2Fx", "/x"},                           // the boundary escaped
		{"/a/b", "/a%2Fb/c", "/c"},                           // a slash of the prefix escaped
		{"/caf\u00e9", "/caf%C3%A9/menu", "/menu"},           // a prefix of several bytes a rune
		{"/caf\u00e9", "/caf\u00e9/m%C3%A9nu", "/m%C3%A9nu"}, // sent unescaped, Go escapes it
		{"/", "/%61pp/x", "/%61pp/x"},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://example.com"+tc.target, nil)
		s := &Server{}
		s.apps.Store(&appTable{byPrefix: []route{{prefix: tc.prefix}}})
		rt, ok := s.byPath(r.URL.Path)
		if !ok {
			t.Fatalf("%s: no route under %s", tc.target, tc.prefix)
		}
		got := httpRequest(r, rt.prefix)
		if got.Path != tc.path {
			t.Errorf("%s under %s: path %s, want %s", tc.target, tc.prefix, got.Path, tc.path)
		}
		want := r.URL.Path
		if tc.prefix != "/" {
			want = strings.TrimPrefix(want, tc.prefix)
		}
		if dec, err := url.PathUnescape(got.Path); err != nil || dec != want && !(want == "" && dec == "/") {
			t.Errorf("%s under %s: path %s decodes to %q (%v), not the decoded path below the prefix %q", tc.target, tc.prefix, got.Path, dec, err, want)
		}
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
