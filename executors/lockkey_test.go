package executors

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
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
