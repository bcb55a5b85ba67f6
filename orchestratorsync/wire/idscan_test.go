package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeTaskChecksTheID(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("é", 129) // 258 bytes
	tests := []struct {
		name       string
		id         string // raw JSON text of the id
		wantID     string // the id of the error ("" for an id that cannot be used)
		unstorable bool
		wantErr    string
	}{
		{name: "256 bytes", id: `"` + strings.Repeat("x", 256) + `"`},
		{name: "surrogate pair", id: `"t-\ud83d\ude00"`},
		{name: "escaped backslash before u", id: `"t-\\ud800"`},
		{name: "too long", id: `"` + long + `"`, wantID: long, unstorable: true, wantErr: "task id too long: 258 bytes (at most 256)"},
		{name: "40 KiB", id: `"` + strings.Repeat("k", 40<<10) + `"`, wantID: strings.Repeat("k", 40<<10), unstorable: true, wantErr: "task id too long: 40960 bytes"},
		{name: "lone high surrogate", id: `"t-\ud800"`, wantErr: "lone surrogate"},
		{name: "lone low surrogate", id: `"\udc00x"`, wantErr: "lone surrogate"},
		{name: "high then not low", id: `"\ud800\u0041"`, wantErr: "lone surrogate"},
		{name: "high at the end", id: `"\uD83D"`, wantErr: "lone surrogate"},
		{name: "invalid UTF-8", id: "\"t-\xff\"", wantErr: "not valid UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			task, err := DecodeTask([]byte(`{"id": ` + tc.id + `, "type": "ECHO", "payload": {}}`))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				var want string
				_ = json.Unmarshal([]byte(tc.id), &want)
				if task.ID != want {
					t.Errorf("id %q, want %q", task.ID, want)
				}
				return
			}
			var ie *InvalidTaskError
			if !errors.As(err, &ie) || !strings.Contains(ie.Reason, tc.wantErr) {
				t.Fatalf("error %v, want an InvalidTaskError with %q", err, tc.wantErr)
			}
			if ie.ID != tc.wantID || ie.Unstorable != tc.unstorable {
				t.Errorf("ID %.20q (%d bytes) unstorable %v, want %.20q unstorable %v", ie.ID, len(ie.ID), ie.Unstorable, tc.wantID, tc.unstorable)
			}
			if len(ie.Error()) > 200 {
				t.Errorf("error message of %d bytes", len(ie.Error()))
			}
		})
	}
}

func TestScanTaskID(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("A", 3<<20)
	tests := []struct {
		name  string
		body  string
		want  string
		found bool
	}{
		{"id first", `{"id":"t-1","type":"FILE_WRITE","payload":{"content":"` + big + `"}}`, `"t-1"`, true},
		{"id last", `{"type":"FILE_WRITE","payload":{"content":"` + big + `","id":"inner"},"x":[1,{"id":2}],"id" : 42 }`, `42`, true},
		{"escaped key and quotes", `{"a":"\"id\": \"no\"","\u0069d":"t-\"2\""}`, `"t-\"2\""`, true},
		{"no id", `{"type":"ECHO","payload":{"id":"inner"}}`, "", false},
		{"null id", `{"id":null}`, "", false},
		{"not an object", `["id","t-1"]`, "", false},
		{"truncated", `{"payload":"abc`, "", false},
		{"scalars", `{"n":-1.5e3,"b":true,"z":null, "id":"ok"}`, `"ok"`, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			raw, read, found := ScanTaskID(strings.NewReader(tc.body), 1<<30)
			if found != tc.found || string(raw) != tc.want {
				t.Fatalf("got %q found %v, want %q found %v", raw, found, tc.want, tc.found)
			}
			if read <= 0 || read > int64(len(tc.body)) {
				t.Errorf("read %d of %d bytes", read, len(tc.body))
			}
		})
	}
}

