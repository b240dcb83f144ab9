package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// TestAPIRequestClosesConnection: each API request makes its own HTTP
// client, so it must not leave its connection idle behind it; a poll
// (sluice deploy waiting for a roll, four requests a second) would
// otherwise hold hundreds open at the gateway.
func TestAPIRequestClosesConnection(t *testing.T) {
	var open atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "{}")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			open.Add(1)
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()
	env := Env{Stdout: io.Discard, Stderr: io.Discard, Log: slog.New(slog.DiscardHandler), Getenv: func(string) string { return "" }}
	for range 5 {
		if _, err := apiRequest(context.Background(), env, http.MethodGet, srv.URL+"/sluice/v1/apps", nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for open.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != 0 {
		t.Errorf("%d connections still open after 5 requests, want none", n)
	}
}
