//go:build package

package e2e

// The Windows installer, checked on Linux: `go test -tags package -run
// TestWindowsMSI ./e2e` (make test-package). installer/windows/build-msi.sh
// cross-compiles the three binaries and builds the MSI twice; the test
// compares the two byte for byte, reads the MSI's tables with msiinfo
// (files, per-machine, the two public properties, the registry rows and
// their conditions, upgrades, no custom actions), extracts the payload
// with msiextract and reads the PE headers of the binaries with debug/pe:
// the DLL exports exactly the PKCS#11 functions, cie-tray.exe is a GUI
// program, and imports only Windows' DLLs. With wine64 installed, the
// subtest Wine loads the DLL and calls it (wineSmoke). CIE_MSI names a
// prebuilt MSI instead (no reproducibility check then). Nothing here runs
// Windows Installer: installing, the registry at run time, Firefox loading
// the module and uninstalling are not tested.

import (
	"bytes"
	"debug/pe"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/testbench"
)

// upgradeCode ties every version of the MSI together; it never changes.
const upgradeCode = "{7A11E72E-7E65-415D-96A9-EC13DD4D584B}"

// buildMSI runs build-msi.sh into dir and returns the MSI.
func buildMSI(t *testing.T, root, dir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(root, "installer", "windows", "build-msi.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "DIST_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("installer/windows/build-msi.sh: %v\n%s", err, out)
	}
	msis, _ := filepath.Glob(filepath.Join(dir, "*.msi"))
	if len(msis) != 1 {
		t.Fatalf("%s holds %d .msi files, want 1", dir, len(msis))
	}
	return msis[0]
}