func FuzzScanTaskID(f *testing.F) {
	f.Add([]byte(`{"id":"t-1","payload":{"content":"xx"}}`))
	f.Add([]byte(`{"payload":[1,2,{"id":3}],"id":4}`))
	f.Add([]byte(`{"\u0069d":"\ud800","x":"\\\""}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		_, _, _ = ScanTaskID(bytes.NewReader(body), 1<<20) // never panics nor hangs
		// Compare with encoding/json on bodies without duplicate keys.
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil {
			return
		}
		clean, _ := json.Marshal(m)
		raw, _, found := ScanTaskID(bytes.NewReader(clean), 1<<20)
		want, ok := m["id"]
		usable := ok && len(want) > 0 && (want[0] == '"' || want[0] == '-' || want[0] >= '0' && want[0] <= '9')
		if found != usable {
			t.Fatalf("found %v, want %v for %s", found, usable, clean)
		}
		var got, wantV any
		if found && (json.Unmarshal(raw, &got) != nil || json.Unmarshal(want, &wantV) != nil || !cmp.Equal(got, wantV)) {
			t.Fatalf("id %s, want %s", raw, want)
		}
	})
}

func TestNextTaskTooLarge(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	payload := `"payload":{"content":"` + strings.Repeat("B", 2*limit) + `"}`
	tests := []struct {
		name       string
		body       string
		chunked    bool
		wantID     string
		unstorable bool
		wantReason string
	}{
		{name: "id first, length known", body: `{"id":"t-big","type":"FILE_WRITE",` + payload + `}`, wantID: "t-big",
			wantReason: fmt.Sprintf("task too large: %d bytes (AGENT_MAX_TASK_BYTES is %d)", len(`{"id":"t-big","type":"FILE_WRITE",`+payload+`}`), limit)},
		{name: "id last, chunked", body: `{"type":"FILE_WRITE",` + payload + `,"id":7}`, chunked: true, wantID: "7",
			// Without a length the count is of the bytes read: up to the id, not the closing brace.
			wantReason: fmt.Sprintf("task too large: %d bytes (AGENT_MAX_TASK_BYTES is %d)", len(`{"type":"FILE_WRITE",`+payload+`,"id":7`), limit)},
		{name: "long id", body: `{"id":"` + strings.Repeat("i", 300) + `",` + payload + `}`, wantID: strings.Repeat("i", 300), unstorable: true,
			wantReason: "task too large"},
		{name: "no id", body: `{"type":"FILE_WRITE",` + payload + `}`, wantReason: "no usable id found"},
		{name: "lone surrogate id", body: `{"id":"\udfff",` + payload + `}`, wantReason: "lone surrogate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.chunked {
					w.Header().Set("Transfer-Encoding", "chunked")
					_, _ = io.WriteString(w, tc.body[:100])
					w.(http.Flusher).Flush()
					_, _ = io.WriteString(w, tc.body[100:])
					return
				}
				w.Header().Set("Content-Length", fmt.Sprint(len(tc.body)))
				_, _ = io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			c, err := NewClient(Config{BaseURL: srv.URL, Token: "tok", MaxTaskBytes: limit})
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.NextTask(t.Context(), "a-1", 0)
			var ie *InvalidTaskError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v, want an InvalidTaskError", err)
			}
			if diff := cmp.Diff(tc.wantID, ie.ID); diff != "" {
				t.Errorf("id (-want +got):\n%.300s", diff)
			}
			if !strings.Contains(ie.Reason, tc.wantReason) || ie.Unstorable != tc.unstorable {
				t.Errorf("reason %q unstorable %v, want %q unstorable %v", ie.Reason, ie.Unstorable, tc.wantReason, tc.unstorable)
			}
		})
	}
}

func TestRegisterResponseRefusesATokenThatIsNoHeader(t *testing.T) {
	t.Parallel()
	for _, tok := range []string{"s3cret\n", " s3cret", "s3\x00cret"} {
		body, _ := json.Marshal(map[string]string{"agent_id": "a-1", "token": tok})
		_, err := DecodeRegisterResponse(body)
		if err == nil || !strings.Contains(err.Error(), "token is not a valid header value") || strings.Contains(err.Error(), "s3") {
			t.Errorf("token %q: error %v", tok, err)
		}
	}
}
