package executors

import (
	"bytes"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/compose-spec/compose-go/v2/template"
)

// This file holds the .env editor: a scanner that reads a .env file exactly
// as Docker Compose does (compose-go's dotenv parser, whose rules it mirrors
// line for line) but keeps the byte offsets of every statement, and an editor
// that changes, appends and removes statements without touching any other
// byte. The ENV_UPDATE executor applies it to a file inside the roots.

// envKeyPattern is what ENV_UPDATE accepts as a variable name.
var envKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// envExportPattern is compose-go's "export " prefix.
var envExportPattern = regexp.MustCompile(`^export\s+`)

// envEscapePattern is compose-go's escape sequences in double-quoted values.
var envEscapePattern = regexp.MustCompile(`(\\(?:[abcfnrtv$"\\]|0\d{0,3}))`)

// envStatement is one statement of a .env file, located in its bytes.
type envStatement struct {
	key        string
	line       int  // line of the statement, for messages
	start      int  // first byte: "export" or the key
	keyEnd     int  // end of the key
	valueStart int  // first byte of the value (its opening quote, if quoted); keyEnd when inherited
	valueEnd   int  // end of the value (after its closing quote, if quoted)
	end        int  // end of the statement: after the closing quote, or after the line's newline
	quote      byte // '\'' or '"' for a quoted value, else 0
	inherited  bool // a bare "KEY": the value comes from the environment
	literal    string
	isLiteral  bool // the value is literal: it refers to no variable
}

// envScanner mirrors compose-go's dotenv parser (dotenv/parser.go), keeping
// offsets: every string it handles is a suffix of src.
type envScanner struct {
	src  string
	line int
}

// pos is the offset in src of rest, a suffix of it.
func (sc *envScanner) pos(rest string) int { return len(sc.src) - len(rest) }

// scanEnv returns the statements of a .env file. Its errors name lines and
// keys, never values. A file compose-go cannot parse is an error, and so is
// a statement without a name (which compose-go would read as the variable
// ""). Variable references are checked for syntax only.
func scanEnv(src []byte) ([]envStatement, error) {
	sc := &envScanner{src: string(src), line: 1}
	cutset := strings.TrimPrefix(sc.src, "\uFEFF")
	var stmts []envStatement
	for {
		cutset = sc.statementStart(cutset)
		if cutset == "" {
			return stmts, nil
		}
		st, rest, err := sc.statement(cutset)
		if err != nil {
			return nil, err
		}
		stmts = append(stmts, st)
		cutset = rest
	}
}

// statementStart skips blank space and comment lines (getStatementStart).
func (sc *envScanner) statementStart(src string) string {
	for {
		pos := strings.IndexFunc(src, func(r rune) bool {
			if r == '\n' {
				sc.line++
			}
			return !unicode.IsSpace(r)
		})
		if pos == -1 {
			return ""
		}
		src = src[pos:]
		if src[0] != '#' {
			return src
		}
		pos = strings.IndexByte(src, '\n')
		if pos == -1 {
			return ""
		}
		src = src[pos:]
	}
}

// statement reads one statement (locateKeyName, then extractVarValue).
func (sc *envScanner) statement(src string) (envStatement, string, error) {
	st := envStatement{start: sc.pos(src), line: sc.line}
	if envExportPattern.MatchString(src) {
		src = strings.TrimLeftFunc(strings.TrimPrefix(src, "export"), isDotenvSpace)
	}
	key, offset, inherited := "", 0, false
loop:
	for i, r := range src {
		if isDotenvSpace(r) {
			continue
		}
		switch r {
		case '=', ':', '\n':
			key, offset, inherited = src[:i], i+1, r == '\n'
			break loop
		case '_', '.', '-', '[', ']':
		default:
			if unicode.IsLetter(r) || unicode.IsNumber(r) {
				continue
			}
			return st, "", fmt.Errorf("line %d: unexpected character %q in a variable name", sc.line, r)
		}
	}
	if inherited && strings.IndexByte(key, ' ') == -1 {
		sc.line++
	}
	key = strings.TrimRightFunc(key, unicode.IsSpace)
	switch {
	case strings.Contains(key, " "):
		return st, "", fmt.Errorf("line %d: a variable name contains a space", st.line)
	case key == "":
		return st, "", fmt.Errorf("line %d: a statement has no variable name", st.line)
	}
	st.key = key
	st.keyEnd = sc.pos(src) + len(key)
	cutset := strings.TrimLeftFunc(src[offset:], isDotenvSpace)
	if inherited {
		st.inherited = true
		st.valueStart, st.valueEnd = st.keyEnd, st.keyEnd
		st.end = sc.pos(src) + offset
		return st, cutset, nil
	}
	st.valueStart = sc.pos(cutset)

	if cutset == "" || (cutset[0] != '"' && cutset[0] != '\'') {
		value, rest, _ := strings.Cut(cutset, "\n")
		sc.line++
		value, _, _ = strings.Cut(value, " #")
		value = strings.TrimRightFunc(value, unicode.IsSpace)
		st.valueEnd = st.valueStart + len(value)
		st.end = sc.pos(rest)
		if err := st.setLiteral(value); err != nil {
			return st, "", err
		}
		return st, rest, nil
	}

	quote := cutset[0]
	escaped := false
	var chars []byte
	for i := 1; i < len(cutset); i++ {
		c := cutset[i]
		if c == '\n' {
			sc.line++
		}
		if c != quote {
			if !escaped && c == '\\' {
				escaped = true
				continue
			}
			if escaped {
				escaped = false
				chars = append(chars, '\\')
			}
			chars = append(chars, c)
			continue
		}
		if escaped {
			escaped = false
			chars = append(chars, c)
			continue
		}
		st.quote = quote
		st.valueEnd = st.valueStart + i + 1
		st.end = st.valueEnd
		if quote == '"' {
			if err := st.setLiteral(expandEscapes(string(chars))); err != nil {
				return st, "", err
			}
		} else {
			st.literal, st.isLiteral = string(chars), true
		}
		return st, cutset[i+1:], nil
	}
	return st, "", fmt.Errorf("line %d: the quoted value of %s is not terminated", st.line, key)
}

