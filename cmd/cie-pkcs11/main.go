// Command cie-pkcs11 is libcie-pkcs11, the PKCS#11 module of CIE Desktop:
// browsers (NSS), OpenSSL (libp11), GnuTLS and p11-kit load it to use the
// authentication key of the Italian electronic identity card.
//
// Build it as a shared library:
//
//	go build -buildmode=c-shared -trimpath \
//	  -ldflags "-s -w -extldflags=-Wl,--version-script=$PWD/cmd/cie-pkcs11/exports.map" \
//	  -o bin/libcie-pkcs11.so ./cmd/cie-pkcs11
//
// The version script path must be absolute (the external linker runs in a
// temporary directory) and cannot go in a #cgo LDFLAGS line (cgo refuses
// the flag). With it, `nm -D --defined-only` lists only the C_* symbols.
//
// On Windows (cross-compiled with mingw-w64, installer/windows/build-msi.sh):
//
//	GOOS=windows GOARCH=amd64 CGO_ENABLED=1 CC=x86_64-w64-mingw32-gcc \
//	go build -buildmode=c-shared -trimpath \
//	  -ldflags "-s -w -extldflags '-Wl,--export-all-symbols -Wl,--exclude-all-symbols'" \
//	  -o libcie-pkcs11.dll ./cmd/cie-pkcs11
//
// entry.c marks the C_* functions __declspec(dllexport) (cie_pkcs11.h);
// the two flags keep the Go functions entry.c calls out of the export
// table (see build-msi.sh). The PKCS#11 structs are 1-byte packed there
// and CK_ULONG is 32 bits: layout_test.go checks both layouts with each
// target's C compiler, layout.go that the Go view of each struct has the C
// size, and cie_pkcs11.h has accessors for the three fields cgo cannot
// name with that packing.
//
// The package is the module's only cgo: entry.c holds the PKCS#11 v2.40
// and v3.0 function tables and the C_* entry points (argument checks, the
// initialisation and fork checks), exports.go the Go functions they call,
// which convert arguments and call a pkcs11.Module (package pkcs11 has the
// semantics, see its documentation). source.go adapts package pcsc to
// pkcs11.ReaderSource. Headers: include/ (the OASIS v2.40 headers and a
// v3.0 addendum).
//
// Nothing runs at load time: the module starts in C_Initialize. The card
// records (certcache) are in os.UserConfigDir()/cie-desktop/certs. Setting
// CIE_PKCS11_LOG to a file path logs diagnostics there (never PINs or data
// to be signed); by default nothing is logged. The log is rotated by
// internal/rotlog: at most CIE_PKCS11_LOG_MAX_KB KiB per file (default
// 1024) and CIE_PKCS11_LOG_KEEP old files (default 3).
//
// The PIN dialog (dialog.go, package pkcs11 "Sign on demand") is the
// pinentry program found at C_Initialize by internal/pinentry.Find:
// $CIE_PINENTRY ("none" disables it), else, in a graphical session
// (DISPLAY or WAYLAND_DISPLAY set), `cie-tray pinentry` next to this
// library (found with dladdr) or on PATH, else the system `pinentry`. On
// Windows (dialog_windows.go): $CIE_PINENTRY, else cie-tray.exe next to
// the DLL (found with GetModuleHandleEx) or on PATH. The dialog names the
// host application (Chromium, Firefox, …) from its executable.
//
// A process that forks after loading the module cannot use it in the
// child (the Go runtime does not survive fork): C_Initialize there fails
// with CKR_FUNCTION_FAILED and every other function answers
// CKR_CRYPTOKI_NOT_INITIALIZED.
package main

// main is not run: the package is built with -buildmode=c-shared.
func main() {}
