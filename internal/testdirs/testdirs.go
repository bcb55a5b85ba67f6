// Package testdirs points the process's temporary and cache directories into one fresh
// directory as the process starts, so that nothing a test or the libraries under it write
// lands outside it. Test helpers import it for this side effect; it is never part of the agent.
//
// It must act before other packages read those directories in their own init: envtest's
// port-reservation cache, for one, is fixed from os.UserCacheDir in an init. Go initializes,
// among the packages whose imports are all initialized, the one first by import path; this
// package sorts before every sigs.k8s.io and k8s.io package and imports only os and
// path/filepath, which every such package also depends on, so its init runs before theirs.
package testdirs

import (
	"os"
	"path/filepath"
)

// Root is TMPDIR, and holds XDG_CACHE_HOME and XDG_DATA_HOME; empty when it could not be
// made (the process keeps its directories then).
var Root string

// originalEnviron is the environment as the process started.
var originalEnviron = os.Environ()

// OriginalEnviron returns the environment as the process started, before this package moved
// the directories: for the go command run by a test (building the agent), whose build cache
// lives under the user's cache directory and must stay warm.
func OriginalEnviron() []string { return append([]string(nil), originalEnviron...) }

func init() {
	// TMPDIR is the root itself, and its name short: it only grows the usual /tmp by a dozen
	// bytes, for programs that put sockets under it (Chromium: at most 107 bytes a path).
	root, err := os.MkdirTemp("", "lbt")
	if err != nil {
		return
	}
	for _, v := range []struct{ env, dir string }{
		{"XDG_CACHE_HOME", "cache"},
		{"XDG_DATA_HOME", "data"},
	} {
		dir := filepath.Join(root, v.dir)
		if os.Mkdir(dir, 0o700) != nil || os.Setenv(v.env, dir) != nil {
			return
		}
	}
	if os.Setenv("TMPDIR", root) != nil {
		return
	}
	Root = root
}

// Cleanup removes Root and everything in it. Call it once, when the process is done with it.
func Cleanup() error {
	if Root == "" {
		return nil
	}
	return os.RemoveAll(Root)
}
