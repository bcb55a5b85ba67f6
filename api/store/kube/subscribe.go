package kube

import (
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/letsbe/sysadmin-agent/api/store"
)

// subscribe puts a handler on objs' informer of objects of type T (Tasks, Stacks) that hands
// deliver its own copy, without managed fields, of every object of its namespace added, changed
// or deleted; resyncs that change nothing are not announced. A deliver that blocks delays only
// its own later events. It returns the unsubscribe function.
func subscribe[T client.Object](objs *objects, deliver func(store.EventType, T)) func() {
	emit := func(typ store.EventType, o any) {
		if tomb, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
			o = tomb.Obj
		}
		if obj, ok := o.(T); ok && obj.GetNamespace() == objs.ns {
			cp := obj.DeepCopyObject().(T)
			cp.SetManagedFields(nil)
			deliver(typ, cp)
		}
	}
	reg, err := objs.informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: func(o any) { emit(store.Added, o) },
		UpdateFunc: func(oldObj, o any) {
			if old, ok := oldObj.(T); ok {
				if obj, ok := o.(T); ok && old.GetResourceVersion() == obj.GetResourceVersion() {
					return
				}
			}
			emit(store.Modified, o)
		},
		DeleteFunc: func(o any) { emit(store.Deleted, o) },
	})
	if err != nil {
		// Only when the informer has stopped: there will be no events to miss.
		objs.log.Error(err, "Cannot subscribe to "+objs.kind+" changes")
		return func() {}
	}
	return func() {
		if err := objs.informer.RemoveEventHandler(reg); err != nil {
			objs.log.Error(err, "Cannot unsubscribe from "+objs.kind+" changes")
		}
	}
}
