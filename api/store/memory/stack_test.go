package memory_test

import (
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
)

// TestMemoryStackStore: the memory Stack store passes the Stack store conformance suite.
func TestMemoryStackStore(t *testing.T) {
	t.Parallel()
	storetest.RunStacks(t, func(*testing.T) storetest.StackStore { return memory.NewStackStore() })
}
