package memory

import (
	"slices"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
)

// The mechanics the Task store and the Stack store share, written once over both object
// types: each store adds what is its type's own (the Task store its durability).

// checkNew refuses what no API server creates: an object without a name, or with a
// resourceVersion. kind names the object ("task", "stack").
func checkNew(obj metav1.Object, kind string) error {
	if obj.GetName() == "" {
		return apierrors.NewBadRequest(kind + " name is required")
	}
	if obj.GetResourceVersion() != "" {
		return apierrors.NewBadRequest("resourceVersion must not be set on create")
	}
	return nil
}

// created fills in the server-set metadata of a new object as the API server does: the
// resourceVersion rv, a new uid, generation 1 and, unless set, the creation time (to the
// second, as the API server keeps it).
func created(meta *metav1.ObjectMeta, rv string, now time.Time) {
	meta.ResourceVersion = rv
	meta.UID = types.UID(uuid.NewUUID())
	meta.Generation = 1
	if meta.CreationTimestamp.IsZero() {
		meta.CreationTimestamp = metav1.NewTime(now.UTC().Truncate(time.Second))
	}
}

// setCreated copies the server-set metadata of a created object back to the caller's, as a
// client's Create does (the rest of the caller's object is what was stored already).
func setCreated(dst *metav1.ObjectMeta, created metav1.ObjectMeta) {
	dst.ResourceVersion, dst.UID, dst.Generation, dst.CreationTimestamp = created.ResourceVersion, created.UID, created.Generation, created.CreationTimestamp
}

// current returns the stored object (T is *agentv1.Task or *agentv1.Stack) that a write of
// obj replaces: NotFound when there is none, Conflict when obj has a resourceVersion that is
// not the stored one. Called with the store's lock held.
func current[T metav1.Object](objects map[string]T, resource schema.GroupResource, obj metav1.Object) (T, error) {
	var none T
	old, ok := objects[obj.GetName()]
	if !ok {
		return none, apierrors.NewNotFound(resource, obj.GetName())
	}
	if rv := obj.GetResourceVersion(); rv != "" && rv != old.GetResourceVersion() {
		return none, apierrors.NewConflict(resource, obj.GetName(), errStale(rv, old.GetResourceVersion()))
	}
	return old, nil
}

// copies returns a copy of each stored object, in no order, for List: T is agentv1.Task or
// agentv1.Stack. Called with the store's lock held.
func copies[T any, PT interface {
	*T
	DeepCopy() PT
}](objects map[string]PT) []T {
	items := make([]T, 0, len(objects))
	for _, obj := range objects {
		items = append(items, *obj.DeepCopy())
	}
	return items
}

// byName orders List's items by name (PT is *agentv1.Task or *agentv1.Stack), outside the
// store's lock.
func byName[T any, PT interface {
	*T
	metav1.Object
}](items []T) {
	slices.SortFunc(items, func(a, b T) int { return strings.Compare(PT(&a).GetName(), PT(&b).GetName()) })
}

type staleError struct{ sent, stored string }

func (e staleError) Error() string {
	return "resourceVersion " + e.sent + " is stale (stored: " + e.stored + ")"
}

func errStale(sent, stored string) error { return staleError{sent, stored} }

// subscribers are a store's change handlers, E its event (store.Event, store.StackEvent).
// The zero value is ready to use.
type subscribers[E any] struct {
	mu     sync.RWMutex
	byID   map[int]func(E)
	nextID int
}

// add registers h and returns the function that removes it.
func (s *subscribers[E]) add(h func(E)) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byID == nil {
		s.byID = make(map[int]func(E))
	}
	id := s.nextID
	s.nextID++
	s.byID[id] = h
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.byID, id)
	}
}

// notify calls every handler with ev, in the caller's goroutine.
func (s *subscribers[E]) notify(ev E) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, h := range s.byID {
		h(ev)
	}
}
