// Package testpoll is the one deadline-polling helper of the tests and of hack/bench: wait
// for a state, and when the deadline passes fail with what was awaited and the last error
// seen. It polls through apimachinery's wait.PollUntilContextTimeout and never sleeps a fixed
// time in place of waiting for a state. It is never part of the agent.
package testpoll
