package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Check verifies dir (which must exist) and every directory above it, as seen through
// symbolic links (the resolved path is checked). The error names the directory at fault.
func Check(dir string) error {
	return check(dir, os.Geteuid())
}

func check(dir string, uid int) error {
	resolved, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	resolved, err = filepath.Abs(resolved)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return fmt.Errorf("state directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("state directory %s: not a directory", dir)
	}
	owner, ok := ownerOf(fi)
	if !ok {
		return nil // no ownership on this platform
	}
	if owner != uid {
		return fmt.Errorf("state directory %s is owned by uid %d, not by the agent's user (uid %d)", resolved, owner, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("state directory %s is writable by group or others (mode %04o): want 0700", resolved, fi.Mode().Perm())
	}
	for p := filepath.Dir(resolved); ; p = filepath.Dir(p) {
		pfi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("state directory %s: parent %s: %w", dir, p, err)
		}
		powner, _ := ownerOf(pfi)
		rootSticky := powner == 0 && pfi.Mode()&fs.ModeSticky != 0
		switch {
		case powner != 0 && powner != uid:
			return fmt.Errorf("state directory %s: parent %s is owned by uid %d (want root or the agent's user): that user could replace the state", resolved, p, powner)
		case pfi.Mode().Perm()&0o022 != 0 && !rootSticky:
			return fmt.Errorf("state directory %s: parent %s is writable by group or others (mode %04o) and not a sticky directory owned by root: they could replace the state", resolved, p, pfi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// CheckFile verifies that path, if it exists, is a regular file of the agent's user that group
// and others cannot write. A missing file is fine.
func CheckFile(path string) error {
	return checkFile(path, os.Geteuid())
}

func checkFile(path string, uid int) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file (%s)", path, fi.Mode().Type())
	}
	if owner, ok := ownerOf(fi); ok && owner != uid {
		return fmt.Errorf("%s is owned by uid %d, not by the agent's user (uid %d)", path, owner, uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("%s is writable by group or others (mode %04o)", path, fi.Mode().Perm())
	}
	return nil
}

func ownerOf(fi fs.FileInfo) (int, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return int(st.Uid), true
}
