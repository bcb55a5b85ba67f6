package executors

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

var acceptedCommandLines = []struct {
	in   string
	want []string
}{
	{`ls`, []string{"ls"}},
	{"  df   -h\t", []string{"df", "-h"}},
	{`ls "my dir"`, []string{"ls", "my dir"}},
	{`ls 'my dir'`, []string{"ls", "my dir"}},
	{`ls my\ dir`, []string{"ls", "my dir"}},
	{`echo "a\"b" 'c"d' "e'f" \'`, []string{"echo", `a"b`, `c"d`, "e'f", "'"}},
	{`echo "\$HOME" '$HOME' \$HOME '$(id)' "\$(id)"`, []string{"echo", "$HOME", "$HOME", "$HOME", "$(id)", "$(id)"}},
	{`echo "a\\b" "a\b" a\\b 'a\b' a\b`, []string{"echo", `a\b`, `a\b`, `a\b`, `a\b`, "ab"}},
	{"echo \"a\\`b\" 'a`b'", []string{"echo", "a`b", "a`b"}},
	{`echo \* \? \[ \{ \~ \; \| \& \> \< \( \) \# \" \\`, []string{"echo", "*", "?", "[", "{", "~", ";", "|", "&", ">", "<", "(", ")", "#", `"`, `\`}},
	{`echo "*" '?' "[a]" '{a,b}' "~" "a;b|c&d>e" '$((1))'`, []string{"echo", "*", "?", "[a]", "{a,b}", "~", "a;b|c&d>e", "$((1))"}},
	{`echo a"b"'c'd "" ''`, []string{"echo", "abcd", "", ""}},
	{"echo a\\\nb", []string{"echo", "ab"}},
	{"echo 'two\nlines' \"x\ny\"", []string{"echo", "two\nlines", "x\ny"}},
	{`docker ps --format '{{.Names}}' --filter "name=web"`, []string{"docker", "ps", "--format", "{{.Names}}", "--filter", "name=web"}},
	{`git log HEAD~1 a=b --x=y a#b !x ] } % ^ , : @ $`, []string{"git", "log", "HEAD~1", "a=b", "--x=y", "a#b", "!x", "]", "}", "%", "^", ",", ":", "@", "$"}},
	{`systemctl restart nginx.service`, []string{"systemctl", "restart", "nginx.service"}},
	{`/usr/bin/df -h /var/lib/docker`, []string{"/usr/bin/df", "-h", "/var/lib/docker"}},
	{`echo é "ü" '日本'`, []string{"echo", "é", "ü", "日本"}},
	{`echo trailing\`, []string{"echo", `trailing\`}},
	{"\n\nls\n", []string{"ls"}},
}

func TestParseCommandLineAccepts(t *testing.T) {
	t.Parallel()
	for _, tt := range acceptedCommandLines {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCommandLine(tt.in)
			if err != nil {
				t.Fatalf("ParseCommandLine(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseCommandLine(%q) mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

var refusedCommandLines = []struct {
	in      string
	wantMsg string // the whole error message
}{
	// Lists and operators.
	{`ls; rm -rf /`, `refused: command separator ";" is not allowed`},
	{`ls;`, `refused: command separator ";" is not allowed`},
	{"ls\nrm -rf /", `refused: command separator "\n" is not allowed`},
	{`ls | wc -l`, `refused: pipe "|" is not allowed`},
	{`ls |& wc -l`, `refused: pipe "|&" is not allowed`},
	{`ls && rm x`, `refused: operator "&&" is not allowed`},
	{`ls || rm x`, `refused: operator "||" is not allowed`},
	{`sleep 1 &`, `refused: background operator "&" is not allowed`},
	{`sleep 1 & ls`, `refused: background operator "&" is not allowed`},
	{`! ls`, `refused: negation "!" is not allowed`},
	// Redirections.
	{`ls > out`, `refused: redirection ">" is not allowed`},
	{`ls >> out`, `refused: redirection ">>" is not allowed`},
	{`cat < in`, `refused: redirection "<" is not allowed`},
	{`ls 2>&1`, `refused: redirection ">&" is not allowed`},
	{`ls &> out`, `refused: redirection "&>" is not allowed`},
	{`ls >| out`, `refused: redirection ">|" is not allowed`},
	{`> out`, `refused: redirection ">" is not allowed`},
	{"cat <<EOF\nhi\nEOF", `refused: here-document "<<" is not allowed`},
	{"cat <<-EOF\n\thi\n\tEOF", `refused: here-document "<<-" is not allowed`},
	{`cat <<< hi`, `refused: here-string "<<<" is not allowed`},
	// Expansions.
	{`echo $(id)`, `refused: command substitution "$(id)" is not allowed`},
	{"echo `id`", "refused: command substitution \"`id`\" is not allowed"},
	{`echo "$(id)"`, `refused: command substitution "$(id)" is not allowed`},
	{`echo ${ id; }`, `refused: command substitution "${ id; }" is not allowed`},
	{`echo $HOME`, `refused: parameter expansion "$HOME" is not allowed`},
	{`echo ${HOME}`, `refused: parameter expansion "${HOME}" is not allowed`},
	{`echo "dir=$PWD"`, `refused: parameter expansion "$PWD" is not allowed`},
	{`echo a$1`, `refused: parameter expansion "$1" is not allowed`},
	{`echo $?`, `refused: parameter expansion "$?" is not allowed`},
	{`echo $((1+2))`, `refused: arithmetic expansion "$((1+2))" is not allowed`},
	{`echo $[1+2]`, `refused: arithmetic expansion "$[1+2]" is not allowed`},
	{`diff <(ls a) b`, `refused: process substitution "<(ls a)" is not allowed`},
	{`tee >(cat)`, `refused: process substitution ">(cat)" is not allowed`},
	{`ls *.log`, `refused: glob "*" is not allowed`},
	{`ls a?`, `refused: glob "?" is not allowed`},
	{`ls [ab]`, `refused: glob "[" is not allowed`},
	{`ls "dir"/*`, `refused: glob "*" is not allowed`},
	{`ls @(a|b)`, `refused: extended glob "@(a|b)" is not allowed`},
	{`ls +(a)`, `refused: extended glob "+(a)" is not allowed`},
	{`ls !(a)`, `refused: extended glob "!(a)" is not allowed`},
	{`ls ~`, `refused: tilde expansion "~" is not allowed`},
	{`ls ~root/x`, `refused: tilde expansion "~" is not allowed`},
	{`ls --dir=~/x`, `refused: tilde expansion "~" is not allowed`},
	{`echo {a,b}`, `refused: brace expansion "{" is not allowed`},
	{`echo x{1..3}`, `refused: brace expansion "{" is not allowed`},
	{`echo $'a\nb'`, `refused: ANSI-C quoting "$'a\\nb'" is not allowed`},
	{`echo $"hello"`, `refused: locale quoting "$\"hello\"" is not allowed`},
	// Assignments.
	{`FOO=1 env`, `refused: assignment "FOO=1" is not allowed`},
	{`FOO=bar`, `refused: assignment "FOO=bar" is not allowed`},
	// Compound commands and keywords.
	{`(ls)`, `refused: subshell "( )" is not allowed`},
	{`{ ls; }`, `refused: block "{ }" is not allowed`},
	{`if true; then ls; fi`, `refused: shell keyword "if" is not allowed`},
	{`while true; do ls; done`, `refused: shell keyword "while" is not allowed`},
	{`until true; do ls; done`, `refused: shell keyword "until" is not allowed`},
	{`for f in a b; do ls; done`, `refused: shell keyword "for" is not allowed`},
	{`select f in a b; do ls; done`, `refused: shell keyword "select" is not allowed`},
	{`case x in x) ls;; esac`, `refused: shell keyword "case" is not allowed`},
	{`time ls`, `refused: shell keyword "time" is not allowed`},
	{`coproc ls`, `refused: shell keyword "coproc" is not allowed`},
	{`f() { ls; }`, `refused: function definition "f() { ls; }" is not allowed`},
	{`((x = 1))`, `refused: arithmetic command "(( ))" is not allowed`},
	{`[[ -f x ]]`, `refused: test expression "[[ ]]" is not allowed`},
	{`export A=1`, `refused: shell builtin "export" is not allowed`},
	{`declare -x A`, `refused: shell builtin "declare" is not allowed`},
	{`readonly A`, `refused: shell builtin "readonly" is not allowed`},
	{`let x=1`, `refused: shell builtin "let" is not allowed`},
	// Comments.
	{`ls # list`, `refused: comment "# list" is not allowed`},
	{`# nothing`, `refused: comment "# nothing" is not allowed`},
}

func TestParseCommandLineRefuses(t *testing.T) {
	t.Parallel()
	for _, tt := range refusedCommandLines {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCommandLine(tt.in)
			if err == nil {
				t.Fatalf("ParseCommandLine(%q) = %q, want a refusal", tt.in, got)
			}
			if !errors.Is(err, ErrRefused) || !IsPermanent(err) {
				t.Errorf("ParseCommandLine(%q) error %v is not ErrRefused", tt.in, err)
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("ParseCommandLine(%q) error mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestParseCommandLineInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		wantMsg string
	}{
		{"", "invalid payload: command line is empty"},
		{" \t\n", "invalid payload: command line is empty"},
		{"ls\x00rm", "invalid payload: command line contains a NUL byte"},
		{`ls "unterminated`, "invalid payload: parse command line: 1:4: reached EOF without closing quote `\"`"},
		{`ls 'unterminated`, "invalid payload: parse command line: 1:4: reached EOF without closing quote `'`"},
		{`ls |`, "invalid payload: parse command line: 1:4: `|` must be followed by a statement"},
		{`ls )`, "invalid payload: parse command line: 1:4: a command can only contain words and redirects; encountered `)`"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCommandLine(tt.in)
			if !errors.Is(err, ErrInvalidPayload) {
				t.Fatalf("ParseCommandLine(%q) = %q, %v; want ErrInvalidPayload", tt.in, got, err)
			}
			if diff := cmp.Diff(tt.wantMsg, err.Error()); diff != "" {
				t.Errorf("ParseCommandLine(%q) error mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

// singleQuote quotes argv for a POSIX shell, each word in single quotes.
func singleQuote(argv []string) string {
	words := make([]string, len(argv))
	for i, arg := range argv {
		words[i] = "'" + strings.ReplaceAll(arg, "'", `'\''`) + "'"
	}
	return strings.Join(words, " ")
}

// checkShellAgrees fails unless a real shell's expansion of s, by
// mvdan.cc/sh's own expander, is exactly argv: nothing was globbed,
// tilde-expanded, brace-expanded, substituted or split.
func checkShellAgrees(t *testing.T, s string, argv []string) {
	t.Helper()
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(strings.NewReader(s), "")
	if err != nil {
		t.Fatalf("accepted %q, which does not parse: %v", s, err)
	}
	syntax.Walk(f, func(n syntax.Node) bool {
		switch n.(type) {
		case nil, *syntax.File, *syntax.Stmt, *syntax.CallExpr, *syntax.Word,
			*syntax.Lit, *syntax.SglQuoted, *syntax.DblQuoted:
		default:
			t.Fatalf("accepted %q, which contains a %T", s, n)
		}
		return true
	})
	if len(f.Stmts) != 1 {
		t.Fatalf("accepted %q, which has %d statements", s, len(f.Stmts))
	}
	call := f.Stmts[0].Cmd.(*syntax.CallExpr)
	globbed := false
	cfg := &expand.Config{
		Env: expand.ListEnviron("HOME=/letsbe-home", "PWD=/letsbe-pwd"),
		ReadDir2: func(string) ([]fs.DirEntry, error) {
			globbed = true
			return nil, nil
		},
	}
	fields, err := expand.Fields(cfg, call.Args...)
	if err != nil {
		t.Fatalf("accepted %q, which does not expand: %v", s, err)
	}
	if globbed {
		t.Fatalf("accepted %q, which a shell would glob", s)
	}
	if diff := cmp.Diff(argv, fields); diff != "" {
		t.Fatalf("accepted %q, which a shell would expand differently (-ours +shell):\n%s", s, diff)
	}
}

func TestParseCommandLineAgreesWithShell(t *testing.T) {
	t.Parallel()
	for _, tt := range acceptedCommandLines {
		checkShellAgrees(t, tt.in, tt.want)
	}
}

func FuzzParseCommandLine(f *testing.F) {
	for _, tt := range acceptedCommandLines {
		f.Add(tt.in)
	}
	for _, tt := range refusedCommandLines {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		argv, err := ParseCommandLine(s)
		if err != nil {
			if !IsPermanent(err) {
				t.Fatalf("ParseCommandLine(%q) error %v is not permanent", s, err)
			}
			return
		}
		if len(argv) == 0 {
			t.Fatalf("ParseCommandLine(%q) accepted an empty argv", s)
		}
		quoted := singleQuote(argv)
		again, err := ParseCommandLine(quoted)
		if err != nil {
			t.Fatalf("ParseCommandLine(%q) = %q, whose quoted form %q fails: %v", s, argv, quoted, err)
		}
		if diff := cmp.Diff(argv, again); diff != "" {
			t.Fatalf("ParseCommandLine(%q) does not re-parse to the same argv (-first +again):\n%s", s, diff)
		}
		checkShellAgrees(t, s, argv)
	})
}
