package executors

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/google/go-cmp/cmp"
)

// TestComposeLoadingConfined: every file compose-go reads is read inside the roots, must be
// a regular file and is size-capped; a refusal names the file and the rule, shows no env
// value, and docker never runs.
func TestComposeLoadingConfined(t *testing.T) {
	t.Parallel()
	const secret = "enrollment-token-s3cr3t"
	web := func(extra string) string { return "services:\n  web:\n    image: nginx\n" + extra }
	tests := []struct {
		name    string
		files   map[string]string // in app/; "outside/x" in the outside directory
		fifo    string            // a FIFO made in app/
		compose string
		wantErr string
	}{
		{name: "env_file outside the roots", compose: web("    env_file: [%OUT%/agent.env]\n"), wantErr: `env_file of service web: "%OUT%/agent.env" is outside the file roots`},
		{name: "env_file /dev/zero", compose: web("    env_file: [/dev/zero]\n"), wantErr: `env_file of service web: "/dev/zero" is outside the file roots`},
		{name: "env_file a FIFO in the root", compose: web("    env_file: [pipe.env]\n"), fifo: "pipe.env", wantErr: `env_file of service web: "%APP%/pipe.env" is not a regular file (a FIFO)`},
		{name: "env_file too large", compose: web("    env_file: [big.env]\n"), files: map[string]string{"big.env": "A=" + strings.Repeat("x", 2000) + "\n"}, wantErr: "larger than the limit of 1024 bytes (AGENT_MAX_FILE_BYTES)"},
		{name: "optional env_file missing is fine but a FIFO is not", compose: web("    env_file:\n      - path: pipe.env\n        required: false\n"), fifo: "pipe.env", wantErr: "is not a regular file (a FIFO)"},
		{name: "include with env_file outside", compose: "include:\n  - path: inc.yaml\n    env_file: %OUT%/agent.env\n" + web("    mem_limit: ${AGENT_TOKEN}\n"), files: map[string]string{"inc.yaml": "services:\n  x:\n    image: busybox\n"}, wantErr: `include env_file "%OUT%/agent.env" is outside the file roots`},
		{name: "include outside", compose: "include:\n  - %OUT%/inc.yaml\n" + web(""), wantErr: `compose file "%OUT%/inc.yaml" is outside the file roots`},
		{name: "include a FIFO", compose: "include:\n  - inc.yaml\n" + web(""), fifo: "inc.yaml", wantErr: `compose file "%APP%/inc.yaml" is not a regular file (a FIFO)`},
		{name: "include with a variable", compose: "include:\n  - ${X:-inc.yaml}\n" + web(""), wantErr: "uses a variable"},
		{name: "include project_directory", compose: "include:\n  - path: inc.yaml\n    project_directory: /\n" + web(""), files: map[string]string{"inc.yaml": "services: {}\n"}, wantErr: "project_directory is not supported"},
		{name: "included file's .env a FIFO", compose: "include:\n  - sub/inc.yaml\n" + web(""), files: map[string]string{"sub/inc.yaml": "services:\n  x:\n    image: busybox\n"}, fifo: "sub/.env", wantErr: `env file "%APP%/sub/.env" is not a regular file (a FIFO)`},
		{name: "extends outside", compose: "services:\n  web:\n    extends:\n      file: %OUT%/base.yaml\n      service: base\n", wantErr: `compose file "%OUT%/base.yaml" is outside the file roots`},
		{name: "extends a FIFO", compose: "services:\n  web:\n    extends:\n      file: base.yaml\n      service: base\n", fifo: "base.yaml", wantErr: "is not a regular file (a FIFO)"},
		{name: "label_file outside", compose: web("    label_file: %OUT%/labels\n"), wantErr: `label_file of service web: "%OUT%/labels" is outside the file roots`},
		{name: "compose file too large", compose: web("    command: [\"" + strings.Repeat("y", 2000) + "\"]\n"), wantErr: "larger than the limit of 1024 bytes"},
		{name: "env_file values masked in errors", compose: web("    env_file: [app.env]\n    ports: [\"${P}\"]\n"), files: map[string]string{"app.env": "P=" + secret + "\n", ".env": "P=" + secret + "\n"}, wantErr: "***"},
		{name: "include env values masked", compose: "include:\n  - path: inc.yaml\n    env_file: inc.env\n" + web(""), files: map[string]string{"inc.env": "T=" + secret + "\n", "inc.yaml": "services:\n  x:\n    image: busybox\n    mem_limit: ${T}\n"}, wantErr: "***"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newComposeFixture(t, nil)
			mustWrite(t, filepath.Join(fx.outside, "agent.env"), "AGENT_TOKEN="+secret+"\n", 0o600)
			mustWrite(t, filepath.Join(fx.outside, "inc.yaml"), "services: {}\n", 0o644)
			mustWrite(t, filepath.Join(fx.outside, "base.yaml"), "services:\n  base:\n    image: nginx\n", 0o644)
			mustWrite(t, filepath.Join(fx.outside, "labels"), "a=b\n", 0o644)
			repl := strings.NewReplacer("%OUT%", fx.outside, "%APP%", fx.app)
			mustWrite(t, filepath.Join(fx.app, "compose.yaml"), repl.Replace(tt.compose), 0o644)
			for name, content := range tt.files {
				writeIn(t, fx.app, name, content)
			}
			if tt.fifo != "" {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(fx.app, tt.fifo)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(fx.app, tt.fifo), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := fx.config()
			cfg.MaxBytes = 1024
			d, err := NewDockerReload(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second) // a FIFO read would hang
			defer cancel()
			_, err = d.Execute(ctx, marshalPayload(t, map[string]any{"compose_path": filepath.Join(fx.app, "compose.yaml")}))
			want := repl.Replace(tt.wantErr)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Execute() error = %v, want one containing %q", err, want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("the error shows a secret: %v", err)
			}
			if runs := fx.docker.Runs(t); len(runs) > 0 {
				t.Errorf("docker ran: %q", runs)
			}
		})
	}
}

