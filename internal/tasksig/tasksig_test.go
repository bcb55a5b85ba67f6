package tasksig

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// TestCanonicalRFC8785 checks the signing input against the example of RFC 8785 section
// 3.2.2 (as the payload) and the null spelling of absent members.
func TestCanonicalRFC8785(t *testing.T) {
	t.Parallel()
	payload := `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`
	tests := []struct {
		name string
		f    Fields
		want string
	}{
		{"rfc example", Fields{ID: "t-1", Type: "ECHO", Payload: json.RawMessage(payload), TimeoutSeconds: json.RawMessage("120.0"), AgentID: "a-1", NotAfter: "2026-12-01T10:00:00Z"},
			`{"agent_id":"a-1","id":"t-1","not_after":"2026-12-01T10:00:00Z","payload":{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"},"timeout_seconds":120,"type":"ECHO"}`},
		{"absent members are null", Fields{ID: "t-2", Type: "SHELL", AgentID: "a-1"},
			`{"agent_id":"a-1","id":"t-2","not_after":null,"payload":null,"timeout_seconds":null,"type":"SHELL"}`},
		{"timeout as a string stays a string", Fields{ID: "t-3", Type: "ECHO", Payload: json.RawMessage(`{"b":1,"a":2}`), TimeoutSeconds: json.RawMessage(`"30"`), AgentID: "a"},
			`{"agent_id":"a","id":"t-3","not_after":null,"payload":{"a":2,"b":1},"timeout_seconds":"30","type":"ECHO"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Canonical(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("Canonical (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{`{"a":1,"a":2}`, `{"a":`, `[1,]`} {
		if _, err := Canonical(Fields{ID: "t", Type: "ECHO", Payload: json.RawMessage(bad)}); err == nil {
			t.Errorf("Canonical accepted payload %s", bad)
		}
	}
}

type fixture struct {
	signer *Signer
	keys   *Keys
}

func newFixture(t *testing.T, alg jose.SignatureAlgorithm) fixture {
	t.Helper()
	key, err := GenerateKey(alg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(s.PublicKeySet())
	ks, err := ParseKeySet(b)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{signer: s, keys: StaticKeys(ks)}
}

func newTask(id, typ, payload, timeout, notAfter string) *agentv1.Task {
	t := &agentv1.Task{}
	t.Name = id
	t.Spec = agentv1.TaskSpec{Type: typ, Payload: &runtime.RawExtension{Raw: []byte(payload)}, TimeoutSeconds: timeout, NotAfter: notAfter}
	return t
}

func (f fixture) signed(t *testing.T, task *agentv1.Task, agentID string) *agentv1.Task {
	t.Helper()
	sig, err := f.signer.Sign(Fields{ID: task.Name, Type: task.Spec.Type, Payload: task.Spec.Payload.Raw,
		TimeoutSeconds: json.RawMessage(task.Spec.TimeoutSeconds), AgentID: agentID, NotAfter: task.Spec.NotAfter})
	if err != nil {
		t.Fatal(err)
	}
	task.Spec.Signature = sig
	return task
}

// forge returns a detached JWS with the given protected header and a junk signature.
func forge(header string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + ".." + base64.RawURLEncoding.EncodeToString([]byte("junk"))
}

func TestVerifierCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	ed := newFixture(t, jose.EdDSA)
	es := newFixture(t, jose.ES256)
	other := newFixture(t, jose.EdDSA)
	base := func() *agentv1.Task {
		return newTask("t-1", "SHELL", `{"cmd":"df -h"}`, "120", "2026-12-01T12:05:00Z")
	}
	tests := []struct {
		name   string
		v      Verifier
		task   func() *agentv1.Task
		wantIn string // "" means accepted
	}{
		{"signed EdDSA", Verifier{Keys: ed.keys}, func() *agentv1.Task { return ed.signed(t, base(), "a-1") }, ""},
		{"signed ES256", Verifier{Keys: es.keys}, func() *agentv1.Task { return es.signed(t, base(), "a-1") }, ""},
		{"payload spelled differently still verifies", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Spec.Payload.Raw = []byte(`{ "cmd" : "df \u002dh" }`)
			return tk
		}, ""},
		{"tampered payload", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Spec.Payload.Raw = []byte(`{"cmd":"rm -rf /"}`)
			return tk
		}, "signature: does not verify"},
		{"tampered type", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Spec.Type = "ECHO"
			return tk
		}, "signature: does not verify"},
		{"tampered timeout", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Spec.TimeoutSeconds = "3600"
			return tk
		}, "signature: does not verify"},
		{"not_after removed", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Spec.NotAfter = ""
			return tk
		}, "signature: does not verify"},
		{"another agent's task", Verifier{Keys: ed.keys}, func() *agentv1.Task { return ed.signed(t, base(), "a-2") }, "signature: does not verify"},
		{"replayed under another id", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			tk.Name = "t-2"
			return tk
		}, "signature: does not verify"},
		{"unknown kid", Verifier{Keys: ed.keys}, func() *agentv1.Task { return other.signed(t, base(), "a-1") }, "signature: unknown kid"},
		{"alg none", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := base()
			tk.Spec.Signature = forge(`{"alg":"none","kid":"` + ed.signer.KID() + `"}`)
			return tk
		}, `signature: algorithm "none" not accepted`},
		{"alg HS256", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := base()
			tk.Spec.Signature = forge(`{"alg":"HS256","kid":"` + ed.signer.KID() + `"}`)
			return tk
		}, `signature: algorithm "HS256" not accepted`},
		{"alg does not match the key", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := base()
			tk.Spec.Signature = forge(`{"alg":"ES256","kid":"` + ed.signer.KID() + `"}`)
			return tk
		}, "is an EdDSA key but the JWS says ES256"},
		{"attached payload", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := ed.signed(t, base(), "a-1")
			parts := strings.Split(tk.Spec.Signature, ".")
			tk.Spec.Signature = parts[0] + ".eyJ9." + parts[2]
			return tk
		}, "not a detached compact JWS"},
		{"garbage", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := base()
			tk.Spec.Signature = "!!..!!"
			return tk
		}, "signature: malformed JWS"},
		{"unsigned refused", Verifier{Keys: ed.keys}, base, "signature: the task is not signed"},
		{"unsigned allowed", Verifier{Keys: ed.keys, AllowUnsigned: true}, base, ""},
		{"bad signature refused even when unsigned are allowed", Verifier{Keys: ed.keys, AllowUnsigned: true}, func() *agentv1.Task {
			return other.signed(t, base(), "a-1")
		}, "signature: unknown kid"},
		{"no keys: unsigned runs", Verifier{}, base, ""},
		{"expired", Verifier{}, func() *agentv1.Task {
			tk := base()
			tk.Spec.NotAfter = "2026-12-01T11:59:59Z"
			return tk
		}, "expired: not_after 2026-12-01T11:59:59Z has passed"},
		{"expired and signed", Verifier{Keys: ed.keys}, func() *agentv1.Task {
			tk := base()
			tk.Spec.NotAfter = "2026-12-01T13:59:59+02:00"
			return ed.signed(t, tk, "a-1")
		}, "expired"},
		{"not_after unreadable", Verifier{}, func() *agentv1.Task {
			tk := base()
			tk.Spec.NotAfter = "tomorrow"
			return tk
		}, `expiry: not_after "tomorrow" is not an RFC 3339 time`},
		{"expiry required", Verifier{Keys: ed.keys, RequireExpiry: true}, func() *agentv1.Task {
			tk := base()
			tk.Spec.NotAfter = ""
			return ed.signed(t, tk, "a-1")
		}, "signature: the signed task has no not_after"},
		{"expiry required and present", Verifier{Keys: ed.keys, RequireExpiry: true}, func() *agentv1.Task { return ed.signed(t, base(), "a-1") }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			v := tt.v
			v.Now = func() time.Time { return now }
			v.AgentID = func() string { return "a-1" }
			err := v.Check(tt.task())
			if tt.wantIn == "" {
				if err != nil {
					t.Fatalf("Check: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Check = %v, want an error containing %q", err, tt.wantIn)
			}
			var refusal *Error
			if !errors.As(err, &refusal) {
				t.Errorf("Check error %T is not an *Error", err)
			}
		})
	}
}

func TestParseKeySetRefuses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, jose.EdDSA)
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{f.signer.key}})
	pub := f.signer.PublicKeySet().Keys[0]
	noKid := pub
	noKid.KeyID = ""
	wrongAlg := pub
	wrongAlg.Algorithm = "ES256"
	enc := pub
	enc.Use = "enc"
	tests := []struct {
		name string
		doc  []byte
		want string
	}{
		{"not json", []byte("nope"), "not a JWKS document"},
		{"empty", []byte(`{"keys":[]}`), "no keys"},
		{"private", priv, "a private key"},
		{"no kid", mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{noKid}}), "missing kid"},
		{"duplicate", mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub, pub}}), "kid used twice"},
		{"alg mismatch", mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{wrongAlg}}), "does not match the key"},
		{"use enc", mustJSON(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{enc}}), `use "enc"`},
		{"symmetric", []byte(`{"keys":[{"kty":"oct","kid":"k","k":"c2VjcmV0"}]}`), "unsupported key type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseKeySet(tt.doc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseKeySet = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestKeysRotateOnFileChange replaces the JWKS file by a rename (as a deployment would) and
// waits for the watcher to pick up the new key; a broken file keeps the keys in force.
func TestKeysRotateOnFileChange(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "keys.json")
	k1, k2 := newFixture(t, jose.EdDSA), newFixture(t, jose.EdDSA)
	write := func(doc []byte) {
		tmp := filepath.Join(dir, ".tmp")
		if err := os.WriteFile(tmp, doc, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(mustJSON(k1.signer.PublicKeySet()))
	keys, err := OpenKeys(path, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	reloads := make(chan error, 16)
	keys.onReload = func(_ *KeySet, err error) { reloads <- err }
	if err := keys.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{k1.signer.KID()}, keys.Current().KIDs()); diff != "" {
		t.Fatalf("kids (-want +got):\n%s", diff)
	}
	waitReload := func() error {
		t.Helper()
		select {
		case err := <-reloads:
			return err
		case <-t.Context().Done():
			t.Fatal("no reload")
			return nil
		}
	}
	write(mustJSON(k2.signer.PublicKeySet()))
	for keys.Current().KIDs()[0] != k2.signer.KID() {
		if err := waitReload(); err != nil {
			t.Fatalf("reload: %v", err)
		}
	}
	write([]byte(`{"keys": [`))
	if err := waitReload(); err == nil {
		t.Fatal("a broken file reloaded without error")
	}
	if diff := cmp.Diff([]string{k2.signer.KID()}, keys.Current().KIDs()); diff != "" {
		t.Errorf("kids after a broken file (-want +got):\n%s", diff)
	}
}
