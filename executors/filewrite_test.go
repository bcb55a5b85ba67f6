package executors

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fileFixture is a temp directory holding a file root and, beside it, a
// directory that must never be touched.
type fileFixture struct {
	base    string // the temp dir
	root    string // base/root, the only file root
	outside string // base/outside, with a file "secret"
}

func newFileFixture(t *testing.T) *fileFixture {
	t.Helper()
	base := t.TempDir()
	fx := &fileFixture{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{fx.root, fx.outside, filepath.Join(fx.root, "real")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(fx.outside, "secret"), "do not touch", 0o600)
	mustWrite(t, filepath.Join(fx.root, "real", "existing"), "old", 0o640)
	for link, target := range map[string]string{
		"link-file":    filepath.Join(fx.outside, "secret"), // a file outside
		"link-dir":     fx.outside,                          // a directory outside
		"link-up":      "../outside",                        // relative, leading outside
		"abs-link-in":  filepath.Join(fx.root, "real"),      // absolute, though inside
		"link-real":    "real",                              // relative, inside
		"link-inside":  "real/existing",                     // a file inside
		"dangling-out": "../outside/nothing-yet",            // a missing file outside
	} {
		if err := os.Symlink(target, filepath.Join(fx.root, link)); err != nil {
			t.Fatal(err)
		}
	}
	mustWrite(t, filepath.Join(fx.root, "plainfile"), "x", 0o644)
	return fx
}

func mustWrite(t *testing.T, path, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry under dir: type, mode, content digest or
// link target, and owner.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fi, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		desc := fmt.Sprintf("%v %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(path)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:8])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// tempFiles lists leftover temporary files under dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	var found []string
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), tempMarker) {
			found = append(found, path)
		}
		return nil
	})
	return found
}

