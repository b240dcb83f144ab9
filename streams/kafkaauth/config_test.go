package kafkaauth

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, yaml string
		want       Config
		err        string // substring of the error; "" wants none
	}{
		{"full", "tls:\n  ca_file: /ca.pem\n  server_name: kafka\nsasl:\n  mechanism: scram-sha-512\n  username: app\n  password_file: /pw\n",
			Config{TLS: TLS{CAFile: "/ca.pem", ServerName: "kafka"}, SASL: SASL{Mechanism: ScramSHA512, Username: "app", PasswordFile: "/pw"}}, ""},
		{"empty", "", Config{}, ""},
		{"unknown field", "tls:\n  enabled: true\n  ca_fiel: /ca.pem\n", Config{}, "k.yaml: unmarshal errors:\n  line 3: field ca_fiel not found"},
		{"wrong type", "tls:\n  enabled: maybe\n", Config{}, "line 2: cannot unmarshal"},
		{"password inline", "sasl:\n  mechanism: PLAIN\n  username: u\n  password: hunter2\n", Config{}, "k.yaml:4: sasl.password: a password is never read from the config file"},
		{"unknown mechanism", "sasl:\n  mechanism: GSSAPI\n", Config{}, "k.yaml:2: sasl.mechanism \"GSSAPI\" is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Parse("k.yaml", []byte(tc.yaml))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Parse: %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{Config{}, ""},
		{Config{TLS: TLS{CertFile: "c"}}, "tls.cert_file and tls.key_file go together"},
		{Config{SASL: SASL{Username: "u"}}, "sasl.mechanism is required"},
		{Config{SASL: SASL{Mechanism: Plain, Password: "p"}}, "sasl.username is required with PLAIN"},
		{Config{SASL: SASL{Mechanism: ScramSHA256, Username: "u"}}, "needs exactly one of SLUICE_KAFKA_SASL_PASSWORD and sasl.password_file"},
		{Config{SASL: SASL{Mechanism: ScramSHA256, Username: "u", Password: "p", TokenFile: "t"}}, "are for OAUTHBEARER"},
		{Config{SASL: SASL{Mechanism: OAuthBearer}}, "exactly one of sasl.token_file and sasl.token_command"},
		{Config{SASL: SASL{Mechanism: OAuthBearer, TokenFile: "t", Password: "p"}}, "takes a token, not a password"},
		{Config{SASL: SASL{Mechanism: OAuthBearer, TokenCommand: "  "}}, "sasl.token_command is blank"},
		{Config{SASL: SASL{Mechanism: "GSSAPI"}}, "not one of"},
		{Config{SASL: SASL{Mechanism: ScramSHA512, Username: "u", PasswordFile: "f"}}, ""},
	} {
		err := tc.cfg.Validate()
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: Validate = %v, want %q", tc.cfg, err, tc.err)
		}
	}
}

// TestResolve: flags over the environment over the file, and Environ
// carries the result to a child that resolves the same Config from it
// alone.
func TestResolve(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "kafka.yaml")
	if err := os.WriteFile(file, []byte("tls:\n  ca_file: /file-ca\nsasl:\n  mechanism: SCRAM-SHA-256\n  username: from-file\n  password_file: /pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{EnvConfig: file, EnvUsername: "from-env", EnvPassword: "secret"}
	got, err := Resolve("", func(k string) string { return env[k] }, Config{SASL: SASL{Mechanism: ScramSHA512}})
	if err != nil {
		t.Fatal(err)
	}
	want := Config{TLS: TLS{CAFile: "/file-ca"}, SASL: SASL{Mechanism: ScramSHA512, Username: "from-env", Password: "secret"}}
	if got != want {
		t.Fatalf("Resolve = %+v\nwant %+v", got, want)
	}
	child := map[string]string{EnvConfig: file, EnvUsername: "stale"} // what the child inherited
	for _, kv := range got.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		child[k] = v
	}
	again, err := Resolve("", func(k string) string { return child[k] }, Config{})
	if err != nil {
		t.Fatal(err)
	}
	want.TLS.Enabled = true
	if again != want {
		t.Fatalf("child Resolve = %+v\nwant %+v", again, want)
	}
	if _, err := Resolve("", func(k string) string { return map[string]string{EnvTLS: "yes please"}[k] }, Config{}); err == nil || !strings.Contains(err.Error(), EnvTLS) {
		t.Fatalf("Resolve of a bad %s: %v", EnvTLS, err)
	}
	if _, err := Resolve(filepath.Join(dir, "missing.yaml"), func(string) string { return "" }, Config{}); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("Resolve of a missing file: %v", err)
	}
}

func TestStringHidesSecrets(t *testing.T) {
	t.Parallel()
	c := Config{TLS: TLS{Enabled: true}, SASL: SASL{Mechanism: ScramSHA512, Username: "app", Password: "hunter2"}}
	if s := c.String(); s != "SASL_SSL SCRAM-SHA-512 user app" {
		t.Fatalf("String = %q", s)
	}
}

// TestTokenSources: the token file is read again when it changes; the
// command runs for each new connection and its failure names it.
func TestTokenSources(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	write := func(v string) {
		if err := os.WriteFile(file, []byte(v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("first")
	src := SASL{Mechanism: OAuthBearer, TokenFile: file}.tokenSource()
	ctx := context.Background()
	if tok, err := src(ctx); err != nil || tok != "first" {
		t.Fatalf("token = %q, %v", tok, err)
	}
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	write("second-and-longer")
	if tok, err := src(ctx); err != nil || tok != "second-and-longer" {
		t.Fatalf("token after the file changed = %q, %v", tok, err)
	}
	cmd := SASL{Mechanism: OAuthBearer, TokenCommand: "echo cmd-token"}.tokenSource()
	if tok, err := cmd(ctx); err != nil || tok != "cmd-token" {
		t.Fatalf("command token = %q, %v", tok, err)
	}
	bad := SASL{Mechanism: OAuthBearer, TokenCommand: "false"}.tokenSource()
	if _, err := bad(ctx); err == nil || !strings.Contains(err.Error(), "sasl.token_command false") {
		t.Fatalf("failing command: %v", err)
	}
}

// TestOptionsFiles: a missing or empty file fails Options naming it.
func TestOptionsFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := SelfSigned(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg Config
		err string
	}{
		{Config{TLS: TLS{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}}, ""},
		{Config{TLS: TLS{CAFile: filepath.Join(dir, "nope.pem")}}, "tls.ca_file"},
		{Config{TLS: TLS{CAFile: files.Key}}, "no PEM certificate"},
		{Config{TLS: TLS{CertFile: files.Cert, KeyFile: files.CA}}, "tls.cert_file"},
		{Config{SASL: SASL{Mechanism: Plain, Username: "u", PasswordFile: empty}}, "sasl.password_file " + empty + " is empty"},
		{Config{SASL: SASL{Mechanism: OAuthBearer, TokenFile: filepath.Join(dir, "nope")}}, "sasl.token_file"},
	} {
		_, err := tc.cfg.Options()
		if (tc.err == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%+v: Options = %v, want %q", tc.cfg, err, tc.err)
		}
	}
}

// FuzzParse: any input parses or fails with an error naming the file,
// never a panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte("tls:\n  ca_file: /ca\nsasl:\n  mechanism: PLAIN\n  username: u\n  password: p\n"))
	f.Add([]byte("sasl: [1, 2]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Parse("k.yaml", b); err != nil && !strings.HasPrefix(err.Error(), "k.yaml") {
			t.Fatalf("error without the file name: %v", err)
		}
	})
}
