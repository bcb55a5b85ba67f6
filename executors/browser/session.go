package browser

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/fetch"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/letsbe/sysadmin-agent/executors"
)

// Bounds of the browser's life outside the steps.
const (
	launchTimeout   = 30 * time.Second
	shutdownTimeout = 10 * time.Second
	infoTimeout     = 3 * time.Second // the failure screenshot, the final URL and title
	maxStartError   = 2000            // bytes of a start error, with the browser's output
	windowWidth     = 1280
	windowHeight    = 720
)

// childPath is the PATH of the browser (Debian's /usr/bin/chromium is a shell
// script).
const childPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// session is one running browser with its temporary profile.
type session struct {
	ctx         context.Context // the chromedp context of the tab; lives until close
	cancelTab   context.CancelFunc
	cancelAlloc context.CancelFunc
	cancelEvts  context.CancelFunc
	events      sync.WaitGroup
	profile     string
}

// flags returns the browser's command-line flags (chromedp adds
// --remote-debugging-pipe and the first page, about:blank). They are set
// here one by one rather than taken from chromedp's defaults, so that what
// runs on a tenant server is what is written here: headless, no first-run
// or default-browser UI, and nothing that talks to the network on its own
// (background networking, component and safe-browsing updates, sync,
// metrics, crash reports, domain reliability, translation, optimisation
// hints, media router). ignoreHTTPSErrors (the flow's option) makes this
// browser, and only this one, accept any TLS certificate, for its pages,
// subresources, workers and WebSockets alike.
func (e *Playwright) flags(profile string, ignoreHTTPSErrors bool) []chromedp.ExecAllocatorOption {
	opts := []chromedp.ExecAllocatorOption{
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-crash-reporter", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication,CertificateTransparencyComponentUpdater"),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-hang-monitor", true),
		chromedp.Flag("disable-prompt-on-repost", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("enable-automation", true),
		chromedp.WindowSize(windowWidth, windowHeight),
		chromedp.UserDataDir(filepath.Join(profile, "data")),
		// The sandbox needs an unprivileged user; as root, Chromium
		// refuses to start without this.
		chromedp.Flag("no-sandbox", os.Geteuid() == 0),
	}
	if ignoreHTTPSErrors {
		opts = append(opts, chromedp.Flag("ignore-certificate-errors", true))
	}
	if rules := e.hosts.resolverRules(); rules != "" {
		opts = append(opts, chromedp.Flag("host-resolver-rules", rules))
	}
	return opts
}

// launch starts a browser with a fresh profile for flow f and opens its tab.
// On error nothing is left behind.
func (e *Playwright) launch(ctx context.Context, path string, f *flow, plog *pageLog) (_ *session, err error) {
	profile, err := os.MkdirTemp(e.cfg.TempDir, profilePrefix)
	if err != nil {
		return nil, fmt.Errorf("create browser profile: %w", err)
	}
	// Chromium makes its singleton socket in TMPDIR, and a socket path has
	// at most 107 bytes.
	if len(profile)+len("/t/org.chromium.Chromium.XXXXXX/SingletonSocket") > 107 {
		_ = os.RemoveAll(profile)
		return nil, fmt.Errorf("browser profile path %s is too long for Chromium's sockets: set TMPDIR to a shorter directory", profile)
	}
	for _, sub := range []string{"data", "home", "t"} {
		if err := os.Mkdir(filepath.Join(profile, sub), 0o700); err != nil {
			_ = os.RemoveAll(profile)
			return nil, fmt.Errorf("create browser profile: %w", err)
		}
	}
	s := &session{profile: profile}
	opts := append(e.flags(profile, f.ignoreHTTPSErrors),
		chromedp.ExecPath(path),
		chromedp.NoInheritEnv,
		chromedp.Env(
			"PATH="+childPath,
			"HOME="+filepath.Join(profile, "home"),
			"TMPDIR="+filepath.Join(profile, "t"),
			"XDG_CONFIG_HOME="+filepath.Join(profile, "home", ".config"),
			"XDG_CACHE_HOME="+filepath.Join(profile, "home", ".cache"),
			"LANG=C.UTF-8",
		),
		chromedp.ModifyCmdFunc(setupCmd),
	)
	// The browser's life is the session's, not ctx's: when ctx ends the
	// steps stop, a screenshot of the page can still be taken, and close
	// ends the browser.
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.WithoutCancel(ctx), opts...)
	quiet := func(string, ...any) {}
	tabCtx, cancelTab := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(quiet), chromedp.WithErrorf(quiet), chromedp.WithDebugf(quiet),
		chromedp.WithListener(plog.listen))
	s.ctx, s.cancelTab, s.cancelAlloc = tabCtx, cancelTab, cancelAlloc
	evtCtx, cancelEvts := context.WithCancel(tabCtx)
	s.cancelEvts = cancelEvts
	defer func() {
		if err != nil {
			s.close()
		}
	}()

	// The first Run starts the browser, and must not have a deadline of its
	// own (it would kill the browser when it passes): bound the start by
	// cancelling the tab instead.
	launchCtx, cancelLaunch := context.WithTimeoutCause(ctx, launchTimeout, fmt.Errorf("chromium did not start within %s", launchTimeout))
	defer cancelLaunch()
	stop := context.AfterFunc(launchCtx, cancelTab)
	_, runErr := chromedp.Run(tabCtx, func(ctx context.Context, t *chromedp.Target) (struct{}, error) {
		return struct{}{}, s.setup(evtCtx, t, e.hosts, plog)
	})
	if !stop() {
		return nil, fmt.Errorf("start chromium %s: %w", path, context.Cause(launchCtx))
	}
	if runErr != nil {
		// Not wrapped: the message can carry the browser's output, which
		// is cut short here.
		return nil, fmt.Errorf("start chromium %s: %s", path, executors.Shorten(runErr.Error(), maxStartError))
	}
	return s, nil
}

