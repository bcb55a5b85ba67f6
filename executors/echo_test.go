package executors

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		wantErr string
	}{
		{name: "message", payload: `{"message": "hello"}`},
		{name: "unchanged bytes", payload: " {\"b\": [1, 2.50, \"é\"], \"a\": null}\n"},
		{name: "empty object", payload: `{}`},
		{name: "null", payload: `null`, wantErr: "invalid payload: must be a JSON object, got null"},
		{name: "array", payload: `[1]`, wantErr: "invalid payload: must be a JSON object, got array"},
		{name: "string", payload: `"hi"`, wantErr: "invalid payload: must be a JSON object, got string"},
		{name: "number", payload: `1`, wantErr: "invalid payload: must be a JSON object, got number"},
		{name: "empty", payload: ``, wantErr: "invalid payload: must be a JSON object, got nothing"},
		{name: "malformed", payload: `{"a":`, wantErr: "invalid payload: malformed JSON"},
	}
	echo := NewEcho()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			payload := json.RawMessage(tt.payload)
			got, err := echo.Execute(t.Context(), payload)
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalidPayload) || err.Error() != tt.wantErr {
					t.Fatalf("Execute() = %v, %v; want error %q", got, err, tt.wantErr)
				}
				if got != nil {
					t.Errorf("Execute() result = %v, want nil", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Execute() error = %v", err)
			}
			raw, ok := got.(json.RawMessage)
			if !ok {
				t.Fatalf("Execute() result is a %T, want json.RawMessage", got)
			}
			if diff := cmp.Diff(tt.payload, string(raw)); diff != "" {
				t.Errorf("Execute() result mismatch (-want +got):\n%s", diff)
			}
			// The result does not alias the payload.
			if len(payload) > 0 {
				payload[0] = 'X'
				if raw[0] == 'X' {
					t.Errorf("Execute() result aliases the payload")
				}
			}
		})
	}
}