// TestComposeLoadingReadsEverythingInside: a project using include, extends, env_file and
// label_file inside the root loads; its revision holds every file read.
func TestComposeLoadingReadsEverythingInside(t *testing.T) {
	t.Parallel()
	fx := newComposeFixture(t, nil)
	for name, content := range map[string]string{
		"compose.yaml": "include:\n  - path: sub/inc.yaml\n    env_file: inc.env\nservices:\n  web:\n    extends:\n      file: base.yaml\n      service: base\n    env_file: [app.env]\n    label_file: labels\n    environment:\n      FROM_DOTENV: ${D}\n",
		".env":         "D=dotenv\n",
		"inc.env":      "IMG=busybox\n",
		"sub/inc.yaml": "services:\n  worker:\n    image: ${IMG}\n",
		"base.yaml":    "services:\n  base:\n    image: nginx\n",
		"app.env":      "A=1\n",
		"labels":       "tier=front\n",
	} {
		writeIn(t, fx.app, name, content)
	}
	lp, err := loadComposeProject(t.Context(), fx.exec.c.roots, DefaultMaxFileBytes, filepath.Join(fx.app, "compose.yaml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var read []string
	for _, f := range lp.files {
		rel, _ := filepath.Rel(fx.app, f.Path)
		read = append(read, rel)
	}
	want := []string{"compose.yaml", "inc.env", ".env", "sub/inc.yaml", "base.yaml", "app.env", "labels"}
	if diff := cmp.Diff(want, read, cmpSorted); diff != "" {
		t.Errorf("files read (-want +got):\n%s", diff)
	}
	web := lp.project.Services["web"]
	if web.Image != "nginx" || *web.Environment["A"] != "1" || *web.Environment["FROM_DOTENV"] != "dotenv" || web.Labels["tier"] != "front" {
		t.Errorf("web = image %q env %v labels %v", web.Image, web.Environment, web.Labels)
	}
	if lp.project.Services["worker"].Image != "busybox" {
		t.Errorf("worker = %+v", lp.project.Services["worker"])
	}
}

// writeIn writes dir/name, making its directory.
func writeIn(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, name), content, 0o644)
}

var cmpSorted = cmp.Transformer("sorted", func(in []string) []string {
	out := append([]string(nil), in...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
})

// TestComposeLoadingCancelled: the load ends with the task's context, whatever the loader is
// doing (here: waiting inside a resource loader).
func TestComposeLoadingCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeoutCause(t.Context(), 100*time.Millisecond, &TimeoutError{After: 100 * time.Millisecond})
	defer cancel()
	block := make(chan struct{})
	defer close(block)
	start := time.Now()
	_, err := underContext(ctx, func() (int, error) { <-block; return 0, nil })
	if _, ok := err.(*TimeoutError); !ok || time.Since(start) > 10*time.Second {
		t.Fatalf("load = %v after %s, want the timeout promptly", err, time.Since(start))
	}
	var _ loader.ResourceLoader = (*composeLoader)(nil)
}
