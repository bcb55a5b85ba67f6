package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

// Store is what reconcilers and the sync side need of a Task store: memory.Store on plain
// servers, kube.Store on an API server; storetest.Run holds both to this contract.
//
// Objects passed in are never retained, and objects returned are the caller's to change.
type Store interface {
	// Get returns the named Task, or a NotFound error.
	Get(ctx context.Context, name string) (*agentv1.Task, error)
	// Create stores a new Task and fills in its server-set metadata (resourceVersion, uid,
	// generation, creationTimestamp). AlreadyExists if the name is taken. Tasks are created
	// without status (intake names them agentv1.TaskName of their id) and their reconciler
	// initializes it; a status given here is not part of the contract (the API server drops
	// it, the memory store keeps it for its tests and the journal's restore).
	Create(ctx context.Context, task *agentv1.Task) error
	// UpdateStatus replaces the Task's status only. The task's resourceVersion must match the
	// stored one (Conflict otherwise); on success it is updated to the new one.
	UpdateStatus(ctx context.Context, task *agentv1.Task) error
	// List returns all Tasks, ordered by name.
	List(ctx context.Context) (*agentv1.TaskList, error)
	// Delete removes the named Task, or returns NotFound.
	Delete(ctx context.Context, name string) error
}

// ErrNotDurable is wrapped by the error of a write the store could not make durable (the
// journal failed: disk full, read-only file system, I/O error). Such a write is not kept, so a
// Task whose creation fails with it must not run.
var ErrNotDurable = errors.New("agent cannot persist tasks")

// Delivered remembers, for a bounded window, the task ids whose final report the orchestrator
// accepted and the exact bytes of that report, so that a task offered again is answered with
// the same final report instead of being run twice.
type Delivered interface {
	// RecordDelivered notes that body was the accepted final report of task id.
	RecordDelivered(id string, body []byte)
	// LookupDelivered returns the final report accepted for id within the window. found is
	// false for an id not seen; body is nil when the id is known but its body was not kept.
	LookupDelivered(id string) (body []byte, found bool)
}

// EventType says what happened to a Task.
type EventType string

// Event types.
const (
	Added    EventType = "ADDED"
	Modified EventType = "MODIFIED"
	Deleted  EventType = "DELETED"
)

// Event is a change notification. Task is shared between all handlers: read it, never change it.
type Event struct {
	Type EventType
	Task *agentv1.Task
	// Deferrable: the change was written under Deferrable (see there).
	Deferrable bool
}

type deferrableKey struct{}

// Deferrable marks the status writes under ctx as records that may be lost in a crash: that a
// report was delivered (lost, it is only sent once more, and an identical repeat is a no-op for
// the orchestrator). A store may then return before the write is durable and make it durable
// with a later one; the store's state changes at once all the same.
func Deferrable(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferrableKey{}, true)
}

// IsDeferrable reports whether ctx came from Deferrable.
func IsDeferrable(ctx context.Context) bool {
	v, _ := ctx.Value(deferrableKey{}).(bool)
	return v
}

// Handler receives change notifications. It runs synchronously inside the write that caused
// it, so it must be quick, must not block and must not call back into the store: enqueue and
// return.
type Handler func(Event)

// Notifier is a store that tells subscribers about every change.
type Notifier interface {
	// Subscribe registers h for all later changes and returns a function that removes it.
	Subscribe(h Handler) (unsubscribe func())
}

// InPlace is a Store that lends its own Tasks for reading and changes a status in place,
// without the copies of Get and UpdateStatus (memory.Store: its stored Tasks are never changed,
// only replaced). View, ViewList, MutateStatus and MutateViewed use it when a store has it.
type InPlace interface {
	// View returns the named Task as stored, or a NotFound error: read it, never change it.
	View(ctx context.Context, name string) (*agentv1.Task, error)
	// ViewList returns every Task as stored, ordered by name: read them, never change them.
	ViewList(ctx context.Context) ([]*agentv1.Task, error)
	// MutateStatus is the function MutateStatus done under the store's own lock (no Conflict):
	// mutate gets a Task whose status is its own to change, and must change nothing else of
	// it, must be quick and must not call the store.
	MutateStatus(ctx context.Context, name string, mutate func(*agentv1.Task) bool) (*agentv1.Task, error)
	// CreateOwned is Create without its copy: task itself becomes the stored Task, and the
	// caller must never change it again, whatever CreateOwned returns (a failed creation may
	// have been announced and queued for the persister before it was undone).
	CreateOwned(ctx context.Context, task *agentv1.Task) error
}

