// cie-bench-harness: loads libcie-pkcs11 in a fresh process, as a browser
// does, and times the steps of a login and a signature. cie-bench compiles
// it with gcc at run time against cmd/cie-pkcs11/include.
//
//   cie-bench-harness MODULE READER PIN STEPS [pause]
//
// STEPS is a comma-separated list of
//   init   dlopen + C_GetFunctionList + C_Initialize + C_GetSlotList +
//          C_GetSlotInfo of every slot + C_GetTokenInfo of READER's slot
//          when it has a token (what NSS does at start-up)
//   login  C_OpenSession + C_Login(CKU_USER, PIN)
//   sign   C_FindObjects (private key) + C_SignInit(CKM_SHA256_RSA_PKCS) +
//          C_Sign of a short message
//   final  C_Finalize
//   floor  dlopen + the first call of CieBenchFloor: MODULE is then the
//          empty Go c-shared library of cie-bench (floor/floor.go.txt),
//          the Go runtime's start-up cost (READER and PIN are ignored)
// After each step it prints one line
//   step NAME WALL_NS CPU_NS MAXRSS_KB RV
// (CPU: user + system time of the whole process during the step, Go
// runtime threads included; MAXRSS: the process's peak resident set so
// far) and, with "pause", waits for a line on stdin before the next step,
// so that cie-bench can read the card's APDU counter in between. A step
// that fails ends the run with exit code 1 after its line.
#include "cie_pkcs11.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static void *lib;
static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot = (CK_SLOT_ID)-1;
static CK_SESSION_HANDLE session;
static const char *module, *reader, *pin;
static int signs;

static long long now_ns(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_ns(long *maxrss) {
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	*maxrss = ru.ru_maxrss;
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

// blank_equal reports whether the blank-padded PKCS#11 string field of
// size n holds s followed only by blanks.
static int blank_equal(const CK_UTF8CHAR *field, size_t n, const char *s) {
	size_t l = strlen(s);
	if (l > n || memcmp(field, s, l) != 0) return 0;
	for (size_t i = l; i < n; i++)
		if (field[i] != ' ') return 0;
	return 1;
}

static CK_RV step_init(void) {
	lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return CKR_GENERAL_ERROR;
	}
	CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
	if (!gfl) return CKR_GENERAL_ERROR;
	CK_RV rv = gfl(&p11);
	if (rv != CKR_OK) return rv;
	CK_C_INITIALIZE_ARGS a;
	memset(&a, 0, sizeof a);
	a.flags = CKF_OS_LOCKING_OK;
	if ((rv = p11->C_Initialize(&a)) != CKR_OK) return rv;
	CK_SLOT_ID slots[32];
	CK_ULONG n = 32;
	if ((rv = p11->C_GetSlotList(CK_FALSE, slots, &n)) != CKR_OK) return rv;
	for (CK_ULONG i = 0; i < n; i++) {
		CK_SLOT_INFO si;
		if ((rv = p11->C_GetSlotInfo(slots[i], &si)) != CKR_OK) return rv;
		if (!blank_equal(si.slotDescription, sizeof si.slotDescription, reader)) continue;
		slot = slots[i];
		if (si.flags & CKF_TOKEN_PRESENT) {
			CK_TOKEN_INFO ti;
			if ((rv = p11->C_GetTokenInfo(slot, &ti)) != CKR_OK) return rv;
		}
	}
	if (slot == (CK_SLOT_ID)-1) {
		fprintf(stderr, "no slot for reader %s\n", reader);
		return CKR_SLOT_ID_INVALID;
	}
	return CKR_OK;
}

static CK_RV step_floor(void) {
	lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		fprintf(stderr, "dlopen: %s\n", dlerror());
		return CKR_GENERAL_ERROR;
	}
	int (*f)(void) = (int (*)(void))dlsym(lib, "CieBenchFloor");
	if (!f || f() != 0) return CKR_GENERAL_ERROR;
	return CKR_OK;
}

static CK_RV step_login(void) {
	CK_RV rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &session);
	if (rv != CKR_OK) return rv;
	return p11->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_RV step_sign(void) {
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
	CK_OBJECT_HANDLE key = 0;
	CK_ULONG n = 0;
	CK_RV rv = p11->C_FindObjectsInit(session, &t, 1);
	if (rv != CKR_OK) return rv;
	rv = p11->C_FindObjects(session, &key, 1, &n);
	p11->C_FindObjectsFinal(session);
	if (rv != CKR_OK) return rv;
	if (n != 1) return CKR_KEY_HANDLE_INVALID;
	CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
	if ((rv = p11->C_SignInit(session, &m, key)) != CKR_OK) return rv;
	char msg[64];
	snprintf(msg, sizeof msg, "cie-bench signature %d", ++signs);
	CK_BYTE sig[512];
	CK_ULONG len = sizeof sig;
	rv = p11->C_Sign(session, (CK_BYTE_PTR)msg, strlen(msg), sig, &len);
	if (rv == CKR_OK && len != 256) return CKR_SIGNATURE_LEN_RANGE;
	return rv;
}

int main(int argc, char **argv) {
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 5) {
		fprintf(stderr, "usage: cie-bench-harness MODULE READER PIN STEPS [pause]\n");
		return 2;
	}
	module = argv[1];
	reader = argv[2];
	pin = argv[3];
	int pause = argc > 5 && strcmp(argv[5], "pause") == 0;
	char *steps = strdup(argv[4]);
	for (char *name = strtok(steps, ","); name; name = strtok(NULL, ",")) {
		long rss0, rss1;
		long long c0 = cpu_ns(&rss0), t0 = now_ns();
		CK_RV rv;
		if (strcmp(name, "init") == 0) rv = step_init();
		else if (strcmp(name, "login") == 0) rv = step_login();
		else if (strcmp(name, "sign") == 0) rv = step_sign();
		else if (strcmp(name, "final") == 0) rv = p11->C_Finalize(NULL);
		else if (strcmp(name, "floor") == 0) rv = step_floor();
		else {
			fprintf(stderr, "unknown step %s\n", name);
			return 2;
		}
		long long t1 = now_ns(), c1 = cpu_ns(&rss1);
		printf("step %s %lld %lld %ld 0x%lx\n", name, t1 - t0, c1 - c0, rss1, (unsigned long)rv);
		if (rv != CKR_OK) return 1;
		if (pause) {
			char line[16];
			if (!fgets(line, sizeof line, stdin)) return 3;
		}
	}
	return 0;
}
