package executors

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestEventLines: docker events output split anywhere reports each event's project once;
// lines that are not events, events of no project and overlong lines are skipped.
func TestEventLines(t *testing.T) {
	t.Parallel()
	ev := func(project string) string {
		return `{"status":"die","Type":"container","Action":"die","Actor":{"ID":"c1","Attributes":{"com.docker.compose.project":"` + project + `","API_KEY":"x"}}}` + "\n"
	}
	out := ev("app") + "not json\n" + `{"Actor":{"Attributes":{}}}` + "\n" +
		`{"Actor":{"Attributes":{"com.docker.compose.project":"` + strings.Repeat("x", maxEventLine) + `"}}}` + "\n" + ev("shop")
	for _, size := range []int{1, 7, 4096, len(out)} {
		var got []string
		l := &eventLines{changed: func(p string) { got = append(got, p) }}
		for b := []byte(out); len(b) > 0; {
			n := min(size, len(b))
			l.Output(StreamStdout, b[:n])
			b = b[n:]
		}
		l.Output(StreamStderr, []byte(ev("stderr")))
		if diff := cmp.Diff([]string{"app", "shop"}, got); diff != "" {
			t.Errorf("chunks of %d: projects (-want +got):\n%s", size, diff)
		}
	}
}