// CreateOwned creates task, handing it over to the store when it is InPlace: the caller must
// never change task again, whatever CreateOwned returns (to change it, change a copy). Other
// stores copy it, as Create does.
func CreateOwned(ctx context.Context, s Store, task *agentv1.Task) error {
	if ip, ok := s.(InPlace); ok {
		return ip.CreateOwned(ctx, task)
	}
	return s.Create(ctx, task)
}

// View returns the named Task for reading: read it, never change it (it may be the store's
// own, see InPlace; else it is Get's copy).
func View(ctx context.Context, s Store, name string) (*agentv1.Task, error) {
	if ip, ok := s.(InPlace); ok {
		return ip.View(ctx, name)
	}
	return s.Get(ctx, name)
}

// ViewList returns every Task, ordered by name, for reading: read them, never change them
// (they may be the store's own, see InPlace; else List's copies).
func ViewList(ctx context.Context, s Store) ([]*agentv1.Task, error) {
	if ip, ok := s.(InPlace); ok {
		return ip.ViewList(ctx)
	}
	list, err := s.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]*agentv1.Task, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	return out, nil
}

// maxConflictRetries bounds MutateStatus's retries on Conflict.
const maxConflictRetries = 32

// MutateStatus reads the named Task, lets mutate change its status, and writes that, retrying
// from a fresh read when another writer got there first. When mutate returns false nothing is
// written. It returns the Task as stored: read it, never change it (with an InPlace store it is
// the store's own).
//
// The retry is written out here instead of calling client-go's retry.RetryOnConflict (which
// api/store/kube uses for its own writes): this package keeps to api's rule of importing only
// apimachinery, and the loop needs no backoff, as a Conflict means another writer got in
// between this read and this write, and the next attempt starts from a fresh read at once.
func MutateStatus(ctx context.Context, s Store, name string, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	if ip, ok := s.(InPlace); ok {
		return ip.MutateStatus(ctx, name, mutate)
	}
	task, err := s.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	return mutateFrom(ctx, s, task, mutate)
}

// MutateViewed is MutateStatus of a Task read by View, saving the read: viewed itself is never
// changed when it is the store's own (InPlace), and it is the first attempt's copy otherwise.
func MutateViewed(ctx context.Context, s Store, viewed *agentv1.Task, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	if ip, ok := s.(InPlace); ok {
		return ip.MutateStatus(ctx, viewed.Name, mutate)
	}
	return mutateFrom(ctx, s, viewed, mutate)
}

// mutateFrom is MutateStatus's loop from a first read copy.
func mutateFrom(ctx context.Context, s Store, task *agentv1.Task, mutate func(*agentv1.Task) bool) (*agentv1.Task, error) {
	name := task.Name
	for range maxConflictRetries {
		if !mutate(task) {
			return task, nil
		}
		err := s.UpdateStatus(ctx, task)
		if err == nil {
			return task, nil
		}
		if !apierrors.IsConflict(err) {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if task, err = s.Get(ctx, name); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("update status of task %s: still conflicting after %d attempts", name, maxConflictRetries)
}

// Default bounds of a Delivered.
const (
	DefaultDeliveredWindow     = 24 * time.Hour
	DefaultDeliveredMaxEntries = 100_000
	DefaultDeliveredMaxBytes   = 64 << 20
)

// DeliveredLimits bound a Delivered. An id is forgotten once Window has passed since it was
// recorded, or when more than MaxEntries ids are kept (oldest first). The bodies kept add up
// to MaxBytes at most: beyond it the oldest ids lose their bodies but are kept, so a task
// offered again is still never run twice.
type DeliveredLimits struct {
	// Window is how long an id is remembered; DefaultDeliveredWindow when zero.
	Window time.Duration
	// MaxEntries bounds the ids kept; DefaultDeliveredMaxEntries when zero.
	MaxEntries int
	// MaxBytes bounds the bodies kept; DefaultDeliveredMaxBytes when zero.
	MaxBytes int64
	// Now returns the current time; time.Now when nil.
	Now func() time.Time
}

// WithDefaults returns l with its zero fields set to the defaults.
func (l DeliveredLimits) WithDefaults() DeliveredLimits {
	if l.Window <= 0 {
		l.Window = DefaultDeliveredWindow
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultDeliveredMaxEntries
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultDeliveredMaxBytes
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}
