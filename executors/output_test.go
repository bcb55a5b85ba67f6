package executors

import (
	"encoding/base64"
	"encoding/json"
	"maps"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeadTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		limit         int
		writes        []string
		want          string
		wantTruncated bool
	}{
		{name: "empty", limit: 10, want: ""},
		{name: "fits in head", limit: 10, writes: []string{"abc"}, want: "abc"},
		{name: "exactly the limit", limit: 10, writes: []string{"01234", "56789"}, want: "0123456789"},
		{
			name: "one byte over", limit: 10, writes: []string{"0123456789a"},
			want: "01234\n...[1 bytes truncated]...\n6789a", wantTruncated: true,
		},
		{
			name: "byte by byte", limit: 6, writes: strings.Split("abcdefghijklmnop", ""),
			want: "abc\n...[10 bytes truncated]...\nnop", wantTruncated: true,
		},
		{
			name: "ring wraps with uneven writes", limit: 8, writes: []string{"ab", "cdefg", "hij", "klmnopq", "rs"},
			want: "abcd\n...[11 bytes truncated]...\npqrs", wantTruncated: true,
		},
		{
			name: "one huge write", limit: 8, writes: []string{strings.Repeat("x", 100) + "tail"},
			want: "xxxx\n...[96 bytes truncated]...\ntail", wantTruncated: true,
		},
		{
			name: "odd limit", limit: 5, writes: []string{"0123456789"},
			want: "01\n...[5 bytes truncated]...\n789", wantTruncated: true,
		},
		{
			name: "split runes are dropped at the cuts", limit: 8, writes: []string{"aaaé" + strings.Repeat("-", 10) + "éaaa"},
			// head keeps "aaa" + the first byte of é; tail starts with the second byte of é.
			want: "aaa\n...[14 bytes truncated]...\naaa", wantTruncated: true,
		},
		{
			name: "whole runes are kept", limit: 8, writes: []string{"aaé" + strings.Repeat("-", 10) + "éaa"},
			want: "aaé\n...[10 bytes truncated]...\néaa", wantTruncated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHeadTail(tt.limit)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
			if b.truncated() != tt.wantTruncated {
				t.Errorf("truncated() = %v, want %v", b.truncated(), tt.wantTruncated)
			}
		})
	}
}

// TestOutputFieldsKeepEveryByte: every result that carries a process's output sends it by the
// one rule: text when it is valid UTF-8, else base64 of its bytes with "<field>_encoding":
// "base64"; the result's other fields stay as they are.
func TestOutputFieldsKeepEveryByte(t *testing.T) {
	t.Parallel()
	const binary = "ok \xff\xfe\x00 \xc3" // not UTF-8: invalid bytes, a NUL and a cut sequence
	proc := ProcessResult{ExitCode: 3, Stdout: binary, Stderr: "warning: ü\n", DurationMS: 7, Truncated: true}
	processWant := map[string]any{
		"exit_code": 3.0, "stdout": base64.StdEncoding.EncodeToString([]byte(binary)), "stdout_encoding": "base64",
		"stderr": "warning: ü\n", "duration_ms": 7.0, "truncated": true,
	}
	with := func(fields map[string]any) map[string]any {
		out := maps.Clone(processWant)
		maps.Copy(out, fields)
		return out
	}
	tests := []struct {
		name   string
		result any
		want   map[string]any
	}{
		{name: "SHELL", result: &proc, want: processWant},
		{name: "text output", result: ProcessResult{Stdout: "plain\n", Stderr: ""}, want: map[string]any{
			"exit_code": 0.0, "stdout": "plain\n", "stderr": "", "duration_ms": 0.0, "truncated": false,
		}},
		{name: "DOCKER_RELOAD", result: &DockerReloadResult{Project: "app", Revision: 2, Services: []ServiceStatus{}, Process: proc}, want: with(map[string]any{
			"project": "app", "revision": 2.0, "changed": false, "services": []any{}, "rolled_back": false, "rollback_healthy": false,
		})},
		{name: "COMPOSE_LOGS", result: &ComposeLogsResult{Project: "app", Process: proc}, want: with(map[string]any{"project": "app"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := json.Marshal(tt.result)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("JSON (-want +got):\n%s", diff)
			}
		})
	}
}

func TestShorten(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"a longer text", 8, "a longer..."},
		{"größer", 3, "gr..."}, // "ö" is two bytes: the cut moves before it
		{"€uro", 2, "..."},
	}
	for _, tt := range tests {
		if got := Shorten(tt.in, tt.n); got != tt.want {
			t.Errorf("Shorten(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
