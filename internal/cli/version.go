package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Version, Revision and Date override what the build info says, set
// at link time by a build that knows better (scripts/build-image.sh):
//
//	go build -ldflags "-X github.com/haechi-sec/haechi/internal/cli.Version=v1.2.3
//	  -X github.com/haechi-sec/haechi/internal/cli.Revision=0123abc
//	  -X github.com/haechi-sec/haechi/internal/cli.Date=2026-12-06T20:00:00Z"
//
// Empty, the binary's build info is used: the module version (a release
// tag, or the pseudo-version `go build` stamps in a git checkout) and the
// VCS revision, time and modified flag (absent with -buildvcs=false).
var (
	Version  = ""
	Revision = ""
	// Date is the revision's commit time (RFC 3339), as vcs.time is.
	Date = ""
)

type versionCmd struct{}

func (versionCmd) Run(e *env) error {
	fmt.Fprintln(e.stdout, versionLine())
	return nil
}

// versionString is the line `haechi version` and `haechi --version` print:
//
//	haechi VERSION (revision REV, date DATE[, modified]; GOVERSION OS/ARCH)
//
// from the overrides first, then bi (nil: no build info). What neither
// knows reads "unknown"; a build from a checkout without VCS stamping has
// the module version "(devel)", printed as "devel".
func versionString(version, revision, date string, bi *debug.BuildInfo) string {
	var modified bool
	if bi != nil {
		if version == "" {
			version = bi.Main.Version
			if version == "(devel)" {
				version = "devel"
			}
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if revision == "" {
					revision = s.Value
				}
			case "vcs.time":
				if date == "" {
					date = s.Value
				}
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	or := func(s string) string {
		if strings.TrimSpace(s) == "" {
			return "unknown"
		}
		return s
	}
	vcs := "revision " + or(revision) + ", date " + or(date)
	if modified {
		vcs += ", modified"
	}
	return fmt.Sprintf("haechi %s (%s; %s %s/%s)", or(version), vcs, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// versionLine is versionString of this binary.
func versionLine() string {
	bi, _ := debug.ReadBuildInfo()
	return versionString(Version, Revision, Date, bi)
}

// version is haechi's version alone (the module version or the -X
// override, "devel" for a checkout build), as alert documents name the
// product version.
func version() string {
	v := Version
	if v == "" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
	}
	if v == "" {
		return "devel"
	}
	return v
}
