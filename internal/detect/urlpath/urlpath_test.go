package urlpath_test

import (
	"testing"

	"github.com/haechi-sec/haechi/internal/detect/urlpath"
)

func TestTemplate(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/admin/tickets/T-4100023/customers/10042", "/admin/tickets/{}/customers/{}"},
		{"/partner/v1/customers/7?fields=all", "/partner/{}/customers/{}"},
		{"/internal/customers/batch", "/internal/customers/batch"},
		{"", ""},
		{"/a/b/c/d/e/f/g/h/i/j/k/l/m/n", "/a/b/c/d/e/f/g/h/i/j/k/…"},
		{"/files/3f2a9c1e-0000-4b5e-9d2c-1a2b3c4d5e6f", "/files/{}"},
	} {
		if got := urlpath.Template(tc.in); got != tc.want {
			t.Errorf("Template(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"/admin/tickets/T-1/customers/2", "/a?b#c", "////", "/ü/1/🙂"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		got := urlpath.Template(path)
		if urlpath.Template(path) != got {
			t.Fatal("not deterministic")
		}
		if len(got) > len(path)+16 {
			t.Fatalf("template %q longer than its path %q", got, path)
		}
	})
}
