// Package progress hands the live progress of running Tasks (new events and output chunks,
// already redacted and cut to size by the controllers) to the sync side, which sends them to
// the orchestrator as RUNNING reports. It is a small in-memory hub: one batch waits per Task at
// most, nothing is persisted, and a batch nobody takes is replaced by nothing (the controllers
// keep the data until the slot is free). Progress is best effort by design: losing it never
// loses a result, which travels in the Task's final status. The package imports only the
// standard library; it never runs anything and knows nothing of the wire format.
package progress
