package e2e

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-serve/sluice/streams"
)

// TestKafkaSecured proves that under SLUICE_TEST_KAFKA_SECURE the suite's
// broker refuses what is not TLS and SCRAM: so every other test that
// passes in that mode went through the secured path, replica processes
// included.
func TestKafkaSecured(t *testing.T) {
	if os.Getenv("SLUICE_TEST_KAFKA_SECURE") == "" || len(brokers()) > 0 {
		t.Skip("the embedded broker is plaintext: run with SLUICE_TEST_KAFKA_SECURE=1")
	}
	t.Parallel()
	if streams.SecurityOf(plat.Brokers).IsZero() {
		t.Fatal("the platform registered no Kafka security")
	}
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
