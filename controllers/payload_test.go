package controllers_test

import (
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
)

// TestMissingPayloadIsNull: a Task without a payload (a JSON null dropped by a store that
// keeps JSON: the API server, the journal) fails as the null payload it was, in every mode.
func TestMissingPayloadIsNull(t *testing.T) {
	t.Parallel()
	mem := memory.New()
	start(t, mem, nil)
	create(t, mem, "no-payload", "ECHO", "", 0)
	create(t, mem, "null-payload", "ECHO", "null", 0)
	for _, name := range []string{"no-payload", "null-payload"} {
		got := waitFor(t, mem, name, final)
		if want := "invalid payload: must be a JSON object, got null"; got.Status.Error != want {
			t.Errorf("%s: error %q, want %q", name, got.Status.Error, want)
		}
	}
}
