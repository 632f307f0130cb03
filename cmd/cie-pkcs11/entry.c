// entry.c — the C ABI of libcie-pkcs11: the PKCS#11 v2.40 and v3.0
// function tables in static C memory (cgo forbids handing C a pointer into
// Go memory it keeps), and one C_* entry point per function. Each entry
// point checks that the library is initialised in this process and that
// the pointers it must dereference are not NULL, then calls the Go
// function of the same name with a "go" prefix (exports.go), which
// recovers panics and maps errors. Functions the card cannot do answer
// here without entering Go.
//
// Fork: the Go runtime does not survive fork(): in the child only the
// forking thread exists and Go code may hang. The pid is recorded when the
// library is loaded and when C_Initialize succeeds; a call from another
// process (a forked child) answers CKR_CRYPTOKI_NOT_INITIALIZED, and
// C_Initialize there answers CKR_FUNCTION_FAILED, without entering Go.
// CKF_INTERFACE_FORK_SAFE is therefore never offered. Windows has no
// fork: there the pid checks always pass (mingw-w64 has getpid).

#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "_cgo_export.h"

static pid_t load_pid; // the process that loaded the library
static pid_t init_pid; // the process that initialised it; 0: not initialised

// Recording the pid is the only work done at load time.
__attribute__((constructor)) static void record_load_pid(void) { load_pid = getpid(); }

static int initialised(void) {
	pid_t p = __atomic_load_n(&init_pid, __ATOMIC_ACQUIRE);
	return p != 0 && p == getpid();
}

#define CHECK_INIT()                                                           \
	do {                                                                       \
		if (!initialised()) return CKR_CRYPTOKI_NOT_INITIALIZED;               \
	} while (0)

#define CHECK_ARG(cond)                                                        \
	do {                                                                       \
		if (!(cond)) return CKR_ARGUMENTS_BAD;                                 \
	} while (0)

// ---- General purpose ----

CK_DEFINE_FUNCTION(CK_RV, C_Initialize)(CK_VOID_PTR pInitArgs) {
	if (getpid() != load_pid) return CKR_FUNCTION_FAILED; // forked child
	if (pInitArgs != NULL_PTR) {
		CK_C_INITIALIZE_ARGS_PTR a = (CK_C_INITIALIZE_ARGS_PTR)pInitArgs;
		if (a->pReserved != NULL_PTR) return CKR_ARGUMENTS_BAD;
		int n = (a->CreateMutex != NULL_PTR) + (a->DestroyMutex != NULL_PTR) +
		        (a->LockMutex != NULL_PTR) + (a->UnlockMutex != NULL_PTR);
		if (n != 0 && n != 4) return CKR_ARGUMENTS_BAD;
		// The library locks with Go's own mutexes: it can use OS locking,
		// not the application's callbacks alone.
		if (n == 4 && !(a->flags & CKF_OS_LOCKING_OK)) return CKR_CANT_LOCK;
		// CKF_LIBRARY_CANT_CREATE_OS_THREADS is ignored: the Go runtime
		// always runs its own threads, and NSS passes the flag.
	}
	CK_RV rv = goInitialize();
	if (rv == CKR_OK) __atomic_store_n(&init_pid, getpid(), __ATOMIC_RELEASE);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_Finalize)(CK_VOID_PTR pReserved) {
	CHECK_INIT();
	CHECK_ARG(pReserved == NULL_PTR);
	CK_RV rv = goFinalize();
	if (rv == CKR_OK) __atomic_store_n(&init_pid, 0, __ATOMIC_RELEASE);
	return rv;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetInfo)(CK_INFO_PTR pInfo) {
	CHECK_INIT();
	CHECK_ARG(pInfo != NULL_PTR);
	return goGetInfo(pInfo);
}

// ---- Slots and tokens ----

