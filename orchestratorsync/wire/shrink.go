package wire

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Report size budget (docs/orchestrator-api.md, "Report size").
const (
	// DefaultMaxReportBytes is the default budget of one report body as sent on the wire.
	DefaultMaxReportBytes = 512 << 10
	// MinReportBudget is the smallest budget a full report is shrunk to; below it (after
	// repeated 413 answers, say) only the minimal report is sent.
	MinReportBudget = 1 << 10

	// minStringCap is the smallest a shortened string is cut to (encoded bytes, marker included).
	minStringCap = 128
	// markerReserve is what a cut string keeps free for its marker.
	markerReserve = 64
	// maxTruncRecords bounds the fields listed in report_truncated.
	maxTruncRecords = 16
)

// ResultTruncatedKey is the result field that records what was cut or dropped to make a report
// fit (docs/orchestrator-api.md, "Report size").
const ResultTruncatedKey = "report_truncated"

// EncodeReport returns the exact body of report r, at most maxBytes long
// (DefaultMaxReportBytes when maxBytes <= 0), with its result shrunk to fit when the whole
// does not (see docs/orchestrator-api.md, "Report size"). The same report always gives the
// same bytes. When nothing else fits, the body is the minimal report (status, error, times and
// an EventResultDropped event saying why there is no result), which may exceed a budget
// smaller than MinReportBudget.
func EncodeReport(r Report, maxBytes int) ([]byte, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxReportBytes
	}
	body, _, err := EncodeWithin(r, maxBytes)
	return body, err
}

// EncodeWithin encodes r within budget, shrinking its result as needed; minimal says whether
// the body is the minimal report (nothing smaller can be sent).
func EncodeWithin(r Report, budget int) (body []byte, minimal bool, err error) {
	full, err := marshalReport(r)
	if err != nil {
		return nil, false, err
	}
	if len(full) <= budget {
		return full, false, nil
	}
	if !isNull(r.Result) && r.IsFinal() && budget >= MinReportBudget {
		if body, ok, err := shrinkResult(r, budget, len(full)); err != nil || ok {
			return body, false, err
		}
	}
	reason := fmt.Sprintf("the report (%d bytes) does not fit the agent's report budget (%d bytes) even with its result shortened", len(full), budget)
	body, err = EncodeMinimal(r, budget, len(full), reason)
	return body, true, err
}

// EventResultDropped is the type of the one event of a minimal final report: its message says
// that the result was dropped, and why.
const EventResultDropped = "ResultDropped"

// EncodeMinimal encodes the minimal report: status, error and times and, on a final report, one
// EventResultDropped event with the reason; no result. The error is cut to fit the budget
// when it must be.
func EncodeMinimal(r Report, budget, originalBytes int, reason string) ([]byte, error) {
	m := Report{AgentID: r.AgentID, Status: r.Status, Error: r.Error, StartedAt: r.StartedAt, FinishedAt: r.FinishedAt}
	if r.IsFinal() {
		ev := Event{Type: EventResultDropped, Message: fmt.Sprintf("result dropped: %s (full report %d bytes, budget %d bytes)", reason, originalBytes, budget)}
		if r.FinishedAt != nil {
			ev.Time = *r.FinishedAt
		}
		m.Events = []Event{ev}
	}
	body, err := marshalReport(m)
	if err != nil || len(body) <= budget || m.Error == "" {
		return body, err
	}
	over := len(body) - budget
	m.Error = cutText(m.Error, max(encodedLen(m.Error)-over, minStringCap))
	return marshalReport(m)
}

// truncRecord is result.report_truncated.
type truncRecord struct {
	// BudgetBytes is the budget the report was made to fit.
	BudgetBytes int `json:"budget_bytes"`
	// OriginalBytes is the size the report would have had unshrunk.
	OriginalBytes int `json:"original_bytes"`
	// Fields lists the values shortened or dropped, largest first (at most maxTruncRecords).
	Fields []truncField `json:"fields,omitempty"`
	// MoreFields counts the values changed beyond those listed.
	MoreFields int `json:"more_fields,omitempty"`
}

// truncField records one shortened or dropped value.
type truncField struct {
	// Path names the value in the result: keys joined by ".", array indexes in brackets.
	Path string `json:"path"`
	// Bytes is the value's length: UTF-8 bytes of a text, decoded bytes of a base64 value.
	Bytes int `json:"bytes"`
	// KeptBytes is how much of it the report still holds (head and tail); 0 when dropped.
	KeptBytes int `json:"kept_bytes"`
}

