// Package storetest holds the suites that prove a seam of package store against every
// implementation, so that the stores of both modes are held to one contract instead of two
// copied suites: Run for store.Store and store.Notifier (the memory store, the API-server
// store), RunStacks for store.StackStore and store.StackNotifier (the same two), RunDelivered
// for store.Delivered (the memory one and the journal); and JSONValue, to compare the JSON a
// store returns whatever its key order. It is for tests only.
package storetest
