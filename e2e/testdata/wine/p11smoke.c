// p11smoke: loads libcie-pkcs11.dll the way a Windows application does
// (LoadLibrary, GetProcAddress) and calls it through the packed PKCS#11
// structs of the Windows ABI. Run under Wine by e2e/msi_test.go; no reader
// is needed (it checks the answers that do not depend on a card). Exit
// status 0: every check passed; each failure is printed.
#include <windows.h>
#include <stdio.h>
#include <string.h>

#include "cie_pkcs11.h"

static int failures;

#define CHECK(cond, ...)                                                       \
	do {                                                                       \
		if (!(cond)) {                                                         \
			failures++;                                                        \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);                        \
			printf(__VA_ARGS__);                                               \
			printf("\n");                                                      \
		}                                                                      \
	} while (0)

int main(int argc, char **argv) {
	if (argc != 2) {
		printf("usage: p11smoke DLL\n");
		return 2;
	}
	HMODULE h = LoadLibraryA(argv[1]);
	if (h == NULL) {
		printf("FAIL LoadLibrary(%s): error %lu\n", argv[1], GetLastError());
		return 1;
	}
	CK_C_GetFunctionList getFunctionList = (CK_C_GetFunctionList)(void *)GetProcAddress(h, "C_GetFunctionList");
	CK_C_GetInterface getInterface = (CK_C_GetInterface)(void *)GetProcAddress(h, "C_GetInterface");
	if (getFunctionList == NULL || getInterface == NULL) {
		printf("FAIL C_GetFunctionList or C_GetInterface not exported\n");
		return 1;
	}
	CK_FUNCTION_LIST_PTR f = NULL;
	CK_RV rv = getFunctionList(&f);
	CHECK(rv == CKR_OK && f != NULL, "C_GetFunctionList: %#lx", rv);
	if (f == NULL) return 1;
	CHECK(f->version.major == 2 && f->version.minor == 40, "function list version %d.%d", f->version.major, f->version.minor);
	CHECK((void *)f->C_GetFunctionList == (void *)getFunctionList, "the list's C_GetFunctionList is not the exported one");

	CK_INFO info;
	rv = f->C_GetInfo(&info);
	CHECK(rv == CKR_CRYPTOKI_NOT_INITIALIZED, "C_GetInfo before C_Initialize: %#lx", rv);

	rv = f->C_Initialize(NULL);
	CHECK(rv == CKR_OK, "C_Initialize: %#lx", rv);
	memset(&info, 0xAA, sizeof info); // every field must be written
	rv = f->C_GetInfo(&info);
	CHECK(rv == CKR_OK, "C_GetInfo: %#lx", rv);
	CHECK(memcmp(info.manufacturerID, "CIE Desktop ", 12) == 0, "manufacturerID %.32s", info.manufacturerID);
	CHECK(info.flags == 0, "flags %#lx, want 0 (offset 34 in the packed struct)", info.flags);
	CHECK(info.libraryDescription[0] != 0xAA && info.libraryDescription[31] == ' ', "libraryDescription %.32s", info.libraryDescription);
	CHECK(info.libraryVersion.major != 0xAA && info.libraryVersion.minor != 0xAA, "libraryVersion %d.%d", info.libraryVersion.major, info.libraryVersion.minor);
	printf("C_GetInfo: %.32s / %.32s %d.%d\n", info.manufacturerID, info.libraryDescription, info.libraryVersion.major, info.libraryVersion.minor);

	CK_ULONG n = 99;
	rv = f->C_GetSlotList(CK_FALSE, NULL, &n);
	CHECK(rv == CKR_OK && n < 99, "C_GetSlotList: %#lx, %lu slots", rv, n);
	printf("C_GetSlotList: %lu slots\n", n);

	// A template and a mechanism cross the boundary (pValue and pParameter
	// at offset 4): the session is unknown, so both must say so.
	CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
	CK_ATTRIBUTE tmpl[2] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, NULL, 0}};
	rv = f->C_FindObjectsInit(0x7777, tmpl, 2);
	CHECK(rv == CKR_SESSION_HANDLE_INVALID, "C_FindObjectsInit on no session: %#lx", rv);
	CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
	rv = f->C_SignInit(0x7777, &mech, 1);
	CHECK(rv == CKR_SESSION_HANDLE_INVALID, "C_SignInit on no session: %#lx", rv);

	CK_INTERFACE_PTR iface = NULL;
	rv = getInterface(NULL, NULL, &iface, 0);
	CHECK(rv == CKR_OK && iface != NULL, "C_GetInterface: %#lx", rv);
	if (iface != NULL) {
		CK_VERSION *v = (CK_VERSION *)iface->pFunctionList;
		CHECK(strcmp((char *)iface->pInterfaceName, "PKCS 11") == 0 && v->major == 3 && v->minor == 0,
		      "default interface %s %d.%d", (char *)iface->pInterfaceName, v->major, v->minor);
	}

	rv = f->C_Finalize(NULL);
	CHECK(rv == CKR_OK, "C_Finalize: %#lx", rv);
	rv = f->C_GetInfo(&info);
	CHECK(rv == CKR_CRYPTOKI_NOT_INITIALIZED, "C_GetInfo after C_Finalize: %#lx", rv);

	printf("%s: %d failures\n", failures ? "FAIL" : "ok", failures);
	return failures ? 1 : 0;
}
