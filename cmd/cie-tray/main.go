// Command cie-tray is the CIE Desktop app: a system tray icon that shows
// whether the reader and the card work, with windows to see the card's
// status, change and unblock the PIN, register the PKCS#11 module in the
// browsers, collect diagnostics and choose the language. `cie-tray pinentry` is the CIE PIN dialog as a pinentry
// program (Assuan on standard input and output), run by the PKCS#11 module.
//
//	cie-tray [--open WINDOW] [--reader NAME] [--lang it|en] [--module PATH] [--firefox-policy PATH|none] [-v]
//	cie-tray pinentry [--lang it|en]
//	cie-tray --version
//
// WINDOW is one of status, change-pin, unblock-pin, sign, verify,
// browsers, diagnostics, settings, about. The verify window trusts the CA
// certificates (PEM) found in os.UserConfigDir()/cie-desktop/trust. The
// browsers window registers the module libcie-pkcs11.so (--module, else
// the one installed next to cie-tray or in the system) in the user's
// Firefox profiles and Chromium databases, and in the system-wide Firefox
// policy (--firefox-policy, default /etc/firefox/policies/policies.json)
// when the user may write it. When cie-tray already runs, a second start
// asks it to open the window (default: status) and exits. Environment for tests:
// CIE_TRAY_EVENTS=FILE appends every window, result, status and
// notification as a JSON line to FILE.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/app"
	"github.com/godbus/dbus/v5"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/internal/browser"
	"github.com/ciedesktop/cie-desktop/tray"
	"github.com/ciedesktop/cie-desktop/tray/pinentry"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

// appID names the app for fyne (preferences, notifications).
const appID = "it.ciedesktop.CIEDesktop"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 && args[0] == "pinentry" {
		return runPinentry(args[1:])
	}
	fs := flag.NewFlagSet("cie-tray", flag.ContinueOnError)
	open := fs.String("open", "", "open this window at start: "+strings.Join(tray.WindowNames(), ", "))
	reader := fs.String("reader", "", "use only this reader (name, part of the name, or number)")
	lang := fs.String("lang", "", "language for this run: it or en (default: the settings, else the system's)")
	module := fs.String("module", "", "the PKCS#11 module the browsers window registers (default: "+browser.LibraryName+" installed next to cie-tray or in the system)")
	policy := fs.String("firefox-policy", strings.Join(browser.DefaultPolicyFiles, ","), "system-wide Firefox policies.json files, comma-separated, changed when writable; none: no policy")
	verbose := fs.Bool("v", false, "debug log on standard error (never PINs)")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Println("cie-tray", version)
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "cie-tray: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *open != "" && !slices.Contains(tray.WindowNames(), *open) {
		fmt.Fprintf(os.Stderr, "cie-tray: unknown window %q; known: %s\n", *open, strings.Join(tray.WindowNames(), ", "))
		return 2
	}

	// One instance per user: a second start opens a window in the first.
	sock := tray.InstancePath()
	ln, err := tray.ListenInstance(sock)
	if errors.Is(err, tray.ErrRunning) {
		name := *open
		if name == "" {
			name = tray.WinStatus
		}
		if err := tray.SendInstance(sock, name); err != nil {
			fmt.Fprintln(os.Stderr, "cie-tray:", err)
			return 1
		}
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "cie-tray: (continuing without single-instance check)", err)
	}

	cfg := tray.Config{Version: version, Reader: *reader}
	cfg.Browsers.Module = *module
	if *policy != "none" && *policy != "" {
		cfg.Browsers.PolicyFiles = strings.Split(*policy, ",")
	}
	if p, err := tray.DefaultSettingsPath(); err == nil {
		cfg.SettingsPath = p
		if cfg.Settings, err = tray.LoadSettings(p); err != nil {
			fmt.Fprintln(os.Stderr, "cie-tray:", err)
		}
	}
	if *lang != "" {
		cfg.Settings.Language = *lang
	}
	if p, err := tray.DefaultLogPath(); err == nil {
		cfg.Log = tray.NewLogFile(p, cfg.Settings.LogLevel)
		defer cfg.Log.Close()
		if *verbose {
			cfg.Log.SetLevel(tray.LogDebug)
		}
	}
	if dir, err := certcache.DefaultDir(); err == nil {
		cfg.CertCache = certcache.New(dir)
	}
	if dir, err := tray.DefaultTrustDir(); err == nil {
		if cfg.TrustRoots, err = tray.LoadTrustRoots(dir); err != nil {
			fmt.Fprintln(os.Stderr, "cie-tray:", err)
		}
	}
	events, closeEvents := eventSink()
	defer closeEvents()
	cfg.OnEvent = events

	bus := sessionBus()
	withTray := bus.ok && (*open == "" || bus.trayHost)
	cfg.Standalone = !withTray

	a := app.NewWithID(appID)
	u := tray.New(a, cfg)
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		fyne.Do(a.Quit)
	}()
	if ln != nil {
		defer ln.Close()
		go tray.ServeInstance(ln, func(name string) error {
			if !slices.Contains(tray.WindowNames(), name) {
				return fmt.Errorf("unknown window %q", name)
			}
			fyne.Do(func() { _ = u.Open(name) })
			return nil
		})
	}
	if withTray {
		// Before Run: fyne starts its tray with the event loop.
		u.StartTray(ctx)
	}
	a.Lifecycle().SetOnStarted(func() {
		first := *open
		if first == "" && !withTray {
			first = tray.WinStatus
		}
		if first != "" {
			if err := u.Open(first); err != nil {
				fmt.Fprintln(os.Stderr, "cie-tray:", err)
			}
		}
	})
	a.Run()
	return 0
}

