package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set by the linker: -X main.version=... -X main.commit=...
var (
	version = ""
	commit  = ""
)

func init() {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && commit == "" {
			commit = s.Value
		}
	}
	if version == "" {
		version = "0.0.0-dev"
	}
}

// commitOrUnknown is the commit the binary was built from, or "unknown".
func commitOrUnknown() string {
	if commit == "" {
		return "unknown"
	}
	return commit
}

func versionString() string {
	c := commitOrUnknown()
	return fmt.Sprintf("letsbe-agent %s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