CK_DEFINE_FUNCTION(CK_RV, C_GetSlotList)(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
	CHECK_INIT();
	CHECK_ARG(pulCount != NULL_PTR);
	return goGetSlotList(tokenPresent, pSlotList, pulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetSlotInfo)(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
	CHECK_INIT();
	CHECK_ARG(pInfo != NULL_PTR);
	return goGetSlotInfo(slotID, pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetTokenInfo)(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
	CHECK_INIT();
	CHECK_ARG(pInfo != NULL_PTR);
	return goGetTokenInfo(slotID, pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetMechanismList)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList, CK_ULONG_PTR pulCount) {
	CHECK_INIT();
	CHECK_ARG(pulCount != NULL_PTR);
	return goGetMechanismList(slotID, pMechanismList, pulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetMechanismInfo)(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
	CHECK_INIT();
	CHECK_ARG(pInfo != NULL_PTR);
	return goGetMechanismInfo(slotID, type, pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_InitToken)(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED; // the card is personalised by its issuer
}

CK_DEFINE_FUNCTION(CK_RV, C_InitPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
	CHECK_INIT();
	CHECK_ARG(pPin != NULL_PTR); // no protected authentication path
	return goInitPIN(hSession, pPin, ulPinLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_SetPIN)(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) {
	CHECK_INIT();
	CHECK_ARG(pOldPin != NULL_PTR && pNewPin != NULL_PTR);
	return goSetPIN(hSession, pOldPin, ulOldLen, pNewPin, ulNewLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_WaitForSlotEvent)(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved) {
	CHECK_INIT();
	CHECK_ARG(pSlot != NULL_PTR && pReserved == NULL_PTR);
	return goWaitForSlotEvent(flags, pSlot);
}

// ---- Sessions ----

CK_DEFINE_FUNCTION(CK_RV, C_OpenSession)(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession) {
	CHECK_INIT();
	CHECK_ARG(phSession != NULL_PTR);
	return goOpenSession(slotID, flags, phSession); // no notifications are sent
}

CK_DEFINE_FUNCTION(CK_RV, C_CloseSession)(CK_SESSION_HANDLE hSession) {
	CHECK_INIT();
	return goCloseSession(hSession);
}

CK_DEFINE_FUNCTION(CK_RV, C_CloseAllSessions)(CK_SLOT_ID slotID) {
	CHECK_INIT();
	return goCloseAllSessions(slotID);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetSessionInfo)(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
	CHECK_INIT();
	CHECK_ARG(pInfo != NULL_PTR);
	return goGetSessionInfo(hSession, pInfo);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetOperationState)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG_PTR pulOperationStateLen) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_DEFINE_FUNCTION(CK_RV, C_SetOperationState)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pOperationState, CK_ULONG ulOperationStateLen, CK_OBJECT_HANDLE hEncryptionKey, CK_OBJECT_HANDLE hAuthenticationKey) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_DEFINE_FUNCTION(CK_RV, C_Login)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
	CHECK_INIT();
	// A NULL PIN (with length 0) is the protected authentication path: the
	// module's PIN dialog, when it has one (package pkcs11, "Sign on demand").
	CHECK_ARG(pPin != NULL_PTR || ulPinLen == 0);
	return goLogin(hSession, userType, pPin, ulPinLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_Logout)(CK_SESSION_HANDLE hSession) {
	CHECK_INIT();
	return goLogout(hSession);
}

// ---- Objects ----

CK_DEFINE_FUNCTION(CK_RV, C_CreateObject)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phObject) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED; // the objects are the card's
}

CK_DEFINE_FUNCTION(CK_RV, C_CopyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_DEFINE_FUNCTION(CK_RV, C_DestroyObject)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetObjectSize)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
	CHECK_INIT();
	CHECK_ARG(pulSize != NULL_PTR);
	return goGetObjectSize(hSession, hObject, pulSize);
}

CK_DEFINE_FUNCTION(CK_RV, C_GetAttributeValue)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
	CHECK_INIT();
	CHECK_ARG(pTemplate != NULL_PTR || ulCount == 0);
	return goGetAttributeValue(hSession, hObject, pTemplate, ulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_SetAttributeValue)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_SUPPORTED;
}

CK_DEFINE_FUNCTION(CK_RV, C_FindObjectsInit)(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
	CHECK_INIT();
	CHECK_ARG(pTemplate != NULL_PTR || ulCount == 0);
	return goFindObjectsInit(hSession, pTemplate, ulCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_FindObjects)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
	CHECK_INIT();
	CHECK_ARG(pulObjectCount != NULL_PTR && (phObject != NULL_PTR || ulMaxObjectCount == 0));
	return goFindObjects(hSession, phObject, ulMaxObjectCount, pulObjectCount);
}

CK_DEFINE_FUNCTION(CK_RV, C_FindObjectsFinal)(CK_SESSION_HANDLE hSession) {
	CHECK_INIT();
	return goFindObjectsFinal(hSession);
}

// ---- Encryption, decryption, digests: not on this card's key ----

#define NOT_SUPPORTED_BODY                                                     \
	{                                                                          \
		CHECK_INIT();                                                          \
		return CKR_FUNCTION_NOT_SUPPORTED;                                     \
	}

CK_DEFINE_FUNCTION(CK_RV, C_EncryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_Encrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_EncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_EncryptFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastEncryptedPart, CK_ULONG_PTR pulLastEncryptedPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_Decrypt)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DigestInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_Digest)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DigestUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DigestKey)(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DigestFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) NOT_SUPPORTED_BODY

// ---- Signatures ----

CK_DEFINE_FUNCTION(CK_RV, C_SignInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
	CHECK_INIT();
	CHECK_ARG(pMechanism != NULL_PTR);
	CHECK_ARG(pMechanism->pParameter != NULL_PTR || pMechanism->ulParameterLen == 0);
	return goSignInit(hSession, pMechanism, hKey);
}

CK_DEFINE_FUNCTION(CK_RV, C_Sign)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
	CHECK_INIT();
	CHECK_ARG(pulSignatureLen != NULL_PTR && (pData != NULL_PTR || ulDataLen == 0));
	return goSign(hSession, pData, ulDataLen, pSignature, pulSignatureLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_SignUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
	CHECK_INIT();
	CHECK_ARG(pPart != NULL_PTR || ulPartLen == 0);
	return goSignUpdate(hSession, pPart, ulPartLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_SignFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
	CHECK_INIT();
	CHECK_ARG(pulSignatureLen != NULL_PTR);
	return goSignFinal(hSession, pSignature, pulSignatureLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_SignRecoverInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_SignRecover)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) NOT_SUPPORTED_BODY

// Verification is for the host (the public key is an object).
CK_DEFINE_FUNCTION(CK_RV, C_VerifyInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_Verify)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyFinal)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyRecoverInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyRecover)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen, CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) NOT_SUPPORTED_BODY

// ---- Dual-function, keys, random ----

CK_DEFINE_FUNCTION(CK_RV, C_DigestEncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptDigestUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_SignEncryptUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pPart, CK_ULONG ulPartLen, CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptVerifyUpdate)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen, CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_GenerateKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_GenerateKeyPair)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount, CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount, CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_WrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey, CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_UnwrapKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey, CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DeriveKey)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) NOT_SUPPORTED_BODY

// The token has no random number generator (no CKF_RNG): both answer
// CKR_RANDOM_NO_RNG, which is what tells callers (pkcs11-tool --test) to
// skip the RNG rather than count an error.
CK_DEFINE_FUNCTION(CK_RV, C_SeedRandom)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) {
	CHECK_INIT();
	return CKR_RANDOM_NO_RNG;
}

CK_DEFINE_FUNCTION(CK_RV, C_GenerateRandom)(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen) {
	CHECK_INIT();
	return CKR_RANDOM_NO_RNG;
}

// Legacy parallel functions (PKCS#11 base §5.20).
CK_DEFINE_FUNCTION(CK_RV, C_GetFunctionStatus)(CK_SESSION_HANDLE hSession) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_PARALLEL;
}

CK_DEFINE_FUNCTION(CK_RV, C_CancelFunction)(CK_SESSION_HANDLE hSession) {
	CHECK_INIT();
	return CKR_FUNCTION_NOT_PARALLEL;
}

// ---- PKCS#11 3.0 ----

CK_DEFINE_FUNCTION(CK_RV, C_LoginUser)(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pUsername, CK_ULONG ulUsernameLen) {
	CHECK_INIT();
	CHECK_ARG(pPin != NULL_PTR || ulPinLen == 0);
	// The CIE has one user without a name: a user name is not accepted.
	CHECK_ARG(pUsername == NULL_PTR || ulUsernameLen == 0);
	return goLogin(hSession, userType, pPin, ulPinLen);
}

CK_DEFINE_FUNCTION(CK_RV, C_SessionCancel)(CK_SESSION_HANDLE hSession, CK_FLAGS flags) {
	CHECK_INIT();
	return goSessionCancel(hSession, flags);
}

CK_DEFINE_FUNCTION(CK_RV, C_MessageEncryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_EncryptMessage)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pPlaintext, CK_ULONG ulPlaintextLen, CK_BYTE_PTR pCiphertext, CK_ULONG_PTR pulCiphertextLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_EncryptMessageBegin)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_EncryptMessageNext)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG ulPlaintextPartLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG_PTR pulCiphertextPartLen, CK_FLAGS flags) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageEncryptFinal)(CK_SESSION_HANDLE hSession) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageDecryptInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptMessage)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen, CK_BYTE_PTR pCiphertext, CK_ULONG ulCiphertextLen, CK_BYTE_PTR pPlaintext, CK_ULONG_PTR pulPlaintextLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptMessageBegin)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pAssociatedData, CK_ULONG ulAssociatedDataLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_DecryptMessageNext)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pCiphertextPart, CK_ULONG ulCiphertextPartLen, CK_BYTE_PTR pPlaintextPart, CK_ULONG_PTR pulPlaintextPartLen, CK_FLAGS flags) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageDecryptFinal)(CK_SESSION_HANDLE hSession) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageSignInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_SignMessage)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_SignMessageBegin)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_SignMessageNext)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageSignFinal)(CK_SESSION_HANDLE hSession) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageVerifyInit)(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyMessage)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyMessageBegin)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_VerifyMessageNext)(CK_SESSION_HANDLE hSession, CK_VOID_PTR pParameter, CK_ULONG ulParameterLen, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) NOT_SUPPORTED_BODY
CK_DEFINE_FUNCTION(CK_RV, C_MessageVerifyFinal)(CK_SESSION_HANDLE hSession) NOT_SUPPORTED_BODY

// ---- Function tables and interfaces ----

// The member lists come from the headers, so that no entry can be out of
// place: pkcs11f.h lists the v2.40 functions in table order, and
// CIE_P11_30_FUNCTIONS the v3.0 additions.
#define CK_PKCS11_FUNCTION_INFO(name) .name = name,
#define CIE_P11_30_INIT(name, args) .name = name,

static CK_FUNCTION_LIST function_list_2_40 = {
	.version = {2, 40},
#include "pkcs11f.h"
};

static CK_FUNCTION_LIST_3_0 function_list_3_0 = {
	.version = {3, 0},
#include "pkcs11f.h"
	CIE_P11_30_FUNCTIONS(CIE_P11_30_INIT)
};

#undef CK_PKCS11_FUNCTION_INFO
#undef CIE_P11_30_INIT

static CK_CHAR interface_name[] = "PKCS 11";

// The default (3.0) interface first: C_GetInterface with no name and no
// version returns it.
static CK_INTERFACE interfaces[] = {
	{interface_name, &function_list_3_0, 0},
	{interface_name, &function_list_2_40, 0},
};

#define N_INTERFACES (sizeof interfaces / sizeof interfaces[0])

CK_DEFINE_FUNCTION(CK_RV, C_GetFunctionList)(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
	CHECK_ARG(ppFunctionList != NULL_PTR);
	*ppFunctionList = &function_list_2_40;
	return CKR_OK;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetInterfaceList)(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) {
	CHECK_ARG(pulCount != NULL_PTR);
	if (pInterfacesList == NULL_PTR) {
		*pulCount = N_INTERFACES;
		return CKR_OK;
	}
	if (*pulCount < N_INTERFACES) {
		*pulCount = N_INTERFACES;
		return CKR_BUFFER_TOO_SMALL;
	}
	memcpy(pInterfacesList, interfaces, sizeof interfaces);
	*pulCount = N_INTERFACES;
	return CKR_OK;
}

CK_DEFINE_FUNCTION(CK_RV, C_GetInterface)(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion, CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags) {
	CHECK_ARG(ppInterface != NULL_PTR);
	if (pInterfaceName != NULL_PTR && strcmp((const char *)pInterfaceName, (const char *)interface_name) != 0) return CKR_ARGUMENTS_BAD;
	// No interface has flags: in particular none is fork-safe.
	if (flags != 0) return CKR_ARGUMENTS_BAD;
	for (size_t i = 0; i < N_INTERFACES; i++) {
		CK_VERSION *v = (CK_VERSION *)interfaces[i].pFunctionList; // each list starts with its version
		if (pVersion == NULL_PTR || (pVersion->major == v->major && pVersion->minor == v->minor)) {
			*ppInterface = &interfaces[i];
			return CKR_OK;
		}
	}
	return CKR_ARGUMENTS_BAD;
}