func newTestFileWrite(t *testing.T, cfg FileConfig) *FileWrite {
	t.Helper()
	w, err := NewFileWrite(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func TestFileWriteRefusals(t *testing.T) {
	t.Parallel()
	fx := newFileFixture(t)
	w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}, MaxBytes: 64})
	big := strings.Repeat("x", 65)
	tests := []struct {
		name      string
		payload   map[string]any
		raw       string // used instead of payload when set
		permanent bool
		wantErr   string
	}{
		{name: "not an object", raw: `["path"]`, permanent: true, wantErr: "invalid payload: must be a JSON object, got array"},
		{name: "path of wrong type", raw: `{"path": 7, "content": ""}`, permanent: true, wantErr: `field "path" must be a string`},
		{name: "missing path", payload: map[string]any{"content": "x"}, permanent: true, wantErr: `field "path" is required`},
		{name: "missing content", payload: map[string]any{"path": fx.root + "/a"}, permanent: true, wantErr: `field "content" is required`},
		{name: "relative path", payload: map[string]any{"path": "root/a", "content": ""}, permanent: true, wantErr: `path "root/a" is not an absolute path`},
		{name: "dot-relative path", payload: map[string]any{"path": "./a", "content": ""}, permanent: true, wantErr: "is not an absolute path"},
		{name: "NUL in path", payload: map[string]any{"path": fx.root + "/a\x00b", "content": ""}, permanent: true, wantErr: "NUL byte"},
		{name: "dot-dot traversal", payload: map[string]any{"path": fx.root + "/../outside/secret", "content": "pwned"}, permanent: true, wantErr: "is outside the file roots (AGENT_FILE_ROOTS: " + fx.root + ")"},
		{name: "deep dot-dot traversal", payload: map[string]any{"path": fx.root + "/real/../../outside/new", "content": "pwned"}, permanent: true, wantErr: "is outside the file roots"},
		{name: "sibling with root as prefix", payload: map[string]any{"path": fx.root + "x/a", "content": ""}, permanent: true, wantErr: "is outside the file roots"},
		{name: "the root itself", payload: map[string]any{"path": fx.root, "content": ""}, permanent: true, wantErr: "is a file root itself"},
		{name: "the root with a slash", payload: map[string]any{"path": fx.root + "/", "content": ""}, permanent: true, wantErr: "is a file root itself"},
		{name: "the root through dot-dot", payload: map[string]any{"path": fx.root + "/real/..", "content": ""}, permanent: true, wantErr: "is a file root itself"},
		{name: "symlink to a file outside", payload: map[string]any{"path": fx.root + "/link-file", "content": "pwned"}, permanent: true, wantErr: "is a symbolic link"},
		{name: "symlink to a file inside", payload: map[string]any{"path": fx.root + "/link-inside", "content": "x"}, permanent: true, wantErr: "is a symbolic link"},
		{name: "dangling symlink outside", payload: map[string]any{"path": fx.root + "/dangling-out", "content": "pwned"}, permanent: true, wantErr: "is a symbolic link"},
		{name: "symlinked parent outside", payload: map[string]any{"path": fx.root + "/link-dir/new", "content": "pwned"}, permanent: true, wantErr: "leaves the file root " + fx.root},
		{name: "symlinked parent outside, relative", payload: map[string]any{"path": fx.root + "/link-up/secret", "content": "pwned"}, permanent: true, wantErr: "leaves the file root"},
		{name: "symlinked parent outside, deeper", payload: map[string]any{"path": fx.root + "/link-dir/a/b/new", "content": "pwned"}, permanent: true, wantErr: "leaves the file root"},
		{name: "absolute symlinked parent", payload: map[string]any{"path": fx.root + "/abs-link-in/new", "content": "x"}, permanent: true, wantErr: "leaves the file root"},
		{name: "a directory", payload: map[string]any{"path": fx.root + "/real", "content": "x"}, permanent: true, wantErr: "is a directory"},
		{name: "parent is a file", payload: map[string]any{"path": fx.root + "/plainfile/a", "content": "x"}, wantErr: "create the parent directories of " + fx.root + "/plainfile/a: a parent is not a directory"},
		{name: "bad base64", payload: map[string]any{"path": fx.root + "/a", "content": "!!!", "encoding": "base64"}, permanent: true, wantErr: "content is not valid base64"},
		{name: "unknown encoding", payload: map[string]any{"path": fx.root + "/a", "content": "", "encoding": "latin1"}, permanent: true, wantErr: `encoding "latin1": want "utf-8" or "base64"`},
		{name: "bad mode", payload: map[string]any{"path": fx.root + "/a", "content": "", "mode": "rw-r--r--"}, permanent: true, wantErr: `mode "rw-r--r--": want an octal permission`},
		{name: "non-octal mode", payload: map[string]any{"path": fx.root + "/a", "content": "", "mode": "0648"}, permanent: true, wantErr: `mode "0648"`},
		{name: "setuid mode", payload: map[string]any{"path": fx.root + "/a", "content": "", "mode": "4755"}, permanent: true, wantErr: `mode "4755"`},
		{name: "mode of wrong type", raw: `{"path": "` + fx.root + `/a", "content": "", "mode": 420}`, permanent: true, wantErr: `field "mode" must be a string`},
		{name: "too large", payload: map[string]any{"path": fx.root + "/a", "content": big}, permanent: true, wantErr: "content is 65 bytes, larger than the limit of 64 bytes (AGENT_MAX_FILE_BYTES)"},
		{name: "too large in base64", payload: map[string]any{"path": fx.root + "/a", "content": base64.StdEncoding.EncodeToString([]byte(big)), "encoding": "base64"}, permanent: true, wantErr: "larger than the limit of 64 bytes"},
		{name: "far too large in base64", payload: map[string]any{"path": fx.root + "/a", "content": strings.Repeat("A", 400), "encoding": "base64"}, permanent: true, wantErr: "larger than the limit of 64 bytes"},
	}
	before := snapshot(t, fx.base)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := json.RawMessage(tt.raw)
			if tt.raw == "" {
				raw = marshalPayload(t, tt.payload)
			}
			res, err := w.Execute(t.Context(), raw)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Execute() = %v, %v; want error containing %q", res, err, tt.wantErr)
			}
			if res != nil {
				t.Errorf("result = %+v, want none", res)
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tt.permanent)
			}
		})
	}
	if diff := cmp.Diff(before, snapshot(t, fx.base)); diff != "" {
		t.Errorf("refused writes changed the tree (-before +after):\n%s", diff)
	}
}

