package controllers_test

import (
	"os"
	"testing"

	"github.com/letsbe/sysadmin-agent/api/store/kube/kubetest"
)

// TestMain gives the tests that run the reconcilers on a real API server (kubetest.Get) one
// API server for the whole package; the others need none.
func TestMain(m *testing.M) { os.Exit(kubetest.Run(m)) }
