//go:build windows

// findDialog on Windows. pinentry.Find is made for X11 and Wayland
// sessions (it wants DISPLAY or WAYLAND_DISPLAY and Unix permission bits),
// so on Windows the choice is made here, in the same order without the
// system pinentry:
//
//  1. $CIE_PINENTRY ("none" or "off": no dialog), parsed by pinentry.Find;
//  2. cie-tray.exe next to this DLL (the installer puts both in
//     C:\Program Files\CIE Desktop), run as `cie-tray.exe pinentry`;
//  3. cie-tray.exe on PATH.
//
// A process that loads a PKCS#11 module on Windows (Firefox, Thunderbird)
// runs on the user's desktop, so no session check is needed. cie-tray.exe
// is a GUI-subsystem program (-H windowsgui): started by the module it
// opens no console window, and its standard input and output are the pipes
// the Assuan protocol runs on.

package main

/*
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

// cie_module_path writes the path of this DLL (the file the host
// application loaded) into buf as UTF-16 and returns its length in
// characters, or 0 when it fails or does not fit.
static DWORD cie_module_path(WCHAR *buf, DWORD n) {
	HMODULE h = NULL;
	if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
	                        (LPCWSTR)(void *)cie_module_path, &h))
		return 0;
	DWORD len = GetModuleFileNameW(h, buf, n);
	if (len == 0 || len >= n) return 0;
	return len;
}
*/
import "C"

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"unsafe"

	"github.com/ciedesktop/cie-desktop/internal/pinentry"
)

// modulePath returns the path of this DLL, or "".
func modulePath() string {
	buf := make([]uint16, 32768) // the longest Windows path, in UTF-16 units
	n := C.cie_module_path((*C.WCHAR)(unsafe.Pointer(&buf[0])), C.DWORD(len(buf)))
	if n == 0 {
		return ""
	}
	return syscall.UTF16ToString(buf[:n])
}

// findDialog returns the PIN dialog, or nil when no pinentry program is
// available: the module then has no sign on demand (package pkcs11).
func findDialog(log *slog.Logger) *dialog {
	dir := ""
	if p := modulePath(); p != "" {
		dir = filepath.Dir(p)
	}
	prog, ok := findWindowsProgram(dir, os.Getenv, exec.LookPath)
	if !ok {
		log.Debug("pkcs11: no PIN dialog: applications log in with C_Login", "module_dir", dir)
		return nil
	}
	log.Debug("pkcs11: PIN dialog", "program", prog.String())
	return &dialog{prog: prog, log: log, lang: pinentry.Language(os.Getenv), program: hostName()}
}
