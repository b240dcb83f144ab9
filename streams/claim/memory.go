package claim

import (
	"context"
	"slices"
	"strings"
	"sync"
)

// Memory is a Store in memory, for tests: it lists, and counts its calls.
type Memory struct {
	mu   sync.Mutex
	objs map[string][]byte
	gets int
	// Fail, when set, is returned by every call (a store that is down).
	fail error
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory { return &Memory{objs: map[string][]byte{}} }

// Put stores a copy of value; it computes no SHA-256.
func (m *Memory) Put(_ context.Context, key string, value []byte) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return "", m.fail
	}
	m.objs[key] = slices.Clone(value)
	return "", nil
}

// Get returns a copy of the value at key.
func (m *Memory) Get(_ context.Context, key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	if m.fail != nil {
		return nil, m.fail
	}
	b, ok := m.objs[key]
	if !ok {
		return nil, ErrNotFound
	}
	return slices.Clone(b), nil
}

// Delete removes key.
func (m *Memory) Delete(_ context.Context, key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	delete(m.objs, key)
	return nil
}

// List returns the keys under prefix, sorted.
func (m *Memory) List(_ context.Context, prefix string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return nil, m.fail
	}
	var keys []string
	for k := range m.objs {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, nil
}

// Set replaces the value at key (a corrupted or a planted object).
func (m *Memory) Set(key string, value []byte) {
	m.mu.Lock()
	m.objs[key] = value
	m.mu.Unlock()
}

// SetFail makes every later call fail with err (nil: work again).
func (m *Memory) SetFail(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}

// Gets counts the Get calls so far.
func (m *Memory) Gets() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets
}
