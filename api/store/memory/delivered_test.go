package memory_test

import (
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/memory"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
)

func TestMemoryDelivered(t *testing.T) {
	t.Parallel()
	storetest.RunDelivered(t, func(_ *testing.T, lim store.DeliveredLimits) (store.Delivered, func()) {
		return memory.NewDelivered(lim), func() {}
	})
}
