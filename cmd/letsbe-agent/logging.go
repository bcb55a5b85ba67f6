package main

import (
	"fmt"
	"io"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/letsbe/sysadmin-agent/internal/logging"
)

// newLogger builds the process logger (zap through zapr; JSON or console, behind a lazy sink)
// and installs it for controller-runtime and klog, so every line of the process has one format.
func newLogger(format, level string, out io.Writer) (logr.Logger, func(), error) {
	var lvl zapcore.Level
	switch level {
	case "error":
		lvl = zapcore.ErrorLevel
	case "info":
		lvl = zapcore.InfoLevel
	case "debug":
		lvl = zapcore.Level(-1) // logr V(1)
	case "trace":
		lvl = zapcore.Level(-2) // logr V(2)
	default:
		return logr.Logger{}, nil, fmt.Errorf("invalid AGENT_LOG_LEVEL %q", level)
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.TimeKey = "ts"
	encCfg.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	var enc zapcore.Encoder
	if format == "console" {
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	} else {
		enc = zapcore.NewJSONEncoder(encCfg)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), zap.NewAtomicLevelAt(lvl))
	zl := zap.New(core, zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(out))))
	// Per-task and per-request loggers cost nothing until they write (logging.Lazy).
	log := logging.Lazy(zapr.NewLogger(zl))
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	return log, func() { _ = zl.Sync() }, nil
}