// setLiteral checks the variable references in an unquoted or double-quoted
// value and records the value when it has none (only "$$" escapes).
func (st *envStatement) setLiteral(value string) error {
	refers := false
	lit, err := template.SubstituteWithOptions(value, func(string) (string, bool) {
		refers = true
		return "x", true
	}, template.WithoutLogging)
	if err != nil {
		return fmt.Errorf("line %d: invalid variable reference in the value of %s", st.line, st.key)
	}
	st.literal, st.isLiteral = lit, !refers
	return nil
}

// expandEscapes is compose-go's unescaping of double-quoted values.
func expandEscapes(s string) string {
	return envEscapePattern.ReplaceAllStringFunc(s, func(match string) string {
		if match == `\$` {
			return "$$"
		}
		if strings.HasPrefix(match, `\0`) {
			match = strings.Replace(match, `\0`, `\`, 1)
		}
		v, _, _, err := strconv.UnquoteChar(match, '"')
		if err != nil {
			return match
		}
		return string(v)
	})
}

// isDotenvSpace is compose-go's isSpace: blank, but not a line break.
func isDotenvSpace(r rune) bool {
	switch r {
	case '\t', '\v', '\f', '\r', ' ', 0x85, 0xA0:
		return true
	}
	return false
}

// encodeEnvValue writes v so that compose-go reads back exactly v, with no
// variable expansion, on one line. quote is the style of the value it
// replaces (a double quote, a single quote or 0), kept when it can hold v: plain when v is made of
// safe characters only, else single quotes, else double quotes with escapes.
func encodeEnvValue(v string, quote byte) string {
	switch {
	case quote == 0 && envPlain(v):
		return v
	case quote != '"' && envSingleQuotable(v):
		return "'" + v + "'"
	default:
		return envDoubleQuote(v)
	}
}

// envPlain reports whether v can be written unquoted.
func envPlain(v string) bool {
	if v == "" {
		return false // "KEY= # note" would read "# note"
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("_./:@%+,=-", c) >= 0) {
			return false
		}
	}
	return true
}

// envSingleQuotable reports whether v can be written in single quotes, where
// nothing is expanded: no single quote, no control character, and no final
// backslash (which would escape the closing quote).
func envSingleQuotable(v string) bool {
	if strings.HasSuffix(v, `\`) {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == '\'' || c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

// envDoubleQuote writes v in double quotes, escaping backslashes, quotes,
// dollars and control characters (so the value stays on one line).
func envDoubleQuote(v string) string {
	var b strings.Builder
	b.Grow(len(v) + 2)
	b.WriteByte('"')
	for i := 0; i < len(v); i++ {
		switch c := v[i]; c {
		case '\\', '"', '$':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\a':
			b.WriteString(`\a`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		default:
			if c < 0x20 || c == 0x7f {
				fmt.Fprintf(&b, `\0%03o`, c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// envEditResult is what editEnv did.
type envEditResult struct {
	content []byte
	updated []string // keys whose entries were changed or added, sorted
	removed []string // keys whose entries were removed, sorted
}

// validateEnvEdit checks the keys and values of an edit. Every error is
// permanent and names keys only.
func validateEnvEdit(set map[string]string, remove []string) error {
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if !envKeyPattern.MatchString(k) {
			return InvalidPayloadf("key %q: want a name matching %s", k, envKeyPattern)
		}
		if strings.IndexByte(set[k], 0) >= 0 {
			return InvalidPayloadf("the value of %s contains a NUL byte", k)
		}
	}
	for _, k := range remove {
		if !envKeyPattern.MatchString(k) {
			return InvalidPayloadf("key %q in remove: want a name matching %s", k, envKeyPattern)
		}
		if _, ok := set[k]; ok {
			return InvalidPayloadf("key %s is both updated and removed", k)
		}
	}
	return nil
}

// editEnv sets and removes keys in the .env file src and returns the new
// content: an existing key's value is changed where it stands (every time it
// appears), a new key is appended at the end (in key order), a removed key's
// lines go. Every other byte is kept: comments, blank lines, order, export
// prefixes, quoting. A key that already has the value is left as it is.
//
// Errors name keys and lines, never values.
func editEnv(src []byte, set map[string]string, remove []string) (envEditResult, error) {
	if err := validateEnvEdit(set, remove); err != nil {
		return envEditResult{}, err
	}
	stmts, err := scanEnv(src)
	if err != nil {
		return envEditResult{}, err
	}
	type splice struct {
		start, end int
		text       string
	}
	var splices []splice
	updated, removed, present := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, st := range stmts {
		if slices.Contains(remove, st.key) {
			start, end := envRemovalSpan(string(src), st)
			splices = append(splices, splice{start, end, ""})
			removed[st.key] = true
			continue
		}
		v, ok := set[st.key]
		if !ok {
			continue
		}
		present[st.key] = true
		if st.isLiteral && st.literal == v {
			continue
		}
		if st.inherited {
			splices = append(splices, splice{st.keyEnd, st.keyEnd, "=" + encodeEnvValue(v, 0)})
		} else {
			splices = append(splices, splice{st.valueStart, st.valueEnd, encodeEnvValue(v, st.quote)})
		}
		updated[st.key] = true
	}
	var tail strings.Builder
	nl := "\n"
	if i := bytes.IndexByte(src, '\n'); i > 0 && src[i-1] == '\r' {
		nl = "\r\n"
	}
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if present[k] {
			continue
		}
		if tail.Len() == 0 && len(src) > 0 && src[len(src)-1] != '\n' {
			tail.WriteString(nl)
		}
		tail.WriteString(k + "=" + encodeEnvValue(set[k], 0) + nl)
		updated[k] = true
	}
	if tail.Len() > 0 {
		splices = append(splices, splice{len(src), len(src), tail.String()})
	}

	out := make([]byte, 0, len(src)+tail.Len())
	last := 0
	for _, s := range splices {
		if s.start < last {
			return envEditResult{}, fmt.Errorf("edit env file: overlapping edits at byte %d (a bug)", s.start)
		}
		out = append(out, src[last:s.start]...)
		out = append(out, s.text...)
		last = s.end
	}
	out = append(out, src[last:]...)

	if err := checkEnvEdit(out, set, remove); err != nil {
		return envEditResult{}, err
	}
	return envEditResult{
		content: out,
		updated: append([]string{}, slices.Sorted(maps.Keys(updated))...),
		removed: append([]string{}, slices.Sorted(maps.Keys(removed))...),
	}, nil
}

// checkEnvEdit reads an edited file back: it must parse, every set key's
// last statement must hold exactly its value, and no removed key may remain.
// It guards against any bug that could let a value inject a statement.
func checkEnvEdit(out []byte, set map[string]string, remove []string) error {
	stmts, err := scanEnv(out)
	if err != nil {
		return fmt.Errorf("edit env file: the result does not parse (a bug): %w", err)
	}
	last := map[string]envStatement{}
	for _, st := range stmts {
		last[st.key] = st
	}
	for k, v := range set {
		if st, ok := last[k]; !ok || !st.isLiteral || st.literal != v {
			return fmt.Errorf("edit env file: %s does not read back as written (a bug)", k)
		}
	}
	for _, k := range remove {
		if _, ok := last[k]; ok {
			return fmt.Errorf("edit env file: %s is still there after its removal (a bug)", k)
		}
	}
	return nil
}

// envRemovalSpan is the byte range to delete to remove st: its whole lines
// when nothing else shares them (with a comment that follows a quoted value
// on its last line), else the statement alone, keeping the line break.
func envRemovalSpan(src string, st envStatement) (int, int) {
	lineStart := strings.LastIndexByte(src[:st.start], '\n') + 1
	if lineStart == 0 && strings.HasPrefix(src, "\uFEFF") {
		lineStart = len("\uFEFF")
	}
	alone := strings.TrimFunc(src[lineStart:st.start], unicode.IsSpace) == ""
	end := st.end
	if st.quote != 0 {
		rest := src[end:]
		lineRest, _, found := strings.Cut(rest, "\n")
		if t := strings.TrimLeftFunc(lineRest, unicode.IsSpace); alone && (t == "" || t[0] == '#') {
			end += len(lineRest)
			if found {
				end++
			}
		}
	}
	if alone {
		return lineStart, end
	}
	if st.quote == 0 && end > st.start && src[end-1] == '\n' {
		end--
	}
	return st.start, end
}
