package cli

import (
	"io"
	"net/http"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	sluicev1 "github.com/sluice-serve/sluice/protos/gen/sluice/v1"
)

// The HTTP listener serves REST over HTTP/1.1 and HTTP/2 without TLS, and
// gRPC: one address for every client.
func TestHTTPListenerServesGRPC(t *testing.T) {
	t.Parallel()
	p := startFakePlatform(t)
	for _, tc := range []struct {
		name  string
		proto func(*http.Protocols)
	}{
		{"HTTP/1.1", func(p *http.Protocols) { p.SetHTTP1(true) }},
		{"HTTP/2 prior knowledge", func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) }},
	} {
		var protocols http.Protocols
		tc.proto(&protocols)
		c := &http.Client{Transport: &http.Transport{Protocols: &protocols}}
		resp, err := c.Get("http://" + p.rest + "/sluice/v1/apps/hello")
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != `{"name": "hello"}` {
			t.Errorf("%s: %s %s", tc.name, resp.Status, body)
		}
	}
	conn, err := grpc.NewClient(p.rest, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	m, err := sluicev1.NewModelsClient(conn).GetModel(t.Context(), &sluicev1.GetModelRequest{Name: "m"})
	if err != nil || m.GetName() != "m" {
		t.Fatalf("gRPC on the HTTP port: %v, %v", m, err)
	}
}
