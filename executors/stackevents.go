package executors

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
)

// maxEventLine bounds one line of `docker events` output; a longer one (a container with
// huge labels) is skipped.
const maxEventLine = 256 << 10

// Watch runs `docker events` for the containers of Compose projects until ctx ends or docker
// stops answering, and calls changed with the project of every container that starts,
// stops, dies, is destroyed or changes health, so that its Stack is observed again at once.
// It returns why it stopped: ctx's cause, or docker's error (the caller starts it again).
// changed must not block. Only the project label of each event is read; the rest (the
// container's other labels) is discarded.
func (o *StackObserver) Watch(ctx context.Context, changed func(project string)) error {
	lines := &eventLines{changed: changed}
	argv := []string{o.c.docker, "events", "--format", "{{json .}}",
		"--filter", "type=container", "--filter", "label=com.docker.compose.project",
		"--filter", "event=start", "--filter", "event=stop", "--filter", "event=die",
		"--filter", "event=destroy", "--filter", "event=health_status"}
	pr, err := o.c.proc.Run(WithProgress(ctx, lines), Command{Argv: argv})
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil {
		return watchError(err, pr)
	}
	return watchError(errEventsEnded, pr)
}

func watchError(err error, pr *ProcessResult) error {
	return &eventsError{err: err, note: stderrNote(pr)}
}

type eventsError struct {
	err  error
	note string
}

func (e *eventsError) Error() string { return "docker events: " + e.err.Error() + e.note }
func (e *eventsError) Unwrap() error { return e.err }

var errEventsEnded = eventsEndedError{}

type eventsEndedError struct{}

func (eventsEndedError) Error() string { return "ended" }

// eventLines is the Progress of the docker events process: it splits stdout into lines and
// reports each event's project.
type eventLines struct {
	mu      sync.Mutex
	buf     []byte
	skip    bool // inside a line longer than maxEventLine
	changed func(project string)
}

func (l *eventLines) Event(string, string) {}
func (l *eventLines) Mask(...string)       {}

func (l *eventLines) Output(stream string, p []byte) {
	if stream != StreamStdout {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if !l.skip {
			if len(l.buf)+len(chunk) > maxEventLine {
				l.skip, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		if i < 0 {
			return
		}
		if !l.skip {
			l.line(l.buf)
		}
		l.buf, l.skip = l.buf[:0], false
		p = p[i+1:]
	}
}

func (l *eventLines) line(b []byte) {
	var ev struct {
		Actor struct {
			Attributes struct {
				Project string `json:"com.docker.compose.project"`
			} `json:"Attributes"`
		} `json:"Actor"`
	}
	if json.Unmarshal(b, &ev) == nil && ev.Actor.Attributes.Project != "" {
		l.changed(ev.Actor.Attributes.Project)
	}
}
