package memsize

import (
	"net/netip"
	"reflect"
	"runtime"
	"strconv"
	"testing"
	"time"
)

type rec struct {
	name  string
	seen  time.Time
	tags  []string
	count int
}

// heapOf measures the live heap build allocates and keeps.
func heapOf(build func() any) (int64, any) {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	v := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc), v
}

// TestOfAgainstHeap compares the estimate with the heap the runtime
// measures for structures shaped like detectors' state: the estimate
// must be within 25 % of it.
func TestOfAgainstHeap(t *testing.T) {
	const n = 50_000
	for _, tc := range []struct {
		name  string
		build func() any
	}{
		{"map[uint64]struct", func() any {
			m := map[uint64][3]int64{}
			for i := range n {
				m[uint64(i)*7919] = [3]int64{int64(i)}
			}
			return m
		}},
		{"map[string]*struct with strings and slices", func() any {
			m := map[string]*rec{}
			for i := range n {
				id := "principal-" + strconv.Itoa(i)
				m[id] = &rec{name: "n-" + strconv.Itoa(i*3), seen: time.Unix(int64(i), 0), tags: []string{"a" + strconv.Itoa(i), "b"}}
			}
			return m
		}},
		{"slice of pointers", func() any {
			s := make([]*rec, 0, n)
			for i := range n {
				s = append(s, &rec{count: i})
			}
			return s
		}},
		{"small maps in a map", func() any {
			m := map[int]map[int32]bool{}
			for i := range n / 10 {
				in := map[int32]bool{}
				for j := range i % 12 {
					in[int32(j)] = true
				}
				m[i] = in
			}
			return m
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			heap, v := heapOf(tc.build)
			est := Of(v)
			runtime.KeepAlive(v)
			ratio := float64(est) / float64(heap)
			t.Logf("measured %d B, estimated %d B (×%.2f)", heap, est, ratio)
			if ratio < 0.75 || ratio > 1.25 {
				t.Errorf("estimate %d B is ×%.2f the measured heap %d B, want within 25 %%", est, ratio, heap)
			}
		})
	}
}

func TestOfEdges(t *testing.T) {
	var nilMap map[string]int
	var nilPtr *rec
	for _, tc := range []struct {
		name string
		v    any
		want int64
	}{
		{"nil", nil, 0},
		{"nil map", nilMap, 0},
		{"nil pointer", nilPtr, 0},
		{"scalar", 42, 0},
		{"time", time.Now(), 0},
		{"string", "abcdefghij", 16},
		{"empty string", "", 0},
		{"byte slice", make([]byte, 100), 112},
		{"pointer", &struct{ a, b int64 }{}, 16},
		{"string slice", []string{"abc"}, 16 + 8},
	} {
		if got := Of(tc.v); got != tc.want {
			t.Errorf("%s: Of = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestRoundUp(t *testing.T) {
	for _, tc := range []struct{ n, want int64 }{{0, 0}, {1, 8}, {8, 8}, {9, 16}, {33, 48}, {32768, 32768}, {32769, 40960}} {
		if got := roundUp(tc.n); got != tc.want {
			t.Errorf("roundUp(%d) = %d, want %d", tc.n, got, tc.want)
		}
	}
}

func BenchmarkOfPointerMap(b *testing.B) {
	m := map[string]*rec{}
	for i := range 100_000 {
		m["p-"+strconv.Itoa(i)] = &rec{name: "x", tags: []string{"t"}}
	}
	b.ResetTimer()
	for range b.N {
		Of(m)
	}
}

func TestSkipping(t *testing.T) {
	a, b := &rec{name: "0123456789abcdef0"}, &rec{}
	q := []*rec{a, b}
	if got, want := Skipping((*rec)(nil)).Of(q), int64(16); got != want {
		t.Errorf("skipping *rec: %d, want %d (the backing array alone)", got, want)
	}
	if got, want := Of(q), int64(16+2*80+24); got != want { // rec is 72 bytes: the 80-byte class
		t.Errorf("following *rec: %d, want %d", got, want)
	}
	type holder struct{ owner *rec }
	if got := Skipping((*rec)(nil)).Of([]holder{{owner: a}}); got != 8 {
		t.Errorf("a skipped pointer field: %d, want 16", got)
	}
}

// A netip.Addr's zone is interned: addresses add only their inline bytes.
func TestAddrIsInline(t *testing.T) {
	m := map[netip.Addr]bool{}
	for i := range 100 {
		m[netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})] = true
		m[netip.MustParseAddr("fe80::1%eth0").Next()] = true
	}
	if got, want := Of(m), MapBytes(len(m), reflect.TypeFor[netip.Addr](), reflect.TypeFor[bool]()); got != want {
		t.Errorf("Of = %d, want the map alone, %d", got, want)
	}
}
