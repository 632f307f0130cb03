package main

/*
#cgo LDFLAGS: -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

// cie_module_path returns the path of this shared library (the file the
// host application loaded), or NULL.
static const char *cie_module_path(void) {
	Dl_info info;
	if (dladdr((void *)cie_module_path, &info) == 0 || info.dli_fname == NULL) return NULL;
	return info.dli_fname;
}
*/
import "C"

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

// findDialog returns the PIN dialog, or nil when no pinentry program is
// available: the module then has no sign on demand (package pkcs11).
func findDialog(log *slog.Logger) *dialog {
	dir := ""
	if p := C.cie_module_path(); p != nil {
		dir = filepath.Dir(C.GoString(p))
	}
	prog, ok := pinentry.Find(dir, pinentry.Lookup{})
	if !ok {
		log.Debug("pkcs11: no PIN dialog: applications log in with C_Login", "module_dir", dir)
		return nil
	}
	log.Debug("pkcs11: PIN dialog", "program", prog.String())
	return &dialog{prog: prog, log: log, lang: pinentry.Language(os.Getenv), program: hostName()}
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
