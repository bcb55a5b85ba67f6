// Package logging owns what the agent's log is made of besides the logr.Logger itself: the
// bridge that sends what libraries log through logrus's standard logger (compose-go and the
// docker packages it uses) into the agent's logger, so that every line of the process has one
// format and one level setting, and the lazy sink (Lazy) that makes a logger built per task or
// request cost nothing until it writes. It never creates the process logger (cmd does) and
// never logs on its own.
package logging
