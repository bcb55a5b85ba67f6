package executors

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/template"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/go-logr/logr"
	"github.com/sirupsen/logrus"
)

// payloadTimeout validates a task's own timeout_seconds, as SHELL does.
func payloadTimeout(secs float64) (time.Duration, error) {
	switch {
	case secs < 0:
		return 0, InvalidPayloadf("timeout_seconds %v is negative", secs)
	case secs > float64(maxTimeoutSeconds):
		return 0, InvalidPayloadf("timeout_seconds %v is too large", secs)
	case secs > 0:
		return max(time.Duration(secs*float64(time.Second)), time.Millisecond), nil
	}
	return 0, nil
}

// strictInterpolation makes a reference to a variable that is not set (with
// no default) an error: docker compose would warn and use a blank.
func strictInterpolation(o *loader.Options) {
	if o.Interpolate == nil {
		return
	}
	o.Interpolate.Substitute = func(tmpl string, mapping template.Mapping) (string, error) {
		return template.SubstituteWithOptions(tmpl, mapping, template.WithReplacementFunction(
			func(s string, m template.Mapping, cfg *template.Config) (string, error) {
				var missing string
				recording := func(name string) (string, bool) {
					v, ok := m(name)
					if !ok {
						missing = name
					}
					return v, ok
				}
				template.WithoutLogging(cfg)
				v, applied, err := template.DefaultReplacementAppliedFunc(s, recording, cfg)
				if err == nil && !applied && missing != "" {
					return "", fmt.Errorf("variable %s is not set (set it in the project's .env, or write ${%s:-default})", missing, missing)
				}
				return v, err
			}))
	}
}

// selectServices checks the requested services against the project and
// returns the ones to bring up: those (once each, in order), or every
// enabled service.
func selectServices(project *types.Project, requested []string) ([]string, error) {
	if len(requested) == 0 {
		return append([]string{}, project.ServiceNames()...), nil
	}
	known := append(project.ServiceNames(), project.DisabledServiceNames()...)
	var out []string
	for _, s := range requested {
		if !slices.Contains(known, s) {
			return nil, Refusedf("service %q is not in compose project %s (services: %s)", s, project.Name, strings.Join(known, ", "))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

// minMaskedLength is the length from which .env values are masked: shorter
// ones (ports, flags, small numbers) are everywhere in messages and are not
// secrets.
const minMaskedLength = 4

// maskValues returns the values to mask: every value of at least
// minMaskedLength bytes except the given names, longest first.
func maskValues(values map[string]string, except []string) []string {
	var out []string
	for _, v := range values {
		if len(v) >= minMaskedLength && !slices.Contains(except, v) && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return cmp.Or(len(b)-len(a), strings.Compare(a, b)) })
	return out
}

// maskText replaces the given values in s with "***", and cuts what
// compose-go's dotenv parser quotes from a broken file.
func maskText(values []string, s string) string {
	if len(values) > 0 {
		pairs := make([]string, 0, 2*len(values))
		for _, v := range values {
			pairs = append(pairs, v, "***")
		}
		s = strings.NewReplacer(pairs...).Replace(s)
	}
	return maskDotenvQuotes(s)
}

// maskDotenvQuotes cuts the text that compose-go's dotenv errors quote from
// an env file ("unexpected character ... in variable name <line>",
// "unterminated quoted value <value>"): an env_file of a service can hold
// secrets the .env masking does not know.
func maskDotenvQuotes(s string) string {
	for _, marker := range []string{"unterminated quoted value ", " in variable name "} {
		if i := strings.Index(s, marker); i >= 0 {
			end := strings.IndexByte(s[i+len(marker):], '\n')
			if end < 0 {
				s = s[:i+len(marker)] + "[...]"
			} else {
				s = s[:i+len(marker)] + "[...]" + s[i+len(marker)+end:]
			}
		}
	}
	return s
}

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
