package wire

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// referenceDecodeTask is DecodeTask of before scanTaskFields: json.Unmarshal into a struct of
// json.RawMessage fields. DecodeTask must decide alike.
func referenceDecodeTask(body []byte) (*Task, error) {
	var w struct {
		ID             json.RawMessage `json:"id"`
		Type           json.RawMessage `json:"type"`
		Payload        json.RawMessage `json:"payload"`
		TimeoutSeconds json.RawMessage `json:"timeout_seconds"`
		CreatedAt      json.RawMessage `json:"created_at"`
		NotAfter       json.RawMessage `json:"not_after"`
		Signature      json.RawMessage `json:"signature"`
	}
	if err := decodeObject(body, &w); err != nil {
		return nil, &InvalidTaskError{Reason: err.Error()}
	}
	id, err := decodeStringOrNumber(w.ID)
	if err != nil {
		return nil, &InvalidTaskError{Reason: "id " + err.Error()}
	}
	if strings.TrimSpace(id) == "" {
		return nil, &InvalidTaskError{Reason: "missing id"}
	}
	if usable, err := checkTaskID(w.ID, id); err != nil {
		if !usable {
			return nil, &InvalidTaskError{Reason: err.Error()}
		}
		return nil, &InvalidTaskError{ID: id, Reason: err.Error(), Unstorable: true}
	}
	t := &Task{ID: id, Payload: w.Payload}
	if isNull(w.Type) || json.Unmarshal(w.Type, &t.Type) != nil {
		return nil, &InvalidTaskError{ID: id, Reason: "type must be a non-empty string"}
	}
	if strings.TrimSpace(t.Type) == "" {
		return nil, &InvalidTaskError{ID: id, Reason: "type must be a non-empty string"}
	}
	if len(t.Payload) == 0 {
		t.Payload = json.RawMessage("null")
	}
	secs, ok, err := decodeNumber(w.TimeoutSeconds)
	switch {
	case err != nil:
		return nil, &InvalidTaskError{ID: id, Reason: "timeout_seconds " + err.Error()}
	case ok && secs < 0:
		return nil, &InvalidTaskError{ID: id, Reason: "timeout_seconds must not be negative"}
	case ok:
		t.TimeoutSeconds = int(math.Ceil(min(secs, MaxTimeoutSeconds)))
	}
	if !isNull(w.NotAfter) || !isNull(w.Signature) {
		o := &TaskOrigin{}
		if !isNull(w.TimeoutSeconds) {
			o.TimeoutRaw = append(json.RawMessage(nil), trimJSONSpace(w.TimeoutSeconds)...)
		}
		if !isNull(w.NotAfter) && json.Unmarshal(w.NotAfter, &o.NotAfter) != nil {
			return nil, &InvalidTaskError{ID: id, Reason: "not_after must be an RFC 3339 string"}
		}
		if !isNull(w.Signature) && json.Unmarshal(w.Signature, &o.Signature) != nil {
			return nil, &InvalidTaskError{ID: id, Reason: "signature must be a string"}
		}
		t.Origin = o
	}
	var created string
	if !isNull(w.CreatedAt) && json.Unmarshal(w.CreatedAt, &created) == nil {
		ts, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(created))
		if y := ts.UTC().Year(); err == nil && y >= 0 && y <= 9999 {
			t.CreatedAt = ts.UTC()
		}
	}
	return t, nil
}

func FuzzDecodeTaskMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"id": "t-41", "type": "SHELL", "payload": {"cmd": "df -h"}, "timeout_seconds": 120, "created_at": "2026-11-26T10:00:00Z"}`,
		`{"id":"t-1","type":"ECHO","payload":{"message":"hello"}}`,
		`{"ID": "x", "TYPE": "y", "Payload": [1, {"a": "}"}], "id": "z", "\u0069d": "w"}`,
		`{"ıd": "x", "type": "y", "ſignature": "s", "not_after": null, "timeout_ſeconds": "2"}`,
		`{"id": 7, "type": "ECHO", "payload" : "\"}" , "x": {"id": "inner"}, "created_at": 5}`,
		`{"id": "t", "type": "ECHO", "not_after": "2026-12-01T10:00:00Z", "signature": "e30..c2ln", "timeout_seconds": " 1.5 "}`,
		`{"id": "t", "type": "\u00e9\ud800", "payload": tru}`, ` {} `, `{"id":"a"}x`, `{"id\"": "a", "type": "b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		want, wantErr := referenceDecodeTask(body)
		got, err := DecodeTask(body)
		if diff := cmp.Diff(errString(wantErr), errString(err)); diff != "" {
			t.Fatalf("error (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("task (-want +got):\n%s", diff)
		}
	})
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// BenchmarkDecodeTask measures the decoding of an ECHO task as the reference orchestrator
// hands it out.
func BenchmarkDecodeTask(b *testing.B) {
	body := []byte(`{"id":"t-1234","type":"ECHO","payload":{"message":"hello from the benchmark"},"created_at":"2026-11-26T10:00:00Z"}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTask(body); err != nil {
			b.Fatal(err)
		}
	}
}
