package statedir

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	uid := os.Geteuid()
	base := t.TempDir()
	mk := func(t *testing.T, rel string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := mk(t, "good/state", 0o700)
	if err := check(good, uid); err != nil {
		t.Errorf("private dir: %v", err)
	}
	if err := check(mk(t, "groupw/state", 0o770), uid); err == nil || !strings.Contains(err.Error(), "writable by group or others (mode 0770)") {
		t.Errorf("group-writable dir: %v", err)
	}
	mk(t, "worldparent", 0o777)
	if err := check(mk(t, "worldparent/state", 0o700), uid); err == nil || !strings.Contains(err.Error(), "parent "+filepath.Join(base, "worldparent")+" is writable") {
		t.Errorf("world-writable parent: %v", err)
	}
	mk(t, "sticky", 0o777|os.ModeSticky)
	stickyState := mk(t, "sticky/state", 0o700)
	err := check(stickyState, uid)
	if uid == 0 && err != nil {
		t.Errorf("sticky root-owned parent: %v", err)
	}
	if err := check(good, uid+1); err == nil || !strings.Contains(err.Error(), "owned by uid") {
		t.Errorf("dir of another user: %v", err)
	}
	link := filepath.Join(base, "link")
	if err := os.Symlink(filepath.Join(base, "groupw", "state"), link); err != nil {
		t.Fatal(err)
	}
	if err := check(link, uid); err == nil {
		t.Error("a symlink to an unsafe dir passed")
	}
}

// TestCheckOwnedByNobody: a state directory (or a parent) owned by nobody is refused. It needs
// root to chown.
func TestCheckOwnedByNobody(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to chown")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	nuid, _ := strconv.Atoi(nobody.Uid)
	base := t.TempDir()
	dir := filepath.Join(base, "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, nuid, -1); err != nil {
		t.Fatal(err)
	}
	if err := Check(dir); err == nil || !strings.Contains(err.Error(), "owned by uid "+nobody.Uid) {
		t.Errorf("dir owned by nobody: %v", err)
	}
	parent := filepath.Join(base, "p")
	if err := os.MkdirAll(filepath.Join(parent, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(parent, nuid, -1); err != nil {
		t.Fatal(err)
	}
	if err := Check(filepath.Join(parent, "state")); err == nil || !strings.Contains(err.Error(), "parent "+parent+" is owned by uid") {
		t.Errorf("parent owned by nobody: %v", err)
	}
	f := filepath.Join(base, "identity.json")
	if err := os.WriteFile(f, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, nuid, -1); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(f); err == nil {
		t.Error("a file owned by nobody passed")
	}
}

func TestCheckFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "journal.db")
	if err := CheckFile(p); err != nil {
		t.Errorf("missing file: %v", err)
	}
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(p); err != nil {
		t.Errorf("private file: %v", err)
	}
	if err := os.Chmod(p, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(p); err == nil {
		t.Error("world-writable file passed")
	}
	l := filepath.Join(dir, "identity.json")
	if err := os.Symlink(p, l); err != nil {
		t.Fatal(err)
	}
	if err := CheckFile(l); err == nil {
		t.Error("a symlink passed")
	}
}
