package browser

import "syscall"

// setPdeathsig makes the kernel kill the browser when the agent dies.
func setPdeathsig(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
