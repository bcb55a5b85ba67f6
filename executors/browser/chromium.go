package browser

// Chromium returns the browser PLAYWRIGHT tasks would run, or ErrNoBrowser (for
// letsbe-agent doctor).
func (e *Playwright) Chromium() (string, error) { return e.chromium() }
