package browser

import (
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/letsbe/sysadmin-agent/executors"
)

// eventLog is a Progress that keeps the events.
type eventLog struct {
	mu     sync.Mutex
	events []string
	masks  []string
}

func (l *eventLog) Event(reason, message string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, reason+": "+message)
}

func (l *eventLog) Output(string, []byte) {}

func (l *eventLog) Mask(values ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.masks = append(l.masks, values...)
}

func TestStepEvents(t *testing.T) {
	t.Parallel()
	s := newSite(t)
	e, dir := newTestExecutor(t, Config{})
	log := &eventLog{}
	ctx := executors.WithProgress(t.Context(), log)
	_, err := execute(ctx, t, e, dir, flowJSON(
		stepJSON("action", "goto", "url", s.URL+"/reflect-form"),
		stepJSON("action", "fill", "selector", "#password", "value", testPassword, "secret", true),
		stepJSON("action", "click", "selector", "#go"),
		stepJSON("action", "expect_text", "selector", "#out", "text", "something else", "timeout_seconds", 1),
	))
	if err == nil {
		t.Fatal("the flow did not fail on its last step")
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`^Step: step 1/4 goto "` + regexp.QuoteMeta(s.URL) + `/reflect-form" ok, \d+ ms$`),
		regexp.MustCompile(`^Step: step 2/4 fill "#password" ok, \d+ ms$`),
		regexp.MustCompile(`^Step: step 3/4 click "#go" ok, \d+ ms$`),
		regexp.MustCompile(`^Step: step 4/4 expect_text "#out" failed after \d+ ms: timed out after 1s waiting for the text \(last text "You typed: \[REDACTED\]"\)$`),
	}
	log.mu.Lock()
	defer log.mu.Unlock()
	if len(log.events) != len(want) {
		t.Fatalf("events = %q, want %d", log.events, len(want))
	}
	for i, re := range want {
		if !re.MatchString(log.events[i]) {
			t.Errorf("event %d = %q, want match of %s", i, log.events[i], re)
		}
		if strings.Contains(log.events[i], testPassword) {
			t.Errorf("event %d holds the secret", i)
		}
	}
	if len(log.masks) != 1 || log.masks[0] != testPassword {
		t.Errorf("masks given to the progress = %d values, want the secret fill value", len(log.masks))
	}
}
