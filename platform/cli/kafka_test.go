package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// TestKafkaFlags: the flags, the environment and --kafka-config resolve
// into the security registered for the brokers, and a child process gets
// it as SLUICE_KAFKA_* variables (the password as a variable, never an
// argument).
func TestKafkaFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files, err := kafkaauth.SelfSigned(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "kafka.yaml")
	if err := os.WriteFile(conf, []byte("tls:\n  ca_file: "+files.CA+"\nsasl:\n  mechanism: SCRAM-SHA-256\n  username: file-user\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bs := []string{"kafka-flags.test:9093"}
	fs := newFlags("gateway", Env{Getenv: envMap{kafkaauth.EnvPassword: "s3cret", kafkaauth.EnvUsername: "env-user"}.get})
	secure := kafkaFlags(fs)
	if err := parse(fs, []string{"--kafka-config", conf, "--kafka-sasl-mechanism", "SCRAM-SHA-512"}); err != nil {
		t.Fatal(err)
	}
	if err := secure(bs); err != nil {
		t.Fatal(err)
	}
	got := streams.SecurityOf(bs)
	want := kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: files.CA}, SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: "env-user", Password: "s3cret"}}
	if got != want {
		t.Fatalf("registered %+v\nwant %+v", got, want)
	}
	env := kafkaEnv(bs)
	for _, kv := range []string{"SLUICE_KAFKA_TLS=true", "SLUICE_KAFKA_CA_FILE=" + files.CA, "SLUICE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "SLUICE_KAFKA_SASL_PASSWORD=s3cret", "SLUICE_KAFKA_CONFIG="} {
		if !slices.Contains(env, kv) {
			t.Errorf("child environment lacks %s: %v", kv, env)
		}
	}
	// Brokers never secured: every variable set to plaintext, so that a
	// child's inherited SLUICE_KAFKA_* (another cluster's) do not count.
	inherited := []string{"SLUICE_KAFKA_TLS=true", "SLUICE_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "SLUICE_KAFKA_SASL_USERNAME=other", "SLUICE_KAFKA_SASL_PASSWORD=x"}
	plain := kafkaEnv([]string{"elsewhere:9092"})
	cfg, err := kafkaauth.Resolve("", envMap(environMap(append(inherited, plain...))).get, kafkaauth.Config{})
	if err != nil || !cfg.IsZero() {
		t.Errorf("a child of plaintext brokers resolves %+v, %v from %v; want plaintext", cfg, err, plain)
	}
}

type envMap map[string]string

// environMap is kv as a map, a later KEY=value winning, as for a process.
func environMap(kv []string) map[string]string {
	m := map[string]string{}
	for _, e := range kv {
		if k, v, ok := strings.Cut(e, "="); ok {
			m[k] = v
		}
	}
	return m
}

func (m envMap) get(k string) string { return m[k] }

// TestKafkaFlagsRefused: wrong settings stop the command with exit code 2
// and name what is wrong, before any broker is dialled.
func TestKafkaFlagsRefused(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sasl:\n  mechanism: PLAIN\n  username: u\n  password: inline\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		env  map[string]string
		says string
	}{
		{[]string{"--kafka-sasl-mechanism", "GSSAPI"}, nil, `sasl.mechanism "GSSAPI" is not one of`},
		{[]string{"--kafka-sasl-mechanism", "PLAIN", "--kafka-sasl-username", "u"}, nil, "needs exactly one of SLUICE_KAFKA_SASL_PASSWORD"},
		{[]string{"--kafka-config", bad}, nil, "bad.yaml:4: sasl.password"},
		{[]string{"--kafka-ca-file", filepath.Join(dir, "none.pem")}, nil, "tls.ca_file"},
		{[]string{"--kafka-tls=false", "--kafka-server-name", "k"}, nil, "--kafka-tls=false contradicts"},
		{nil, map[string]string{"SLUICE_KAFKA_TLS": "sometimes"}, "SLUICE_KAFKA_TLS"},
	} {
		env := map[string]string{"SLUICE_BROKERS": "127.0.0.1:1"}
		for k, v := range tc.env {
			env[k] = v
		}
		_, _, err := runCLI(t, env, append([]string{"gateway", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0"}, tc.args...)...)
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%v: exit %d, %v; want 2 saying %q", tc.args, ExitCode(err), err, tc.says)
		}
	}
}

// TestDevKafkaFlagsNeedBrokers: the embedded broker is plaintext, so a
// security flag without --brokers is a mistake named with exit code 2.
func TestDevKafkaFlagsNeedBrokers(t *testing.T) {
	t.Parallel()
	_, _, err := runCLI(t, nil, "dev", "--http", "127.0.0.1:0", "--grpc", "127.0.0.1:0", "--kafka-sasl-mechanism", "PLAIN")
	if ExitCode(err) != 2 || !strings.Contains(err.Error(), "--kafka-sasl-mechanism applies to --brokers") {
		t.Fatalf("exit %d, %v", ExitCode(err), err)
	}
}
