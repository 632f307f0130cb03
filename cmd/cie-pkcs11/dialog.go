// The PIN dialog shared by every platform; findDialog, which chooses the
// pinentry program, is in dialog_unix.go and dialog_windows.go.

package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/pinentry"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// dialog is the module's PIN dialog: a pinentry program (pinentry.Find)
// run for each request.
type dialog struct {
	prog    pinentry.Program
	log     *slog.Logger
	lang    string
	program string // the host application, named in the dialog
}

// hostName names the application that loaded the module, for the dialog
// ("Chromium wants to sign with your CIE").
func hostName() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	base := filepath.Base(exe)
	for prefix, name := range map[string]string{
		"chromium": "Chromium", "chrome": "Google Chrome", "firefox": "Firefox", "thunderbird": "Thunderbird",
		"librewolf": "LibreWolf", "brave": "Brave", "msedge": "Microsoft Edge", "opera": "Opera", "vivaldi": "Vivaldi",
	} {
		if strings.HasPrefix(base, prefix) {
			return name
		}
	}
	return base
}

func (d *dialog) prompt(r pkcs11.PINRequest) pinentry.CardPrompt {
	p := pinentry.CardPrompt{Holder: r.Holder, Program: d.program, TriesLeft: r.TriesLeft, Lang: d.lang}
	switch r.Retry {
	case pkcs11.PINWrong:
		p.Reason = pinentry.WrongPIN
	case pkcs11.PINMalformed:
		p.Reason = pinentry.Malformed
	}
	return p
}

// PromptPIN runs the pinentry program for one PIN entry.
func (d *dialog) PromptPIN(ctx context.Context, r pkcs11.PINRequest) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, pinentry.DialogTimeout+30*time.Second)
	defer cancel()
	d.log.Info("pkcs11: asking the PIN", "slot", r.Slot, "program", d.prog.String(), "tries_left", r.TriesLeft, "retry", r.Retry)
	pin, err := d.prog.GetPIN(ctx, d.prompt(r).PINDialog())
	if errors.Is(err, pinentry.ErrCancelled) || errors.Is(err, pinentry.ErrTimeout) {
		return nil, pkcs11.ErrPINCancelled
	}
	return pin, err
}

// PINLocked shows that the PIN is blocked.
func (d *dialog) PINLocked(ctx context.Context, r pkcs11.PINRequest) {
	ctx, cancel := context.WithTimeout(ctx, pinentry.DialogTimeout+30*time.Second)
	defer cancel()
	if err := d.prog.Message(ctx, d.prompt(r).LockedDialog()); err != nil {
		d.log.Warn("pkcs11: showing the blocked PIN", "err", err)
	}
}

// trayExe is the CIE Desktop app, whose `pinentry` subcommand is the PIN
// dialog.
const trayExe = "cie-tray.exe"

// findWindowsProgram chooses the pinentry program on Windows (see
// dialog_windows.go); it is here, without build tags, to be tested on
// every platform.
func findWindowsProgram(moduleDir string, getenv func(string) string, lookPath func(string) (string, error)) (pinentry.Program, bool) {
	if strings.TrimSpace(getenv(pinentry.EnvProgram)) != "" {
		return pinentry.Find(moduleDir, pinentry.Lookup{Getenv: getenv, LookPath: lookPath})
	}
	if moduleDir != "" {
		path := filepath.Join(moduleDir, trayExe)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			return pinentry.Program{Path: path, Args: []string{"pinentry"}}, true
		}
	}
	if path, err := lookPath(trayExe); err == nil {
		return pinentry.Program{Path: path, Args: []string{"pinentry"}}, true
	}
	return pinentry.Program{}, false
}
