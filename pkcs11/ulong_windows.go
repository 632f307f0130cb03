//go:build windows

package pkcs11

// ulongSize is sizeof(CK_ULONG), C's unsigned long: 32 bits on Windows
// (LLP64), whatever the pointer size.
const ulongSize = 4
