//go:build unix

// findDialog on Linux and the other Unix systems: the module's directory
// comes from dladdr, the program from pinentry.Find.

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
	"log/slog"
	"os"
	"path/filepath"

	"github.com/ciedesktop/cie-desktop/internal/pinentry"
)

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
