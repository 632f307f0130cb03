package tray

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ciedesktop/cie-desktop/internal/browser"
)

// BrowserSetup says whose browsers the browsers window registers the
// PKCS#11 module in, and which module: the same choices as `cie browser`
// (package internal/browser).
type BrowserSetup struct {
	// Home is the user's home directory; "" means os.UserHomeDir().
	Home string
	// Module is the absolute path of libcie-pkcs11.so; "" means the one
	// browser.FindModule finds next to Executable or in the system.
	Module string
	// Executable is where browser.FindModule starts looking; "" means
	// os.Executable().
	Executable string
	// PolicyFiles are system-wide Firefox policy files (cie-tray passes
	// browser.DefaultPolicyFiles). Register and Unregister change those
	// the user may write; one the user may only read is shown, not
	// changed; one that neither exists nor could be created is left out.
	// nil: none.
	PolicyFiles []string
}

// browserEnv is a BrowserSetup resolved for one operation.
type browserEnv struct {
	cfg       browser.Config // PolicyFiles: the writable ones only
	exe       string         // where the module was looked for
	moduleErr error          // why cfg.Module is empty
	readOnly  []string       // existing policy files the user cannot write
	// unsupported: the module is registered by the installer on this
	// system, not by the app.
	unsupported bool
}

// resolve finds the home directory, the module and the policy files.
func (s BrowserSetup) resolve() (browserEnv, error) {
	var env browserEnv
	if runtime.GOOS != "linux" {
		env.unsupported = true
		return env, nil
	}
	env.cfg.Home = s.Home
	if env.cfg.Home == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return env, fmt.Errorf("finding the home directory: %w", err)
		}
		env.cfg.Home = h
	}
	switch {
	case s.Module != "":
		abs, err := filepath.Abs(s.Module)
		if err == nil {
			err = browser.CheckModule(abs)
		}
		if err != nil {
			env.moduleErr = err
		} else {
			env.cfg.Module = abs
		}
	default:
		env.exe = s.Executable
		if env.exe == "" {
			env.exe, _ = os.Executable()
		}
		env.cfg.Module, env.moduleErr = browser.FindModule(env.exe)
	}
	for _, p := range s.PolicyFiles {
		switch {
		case canWrite(p):
			env.cfg.PolicyFiles = append(env.cfg.PolicyFiles, p)
		case exists(p):
			env.readOnly = append(env.readOnly, p)
		}
	}
	return env, nil
}

