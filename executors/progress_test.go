package executors

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// recordedProgress is a Progress that keeps everything, for tests.
type recordedProgress struct {
	mu     sync.Mutex
	events []string
	out    map[string]*strings.Builder
	masks  []string
}

func (r *recordedProgress) Event(reason, message string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, reason+": "+message)
}

func (r *recordedProgress) Output(stream string, p []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.out == nil {
		r.out = map[string]*strings.Builder{}
	}
	if r.out[stream] == nil {
		r.out[stream] = &strings.Builder{}
	}
	r.out[stream].Write(p)
}

func (r *recordedProgress) Mask(values ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.masks = append(r.masks, values...)
}

func (r *recordedProgress) stream(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if b := r.out[name]; b != nil {
		return b.String()
	}
	return ""
}

func TestProgressFromDiscardsWithoutOne(t *testing.T) {
	t.Parallel()
	p := ProgressFrom(t.Context())
	p.Event("Step", "nobody listens")
	p.Output(StreamStdout, []byte("dropped"))
	p.Mask("x")
	if streaming(t.Context()) {
		t.Error("streaming(ctx without Progress) = true")
	}
	var nilProgress Progress
	if streaming(WithProgress(t.Context(), nilProgress)) {
		t.Error("streaming(ctx with a nil Progress) = true")
	}
}

func TestProcessRunStreamsOutput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		argv []string
		max  int
	}{
		{name: "both streams", argv: []string{"sh", "-c", `for i in 1 2 3; do echo out $i; echo err $i >&2; done`}},
		{name: "nothing", argv: []string{"true"}},
		// The stream carries everything; only the result is capped.
		{name: "over the cap", argv: []string{"sh", "-c", `i=0; while [ $i -lt 200 ]; do echo line $i; i=$((i+1)); done`}, max: 64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recordedProgress{}
			ctx := WithProgress(t.Context(), rec)
			res, err := testProcess(ProcessConfig{MaxOutputBytes: tt.max}).Run(ctx, Command{Argv: tt.argv})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			plain, err := testProcess(ProcessConfig{MaxOutputBytes: tt.max}).Run(context.WithoutCancel(t.Context()), Command{Argv: tt.argv})
			if err != nil {
				t.Fatalf("Run without progress: %v", err)
			}
			if diff := cmp.Diff(plain, res, ignoreDuration); diff != "" {
				t.Errorf("result with progress differs (-without +with):\n%s", diff)
			}
			if !res.Truncated {
				if diff := cmp.Diff(res.Stdout, rec.stream(StreamStdout)); diff != "" {
					t.Errorf("streamed stdout (-result +streamed):\n%s", diff)
				}
				if diff := cmp.Diff(res.Stderr, rec.stream(StreamStderr)); diff != "" {
					t.Errorf("streamed stderr (-result +streamed):\n%s", diff)
				}
				return
			}
			if got := strings.Count(rec.stream(StreamStdout), "\n"); got != 200 {
				t.Errorf("streamed %d lines, want all 200", got)
			}
		})
	}
}

func TestShellMasksProjectEnv(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	app := filepath.Join(root, "app")
	broken := filepath.Join(root, "broken")
	for dir, env := range map[string]string{app: "DB_PASSWORD=hunter2-long\nPORT=80\nAPI_KEY='k-123456'\n", broken: "BAD KEY=1\n"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(env), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, ".env"), []byte("X=not-a-project\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sh, err := NewShell(ShellConfig{AllowedCommands: []string{"cat"}, Process: testProcess(ProcessConfig{}), Roots: []string{root}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want, wantErr string
	}{
		{name: "project directory", dir: app, want: "DB_PASSWORD=***\nPORT=80\nAPI_KEY='***'\n"},
		{name: "outside the roots", dir: outside, want: "X=not-a-project\n"},
		{name: "broken .env", dir: broken, wantErr: "env file " + filepath.Join(broken, ".env")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := &recordedProgress{}
			payload, _ := json.Marshal(map[string]string{"cmd": "cat .env", "cwd": tt.dir})
			res, err := sh.Execute(WithProgress(t.Context(), rec), payload)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Execute error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if diff := cmp.Diff(tt.want, res.(*ProcessResult).Stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if tt.dir == app {
				if diff := cmp.Diff([]string{"hunter2-long", "k-123456"}, rec.masks); diff != "" {
					t.Errorf("progress masks (-want +got):\n%s", diff)
				}
			}
		})
	}
}