func TestFileWriteRoots(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	missing := filepath.Join(base, "missing")
	nested := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		roots     []string
		path      string
		permanent bool
		wantErr   string
	}{
		{name: "missing root", roots: []string{missing}, path: missing + "/f", wantErr: "file root " + missing + " (AGENT_FILE_ROOTS) does not exist"},
		{name: "no roots", roots: nil, path: base + "/f", permanent: true, wantErr: "is outside the file roots (AGENT_FILE_ROOTS: none)"},
		{name: "nested roots: the inner one", roots: []string{base + "/a", nested}, path: nested + "/f"},
		{name: "nested roots: the outer one", roots: []string{nested, base + "/a/"}, path: base + "/a/f"},
		{name: "the filesystem root", roots: []string{"/"}, path: nested + "/g"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newTestFileWrite(t, FileConfig{Roots: tt.roots})
			_, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": tt.path, "content": "x"}))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if b, err := os.ReadFile(tt.path); err != nil || string(b) != "x" {
					t.Errorf("file %s = %q, %v", tt.path, b, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Execute() error = %v, want %q", err, tt.wantErr)
			}
			if IsPermanent(err) != tt.permanent {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, IsPermanent(err), tt.permanent)
			}
		})
	}
	if _, err := os.Stat(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the missing root was created: %v", err)
	}
	if _, err := NewFileWrite(FileConfig{Roots: []string{"relative/root"}}); err == nil {
		t.Error("NewFileWrite accepted a relative root")
	}
}

func TestFileWrite(t *testing.T) {
	t.Parallel()
	binary := string([]byte{0, 1, 2, 0xff, 0xfe, '\n'})
	tests := []struct {
		name     string
		setup    func(t *testing.T, fx *fileFixture)
		payload  func(fx *fileFixture) map[string]any
		path     string // relative to the root
		want     string
		wantMode fs.FileMode
		wantRes  FileWriteResult // Path filled in by the test
	}{
		{
			name: "new file in new directories",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/new/dir/app.conf", "content": "a=1\n"}
			},
			path:     "new/dir/app.conf",
			want:     "a=1\n",
			wantMode: 0o644,
			wantRes:  FileWriteResult{BytesWritten: 4, SHA256: sha("a=1\n"), Changed: true},
		},
		{
			name: "new file with a mode",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/secret.key", "content": "k", "mode": "0600"}
			},
			path:     "real/secret.key",
			want:     "k",
			wantMode: 0o600,
			wantRes:  FileWriteResult{BytesWritten: 1, SHA256: sha("k"), Changed: true},
		},
		{
			name: "replace keeps the mode",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "new"}
			},
			path:     "real/existing",
			want:     "new",
			wantMode: 0o640,
			wantRes:  FileWriteResult{BytesWritten: 3, SHA256: sha("new"), Changed: true},
		},
		{
			name: "replace with a new mode, written as 0o mode",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "new", "mode": "0o755"}
			},
			path:     "real/existing",
			want:     "new",
			wantMode: 0o755,
			wantRes:  FileWriteResult{BytesWritten: 3, SHA256: sha("new"), Changed: true},
		},
		{
			name: "replace drops set-group-ID",
			setup: func(t *testing.T, fx *fileFixture) {
				if err := os.Chmod(fx.root+"/real/existing", 0o750|fs.ModeSetgid); err != nil {
					t.Fatal(err)
				}
			},
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "new"}
			},
			path:     "real/existing",
			want:     "new",
			wantMode: 0o750,
			wantRes:  FileWriteResult{BytesWritten: 3, SHA256: sha("new"), Changed: true},
		},
		{
			name: "replace drops set-user-ID and sticky",
			setup: func(t *testing.T, fx *fileFixture) {
				if err := os.Chmod(fx.root+"/real/existing", 0o755|fs.ModeSetuid|fs.ModeSticky); err != nil {
					t.Fatal(err)
				}
			},
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "new"}
			},
			path:     "real/existing",
			want:     "new",
			wantMode: 0o755,
			wantRes:  FileWriteResult{BytesWritten: 3, SHA256: sha("new"), Changed: true},
		},
		{
			name: "same content, other mode is rewritten",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "old", "mode": "600"}
			},
			path:     "real/existing",
			want:     "old",
			wantMode: 0o600,
			wantRes:  FileWriteResult{BytesWritten: 3, SHA256: sha("old"), Changed: true},
		},
		{
			name: "identical content is not rewritten",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/real/existing", "content": "old"}
			},
			path:     "real/existing",
			want:     "old",
			wantMode: 0o640,
			wantRes:  FileWriteResult{SHA256: sha("old")},
		},
		{
			name: "base64 binary content",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/bin.dat", "content": base64.StdEncoding.EncodeToString([]byte(binary)), "encoding": "base64"}
			},
			path:     "bin.dat",
			want:     binary,
			wantMode: 0o644,
			wantRes:  FileWriteResult{BytesWritten: len(binary), SHA256: sha(binary), Changed: true},
		},
		{
			name: "empty content",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/empty", "content": "", "encoding": "UTF-8"}
			},
			path:     "empty",
			want:     "",
			wantMode: 0o644,
			wantRes:  FileWriteResult{SHA256: sha(""), Changed: true},
		},
		{
			name: "through a symlinked parent inside the root",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "/link-real/via-link", "content": "v"}
			},
			path:     "real/via-link",
			want:     "v",
			wantMode: 0o644,
			wantRes:  FileWriteResult{BytesWritten: 1, SHA256: sha("v"), Changed: true},
		},
		{
			name: "unclean path",
			payload: func(fx *fileFixture) map[string]any {
				return map[string]any{"path": fx.root + "//real/./../real/x", "content": "v"}
			},
			path:     "real/x",
			want:     "v",
			wantMode: 0o644,
			wantRes:  FileWriteResult{BytesWritten: 1, SHA256: sha("v"), Changed: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFileFixture(t)
			if tt.setup != nil {
				tt.setup(t, fx)
			}
			outside := snapshot(t, fx.outside)
			w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}})
			target := filepath.Join(fx.root, tt.path)
			inodeBefore := inode(target)
			res, err := w.Execute(t.Context(), marshalPayload(t, tt.payload(fx)))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantRes
			want.Path = filepath.Clean(tt.payload(fx)["path"].(string))
			if diff := cmp.Diff(&want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			got, err := os.ReadFile(target)
			if err != nil || string(got) != tt.want {
				t.Errorf("content = %q, %v; want %q", got, err, tt.want)
			}
			fi, err := os.Stat(target)
			if err != nil {
				t.Fatal(err)
			}
			if gotMode := fi.Mode() & (fs.ModePerm | fs.ModeSetgid | fs.ModeSetuid); gotMode != tt.wantMode {
				t.Errorf("mode = %v, want %v", gotMode, tt.wantMode)
			}
			if !tt.wantRes.Changed && inode(target) != inodeBefore {
				t.Errorf("an unchanged file was rewritten")
			}
			if tmp := tempFiles(t, fx.root); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
			if diff := cmp.Diff(outside, snapshot(t, fx.outside)); diff != "" {
				t.Errorf("outside changed (-before +after):\n%s", diff)
			}
		})
	}
}

