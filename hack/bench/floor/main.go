// Command floor is the agent's dependency floor for hack/bench: a program that imports every
// package cmd/letsbe-agent imports (so that all their package initialization runs, as in the
// agent) and starts nothing. Its idle anonymous memory is what the agent's dependencies cost
// before the agent does anything: the part of the agent's own idle figure it cannot lower
// without dropping a dependency. It returns its free memory to the system as the agent's
// memtrim does when quiet, prints "ready", and waits until its standard input closes.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"

	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/go-jose/go-jose/v4"
	_ "github.com/go-logr/logr"
	_ "github.com/go-logr/zapr"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/prometheus/client_model/go"
	_ "github.com/spf13/cobra"
	_ "go.uber.org/zap"
	_ "go.uber.org/zap/zapcore"
	_ "k8s.io/apimachinery/pkg/runtime"
	_ "k8s.io/client-go/rest"
	_ "k8s.io/client-go/tools/leaderelection/resourcelock"
	_ "k8s.io/klog/v2"
	_ "sigs.k8s.io/controller-runtime"
	_ "sigs.k8s.io/controller-runtime/pkg/cache"
	_ "sigs.k8s.io/controller-runtime/pkg/manager"
	_ "sigs.k8s.io/controller-runtime/pkg/metrics"
	_ "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	_ "github.com/letsbe/sysadmin-agent/api/progress"
	_ "github.com/letsbe/sysadmin-agent/api/store"
	_ "github.com/letsbe/sysadmin-agent/api/store/journal"
	_ "github.com/letsbe/sysadmin-agent/api/store/kube"
	_ "github.com/letsbe/sysadmin-agent/api/store/memory"
	_ "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	_ "github.com/letsbe/sysadmin-agent/config"
	_ "github.com/letsbe/sysadmin-agent/controllers"
	_ "github.com/letsbe/sysadmin-agent/executors"
	_ "github.com/letsbe/sysadmin-agent/executors/browser"
	_ "github.com/letsbe/sysadmin-agent/internal/agenthttp"
	_ "github.com/letsbe/sysadmin-agent/internal/boundedread"
	_ "github.com/letsbe/sysadmin-agent/internal/devguard"
	_ "github.com/letsbe/sysadmin-agent/internal/heapsample"
	_ "github.com/letsbe/sysadmin-agent/internal/logging"
	_ "github.com/letsbe/sysadmin-agent/internal/memtrim"
	_ "github.com/letsbe/sysadmin-agent/internal/policy"
	_ "github.com/letsbe/sysadmin-agent/internal/statedir"
	_ "github.com/letsbe/sysadmin-agent/internal/tasksig"
	_ "github.com/letsbe/sysadmin-agent/orchestratorsync"
	_ "github.com/letsbe/sysadmin-agent/orchestratorsync/orchestratortest"
	_ "github.com/letsbe/sysadmin-agent/orchestratorsync/wire"
)

func main() {
	debug.FreeOSMemory()
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
}
