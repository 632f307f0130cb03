package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// field is one offsetof check; an empty name checks the struct's size.
type field struct {
	name   string
	offset int
}

// layout is the ABI of the PKCS#11 structs on one target, as the callers
// (NSS, p11-kit, OpenSC's pkcs11-tool, …) compile them: on Linux the
// natural alignment with an 8-byte CK_ULONG, on Windows the 1-byte packing
// the specification requires (pkcs11.h, "#pragma pack(push, cryptoki,
// 1)") with a 4-byte CK_ULONG (unsigned long is 32 bits on LLP64).
// Pointers are 8 bytes on both.
type layout struct {
	goos    string
	cc      string // the C compiler for the target
	ulong   int
	structs map[string][]field
}

// fnOffset is the offset of the n-th function pointer (0 = C_Initialize)
// in CK_FUNCTION_LIST and CK_FUNCTION_LIST_3_0, after the CK_VERSION.
func fnOffset(first, n int) int { return first + 8*n }

var layouts = []layout{
	{
		goos: "linux", cc: "gcc", ulong: 8,
		structs: map[string][]field{
			"CK_VERSION": {{"", 2}, {"major", 0}, {"minor", 1}},
			"CK_INFO": {{"", 88}, {"cryptokiVersion", 0}, {"manufacturerID", 2}, {"flags", 40},
				{"libraryDescription", 48}, {"libraryVersion", 80}},
			"CK_SLOT_INFO": {{"", 112}, {"slotDescription", 0}, {"manufacturerID", 64}, {"flags", 96},
				{"hardwareVersion", 104}, {"firmwareVersion", 106}},
			"CK_TOKEN_INFO": {{"", 208}, {"label", 0}, {"manufacturerID", 32}, {"model", 64}, {"serialNumber", 80},
				{"flags", 96}, {"ulMaxSessionCount", 104}, {"ulSessionCount", 112}, {"ulMaxRwSessionCount", 120},
				{"ulRwSessionCount", 128}, {"ulMaxPinLen", 136}, {"ulMinPinLen", 144}, {"ulTotalPublicMemory", 152},
				{"ulFreePublicMemory", 160}, {"ulTotalPrivateMemory", 168}, {"ulFreePrivateMemory", 176},
				{"hardwareVersion", 184}, {"firmwareVersion", 186}, {"utcTime", 188}},
			"CK_SESSION_INFO":      {{"", 32}, {"slotID", 0}, {"state", 8}, {"flags", 16}, {"ulDeviceError", 24}},
			"CK_MECHANISM_INFO":    {{"", 24}, {"ulMinKeySize", 0}, {"ulMaxKeySize", 8}, {"flags", 16}},
			"CK_ATTRIBUTE":         {{"", 24}, {"type", 0}, {"pValue", 8}, {"ulValueLen", 16}},
			"CK_MECHANISM":         {{"", 24}, {"mechanism", 0}, {"pParameter", 8}, {"ulParameterLen", 16}},
			"CK_C_INITIALIZE_ARGS": {{"", 48}, {"CreateMutex", 0}, {"UnlockMutex", 24}, {"flags", 32}, {"pReserved", 40}},
			"CK_INTERFACE":         {{"", 24}, {"pInterfaceName", 0}, {"pFunctionList", 8}, {"flags", 16}},
			"CK_FUNCTION_LIST": {{"", fnOffset(8, 68)}, {"version", 0}, {"C_Initialize", fnOffset(8, 0)},
				{"C_GetFunctionList", fnOffset(8, 3)}, {"C_Login", fnOffset(8, 18)}, {"C_SignInit", fnOffset(8, 42)},
				{"C_WaitForSlotEvent", fnOffset(8, 67)}},
			"CK_FUNCTION_LIST_3_0": {{"", fnOffset(8, 92)}, {"C_WaitForSlotEvent", fnOffset(8, 67)},
				{"C_GetInterfaceList", fnOffset(8, 68)}, {"C_MessageVerifyFinal", fnOffset(8, 91)}},
		},
	},
	{
		goos: "windows", cc: "x86_64-w64-mingw32-gcc", ulong: 4,
		structs: map[string][]field{
			"CK_VERSION": {{"", 2}, {"major", 0}, {"minor", 1}},
			"CK_INFO": {{"", 72}, {"cryptokiVersion", 0}, {"manufacturerID", 2}, {"flags", 34},
				{"libraryDescription", 38}, {"libraryVersion", 70}},
			"CK_SLOT_INFO": {{"", 104}, {"slotDescription", 0}, {"manufacturerID", 64}, {"flags", 96},
				{"hardwareVersion", 100}, {"firmwareVersion", 102}},
			"CK_TOKEN_INFO": {{"", 160}, {"label", 0}, {"manufacturerID", 32}, {"model", 64}, {"serialNumber", 80},
				{"flags", 96}, {"ulMaxSessionCount", 100}, {"ulSessionCount", 104}, {"ulMaxRwSessionCount", 108},
				{"ulRwSessionCount", 112}, {"ulMaxPinLen", 116}, {"ulMinPinLen", 120}, {"ulTotalPublicMemory", 124},
				{"ulFreePublicMemory", 128}, {"ulTotalPrivateMemory", 132}, {"ulFreePrivateMemory", 136},
				{"hardwareVersion", 140}, {"firmwareVersion", 142}, {"utcTime", 144}},
			"CK_SESSION_INFO":      {{"", 16}, {"slotID", 0}, {"state", 4}, {"flags", 8}, {"ulDeviceError", 12}},
			"CK_MECHANISM_INFO":    {{"", 12}, {"ulMinKeySize", 0}, {"ulMaxKeySize", 4}, {"flags", 8}},
			"CK_ATTRIBUTE":         {{"", 16}, {"type", 0}, {"pValue", 4}, {"ulValueLen", 12}},
			"CK_MECHANISM":         {{"", 16}, {"mechanism", 0}, {"pParameter", 4}, {"ulParameterLen", 12}},
			"CK_C_INITIALIZE_ARGS": {{"", 44}, {"CreateMutex", 0}, {"UnlockMutex", 24}, {"flags", 32}, {"pReserved", 36}},
			"CK_INTERFACE":         {{"", 20}, {"pInterfaceName", 0}, {"pFunctionList", 8}, {"flags", 16}},
			"CK_FUNCTION_LIST": {{"", fnOffset(2, 68)}, {"version", 0}, {"C_Initialize", fnOffset(2, 0)},
				{"C_GetFunctionList", fnOffset(2, 3)}, {"C_Login", fnOffset(2, 18)}, {"C_SignInit", fnOffset(2, 42)},
				{"C_WaitForSlotEvent", fnOffset(2, 67)}},
			"CK_FUNCTION_LIST_3_0": {{"", fnOffset(2, 92)}, {"C_WaitForSlotEvent", fnOffset(2, 67)},
				{"C_GetInterfaceList", fnOffset(2, 68)}, {"C_MessageVerifyFinal", fnOffset(2, 91)}},
		},
	},
}

