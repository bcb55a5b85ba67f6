package executors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEnvUpdateTwoNamesOneLock updates one .env concurrently under two names (a symbolic link
// to its directory inside the root): every update survives, as the per-file lock is keyed by
// the file, not by the name.
func TestEnvUpdateTwoNamesOneLock(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "real", ".env"), []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("real", filepath.Join(root, "alias")); err != nil {
		t.Fatal(err)
	}
	e := newTestEnvUpdate(t, FileConfig{Roots: []string{root}})
	const n = 24
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		dir := "real"
		if i%2 == 1 {
			dir = "alias"
		}
		payload, _ := json.Marshal(map[string]any{"path": filepath.Join(root, dir, ".env"), "updates": map[string]string{fmt.Sprintf("K%02d", i): "v"}})
		wg.Go(func() {
			if _, err := e.Execute(t.Context(), payload); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "real", ".env"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if !strings.Contains(string(b), fmt.Sprintf("K%02d=v\n", i)) {
			t.Errorf("update K%02d lost:\n%s", i, b)
		}
	}
}

func newTestEnvUpdate(t *testing.T, cfg FileConfig) *EnvUpdate {
	t.Helper()
	e, err := NewEnvUpdate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestEnvUpdate(t *testing.T) {
	t.Parallel()
	const existing = "# app\nDB_PASS='old'\nKEEP=1\nGONE=x\n"
	tests := []struct {
		name     string
		setup    func(t *testing.T, path string)
		payload  string // %s is the path
		want     string // the file afterwards
		wantMode fs.FileMode
		wantRes  EnvUpdateResult // Path filled in by the test
	}{
		{
			name:     "create",
			payload:  `{"path": %q, "updates": {"B": "2", "A": "1 2"}}`,
			want:     "A='1 2'\nB=2\n",
			wantMode: 0o600,
			wantRes:  EnvUpdateResult{UpdatedKeys: []string{"A", "B"}, RemovedKeys: []string{}, Changed: true},
		},
		{
			name:     "remove only, from a missing file",
			payload:  `{"path": %q, "remove": ["A"]}`,
			wantRes:  EnvUpdateResult{UpdatedKeys: []string{}, RemovedKeys: []string{}},
			wantMode: 0, // no file
		},
		{
			name:     "edit keeps mode",
			setup:    func(t *testing.T, path string) { mustWrite(t, path, existing, 0o640) },
			payload:  `{"path": %q, "updates": {"DB_PASS": "n3w p@ss", "NEW": "v"}, "remove": ["GONE", "NEVER"]}`,
			want:     "# app\nDB_PASS='n3w p@ss'\nKEEP=1\nNEW=v\n",
			wantMode: 0o640,
			wantRes:  EnvUpdateResult{UpdatedKeys: []string{"DB_PASS", "NEW"}, RemovedKeys: []string{"GONE"}, Changed: true},
		},
		{
			name:     "nothing changes",
			setup:    func(t *testing.T, path string) { mustWrite(t, path, existing, 0o644) },
			payload:  `{"path": %q, "updates": {"DB_PASS": "old", "KEEP": "1"}, "remove": ["NEVER"]}`,
			want:     existing,
			wantMode: 0o644,
			wantRes:  EnvUpdateResult{UpdatedKeys: []string{}, RemovedKeys: []string{}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFileFixture(t)
			path := filepath.Join(fx.root, "real", ".env")
			if tt.setup != nil {
				tt.setup(t, path)
			}
			inodeBefore := inode(path)
			e := newTestEnvUpdate(t, FileConfig{Roots: []string{fx.root}})
			res, err := e.Execute(t.Context(), json.RawMessage(fmt.Sprintf(tt.payload, path)))
			if err != nil {
				t.Fatal(err)
			}
			want := tt.wantRes
			want.Path = path
			if diff := cmp.Diff(&want, res); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if tt.wantMode == 0 {
				if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("file was created: %v", err)
				}
				return
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("file (-want +got):\n%s", diff)
			}
			if fi, _ := os.Stat(path); fi.Mode().Perm() != tt.wantMode {
				t.Errorf("mode = %v, want %v", fi.Mode().Perm(), tt.wantMode)
			}
			if !tt.wantRes.Changed && inode(path) != inodeBefore {
				t.Error("an unchanged file was rewritten")
			}
			if tmp := tempFiles(t, fx.root); len(tmp) > 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

func TestEnvUpdateKeepsOwner(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("changing a file's owner needs root")
	}
	fx := newFileFixture(t)
	path := filepath.Join(fx.root, "real", ".env")
	mustWrite(t, path, "A=1\n", 0o640)
	if err := os.Chown(path, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	e := newTestEnvUpdate(t, FileConfig{Roots: []string{fx.root}})
	if _, err := e.Execute(t.Context(), marshalPayload(t, map[string]any{"path": path, "updates": map[string]string{"A": "2"}})); err != nil {
		t.Fatal(err)
	}
	if st := statT(t, path); st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("owner = %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
}

func TestEnvUpdateRefusals(t *testing.T) {
	t.Parallel()
	const secret = "hunter2-s3cr3t"
	fx := newFileFixture(t)
	mustWrite(t, filepath.Join(fx.root, "real", "broken.env"), "A=1\nB=\"unterminated "+secret+"\n", 0o600)
	mustWrite(t, filepath.Join(fx.root, "real", "big.env"), strings.Repeat("A=1\n", 20), 0o600)
	mustWrite(t, filepath.Join(fx.root, "real", "almost.env"), strings.Repeat("A=1\n", 15), 0o600)
	e := newTestEnvUpdate(t, FileConfig{Roots: []string{fx.root}, MaxBytes: 64})
	env := func(name string) string { return filepath.Join(fx.root, "real", name) }
	tests := []struct {
		name      string
		payload   string
		permanent bool
		wantErr   string
	}{
		{"not an object", `"x"`, true, "must be a JSON object"},
		{"value not a string", fmt.Sprintf(`{"path": %q, "updates": {"A": 1}}`, env(".env")), true, `field "updates" must be a string`},
		{"null value", fmt.Sprintf(`{"path": %q, "updates": {"A": null}}`, env(".env")), true, `the value of "A" must be a string, got null`},
		{"nothing to do", fmt.Sprintf(`{"path": %q, "updates": {}}`, env(".env")), true, "nothing to do"},
		{"bad key", fmt.Sprintf(`{"path": %q, "updates": {"A B": %q}}`, env(".env"), secret), true, `key "A B"`},
		{"value injecting a key", fmt.Sprintf(`{"path": %q, "updates": {"A": "x\u0000"}}`, env(".env")), true, "the value of A contains a NUL byte"},
		{"relative path", fmt.Sprintf(`{"path": "real/.env", "updates": {"A": %q}}`, secret), true, "is not an absolute path"},
		{"outside", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.outside+"/.env", secret), true, "is outside the file roots"},
		{"traversal", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.root+"/../outside/secret", secret), true, "is outside the file roots"},
		{"symlink outside", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.root+"/link-file", secret), true, "is a symbolic link"},
		{"symlinked parent", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.root+"/link-dir/.env", secret), true, "leaves the file root"},
		{"missing directory", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.root+"/nodir/.env", secret), false, "directory " + fx.root + "/nodir does not exist"},
		{"the root", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, fx.root, secret), true, "is a file root itself"},
		{"broken file", fmt.Sprintf(`{"path": %q, "updates": {"A": %q}}`, env("broken.env"), secret), false, "env file " + env("broken.env") + ": line 2: the quoted value of B is not terminated"},
		{"file too large", fmt.Sprintf(`{"path": %q, "updates": {"A": "2"}}`, env("big.env")), false, "is 80 bytes, larger than the limit of 64 bytes"},
		{"result too large", fmt.Sprintf(`{"path": %q, "updates": {"LONG": %q}}`, env("almost.env"), secret), false, "would be 80 bytes, larger than the limit of 64 bytes"},
	}
	before := snapshot(t, fx.base)
	for _, tt := range tests {
		res, err := e.Execute(t.Context(), json.RawMessage(tt.payload))
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s: Execute() = %v, %v; want error containing %q", tt.name, res, err, tt.wantErr)
			continue
		}
		if IsPermanent(err) != tt.permanent {
			t.Errorf("%s: IsPermanent(%v) = %v, want %v", tt.name, err, IsPermanent(err), tt.permanent)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows a value: %v", tt.name, err)
		}
	}
	if diff := cmp.Diff(before, snapshot(t, fx.base)); diff != "" {
		t.Errorf("refused edits changed the tree (-before +after):\n%s", diff)
	}
}

