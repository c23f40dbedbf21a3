package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"testing"
)

func TestVersionString(t *testing.T) {
	goInfo := fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	stamped := &debug.BuildInfo{Main: debug.Module{Path: "github.com/haechi-sec/haechi", Version: "v0.0.0-20261206200000-6cb679a21658+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "6cb679a216583803e7def9e2bfccea1e35dcc478"},
			{Key: "vcs.time", Value: "2026-12-06T20:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	release := &debug.BuildInfo{Main: debug.Module{Path: "github.com/haechi-sec/haechi", Version: "v1.4.0"}}
	noVCS := &debug.BuildInfo{Main: debug.Module{Path: "github.com/haechi-sec/haechi", Version: "(devel)"}}
	for _, tc := range []struct {
		name                    string
		version, revision, date string
		bi                      *debug.BuildInfo
		want                    string
	}{
		{"no build info", "", "", "", nil, "haechi unknown (revision unknown, date unknown; " + goInfo + ")"},
		{"-buildvcs=false checkout", "", "", "", noVCS, "haechi devel (revision unknown, date unknown; " + goInfo + ")"},
		{"go install of a release", "", "", "", release, "haechi v1.4.0 (revision unknown, date unknown; " + goInfo + ")"},
		{"stamped checkout", "", "", "", stamped,
			"haechi v0.0.0-20261206200000-6cb679a21658+dirty (revision 6cb679a21658, date 2026-12-06T20:00:00Z, modified; " + goInfo + ")"},
		{"-ldflags -X overrides", "v2.0.0", "abcdef0", "2026-12-01T00:00:00Z", noVCS,
			"haechi v2.0.0 (revision abcdef0, date 2026-12-01T00:00:00Z; " + goInfo + ")"},
		{"-X version only, VCS from build info", "v2.0.0", "", "", stamped,
			"haechi v2.0.0 (revision 6cb679a21658, date 2026-12-06T20:00:00Z, modified; " + goInfo + ")"},
	} {
		if got := versionString(tc.version, tc.revision, tc.date, tc.bi); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/local/bin/haechi":  "/usr/local/bin/haechi",
		"/opt/my tools/haechi":   "'/opt/my tools/haechi'",
		"/tmp/it's/haechi":       `'/tmp/it'\''s/haechi'`,
		"":                       "''",
		"/tmp/$(rm -rf ~)/x":     "'/tmp/$(rm -rf ~)/x'",
		"C:/go-build123/exe/x+y": "C:/go-build123/exe/x+y",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
