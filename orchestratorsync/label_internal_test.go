package orchestratorsync

import "testing"

func TestLabelValue(t *testing.T) {
	t.Parallel()
	long := "A123456789012345678901234567890123456789012345678901234567890123456789"
	for in, want := range map[string]string{
		"ECHO":            "ECHO",
		"COMPOSE_LOGS":    "COMPOSE_LOGS",
		"a.b-c_9":         "a.b-c_9",
		"":                "",
		"has space/slash": "has_space_slash",
		"ü":               "__",
		"\xff":            "_",
		long:              long[:63],
		long + " ":        long[:63],
	} {
		if got := labelValue(in); got != want {
			t.Errorf("labelValue(%q) = %q, want %q", in, got, want)
		}
	}
}
