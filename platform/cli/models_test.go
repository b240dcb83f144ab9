package cli

import (
	"slices"
	"strings"
	"testing"
)

// The models commands find the platform with --addr or SLUICE_ADDR, as
// the other client commands do; --grpc-addr and SLUICE_GRPC_ADDR still
// work, deprecated: the flag wins when given, the variable when --addr
// is not.
func TestModelsAddr(t *testing.T) {
	t.Parallel()
	dead := listenLocal(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	for _, tc := range []struct {
		name       string
		vars       map[string]string
		args       []string
		deprecated bool
	}{
		{"--addr", nil, []string{"--addr", "{rest}"}, false},
		{"--addr URL", nil, []string{"--addr", "http://{rest}/"}, false},
		{"SLUICE_ADDR", map[string]string{"SLUICE_ADDR": "{rest}"}, nil, false},
		{"--addr over SLUICE_ADDR", map[string]string{"SLUICE_ADDR": deadAddr}, []string{"--addr", "{rest}"}, false},
		{"--grpc-addr", nil, []string{"--grpc-addr", "{grpc}"}, true},
		{"--grpc-addr over --addr", nil, []string{"--grpc-addr", "{grpc}", "--addr", deadAddr}, true},
		{"SLUICE_GRPC_ADDR", map[string]string{"SLUICE_GRPC_ADDR": "{grpc}"}, nil, true},
		{"SLUICE_GRPC_ADDR over SLUICE_ADDR", map[string]string{"SLUICE_GRPC_ADDR": "{grpc}", "SLUICE_ADDR": deadAddr}, nil, true},
		{"--addr over SLUICE_GRPC_ADDR", map[string]string{"SLUICE_GRPC_ADDR": deadAddr}, []string{"--addr", "{rest}"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startFakePlatform(t)
			r := strings.NewReplacer("{rest}", p.rest, "{grpc}", p.grpc)
			vars := map[string]string{}
			for k, v := range tc.vars {
				vars[k] = r.Replace(v)
			}
			args := []string{"models", "ls", "m"}
			for _, a := range tc.args {
				args = append(args, r.Replace(a))
			}
			_, stderr, err := runCLI(t, vars, args...)
			if err != nil {
				t.Fatalf("sluice %s: %v", strings.Join(args, " "), err)
			}
			if got := p.called(); !slices.Equal(got, []string{"GetModel m"}) {
				t.Errorf("calls %q", got)
			}
			if strings.Contains(stderr, "deprecated") != tc.deprecated {
				t.Errorf("stderr %q, want a deprecation notice: %t", stderr, tc.deprecated)
			}
		})
	}
}

func TestGRPCTarget(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr, target, security string // security "" for a usage error
	}{
		{"127.0.0.1:8000", "127.0.0.1:8000", "insecure"},
		{"http://sluice.local:8000", "sluice.local:8000", "insecure"},
		{"http://sluice.local/", "sluice.local:80", "insecure"},
		{"https://sluice.example.com", "sluice.example.com:443", "tls"},
		{"https://[::1]:8443", "[::1]:8443", "tls"},
		{"http://sluice.local/prefix", "", ""},
		{"ftp://sluice.local", "", ""},
	} {
		target, creds, err := grpcTarget(tc.addr, Env{Getenv: func(string) string { return "" }})
		if tc.security == "" {
			if ExitCode(err) != 2 {
				t.Errorf("%s: err %v, want a usage error", tc.addr, err)
			}
			continue
		}
		if err != nil || target != tc.target || creds.Info().SecurityProtocol != tc.security {
			t.Errorf("%s: %s %v %v, want %s %s", tc.addr, target, creds, err, tc.target, tc.security)
		}
	}
}
