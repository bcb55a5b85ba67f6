package controllers

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
	"github.com/letsbe/sysadmin-agent/executors"
)

// The process group of an interrupted Task is stopped only if this agent recorded it: the
// reconciler seals every ProcessRef it writes with an HMAC under a key only the agent holds
// (Options.ProcessKey, kept in the state directory), bound to the Task's UID. A status written
// by anyone else (a Task made Running with kubectl, naming some process group) carries no
// valid seal, and the agent leaves that group alone.

// sealProcess returns the seal of ref recorded for the Task with uid, or "" without a key.
func sealProcess(key []byte, uid types.UID, ref *agentv1.ProcessRef) string {
	if len(key) == 0 {
		return ""
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "letsbe-agent process\x00%s\x00%d\x00%s\x00%d", uid, ref.PGID, ref.BootID, ref.StartTicks)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sealed reports whether ref was recorded, for the Task with uid, by an agent holding key.
func sealed(key []byte, uid types.UID, ref *agentv1.ProcessRef) bool {
	want := sealProcess(key, uid, ref)
	return want != "" && hmac.Equal([]byte(want), []byte(ref.Seal))
}

// killLeftover stops the process group an interrupted Task left running, if this agent
// recorded it and it is still the same group, and returns a note for the Task's events.
func (r *TaskReconciler) killLeftover(log logr.Logger, task *agentv1.Task) string {
	p := task.Status.Process
	if p == nil {
		return ""
	}
	if !sealed(r.ProcessKey, task.UID, p) {
		log.Info("Not stopping the process group named in the interrupted task's status: this agent did not record it", "pgid", p.PGID)
		return fmt.Sprintf("process group %d named in the status was not recorded by this agent; left alone", p.PGID)
	}
	killed, err := executors.KillLeftover(executors.ProcessRef{PGID: int(p.PGID), BootID: p.BootID, StartTicks: uint64(p.StartTicks)})
	switch {
	case err != nil:
		log.Error(err, "Cannot stop the interrupted task's process group", "pgid", p.PGID)
		return fmt.Sprintf("could not stop the process group %d left running: %v", p.PGID, err)
	case killed:
		log.Info("Killed the process group the interrupted task left running", "pgid", p.PGID)
		return fmt.Sprintf("killed process group %d, left running by the interrupted execution", p.PGID)
	}
	return ""
}
