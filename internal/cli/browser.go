package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/ciedesktop/cie-desktop/internal/browser"
)

// browserUsage is the help of `cie browser`.
const browserUsage = `cie browser register [--module PATH] [--system]
                   add the CIE module to Chromium's and Firefox's certificate stores
cie browser unregister [--system]
                   remove it
cie browser status [--module PATH]
                   show where it is registered
--module PATH      the module (default: libcie-pkcs11.so installed next to cie or in the system)
--system           also Firefox's system-wide policy /etc/firefox/policies/policies.json (root)`

// browser runs `cie browser register|unregister|status`: the PKCS#11
// module in the user's browsers (package internal/browser).
func (a *app) browser(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return &usageError{"browser: say 'register', 'unregister' or 'status':\n" + browserUsage}
	}
	if runtime.GOOS != "linux" {
		return errors.New("'cie browser' registers the module on Linux; on " + runtime.GOOS + " the installer does it")
	}
	sub := args[0]
	var module string
	var system bool
	if err := a.subFlags("browser "+sub, args[1:], func(fs *flag.FlagSet) {
		if sub != "unregister" {
			fs.StringVar(&module, "module", "", "")
		}
		if sub != "status" {
			fs.BoolVar(&system, "system", false, "")
		}
	}); err != nil {
		return err
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return fmt.Errorf("finding the home directory: %w", err)
	}
	cfg := browser.Config{Home: home}
	if system {
		if os.Geteuid() != 0 {
			return &usageError{"browser " + sub + " --system changes /etc/firefox/policies: run it as root (sudo)"}
		}
		cfg.PolicyFiles = browser.DefaultPolicyFiles
	}
	if module != "" {
		if cfg.Module, err = filepath.Abs(module); err != nil {
			return fmt.Errorf("reading the module path: %w", err)
		}
	} else if sub != "unregister" {
		exe, _ := os.Executable()
		found, ferr := browser.FindModule(exe)
		if ferr != nil && sub == "register" {
			return ferr
		}
		cfg.Module = found
	}

	var reports []browser.Report
	switch sub {
	case "register":
		reports, err = browser.Register(cfg)
	case "unregister":
		reports, err = browser.Unregister(cfg)
	case "status":
		reports, err = browser.Status(cfg)
	default:
		return &usageError{fmt.Sprintf("browser: unknown subcommand %q; say 'register', 'unregister' or 'status'", sub)}
	}
	if reports == nil && err != nil {
		return err
	}
	a.printReports(home, cfg.Module, reports)
	changed := false
	for _, r := range reports {
		changed = changed || r.Changed
	}
	if changed {
		fmt.Fprintln(a.env.Stdout, "Restart the browsers (all their windows) to load the change.")
	}
	return err
}

// printReports prints one line per place: where, and what it holds.
func (a *app) printReports(home, module string, reports []browser.Report) {
	w := a.env.Stdout
	if len(reports) == 0 {
		fmt.Fprintln(w, "No browser found.")
		return
	}
	for _, r := range reports {
		state := r.State.String()
		switch {
		case r.Err != nil:
			state = "failed: " + strings.TrimPrefix(r.Err.Error(), "browser: ")
		case r.State == browser.Registered || r.State == browser.Stale:
			lib := r.Library
			if strings.HasPrefix(lib, home+"/") {
				lib = "~" + strings.TrimPrefix(lib, home)
			}
			state += " (" + lib + ")"
			if _, serr := os.Stat(r.Library); serr != nil {
				state += " — that file is missing"
			}
			if r.State == browser.Stale && module != "" {
				state += "; 'cie browser register' replaces it"
			}
		}
		if r.Changed {
			state += ", changed now"
		}
		switch {
		case r.InUse && r.Changed && r.Kind == browser.ChromiumDB:
			state += "; Chromium or Chrome is open: restart it"
		case r.InUse && r.Changed:
			state += "; Firefox is open with this profile: restart it"
		}
		name := r.Name
		if r.Kind == browser.FirefoxProfile {
			name += " (" + strings.Replace(r.Path, home, "~", 1) + ")"
		}
		fmt.Fprintf(w, "%-16s %-44s %s\n", r.Kind, name, state)
	}
}
