package tensorflow

import (
	"slices"
	"strings"
	"testing"
)

func TestBytesRoundTrip(t *testing.T) {
	for _, in := range [][]string{{}, {""}, {"a", "", "\x00\xff", strings.Repeat("z", 70000)}} {
		got, err := decodeBytes(encodeBytes(in), len(in))
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !slices.Equal(got, in) {
			t.Errorf("round trip %q -> %q", in, got)
		}
	}
	if _, err := decodeBytes([]byte{3, 0, 0, 0, 'a'}, 1); err == nil || !strings.Contains(err.Error(), "overruns") {
		t.Errorf("overrun: %v", err)
	}
}

func TestNumElementsAndShapes(t *testing.T) {
	if n, err := numElements(nil); n != 1 || err != nil {
		t.Errorf("scalar: %d, %v", n, err)
	}
	if n, err := numElements([]int64{2, 0, 3}); n != 0 || err != nil {
		t.Errorf("[2 0 3]: %d, %v", n, err)
	}
	if _, err := numElements([]int64{2, -1}); err == nil {
		t.Error("negative dim accepted")
	}
	if _, err := numElements([]int64{1 << 40, 1 << 40}); err == nil {
		t.Error("overflow accepted")
	}
	for _, tc := range []struct {
		want, got []int64
		ok        bool
	}{
		{[]int64{-1, 1}, []int64{5, 1}, true},
		{[]int64{-1, 1}, []int64{5, 2}, false},
		{[]int64{-1, 1}, []int64{5}, false},
		{nil, []int64{1, 2, 3}, true},
		{[]int64{}, []int64{}, true},
	} {
		if got := shapeMatches(tc.want, tc.got); got != tc.ok {
			t.Errorf("shapeMatches(%v, %v) = %v", tc.want, tc.got, got)
		}
	}
}
