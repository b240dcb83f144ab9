package e2e

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// TestKafkaSecured proves that the suite's broker, when secured (the
// embedded one under SLUICE_TEST_KAFKA_SECURE, a real one started with
// KAFKA_SECURITY=sasl_ssl and its SLUICE_KAFKA_* lines in the
// environment), refuses a plaintext client without SASL: so every other
// test that passes in that mode went through the secured path, replica
// processes included.
func TestKafkaSecured(t *testing.T) {
	if streams.SecurityOf(plat.Brokers).IsZero() {
		if os.Getenv("SLUICE_TEST_KAFKA_SECURE") != "" {
			t.Fatal("SLUICE_TEST_KAFKA_SECURE is set but the platform registered no Kafka security")
		}
		t.Skip("the broker is plaintext: run with SLUICE_TEST_KAFKA_SECURE=1 (embedded) or against scripts/kafka.sh with KAFKA_SECURITY=sasl_ssl")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	plain, err := kgo.NewClient(kgo.SeedBrokers(plat.Brokers...), kgo.DialTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if err := plain.Ping(ctx); err == nil {
		t.Fatal("a plaintext client without SASL reached the secured broker")
	}
	secured, err := kgo.NewClient(seed()...)
	if err != nil {
		t.Fatal(err)
	}
	defer secured.Close()
	if err := secured.Ping(ctx); err != nil {
		t.Fatalf("the secured client: %v", err)
	}
}

// TestKafkaSecurityRefusedByBroker: the real broker's refusals named by
// Dial within its bound (scripts/kafka.sh with KAFKA_SECURITY=sasl_ssl):
// a wrong password, a mechanism it does not enable, plaintext to its
// SASL_SSL listener, a CA that did not sign its certificate. The broker
// is dialled as localhost:<port> (its certificate names localhost too),
// an address of its own in the process's registry of security, so the
// suite's clients of 127.0.0.1:<port> keep theirs.
func TestKafkaSecurityRefusedByBroker(t *testing.T) {
	sec := streams.SecurityOf(plat.Brokers)
	if len(brokers()) == 0 || sec.SASL.Mechanism == "" || !sec.TLS.On() {
		t.Skip("needs the real broker with SASL_SSL: KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start, its lines in the environment")
	}
	_, port, err := net.SplitHostPort(plat.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	alias := []string{net.JoinHostPort("localhost", port)}
	other, err := kafkaauth.SelfSigned(t.TempDir(), "localhost")
	if err != nil {
		t.Fatal(err)
	}
	wrong := sec
	wrong.SASL = kafkaauth.SASL{Mechanism: sec.SASL.Mechanism, Username: sec.SASL.Username, Password: "not-the-password"}
	plainMech := sec
	plainMech.SASL = kafkaauth.SASL{Mechanism: kafkaauth.Plain, Username: sec.SASL.Username, Password: "x"}
	untrusted := sec
	untrusted.TLS = kafkaauth.TLS{CAFile: other.CA}
	for _, tc := range []struct {
		name string
		cfg  kafkaauth.Config
		want error
		says string
	}{
		{"wrong password", wrong, streams.ErrKafkaAuth, "refused SASL_SSL SCRAM-SHA-512 user " + sec.SASL.Username},
		{"mechanism not enabled", plainMech, streams.ErrKafkaAuth, "do not enable SASL mechanism PLAIN"},
		{"plaintext to SASL_SSL", kafkaauth.Config{}, streams.ErrKafkaTLS, "speaks TLS and this client does not"},
		{"untrusted certificate", untrusted, streams.ErrKafkaTLS, "not trusted"},
	} {
		t.Run(tc.name, func(t *testing.T) { // one at a time: they share the alias
			if err := streams.Secure(alias, tc.cfg); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cl, err := streams.Dial(context.Background(), alias, testLog)
			if err == nil {
				cl.Close()
				t.Fatal("Dial succeeded")
			}
			if took := time.Since(start); took > streams.DialTimeout+5*time.Second {
				t.Errorf("Dial took %s, want within %s", took, streams.DialTimeout)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Dial: %v\nwant %v saying %q", err, tc.want, tc.says)
			}
			t.Logf("after %s: %v", time.Since(start).Round(time.Millisecond), err)
		})
	}
}

// TestKafkaOAuthBearerOnBroker: OAUTHBEARER with a token file on the real
// broker (scripts/kafka.sh enables it with Kafka's validator of unsigned
// test tokens): a token naming a user connects; once the file holds an
// expired token, a new client is refused naming OAUTHBEARER (the file is
// read again when it changes).
func TestKafkaOAuthBearerOnBroker(t *testing.T) {
	sec := streams.SecurityOf(plat.Brokers)
	if len(brokers()) == 0 || sec.SASL.Mechanism == "" || !sec.TLS.On() {
		t.Skip("needs the real broker with SASL_SSL: KAFKA_SECURITY=sasl_ssl scripts/kafka.sh start, its lines in the environment")
	}
	_, port, err := net.SplitHostPort(plat.Brokers[0])
	if err != nil {
		t.Fatal(err)
	}
	alias := []string{net.JoinHostPort("localhost", port)}
	token := func(exp time.Time) []byte {
		enc := base64.RawURLEncoding.EncodeToString
		now := time.Now().Add(-time.Minute)
		claims := fmt.Sprintf(`{"sub":%q,"iat":%d,"exp":%d}`, sec.SASL.Username, now.Unix(), exp.Unix())
		return []byte(enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(claims)) + ".")
	}
	file := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(file, token(time.Now().Add(time.Hour)), 0o600))
	cfg := kafkaauth.Config{TLS: sec.TLS, SASL: kafkaauth.SASL{Mechanism: kafkaauth.OAuthBearer, TokenFile: file}}
	if err := streams.Secure(alias, cfg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl, err := streams.Dial(ctx, alias, testLog)
	if err != nil {
		t.Fatalf("with a valid token: %v", err)
	}
	cl.Close()
	time.Sleep(10 * time.Millisecond) // a distinct modification time
	must(t, os.WriteFile(file, token(time.Now().Add(-30*time.Second)), 0o600))
	cl, err = streams.Dial(ctx, alias, testLog)
	if err == nil {
		cl.Close()
		t.Fatal("an expired token was accepted")
	}
	if !errors.Is(err, streams.ErrKafkaAuth) || !strings.Contains(err.Error(), "OAUTHBEARER") {
		t.Fatalf("with an expired token: %v, want ErrKafkaAuth naming OAUTHBEARER", err)
	}
	t.Logf("expired token: %v", err)
}
