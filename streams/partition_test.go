package streams

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// partitionKeys returns about n keys of varied lengths: empty, the short
// lengths murmur2 handles in its tail (1, 2, 3), whole words, long keys,
// bytes with the high bit set, and model-style keys, padded with random
// keys from a fixed seed.
func partitionKeys(n int) [][]byte {
	keys := [][]byte{
		{},
		{0}, {0xff}, []byte("a"), []byte("z"),
		{0, 0}, {0x80, 0x7f}, []byte("ab"), []byte("zz"),
		{0, 0, 0}, {0xff, 0xfe, 0xfd}, []byte("abc"), []byte("xyz"),
		[]byte("abcd"), []byte("abcde"), []byte("abcdef"), []byte("abcdefg"), []byte("abcdefgh"),
		[]byte("iris"), []byte("iris#1"), []byte("iris#2"), []byte("resnet-50"), []byte("resnet-50#17"),
		bytes.Repeat([]byte{0xff}, 61),
		[]byte(strings.Repeat("long key ", 30)),
		bytes.Repeat([]byte("x"), 4096),
	}
	r := rand.New(rand.NewPCG(1, 2))
	for len(keys) < n {
		k := make([]byte, r.IntN(40))
		for i := range k {
			k[i] = byte(r.Uint32())
		}
		keys = append(keys, k)
	}
	return keys
}

// KeyPartition agrees with the partitioner franz-go gives keyed records,
// without a broker: StickyKeyPartitioner hashes keys with the same Kafka
// murmur2 as the default UniformBytesPartitioner.
func TestKeyPartitionMatchesKafkaHasher(t *testing.T) {
	t.Parallel()
	keys := partitionKeys(2000)
	for _, n := range []int32{1, 2, 3, 7, 8, 16, 100, 1024} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			tp := kgo.StickyKeyPartitioner(nil).ForTopic("t")
			for _, k := range keys {
				want := tp.Partition(&kgo.Record{Key: k}, int(n))
				got := KeyPartition(k, n)
				if int(got) != want {
					t.Fatalf("KeyPartition(%q, %d) = %d, franz-go's hasher says %d", k, n, got, want)
				}
				if got < 0 || got >= n {
					t.Fatalf("KeyPartition(%q, %d) = %d, out of range", k, n, got)
				}
			}
		})
	}
}

// KeyPartition agrees with the partition that a franz-go producer with
// its default partitioner picks, and the broker stores, for keyed records.
func TestKeyPartitionMatchesProducer(t *testing.T) {
	t.Parallel()
	brokers := startBroker(t)
	tests := []struct {
		name  string
		parts int32
		keys  int
	}{
		{"one partition", 1, 20},
		{"seven partitions", 7, 200},
		{"twelve partitions", 12, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			topic := fmt.Sprintf("keys-%d", tc.parts)
			cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			adm := kadm.NewClient(cl)
			if err := CreateTopics(ctx, adm, TopicSpec{Name: topic, Partitions: tc.parts}); err != nil {
				t.Fatalf("CreateTopics: %v", err)
			}
			keys := partitionKeys(tc.keys)
			recs := make([]*kgo.Record, len(keys))
			for i, k := range keys {
				recs[i] = &kgo.Record{Key: k, Value: []byte{byte(i)}}
			}
			if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatalf("ProduceSync: %v", err)
			}
			perPart := make(map[int32]int64)
			for i, r := range recs {
				want := KeyPartition(keys[i], tc.parts)
				if r.Partition != want {
					t.Errorf("key %q (len %d): producer chose partition %d, KeyPartition says %d", keys[i], len(keys[i]), r.Partition, want)
				}
				perPart[want]++
			}
			// The broker holds as many records on each partition as
			// KeyPartition sends there.
			ends, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatalf("ListEndOffsets: %v", err)
			}
			for p := range tc.parts {
				o, ok := ends.Lookup(topic, p)
				if !ok || o.Err != nil {
					t.Fatalf("no end offset for partition %d: %v", p, o.Err)
				}
				if o.Offset != perPart[p] {
					t.Errorf("partition %d holds %d records, want %d", p, o.Offset, perPart[p])
				}
			}
		})
	}
}
