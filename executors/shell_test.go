package executors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// shellFixture is a Shell whose child PATH starts with a temp bin directory.
type shellFixture struct {
	shell *Shell
	root  string // the temp dir
	bin   string // root/bin, first in the child's PATH
}

// writeScript writes an executable shell script.
func writeScript(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

func newShellFixture(t *testing.T, allowed ...string) *shellFixture {
	t.Helper()
	root := t.TempDir()
	bin := filepath.Join(root, "bin")
	// hello prints the path it was started as and its arguments.
	writeScript(t, filepath.Join(bin, "hello"), `echo "$0" "$@"`)
	proc := testProcess(ProcessConfig{Env: []string{"PATH=" + bin + ":/usr/bin:/bin"}})
	shell, err := NewShell(ShellConfig{AllowedCommands: allowed, Process: proc})
	if err != nil {
		t.Fatal(err)
	}
	return &shellFixture{shell: shell, root: root, bin: bin}
}

// marshalPayload builds a SHELL payload.
func marshalPayload(t *testing.T, fields map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewShell(t *testing.T) {
	t.Parallel()
	tests := []struct {
		allowed []string
		wantErr string
	}{
		{allowed: nil},
		{allowed: []string{"ls", "df", "ls"}},
		{allowed: []string{""}, wantErr: `allowed command "": must be a bare program name`},
		{allowed: []string{"/bin/ls"}, wantErr: `allowed command "/bin/ls": must be a bare program name`},
		{allowed: []string{"ls", ".."}, wantErr: `allowed command "..": must be a bare program name`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.allowed), func(t *testing.T) {
			t.Parallel()
			_, err := NewShell(ShellConfig{AllowedCommands: tt.allowed})
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.wantErr {
				t.Errorf("NewShell() error = %q, want %q", got, tt.wantErr)
			}
		})
	}
}

func TestShellAllowlist(t *testing.T) {
	t.Parallel()
	fx := newShellFixture(t, "hello", "true", "hello")
	hello := filepath.Join(fx.bin, "hello")
	// A symlink to the allowed program, under another name.
	link := filepath.Join(fx.root, "links", "greet")
	if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hello, link); err != nil {
		t.Fatal(err)
	}
	// A different program with the allowed name.
	impostor := filepath.Join(fx.root, "other", "hello")
	writeScript(t, impostor, `echo impostor`)
	// A symlink named like an allowed program, to a program that is not.
	fakeTrue := filepath.Join(fx.root, "fake", "true")
	if err := os.MkdirAll(filepath.Dir(fakeTrue), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(impostor, fakeTrue); err != nil {
		t.Fatal(err)
	}
	const refusedSuffix = ` is not allowed (allowed: hello, true)`

	tests := []struct {
		name       string
		cmd        string
		wantStdout string
		wantErr    string
	}{
		{name: "bare name", cmd: "hello a b", wantStdout: hello + " a b\n"},
		{name: "absolute path to the same file", cmd: hello + " a", wantStdout: hello + " a\n"},
		{name: "symlink to it runs the allowed path", cmd: link + " a", wantStdout: hello + " a\n"},
		{name: "path with dots", cmd: fx.bin + "/../bin/hello", wantStdout: hello + "\n"},
		{name: "system program by path", cmd: "/usr/bin/true"},
		{name: "different file with the same base name", cmd: impostor, wantErr: fmt.Sprintf("command %q", impostor) + refusedSuffix},
		{name: "symlink with an allowed name to another file", cmd: fakeTrue, wantErr: fmt.Sprintf("command %q", fakeTrue) + refusedSuffix},
		{name: "unknown command", cmd: "rm -rf /", wantErr: `command "rm"` + refusedSuffix},
		{name: "relative path", cmd: "./hello", wantErr: `command "./hello"` + refusedSuffix},
		{name: "missing path", cmd: fx.root + "/nope/hello", wantErr: fmt.Sprintf("command %q", fx.root+"/nope/hello") + refusedSuffix},
		{name: "directory", cmd: fx.bin, wantErr: fmt.Sprintf("command %q", fx.bin) + refusedSuffix},
		{name: "case matters", cmd: "HELLO", wantErr: `command "HELLO"` + refusedSuffix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := fx.shell.Execute(t.Context(), marshalPayload(t, map[string]any{"cmd": tt.cmd}))
			if tt.wantErr != "" {
				if !errors.Is(err, ErrRefused) {
					t.Fatalf("Execute(%q) = %v, %v; want a refusal", tt.cmd, got, err)
				}
				if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
					t.Errorf("Execute(%q) error mismatch (-want +got):\n%s", tt.cmd, diff)
				}
				if got != nil {
					t.Errorf("Execute(%q) result = %v, want nil", tt.cmd, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Execute(%q) error = %v", tt.cmd, err)
			}
			res := got.(*ProcessResult)
			if diff := cmp.Diff(&ProcessResult{Stdout: tt.wantStdout}, res, ignoreDuration); diff != "" {
				t.Errorf("Execute(%q) mismatch (-want +got):\n%s", tt.cmd, diff)
			}
		})
	}
}

func TestShellAllowlistEmpty(t *testing.T) {
	t.Parallel()
	fx := newShellFixture(t)
	_, err := fx.shell.Execute(t.Context(), marshalPayload(t, map[string]any{"cmd": "hello"}))
	if want := `command "hello" is not allowed (allowed: none)`; err == nil || err.Error() != want {
		t.Errorf("Execute() error = %v, want %q", err, want)
	}
}

func TestShellExecute(t *testing.T) {
	t.Parallel()
	fx := newShellFixture(t, "sh", "pwd", "printf", "sleep", "hello")
	realRoot, err := filepath.EvalSymlinks(fx.root)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload map[string]any
		want    *ProcessResult
		wantErr error
	}{
		{
			name:    "quoted argument",
			payload: map[string]any{"cmd": `printf '%s|' "my dir" a\ b`},
			want:    &ProcessResult{Stdout: "my dir|a b|"},
		},
		{
			name:    "cwd",
			payload: map[string]any{"cmd": "pwd -P", "cwd": fx.root},
			want:    &ProcessResult{Stdout: realRoot + "\n"},
		},
		{
			name:    "non-zero exit returns the result and the exit error",
			payload: map[string]any{"cmd": `sh -c "echo out; echo err >&2; exit 3"`},
			want:    &ProcessResult{ExitCode: 3, Stdout: "out\n", Stderr: "err\n"},
			wantErr: &ExitError{Code: 3},
		},
		{
			name:    "unknown fields are ignored",
			payload: map[string]any{"cmd": "hello", "future_field": []int{1}},
			want:    &ProcessResult{Stdout: filepath.Join(fx.bin, "hello") + "\n"},
		},
		{
			name:    "timeout 0 means none",
			payload: map[string]any{"cmd": "hello", "timeout_seconds": 0},
			want:    &ProcessResult{Stdout: filepath.Join(fx.bin, "hello") + "\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := fx.shell.Execute(t.Context(), marshalPayload(t, tt.payload))
			if diff := cmp.Diff(tt.wantErr, err); diff != "" {
				t.Errorf("Execute() error mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got, ignoreDuration); diff != "" {
				t.Errorf("Execute() result mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShellTimeoutSeconds(t *testing.T) {
	t.Parallel()
	fx := newShellFixture(t, "sleep")
	got, err := fx.shell.Execute(t.Context(), json.RawMessage(`{"cmd": "sleep 300", "timeout_seconds": 0.1}`))
	var te *TimeoutError
	if !errors.As(err, &te) || err.Error() != "timed out after 100ms" {
		t.Fatalf("Execute() error = %v, want \"timed out after 100ms\"", err)
	}
	if _, ok := got.(*ProcessResult); !ok {
		t.Errorf("Execute() result = %#v, want a *ProcessResult", got)
	}
}

func TestShellInvalidPayload(t *testing.T) {
	t.Parallel()
	fx := newShellFixture(t, "ls")
	file := filepath.Join(fx.root, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		payload string
		wantErr string
		refused bool
	}{
		{name: "missing cmd", payload: `{}`, wantErr: `invalid payload: field "cmd" is required`},
		{name: "empty cmd", payload: `{"cmd": ""}`, wantErr: `invalid payload: field "cmd" is required`},
		{name: "blank cmd", payload: `{"cmd": " \n "}`, wantErr: `invalid payload: field "cmd" is required`},
		{name: "cmd not a string", payload: `{"cmd": ["ls"]}`, wantErr: `invalid payload: field "cmd" must be a string, got array`},
		{name: "relative cwd", payload: `{"cmd": "ls", "cwd": "opt/app"}`, wantErr: `invalid payload: cwd "opt/app" is not an absolute path`},
		{name: "missing cwd", payload: `{"cmd": "ls", "cwd": "/nonexistent/letsbe"}`, wantErr: `invalid payload: cwd "/nonexistent/letsbe" is not an existing directory`},
		{name: "cwd is a file", payload: `{"cmd": "ls", "cwd": "` + file + `"}`, wantErr: `invalid payload: cwd "` + file + `" is not an existing directory`},
		{name: "cwd not a string", payload: `{"cmd": "ls", "cwd": 1}`, wantErr: `invalid payload: field "cwd" must be a string, got number`},
		{name: "timeout not a number", payload: `{"cmd": "ls", "timeout_seconds": "30"}`, wantErr: `invalid payload: field "timeout_seconds" must be a number, got string`},
		{name: "negative timeout", payload: `{"cmd": "ls", "timeout_seconds": -1}`, wantErr: `invalid payload: timeout_seconds -1 is negative`},
		{name: "huge timeout", payload: `{"cmd": "ls", "timeout_seconds": 1e300}`, wantErr: `invalid payload: timeout_seconds 1e+300 is too large`},
		{name: "null payload", payload: `null`, wantErr: `invalid payload: must be a JSON object, got null`},
		{name: "string payload", payload: `"ls"`, wantErr: `invalid payload: must be a JSON object, got string`},
		{name: "empty program name", payload: `{"cmd": "'' ls"}`, wantErr: `invalid payload: field "cmd" has an empty program name`},
		{name: "unparsable cmd", payload: `{"cmd": "ls 'x"}`, wantErr: "invalid payload: parse command line: 1:4: reached EOF without closing quote `'`"},
		{name: "shell construct", payload: `{"cmd": "ls | sh"}`, wantErr: `refused: pipe "|" is not allowed`, refused: true},
		{name: "command not allowed", payload: `{"cmd": "rm -rf /"}`, wantErr: `command "rm" is not allowed (allowed: ls)`, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := fx.shell.Execute(t.Context(), json.RawMessage(tt.payload))
			if got != nil {
				t.Errorf("Execute() result = %v, want nil", got)
			}
			want := ErrInvalidPayload
			if tt.refused {
				want = ErrRefused
			}
			if !errors.Is(err, want) || !IsPermanent(err) {
				t.Fatalf("Execute() error = %v, want %v", err, want)
			}
			if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
				t.Errorf("Execute() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func FuzzDecodeShellPayload(f *testing.F) {
	for _, seed := range []string{
		`{"cmd": "df -h"}`,
		`{"cmd": "ls -la", "cwd": "/", "timeout_seconds": 30}`,
		`{"cmd": "ls", "cwd": "/tmp", "timeout_seconds": 0.5, "extra": [1, {"a": null}]}`,
		`{"cmd": "ls | wc"}`,
		`{"cmd": "", "cwd": "rel"}`,
		`{"cmd": 1}`,
		`{"cmd": "ls", "timeout_seconds": -1e308}`,
		`{"cmd": "ls", "timeout_seconds": 9.3e9}`,
		`{"cmd": "echo \"a b\" 'c' d\\ e"}`,
		`null`, `[]`, `"x"`, `1`, ``, `{`, `{"cmd": "ls"} x`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		req, err := parseShellPayload(payload)
		if err != nil {
			if !IsPermanent(err) {
				t.Fatalf("parseShellPayload(%q) error %v is not permanent", payload, err)
			}
			return
		}
		if len(req.argv) == 0 || req.argv[0] == "" {
			t.Fatalf("parseShellPayload(%q) accepted an empty command: %q", payload, req.argv)
		}
		if req.dir != "" && !filepath.IsAbs(req.dir) {
			t.Fatalf("parseShellPayload(%q) accepted a relative cwd %q", payload, req.dir)
		}
		if req.timeout < 0 {
			t.Fatalf("parseShellPayload(%q) accepted a negative timeout %v", payload, req.timeout)
		}
		if strings.ContainsRune(strings.Join(req.argv, ""), 0) {
			t.Fatalf("parseShellPayload(%q) accepted a NUL byte", payload)
		}
	})
}
