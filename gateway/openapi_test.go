package gateway

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// GET /sluice/v1/openapi.json serves the generated document, and it
// describes every REST rule of protos/sluice/v1/http.yaml.
func TestOpenAPIDocument(t *testing.T) {
	t.Parallel()
	s := &Server{cfg: Config{Limits: Limits{}.WithDefaults(), Log: slog.New(slog.DiscardHandler)}, metrics: newMetrics()}
	s.apps.Store(&appTable{byName: map[string]route{}})
	srv := httptest.NewServer(s.Handler(http.NotFoundHandler()))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/sluice/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s, %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	var doc struct {
		Swagger string                                `json:"swagger"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" {
		t.Errorf("swagger %q", doc.Swagger)
	}

	data, err := os.ReadFile("../protos/sluice/v1/http.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		HTTP struct {
			Rules []map[string]string `yaml:"rules"`
		} `yaml:"http"`
	}
	if err := yaml.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.HTTP.Rules) == 0 {
		t.Fatal("http.yaml has no rules")
	}
	for _, rule := range cfg.HTTP.Rules {
		for _, method := range []string{"get", "put", "post", "delete", "patch"} {
			path, ok := rule[method]
			if !ok {
				continue
			}
			if _, ok := doc.Paths[path][method]; !ok {
				t.Errorf("%s: %s %s is not in the document", rule["selector"], strings.ToUpper(method), path)
			}
		}
	}
}
