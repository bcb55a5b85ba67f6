package executors

import (
	"context"
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
