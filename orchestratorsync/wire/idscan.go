package wire

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// MaxTaskIDBytes bounds a task id (docs/orchestrator-api.md, "Task ids").
const MaxTaskIDBytes = 256

// DefaultMaxTaskBytes is the default limit of a next-task body (AGENT_MAX_TASK_BYTES).
const DefaultMaxTaskBytes = 32 << 20

// maxScannedIDBytes bounds the raw id text the oversize scanner keeps; a longer id cannot be
// reported.
const maxScannedIDBytes = 1 << 20

// checkTaskID checks a task id against the contract on its raw JSON text: at most
// MaxTaskIDBytes of valid UTF-8, no escaped lone surrogate. usable says whether the id can
// still be reported under (a valid but too long id); an id that is not valid UTF-8 or holds a
// lone surrogate cannot: the orchestrator's id is not what a decoder makes of it.
func checkTaskID(raw json.RawMessage, id string) (usable bool, err error) {
	raw = trimJSONSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		if !utf8.Valid(raw) {
			return false, errors.New("task id is not valid UTF-8")
		}
		if loneSurrogate(raw) {
			return false, errors.New("task id holds a lone surrogate (an escape such as \\ud800 that is not half of a pair)")
		}
	}
	if len(id) > MaxTaskIDBytes {
		return true, fmt.Errorf("task id too long: %d bytes (at most %d)", len(id), MaxTaskIDBytes)
	}
	return true, nil
}

// loneSurrogate reports whether a JSON string literal holds a \uXXXX escape of a surrogate
// that is not half of a high-low pair.
func loneSurrogate(lit []byte) bool {
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		if i+1 < len(lit) && lit[i+1] != 'u' {
			i++ // \" \\ \n ...: skip the escaped byte
			continue
		}
		r, ok := hex4(lit, i+2)
		if !ok {
			continue
		}
		switch {
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := hex4(lit, i+8)
			if i+7 >= len(lit) || lit[i+6] != '\\' || lit[i+7] != 'u' || !ok || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 11
		case r >= 0xDC00 && r <= 0xDFFF:
			return true
		default:
			i += 5
		}
	}
	return false
}

func hex4(b []byte, at int) (rune, bool) {
	if at < 0 || at+4 > len(b) {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	return rune(v), err == nil
}

// ScanTaskID reads a next-task body that is too large to keep, looking for its top-level "id"
// without holding more than the id: it returns the id's raw JSON text (a string or number
// literal), and how many bytes it read. found is false when the body ends, is not a JSON
// object, or no usable "id" comes within limit bytes.
func ScanTaskID(r io.Reader, limit int64) (raw json.RawMessage, read int64, found bool) {
	s := &idScanner{r: bufio.NewReaderSize(io.LimitReader(r, limit), 32<<10)}
	raw, found = s.scan()
	return raw, s.n, found
}

type idScanner struct {
	r *bufio.Reader
	n int64
}

func (s *idScanner) next() (byte, bool) {
	c, err := s.r.ReadByte()
	if err != nil {
		return 0, false
	}
	s.n++
	return c, true
}

// nonSpace returns the next byte that is not JSON white space.
func (s *idScanner) nonSpace() (byte, bool) {
	for {
		c, ok := s.next()
		if !ok || (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
			return c, ok
		}
	}
}

func (s *idScanner) scan() (json.RawMessage, bool) {
	if c, ok := s.nonSpace(); !ok || c != '{' {
		return nil, false
	}
	for {
		c, ok := s.nonSpace()
		if !ok || c != '"' {
			return nil, false // '}' (no id), or not JSON
		}
		key, ok := s.stringLit(64)
		if !ok {
			return nil, false
		}
		if c, ok := s.nonSpace(); !ok || c != ':' {
			return nil, false
		}
		var name string
		isID := key != nil && json.Unmarshal(key, &name) == nil && name == "id"
		c, ok = s.nonSpace()
		if !ok {
			return nil, false
		}
		if isID {
			switch {
			case c == '"':
				lit, ok := s.stringLit(maxScannedIDBytes)
				return lit, ok && lit != nil
			case c == '-' || c >= '0' && c <= '9':
				lit := []byte{c}
				for {
					b, err := s.r.Peek(1)
					if err != nil || !(b[0] == '-' || b[0] == '+' || b[0] == '.' || b[0] == 'e' || b[0] == 'E' || b[0] >= '0' && b[0] <= '9') || len(lit) > 64 {
						break
					}
					lit = append(lit, b[0])
					s.next()
				}
				return lit, true
			}
			return nil, false // null, an object...: no usable id
		}
		if !s.skipValue(c) {
			return nil, false
		}
		if c, ok := s.nonSpace(); !ok || c != ',' {
			return nil, false // '}': the object ended without an id
		}
	}
}

// stringLit reads the rest of a string literal whose opening quote was read, returning it with
// its quotes, or nil (but ok) when it is longer than keep.
func (s *idScanner) stringLit(keep int) (lit []byte, ok bool) {
	lit = []byte{'"'}
	for {
		c, ok := s.next()
		if !ok {
			return nil, false
		}
		if lit != nil {
			lit = append(lit, c)
			if len(lit) > keep+2 {
				lit = nil
			}
		}
		switch c {
		case '"':
			return lit, true
		case '\\':
			e, ok := s.next()
			if !ok {
				return nil, false
			}
			if lit != nil {
				lit = append(lit, e)
			}
		}
	}
}

// skipValue skips the value starting with c.
func (s *idScanner) skipValue(c byte) bool {
	depth := 0
	for {
		switch c {
		case '"':
			if _, ok := s.stringLit(0); !ok {
				return false
			}
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth < 0 {
				return false
			}
		}
		if depth == 0 {
			// A scalar ends before the next delimiter; a string or container has ended.
			if c != '"' && c != '}' && c != ']' {
				for {
					b, err := s.r.Peek(1)
					if err != nil {
						return false
					}
					if b[0] == ',' || b[0] == '}' || b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' {
						return true
					}
					s.next()
				}
			}
			return true
		}
		var ok bool
		if c, ok = s.next(); !ok {
			return false
		}
	}
}