// TestEnvUpdateConcurrent edits one file from many goroutines: no update is
// lost.
func TestEnvUpdateConcurrent(t *testing.T) {
	t.Parallel()
	fx := newFileFixture(t)
	path := filepath.Join(fx.root, "real", ".env")
	e := newTestEnvUpdate(t, FileConfig{Roots: []string{fx.root}})
	want := map[string]string{}
	var wg sync.WaitGroup
	for i := range 20 {
		key, value := fmt.Sprintf("K%02d", i), fmt.Sprintf("value %d", i)
		want[key] = value
		wg.Go(func() {
			if _, err := e.Execute(t.Context(), marshalPayload(t, map[string]any{"path": path, "updates": map[string]string{key: value}})); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := composeRead(content)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lost updates (-want +got):\n%s", diff)
	}
}

// TestEnvUpdateFailingWrite: a failed write leaves the file as it was.
func TestEnvUpdateFailingWrite(t *testing.T) {
	t.Parallel()
	fx := newFileFixture(t)
	path := filepath.Join(fx.root, "real", ".env")
	mustWrite(t, path, "A=1\n", 0o600)
	e := newTestEnvUpdate(t, FileConfig{Roots: []string{fx.root}})
	injected := errors.New("disk full")
	e.hook = func(step string) error {
		if step == stepWritten {
			return injected
		}
		return nil
	}
	_, err := e.Execute(t.Context(), marshalPayload(t, map[string]any{"path": path, "updates": map[string]string{"A": "2"}}))
	if !errors.Is(err, injected) {
		t.Fatalf("Execute() error = %v, want the injected failure", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "A=1\n" {
		t.Errorf("file = %q, want it unchanged", got)
	}
	if tmp := tempFiles(t, fx.root); len(tmp) > 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
}
