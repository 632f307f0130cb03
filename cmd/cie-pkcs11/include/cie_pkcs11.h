/* cie_pkcs11.h — the one header the C code of libcie-pkcs11 includes: the
 * five platform macros the OASIS headers require (pkcs11.h, "Before
 * including this file"), their 1-byte packing on Windows, the OASIS v2.40
 * headers and the v3.0 addendum.
 */

#ifndef CIE_PKCS11_H
#define CIE_PKCS11_H 1

#ifdef _WIN32
#define CK_EXPORT __declspec(dllexport)
#pragma pack(push, cryptoki, 1)
#else
#define CK_EXPORT __attribute__((visibility("default")))
#endif

#define CK_PTR *
#define CK_DEFINE_FUNCTION(returnType, name) CK_EXPORT returnType name
#define CK_DECLARE_FUNCTION(returnType, name) returnType name
#define CK_DECLARE_FUNCTION_POINTER(returnType, name) returnType (* name)
#define CK_CALLBACK_FUNCTION(returnType, name) returnType (* name)
#ifndef NULL_PTR
#define NULL_PTR 0
#endif

#include "pkcs11.h"
#include "pkcs11_3_0.h"

#ifdef _WIN32
#pragma pack(pop, cryptoki)
#endif

/* Accessors for the struct fields Go cannot name on Windows. With 1-byte
 * packing and a 32-bit CK_ULONG, CK_INFO.flags (offset 34),
 * CK_ATTRIBUTE.pValue (offset 4) and CK_MECHANISM.pParameter (offset 4)
 * are misaligned for Go, and cgo leaves misaligned fields out of its Go
 * view of a struct (the other fields keep their C offsets: the Go view has
 * padding in their place, and the same size). The Go code reads and
 * writes these three fields through these functions on every platform.
 * layout_test.go checks the offsets for both targets. */
static inline void cie_set_info_flags(CK_INFO_PTR p, CK_FLAGS flags) { p->flags = flags; }
static inline void *cie_attribute_value(CK_ATTRIBUTE_PTR a) { return a->pValue; }
static inline void *cie_mechanism_parameter(CK_MECHANISM_PTR m) { return m->pParameter; }

#endif /* CIE_PKCS11_H */
