package main

/*
#cgo CFLAGS: -I${SRCDIR}/include
#include "cie_pkcs11.h"
*/
import "C"

import "unsafe"

// The Go view of every PKCS#11 struct the Go code reads, writes or indexes
// as an array must have the size of the C struct: cgo leaves out the
// fields Go cannot place at their C offset (on Windows, with 1-byte
// packing, CK_INFO.flags, CK_ATTRIBUTE.pValue and CK_MECHANISM.pParameter;
// cie_pkcs11.h has accessors for them) and pads their place, so equal
// sizes mean that the named fields are at their C offsets and that
// unsafe.Slice strides match. Each pair of array types below fails to
// compile when the sizes differ (one of the two lengths is negative).
// layout_test.go checks the C offsets themselves for Linux and Windows.
var (
	_ [unsafe.Sizeof(C.CK_VERSION{}) - C.sizeof_CK_VERSION]struct{}
	_ [C.sizeof_CK_VERSION - unsafe.Sizeof(C.CK_VERSION{})]struct{}
	_ [unsafe.Sizeof(C.CK_INFO{}) - C.sizeof_CK_INFO]struct{}
	_ [C.sizeof_CK_INFO - unsafe.Sizeof(C.CK_INFO{})]struct{}
	_ [unsafe.Sizeof(C.CK_SLOT_INFO{}) - C.sizeof_CK_SLOT_INFO]struct{}
	_ [C.sizeof_CK_SLOT_INFO - unsafe.Sizeof(C.CK_SLOT_INFO{})]struct{}
	_ [unsafe.Sizeof(C.CK_TOKEN_INFO{}) - C.sizeof_CK_TOKEN_INFO]struct{}
	_ [C.sizeof_CK_TOKEN_INFO - unsafe.Sizeof(C.CK_TOKEN_INFO{})]struct{}
	_ [unsafe.Sizeof(C.CK_SESSION_INFO{}) - C.sizeof_CK_SESSION_INFO]struct{}
	_ [C.sizeof_CK_SESSION_INFO - unsafe.Sizeof(C.CK_SESSION_INFO{})]struct{}
	_ [unsafe.Sizeof(C.CK_MECHANISM_INFO{}) - C.sizeof_CK_MECHANISM_INFO]struct{}
	_ [C.sizeof_CK_MECHANISM_INFO - unsafe.Sizeof(C.CK_MECHANISM_INFO{})]struct{}
	_ [unsafe.Sizeof(C.CK_ATTRIBUTE{}) - C.sizeof_CK_ATTRIBUTE]struct{}
	_ [C.sizeof_CK_ATTRIBUTE - unsafe.Sizeof(C.CK_ATTRIBUTE{})]struct{}
	_ [unsafe.Sizeof(C.CK_MECHANISM{}) - C.sizeof_CK_MECHANISM]struct{}
	_ [C.sizeof_CK_MECHANISM - unsafe.Sizeof(C.CK_MECHANISM{})]struct{}
	_ [unsafe.Sizeof(C.CK_ULONG(0)) - C.sizeof_CK_ULONG]struct{}
	_ [C.sizeof_CK_ULONG - unsafe.Sizeof(C.CK_ULONG(0))]struct{}
)
