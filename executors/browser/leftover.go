package browser

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// profilePrefix names the temporary browser profiles.
const profilePrefix = "letsbe-browser-"

// staleUnlocked is how old a profile without a running browser's lock must be before it is
// taken for a leftover (a profile is made a moment before its browser starts).
const staleUnlocked = 10 * time.Minute

// RemoveLeftoverProfiles removes the browser profiles in dir (os.TempDir() when empty) that an
// agent killed mid-flow left behind: those whose Chromium lock names a process that no longer
// runs, and those without a lock older than a few minutes. Profiles of browsers still running
// (another agent's, say) stay. It returns how many it removed.
func RemoveLeftoverProfiles(dir string, now time.Time) int {
	if dir == "" {
		dir = os.TempDir()
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), profilePrefix) {
			continue
		}
		profile := filepath.Join(dir, e.Name())
		if !leftover(profile, now) {
			continue
		}
		if os.RemoveAll(profile) == nil {
			removed++
		}
	}
	return removed
}

func leftover(profile string, now time.Time) bool {
	// Chromium's SingletonLock is a symbolic link to "hostname-pid".
	target, err := os.Readlink(filepath.Join(profile, "data", "SingletonLock"))
	if err == nil {
		i := strings.LastIndexByte(target, '-')
		pid, perr := strconv.Atoi(target[i+1:])
		if perr != nil || pid <= 0 {
			return false
		}
		host, _ := os.Hostname()
		if target[:max(i, 0)] != host {
			return false // another machine's (a shared TMPDIR): not ours to judge
		}
		return syscall.Kill(pid, 0) == syscall.ESRCH
	}
	fi, err := os.Stat(profile)
	return err == nil && now.Sub(fi.ModTime()) > staleUnlocked
}
