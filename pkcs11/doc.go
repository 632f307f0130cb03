// Package pkcs11 owns the PKCS#11 semantics of libcie-pkcs11 in pure Go:
// slots, tokens, sessions, objects, login, mechanisms and signatures, with
// Go types and an RV error for every failure. It has no cgo: the C ABI
// (function tables, C_* entry points, pointer checks, C_Initialize
// arguments, fork detection) lives in cmd/cie-pkcs11, which converts C
// arguments and calls a Module. The CK_* constants are generated from the
// headers that C layer is built with (go generate, internal/gen).
//
// # Readers and cards
//
// A Module gets its readers through a ReaderSource: PC/SC in the library
// (cmd/cie-pkcs11 adapts package pcsc, which this package never imports),
// simulated cards in tests. One slot per reader; a reader plugged in later
// gets the next slot ID, and one plugged in again gets its old ID. Slot
// events (C_WaitForSlotEvent) are reader and card changes since
// C_Initialize.
//
// C_GetSlotList, C_GetSlotInfo and C_GetTokenInfo talk to no card, only to
// the PC/SC service for presence. The token is made once per insertion, on
// the first call that needs it (C_GetTokenInfo, C_OpenSession,
// C_GetMechanismList):
//
//   - When the certificate cache names a card for the reader and the
//     reader shows that card's ATR (certcache.ReaderRecord), the token is
//     presented from the card's record: label, serial, model, certificate,
//     public key and the last PIN counters, with no APDU and no connection
//     (a browser's start-up costs the card nothing). The card is opened
//     with cie.OpenProfile and connected at the first operation that needs
//     it; a login then costs SELECT CIE, DH, DAPP and VERIFY. Cards of one
//     family share their ATR, so the card is only presumed to be the
//     recorded one until device authentication proves it (before any PIN
//     is sent). Another card found there (cie.ErrCardChanged: another
//     serial number or chip key, or a card that is not a CIE) is handled as
//     the recorded card's removal: the reader is cleared from its record and
//     the record is not presented again for this insertion, the token
//     dropped (its sessions end with CKR_DEVICE_REMOVED, the failing call
//     returns it too), a slot event is queued (waking a blocked
//     C_WaitForSlotEvent), and the next call opens the card that is really
//     there (CKR_TOKEN_NOT_RECOGNIZED when it is not a CIE).
//   - Otherwise the card is opened with cie.Open (family, EF.SN.ICC,
//     EF.ID_Servizi: 5 APDUs) and completed from its record when it has
//     one, or from the encrypted certificate entry of an older version.
//
// The PIN try counter is never read at start-up: the token flags come from
// the record and are updated, with the record, by every PIN command (a
// wrong PIN in one process shows in the next one's C_GetTokenInfo). A card
// that is not a CIE is CKR_TOKEN_NOT_RECOGNIZED for that insertion and is
// not probed again.
//
// # Token
//
// Label: the holder's name once the certificate is known, else
// "CIE <ID_Servizi>". Serial: ID_Servizi. Model: the chip family.
// Manufacturer: IPZS. Flags: LOGIN_REQUIRED, USER_PIN_INITIALIZED,
// TOKEN_INITIALIZED and the PIN/PUK counter flags (COUNT_LOW after a wrong
// entry, FINAL_TRY, LOCKED); never WRITE_PROTECTED. With sign on demand
// (below) PROTECTED_AUTHENTICATION_PATH replaces LOGIN_REQUIRED. PIN length
// 8..8. Every text field is blank-padded UTF-8.
//
// # Objects and pairing
//
// Three objects share one CKA_ID (SHA-1 of the modulus) and the label
// "CIE Authentication": the X.509 certificate (DER-exact CKA_VALUE,
// SUBJECT, ISSUER, SERIAL_NUMBER as the DER INTEGER, dates), its RSA public
// key (public, so that NSS counts the certificate as a user certificate
// without a login) and the private key (CKA_PRIVATE, SIGN, SENSITIVE, not
// EXTRACTABLE, ALWAYS_AUTHENTICATE false; its private components answer
// CKR_ATTRIBUTE_SENSITIVE). With sign on demand the private key is a
// public object (CKA_PRIVATE false).
//
// The card gives its certificate only after the PIN, and no other public
// source of the holder's key exists: an unpaired card shows no object
// before the first login. Pairing is that first login: the certificate is
// read and stored, with the card's public data, in the card's record of
// the certificate cache (package certcache: public data only, never PIN
// digits), with the reader it is in. From then on, in every
// process, certificate and public key are there at insertion without a PIN
// and without an APDU. A damaged record is ignored and rewritten at the
// next login.
//
// # Login, PINs, signatures
//
// C_Login(CKU_USER) takes the whole 8-digit PIN; its length
// (CKR_PIN_LEN_RANGE) and digits (CKR_PIN_INVALID) are checked before the
// card sees it. A wrong PIN is CKR_PIN_INCORRECT with the counter in the
// token flags, a blocked one CKR_PIN_LOCKED. The PIN is not kept. The
// secure-messaging session of the login serves every later signature
// (MSE SET is skipped when the key is already selected), until C_Logout,
// the last session's close, or the card's removal. When another
// application breaks that session (a reset, its own handshake), the next
// signature fails; the module then asks the card whether the PIN is still
// verified (VERIFY without data, no try spent) and answers
// CKR_USER_NOT_LOGGED_IN: the application logs in again. Signatures other
// sessions had started stay, and their C_Sign answers the same (C_Logout
// by the application, by contrast, ends them). The module never resends a
// PIN.
//
// C_Login(CKU_SO) verifies the PUK; the PUK is then held in memory (zeroed
// at logout) because C_InitPIN runs cie.Card.UnblockPIN, which verifies it
// again before RESET RETRY COUNTER. C_SetPIN changes the user PIN with
// CHANGE REFERENCE DATA, logged in or not; new PINs follow the holder
// rules of cie.ValidateNewPIN.
//
// Mechanisms: CKM_RSA_PKCS (the caller's DigestInfo or any input up to
// k−11 bytes) and CKM_SHA{1,224,256,384,512}_RSA_PKCS with the DigestInfo
// of RFC 8017, single- and multi-part; C_GetMechanismInfo says 2048..2048
// bits, CKF_HW | CKF_SIGN. No PSS, no raw RSA, no decryption: the card does
// none of them. Every signature is checked against the certificate before
// it is returned.
//
// # Sign on demand: the module's own PIN dialog
//
// Browsers have no usable PIN dialog for a smart card: headless Chromium
// never calls C_Login for a key that needs one, a desktop browser shows a
// generic password box, re-prompts silently after a wrong PIN and never
// says how many tries are left. So when Config.PIN is set (cmd/cie-pkcs11
// sets it when it finds a pinentry program: $CIE_PINENTRY, else in a
// graphical session `cie-tray pinentry` next to the module or on PATH,
// else the system `pinentry`), the module asks the PIN itself:
//
//   - The token has PROTECTED_AUTHENTICATION_PATH and no LOGIN_REQUIRED:
//     nothing needs a C_Login. NSS therefore never logs in just to list
//     certificates, even for a module registered without FRIENDLY (Firefox's
//     SecurityDevices policy); the PIN is asked only when a signature is
//     really made (a TLS 1.3 server, whose handshake the key cannot sign,
//     gets no dialog at all).
//   - Certificate, public key and private key are public objects, so
//     C_FindObjects finds the key and C_SignInit accepts it without a login.
//   - C_Sign / C_SignFinal without a login (not a length query, not a short
//     buffer, not an input the signature would refuse) first runs the
//     dialog: PINRequest names the holder and the tries left as the card
//     says them at that moment (a VERIFY without data, no try spent). The
//     entry is checked for 8 digits (a malformed one is not sent: the next
//     dialog says so) and verified once. A wrong PIN is never resent: the
//     next dialog says it was wrong with the new count (PINWrong), until the
//     right PIN (the signature goes on), a cancel or time-out
//     (CKR_FUNCTION_CANCELED) or a blocked PIN (PINLocked tells the holder;
//     CKR_PIN_LOCKED). A failed or cancelled dialog ends the signature
//     operation.
//   - C_Login(CKU_USER) with a NULL PIN runs the same dialog (protected
//     authentication path, as pkcs11-tool --login without --pin does).
//     C_Login with a PIN works as always and opens no dialog; the PUK is
//     never asked by the dialog.
//   - The verification obtained through the dialog is a login like
//     C_Login's: it lasts until C_Logout, the last session's close, the
//     card's removal or C_Finalize, so one page load's several handshakes,
//     or concurrent signatures, ask once (one dialog per slot at a time).
//     The slot's lock is not held while the dialog is open: other calls on
//     the token are answered meanwhile.
//   - The site a signature is for is not known to PKCS#11; the dialog names
//     the application ("Chromium wants to sign with the CIE of …").
//
// Applications that skip C_Login on a token without LOGIN_REQUIRED
// (libp11's OpenSSL engine, GnuTLS) then get the dialog at their first
// signature even when given a PIN; CIE_PINENTRY=none turns sign on demand
// off for such scripts. Without a dialog program, or with CIE_PINENTRY=none,
// the module is the plain token described above: applications log in with
// C_Login and the PIN.
//
// # Errors
//
// A removed card is CKR_DEVICE_REMOVED (its sessions answer it once, then
// CKR_SESSION_HANDLE_INVALID); an empty slot CKR_TOKEN_NOT_PRESENT; a
// non-CIE card CKR_TOKEN_NOT_RECOGNIZED; other reader or card failures
// CKR_DEVICE_ERROR; a lost PIN verification CKR_USER_NOT_LOGGED_IN.
// Nothing maps to CKR_GENERAL_ERROR.
//
// # Concurrency
//
// Methods are safe for concurrent use. Each slot has a mutex held during
// its card I/O, so operations on one card are serialised (as the card
// would anyway); package cie runs each operation in one PC/SC transaction.
// Session and object handles are unique for the life of the Module.
package pkcs11
