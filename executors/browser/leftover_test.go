package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestRemoveLeftoverProfiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	host, _ := os.Hostname()
	mk := func(name, lock string, age time.Duration) string {
		p := filepath.Join(dir, profilePrefix+name)
		if err := os.MkdirAll(filepath.Join(p, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if lock != "" {
			if err := os.Symlink(lock, filepath.Join(p, "data", "SingletonLock")); err != nil {
				t.Fatal(err)
			}
		}
		old := time.Now().Add(-age)
		if err := os.Chtimes(p, old, old); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dead := mk("dead", fmt.Sprintf("%s-%d", host, 1<<22+12345), time.Minute) // beyond pid_max
	alive := mk("alive", fmt.Sprintf("%s-%d", host, os.Getpid()), time.Hour)
	fresh := mk("fresh", "", time.Minute)
	stale := mk("stale", "", time.Hour)
	other := mk("otherhost", "elsewhere-1", time.Hour)
	if n := RemoveLeftoverProfiles(dir, time.Now()); n != 2 {
		t.Errorf("removed %d, want 2", n)
	}
	for p, want := range map[string]bool{dead: false, alive: true, fresh: true, stale: false, other: true} {
		if _, err := os.Stat(p); (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", filepath.Base(p), err == nil, want)
		}
	}
}
