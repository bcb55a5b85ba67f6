package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"
)

// The report body is written in one pass into one buffer (appendReport): encoding/json would
// reflect over a wrapper struct per report and per event and compact every nested MarshalJSON
// output again. The bytes are exactly those encoding/json makes of the same fields (its string
// escaping, HTML-safe; a result compacted and HTML-escaped as it does a json.RawMessage):
// TestAppendReportMatchesEncodingJSON and FuzzAppendReport hold it to that.

// marshalReport returns the JSON body of r.
func marshalReport(r Report) ([]byte, error) {
	return appendReport(make([]byte, 0, reportSizeHint(r)), r)
}

// reportSizeHint is about the encoded size of r, so that one allocation usually holds it.
func reportSizeHint(r Report) int {
	n := 160 + len(r.AgentID) + len(r.Status) + len(r.Result) + len(r.Error)
	for _, e := range r.Events {
		n += 48 + len(e.Type) + len(e.Message)
	}
	return n + n/16 // escapes
}

// appendReport appends the JSON body of r: times as RFC 3339 UTC, error only with FAILED, and
// neither result nor finished_at nor error with RUNNING.
func appendReport(b []byte, r Report) ([]byte, error) {
	b = append(b, `{"agent_id":`...)
	b = appendString(b, r.AgentID)
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status)
	running := r.Status == StatusRunning
	if !running && !isNull(r.Result) {
		b = append(b, `,"result":`...)
		var err error
		if b, err = appendCompact(b, r.Result); err != nil {
			return nil, fmt.Errorf("report result: %w", err)
		}
	}
	if r.Status == StatusFailed && r.Error != "" {
		b = append(b, `,"error":`...)
		b = appendString(b, r.Error)
	}
	var err error
	if r.StartedAt != nil && !r.StartedAt.IsZero() {
		b = append(b, `,"started_at":`...)
		if b, err = appendTime(b, *r.StartedAt); err != nil {
			return nil, fmt.Errorf("report started_at: %w", err)
		}
	}
	if !running && r.FinishedAt != nil && !r.FinishedAt.IsZero() {
		b = append(b, `,"finished_at":`...)
		if b, err = appendTime(b, *r.FinishedAt); err != nil {
			return nil, fmt.Errorf("report finished_at: %w", err)
		}
	}
	if len(r.Events) > 0 {
		b = append(b, `,"events":[`...)
		for i, e := range r.Events {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendEvent(b, e); err != nil {
				return nil, err
			}
		}
		b = append(b, ']')
	}
	return append(b, '}'), nil
}

// appendEvent appends the JSON of e: the time as RFC 3339 UTC (omitted when zero), the message
// omitted when empty.
func appendEvent(b []byte, e Event) ([]byte, error) {
	b = append(b, '{')
	if !e.Time.IsZero() {
		b = append(b, `"time":`...)
		var err error
		if b, err = appendTime(b, e.Time); err != nil {
			return nil, fmt.Errorf("event time: %w", err)
		}
		b = append(b, ',')
	}
	b = append(b, `"type":`...)
	b = appendString(b, e.Type)
	if e.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, e.Message)
	}
	return append(b, '}'), nil
}

// appendTime appends t, not zero, as a JSON string: RFC 3339 in UTC with the sub-second digits
// it has.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	t = t.UTC()
	if y := t.Year(); y < 0 || y > 9999 {
		return nil, fmt.Errorf("year %d outside [0,9999]", y)
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

// appendCompact appends the JSON value raw compacted, with <, >, &, U+2028 and U+2029
// escaped in its strings, as encoding/json sends a json.RawMessage; raw that is not valid JSON
// is an error.
func appendCompact(b, raw []byte) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	if err := json.Compact(buf, raw); err != nil {
		return nil, err
	}
	out := buf.Bytes()
	if !needsHTMLEscape(out[len(b):]) {
		return out, nil
	}
	compacted := bytes.Clone(out[len(b):])
	buf.Truncate(len(b))
	json.HTMLEscape(buf, compacted)
	return buf.Bytes(), nil
}

// needsHTMLEscape reports whether compact JSON holds a byte json.HTMLEscape changes.
func needsHTMLEscape(b []byte) bool {
	for i, c := range b {
		switch {
		case c == '<' || c == '>' || c == '&':
			return true
		case c == 0xE2 && i+2 < len(b) && b[i+1] == 0x80 && b[i+2]&^1 == 0xA8:
			return true
		}
	}
	return false
}

// appendString appends s as a JSON string escaped as encoding/json does (HTML-safe): quote,
// backslash and control bytes escaped (\b \f \n \r \t short), <, >, &, U+2028 and U+2029 as
// \u escapes, and each byte of invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
