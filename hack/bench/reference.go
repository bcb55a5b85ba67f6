package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// groupLog is the durable reference's append-only log with group commit: an append returns
// once its record is written and fdatasync'd; while one batch is being synced, the records
// appended meanwhile gather into the next, so that concurrent appends share one fdatasync.
// That is the least a durable agent must pay per task: a task is durable before it runs and
// its final status before it is reported.
type groupLog struct {
	f       *os.File
	mu      sync.Mutex
	next    *commitBatch  // the batch being gathered; guarded by mu
	kick    chan struct{} // a batch waits to be committed
	stopped chan struct{}
	commits atomic.Int64 // fdatasyncs done
	records atomic.Int64 // records made durable
}

type commitBatch struct {
	buf  []byte
	n    int           // records in buf
	done chan struct{} // closed once buf is durable (or failed)
	err  error
}

// openGroupLog opens (creating) the log at path for appending and starts its committer.
func openGroupLog(path string) (*groupLog, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	l := &groupLog{f: f, next: newBatch(nil), kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	go l.commitLoop()
	return l, nil
}

func newBatch(buf []byte) *commitBatch {
	return &commitBatch{buf: buf[:0], done: make(chan struct{})}
}

// appendRecord adds one record (its bytes as given: a whole line) and returns once it is
// durable. rec is copied.
func (l *groupLog) appendRecord(rec []byte) error {
	l.mu.Lock()
	b := l.next
	b.buf = append(b.buf, rec...)
	b.n++
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default: // a kick is pending: the committer takes this batch with it
	}
	<-b.done
	return b.err
}

func (l *groupLog) commitLoop() {
	defer close(l.stopped)
	var spare []byte
	for range l.kick {
		l.mu.Lock()
		b := l.next
		if b.n == 0 {
			l.mu.Unlock()
			continue // taken with an earlier kick
		}
		l.next = newBatch(spare)
		l.mu.Unlock()
		_, err := l.f.Write(b.buf)
		if err == nil {
			err = unix.Fdatasync(int(l.f.Fd()))
		}
		b.err = err
		l.commits.Add(1)
		l.records.Add(int64(b.n))
		spare = b.buf // nobody reads it once done is closed: waiters only read err
		b.buf = nil
		close(b.done)
	}
}

// close stops the committer and closes the file; no append may be in flight or come later.
func (l *groupLog) close() error {
	close(l.kick)
	<-l.stopped
	return l.f.Close()
}

// Records of the log, one line each: a task taken ("T" id payload) and a task finished ("F"
// id status), the id quoted. The reference's replay would run again every task with a T
// record and no F one and report every F; the benchmark never restarts it, so it has none.
func takenRecord(buf []byte, id string, payload []byte) []byte {
	buf = append(buf, "T "...)
	buf = strconv.AppendQuote(buf, id)
	buf = append(buf, ' ')
	buf = appendOneLine(buf, payload)
	return append(buf, '\n')
}

func finalRecord(buf []byte, id, status string) []byte {
	buf = append(buf, "F "...)
	buf = strconv.AppendQuote(buf, id)
	buf = append(buf, ' ')
	buf = append(buf, status...)
	return append(buf, '\n')
}

// appendOneLine appends JSON with its line breaks (only whitespace in JSON) made spaces.
func appendOneLine(buf, js []byte) []byte {
	start := len(buf)
	buf = append(buf, js...)
	for i := start; i < len(buf); i++ {
		if buf[i] == '\n' || buf[i] == '\r' {
			buf[i] = ' '
		}
	}
	return buf
}

// logState reads a log back: the tasks taken and the final status of each finished one. A
// task finished without being taken first is an error: the guarantee is broken.
func logState(path string) (taken map[string]bool, final map[string]string, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	taken, final = map[string]bool{}, map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) < 3 || line[1] != ' ' {
			return nil, nil, fmt.Errorf("bad record %q", line)
		}
		q, err := strconv.QuotedPrefix(line[2:])
		if err != nil {
			return nil, nil, fmt.Errorf("bad record %q: %w", line, err)
		}
		id, _ := strconv.Unquote(q)
		rest := line[2+len(q):]
		if len(rest) < 2 || rest[0] != ' ' {
			return nil, nil, fmt.Errorf("bad record %q", line)
		}
		switch line[0] {
		case 'T':
			taken[id] = true
		case 'F':
			if !taken[id] {
				return nil, nil, fmt.Errorf("task %s finished without being taken first", id)
			}
			final[id] = rest[1:]
		default:
			return nil, nil, fmt.Errorf("bad record %q", line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(taken) == 0 {
		return nil, nil, errors.New("empty log")
	}
	return taken, final, nil
}