// jnode is a parsed JSON value that keeps the order of object keys, so that shrinking changes
// only what it cuts.
type jnode struct {
	kind  jkind
	raw   string   // literal of a number, true, false or null
	str   string   // value of a string (current, possibly cut)
	orig  string   // value of a string, or literal, as parsed
	b64   bool     // the string is base64: its sibling "<key>_encoding" is "base64"
	bulky bool     // a screenshot or other bulky binary value: dropped first
	keys  []string // object keys
	elems []*jnode // array elements or object values
}

type jkind uint8

const (
	jLiteral jkind = iota
	jString
	jArray
	jObject
)

// parseTree parses one JSON value; ok is false when it cannot.
func parseTree(data []byte) (n *jnode, ok bool) {
	n, err := parseJSON(data)
	return n, err == nil
}

// parseJSON parses one JSON value.
func parseJSON(data []byte) (*jnode, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	n, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON value")
	}
	return n, nil
}

// maxDepth bounds the nesting parseValue follows.
const maxDepth = 1000

func parseValue(dec *json.Decoder, depth int) (*jnode, error) {
	if depth > maxDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '[':
			n := &jnode{kind: jArray}
			for dec.More() {
				e, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.elems = append(n.elems, e)
			}
			_, err := dec.Token()
			return n, err
		case '{':
			n := &jnode{kind: jObject}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				e, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, k)
				n.elems = append(n.elems, e)
			}
			_, err := dec.Token()
			n.markEncodings()
			return n, err
		}
		return nil, fmt.Errorf("unexpected %v", v)
	case string:
		return &jnode{kind: jString, str: v, orig: v}, nil
	case json.Number:
		return &jnode{kind: jLiteral, raw: v.String(), orig: v.String()}, nil
	case bool:
		b := strconv.FormatBool(v)
		return &jnode{kind: jLiteral, raw: b, orig: b}, nil
	case nil:
		return &jnode{kind: jLiteral, raw: "null", orig: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %v", tok)
}

// markEncodings flags the object's base64 strings (a sibling "<key>_encoding": "base64", or a
// key ending in "_base64") and its bulky ones (keys ending in "_base64": screenshots and the
// like).
func (n *jnode) markEncodings() {
	for i, k := range n.keys {
		e := n.elems[i]
		if e.kind != jString {
			continue
		}
		if strings.HasSuffix(k, "_base64") {
			e.b64, e.bulky = true, true
			continue
		}
		for j, k2 := range n.keys {
			if k2 == k+"_encoding" && n.elems[j].kind == jString && n.elems[j].str == "base64" {
				e.b64 = true
			}
		}
	}
}

// encode writes the value as compact JSON with encoding/json's string escaping.
func (n *jnode) encode(b *bytes.Buffer) {
	switch n.kind {
	case jLiteral:
		b.WriteString(n.raw)
	case jString:
		writeJSONString(b, n.str)
	case jArray:
		b.WriteByte('[')
		for i, e := range n.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			e.encode(b)
		}
		b.WriteByte(']')
	case jObject:
		b.WriteByte('{')
		for i, k := range n.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeJSONString(b, k)
			b.WriteByte(':')
			n.elems[i].encode(b)
		}
		b.WriteByte('}')
	}
}

func writeJSONString(b *bytes.Buffer, s string) {
	b.Write(appendString(b.AvailableBuffer(), s))
}

// stringRef is one string of the result, with its path and original sizes.
type stringRef struct {
	path string
	n    *jnode
	// flag is a boolean "truncated" beside the string, set to true when the string is cut.
	flag  *jnode
	enc   int // encoded length of the original
	bytes int // valueBytes of the original
}

// strings lists the tree's strings in document order.
func (n *jnode) strings(path string, out []stringRef) []stringRef {
	switch n.kind {
	case jArray:
		for i, e := range n.elems {
			out = e.strings(path+"["+strconv.Itoa(i)+"]", out)
		}
	case jObject:
		var flag *jnode
		for i, k := range n.keys {
			if e := n.elems[i]; k == "truncated" && e.kind == jLiteral && (e.raw == "true" || e.raw == "false") {
				flag = e
			}
		}
		for i, k := range n.keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			e := n.elems[i]
			if e.kind == jString {
				out = append(out, stringRef{path: p, n: e, flag: flag})
				continue
			}
			out = e.strings(p, out)
		}
	case jString:
		out = append(out, stringRef{path: path, n: n})
	}
	return out
}

