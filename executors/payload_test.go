package executors

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type decodeTarget struct {
	Cmd    string            `json:"cmd"`
	N      int               `json:"n"`
	F      float64           `json:"f"`
	B      bool              `json:"b"`
	L      []string          `json:"l"`
	M      map[string]string `json:"m"`
	Nested struct {
		X int `json:"x"`
	} `json:"nested"`
}

func TestDecodePayload(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		payload string
		want    decodeTarget
		wantErr string // the whole message; "" for success
	}{
		{
			name:    "all fields",
			payload: `{"cmd": "ls", "n": 2, "f": 1.5, "b": true, "l": ["a"], "m": {"k": "v"}, "nested": {"x": 7}}`,
			want: func() decodeTarget {
				d := decodeTarget{Cmd: "ls", N: 2, F: 1.5, B: true, L: []string{"a"}, M: map[string]string{"k": "v"}}
				d.Nested.X = 7
				return d
			}(),
		},
		{name: "unknown fields are ignored", payload: `{"cmd": "ls", "future": {"a": [1]}}`, want: decodeTarget{Cmd: "ls"}},
		{name: "empty object", payload: ` {} `},
		{name: "null field is zero", payload: `{"cmd": null}`},
		{name: "string for string", payload: `{"cmd": 1}`, wantErr: `invalid payload: field "cmd" must be a string, got number`},
		{name: "string for int", payload: `{"n": "2"}`, wantErr: `invalid payload: field "n" must be an integer, got string`},
		{name: "fraction for int", payload: `{"n": 1.5}`, wantErr: `invalid payload: field "n" must be an integer, got number 1.5`},
		{name: "bool", payload: `{"b": "yes"}`, wantErr: `invalid payload: field "b" must be a boolean, got string`},
		{name: "array", payload: `{"l": "a"}`, wantErr: `invalid payload: field "l" must be an array, got string`},
		{name: "array element", payload: `{"l": [1]}`, wantErr: `invalid payload: field "l" must be a string, got number`},
		{name: "map", payload: `{"m": []}`, wantErr: `invalid payload: field "m" must be an object, got array`},
		{name: "nested", payload: `{"nested": {"x": "7"}}`, wantErr: `invalid payload: field "nested.x" must be an integer, got string`},
		{name: "null", payload: `null`, wantErr: `invalid payload: must be a JSON object, got null`},
		{name: "array payload", payload: `[{"cmd": "ls"}]`, wantErr: `invalid payload: must be a JSON object, got array`},
		{name: "string payload", payload: `"ls"`, wantErr: `invalid payload: must be a JSON object, got string`},
		{name: "number payload", payload: `42`, wantErr: `invalid payload: must be a JSON object, got number`},
		{name: "bool payload", payload: `true`, wantErr: `invalid payload: must be a JSON object, got boolean`},
		{name: "empty", payload: ``, wantErr: `invalid payload: must be a JSON object, got nothing`},
		{name: "malformed", payload: `{"cmd": "ls"`, wantErr: `invalid payload: malformed JSON`},
		{name: "trailing data", payload: `{} {}`, wantErr: `invalid payload: malformed JSON`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got decodeTarget
			err := DecodePayload(json.RawMessage(tt.payload), &got)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("DecodePayload() error = %v", err)
				}
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("DecodePayload() mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("DecodePayload() error = %v, want ErrInvalidPayload", err)
			}
			if diff := cmp.Diff(tt.wantErr, err.Error()); diff != "" {
				t.Errorf("DecodePayload() error mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDecodePayloadProgrammingError(t *testing.T) {
	t.Parallel()
	var notPointer decodeTarget
	err := DecodePayload(json.RawMessage(`{}`), notPointer)
	if err == nil || IsPermanent(err) {
		t.Errorf("DecodePayload(non-pointer) error = %v, want a non-permanent error", err)
	}
}
