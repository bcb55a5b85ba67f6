package memory

import (
	"context"
	"maps"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/letsbe/sysadmin-agent/api/store"
	agentv1 "github.com/letsbe/sysadmin-agent/api/v1alpha1"
)

var stackResource = agentv1.GroupVersion.WithResource("stacks").GroupResource()

// StackStore is an in-memory store.StackStore with change notification, kept in memory only
// (see the package documentation for why). The zero value is not usable: call NewStackStore.
type StackStore struct {
	mu       sync.Mutex
	objects  map[string]*agentv1.Stack
	revision uint64
	now      func() time.Time

	subs subscribers[store.StackEvent]
}

var (
	_ store.StackStore    = (*StackStore)(nil)
	_ store.StackNotifier = (*StackStore)(nil)
)

// NewStackStore returns an empty Stack store.
func NewStackStore() *StackStore {
	return &StackStore{objects: map[string]*agentv1.Stack{}, now: time.Now}
}

// Subscribe implements store.StackNotifier. Handlers run inside the write, in order.
func (m *StackStore) Subscribe(h store.StackHandler) func() {
	return m.subs.add(h)
}

// Get implements store.StackStore.
func (m *StackStore) Get(_ context.Context, name string) (*agentv1.Stack, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return nil, apierrors.NewNotFound(stackResource, name)
	}
	return obj.DeepCopy(), nil
}

// Create implements store.StackStore.
func (m *StackStore) Create(_ context.Context, stack *agentv1.Stack) error {
	if err := checkNew(stack, "stack"); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objects[stack.Name]; ok {
		return apierrors.NewAlreadyExists(stackResource, stack.Name)
	}
	obj := &agentv1.Stack{TypeMeta: stack.TypeMeta}
	stack.ObjectMeta.DeepCopyInto(&obj.ObjectMeta)
	obj.Spec = stack.Spec
	created(&obj.ObjectMeta, m.nextRevision(), m.now())
	m.objects[obj.Name] = obj
	setCreated(&stack.ObjectMeta, obj.ObjectMeta)
	m.subs.notify(store.StackEvent{Type: store.Added, Stack: obj})
	return nil
}

// Update implements store.StackStore.
func (m *StackStore) Update(_ context.Context, stack *agentv1.Stack) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, err := current(m.objects, stackResource, stack)
	if err != nil {
		return err
	}
	obj := old.DeepCopy()
	obj.Spec = stack.Spec
	obj.Labels = maps.Clone(stack.Labels)
	obj.Annotations = maps.Clone(stack.Annotations)
	if !equality.Semantic.DeepEqual(old.Spec, obj.Spec) {
		obj.Generation++
	}
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	stack.ResourceVersion, stack.Generation = obj.ResourceVersion, obj.Generation
	m.subs.notify(store.StackEvent{Type: store.Modified, Stack: obj})
	return nil
}

// UpdateStatus implements store.StackStore.
func (m *StackStore) UpdateStatus(_ context.Context, stack *agentv1.Stack) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, err := current(m.objects, stackResource, stack)
	if err != nil {
		return err
	}
	obj := &agentv1.Stack{TypeMeta: old.TypeMeta, ObjectMeta: old.ObjectMeta, Spec: old.Spec}
	stack.Status.DeepCopyInto(&obj.Status)
	obj.ResourceVersion = m.nextRevision()
	m.objects[obj.Name] = obj
	stack.ResourceVersion = obj.ResourceVersion
	m.subs.notify(store.StackEvent{Type: store.Modified, Stack: obj})
	return nil
}

// List implements store.StackStore.
func (m *StackStore) List(_ context.Context) (*agentv1.StackList, error) {
	m.mu.Lock()
	list := &agentv1.StackList{
		ListMeta: metav1.ListMeta{ResourceVersion: strconv.FormatUint(m.revision, 10)},
		Items:    copies(m.objects),
	}
	m.mu.Unlock()
	byName(list.Items)
	return list, nil
}

// Delete implements store.StackStore.
func (m *StackStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	obj, ok := m.objects[name]
	if !ok {
		return apierrors.NewNotFound(stackResource, name)
	}
	delete(m.objects, name)
	m.subs.notify(store.StackEvent{Type: store.Deleted, Stack: obj})
	return nil
}

func (m *StackStore) nextRevision() string {
	m.revision++
	return strconv.FormatUint(m.revision, 10)
}
