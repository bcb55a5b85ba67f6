package executors

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ParseCommandLine splits a command line into an argv the way a POSIX shell
// would, but accepts only one simple command made of literal words: single
// and double quotes and backslash escapes are honoured (`ls "my dir"` gives
// [ls, my dir]), while every construct that a shell would expand or
// interpret is refused rather than silently taken literally: ; & | && ||,
// redirections, here-documents and here-strings, $VAR and ${...}, $(...) and
// backticks, $((...)), <(...), globs (* ? [ and extended globs, unquoted),
// ~ expansion, brace expansion ({ unquoted), assignments (FOO=1 cmd),
// subshells, { } blocks, ! negation, comments and shell keywords (if, for,
// [[, time, export...).
//
// A refused construct is a [Refusedf] error naming it, e.g.
// `refused: pipe "|" is not allowed`. An empty or unparsable command line
// is an [InvalidPayloadf] error.
func ParseCommandLine(s string) ([]string, error) {
	if strings.IndexByte(s, 0) >= 0 {
		return nil, InvalidPayloadf("command line contains a NUL byte")
	}
	if strings.TrimSpace(s) == "" {
		return nil, InvalidPayloadf("command line is empty")
	}
	parser := syntax.NewParser(syntax.KeepComments(true), syntax.Variant(syntax.LangBash))
	f, err := parser.Parse(strings.NewReader(s), "")
	if err != nil {
		return nil, InvalidPayloadf("parse command line: %v", err)
	}
	cl := cmdLine{src: s}
	return cl.file(f)
}

// cmdLine checks a parsed command line against its source text.
type cmdLine struct {
	src string
}

// refuse returns the refusal of a construct, e.g. `pipe "|"`.
func refuse(construct, text string) error {
	return Refusedf("refused: %s %q is not allowed", construct, text)
}

// snippet returns the source text of n, shortened if long.
func (c *cmdLine) snippet(n syntax.Node) string {
	start, end := int(n.Pos().Offset()), int(n.End().Offset())
	end = min(end, len(c.src))
	if start < 0 || start >= end {
		return ""
	}
	return Shorten(c.src[start:end], 40)
}

func (c *cmdLine) file(f *syntax.File) ([]string, error) {
	if len(f.Last) > 0 {
		return nil, refuse("comment", "#"+f.Last[0].Text)
	}
	if len(f.Stmts) == 0 {
		return nil, InvalidPayloadf("command line is empty")
	}
	st := f.Stmts[0]
	if len(f.Stmts) > 1 && !st.Background && !st.Coprocess && !st.Disown {
		if st.Semicolon.IsValid() {
			return nil, refuse("command separator", ";")
		}
		return nil, refuse("command separator", "\n")
	}
	return c.stmt(st)
}

func (c *cmdLine) stmt(st *syntax.Stmt) ([]string, error) {
	switch {
	case len(st.Comments) > 0:
		return nil, refuse("comment", "#"+st.Comments[0].Text)
	case st.Background:
		return nil, refuse("background operator", "&")
	case st.Coprocess:
		return nil, refuse("coprocess operator", "|&")
	case st.Disown:
		return nil, refuse("background operator", "&|")
	case st.Semicolon.IsValid():
		return nil, refuse("command separator", ";")
	case st.Negated:
		return nil, refuse("negation", "!")
	}
	for _, r := range st.Redirs {
		switch r.Op {
		case syntax.Hdoc, syntax.DashHdoc:
			return nil, refuse("here-document", r.Op.String())
		case syntax.WordHdoc:
			return nil, refuse("here-string", r.Op.String())
		default:
			return nil, refuse("redirection", r.Op.String())
		}
	}
	switch cmd := st.Cmd.(type) {
	case *syntax.CallExpr:
		return c.call(cmd)
	case *syntax.BinaryCmd:
		switch cmd.Op {
		case syntax.Pipe, syntax.PipeAll:
			return nil, refuse("pipe", cmd.Op.String())
		default:
			return nil, refuse("operator", cmd.Op.String())
		}
	case *syntax.Subshell:
		return nil, refuse("subshell", "( )")
	case *syntax.Block:
		return nil, refuse("block", "{ }")
	case *syntax.IfClause:
		return nil, refuse("shell keyword", "if")
	case *syntax.WhileClause:
		if cmd.Until {
			return nil, refuse("shell keyword", "until")
		}
		return nil, refuse("shell keyword", "while")
	case *syntax.ForClause:
		if cmd.Select {
			return nil, refuse("shell keyword", "select")
		}
		return nil, refuse("shell keyword", "for")
	case *syntax.CaseClause:
		return nil, refuse("shell keyword", "case")
	case *syntax.FuncDecl:
		return nil, refuse("function definition", c.snippet(cmd))
	case *syntax.ArithmCmd:
		return nil, refuse("arithmetic command", "(( ))")
	case *syntax.TestClause:
		return nil, refuse("test expression", "[[ ]]")
	case *syntax.DeclClause:
		return nil, refuse("shell builtin", cmd.Variant.Value)
	case *syntax.LetClause:
		return nil, refuse("shell builtin", "let")
	case *syntax.TimeClause:
		return nil, refuse("shell keyword", "time")
	case *syntax.CoprocClause:
		return nil, refuse("shell keyword", "coproc")
	case nil:
		return nil, InvalidPayloadf("command line has no command")
	default:
		return nil, refuse("shell construct", c.snippet(cmd))
	}
}

