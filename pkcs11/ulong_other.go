//go:build !windows

package pkcs11

import "strconv"

// ulongSize is sizeof(CK_ULONG), C's unsigned long: 64 bits on the LP64
// platforms (Linux, macOS amd64/arm64), 32 on 32-bit ones.
const ulongSize = strconv.IntSize / 8
