package policy

import (
	"fmt"
	"path/filepath"
	"strings"
)

// A Pattern matches a SHELL command line (its argv after parsing, as the SHELL executor
// parses it). It is written as words separated by spaces:
//
//   - the first word is the program, matched against the base name of argv[0] (the SHELL
//     executor makes sure a path names the same file as the allowed program);
//   - a word "*" matches exactly one argument, any argument;
//   - a last word "**" matches any number of remaining arguments, none included;
//   - a word containing "*" among other characters matches one argument, "*" standing for any
//     characters (say "--since=*" or "app-*");
//   - any other word matches that argument exactly.
//
// So "docker compose ps" allows exactly that command, "docker compose logs *" one more
// argument, "journalctl -u * --since *" a unit and a time, and "df **" df with any arguments.
type Pattern struct {
	text  string
	words []string
}

// ParsePattern parses a pattern.
func ParsePattern(s string) (Pattern, error) {
	words := strings.Fields(s)
	if len(words) == 0 {
		return Pattern{}, fmt.Errorf("shell pattern %q: empty", s)
	}
	prog := words[0]
	if strings.Contains(prog, "*") || strings.ContainsAny(prog, "/\x00") || prog == "." || prog == ".." {
		return Pattern{}, fmt.Errorf("shell pattern %q: the first word must be a bare program name", s)
	}
	for i, w := range words {
		if w == "**" && i != len(words)-1 {
			return Pattern{}, fmt.Errorf("shell pattern %q: ** must be the last word", s)
		}
		if strings.Contains(w, "**") && w != "**" {
			return Pattern{}, fmt.Errorf("shell pattern %q: ** must be a word of its own", s)
		}
	}
	return Pattern{text: strings.Join(words, " "), words: words}, nil
}

// String returns the pattern as written (single spaces).
func (p Pattern) String() string { return p.text }

// Program returns the pattern's program name.
func (p Pattern) Program() string { return p.words[0] }

// Match reports whether argv matches.
func (p Pattern) Match(argv []string) bool {
	if len(argv) == 0 || filepath.Base(argv[0]) != p.words[0] {
		return false
	}
	args, words := argv[1:], p.words[1:]
	for i, w := range words {
		if w == "**" {
			return true
		}
		if i >= len(args) || !matchWord(w, args[i]) {
			return false
		}
	}
	return len(args) == len(words)
}

// Covers reports whether every command line q matches also matches p (used to narrow one
// pattern list by another). It is exact for the shapes "prog **" and equal patterns, and
// conservative otherwise (false when unsure).
func (p Pattern) Covers(q Pattern) bool {
	if p.words[0] != q.words[0] {
		return false
	}
	pw, qw := p.words[1:], q.words[1:]
	for i, w := range pw {
		if w == "**" {
			return true
		}
		if i >= len(qw) || qw[i] == "**" {
			return false
		}
		if w == qw[i] {
			continue
		}
		if w == "*" && !strings.Contains(qw[i], "**") {
			continue
		}
		if strings.Contains(qw[i], "*") || !matchWord(w, qw[i]) {
			return false
		}
	}
	return len(pw) == len(qw)
}

// matchWord matches one argument against a word where "*" stands for any characters.
func matchWord(w, arg string) bool {
	if !strings.Contains(w, "*") {
		return w == arg
	}
	parts := strings.Split(w, "*")
	if !strings.HasPrefix(arg, parts[0]) {
		return false
	}
	arg = arg[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(arg, mid)
		if i < 0 {
			return false
		}
		arg = arg[i+len(mid):]
	}
	return strings.HasSuffix(arg, last)
}
