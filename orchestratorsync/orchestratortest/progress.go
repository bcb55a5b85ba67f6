package orchestratortest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
)

// maxProgressBytes bounds the output kept per stream of a task.
const maxProgressBytes = 4 << 20

// featureProgress is the register answer's feature asking for progress reports.
const featureProgress = "progress"

// TaskProgress is what the progress reports of a task brought (contract v1.1, feature
// "progress"): the output put together per stream, and every chunk as it came.
type TaskProgress struct {
	// Reports counts the accepted RUNNING reports that carried output.
	Reports int `json:"reports"`
	// Stdout and Stderr are the streams put together from the chunks (at most 4 MiB each).
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	// Chunks lists the chunks received, in order, without their data.
	Chunks []ProgressChunk `json:"chunks,omitempty"`
	// Gaps counts chunks that started beyond the end of what came before (bytes dropped);
	// Overlaps counts chunks that repeated bytes already received.
	Gaps     int `json:"gaps"`
	Overlaps int `json:"overlaps"`
}

// ProgressChunk is one output chunk of a progress report.
type ProgressChunk struct {
	Stream string `json:"stream"`
	Offset int64  `json:"offset"`
	Length int    `json:"length"`
	// Report is the task's report count when it came (1 for the first report).
	Report int `json:"report"`
	// Data is the chunk's text (not in the JSON view: see Stdout and Stderr).
	Data string `json:"-"`
}

// progressReport is the part of a RUNNING report the progress feature adds, decoded with the
// server's own types.
type progressReport struct {
	Status string `json:"status"`
	Output []struct {
		Stream string `json:"stream"`
		Offset int64  `json:"offset"`
		Data   string `json:"data"`
	} `json:"output"`
}

// withProgress wraps the report handler: an accepted RUNNING report's output chunks are kept.
func (s *Server) withProgress(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
		if err != nil {
			s.n.report.Add(1)
			s.fail(w, http.StatusRequestEntityTooLarge, "body too large")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sw := &statusWriter{ResponseWriter: w}
		next(sw, r)
		if sw.status/100 != 2 {
			return
		}
		var rep progressReport
		if json.Unmarshal(body, &rep) != nil || rep.Status != StatusRunning || len(rep.Output) == 0 {
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		t := s.tasks[r.PathValue("task")]
		if t == nil || t.st.IsFinal() {
			return
		}
		p := &t.st.Progress
		p.Reports++
		for _, c := range rep.Output {
			p.Chunks = append(p.Chunks, ProgressChunk{Stream: c.Stream, Offset: c.Offset, Length: len(c.Data), Report: t.st.Reports, Data: c.Data})
			text := &p.Stdout
			if c.Stream == "stderr" {
				text = &p.Stderr
			}
			end := p.streamEnd(c.Stream)
			switch {
			case c.Offset > end:
				p.Gaps++
			case c.Offset < end:
				p.Overlaps++
				if skip := end - c.Offset; skip < int64(len(c.Data)) {
					c.Data = c.Data[skip:]
				} else {
					c.Data = ""
				}
			}
			if len(*text)+len(c.Data) <= maxProgressBytes {
				*text += c.Data
			}
		}
		t.notifyLocked()
	}
}

// streamEnd is the offset after the last chunk of the stream received so far, before the
// chunk just appended.
func (p *TaskProgress) streamEnd(stream string) int64 {
	var end int64
	for _, c := range p.Chunks[:len(p.Chunks)-1] {
		if c.Stream == stream {
			end = max(end, c.Offset+int64(c.Length))
		}
	}
	return end
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// mergeEvents adds to have the events of a RUNNING report it does not hold yet: a progress
// report carries only new events, a repeated one the same again.
func mergeEvents(have, add []Event) []Event {
	for _, e := range add {
		if !slices.ContainsFunc(have, func(h Event) bool {
			return h.Type == e.Type && h.Message == e.Message && h.Time.Equal(e.Time)
		}) {
			have = append(have, e)
		}
	}
	return have
}

// features is what register announces.
func (s *Server) features() []string {
	if s.opts.Progress {
		return []string{featureProgress}
	}
	return nil
}

func (p TaskProgress) clone() TaskProgress {
	p.Chunks = slices.Clone(p.Chunks)
	return p
}
