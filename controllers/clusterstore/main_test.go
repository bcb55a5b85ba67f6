package clusterstore_test

import (
	"os"
	"testing"

	"github.com/letsbe/sysadmin-agent/controllers/clusterstore/clustertest"
)

// TestMain runs every test of the package against one API server.
func TestMain(m *testing.M) { os.Exit(clustertest.Run(m)) }
