package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
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
