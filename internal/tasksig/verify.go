package tasksig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// maxSignatureBytes bounds a signature: an EdDSA or ES256 compact JWS is a few hundred bytes.
const maxSignatureBytes = 8 << 10

// ErrExpired is the error of a Task found after its not_after.
var ErrExpired = errors.New("expired")

// Error is a refusal: the Task must end Failed with it and nothing may run. Rule names what
// refused it ("signature", "expiry").
type Error struct {
	Rule string
	Err  error
}

func (e *Error) Error() string {
	if errors.Is(e.Err, ErrExpired) {
		return e.Err.Error()
	}
	return e.Rule + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

func sigErr(format string, args ...any) error {
	return &Error{Rule: "signature", Err: fmt.Errorf(format, args...)}
}

// Verifier decides whether a Task's origin lets it run. The zero value with no Keys accepts
// every unexpired Task (signatures are not checked without trusted keys).
type Verifier struct {
	// Keys are the trusted keys; nil means signatures are not required nor checked.
	Keys *Keys
	// AllowUnsigned lets a Task without signature run even with Keys (AGENT_ALLOW_UNSIGNED_TASKS).
	// A signature that is present is checked all the same.
	AllowUnsigned bool
	// RequireExpiry refuses a signed Task without not_after (AGENT_REQUIRE_TASK_EXPIRY).
	RequireExpiry bool
	// AgentID returns this agent's id, which a signature must be bound to.
	AgentID func() string
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// Check returns nil when the Task may run, else an *Error naming the refusal. It is called
// right before a Task would start, in every store mode.
func (v *Verifier) Check(task *agentv1.Task) error {
	spec := &task.Spec
	if spec.NotAfter != "" {
		na, err := time.Parse(time.RFC3339Nano, spec.NotAfter)
		if err != nil {
			return &Error{Rule: "expiry", Err: fmt.Errorf("not_after %q is not an RFC 3339 time", truncate(spec.NotAfter, 64))}
		}
		if v.now().After(na) {
			return &Error{Rule: "expiry", Err: fmt.Errorf("%w: not_after %s has passed", ErrExpired, na.UTC().Format(time.RFC3339))}
		}
	}
	if v.Keys == nil {
		return nil
	}
	if spec.Signature == "" {
		if v.AllowUnsigned {
			return nil
		}
		return sigErr("the task is not signed and AGENT_TASK_KEYS requires a signature")
	}
	if v.RequireExpiry && spec.NotAfter == "" {
		return sigErr("the signed task has no not_after and AGENT_REQUIRE_TASK_EXPIRY is set")
	}
	agentID := ""
	if v.AgentID != nil {
		agentID = v.AgentID()
	}
	if agentID == "" {
		return sigErr("this agent has no id yet, so no signature can be bound to it")
	}
	var payload json.RawMessage
	if spec.Payload != nil {
		payload = spec.Payload.Raw
	}
	return Verify(v.Keys.Current(), spec.Signature, Fields{
		ID: task.TaskID(), Type: spec.Type, Payload: payload,
		TimeoutSeconds: json.RawMessage(spec.TimeoutSeconds), AgentID: agentID, NotAfter: spec.NotAfter,
	})
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// Verify checks a detached compact JWS over the canonical form of f with the key its kid
// names in ks. Errors are *Error with rule "signature".
func Verify(ks *KeySet, signature string, f Fields) error {
	if len(signature) > maxSignatureBytes {
		return sigErr("longer than %d bytes", maxSignatureBytes)
	}
	if strings.Count(signature, ".") != 2 || strings.Split(signature, ".")[1] != "" {
		return sigErr("not a detached compact JWS (header..signature)")
	}
	input, err := Canonical(f)
	if err != nil {
		return sigErr("%v", err)
	}
	obj, err := jose.ParseDetached(signature, input, Algorithms)
	if err != nil {
		var alg *jose.ErrUnexpectedSignatureAlgorithm
		if errors.As(err, &alg) {
			return sigErr("algorithm %q not accepted (want EdDSA or ES256)", truncate(string(alg.Got), 32))
		}
		return sigErr("malformed JWS: %s", strings.TrimPrefix(err.Error(), "go-jose/go-jose: "))
	}
	if len(obj.Signatures) != 1 {
		return sigErr("want exactly one signature")
	}
	h := obj.Signatures[0].Protected
	if h.KeyID == "" {
		return sigErr("no kid in the protected header")
	}
	key, ok := ks.Lookup(h.KeyID)
	if !ok {
		return sigErr("unknown kid %q (trusted: %s)", truncate(h.KeyID, 64), strings.Join(ks.KIDs(), ", "))
	}
	if h.Algorithm != key.Algorithm {
		return sigErr("kid %q is an %s key but the JWS says %s", h.KeyID, key.Algorithm, truncate(h.Algorithm, 32))
	}
	if err := obj.DetachedVerify(input, key); err != nil {
		return sigErr("does not verify with kid %q: the task was changed after signing, or signed for another agent", h.KeyID)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
