// Package memsize estimates the heap a value holds, for detectors'
// per-entity memory report (engine.Footprinter): the bytes reachable from
// a value through maps, slices, strings, pointers and interfaces, each
// allocation rounded up to the Go allocator's size class.
//
// It is an estimate, made to be cheap enough to run on a detector's shard
// every few seconds and conservative where it cannot see:
//   - a map is sized from its length (Go's Swiss tables: groups of 8 slots,
//     at most 7/8 full), not from its capacity: a map that shrank still
//     holds its peak's groups, which the estimate does not count;
//   - memory reachable twice (a string shared by two structures, a pointer
//     held by a map and a queue) is counted at each reference: pass only
//     the owning container of shared pointers;
//   - *time.Location and unique.Handle (a netip.Addr's zone) are never
//     followed: they are shared, long-lived;
//   - channels, functions and unsafe pointers count as their word only.
//
// Types without pointers are sized without visiting their elements, so a
// map or slice of plain values costs O(1) to size, whatever its length.
package memsize

import (
	"reflect"
	"slices"
	"strings"
	"time"
	"unsafe"
)

// Of returns the estimated heap bytes reachable from each of vs (not the
// values' own headers: what they point to). A nil value counts 0.
func Of(vs ...any) int64 { return Skipping().Of(vs...) }

// Sizer estimates like Of, never following pointers of the types it
// skips: a queue of pointers a map owns is sized as its backing array
// alone.
type Sizer struct {
	skip []reflect.Type
}

// Skipping returns a Sizer that counts pointers of the types of ptrs (nil
// pointers of them, e.g. (*T)(nil)) as their word, without following
// them.
func Skipping(ptrs ...any) Sizer {
	var s Sizer
	for _, p := range ptrs {
		if t := reflect.TypeOf(p); t != nil && t.Kind() == reflect.Pointer {
			s.skip = append(s.skip, t)
		}
	}
	return s
}

// Of is memsize.Of, skipping s's pointer types.
func (s Sizer) Of(vs ...any) int64 {
	w := walker{ptrFree: map[reflect.Type]bool{}, skip: s.skip}
	var n int64
	for _, v := range vs {
		if v == nil {
			continue
		}
		n += w.indirect(reflect.ValueOf(v))
	}
	return n
}

type walker struct {
	ptrFree map[reflect.Type]bool
	skip    []reflect.Type
}

var locationType = reflect.TypeFor[time.Location]()

// pointerFree reports whether values of t hold no pointers (nothing to
// visit beyond their inline bytes).
func (w *walker) pointerFree(t reflect.Type) bool {
	if v, ok := w.ptrFree[t]; ok {
		return v
	}
	w.ptrFree[t] = false // recursive types hold pointers
	var free bool
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		free = true
	case reflect.Pointer:
		free = slices.Contains(w.skip, t)
	case reflect.Array:
		free = t.Len() == 0 || w.pointerFree(t.Elem())
	case reflect.Struct:
		free = true
		if t.PkgPath() == "unique" && strings.HasPrefix(t.Name(), "Handle[") {
			break // interned, shared (a netip.Addr's zone)
		}
		for i := range t.NumField() {
			f := t.Field(i).Type
			// A time.Time's location is shared: it adds nothing.
			if f.Kind() == reflect.Pointer && (f.Elem() == locationType || slices.Contains(w.skip, f)) {
				continue
			}
			if !w.pointerFree(f) {
				free = false
				break
			}
		}
	}
	w.ptrFree[t] = free
	return free
}

