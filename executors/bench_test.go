package executors

import (
	"encoding/json"
	"os/exec"
	"testing"
)

// BenchmarkShellTrue measures a whole SHELL task running `true`: payload
// decoding, command-line parsing, the allowlist, and Process.Run.
// Compare with BenchmarkBareExecTrue for the executor's overhead.
func BenchmarkShellTrue(b *testing.B) {
	shell, err := NewShell(ShellConfig{AllowedCommands: []string{"true"}})
	if err != nil {
		b.Fatal(err)
	}
	payload := json.RawMessage(`{"cmd": "true"}`)
	ctx := b.Context()
	for b.Loop() {
		if _, err := shell.Execute(ctx, payload); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBareExecTrue is the baseline: os/exec running `true`.
func BenchmarkBareExecTrue(b *testing.B) {
	for b.Loop() {
		if err := exec.Command("true").Run(); err != nil {
			b.Fatal(err)
		}
	}
}
