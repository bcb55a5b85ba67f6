package controllers

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/utils/clock"

	"github.com/letsbe/sysadmin-agent/api/progress"
	"github.com/letsbe/sysadmin-agent/executors"
	"github.com/letsbe/sysadmin-agent/internal/testpoll"
)

// collect takes batches of task from hub until done reports true of what was received, and
// returns the streams put together and every batch.
func collect(t *testing.T, hub *progress.Hub, task string, done func(map[string]string) bool) (map[string]string, []progress.Batch) {
	t.Helper()
	got := map[string]string{}
	var batches []progress.Batch
	deadline := time.After(20 * time.Second)
	for !done(got) {
		select {
		case <-hub.Ready():
		case <-deadline:
			t.Fatalf("progress incomplete; so far %q", got)
		}
		for {
			id, b, ok := hub.Take()
			if !ok {
				break
			}
			if id != task {
				t.Fatalf("batch of task %q, want %q", id, task)
			}
			for _, c := range b.Output {
				if want := int64(len(got[c.Stream])); c.Offset != want {
					t.Fatalf("chunk of %s at offset %d, want %d (contiguous)", c.Stream, c.Offset, want)
				}
				got[c.Stream] += c.Data
			}
			batches = append(batches, b)
		}
	}
	return got, batches
}

