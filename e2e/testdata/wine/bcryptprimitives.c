// A stand-in for Windows' bcryptprimitives.dll, which Wine 8 (Debian 12)
// lacks and the Go runtime (1.22 and later) loads from System32 for
// ProcessPrng. For tests under Wine only; never shipped.
#include <windows.h>
#include <ntsecapi.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T n) {
	while (n > 0) {
		ULONG c = n > 0x10000000 ? 0x10000000 : (ULONG)n;
		if (!RtlGenRandom(data, c)) return FALSE;
		data += c;
		n -= c;
	}
	return TRUE;
}
