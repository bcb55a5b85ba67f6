package v1alpha1

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hashLen is the number of hex digits of the id's SHA-256 appended to a derived name.
const hashLen = 10

// TaskName returns the name of the Task with the orchestrator's task id id, in both store
// modes: the one derivation of a name from an id, made once at intake (and by whoever looks a
// Task up by its id). An id that is already a valid object name (a lowercase RFC 1123
// subdomain: a-z, 0-9, '-' and '.', at most 253 characters) is its own name. Any other id is lowercased, every run of
// other characters becomes one '-', and a short hash of the whole id is appended, so that ids
// differing only in case or punctuation get different names ("Task_7" becomes
// "task-7-<hash>"). TaskName of the empty id is the empty name.
func TaskName(id string) string { return objectName(id, "task") }

// StackName returns the name of the Stack of the Compose project project, derived as TaskName
// derives a Task's: a project name that is a valid object name is its own (most are: Compose
// lowercases them), any other ("my_app") is made one with a short hash of the project name
// appended ("my-app-<hash>").
func StackName(project string) string { return objectName(project, "stack") }

// objectName derives an object name from id; fallback is the base when nothing of id is left.
func objectName(id, fallback string) string {
	if id == "" || len(validation.IsDNS1123Subdomain(id)) == 0 {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	hash := hex.EncodeToString(sum[:])[:hashLen]

	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(id) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	base := strings.Trim(b.String(), "-")
	if max := validation.DNS1123SubdomainMaxLength - hashLen - 1; len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	if base == "" {
		base = fallback
	}
	return base + "-" + hash
}
