package executors

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/dotenv"
	"github.com/google/go-cmp/cmp"
)

// composeRead parses a .env file as Docker Compose does. Every variable
// reference resolves to «NAME», so values never depend on other entries.
func composeRead(src []byte) (map[string]string, error) {
	return dotenv.ParseWithLookup(bytes.NewReader(src), func(k string) (string, bool) { return "«" + k + "»", true })
}

func TestEditEnvGolden(t *testing.T) {
	t.Parallel()
	const file = "# Database\n" +
		"export DB_HOST=localhost\n" +
		"DB_PASS='old pass' # keep me\n" +
		"  INDENTED = \"x\"\n" +
		"\n" +
		"EMPTY=\n" +
		"YAML: value\n"
	tests := []struct {
		name        string
		src         string
		set         map[string]string
		remove      []string
		want        string
		wantUpdated []string
		wantRemoved []string
	}{
		{
			name:   "in place, appended, removed, styles kept",
			src:    file,
			set:    map[string]string{"DB_HOST": "db.internal", "DB_PASS": "new pass", "INDENTED": "y", "NEW": "a b"},
			remove: []string{"YAML"},
			want: "# Database\n" +
				"export DB_HOST=db.internal\n" +
				"DB_PASS='new pass' # keep me\n" +
				"  INDENTED = \"y\"\n" +
				"\n" +
				"EMPTY=\n" +
				"NEW='a b'\n",
			wantUpdated: []string{"DB_HOST", "DB_PASS", "INDENTED", "NEW"},
			wantRemoved: []string{"YAML"},
		},
		{name: "nothing to change", src: file, set: map[string]string{"DB_PASS": "old pass", "INDENTED": "x", "DB_HOST": "localhost"}, remove: []string{"MISSING"}, want: file},
		{name: "empty file", src: "", set: map[string]string{"B": "2", "A": "1"}, want: "A=1\nB=2\n", wantUpdated: []string{"A", "B"}},
		{name: "no final newline", src: "A=1", set: map[string]string{"B": "2"}, want: "A=1\nB=2\n", wantUpdated: []string{"B"}},
		{name: "comment without final newline", src: "A=1\n# end", set: map[string]string{"B": "2"}, want: "A=1\n# end\nB=2\n", wantUpdated: []string{"B"}},
		{name: "CRLF kept", src: "A=1\r\nB=2\r\n", set: map[string]string{"A": "3", "C": "4"}, want: "A=3\r\nB=2\r\nC=4\r\n", wantUpdated: []string{"A", "C"}},
		{name: "every occurrence", src: "A=1\nB=0\nA=2\n", set: map[string]string{"A": "3"}, want: "A=3\nB=0\nA=3\n", wantUpdated: []string{"A"}},
		{name: "same value in another style", src: "A=\"x\"\nB='y z'\n", set: map[string]string{"A": "x", "B": "y z"}, want: "A=\"x\"\nB='y z'\n"},
		{name: "same value escaped", src: "A=\"a\\$b\"\nB=c$$d\n", set: map[string]string{"A": "a$b", "B": "c$d"}, want: "A=\"a\\$b\"\nB=c$$d\n"},
		{name: "a reference is replaced by the literal", src: "A=${B}\n", set: map[string]string{"A": "${B}"}, want: "A='${B}'\n", wantUpdated: []string{"A"}},
		{name: "inherited key gets a value", src: "A\nexport B  \nC=1\n", set: map[string]string{"A": "v", "B": "w x"}, want: "A=v\nexport B='w x'  \nC=1\n", wantUpdated: []string{"A", "B"}},
		{name: "unquoted with a comment", src: "A=old # note\n", set: map[string]string{"A": "new value"}, want: "A='new value' # note\n", wantUpdated: []string{"A"}},
		{name: "a comment right after = is the value", src: "A= # note\n", set: map[string]string{"A": ""}, want: "A= ''\n", wantUpdated: []string{"A"}},
		{name: "double quotes kept", src: "A=\"x\"\n", set: map[string]string{"A": "it's"}, want: "A=\"it's\"\n", wantUpdated: []string{"A"}},
		{name: "single quotes cannot hold a quote", src: "A='x'\n", set: map[string]string{"A": "it's"}, want: "A=\"it's\"\n", wantUpdated: []string{"A"}},
		{name: "escapes", src: "", set: map[string]string{"A": "a\"b$c\\d\ne\tf\x01"}, want: "A=\"a\\\"b\\$c\\\\d\\ne\\tf\\0001\"\n", wantUpdated: []string{"A"}},
		{name: "single-quoted specials", src: "", set: map[string]string{"A": "$HOME #x \"q\" \\n"}, want: "A='$HOME #x \"q\" \\n'\n", wantUpdated: []string{"A"}},
		{name: "empty value", src: "", set: map[string]string{"A": ""}, want: "A=''\n", wantUpdated: []string{"A"}},
		{name: "unicode", src: "", set: map[string]string{"A": "ünï 🎉"}, want: "A='ünï 🎉'\n", wantUpdated: []string{"A"}},
		{name: "quoted value followed by another statement", src: "A=\"1\" B=2\nC=3\n", set: map[string]string{"A": "x'y"}, want: "A=\"x'y\" B=2\nC=3\n", wantUpdated: []string{"A"}},
		{name: "remove with the comment after a quoted value", src: "A=1\nB=\"x\" # note\nC=3\n", remove: []string{"B"}, want: "A=1\nC=3\n", wantRemoved: []string{"B"}},
		{name: "remove a multi-line value", src: "A=1\n  B=\"l1\nl2\"\nC=3\n", remove: []string{"B"}, want: "A=1\nC=3\n", wantRemoved: []string{"B"}},
		{name: "remove the second statement of a line", src: "A=\"1\" B=2\nC=3\n", remove: []string{"B"}, want: "A=\"1\" \nC=3\n", wantRemoved: []string{"B"}},
		{name: "remove the first statement of a line", src: "A=\"1\" B=2\nC=3\n", remove: []string{"A"}, want: " B=2\nC=3\n", wantRemoved: []string{"A"}},
		{name: "remove the last line without newline", src: "A=1\nB=2", remove: []string{"B"}, want: "A=1\n", wantRemoved: []string{"B"}},
		{name: "remove every occurrence and an inherited one", src: "A=1\nA\nexport A=3\nB=4\n", remove: []string{"A"}, want: "B=4\n", wantRemoved: []string{"A"}},
		{name: "byte order mark kept", src: "\uFEFFA=1\nB=2\n", set: map[string]string{"A": "3"}, remove: []string{"B"}, want: "\uFEFFA=3\n", wantUpdated: []string{"A"}, wantRemoved: []string{"B"}},
		{name: "byte order mark, first line removed", src: "\uFEFFA=1\nB=2\n", remove: []string{"A"}, want: "\uFEFFB=2\n", wantRemoved: []string{"A"}},
		{name: "keys compose-go allows but ENV_UPDATE does not set are kept", src: "1X=a\nüber=b\nx[0]=c\n", set: map[string]string{"Y": "d"}, want: "1X=a\nüber=b\nx[0]=c\nY=d\n", wantUpdated: []string{"Y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := editEnv([]byte(tt.src), tt.set, tt.remove)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, string(got.content)); diff != "" {
				t.Errorf("content (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(append([]string{}, tt.wantUpdated...), got.updated); diff != "" {
				t.Errorf("updated (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(append([]string{}, tt.wantRemoved...), got.removed); diff != "" {
				t.Errorf("removed (-want +got):\n%s", diff)
			}
			// Compose reads what was asked, and nothing else changed.
			before, err := composeRead([]byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			after, err := composeRead(got.content)
			if err != nil {
				t.Fatalf("compose-go cannot read the result: %v", err)
			}
			want := maps.Clone(before)
			for _, k := range tt.remove {
				delete(want, k)
			}
			maps.Copy(want, tt.set)
			if diff := cmp.Diff(want, after); diff != "" {
				t.Errorf("compose-go reads (-want +got):\n%s", diff)
			}
		})
	}
}

// TestEditEnvRoundTrip writes awkward values over every kind of existing
// entry and reads them back with compose-go's own parser.
func TestEditEnvRoundTrip(t *testing.T) {
	t.Parallel()
	values := []string{
		"", "plain", "with space", " leading", "trailing ", "  ", "a#b", "a #b", "#start", "#", " #x",
		"it's", `say "hi"`, `'"`, `\'`, `\"`, "'", `"`,
		"$HOME", "${HOME}", "${HOME:-x}", "$$", "a$", "€$€", `\$x`, "$'",
		`back\slash`, `trail\`, `\\`, `\`, `\n literal`, `a\0123`, `\0`, `\x41`, `\u0041`,
		"line1\nline2", "\n", "cr\rlf", "tab\there", "\x01\x1f\x7f", "\a\b\f\v",
		"ünïcödé ✓", "emoji 🎉", "\u2028sep", "\u0085nel", "\u00a0nbsp", "\uFEFFbom",
		"=", "a=b", "export X=1", "x\nEVIL=1", "x'\nEVIL='1", "\"\nEVIL=1", "'\nEVIL=1\n'", "\\\nEVIL=1",
		"x\" EVIL=\"1", "x' EVIL='1", "postgres://user:p%40ss@db:5432/app?ssl=true",
		strings.Repeat("long ", 200),
	}
	priors := map[string]string{
		"new":       "",
		"unquoted":  "A=old\n",
		"commented": "A=old # note\n",
		"single":    "A='old'\n",
		"double":    "A=\"old\"\n",
		"inherited": "A\n",
		"export":    "export A=old\n",
		"yaml":      "A: old\n",
		"multiline": "A=\"o\nl\nd\"\n",
		"twice":     "A=1\nA='2'\n",
		"crlf":      "A=old\r\n",
		"eof":       "A=old",
	}
	for name, prior := range priors {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			src := "BEFORE=1\n" + prior
			if !strings.HasSuffix(prior, "\n") && prior != "" {
				src += "\n"
			}
			src += "# comment\nAFTER='2'\n"
			for _, v := range values {
				got, err := editEnv([]byte(src), map[string]string{"A": v}, nil)
				if err != nil {
					t.Fatalf("value %q: %v", v, err)
				}
				read, err := composeRead(got.content)
				if err != nil {
					t.Fatalf("value %q: compose-go cannot read %q: %v", v, got.content, err)
				}
				want := map[string]string{"BEFORE": "1", "A": v, "AFTER": "2"}
				if diff := cmp.Diff(want, read); diff != "" {
					t.Errorf("value %q written as %q reads back (-want +got):\n%s", v, got.content, diff)
				}
				// One line per entry: a value never adds a line.
				if strings.Count(string(got.content), "\n") > strings.Count(src, "\n")+1 {
					t.Errorf("value %q added lines: %q", v, got.content)
				}
			}
		})
	}
}

// TestScanEnvErrors: a file compose-go cannot read is refused, with the line
// and the key, never a value.
func TestScanEnvErrors(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-value"
	tests := []struct {
		src, wantErr string
	}{
		{"A=1\nB=\"" + secret + "\nC=3\n", `line 2: the quoted value of B is not terminated`},
		{"A='" + secret, `line 1: the quoted value of A is not terminated`},
		{"A=\"" + secret + "\\\"", `line 1: the quoted value of A is not terminated`},
		{"A=1\nMY KEY=" + secret + "\n", "line 2: a variable name contains a space"},
		{"A=1\n\nB!=" + secret + "\n", `line 3: unexpected character '!' in a variable name`},
		{secret + " " + secret + "\n", "line 1: a variable name contains a space"},
		{"=" + secret + "\n", "line 1: a statement has no variable name"},
		{"A=1\n" + secret, "line 2: a statement has no variable name"},
		{"A=${" + secret + "\n", "line 1: invalid variable reference in the value of A"},
		{"A=\"${" + secret + "\"\n", "line 1: invalid variable reference in the value of A"},
	}
	for _, tt := range tests {
		_, err := scanEnv([]byte(tt.src))
		if err == nil || err.Error() != tt.wantErr {
			t.Errorf("scanEnv(%q) error = %v, want %q", tt.src, err, tt.wantErr)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %q shows a value", err)
		}
		// compose-go refuses the same files.
		if read, err := composeRead([]byte(tt.src)); err == nil {
			if _, ok := read[""]; !ok {
				t.Errorf("compose-go reads %q: %v", tt.src, read)
			}
		}
	}
}

func TestEditEnvInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		set     map[string]string
		remove  []string
		wantErr string
	}{
		{"bad key", map[string]string{"1A": "x"}, nil, `invalid payload: key "1A": want a name matching`},
		{"key with a newline", map[string]string{"A\nB": "x"}, nil, `key "A\nB"`},
		{"key with equals", map[string]string{"A=B": "x"}, nil, `key "A=B"`},
		{"empty key", map[string]string{"": "x"}, nil, `key ""`},
		{"bad removed key", nil, []string{"A B"}, `key "A B" in remove`},
		{"NUL in value", map[string]string{"A": "x\x00y"}, nil, "the value of A contains a NUL byte"},
		{"updated and removed", map[string]string{"A": "x"}, []string{"A"}, "key A is both updated and removed"},
	}
	for _, tt := range tests {
		_, err := editEnv([]byte("A=1\n"), tt.set, tt.remove)
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidPayload) {
			t.Errorf("%s: error = %v, want an invalid payload containing %q", tt.name, err, tt.wantErr)
		}
	}
}

// FuzzEditEnv edits random .env files: whatever compose-go reads is edited
// (and only that is refused), the result parses, untouched entries keep
// their values and edited ones read back exactly.
func FuzzEditEnv(f *testing.F) {
	f.Add([]byte("A=1\nB='2'\n"), "A", "new value", "B")
	f.Add([]byte("export A=\"x\\ny\" # c\n#comment\nB\nC: 3"), "C", "x\nEVIL=1", "A")
	f.Add([]byte("\uFEFFA=${B:-x}\r\nB=$$\r\n"), "B", "'\"$\\", "")
	f.Add([]byte("A=\"1\" B=2 C='3'\nD=\"l1\nl2\"\n"), "B", "", "D")
	f.Add([]byte("X=a #b\nY= # c\n"), "Y", "\x01 #", "X")
	f.Add([]byte(""), "K", "v", "")
	f.Add([]byte("export\nK=1\nA\tB=2\n  # c\n\tR = 'x'  # y\n"), "K", "v w", "R")
	f.Add([]byte("K=\"a\\\"b\\$c\\0101\\n\"\nR=${X:?y}\n"), "R", "$", "K")
	f.Fuzz(func(t *testing.T, src []byte, key, value, removeKey string) {
		edit := func() (map[string]string, []string) {
			if removeKey == "" {
				return map[string]string{key: value}, nil
			}
			return map[string]string{key: value}, []string{removeKey}
		}
		set, remove := edit()
		res, err := editEnv(src, set, remove)
		if validateEnvEdit(set, remove) != nil {
			if err == nil {
				t.Fatal("editEnv accepted an invalid edit")
			}
			// Go on with valid names, to edit the file all the same.
			if !envKeyPattern.MatchString(key) {
				key = "K"
			}
			if removeKey != "" && (!envKeyPattern.MatchString(removeKey) || removeKey == key) {
				removeKey = "R"
				if key == "R" {
					removeKey = "Q"
				}
			}
			if strings.IndexByte(value, 0) >= 0 {
				value = strings.ReplaceAll(value, "\x00", "")
			}
			set, remove = edit()
			res, err = editEnv(src, set, remove)
		}
		before, perr := composeRead(src)
		if _, empty := before[""]; perr != nil || empty {
			if err == nil {
				t.Fatalf("editEnv accepted a file compose-go refuses or reads a nameless variable from (%v)", perr)
			}
			return
		}
		if err != nil {
			t.Fatalf("editEnv refused a file compose-go reads: %v", err)
		}
		after, err := composeRead(res.content)
		if err != nil {
			t.Fatalf("compose-go cannot read the result %q: %v", res.content, err)
		}
		want := maps.Clone(before)
		delete(want, removeKey)
		want[key] = value
		if diff := cmp.Diff(want, after); diff != "" {
			t.Fatalf("compose-go reads (-want +got):\n%s\nresult: %q", diff, res.content)
		}
	})
}

// BenchmarkEditEnv edits a 200-line .env: two keys changed in place, one
// added, one removed.
func BenchmarkEditEnv(b *testing.B) {
	var src strings.Builder
	for i := range 200 {
		fmt.Fprintf(&src, "# setting %d\nKEY_%03d='value number %d'\n", i, i, i)
	}
	set := map[string]string{"KEY_010": "new value", "KEY_150": "x\ny", "NEW_KEY": "z"}
	remove := []string{"KEY_199"}
	b.SetBytes(int64(src.Len()))
	for b.Loop() {
		if _, err := editEnv([]byte(src.String()), set, remove); err != nil {
			b.Fatal(err)
		}
	}
}