// setupCmd runs the browser in its own process group, killed with it when
// the agent dies (Pdeathsig) or when the session is cancelled.
func setupCmd(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setPdeathsig(cmd.SysProcAttr)
	cmd.Cancel = func() error {
		if cmd.Process == nil {
			return nil
		}
		if err := executors.KillGroup(cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return cmd.Process.Kill()
		}
		return nil
	}
	cmd.WaitDelay = 5 * time.Second
}

// setup runs once on the new tab: the host allowlist (Fetch interception)
// and the dismissal of JavaScript dialogs, which would block the page.
func (s *session) setup(ctx context.Context, t *chromedp.Target, hosts hostList, plog *pageLog) error {
	dialogs := cdp.Events(ctx, t, page.JavascriptDialogOpening)
	s.events.Go(func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = cdp.Call(ctx, t, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	})
	// A flow never downloads: a page's download would land in the profile (removed with it)
	// and could fill the disk meanwhile.
	if _, err := cdp.Call(ctx, t, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorDeny}); err != nil {
		return fmt.Errorf("refuse downloads: %w", err)
	}
	if hosts.empty() {
		return nil
	}
	paused := cdp.Events(ctx, t, fetch.RequestPaused)
	s.events.Go(func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if ev.Request == nil || hosts.allowsURL(ev.Request.URL) {
				_, _ = cdp.Call(ctx, t, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
				continue
			}
			plog.blockedRequest(ev.Request.URL)
			_, _ = cdp.Call(ctx, t, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonBlockedByClient})
		}
	})
	_, err := cdp.Call(ctx, t, fetch.Enable, fetch.EnableParams{
		Patterns: []*fetch.RequestPattern{{URLPattern: "*", RequestStage: fetch.RequestStageRequest}},
	})
	if err != nil {
		return fmt.Errorf("enable the host allowlist: %w", err)
	}
	return nil
}

// close ends the browser and its whole process tree, and removes the
// profile. It waits (bounded) until no process of the browser is left.
func (s *session) close() {
	s.cancelEvts()
	s.cancelTab()
	done := make(chan struct{})
	go func() { s.cancelAlloc(); close(done) }() // waits for the browser process
	select {
	case <-done:
	case <-time.After(shutdownTimeout):
	}
	s.events.Wait()
	killTree(s.profile, shutdownTimeout)
	_ = removeAllRetry(s.profile)
}

// listen records what the page reports; it runs on chromedp's reading
// goroutine, so it only takes notes.
func (l *pageLog) listen(ev any) {
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			l.consoleError(consoleText(ev.Args))
		}
	case *runtime.EventExceptionThrown:
		if d := ev.ExceptionDetails; d != nil {
			msg := d.Text
			if d.Exception != nil && d.Exception.Description != "" {
				msg = d.Exception.Description
			}
			l.consoleError(msg)
		}
	case *cdplog.EventEntryAdded:
		if e := ev.Entry; e != nil && e.Level == cdplog.EntryLevelError {
			msg := e.Text
			if e.URL != "" {
				msg += " (" + e.URL + ")"
			}
			l.consoleError(msg)
		}
	case *page.EventFrameNavigated:
		if f := ev.Frame; f != nil && f.ParentID == "" {
			l.navigated(f.URL + f.URLFragment)
		}
	}
}

// consoleText renders the arguments of a console call.
func consoleText(args []*runtime.RemoteObject) string {
	parts := make([]string, 0, len(args))
	for _, a := range args {
		switch {
		case a == nil:
		case len(a.Value) > 0:
			var s string
			if json.Unmarshal(a.Value, &s) == nil {
				parts = append(parts, s)
			} else {
				parts = append(parts, string(a.Value))
			}
		case a.Description != "":
			parts = append(parts, a.Description)
		default:
			parts = append(parts, string(a.Type))
		}
	}
	return strings.Join(parts, " ")
}
