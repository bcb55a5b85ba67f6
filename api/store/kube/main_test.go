package kube_test

import (
	"os"
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
)

// TestMain runs every test of the package against one API server.
func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }
