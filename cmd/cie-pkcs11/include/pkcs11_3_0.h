/* pkcs11_3_0.h — the part of PKCS #11 v3.0 that libcie-pkcs11 needs on top
 * of the OASIS v2.40 headers next to this file (pkcs11.h, pkcs11t.h,
 * pkcs11f.h, copied unchanged from github.com/miekg/pkcs11 v1.1.2).
 *
 * Written for CIE Desktop from the PKCS #11 Cryptographic Token Interface
 * Base Specification Version 3.0 (OASIS Standard, 15 June 2020), sections
 * 3.6 (CK_INTERFACE), 5.2 (C_GetInterfaceList, C_GetInterface), 5.6
 * (C_SessionCancel, C_LoginUser) and 5.8–5.15 (message-based functions).
 * The order of the members of CK_FUNCTION_LIST_3_0 is the specification's
 * and must not change: applications index the table by position.
 *
 * Include it after pkcs11.h.
 */

#ifndef CIE_PKCS11_3_0_H
#define CIE_PKCS11_3_0_H 1

#ifdef __cplusplus
extern "C" {
#endif

/* Flags of CK_INTERFACE (§3.6). */
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL

/* Mechanism flags new in v3.0 (§3.5), also used by C_SessionCancel. */
#define CKF_MESSAGE_ENCRYPT     0x00000002UL
#define CKF_MESSAGE_DECRYPT     0x00000004UL
#define CKF_MESSAGE_SIGN        0x00000008UL
#define CKF_MESSAGE_VERIFY      0x00000010UL
#define CKF_MULTI_MESSAGE       0x00000020UL
#define CKF_FIND_OBJECTS        0x00000040UL

/* Flags of C_EncryptMessageNext and friends (§5.8). */
#define CKF_END_OF_MESSAGE      0x00000001UL

/* Return values new in v3.0 (§3.1 table). */
#define CKR_OPERATION_CANCEL_FAILED 0x00000202UL

typedef struct CK_INTERFACE {
  CK_CHAR     *pInterfaceName;
  CK_VOID_PTR pFunctionList;
  CK_FLAGS    flags;
} CK_INTERFACE;

typedef CK_INTERFACE CK_PTR CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR CK_PTR CK_INTERFACE_PTR_PTR;

typedef struct CK_FUNCTION_LIST_3_0 CK_FUNCTION_LIST_3_0;
typedef CK_FUNCTION_LIST_3_0 CK_PTR CK_FUNCTION_LIST_3_0_PTR;
typedef CK_FUNCTION_LIST_3_0_PTR CK_PTR CK_FUNCTION_LIST_3_0_PTR_PTR;

/* The v3.0 entry points: prototypes and pointer types. */
#define CIE_P11_30_FUNCTIONS(X) \
  X(C_GetInterfaceList, (CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount)) \
  X(C_GetInterface, (CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags)) \
  X(C_LoginUser, (CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen)) \
  X(C_SessionCancel, (CK_SESSION_HANDLE hSession, CK_FLAGS flags)) \
  X(C_MessageEncryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)) \
  X(C_EncryptMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen)) \
  X(C_EncryptMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen)) \
  X(C_EncryptMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags)) \
  X(C_MessageEncryptFinal, (CK_SESSION_HANDLE hSession)) \
  X(C_MessageDecryptInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)) \
  X(C_DecryptMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen)) \
  X(C_DecryptMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen)) \
  X(C_DecryptMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags)) \
  X(C_MessageDecryptFinal, (CK_SESSION_HANDLE hSession)) \
  X(C_MessageSignInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)) \
  X(C_SignMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)) \
  X(C_SignMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen)) \
  X(C_SignMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen)) \
  X(C_MessageSignFinal, (CK_SESSION_HANDLE hSession)) \
  X(C_MessageVerifyInit, (CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey)) \
  X(C_VerifyMessage, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)) \
  X(C_VerifyMessageBegin, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen)) \
  X(C_VerifyMessageNext, (CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)) \
  X(C_MessageVerifyFinal, (CK_SESSION_HANDLE hSession))

#define CIE_P11_30_DECLARE(name, args) \
  extern CK_DECLARE_FUNCTION(CK_RV, name) args; \
  typedef CK_DECLARE_FUNCTION_POINTER(CK_RV, CK_##name) args;
CIE_P11_30_FUNCTIONS(CIE_P11_30_DECLARE)
#undef CIE_P11_30_DECLARE

/* CK_FUNCTION_LIST_3_0: the v2.40 list, in its order, then the v3.0
 * functions in the order above. */
#define CK_PKCS11_FUNCTION_INFO(name) CK_##name name;
#define CIE_P11_30_MEMBER(name, args) CK_##name name;
struct CK_FUNCTION_LIST_3_0 {
  CK_VERSION version;
#include "pkcs11f.h"
  CIE_P11_30_FUNCTIONS(CIE_P11_30_MEMBER)
};
#undef CIE_P11_30_MEMBER
#undef CK_PKCS11_FUNCTION_INFO

#ifdef __cplusplus
}
#endif

#endif /* CIE_PKCS11_3_0_H */