func inode(path string) uint64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestFileWriteParentsAreCreated0755(t *testing.T) {
	t.Parallel()
	fx := newFileFixture(t)
	w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}})
	if _, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": fx.root + "/p/q/f", "content": ""})); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"p", "p/q"} {
		fi, err := os.Stat(filepath.Join(fx.root, d))
		if err != nil {
			t.Fatal(err)
		}
		// The process umask may only take bits away.
		if fi.Mode().Perm()&^0o755 != 0 || !fi.IsDir() {
			t.Errorf("%s: mode %v, want a directory with at most 0755", d, fi.Mode())
		}
	}
}

func TestFileWriteKeepsOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	fx := newFileFixture(t)
	target := filepath.Join(fx.root, "real", "existing")
	if err := os.Chown(target, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}})
	if _, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": target, "content": "new"})); err != nil {
		t.Fatal(err)
	}
	st := statT(t, target)
	if st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("owner = %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	// A new file belongs to the agent.
	newPath := filepath.Join(fx.root, "real", "new")
	if _, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": newPath, "content": "x"})); err != nil {
		t.Fatal(err)
	}
	if st := statT(t, newPath); st.Uid != 0 {
		t.Errorf("new file owner = %d, want 0", st.Uid)
	}
}

func statT(t *testing.T, path string) *syscall.Stat_t {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t)
}

// TestFileWriteFailingSteps fails the atomic write after each step: before
// the rename the old file is intact, after it the new one is in place, and
// no temporary file is ever left.
func TestFileWriteFailingSteps(t *testing.T) {
	t.Parallel()
	for _, step := range []string{stepCreated, stepWritten, stepSynced, stepRenamed} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			fx := newFileFixture(t)
			w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}})
			injected := errors.New("injected failure")
			w.hook = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			target := filepath.Join(fx.root, "real", "existing")
			_, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": target, "content": "new content"}))
			if !errors.Is(err, injected) {
				t.Fatalf("Execute() error = %v, want the injected failure", err)
			}
			want := "old"
			if step == stepRenamed {
				want = "new content"
			}
			if got, _ := os.ReadFile(target); string(got) != want {
				t.Errorf("content = %q, want %q", got, want)
			}
			if tmp := tempFiles(t, fx.root); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// crashEnv tells TestFileWriteCrashHelper where to write and when to die.