func TestTaskProgressStreams(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-VALUE"
	long := strings.Repeat("0123456789abcdef\n", 2000) // 34 KB: several batches of 4 KiB
	tests := []struct {
		name     string
		masks    []string
		writes   []string
		stream   string
		want     string
		maxBytes int
	}{
		{name: "plain", writes: []string{"one\n", "two\n", "three\n"}, want: "one\ntwo\nthree\n"},
		{
			name:   "secret split across writes",
			masks:  []string{secret},
			writes: []string{"KEY=s3c", "r3t", "-VAL", "UE\nnext s3cr3t-VALUE.", "\n"},
			want:   "KEY=***\nnext ***.\n",
		},
		{
			name:   "longer mask wins",
			masks:  []string{"abc", "abcdef"},
			writes: []string{"xabcd", "efy abcz"},
			want:   "x***y ***z",
		},
		{name: "over many batches", writes: []string{long}, want: long, maxBytes: 4096},
		{name: "runes not cut", writes: []string{strings.Repeat("é€😀", 3000)}, want: strings.Repeat("é€😀", 3000), maxBytes: 2048},
		{name: "stderr", writes: []string{"err\n"}, stream: executors.StreamStderr, want: "err\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			hub := progress.NewHub()
			hub.SetEnabled(true)
			opts := ProgressOptions{Hub: hub, Interval: time.Millisecond, MaxBytes: tt.maxBytes}
			ctx, stop := opts.startProgress(t.Context(), "t-1")
			p := executors.ProgressFrom(ctx)
			p.Mask(tt.masks...)
			stream := tt.stream
			if stream == "" {
				stream = executors.StreamStdout
			}
			for _, w := range tt.writes {
				p.Output(stream, []byte(w))
			}
			got, batches := collect(t, hub, "t-1", func(got map[string]string) bool { return len(got[stream]) >= len(tt.want) })
			stop()
			if diff := cmp.Diff(tt.want, got[stream]); diff != "" {
				t.Errorf("stream (-want +got):\n%s", diff)
			}
			limit := opts.withDefaults().MaxBytes
			for i, b := range batches {
				raw, err := json.Marshal(b)
				if err != nil {
					t.Fatal(err)
				}
				if len(raw) > limit {
					t.Errorf("batch %d is %d bytes as JSON, over the %d limit", i, len(raw), limit)
				}
				for _, c := range b.Output {
					if !strings.Contains(tt.want, c.Data) || (len(c.Data) > 0 && !utf8ValidString(c.Data)) {
						t.Errorf("batch %d chunk not a valid piece of the stream", i)
					}
				}
			}
			if tt.maxBytes > 0 && len(batches) < 2 {
				t.Errorf("%d batches, want several under MaxBytes %d", len(batches), tt.maxBytes)
			}
		})
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestTaskProgressEvents(t *testing.T) {
	t.Parallel()
	hub := progress.NewHub()
	hub.SetEnabled(true)
	opts := ProgressOptions{Hub: hub, Interval: time.Millisecond, Masks: []string{"agent-token-1"}}
	ctx, stop := opts.startProgress(t.Context(), "t-1")
	p := executors.ProgressFrom(ctx)
	p.Mask("hunter22")
	p.Event("Step", `step 1/2 fill "#password" with hunter22 ok`)
	p.Event("Step", "step 2/2 goto https://x/?t=agent-token-1 ok")
	var got []string
	for len(got) < 2 {
		<-hub.Ready()
		for _, b, ok := hub.Take(); ok; _, b, ok = hub.Take() {
			for _, e := range b.Events {
				got = append(got, e.Type+": "+e.Message)
			}
		}
	}
	want := []string{`Step: step 1/2 fill "#password" with *** ok`, "Step: step 2/2 goto https://x/?t=*** ok"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	final := stop()
	if len(final) != 2 || final[0].Message != `step 1/2 fill "#password" with *** ok` {
		t.Errorf("final events = %+v", final)
	}
	p.Event("Late", "after stop")
	p.Output(executors.StreamStdout, []byte("after stop"))
	if hub.Waiting("t-1") {
		t.Error("progress offered after stop")
	}
}

func TestTaskProgressDisabledHub(t *testing.T) {
	t.Parallel()
	hub := progress.NewHub()
	opts := ProgressOptions{Hub: hub, Interval: time.Millisecond}
	ctx, stop := opts.startProgress(t.Context(), "t-1")
	p := executors.ProgressFrom(ctx).(*taskProgress)
	p.Output(executors.StreamStdout, []byte("dropped\n"))
	// Wait until the flusher dropped it (offsets still count it).
	testpoll.Until(t, 10*time.Second, "the flusher to drop the output", func() bool {
		p.mu.Lock()
		off := p.streams[0].offset
		p.mu.Unlock()
		p.signal()
		return off == int64(len("dropped\n"))
	})
	hub.SetEnabled(true)
	p.Output(executors.StreamStdout, []byte("kept\n"))
	<-hub.Ready()
	_, b, ok := hub.Take()
	stop()
	want := progress.Batch{Output: []progress.Chunk{{Stream: "stdout", Offset: 8, Data: "kept\n"}}}
	if diff := cmp.Diff(want, b); !ok || diff != "" {
		t.Errorf("batch (-want +got):\n%s", diff)
	}
}

func TestStartProgressWithoutHub(t *testing.T) {
	t.Parallel()
	ctx, stop := ProgressOptions{}.startProgress(context.Background(), "t-1")
	if _, ok := executors.ProgressFrom(ctx).(*taskProgress); ok {
		t.Error("a Progress without a hub")
	}
	if ev := stop(); ev != nil {
		t.Errorf("stop = %v", ev)
	}
}

// FuzzProgressRedact: however a stream is cut into writes, the redacted stream equals the
// whole stream masked at once, as the executors mask their results.
func FuzzProgressRedact(f *testing.F) {
	f.Add("KEY=secret-one and secret-one-longer\n", "secret-one", "secret-one-longer", uint8(3))
	f.Add("aaaaab", "aab", "ab", uint8(1))
	f.Fuzz(func(t *testing.T, text, m1, m2 string, step uint8) {
		masks := []string{}
		for _, m := range []string{m1, m2} {
			if m != "" {
				masks = append(masks, m)
			}
		}
		tp := newTaskProgress(ProgressOptions{Hub: progress.NewHub()}.withDefaults(), "t")
		tp.Mask(masks...)
		whole := tp.redactString(text)
		pairs := []string{}
		for _, m := range tp.masks {
			pairs = append(pairs, m, progressMask)
		}
		if want := strings.NewReplacer(pairs...).Replace(text); len(pairs) > 0 && whole != want {
			t.Errorf("masked at once = %q, strings.Replacer says %q", whole, want)
		}
		s := &stream{}
		n := max(int(step), 1)
		for i := 0; i < len(text); i += n {
			s.raw = append(s.raw, text[i:min(i+n, len(text))]...)
			tp.redact(s, false)
		}
		tp.redact(s, true)
		if got := string(s.out); got != whole {
			t.Errorf("redacted in writes of %d = %q, at once %q", n, got, whole)
		}
		for _, m := range masks {
			if strings.Contains(whole, m) && !strings.Contains(text, progressMask) && !strings.Contains(m, progressMask) && !overlapsMask(m) {
				t.Errorf("mask %q survives in %q", m, whole)
			}
		}
	})
}

// overlapsMask reports whether m could be formed anew around a "***" replacement.
func overlapsMask(m string) bool { return strings.ContainsRune(m, '*') }

func TestTaskProgressDropsOldestBeyondPending(t *testing.T) {
	t.Parallel()
	hub := progress.NewHub()
	hub.SetEnabled(true)
	opts := ProgressOptions{Hub: hub, Interval: time.Millisecond}
	ctx, stop := opts.startProgress(t.Context(), "t-1")
	defer stop()
	p := executors.ProgressFrom(ctx)
	// One write, before the flusher can take any of it: more than may wait.
	p.Output(executors.StreamStdout, []byte(strings.Repeat("x", maxPending+100)))
	<-hub.Ready()
	_, b, _ := hub.Take()
	if len(b.Output) != 1 || b.Output[0].Offset < 100 {
		t.Fatalf("first chunk %+v: want the oldest 100+ bytes dropped", b.Output)
	}
}

// sincePanics is a clock whose Since panics: only the flusher calls it, before its second batch.
type sincePanics struct{ clock.RealClock }

func (sincePanics) Since(time.Time) time.Duration { panic("clock fell over") }

// TestTaskProgressFlusherPanic: a panic in the flusher ends the Task's live progress, not the
// agent (the flusher runs on a goroutine of its own); the final events say so, and the
// executor's calls after it neither block nor offer anything.
func TestTaskProgressFlusherPanic(t *testing.T) {
	t.Parallel()
	hub := progress.NewHub()
	hub.SetEnabled(true)
	opts := ProgressOptions{Hub: hub, Interval: time.Millisecond, Clock: sincePanics{}}
	ctx, stop := opts.startProgress(t.Context(), "t-1")
	p := executors.ProgressFrom(ctx)
	p.Event("Step", "one")
	<-hub.Ready()
	for _, _, ok := hub.Take(); ok; _, _, ok = hub.Take() {
	}
	p.Event("Step", "two") // the flusher waits out the interval: Since panics
	testpoll.Until(t, 20*time.Second, "the flusher's end", func() bool {
		p.Event("Step", "more")
		tp := p.(*taskProgress)
		tp.mu.Lock()
		defer tp.mu.Unlock()
		return tp.stopped
	})
	final := stop()
	last := final[len(final)-1]
	if last.Type != "Warning" || !strings.Contains(last.Message, "live progress stopped after an internal error (panic: clock fell over)") {
		t.Errorf("last final event = %+v, want the flusher's panic", last)
	}
	if hub.Waiting("t-1") {
		t.Error("progress offered after the flusher ended")
	}
}
