package streams

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams/kafkaauth"
)

// secureBroker starts the embedded broker with the given security and
// returns its addresses and the self-signed files its certificate is in.
func secureBroker(t *testing.T, tlsOn bool, users ...EmbeddedOpt) ([]string, kafkaauth.Files) {
	t.Helper()
	files, err := kafkaauth.SelfSigned(t.TempDir(), "127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	opts := users
	if tlsOn {
		o, err := WithTLS(files.Cert, files.Key, "")
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, o)
	}
	e, err := StartEmbedded(0, "", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e.Brokers(), files
}

// roundTrip creates a topic, produces a record and reads it back.
func roundTrip(ctx context.Context, t *testing.T, cl *kgo.Client) {
	t.Helper()
	if err := CreateTopics(ctx, kadm.NewClient(cl), TopicSpec{Name: "secured", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "secured", Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{"secured": {0: kgo.NewOffset().AtStart()}})
	fs := cl.PollRecords(ctx, 1)
	if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "v" {
		t.Fatalf("read back %v (%v), want the record produced", recs, fs.Errors())
	}
}

func writeSecret(t *testing.T, name, v string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestDialSecured connects with each mechanism, over TLS and not, and
// proves a record goes through; every client of the process dialing the
// same addresses (Options) gets the security Secure registered.
func TestDialSecured(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		mech string
		tls  bool
	}{
		{kafkaauth.ScramSHA512, true}, {kafkaauth.ScramSHA256, true}, {kafkaauth.Plain, true},
		{kafkaauth.ScramSHA512, false}, {"", true},
	} {
		t.Run(tc.mech+"/tls="+map[bool]string{true: "on", false: "off"}[tc.tls], func(t *testing.T) {
			t.Parallel()
			var users []EmbeddedOpt
			if tc.mech != "" {
				users = append(users, WithSASLUser(tc.mech, "app", "s3cret"))
			}
			bs, files := secureBroker(t, tc.tls, users...)
			var cfg kafkaauth.Config
			if tc.tls {
				cfg.TLS = kafkaauth.TLS{Enabled: true, CAFile: files.CA}
			}
			if tc.mech != "" {
				cfg.SASL = kafkaauth.SASL{Mechanism: tc.mech, Username: "app", PasswordFile: writeSecret(t, "pw", "s3cret")}
			}
			if err := Secure(bs, cfg); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cl, err := Dial(ctx, bs, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatalf("%s: %v", cfg, err)
			}
			defer cl.Close()
			roundTrip(ctx, t, cl)
		})
	}
}

// TestDialSecurityRefused: each way the brokers refuse a connection's
// security fails Dial with the sentinel and a message naming the cause,
// within the dial bound.
func TestDialSecurityRefused(t *testing.T) {
	t.Parallel()
	scram := WithSASLUser(kafkaauth.ScramSHA256, "app", "right")
	other, err := kafkaauth.SelfSigned(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		brokerTLS bool
		users     []EmbeddedOpt
		cfg       func(files kafkaauth.Files) kafkaauth.Config
		want      error
		says      string
	}{
		{"wrong password", true, []EmbeddedOpt{scram}, func(f kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: f.CA}, SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA256, Username: "app", Password: "wrong"}}
		}, ErrKafkaAuth, "SCRAM-SHA-256 user app"},
		{"mechanism the user lacks", false, []EmbeddedOpt{scram}, func(kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{SASL: kafkaauth.SASL{Mechanism: kafkaauth.ScramSHA512, Username: "app", Password: "right"}}
		}, ErrKafkaAuth, "SCRAM-SHA-512"},
		{"mechanism the brokers do not enable", false, []EmbeddedOpt{scram}, func(kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{SASL: kafkaauth.SASL{Mechanism: kafkaauth.OAuthBearer, TokenFile: writeSecret(t, "token", "t0k")}}
		}, ErrKafkaAuth, "do not enable SASL mechanism OAUTHBEARER"},
		{"TLS to a plaintext listener", false, nil, func(f kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: f.CA}}
		}, ErrKafkaTLS, "plaintext listener"},
		{"plaintext to a TLS listener", true, nil, func(kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{}
		}, ErrKafkaTLS, "speaks TLS and this client does not"},
		{"SASL missing", false, []EmbeddedOpt{scram}, func(kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{}
		}, ErrKafkaTLS, "do they want TLS or SASL"},
		{"untrusted certificate", true, nil, func(kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: other.CA}}
		}, ErrKafkaTLS, "not trusted"},
		{"server name mismatch", true, nil, func(f kafkaauth.Files) kafkaauth.Config {
			return kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: f.CA, ServerName: "kafka.example.com"}}
		}, ErrKafkaTLS, "tls.server_name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			bs, files := secureBroker(t, tc.brokerTLS, tc.users...)
			if err := Secure(bs, tc.cfg(files)); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			cl, err := Dial(context.Background(), bs, slog.New(slog.DiscardHandler))
			if err == nil {
				cl.Close()
				t.Fatal("Dial succeeded")
			}
			// The bound, plus a dial begun just before it (kgo.DialTimeout
			// of Options bounds it), plus slack for a loaded machine.
			if took := time.Since(start); took > DialTimeout+5*time.Second {
				t.Errorf("Dial took %s, want within the bound %s and one dial", took, DialTimeout)
			}
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("Dial: %v\nwant %v saying %q", err, tc.want, tc.says)
			}
		})
	}
}

// TestDialClientCertificate: a TLS listener that requires a client
// certificate signed by its CA lets a client presenting one through and
// refuses one without it, naming TLS.
func TestDialClientCertificate(t *testing.T) {
	t.Parallel()
	files, err := kafkaauth.SelfSigned(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	tlsOpt, err := WithTLS(files.Cert, files.Key, files.CA)
	if err != nil {
		t.Fatal(err)
	}
	e, err := StartEmbedded(0, "", tlsOpt)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	port := e.Brokers()[0][strings.LastIndexByte(e.Brokers()[0], ':'):]
	with, without := []string{"127.0.0.1" + port}, []string{"localhost" + port} // two addresses, two registrations
	if err := Secure(with, kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: files.CA, CertFile: files.Cert, KeyFile: files.Key}}); err != nil {
		t.Fatal(err)
	}
	if err := Secure(without, kafkaauth.Config{TLS: kafkaauth.TLS{CAFile: files.CA, ServerName: "127.0.0.1"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := Dial(ctx, with, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("with a client certificate: %v", err)
	}
	roundTrip(ctx, t, cl)
	cl.Close()
	cl, err = Dial(ctx, without, slog.New(slog.DiscardHandler))
	if err == nil {
		cl.Close()
		t.Fatal("without a client certificate: Dial succeeded")
	}
	if !errors.Is(err, ErrKafkaTLS) {
		t.Fatalf("without a client certificate: %v, want ErrKafkaTLS", err)
	}
	t.Logf("without a client certificate: %v", err)
}