// msiTable returns the rows of one table of msi (msiinfo export), each a
// map from column name to value.
func msiTable(t *testing.T, msi, table string) []map[string]string {
	t.Helper()
	out, err := exec.Command("msiinfo", "export", msi, table).Output()
	if err != nil {
		t.Fatalf("msiinfo export %s: %v", table, err)
	}
	// Line 1: the column names; 2: their types; 3: the table name and its
	// keys; then one line per row, tab-separated.
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(out), "\r\n", "\n"), "\n"), "\n")
	if len(lines) < 3 {
		t.Fatalf("msiinfo export %s: %q", table, out)
	}
	cols := strings.Split(lines[0], "\t")
	var rows []map[string]string
	for _, l := range lines[3:] {
		vals := strings.Split(l, "\t")
		row := map[string]string{}
		for i, c := range cols {
			if i < len(vals) {
				row[c] = vals[i]
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// rowWhere returns the row whose column col is val, or nil.
func rowWhere(rows []map[string]string, col, val string) map[string]string {
	for _, r := range rows {
		if r[col] == val {
			return r
		}
	}
	return nil
}

// peExports returns the names in the export directory of a PE file.
// debug/pe reads the headers and sections but not the export table.
func peExports(path string) ([]string, error) {
	f, err := pe.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening PE file: %w", err)
	}
	defer f.Close()
	oh, ok := f.OptionalHeader.(*pe.OptionalHeader64)
	if !ok {
		return nil, errors.New("reading exports: not a PE32+ file")
	}
	if oh.NumberOfRvaAndSizes <= pe.IMAGE_DIRECTORY_ENTRY_EXPORT {
		return nil, nil
	}
	dir := oh.DataDirectory[pe.IMAGE_DIRECTORY_ENTRY_EXPORT]
	if dir.Size == 0 {
		return nil, nil
	}
	// read returns n bytes at a relative virtual address.
	read := func(rva, n uint32) ([]byte, error) {
		for _, s := range f.Sections {
			if rva >= s.VirtualAddress && rva+n <= s.VirtualAddress+max(s.VirtualSize, s.Size) {
				b := make([]byte, n)
				_, err := s.ReadAt(b, int64(rva-s.VirtualAddress))
				return b, err
			}
		}
		return nil, fmt.Errorf("reading exports: RVA %#x not in a section", rva)
	}
	// IMAGE_EXPORT_DIRECTORY: NumberOfNames at 24, AddressOfNames at 32.
	d, err := read(dir.VirtualAddress, 40)
	if err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(d[24:])
	names, err := read(binary.LittleEndian.Uint32(d[32:]), 4*n)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, n)
	for i := range n {
		rva := binary.LittleEndian.Uint32(names[4*i:])
		var name []byte
		for {
			b, err := read(rva+uint32(len(name)), 1)
			if err != nil {
				return nil, err
			}
			if b[0] == 0 {
				break
			}
			name = append(name, b[0])
		}
		out = append(out, string(name))
	}
	return out, nil
}

// pkcs11Functions lists the functions of the PKCS#11 v2.40 function list
// (pkcs11f.h) and the v3.0 additions (pkcs11_3_0.h), from the module's
// headers.
func pkcs11Functions(t *testing.T, root string) []string {
	t.Helper()
	var names []string
	for file, re := range map[string]*regexp.Regexp{
		"pkcs11f.h":    regexp.MustCompile(`CK_PKCS11_FUNCTION_INFO\((C_\w+)\)`),
		"pkcs11_3_0.h": regexp.MustCompile(`X\((C_\w+),`),
	} {
		b, err := os.ReadFile(filepath.Join(root, "cmd", "cie-pkcs11", "include", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			names = append(names, string(m[1]))
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	if len(names) != 68+24 || !slices.Contains(names, "C_GetFunctionList") {
		t.Fatalf("read %d PKCS#11 functions from the headers, want 68 (v2.40) + 24 (v3.0): %v", len(names), names)
	}
	return names
}

func TestWindowsMSI(t *testing.T) {
	for _, tool := range []string{"x86_64-w64-mingw32-gcc", "wixl", "msibuild", "msiinfo", "msiextract", "faketime"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is missing: run scripts/install-deps.sh", tool)
		}
	}
	root := testbench.ModuleRoot(t)
	msi := os.Getenv("CIE_MSI")
	if msi == "" {
		msi = buildMSI(t, root, t.TempDir())
		again := buildMSI(t, root, t.TempDir())
		a, _ := os.ReadFile(msi)
		b, _ := os.ReadFile(again)
		if !bytes.Equal(a, b) {
			t.Errorf("two builds of the MSI differ (%d and %d bytes): the build is not reproducible", len(a), len(b))
		}
		t.Logf("%s: %d bytes", filepath.Base(msi), len(a))
	}

	tables, err := exec.Command("msiinfo", "tables", msi).Output()
	if err != nil {
		t.Fatalf("msiinfo tables: %v", err)
	}
	for _, tb := range []string{"File", "Component", "Registry", "Property", "Directory", "Upgrade"} {
		if !slices.Contains(strings.Fields(string(tables)), tb) {
			t.Errorf("the MSI has no %s table:\n%s", tb, tables)
		}
	}

	props := msiTable(t, msi, "Property")
	prop := func(name string) string {
		if r := rowWhere(props, "Property", name); r != nil {
			return r["Value"]
		}
		return "(absent)"
	}
	for name, want := range map[string]string{
		"ALLUSERS": "1", "TRAYAUTOSTART": "1", "FIREFOXPOLICY": "1", "UpgradeCode": upgradeCode,
		"ProductName": "CIE Desktop",
	} {
		if got := prop(name); got != want {
			t.Errorf("Property %s = %q, want %q", name, got, want)
		}
	}
	for _, p := range []string{"TRAYAUTOSTART", "FIREFOXPOLICY"} {
		if !slices.Contains(strings.Split(prop("SecureCustomProperties"), ";"), p) {
			t.Errorf("SecureCustomProperties %q lacks %s", prop("SecureCustomProperties"), p)
		}
	}

	dirs := msiTable(t, msi, "Directory")
	if d := rowWhere(dirs, "Directory", "INSTALLDIR"); d == nil || d["Directory_Parent"] != "ProgramFiles64Folder" || d["DefaultDir"] != "CIE Desktop" {
		t.Errorf("INSTALLDIR is %v, want CIE Desktop in ProgramFiles64Folder", d)
	}

	// Every component is 64-bit (msidbComponentAttributes64bit); the two
	// registry components are conditioned on their property.
	comps := msiTable(t, msi, "Component")
	wantComps := map[string]string{
		"CieExe": "", "CieTrayExe": "", "Pkcs11Dll": "",
		"TrayAutostart": `TRAYAUTOSTART = "1"`, "FirefoxPolicy": `FIREFOXPOLICY = "1"`,
	}
	if len(comps) != len(wantComps) {
		t.Errorf("%d components, want %d: %v", len(comps), len(wantComps), comps)
	}
	for id, cond := range wantComps {
		c := rowWhere(comps, "Component", id)
		if c == nil {
			t.Errorf("no component %s", id)
			continue
		}
		if c["Condition"] != cond {
			t.Errorf("component %s: condition %q, want %q", id, c["Condition"], cond)
		}
		var attrs int
		fmt.Sscan(c["Attributes"], &attrs)
		if attrs&256 == 0 || c["Directory_"] != "INSTALLDIR" {
			t.Errorf("component %s: attributes %d in %s, want 64-bit in INSTALLDIR", id, attrs, c["Directory_"])
		}
	}

	files := msiTable(t, msi, "File")
	wantFiles := map[string]string{"cie.exe": "CieExe", "cie-tray.exe": "CieTrayExe", "libcie-pkcs11.dll": "Pkcs11Dll"}
	if len(files) != len(wantFiles) {
		t.Errorf("%d files, want %d: %v", len(files), len(wantFiles), files)
	}
	for name, comp := range wantFiles {
		if f := rowWhere(files, "FileName", name); f == nil || f["Component_"] != comp {
			t.Errorf("file %s: %v, want it in component %s", name, f, comp)
		}
	}

	// The registry rows: HKLM (Root 2), one per optional component.
	reg := msiTable(t, msi, "Registry")
	wantReg := []map[string]string{
		{"Root": "2", "Key": `Software\Microsoft\Windows\CurrentVersion\Run`, "Name": "CIE Desktop",
			"Value": `"[INSTALLDIR]cie-tray.exe"`, "Component_": "TrayAutostart"},
		{"Root": "2", "Key": `SOFTWARE\Policies\Mozilla\Firefox\SecurityDevices\Add`, "Name": "CIE Desktop",
			"Value": `[INSTALLDIR]libcie-pkcs11.dll`, "Component_": "FirefoxPolicy"},
	}
	if len(reg) != len(wantReg) {
		t.Errorf("%d registry rows, want %d: %v", len(reg), len(wantReg), reg)
	}
	for _, w := range wantReg {
		r := rowWhere(reg, "Component_", w["Component_"])
		for k, v := range w {
			if r == nil || r[k] != v {
				t.Errorf("registry row of %s: %v, want %v", w["Component_"], r, w)
				break
			}
		}
	}

	// Upgrades: an older or same version is removed first (VersionMax
	// inclusive, 513), a newer one is detected and blocks the install.
	ups := msiTable(t, msi, "Upgrade")
	if u := rowWhere(ups, "ActionProperty", "WIX_UPGRADE_DETECTED"); u == nil || u["UpgradeCode"] != upgradeCode || u["Attributes"] != "513" || u["VersionMax"] != prop("ProductVersion") {
		t.Errorf("upgrade row %v, want UpgradeCode %s, Attributes 513, VersionMax %s", u, upgradeCode, prop("ProductVersion"))
	}
	if u := rowWhere(ups, "ActionProperty", "WIX_DOWNGRADE_DETECTED"); u == nil || u["Attributes"] != "2" {
		t.Errorf("downgrade row %v, want an OnlyDetect row", u)
	}
	seq := msiTable(t, msi, "InstallExecuteSequence")
	for _, a := range []string{"RemoveExistingProducts", "RemoveFiles", "RemoveRegistryValues", "InstallFiles", "WriteRegistryValues"} {
		if rowWhere(seq, "Action", a) == nil {
			t.Errorf("InstallExecuteSequence lacks %s", a)
		}
	}
	// Nothing runs but Windows Installer's own actions: no custom actions,
	// no services.
	for _, tb := range []string{"CustomAction", "ServiceInstall"} {
		if rows := msiTable(t, msi, tb); len(rows) != 0 {
			t.Errorf("%s rows: %v, want none", tb, rows)
		}
	}

	// The payload.
	x := t.TempDir()
	if out, err := exec.Command("msiextract", "-C", x, msi).CombinedOutput(); err != nil {
		t.Fatalf("msiextract: %v\n%s", err, out)
	}
	// msiextract writes the files under their directory's name, without
	// the Program Files part (ProgramFiles64Folder is ".").
	bin := filepath.Join(x, "CIE Desktop")
	if ents, err := os.ReadDir(bin); err != nil || len(ents) != len(wantFiles) {
		t.Errorf("msiextract gave %v (%v), want the %d files in CIE Desktop", ents, err, len(wantFiles))
	}
	// The subsystem of the programs (0: a DLL's does not matter): cie-tray.exe
	// must open no console window, at login or as the PIN dialog.
	subsystem := map[string]uint16{
		"cie.exe":           pe.IMAGE_SUBSYSTEM_WINDOWS_CUI,
		"cie-tray.exe":      pe.IMAGE_SUBSYSTEM_WINDOWS_GUI,
		"libcie-pkcs11.dll": 0,
	}
	for name, want := range subsystem {
		f, err := pe.Open(filepath.Join(bin, name))
		if err != nil {
			t.Errorf("the MSI's %s: %v", name, err)
			continue
		}
		oh, _ := f.OptionalHeader.(*pe.OptionalHeader64)
		switch {
		case f.Machine != pe.IMAGE_FILE_MACHINE_AMD64 || oh == nil:
			t.Errorf("%s: machine %#x, want AMD64 PE32+", name, f.Machine)
		case want != 0 && oh.Subsystem != want:
			t.Errorf("%s: subsystem %d, want %d", name, oh.Subsystem, want)
		case oh.DllCharacteristics&(pe.IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE|pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT) !=
			pe.IMAGE_DLLCHARACTERISTICS_DYNAMIC_BASE|pe.IMAGE_DLLCHARACTERISTICS_NX_COMPAT:
			t.Errorf("%s: DllCharacteristics %#x, want ASLR and NX", name, oh.DllCharacteristics)
		}
		// Only Windows' own DLLs: the mingw-w64 runtime (libwinpthread-1.dll,
		// libgcc_s_seh-1.dll, …) is not installed, so it must be linked in.
		// (debug/pe's ImportedLibraries returns nothing for PE files; the
		// symbols, "name:DLL", do name their DLL.)
		syms, err := f.ImportedSymbols()
		if err != nil || len(syms) == 0 {
			t.Errorf("%s: reading imports: %d symbols, %v", name, len(syms), err)
		}
		for _, s := range syms {
			if _, lib, _ := strings.Cut(s, ":"); strings.HasPrefix(strings.ToLower(lib), "lib") {
				t.Errorf("%s imports %s, which Windows does not have", name, s)
				break
			}
		}
		f.Close()
	}
	dll := filepath.Join(bin, "libcie-pkcs11.dll")
	if f, err := pe.Open(dll); err == nil {
		if f.Characteristics&pe.IMAGE_FILE_DLL == 0 {
			t.Errorf("libcie-pkcs11.dll is not a DLL: characteristics %#x", f.Characteristics)
		}
		f.Close()
	}
	exports, err := peExports(dll)
	if err != nil {
		t.Fatalf("libcie-pkcs11.dll: %v", err)
	}
	slices.Sort(exports)
	if want := pkcs11Functions(t, root); !slices.Equal(exports, want) {
		var missing, extra []string
		for _, w := range want {
			if !slices.Contains(exports, w) {
				missing = append(missing, w)
			}
		}
		for _, e := range exports {
			if !slices.Contains(want, e) {
				extra = append(extra, e)
			}
		}
		t.Errorf("libcie-pkcs11.dll exports %d names, want the %d PKCS#11 functions; missing %v, extra %v", len(exports), len(want), missing, extra)
	}
	t.Run("Wine", func(t *testing.T) { wineSmoke(t, root, dll) })
}

// wineSmoke loads the DLL under Wine with testdata/wine/p11smoke.c, which
// calls it through the packed structs of the Windows ABI (C_GetInfo,
// C_GetSlotList, a template and a mechanism, C_GetInterface, C_Finalize).
// It needs wine64 (make test-package installs it and sets CIE_REQUIRE_WINE=1);
// without it the subtest is skipped and says so.
func wineSmoke(t *testing.T, root, dll string) {
	wine := ""
	for _, w := range []string{"wine64", "/usr/lib/wine/wine64", "wine"} {
		if p, err := exec.LookPath(w); err == nil {
			wine = p
			break
		}
	}
	if wine == "" {
		if os.Getenv("CIE_REQUIRE_WINE") == "1" {
			t.Fatal("wine64 is not installed, and CIE_REQUIRE_WINE=1 (make test-package installs it)")
		}
		t.Skip("wine64 is not installed: the DLL is not loaded (apt-get install wine64 to run this)")
	}
	dir := t.TempDir()
	src := filepath.Join(root, "e2e", "testdata", "wine")
	inc := filepath.Join(root, "cmd", "cie-pkcs11", "include")
	for _, c := range [][]string{
		{"-std=c11", "-Wall", "-Werror", "-I", inc, "-o", filepath.Join(dir, "p11smoke.exe"), filepath.Join(src, "p11smoke.c")},
		{"-shared", "-Wall", "-Werror", "-o", filepath.Join(dir, "bcryptprimitives.dll"), filepath.Join(src, "bcryptprimitives.c"), "-ladvapi32"},
	} {
		if out, err := exec.Command("x86_64-w64-mingw32-gcc", c...).CombinedOutput(); err != nil {
			t.Fatalf("x86_64-w64-mingw32-gcc %v: %v\n%s", c, err, out)
		}
	}
	prefix := filepath.Join(dir, "prefix")
	env := append(os.Environ(), "WINEPREFIX="+prefix, "WINEDEBUG=-all", "HOME="+dir, "DISPLAY=")
	wineRun := func(args ...string) (string, error) {
		cmd := exec.Command(wine, args...)
		cmd.Env = env
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	defer func() {
		// Stop this prefix's wineserver before the directory goes.
		cmd := exec.Command(filepath.Join(filepath.Dir(wine), "wineserver"), "-k")
		cmd.Env = env
		cmd.Run()
	}()
	if out, err := wineRun("wineboot", "--init"); err != nil {
		t.Fatalf("wineboot: %v\n%s", err, out)
	}
	// Go 1.22+ loads bcryptprimitives.dll from System32 (Windows 10 has
	// it; Wine 8 has not): the stand-in goes there.
	shim, err := os.ReadFile(filepath.Join(dir, "bcryptprimitives.dll"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(prefix, "drive_c", "windows", "system32", "bcryptprimitives.dll"), shim, 0o644); err != nil {
		t.Fatalf("installing the bcryptprimitives stand-in: %v", err)
	}
	out, err := wineRun(filepath.Join(dir, "p11smoke.exe"), dll)
	if err != nil || !strings.Contains(out, "ok: 0 failures") {
		t.Errorf("p11smoke under Wine: %v\n%s", err, out)
	}
	t.Logf("p11smoke under Wine:\n%s", out)
}