const crashEnv = "LETSBE_TEST_CRASH"

// TestFileWriteCrashHelper is not a test: TestFileWriteCrash runs it in a
// child process, which writes a file and is SIGKILLed after a given step.
func TestFileWriteCrashHelper(t *testing.T) {
	spec := os.Getenv(crashEnv)
	if spec == "" {
		t.Skip("helper process for TestFileWriteCrash")
	}
	step, target, _ := strings.Cut(spec, ":")
	w := newTestFileWrite(t, FileConfig{Roots: []string{filepath.Dir(target)}})
	w.hook = func(s string) error {
		if s == step {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // wait for the signal
		}
		return nil
	}
	_, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": target, "content": "new content"}))
	t.Fatalf("the write finished without a crash: %v", err)
}

// TestFileWriteCrash kills a process in the middle of an atomic write, after
// each step: the target holds the old or the new content, whole, and the
// next write clears the leftover temporary file.
func TestFileWriteCrash(t *testing.T) {
	t.Parallel()
	for _, step := range []string{stepCreated, stepWritten, stepSynced, stepRenamed} {
		t.Run(step, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			target := filepath.Join(dir, "app.conf")
			mustWrite(t, target, "old", 0o644)
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestFileWriteCrashHelper$", "-test.count=1")
			cmd.Env = append(os.Environ(), crashEnv+"="+step+":"+target)
			out, err := cmd.CombinedOutput()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("helper did not die by SIGKILL: %v\n%s", err, out)
			}
			want := "old"
			if step == stepRenamed {
				want = "new content"
			}
			if got, _ := os.ReadFile(target); string(got) != want {
				t.Errorf("after a crash: content = %q, want %q", got, want)
			}
			w := newTestFileWrite(t, FileConfig{Roots: []string{dir}})
			if _, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": target, "content": "again"})); err != nil {
				t.Fatal(err)
			}
			if tmp := tempFiles(t, dir); len(tmp) > 0 {
				t.Errorf("temporary files left after the next write: %v", tmp)
			}
		})
	}
}

// TestFileWriteConcurrent writes one file from many goroutines: every write
// succeeds, the file ends whole, and no temporary file is left.
func TestFileWriteConcurrent(t *testing.T) {
	t.Parallel()
	fx := newFileFixture(t)
	w := newTestFileWrite(t, FileConfig{Roots: []string{fx.root}})
	target := filepath.Join(fx.root, "real", "shared")
	contents := map[string]bool{}
	var wg sync.WaitGroup
	for i := range 16 {
		content := strings.Repeat(fmt.Sprint(i), 1000+i)
		contents[content] = true
		wg.Go(func() {
			if _, err := w.Execute(t.Context(), marshalPayload(t, map[string]any{"path": target, "content": content})); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	got, err := os.ReadFile(target)
	if err != nil || !contents[string(got)] {
		t.Errorf("final content is not one of the writes (%d bytes, %v)", len(got), err)
	}
	if tmp := tempFiles(t, fx.root); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}

func TestParseMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want fs.FileMode
		ok   bool
	}{
		{"0644", 0o644, true}, {"644", 0o644, true}, {"0o600", 0o600, true}, {"0777", 0o777, true},
		{"0", 0, true}, {"0000", 0, true},
		{"", 0, false}, {"0o", 0, false}, {"1777", 0, false}, {"04755", 0, false}, {"-644", 0, false},
		{"+644", 0, false}, {"0x1ff", 0, false}, {"00644", 0, false}, {"6 44", 0, false},
	}
	for _, tt := range tests {
		got, err := parseMode(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseMode(%q) = %v, %v; want %v, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// BenchmarkFileWrite measures a whole FILE_WRITE task of 4 KiB that changes
// the file each time: confinement, temporary file, two fsyncs, rename.
func BenchmarkFileWrite(b *testing.B) {
	root := b.TempDir()
	w, err := NewFileWrite(FileConfig{Roots: []string{root}})
	if err != nil {
		b.Fatal(err)
	}
	payloads := make([]json.RawMessage, 2)
	for i := range payloads {
		payloads[i], _ = json.Marshal(map[string]any{"path": root + "/app/site.conf", "content": strings.Repeat(fmt.Sprint(i), 4096)})
	}
	b.SetBytes(4096)
	i := 0
	for b.Loop() {
		if _, err := w.Execute(b.Context(), payloads[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
