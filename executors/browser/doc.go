// Package browser owns the PLAYWRIGHT task type: it decodes a browser flow (a
// list of Playwright-like steps: goto, click, fill, press, select_option,
// wait_for, wait_for_url, expect_text, expect_url, screenshot) and runs it in a
// headless Chromium driven over the DevTools protocol with chromedp. Each flow
// gets a fresh browser with a temporary profile that is removed afterwards;
// the browser runs in its own process group with a minimal environment, and
// its whole process tree is killed when the flow ends, whatever the reason
// (success, a failing step, a timeout, cancellation). An optional host
// allowlist is enforced at the network level (the Fetch domain) and blocked
// requests are reported. A flow may set ignore_https_errors (Playwright's
// ignoreHTTPSErrors) to accept self-signed certificates in its own browser.
// A semaphore bounds the number of browsers at once.
// The package never downloads a browser, never logs (callers do), never lets
// the value of a secret fill step reach a result or an error, and must not
// import controller-runtime or any package of this repository other than
// executors.
package browser