// shrinkResult fits r within budget by changing its result: bulky values (screenshots) are
// dropped first, then every string longer than a common cap keeps its head and tail; the cap
// is the largest that fits. ok is false when even the smallest cap does not fit.
func shrinkResult(r Report, budget, fullBytes int) (body []byte, ok bool, err error) {
	root, parsed := parseTree(r.Result)
	if !parsed {
		// Not shrinkable (nested too deeply, say): the caller sends the minimal report.
		return nil, false, nil
	}
	wrapped := root
	refs := root.strings("", nil)
	if root.kind != jObject || hasKey(root, ResultTruncatedKey) {
		// A result that is not an object (an ECHO of a string, say) is wrapped, so that the
		// record has a place: {"value": ..., "report_truncated": {...}}.
		wrapped = &jnode{kind: jObject, keys: []string{"value"}, elems: []*jnode{root}}
		for i := range refs {
			switch p := refs[i].path; {
			case p == "":
				refs[i].path = "value"
			case p[0] == '[':
				refs[i].path = "value" + p
			default:
				refs[i].path = "value." + p
			}
		}
	}
	longest := 0
	for i := range refs {
		refs[i].enc = encodedLen(refs[i].n.orig)
		refs[i].bytes = valueBytes(refs[i].n)
		longest = max(longest, refs[i].enc)
	}
	render := func(rec truncRecord) ([]byte, error) {
		var b bytes.Buffer
		b.Grow(budget)
		recJSON, err := json.Marshal(rec)
		if err != nil {
			return nil, err
		}
		b.WriteByte('{')
		for i, k := range wrapped.keys {
			writeJSONString(&b, k)
			b.WriteByte(':')
			wrapped.elems[i].encode(&b)
			b.WriteByte(',')
		}
		writeJSONString(&b, ResultTruncatedKey)
		b.WriteByte(':')
		b.Write(recJSON)
		b.WriteByte('}')
		out := r
		out.Result = b.Bytes()
		return marshalReport(out)
	}
	// attempt drops the bulky strings and cuts every other string to at most cut encoded
	// bytes (none when cut is 0), and renders the report with the record of what changed.
	attempt := func(cut int) ([]byte, error) {
		rec := truncRecord{BudgetBytes: budget, OriginalBytes: fullBytes}
		var fields []truncField
		for _, ref := range refs {
			if ref.flag != nil {
				ref.flag.raw = ref.flag.orig
			}
		}
		for _, ref := range refs {
			n := ref.n
			n.str = n.orig
			switch {
			case n.bulky && n.orig != "":
				n.str = ""
				fields = append(fields, truncField{Path: ref.path, Bytes: ref.bytes})
			case cut > 0 && ref.enc > cut:
				var kept int
				n.str, kept = cutValue(n, cut)
				fields = append(fields, truncField{Path: ref.path, Bytes: ref.bytes, KeptBytes: kept})
				if ref.flag != nil {
					ref.flag.raw = "true"
				}
			}
		}
		// Most cut first, then by path: deterministic, and the interesting ones listed.
		sortFields(fields)
		if len(fields) > maxTruncRecords {
			rec.MoreFields = len(fields) - maxTruncRecords
			fields = fields[:maxTruncRecords]
		}
		rec.Fields = fields
		return render(rec)
	}

	// Bulky values first, then the largest common cap that fits. The size for a cap is
	// predicted from the strings' encoded lengths (a string cut to cap takes at most cap
	// bytes), so one render usually settles it; the bytes depend on the cap alone, so the
	// outcome is deterministic.
	bulky, overhead := 0, len(`,"report_truncated":`)+recordMaxLen(refs)
	if wrapped != root {
		overhead += len(`{"value":}`)
	}
	var encs []int
	for _, ref := range refs {
		if ref.n.bulky {
			bulky += ref.enc
		} else if ref.enc > minStringCap {
			encs = append(encs, ref.enc)
		}
	}
	excess := fullBytes + overhead - bulky - budget
	if excess <= 0 {
		if body, err = attempt(0); err != nil || len(body) <= budget {
			return body, err == nil, err
		}
		excess = len(body) - budget
	}
	for range 4 {
		cut := waterLevel(encs, excess)
		if cut < minStringCap {
			return nil, false, nil
		}
		if body, err = attempt(cut); err != nil || len(body) <= budget {
			return body, err == nil, err
		}
		excess += len(body) - budget
	}
	return nil, false, nil
}

// waterLevel returns the largest cap such that cutting every length in encs above it down to
// it removes at least excess bytes; 0 when no cap does.
func waterLevel(encs []int, excess int) int {
	slices.SortFunc(encs, func(a, b int) int { return b - a })
	sum := 0
	for k := 1; k <= len(encs); k++ {
		sum += encs[k-1]
		// With the k longest cut to level L: removed = sum - k*L >= excess.
		level := (sum - excess) / k
		next := 0
		if k < len(encs) {
			next = encs[k]
		}
		if level >= next && level > 0 {
			return min(level, encs[k-1])
		}
	}
	return 0
}