// busInfo says whether a D-Bus session bus answers and whether a tray host
// (a StatusNotifierWatcher) is on it.
type busInfo struct{ ok, trayHost bool }

func sessionBus() busInfo {
	if os.Getenv("DBUS_SESSION_BUS_ADDRESS") == "" {
		if _, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid())); err != nil {
			// No session bus. godbus (here and inside fyne) would
			// autolaunch a dbus-daemon that outlives us: forbid it.
			os.Setenv("DBUS_SESSION_BUS_ADDRESS", "disabled:")
			return busInfo{}
		}
	}
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		return busInfo{}
	}
	defer conn.Close()
	var owned bool
	err = conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, "org.kde.StatusNotifierWatcher").Store(&owned)
	return busInfo{ok: true, trayHost: err == nil && owned}
}

// eventSink returns the Config.OnEvent that appends JSON lines to
// $CIE_TRAY_EVENTS (nil when unset) and its closer.
func eventSink() (func(tray.Event), func()) {
	path := os.Getenv("CIE_TRAY_EVENTS")
	if path == "" {
		return nil, func() {}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cie-tray: CIE_TRAY_EVENTS:", err)
		return nil, func() {}
	}
	var mu sync.Mutex
	return func(e tray.Event) {
			mu.Lock()
			defer mu.Unlock()
			b, _ := json.Marshal(e)
			_, _ = f.Write(append(b, '\n'))
		}, func() {
			mu.Lock()
			defer mu.Unlock()
			f.Close()
		}
}

// runPinentry speaks pinentry's Assuan protocol on standard input and
// output, showing the CIE PIN dialog for GETPIN.
func runPinentry(args []string) int {
	fs := flag.NewFlagSet("cie-tray pinentry", flag.ContinueOnError)
	lang := fs.String("lang", "", "language: it or en (default: OPTION lc-messages, else the system's)")
	// Options pinentry programs accept from gpg-agent's command line.
	for _, name := range []string{"display", "ttyname", "ttytype", "lc-ctype", "lc-messages", "timeout"} {
		fs.String(name, "", "accepted for compatibility")
	}
	fs.Bool("no-global-grab", false, "accepted for compatibility")
	fs.Bool("debug", false, "accepted for compatibility")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *lang == "" {
		if p, err := tray.DefaultSettingsPath(); err == nil {
			if s, err := tray.LoadSettings(p); err == nil {
				*lang = s.Language
			}
		}
	}
	events, closeEvents := eventSink()
	defer closeEvents()

	a := app.NewWithID(appID)
	prompter := tray.NewPINPrompter(a, *lang)
	prompter.OnEvent = events
	srv := &pinentry.Server{Prompter: prompter}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	code := 0
	go func() {
		if err := srv.Serve(ctx, os.Stdin, os.Stdout); err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
			slog.Error("pinentry", "err", err)
			code = 1
		}
		fyne.Do(func() {
			prompter.Close()
			a.Quit()
		})
	}()
	a.Run()
	return code
}
