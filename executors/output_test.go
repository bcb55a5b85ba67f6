package executors

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestHeadTail(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		limit         int
		writes        []string
		want          string
		wantTruncated bool
	}{
		{name: "empty", limit: 10, want: ""},
		{name: "fits in head", limit: 10, writes: []string{"abc"}, want: "abc"},
		{name: "exactly the limit", limit: 10, writes: []string{"01234", "56789"}, want: "0123456789"},
		{
			name: "one byte over", limit: 10, writes: []string{"0123456789a"},
			want: "01234\n...[1 bytes truncated]...\n6789a", wantTruncated: true,
		},
		{
			name: "byte by byte", limit: 6, writes: strings.Split("abcdefghijklmnop", ""),
			want: "abc\n...[10 bytes truncated]...\nnop", wantTruncated: true,
		},
		{
			name: "ring wraps with uneven writes", limit: 8, writes: []string{"ab", "cdefg", "hij", "klmnopq", "rs"},
			want: "abcd\n...[11 bytes truncated]...\npqrs", wantTruncated: true,
		},
		{
			name: "one huge write", limit: 8, writes: []string{strings.Repeat("x", 100) + "tail"},
			want: "xxxx\n...[96 bytes truncated]...\ntail", wantTruncated: true,
		},
		{
			name: "odd limit", limit: 5, writes: []string{"0123456789"},
			want: "01\n...[5 bytes truncated]...\n789", wantTruncated: true,
		},
		{
			name: "split runes are dropped at the cuts", limit: 8, writes: []string{"aaaé" + strings.Repeat("-", 10) + "éaaa"},
			// head keeps "aaa" + the first byte of é; tail starts with the second byte of é.
			want: "aaa\n...[14 bytes truncated]...\naaa", wantTruncated: true,
		},
		{
			name: "whole runes are kept", limit: 8, writes: []string{"aaé" + strings.Repeat("-", 10) + "éaa"},
			want: "aaé\n...[10 bytes truncated]...\néaa", wantTruncated: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := newHeadTail(tt.limit)
			for _, w := range tt.writes {
				if n, err := b.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if diff := cmp.Diff(tt.want, b.String()); diff != "" {
				t.Errorf("String() mismatch (-want +got):\n%s", diff)
			}
			if b.truncated() != tt.wantTruncated {
				t.Errorf("truncated() = %v, want %v", b.truncated(), tt.wantTruncated)
			}
		})
	}
}