// canWrite reports whether the user may write the file at p, or create it
// (with its missing directories) when it does not exist.
func canWrite(p string) bool {
	if _, err := os.Lstat(p); err == nil {
		return writable(p)
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil {
			return fi.IsDir() && writable(d)
		}
		if filepath.Dir(d) == d {
			return false
		}
	}
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// browserOp is what the browsers window does.
type browserOp int

const (
	browsersStatus browserOp = iota
	browsersRegister
	browsersUnregister
)

// browserOutcome is an operation's result: the reports of every target,
// and the error that joins the failures.
type browserOutcome struct {
	op      browserOp
	env     browserEnv
	reports []browser.Report
	err     error
}

// runBrowsers does op with the setup. It reads and writes files (and may
// run certutil): run it in the background.
func runBrowsers(s BrowserSetup, op browserOp) browserOutcome {
	out := browserOutcome{op: op}
	env, err := s.resolve()
	out.env = env
	if err != nil || env.unsupported {
		out.err = err
		return out
	}
	switch op {
	case browsersRegister:
		if env.moduleErr != nil {
			out.err = env.moduleErr
			break
		}
		out.reports, out.err = browser.Register(env.cfg)
	case browsersUnregister:
		out.reports, out.err = browser.Unregister(env.cfg)
	}
	// The read-only policies are shown, never changed; after a failure
	// before any target was done, show the state as it is.
	cfg := env.cfg
	cfg.PolicyFiles = append(append([]string(nil), cfg.PolicyFiles...), env.readOnly...)
	if op == browsersStatus || out.reports == nil {
		rs, serr := browser.Status(cfg)
		if out.err == nil {
			out.err = serr
		}
		out.reports = rs
	} else if len(env.readOnly) > 0 {
		rs, serr := browser.Status(browser.Config{Home: cfg.Home, Module: cfg.Module, PolicyFiles: env.readOnly})
		if out.err == nil {
			out.err = serr
		}
		for _, r := range rs {
			if r.Kind == browser.FirefoxPolicy {
				out.reports = append(out.reports, r)
			}
		}
	}
	return out
}

// BrowserInfo is one place the module is registered in, for the browsers
// window and the diagnostics. Paths in the home directory start with "~".
type BrowserInfo struct {
	Kind     browser.Kind  `json:"-"`
	State    browser.State `json:"-"`
	KindName string        `json:"kind"`  // browser.Kind.String()
	Name     string        `json:"name"`  // the profile's name, or the database's path
	Path     string        `json:"path"`  // the NSS database directory or policies.json
	StateStr string        `json:"state"` // browser.State.String()
	Library  string        `json:"library,omitempty"`
	// LibraryMissing: the registered library file does not exist.
	LibraryMissing bool `json:"library_missing,omitempty"`
	// InUse: Firefox is open with this profile, or, for Chromium's
	// databases, a Chromium-family browser runs.
	InUse bool `json:"in_use,omitempty"`
	// ReadOnly: a system-wide policy the user cannot change.
	ReadOnly bool   `json:"read_only,omitempty"`
	Changed  bool   `json:"-"`
	Error    string `json:"error,omitempty"`
}

// browserInfos turns reports into BrowserInfo, home abbreviated as "~".
func browserInfos(home string, readOnly []string, reports []browser.Report) []BrowserInfo {
	tilde := func(p string) string {
		if home != "" && (p == home || strings.HasPrefix(p, home+string(filepath.Separator))) {
			return "~" + strings.TrimPrefix(p, home)
		}
		return p
	}
	var out []BrowserInfo
	for _, r := range reports {
		bi := BrowserInfo{
			Kind: r.Kind, State: r.State, KindName: r.Kind.String(), Name: tilde(r.Name), Path: tilde(r.Path),
			StateStr: r.State.String(), Library: tilde(r.Library), InUse: r.InUse, Changed: r.Changed,
		}
		if r.Library != "" && !exists(r.Library) {
			bi.LibraryMissing = true
		}
		if r.Kind == browser.FirefoxPolicy {
			for _, p := range readOnly {
				bi.ReadOnly = bi.ReadOnly || p == r.Path
			}
		}
		if r.Err != nil {
			bi.Error = strings.TrimPrefix(r.Err.Error(), "browser: ")
		}
		out = append(out, bi)
	}
	return out
}

// place names a target for people: "Chromium/Chrome ~/.pki/nssdb",
// "Firefox profile default-release".
func (b BrowserInfo) place(c *Catalogue) string {
	switch b.Kind {
	case browser.ChromiumDB:
		return c.T("browsers.kind_chromium") + " " + b.Name
	case browser.FirefoxProfile:
		return c.T("browsers.kind_firefox", map[string]any{"Name": b.Name})
	case browser.FirefoxPolicy:
		return c.T("browsers.kind_policy") + " " + b.Name
	}
	return b.KindName + " " + b.Name
}

// where is the place and, for a profile, its directory.
func (b BrowserInfo) where(c *Catalogue) string {
	if b.Kind == browser.FirefoxProfile {
		return b.place(c) + " (" + b.Path + ")"
	}
	return b.place(c)
}

// stateText says what the target holds, with what is worth knowing
// about it: in use, a missing library, read-only, the error.
func (b BrowserInfo) stateText(c *Catalogue) string {
	var s string
	switch b.State {
	case browser.Absent:
		if b.Kind == browser.FirefoxPolicy {
			s = c.T("browsers.state_absent_policy")
		} else {
			s = c.T("browsers.state_absent")
		}
	case browser.NotRegistered:
		s = c.T("browsers.state_not_registered")
	case browser.Registered:
		s = c.T("browsers.state_registered")
	case browser.Stale:
		s = c.T("browsers.state_stale", map[string]any{"Library": b.Library})
	default:
		s = b.StateStr
	}
	if b.LibraryMissing {
		s += "; " + c.T("browsers.library_missing", map[string]any{"Library": b.Library})
	}
	if b.InUse && b.Kind == browser.ChromiumDB {
		s += "; " + c.T("browsers.in_use_chromium")
	} else if b.InUse {
		s += "; " + c.T("browsers.in_use")
	}
	if b.ReadOnly {
		s += "; " + c.T("browsers.read_only")
	}
	if b.Error != "" {
		s = c.T("browsers.state_error", map[string]any{"Error": b.Error})
	}
	return s
}

// moduleText is the module line: its path, or why there is none.
func moduleText(c *Catalogue, module, moduleErr string) string {
	if moduleErr != "" {
		return c.T("browsers.no_module", map[string]any{"Error": moduleErr})
	}
	return module
}

// moduleProblem is err without the package prefix ("" for nil).
func moduleProblem(err error) string {
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "browser: ")
}

