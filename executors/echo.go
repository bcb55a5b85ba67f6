package executors

import (
	"bytes"
	"context"
	"encoding/json"
)

// echo is the ECHO executor.
type echo struct{}

// NewEcho returns the ECHO executor: its result is the payload unchanged, as
// a json.RawMessage. The payload must be a JSON object.
func NewEcho() Executor { return echo{} }

// Execute implements [Executor].
func (echo) Execute(_ context.Context, payload json.RawMessage) (any, error) {
	if err := requireObject(payload); err != nil {
		return nil, err
	}
	return json.RawMessage(bytes.Clone(payload)), nil
}
