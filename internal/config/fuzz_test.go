package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"good", "bad"} {
		files, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yml"))
		for _, p := range files {
			data, err := os.ReadFile(p)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("engine: &e {<<: *e}\n"))
	f.Add([]byte("&a ~\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yml")
		if err == nil {
			if err := c.Validate(); err != nil {
				t.Fatalf("Parse succeeded but Validate fails: %v\n%q", err, data)
			}
		}
		// Decoding may change only fields whose key the input names.
		got := Default()
		if decode(data, "fuzz.yml", &got) != nil {
			return
		}
		untouched(t, reflect.ValueOf(got), reflect.ValueOf(Default()), "", string(data))
	})
}

func untouched(t *testing.T, got, def reflect.Value, path, data string) {
	for i := range got.NumField() {
		f := got.Type().Field(i)
		key := yamlKey(f)
		p := join(path, key)
		if f.Type.Kind() == reflect.Struct {
			untouched(t, got.Field(i), def.Field(i), p, data)
			continue
		}
		if !strings.Contains(data, key) && !reflect.DeepEqual(got.Field(i).Interface(), def.Field(i).Interface()) {
			t.Fatalf("%s changed to %v though the input never names it:\n%q", p, got.Field(i), data)
		}
	}
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"5m", "1d12h", "-1.5d", "0s", "106751d23h47m16.854775807s", "1µs", "7"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			return
		}
		back, err := ParseDuration(d.String())
		if err != nil || back != d {
			t.Fatalf("%q → %d → %q → %d, %v", s, int64(d), d.String(), int64(back), err)
		}
	})
}
