package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

func echo(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}))
	t.Cleanup(s.Close)
	return s
}

func TestJSONLine(t *testing.T) {
	t.Parallel()
	s := echo(t)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-url", s.URL, "-body", `{"x":1}`, "-c", "2",
		"-duration", "200ms", "-warmup", "50ms", "-expect", `"x":1`, "-json"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, &stderr)
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, &stdout)
	}
	keys := []string{"requests", "errors", "dropped", "elapsed_s", "rps", "p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms", "first_error"}
	for _, k := range keys {
		if _, ok := got[k]; !ok {
			t.Errorf("no key %s in %s", k, &stdout)
		}
	}
	if len(got) != len(keys) || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("want one line with exactly %v, got %s", keys, &stdout)
	}
	if got["requests"].(float64) == 0 || got["errors"].(float64) != 0 {
		t.Errorf("got %s", &stdout)
	}
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	s := echo(t)
	short := []string{"-url", s.URL, "-c", "1", "-duration", "100ms", "-warmup", "0s"}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"human line", short, 0, "requests "},
		{"expect mismatch", append(short, "-body", "a", "-expect", "b"), 1, "requests "},
		{"errors tolerated", append(short, "-body", "a", "-expect", "b", "-fail-on-error=false"), 0, "requests "},
		{"open loop", []string{"-url", s.URL, "-rate", "50", "-duration", "100ms", "-warmup", "0s"}, 0, "requests "},
		{"no url", []string{"-c", "1"}, 2, ""},
		{"c and rate", []string{"-url", s.URL, "-c", "2", "-rate", "5"}, 2, ""},
		{"body and file", []string{"-url", s.URL, "-body", "a", "-body-file", "f"}, 2, ""},
		{"not loopback", []string{"-url", "http://example.com/"}, 2, ""},
		{"bad flag", []string{"-nope"}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), slices.Clone(tc.args), &stdout, &stderr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stdout %q stderr %q", code, tc.code, &stdout, &stderr)
			}
			if !strings.HasPrefix(stdout.String(), tc.out) || (tc.out == "") != (stdout.Len() == 0) {
				t.Errorf("stdout %q, want it to start with %q", &stdout, tc.out)
			}
		})
	}
}

func TestModelFlags(t *testing.T) {
	t.Parallel()
	var got atomic.Value
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path + " " + r.Header.Get("Serve_multiplexed_model_id") + " " + r.Header.Get("X-Two"))
	}))
	t.Cleanup(s.Close)
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"-url", s.URL + "/v2/models/{model}/infer", "-models", "1", "-zipf", "0",
		"-header", "serve_multiplexed_model_id: {model}", "-header", "X-Two:b: c",
		"-c", "1", "-max", "3", "-duration", "5s", "-warmup", "0s"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, &stderr)
	}
	if g, want := got.Load(), "/v2/models/m0/infer m0 b: c"; g != want {
		t.Errorf("server saw %q, want %q", g, want)
	}
	if code := run(t.Context(), []string{"-url", s.URL, "-header", "novalue"}, &stdout, &stderr); code != 2 {
		t.Errorf("-header without a colon: exit %d, want 2", code)
	}
	if code := run(t.Context(), []string{"-url", s.URL, "-models", "5", "-zipf", "0.5"}, &stdout, &stderr); code != 2 {
		t.Errorf("-zipf 0.5: exit %d, want 2", code)
	}
}
