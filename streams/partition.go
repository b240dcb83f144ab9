package streams

// KeyPartition is the partition, of n, that Kafka's default partitioner
// (and franz-go's, and every client that follows Kafka) gives a record
// with key: the positive murmur2 hash of the key modulo n. The gateway
// uses it to choose keys that land on chosen partitions.
func KeyPartition(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

// murmur2 is the 32-bit MurmurHash2 with Kafka's seed.
func murmur2(b []byte) uint32 {
	const (
		seed = 0x9747b28c
		mul  = 0x5bd1e995
		rot  = 24
	)
	h := uint32(seed) ^ uint32(len(b))
	for ; len(b) >= 4; b = b[4:] {
		k := uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
		k *= mul
		k ^= k >> rot
		h = h*mul ^ k*mul
	}
	switch len(b) {
	case 3:
		h ^= uint32(b[2]) << 16
		fallthrough
	case 2:
		h ^= uint32(b[1]) << 8
		fallthrough
	case 1:
		h ^= uint32(b[0])
		h *= mul
	}
	h ^= h >> 13
	h *= mul
	return h ^ h>>15
}
