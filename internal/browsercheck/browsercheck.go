// Package browsercheck loads a local HTML page in headless Chromium
// (Debian's chromium, driven through the DevTools protocol by
// github.com/chromedp/chromedp) and reports what a reader would see:
// console errors and uncaught exceptions, failed loads, the page's text,
// how many images decoded and SVG elements rendered, and a screenshot.
// It is for tests: the report pages of package report are checked with it.
package browsercheck

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Binary finds a Chromium binary: $CHROMIUM, else chromium,
// chromium-browser, google-chrome or chrome on PATH. It returns "" when
// there is none.
func Binary() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Result is what loading a page showed.
type Result struct {
	// Console holds console messages of level error and assert, uncaught
	// exceptions and browser log errors (a resource that failed to
	// load), as "kind: text".
	Console []string
	// Failed holds requests that failed (a missing image, a network
	// fetch), as "URL: reason".
	Failed []string
	// Requests are every URL the page asked for, in order: a page that
	// opens without network asks only for file: and data: URLs.
	Requests []string
	// Text is document.body.innerText.
	Text string
	// Images and ImagesDecoded count <img> elements and those with a
	// natural width above 0; SVGShapes counts drawn SVG circles, rects,
	// paths and texts with a non-empty bounding box.
	Images, ImagesDecoded, SVGShapes int
	// Ready is the value of the body's data-ready attribute (set by the
	// page's script when it ran).
	Ready string
	// Screenshot is a PNG of the whole page.
	Screenshot []byte
}

// Check opens file (a local path) as a file: URL in headless Chromium
// (bin: its binary, see Binary) and returns what it saw once the page's
// load event fired. It fails when Chromium cannot start, the file does
// not exist or the page does not load within timeout.
func Check(ctx context.Context, bin, file string, timeout time.Duration) (*Result, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("browsercheck: %w", err)
	}
	u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}).String()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // root in containers
		chromedp.DisableGPU,
		chromedp.WindowSize(1200, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	tctx, cancelT := context.WithTimeout(bctx, timeout)
	defer cancelT()

	res := &Result{}
	var mu sync.Mutex
	urls := map[network.RequestID]string{}
	// Start the browser and its tab, then listen before navigating.
	if err := chromedp.Do(tctx); err != nil {
		return nil, fmt.Errorf("browsercheck: starting %s: %w", bin, err)
	}
	err = chromedp.Listen(tctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
				}
				res.Console = append(res.Console, string(e.Type)+": "+strings.Join(parts, " "))
			}
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			res.Console = append(res.Console, "exception: "+msg)
		case *cdplog.EventEntryAdded:
			if e.Entry != nil && e.Entry.Level == cdplog.EntryLevelError {
				res.Console = append(res.Console, "log: "+e.Entry.Text+" "+e.Entry.URL)
			}
		case *network.EventRequestWillBeSent:
			res.Requests = append(res.Requests, e.Request.URL)
			urls[e.RequestID] = e.Request.URL
		case *network.EventLoadingFailed:
			res.Failed = append(res.Failed, urls[e.RequestID]+": "+e.ErrorText)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("browsercheck: %w", err)
	}
	if _, err := chromedp.Call(tctx, network.Enable, network.EnableParams{}); err != nil {
		return nil, fmt.Errorf("browsercheck: %w", err)
	}
	if _, err := chromedp.Call(tctx, cdplog.Enable, cdp.Empty{}); err != nil {
		return nil, fmt.Errorf("browsercheck: %w", err)
	}
	fail := func(err error) (*Result, error) {
		if errors.Is(err, context.DeadlineExceeded) || tctx.Err() != nil {
			return nil, fmt.Errorf("browsercheck: %s did not load within %s", u, timeout)
		}
		return nil, fmt.Errorf("browsercheck: %s: %w", u, err)
	}
	if err := chromedp.Do(tctx, chromedp.Navigate(u)); err != nil {
		return fail(err)
	}
	if _, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`new Promise(r => { if (document.readyState === "complete") r(true); else window.addEventListener("load", () => r(true)); })`, chromedp.EvalAwaitPromise)); err != nil {
		return fail(err)
	}
	text, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	if err != nil {
		return fail(err)
	}
	ready, err := chromedp.Run(tctx, chromedp.Evaluate[string](`document.body ? (document.body.getAttribute("data-ready") || "") : ""`))
	if err != nil {
		return fail(err)
	}
	counts, err := chromedp.Run(tctx, chromedp.Evaluate[[]int](`(() => {
		const imgs = Array.from(document.images);
		const shapes = Array.from(document.querySelectorAll("svg circle, svg rect, svg path, svg text"))
			.filter(e => { const b = e.getBBox(); return b.width > 0 || b.height > 0; });
		return [imgs.length, imgs.filter(i => i.complete && i.naturalWidth > 0).length, shapes.length];
	})()`))
	if err != nil {
		return fail(err)
	}
	shot, err := chromedp.Run(tctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		return fail(err)
	}
	// Let late console events arrive.
	_ = chromedp.Do(tctx, chromedp.Sleep(100*time.Millisecond))
	mu.Lock()
	defer mu.Unlock()
	res.Text, res.Ready, res.Screenshot = text, ready, shot
	if len(counts) == 3 {
		res.Images, res.ImagesDecoded, res.SVGShapes = counts[0], counts[1], counts[2]
	}
	return res, nil
}
