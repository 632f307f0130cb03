package pkcs11

import (
	"fmt"
	"unicode/utf8"
)

// Scalar types of the PKCS#11 API. CK_ULONG is uint here (64 bits on the
// LP64 platforms the module is built for; the C layer converts).
type (
	// RV is a PKCS#11 return value (CK_RV). It is an error: every method of
	// Module that fails returns an RV, so the C layer can hand it back
	// as is with errors.As.
	RV uint
	// AttributeType is CK_ATTRIBUTE_TYPE.
	AttributeType uint
	// ObjectClass is CK_OBJECT_CLASS.
	ObjectClass uint
	// KeyType is CK_KEY_TYPE.
	KeyType uint
	// CertificateType is CK_CERTIFICATE_TYPE.
	CertificateType uint
	// MechanismType is CK_MECHANISM_TYPE.
	MechanismType uint
	// UserType is CK_USER_TYPE.
	UserType uint
	// State is a session state (CK_STATE).
	State uint
	// Flags is a bit mask (CK_FLAGS).
	Flags uint
	// SlotID identifies a slot (CK_SLOT_ID).
	SlotID uint
	// SessionHandle identifies a session (CK_SESSION_HANDLE).
	SessionHandle uint
	// ObjectHandle identifies an object (CK_OBJECT_HANDLE).
	ObjectHandle uint
)

// Special CK_ULONG values of pkcs11t.h (not generated: ~0UL has no width
// in the header).
const (
	// UnavailableInformation is CK_UNAVAILABLE_INFORMATION (~0UL): the
	// length of an attribute that could not be returned, and the value of
	// token memory fields the module does not know.
	UnavailableInformation = ^uint(0)
	// EffectivelyInfinite is CK_EFFECTIVELY_INFINITE: no limit on sessions.
	EffectivelyInfinite uint = 0
)

// Error returns the constant's name, e.g. "CKR_PIN_INCORRECT".
func (rv RV) Error() string {
	if n, ok := rvNames[rv]; ok {
		return n
	}
	return fmt.Sprintf("CKR_0x%08X", uint(rv))
}

// String is Error.
func (rv RV) String() string { return rv.Error() }

// String returns the constant's name, e.g. "CKA_VALUE".
func (a AttributeType) String() string {
	if n, ok := attributeNames[a]; ok {
		return n
	}
	return fmt.Sprintf("CKA_0x%08X", uint(a))
}

// String returns the constant's name, e.g. "CKM_SHA256_RSA_PKCS".
func (m MechanismType) String() string {
	if n, ok := mechanismNames[m]; ok {
		return n
	}
	return fmt.Sprintf("CKM_0x%08X", uint(m))
}

// Version is CK_VERSION.
type Version struct{ Major, Minor byte }

// Info is CK_INFO (C_GetInfo). The text fields are blank-padded and not
// NUL-terminated, as the C structure wants them.
type Info struct {
	CryptokiVersion    Version
	ManufacturerID     [32]byte
	Flags              Flags
	LibraryDescription [32]byte
	LibraryVersion     Version
}

// SlotInfo is CK_SLOT_INFO (C_GetSlotInfo).
type SlotInfo struct {
	SlotDescription [64]byte
	ManufacturerID  [32]byte
	Flags           Flags
	HardwareVersion Version
	FirmwareVersion Version
}

// TokenInfo is CK_TOKEN_INFO (C_GetTokenInfo).
type TokenInfo struct {
	Label              [32]byte
	ManufacturerID     [32]byte
	Model              [16]byte
	SerialNumber       [16]byte
	Flags              Flags
	MaxSessionCount    uint
	SessionCount       uint
	MaxRwSessionCount  uint
	RwSessionCount     uint
	MaxPinLen          uint
	MinPinLen          uint
	TotalPublicMemory  uint
	FreePublicMemory   uint
	TotalPrivateMemory uint
	FreePrivateMemory  uint
	HardwareVersion    Version
	FirmwareVersion    Version
	UTCTime            [16]byte
}

// SessionInfo is CK_SESSION_INFO (C_GetSessionInfo).
type SessionInfo struct {
	SlotID      SlotID
	State       State
	Flags       Flags
	DeviceError uint
}

// MechanismInfo is CK_MECHANISM_INFO (C_GetMechanismInfo).
type MechanismInfo struct {
	MinKeySize, MaxKeySize uint
	Flags                  Flags
}

// Mechanism is CK_MECHANISM: a type and its parameter bytes.
type Mechanism struct {
	Type      MechanismType
	Parameter []byte
}

// Attribute is one entry of a search template (C_FindObjectsInit): a type
// and the value the object's attribute must equal byte for byte.
type Attribute struct {
	Type  AttributeType
	Value []byte
}

// TemplateEntry is one entry of a C_GetAttributeValue template, as the
// caller passed it. GetAttributeValue fills Len and, when it fits, Buffer.
type TemplateEntry struct {
	Type AttributeType
	// SizeOnly is true when the caller's pValue was NULL: only the length
	// is wanted.
	SizeOnly bool
	// Buffer is the caller's buffer (pValue, ulValueLen bytes).
	Buffer []byte
	// Len is the ulValueLen to hand back: the value's length, or
	// UnavailableInformation for a sensitive or unknown attribute or a
	// buffer that is too small.
	Len uint
}

// pad writes s into the fixed-size text field dst, blank-padded as every
// text field of the PKCS#11 info structures wants: UTF-8, not
// NUL-terminated, cut at a rune boundary when s is longer.
func pad(dst []byte, s string) {
	n := 0
	for n < len(s) {
		_, size := utf8.DecodeRuneInString(s[n:])
		if n+size > len(dst) {
			break
		}
		n += size
	}
	copy(dst, s[:n])
	for i := n; i < len(dst); i++ {
		dst[i] = ' '
	}
}
