package logging

import (
	"io"
	"maps"
	"slices"

	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
)

// RouteLogrus sends what libraries log through logrus's standard logger
// (compose-go does) to log: errors as errors, warnings at info level,
// info and debug messages at V(1), trace at V(2); logrus itself writes
// nothing. Call it once at start-up.
func RouteLogrus(log logr.Logger) {
	std := logrus.StandardLogger()
	std.SetOutput(io.Discard)
	std.SetFormatter(discardFormatter{})
	level := logrus.WarnLevel
	if log.V(2).Enabled() {
		level = logrus.TraceLevel
	} else if log.V(1).Enabled() {
		level = logrus.DebugLevel
	}
	std.SetLevel(level)
	std.ReplaceHooks(logrus.LevelHooks{})
	std.AddHook(logrusHook{log: log})
}

// discardFormatter spares formatting entries that are discarded anyway.
type discardFormatter struct{}

func (discardFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }

// logrusHook forwards logrus entries to a logr.Logger.
type logrusHook struct{ log logr.Logger }

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h logrusHook) Fire(e *logrus.Entry) error {
	kv := make([]any, 0, 2*len(e.Data)+2)
	for _, k := range slices.Sorted(maps.Keys(e.Data)) {
		kv = append(kv, k, e.Data[k])
	}
	msg := e.Message
	switch {
	case e.Level <= logrus.ErrorLevel:
		h.log.Error(nil, msg, kv...)
	case e.Level == logrus.WarnLevel:
		h.log.Info(msg, append(kv, "logrusLevel", "warning")...)
	case e.Level <= logrus.DebugLevel:
		h.log.V(1).Info(msg, kv...)
	default:
		h.log.V(2).Info(msg, kv...)
	}
	return nil
}
