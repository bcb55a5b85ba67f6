package executors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"time"
)

// DecodePayload decodes a task payload, which must be a JSON object, into v
// (a pointer to a struct or map).
//
// A payload that is not an object (null, an array, a string, a number,
// nothing), malformed JSON or a field of the wrong type is an
// [InvalidPayloadf] error naming the field. Unknown fields are ignored, so
// newer orchestrators can add fields without breaking older agents.
func DecodePayload(payload json.RawMessage, v any) error {
	if err := requireObject(payload); err != nil {
		return err
	}
	err := json.Unmarshal(payload, v)
	if err == nil {
		return nil
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		if typeErr.Field == "" {
			return InvalidPayloadf("must be %s, got %s", jsonKindOf(typeErr.Type), typeErr.Value)
		}
		return InvalidPayloadf("field %q must be %s, got %s", typeErr.Field, jsonKindOf(typeErr.Type), typeErr.Value)
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return InvalidPayloadf("malformed JSON: %v", err)
	}
	// Anything else (a nil or non-pointer v) is a programming error, not a
	// property of the payload.
	return fmt.Errorf("decode payload: %w", err)
}

// requireObject returns an InvalidPayloadf error unless payload is a
// well-formed JSON object.
func requireObject(payload json.RawMessage) error {
	trimmed := bytes.TrimLeft(payload, " \t\r\n")
	if len(trimmed) == 0 {
		return InvalidPayloadf("must be a JSON object, got nothing")
	}
	if !json.Valid(payload) {
		return InvalidPayloadf("malformed JSON")
	}
	if kind := jsonKindOfValue(trimmed[0]); kind != "object" {
		return InvalidPayloadf("must be a JSON object, got %s", kind)
	}
	return nil
}

// jsonKindOfValue names the JSON type of a valid value from its first byte.
func jsonKindOfValue(first byte) string {
	switch first {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// jsonKindOf names the JSON type that decodes into a Go type, with an article.
func jsonKindOf(t reflect.Type) string {
	if t == nil {
		return "a valid value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	default:
		return "a valid " + t.String()
	}
}

// maxTimeoutSeconds keeps a timeout within a time.Duration.
const maxTimeoutSeconds = math.MaxInt64 / int64(time.Second)

// TimeoutSeconds converts the value of a payload's timeout field (named field in errors, such
// as "timeout_seconds") to a duration: 0 means none, and a fraction of a second is kept (at
// least a millisecond). A negative or too large value is an [InvalidPayloadf] error.
func TimeoutSeconds(field string, secs float64) (time.Duration, error) {
	switch {
	case secs < 0 || math.IsNaN(secs):
		return 0, InvalidPayloadf("%s %v is negative", field, secs)
	case secs > float64(maxTimeoutSeconds):
		return 0, InvalidPayloadf("%s %v is too large", field, secs)
	case secs > 0:
		return max(time.Duration(secs*float64(time.Second)), time.Millisecond), nil
	}
	return 0, nil
}

// WithTimeout returns ctx ending after d with a [*TimeoutError] as its cause, the way a task's
// own timeout_seconds ends it; ctx itself when d is 0 (no timeout of its own).
func WithTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeoutCause(ctx, d, &TimeoutError{After: d})
}