// layoutSource is a C file of _Static_asserts on l.
func layoutSource(l layout) string {
	var b strings.Builder
	b.WriteString("#include <stddef.h>\n#include \"cie_pkcs11.h\"\n\n")
	fmt.Fprintf(&b, "_Static_assert(sizeof(CK_ULONG) == %d, \"sizeof CK_ULONG\");\n", l.ulong)
	b.WriteString("_Static_assert(sizeof(CK_VOID_PTR) == 8, \"sizeof CK_VOID_PTR\");\n")
	for name, fields := range l.structs {
		for _, f := range fields {
			if f.name == "" {
				fmt.Fprintf(&b, "_Static_assert(sizeof(%s) == %d, \"sizeof %s\");\n", name, f.offset, name)
				continue
			}
			fmt.Fprintf(&b, "_Static_assert(offsetof(%s, %s) == %d, \"offsetof %s.%s\");\n", name, f.name, f.offset, name, f.name)
		}
	}
	return b.String()
}

// TestStructLayout compiles static assertions on the size and field
// offsets of the PKCS#11 structs with the C compiler of each target, with
// the module's own header (include/cie_pkcs11.h): Linux with gcc, Windows
// with mingw-w64. A compiler that is not installed skips its target (CI
// installs both: scripts/install-deps.sh).
func TestStructLayout(t *testing.T) {
	inc, err := filepath.Abs("include")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layouts {
		t.Run(l.goos, func(t *testing.T) {
			cc, err := exec.LookPath(l.cc)
			if err != nil {
				t.Skipf("%s not installed: %v", l.cc, err)
			}
			src := filepath.Join(t.TempDir(), "layout.c")
			if err := os.WriteFile(src, []byte(layoutSource(l)), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(cc, "-std=c11", "-fsyntax-only", "-Wall", "-Werror", "-I", inc, src).CombinedOutput()
			if err != nil {
				t.Errorf("%s: the %s layout of the PKCS#11 structs is not the expected one: %v\n%s", l.cc, l.goos, err, out)
			}
		})
	}
}

// TestStructLayoutDetectsChange makes sure the assertions can fail: a
// layout with one wrong offset must not compile.
func TestStructLayoutDetectsChange(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	inc, _ := filepath.Abs("include")
	wrong := layout{ulong: 8, structs: map[string][]field{"CK_ATTRIBUTE": {{"pValue", 4}}}}
	src := filepath.Join(t.TempDir(), "layout.c")
	if err := os.WriteFile(src, []byte(layoutSource(wrong)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(cc, "-std=c11", "-fsyntax-only", "-I", inc, src).CombinedOutput()
	if err == nil {
		t.Fatal("a wrong offset compiled")
	}
	if !strings.Contains(string(out), "offsetof CK_ATTRIBUTE.pValue") {
		t.Errorf("the compiler did not name the wrong offset:\n%s", out)
	}
}