func (c *cmdLine) call(call *syntax.CallExpr) ([]string, error) {
	if len(call.Assigns) > 0 {
		return nil, refuse("assignment", c.snippet(call.Assigns[0]))
	}
	if len(call.Args) == 0 {
		return nil, InvalidPayloadf("command line has no command")
	}
	argv := make([]string, 0, len(call.Args))
	for _, w := range call.Args {
		arg, err := c.word(w)
		if err != nil {
			return nil, err
		}
		argv = append(argv, arg)
	}
	return argv, nil
}

// word returns the literal value of a word made only of literal text,
// quotes and escapes.
func (c *cmdLine) word(w *syntax.Word) (string, error) {
	var b strings.Builder
	for i, part := range w.Parts {
		switch x := part.(type) {
		case *syntax.Lit:
			if err := unquotedLit(&b, x.Value, i == 0); err != nil {
				return "", err
			}
		case *syntax.SglQuoted:
			if x.Dollar {
				return "", refuse("ANSI-C quoting", c.snippet(x))
			}
			b.WriteString(x.Value)
		case *syntax.DblQuoted:
			if x.Dollar {
				return "", refuse("locale quoting", c.snippet(x))
			}
			for _, inner := range x.Parts {
				lit, ok := inner.(*syntax.Lit)
				if !ok {
					return "", c.refusePart(inner)
				}
				doubleQuotedLit(&b, lit.Value)
			}
		default:
			return "", c.refusePart(part)
		}
	}
	return b.String(), nil
}

// refusePart refuses a word part that is not literal text.
func (c *cmdLine) refusePart(part syntax.WordPart) error {
	switch x := part.(type) {
	case *syntax.ParamExp:
		return refuse("parameter expansion", c.snippet(x))
	case *syntax.CmdSubst:
		return refuse("command substitution", c.snippet(x))
	case *syntax.ArithmExp:
		return refuse("arithmetic expansion", c.snippet(x))
	case *syntax.ProcSubst:
		return refuse("process substitution", c.snippet(x))
	case *syntax.ExtGlob:
		return refuse("extended glob", c.snippet(x))
	default:
		return refuse("shell construct", c.snippet(part))
	}
}

// unquotedLit appends the value of an unquoted literal, removing backslash
// escapes, and refuses the characters that a shell would expand.
func unquotedLit(b *strings.Builder, v string, wordStart bool) error {
	afterEq := false
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == '\\' && i+1 < len(v) {
			// An escaped character is literal. (An escaped newline never
			// reaches here: the parser removes line continuations, and a
			// trailing lone backslash stays literal, as in sh -c.)
			i++
			b.WriteByte(v[i])
			afterEq = false
			continue
		}
		switch ch {
		case '*', '?', '[':
			return refuse("glob", string(ch))
		case '{':
			return refuse("brace expansion", "{")
		case '~':
			if (i == 0 && wordStart) || afterEq {
				return refuse("tilde expansion", "~")
			}
		}
		afterEq = ch == '='
		b.WriteByte(ch)
	}
	return nil
}

// doubleQuotedLit appends the value of a literal inside double quotes, where
// a backslash only escapes $ ` " \ and newline.
func doubleQuotedLit(b *strings.Builder, v string) {
	for i := 0; i < len(v); i++ {
		ch := v[i]
		if ch == '\\' && i+1 < len(v) {
			switch v[i+1] {
			case '$', '`', '"', '\\':
				i++
				b.WriteByte(v[i])
				continue
			case '\n':
				i++
				continue
			}
		}
		b.WriteByte(ch)
	}
}