// summary says what an operation changed and what the user must do now:
// restart a browser that is open, fix what failed.
func (o browserOutcome) summary(c *Catalogue, infos []BrowserInfo) (string, bool) {
	if o.env.unsupported {
		return c.T("browsers.unsupported"), false
	}
	if o.op == browsersRegister && o.env.moduleErr != nil {
		return c.T("browsers.register_no_module", map[string]any{"Error": moduleProblem(o.env.moduleErr)}), false
	}
	if o.err != nil && len(infos) == 0 {
		return c.T("browsers.failed", map[string]any{"Error": strings.TrimPrefix(o.err.Error(), "browser: ")}), false
	}
	var parts []string
	var changed []string
	var firefoxOpen, firefoxChanged, chromiumOpen bool
	for _, b := range infos {
		if !b.Changed {
			continue
		}
		changed = append(changed, b.place(c))
		switch b.Kind {
		case browser.ChromiumDB:
			chromiumOpen = chromiumOpen || b.InUse
		case browser.FirefoxProfile:
			firefoxOpen = firefoxOpen || b.InUse
		case browser.FirefoxPolicy:
			firefoxChanged = true
		}
	}
	places := strings.Join(changed, ", ")
	switch o.op {
	case browsersRegister:
		if len(changed) > 0 {
			parts = append(parts, c.N("browsers.registered", len(changed), map[string]any{"Places": places}))
		} else if o.err == nil {
			parts = append(parts, c.T("browsers.register_nothing"))
		}
	case browsersUnregister:
		if len(changed) > 0 {
			parts = append(parts, c.N("browsers.unregistered", len(changed), map[string]any{"Places": places}))
		} else if o.err == nil {
			parts = append(parts, c.T("browsers.unregister_nothing"))
		}
	case browsersStatus:
		n := 0
		for _, b := range infos {
			if b.State == browser.Registered && b.Error == "" {
				n++
			}
		}
		parts = append(parts, c.N("browsers.status_summary", n, map[string]any{"Total": len(infos)}))
	}
	switch {
	case firefoxOpen:
		parts = append(parts, c.T("browsers.restart_firefox"))
	case firefoxChanged:
		parts = append(parts, c.T("browsers.restart_firefox_policy"))
	}
	if chromiumOpen {
		parts = append(parts, c.T("browsers.restart_chromium"))
	}
	if o.err != nil {
		var msgs []string
		for _, b := range infos {
			if b.Error != "" {
				msgs = append(msgs, b.where(c)+": "+b.Error)
			}
		}
		if len(msgs) == 0 {
			msgs = append(msgs, strings.TrimPrefix(o.err.Error(), "browser: "))
		}
		parts = append(parts, c.T("browsers.failed", map[string]any{"Error": strings.Join(msgs, "; ")}))
	}
	return strings.Join(parts, " "), o.err == nil
}

// listText is the targets as lines of text: the window's list, the
// diagnostics, the result events.
func listText(c *Catalogue, infos []BrowserInfo) string {
	var b strings.Builder
	for _, bi := range infos {
		fmt.Fprintf(&b, "  %s — %s\n", bi.where(c), bi.stateText(c))
	}
	return b.String()
}

// errUnsupported is the diagnostics' problem on systems where the
// installer registers the module.
var errUnsupported = errors.New("the installer registers the module on " + runtime.GOOS)
