package tasksig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/gowebpki/jcs"
)

// Fields are the parts of a task its signature covers, as the orchestrator sent them.
type Fields struct {
	ID   string
	Type string
	// Payload is the payload's JSON text; empty means absent (JSON null).
	Payload json.RawMessage
	// TimeoutSeconds is timeout_seconds' JSON text as received; empty means absent (null).
	TimeoutSeconds json.RawMessage
	// AgentID is the agent the task is for. The agent always puts its own id here.
	AgentID string
	// NotAfter is not_after's string as received; empty means absent (null).
	NotAfter string
}

// Canonical returns the signing input: the RFC 8785 canonical JSON of the object
// {id, type, payload, timeout_seconds, agent_id, not_after}. Every key is always present; an
// absent value (and an empty agent_id or not_after) is null. payload and timeout_seconds are
// canonicalized from their JSON text, so any spelling of the same JSON value signs the same.
func Canonical(f Fields) ([]byte, error) {
	raw := func(v json.RawMessage) json.RawMessage {
		if len(bytes.TrimSpace(v)) == 0 {
			return json.RawMessage("null")
		}
		return v
	}
	str := func(s string) json.RawMessage {
		if s == "" {
			return json.RawMessage("null")
		}
		b, _ := json.Marshal(s) // a string always encodes
		return b
	}
	for name, v := range map[string]json.RawMessage{"payload": f.Payload, "timeout_seconds": f.TimeoutSeconds} {
		if len(bytes.TrimSpace(v)) > 0 && !json.Valid(v) {
			return nil, fmt.Errorf("%s is not valid JSON", name)
		}
	}
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	b.Write(str(f.ID))
	b.WriteString(`,"type":`)
	b.Write(str(f.Type))
	b.WriteString(`,"payload":`)
	b.Write(raw(f.Payload))
	b.WriteString(`,"timeout_seconds":`)
	b.Write(raw(f.TimeoutSeconds))
	b.WriteString(`,"agent_id":`)
	b.Write(str(f.AgentID))
	b.WriteString(`,"not_after":`)
	b.Write(str(f.NotAfter))
	b.WriteString(`}`)
	out, err := jcs.Transform(b.Bytes())
	if err != nil {
		// jcs's messages start with a capital letter.
		msg := err.Error()
		if msg != "" {
			msg = strings.ToLower(msg[:1]) + msg[1:]
		}
		return nil, fmt.Errorf("canonical form: %s", msg)
	}
	return out, nil
}