// recordMaxLen bounds the encoded length of report_truncated for these strings: the longest
// paths, with counts of the most digits.
func recordMaxLen(refs []stringRef) int {
	paths := make([]int, 0, len(refs))
	for _, ref := range refs {
		paths = append(paths, encodedLen(ref.path))
	}
	slices.SortFunc(paths, func(a, b int) int { return b - a })
	rec := truncRecord{BudgetBytes: 1 << 40, OriginalBytes: 1 << 40, MoreFields: len(refs)}
	n, _ := json.Marshal(rec)
	total := len(n)
	for i := range min(len(paths), maxTruncRecords) {
		f, _ := json.Marshal(truncField{Bytes: 1 << 40, KeptBytes: 1 << 40})
		total += len(f) + paths[i] + 1
	}
	return total
}

func hasKey(n *jnode, key string) bool {
	for _, k := range n.keys {
		if k == key {
			return true
		}
	}
	return false
}

func sortFields(f []truncField) {
	// Insertion sort keeps this free of reflection and is plenty for a result's strings.
	for i := 1; i < len(f); i++ {
		for j := i; j > 0 && fieldLess(f[j], f[j-1]); j-- {
			f[j], f[j-1] = f[j-1], f[j]
		}
	}
}

func fieldLess(a, b truncField) bool {
	if a.Bytes-a.KeptBytes != b.Bytes-b.KeptBytes {
		return a.Bytes-a.KeptBytes > b.Bytes-b.KeptBytes
	}
	return a.Path < b.Path
}

// valueBytes is a string value's original length: decoded bytes of base64, else UTF-8 bytes.
func valueBytes(n *jnode) int {
	if n.b64 {
		if raw, err := base64.StdEncoding.DecodeString(n.orig); err == nil {
			return len(raw)
		}
	}
	return len(n.orig)
}

// cutValue shortens a string to about cut encoded bytes, keeping its head and tail around a
// marker; a base64 value is cut in its decoded bytes and encoded again. It returns the new
// value and the bytes of the original it keeps.
func cutValue(n *jnode, cut int) (string, int) {
	if n.b64 {
		if raw, err := base64.StdEncoding.DecodeString(n.orig); err == nil {
			keep := max((cut-markerReserve)*3/4, 2)
			head, tail := keep/2, keep-keep/2
			if head+tail >= len(raw) {
				return n.orig, len(raw)
			}
			out := make([]byte, 0, keep+markerReserve)
			out = append(out, raw[:head]...)
			out = append(out, marker(len(raw)-head-tail)...)
			out = append(out, raw[len(raw)-tail:]...)
			return base64.StdEncoding.EncodeToString(out), head + tail
		}
	}
	s := cutText(n.orig, cut)
	return s, keptOf(n.orig, s)
}

// cutText keeps the head and tail of s, at rune boundaries, whose encoded lengths add up to at
// most cut minus the marker's reserve, with a marker giving the bytes cut in between.
func cutText(s string, cut int) string {
	half := max(cut-markerReserve, 2) / 2
	head := 0
	for enc := 0; head < len(s); {
		r, size := utf8.DecodeRuneInString(s[head:])
		l := runeEncodedLen(r, size)
		if enc+l > half {
			break
		}
		enc += l
		head += size
	}
	tail := len(s)
	for enc := 0; tail > head; {
		r, size := utf8.DecodeLastRuneInString(s[:tail])
		l := runeEncodedLen(r, size)
		if enc+l > half {
			break
		}
		enc += l
		tail -= size
	}
	if tail <= head {
		return s
	}
	return s[:head] + marker(tail-head) + s[tail:]
}

// keptOf returns how many bytes of orig the cut string c keeps.
func keptOf(orig, c string) int {
	if c == orig {
		return len(orig)
	}
	i := strings.Index(c, "\n...[")
	j := strings.LastIndex(c, "]...\n")
	if i < 0 || j < 0 {
		return len(c)
	}
	return i + len(c) - (j + len("]...\n"))
}

// marker is what stands for the bytes cut out of a value.
func marker(cut int) string {
	return "\n...[" + strconv.Itoa(cut) + " bytes cut to fit the report]...\n"
}

// encodedLen is the length of s as encoding/json writes it, quotes excluded.
func encodedLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeEncodedLen(r, size)
		i += size
	}
	return n
}

// runeEncodedLen is the length of one rune as encoding/json writes it (HTML-safe escaping).
func runeEncodedLen(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // \ufffd
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t' || r == '\b' || r == '\f':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	}
	return size
}
