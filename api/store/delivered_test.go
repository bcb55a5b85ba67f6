package store_test

import (
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store"
	"github.com/letsbe/sysadmin-agent/api/store/storetest"
)

func TestMemoryDelivered(t *testing.T) {
	t.Parallel()
	storetest.RunDelivered(t, func(_ *testing.T, lim store.DeliveredLimits) (store.Delivered, func()) {
		return store.NewMemoryDelivered(lim), func() {}
	})
}