// indirect returns the heap bytes v refers to (not v's own inline bytes).
func (w *walker) indirect(v reflect.Value) int64 {
	t := v.Type()
	if w.pointerFree(t) {
		return 0
	}
	switch t.Kind() {
	case reflect.String:
		if v.Len() == 0 {
			return 0
		}
		return roundUp(int64(v.Len()))
	case reflect.Pointer:
		if v.IsNil() || t.Elem() == locationType {
			return 0
		}
		e := v.Elem()
		return roundUp(int64(t.Elem().Size())) + w.indirect(e)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		if e.Kind() == reflect.Pointer || e.Kind() == reflect.Map || e.Kind() == reflect.Chan || e.Kind() == reflect.Func || e.Kind() == reflect.UnsafePointer {
			return w.indirect(e)
		}
		// A boxed value (small scalars may be interned; counted anyway).
		return roundUp(int64(e.Type().Size())) + w.indirect(e)
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		n := roundUp(int64(v.Cap()) * int64(t.Elem().Size()))
		if !w.pointerFree(t.Elem()) {
			for i := range v.Len() {
				n += w.indirect(v.Index(i))
			}
		}
		return n
	case reflect.Array:
		var n int64
		for i := range v.Len() {
			n += w.indirect(v.Index(i))
		}
		return n
	case reflect.Struct:
		var n int64
		for i := range v.NumField() {
			n += w.indirect(v.Field(i))
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return 0
		}
		n := MapBytes(v.Len(), t.Key(), t.Elem())
		kFree, eFree := w.pointerFree(t.Key()), w.pointerFree(t.Elem())
		if kFree && eFree {
			return n
		}
		it := v.MapRange()
		for it.Next() {
			if !kFree {
				n += w.indirect(it.Key())
			}
			if !eFree {
				n += w.indirect(it.Value())
			}
		}
		return n
	}
	return 0 // channels, functions, unsafe pointers
}

// MapBytes estimates the bytes of a Go map of n entries with the given key
// and element types (its header, directory, tables and groups; not what
// keys and elements point to). Go's maps are Swiss tables: groups of 8
// slots and an 8-byte control word, at most 7/8 full, tables of at most
// 1,024 slots; keys and elements over 128 bytes are stored indirectly.
func MapBytes(n int, key, elem reflect.Type) int64 {
	const (
		header     = 48 // the map's own struct
		tableBytes = 48 // each table's struct, plus its directory slot
		maxTable   = 1024
	)
	ks, es := slotPart(key), slotPart(elem)
	align := max(int64(key.Align()), int64(elem.Align()))
	if key.Size() > 128 {
		align = max(align, 8)
	}
	slot := alignUp(alignUp(ks, max(int64(elem.Align()), 1))+es, align)
	group := 8 + 8*slot
	if n == 0 {
		return roundUp(header)
	}
	if n <= 8 {
		// A small map is one group, no table.
		return roundUp(header) + roundUp(group)
	}
	capacity := int64(8)
	for capacity*7/8 < int64(n) {
		capacity *= 2
	}
	tables := max(capacity/maxTable, 1)
	perTable := capacity / tables
	return roundUp(header) + tables*(roundUp(tableBytes)+roundUp(perTable/8*group)) + roundUp(tables*8)
}

// slotPart is the bytes a key or element takes in a map slot.
func slotPart(t reflect.Type) int64 {
	if t.Size() > 128 {
		return int64(unsafe.Sizeof(uintptr(0)))
	}
	return int64(t.Size())
}

func alignUp(n, a int64) int64 {
	if a <= 1 {
		return n
	}
	return (n + a - 1) / a * a
}

// roundUp rounds an allocation of n bytes up to the allocator's size class
// (runtime/sizeclasses.go); larger ones to whole 8 KiB pages.
func roundUp(n int64) int64 {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) / 8192 * 8192
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if sizeClasses[mid] >= n {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return sizeClasses[lo]
}

// sizeClasses are the Go allocator's small object size classes.
var sizeClasses = [...]int64{
	8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256,
	288, 320, 352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280,
	1408, 1536, 1792, 2048, 2304, 2688, 3072, 3200, 3456, 4096, 4864, 5376, 6144, 6528,
	6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384, 18432,
	19072, 20480, 21760, 24576, 27264, 28672, 32768,
}
