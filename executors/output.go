package executors

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// headTail is an io.Writer that keeps at most limit bytes of a stream: the
// first half and the last half. Memory is bounded by limit however much is
// written. It is not safe for concurrent use.
type headTail struct {
	headMax, tailMax int
	head             []byte // the first headMax bytes
	tail             []byte // ring buffer of the last bytes after head; in order until full
	tailStart        int    // index of the oldest byte in tail once it is full
	total            int64  // bytes written
}

func newHeadTail(limit int) *headTail {
	limit = max(limit, 2)
	headMax := limit / 2
	return &headTail{headMax: headMax, tailMax: limit - headMax}
}

// Write implements io.Writer; it never fails.
func (b *headTail) Write(p []byte) (int, error) {
	n := len(p)
	b.total += int64(n)
	if len(b.head) < b.headMax {
		k := min(b.headMax-len(b.head), len(p))
		b.head = append(b.head, p[:k]...)
		p = p[k:]
	}
	if len(b.tail) < b.tailMax {
		k := min(b.tailMax-len(b.tail), len(p))
		b.tail = append(b.tail, p[:k]...)
		p = p[k:]
	}
	if len(p) >= b.tailMax {
		copy(b.tail, p[len(p)-b.tailMax:])
		b.tailStart = 0
		return n, nil
	}
	for len(p) > 0 {
		k := copy(b.tail[b.tailStart:], p)
		p = p[k:]
		b.tailStart = (b.tailStart + k) % b.tailMax
	}
	return n, nil
}

// truncated reports whether bytes were dropped.
func (b *headTail) truncated() bool {
	return b.total > int64(b.headMax+b.tailMax)
}

// String returns what was kept. When bytes were dropped, a marker line
// "\n...[N bytes truncated]...\n" stands between head and tail, and the cut
// is moved off any split UTF-8 sequence (those bytes count as truncated).
func (b *headTail) String() string {
	tail := make([]byte, 0, len(b.tail))
	tail = append(tail, b.tail[b.tailStart:]...)
	tail = append(tail, b.tail[:b.tailStart]...)
	if !b.truncated() {
		return string(b.head) + string(tail)
	}
	head := trimPartialRuneEnd(b.head)
	tail = trimPartialRuneStart(tail)
	dropped := b.total - int64(len(head)) - int64(len(tail))
	return string(head) + fmt.Sprintf("\n...[%d bytes truncated]...\n", dropped) + string(tail)
}

// trimPartialRuneEnd drops an incomplete UTF-8 sequence at the end of p.
func trimPartialRuneEnd(p []byte) []byte {
	for i := 1; i <= utf8.UTFMax && i <= len(p); i++ {
		c := p[len(p)-i]
		if utf8.RuneStart(c) {
			if c >= utf8.RuneSelf && !utf8.FullRune(p[len(p)-i:]) {
				return p[:len(p)-i]
			}
			return p
		}
	}
	return p
}

// trimPartialRuneStart drops continuation bytes at the start of p that belong
// to a sequence cut off before it.
func trimPartialRuneStart(p []byte) []byte {
	for i := 0; i < utf8.UTFMax && i < len(p); i++ {
		if utf8.RuneStart(p[i]) {
			return p[i:]
		}
	}
	return p
}

// Shorten returns s cut to at most n bytes followed by "...", or s itself when it is no
// longer: a cut never splits a UTF-8 sequence (for the messages and notes that quote text).
func Shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// EncodeOutput is the rule for every result field that carries a process's output (stdout
// and stderr of SHELL, DOCKER_RELOAD, COMPOSE_ROLLBACK and COMPOSE_LOGS): the output goes into
// the JSON result unchanged, with encoding "", when it is valid UTF-8; otherwise as the
// standard (padded) base64 of its bytes with encoding "base64", which the result names in a
// sibling field "<field>_encoding". No byte of an output is ever replaced. Every other result
// field is text the agent made or decoded from JSON, valid UTF-8 by construction.
func EncodeOutput(output string) (text, encoding string) {
	if utf8.ValidString(output) {
		return output, ""
	}
	return base64.StdEncoding.EncodeToString([]byte(output)), "base64"
}

// processJSON is a [ProcessResult] as it goes into a result: its output by the rule of
// [EncodeOutput].
type processJSON struct {
	ExitCode       int    `json:"exit_code"`
	Stdout         string `json:"stdout"`
	Stderr         string `json:"stderr"`
	DurationMS     int64  `json:"duration_ms"`
	Truncated      bool   `json:"truncated"`
	StdoutEncoding string `json:"stdout_encoding,omitempty"`
	StderrEncoding string `json:"stderr_encoding,omitempty"`
}

func (r ProcessResult) wire() processJSON {
	w := processJSON{ExitCode: r.ExitCode, DurationMS: r.DurationMS, Truncated: r.Truncated}
	w.Stdout, w.StdoutEncoding = EncodeOutput(r.Stdout)
	w.Stderr, w.StderrEncoding = EncodeOutput(r.Stderr)
	return w
}

// MarshalJSON writes the result with its output by the rule of [EncodeOutput].
func (r ProcessResult) MarshalJSON() ([]byte, error) { return json.Marshal(r.wire()) }

// withProcess is the JSON object of fields (a result's own fields, as a struct without a
// MarshalJSON of its own) followed by those of p: the results that hold a process result show
// it flattened among their fields.
func withProcess(fields any, p ProcessResult) ([]byte, error) {
	own, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	proc, err := p.MarshalJSON()
	if err != nil {
		return nil, err
	}
	if len(own) < 2 || own[0] != '{' || own[len(own)-1] != '}' {
		return nil, fmt.Errorf("result fields %T are not a JSON object", fields)
	}
	if len(own) == 2 {
		return proc, nil
	}
	return append(append(own[:len(own)-1:len(own)-1], ','), proc[1:]...), nil
}
