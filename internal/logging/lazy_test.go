package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// zapLogger is a logger like the agent's (zap through zapr, JSON, with the caller) writing to
// buf, without timestamps.
func zapLogger(buf *bytes.Buffer, level zapcore.Level) logr.Logger {
	enc := zap.NewProductionEncoderConfig()
	enc.TimeKey = ""
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(buf), zap.NewAtomicLevelAt(level))
	return zapr.NewLogger(zap.New(core, zap.AddCaller()))
}

// writeLines logs through names, values, V levels, call depths and errors; every line names its
// caller, so a wrong call depth shows.
func writeLines(log logr.Logger) {
	l := log.WithName("controllers").WithValues("controller", "tasks")
	req := l.WithValues("reconcileID", "r-1").WithValues("task", "t-1", "type", "ECHO")
	req.Info("Task started", "timeout", "1h")
	req.WithValues().Info("No values added") // as controller-runtime's log.FromContext does
	req.V(1).Info("Task succeeded")
	req.Error(errors.New("boom"), "Task failed", "reason", "Failed")
	helper := func(log logr.Logger) { log.WithCallDepth(1).Info("Logged by a helper") }
	helper(req.WithName("sub"))
	l.Info("Parent unchanged")
	req.Info("Written twice")
	req.Info("Written twice")
}

// TestLazyWritesTheSame: a lazy logger writes what the logger it wraps writes, line for line,
// at every level.
func TestLazyWritesTheSame(t *testing.T) {
	t.Parallel()
	for _, level := range []zapcore.Level{zapcore.Level(-1), zapcore.InfoLevel, zapcore.ErrorLevel} {
		t.Run(level.String(), func(t *testing.T) {
			t.Parallel()
			var eager, lazy bytes.Buffer
			writeLines(zapLogger(&eager, level))
			writeLines(Lazy(zapLogger(&lazy, level)))
			if eager.Len() == 0 {
				t.Fatal("nothing written")
			}
			if !strings.Contains(eager.String(), `"caller":"logging/lazy_test.go:`) {
				t.Fatalf("no caller in %s", eager.String())
			}
			if diff := cmp.Diff(strings.Split(eager.String(), "\n"), strings.Split(lazy.String(), "\n")); diff != "" {
				t.Errorf("lazy logger wrote otherwise (-eager +lazy):\n%s", diff)
			}
		})
	}
}

// countingSink counts the calls that build loggers.
type countingSink struct {
	logr.LogSink
	with *int
}

func (s countingSink) WithValues(kv ...any) logr.LogSink {
	*s.with++
	return countingSink{s.LogSink.WithValues(kv...), s.with}
}

func (s countingSink) WithName(name string) logr.LogSink {
	*s.with++
	return countingSink{s.LogSink.WithName(name), s.with}
}

// TestLazyDefers: loggers that never write never reach the sink; one that writes is built once.
func TestLazyDefers(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	with := 0
	log := Lazy(logr.New(countingSink{zapLogger(&buf, zapcore.ErrorLevel).GetSink(), &with}))
	for range 100 {
		l := log.WithName("sync").WithValues("task", "t-1")
		l.Info("Not written at error level")
		l.V(1).Info("Nor this")
	}
	if with != 0 {
		t.Errorf("%d calls reached the sink, want 0", with)
	}
	l := log.WithName("sync").WithValues("task", "t-1")
	l.Error(errors.New("boom"), "Written")
	l.Error(errors.New("boom"), "Written again")
	if with != 2 {
		t.Errorf("%d calls reached the sink, want 2", with)
	}
	if n := strings.Count(buf.String(), `"msg":"Written`); n != 2 {
		t.Errorf("%d lines written, want 2:\n%s", n, buf.String())
	}
}

// TestLazyNoValuesNoSink: WithValues with no values (controller-runtime's log.FromContext calls
// it so on every use) makes no new logger. Not parallel: AllocsPerRun.
func TestLazyNoValuesNoSink(t *testing.T) {
	log := Lazy(zapLogger(&bytes.Buffer{}, zapcore.InfoLevel))
	if n := testing.AllocsPerRun(100, func() { log.WithValues().V(1).Info("Not written") }); n != 0 {
		t.Errorf("WithValues with no values: %v allocations, want 0", n)
	}
}

func BenchmarkLoggerPerTask(b *testing.B) {
	for _, bc := range []struct {
		name string
		wrap func(logr.Logger) logr.Logger
	}{
		{"zapr", func(l logr.Logger) logr.Logger { return l }},
		{"lazy", Lazy},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var buf bytes.Buffer
			log := bc.wrap(zapLogger(&buf, zapcore.InfoLevel)).WithName("controllers")
			b.ReportAllocs()
			for b.Loop() {
				l := log.WithValues("reconcileID", "r-1").WithValues("task", "t-1", "type", "ECHO")
				l.V(1).Info("Task started")
			}
		})
	}
}
