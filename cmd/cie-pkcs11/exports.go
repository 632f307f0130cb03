package main

/*
#cgo CFLAGS: -I${SRCDIR}/include -Wall
#include "cie_pkcs11.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"unsafe"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/internal/rotlog"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// libraryVersion is reported by C_GetInfo.
var libraryVersion = pkcs11.Version{Major: 0, Minor: 1}

// Bounds on lengths the caller gives: no PKCS#11 value of this module is
// near them, and they keep a garbage length from becoming a huge slice.
const (
	maxValue = 1 << 20 // attribute values, mechanism parameters
	maxPIN   = 64
)

// lib is the initialised library: nil before C_Initialize and after
// C_Finalize.
var lib struct {
	mu      sync.Mutex
	m       *pkcs11.Module
	src     *pcscSource
	logFile *rotlog.Writer
	log     *slog.Logger
}

// module returns the initialised Module, or nil.
func module() *pkcs11.Module {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	return lib.m
}

func logger() *slog.Logger {
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return lib.log
}

// guard recovers a panic in an exported function: the host application
// (a browser) must never crash because of the module. The caller gets
// CKR_GENERAL_ERROR, the one case where no more precise code exists.
func guard(rv *C.CK_RV, fn string) {
	if r := recover(); r != nil {
		logger().Error("pkcs11: panic", "function", fn, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		*rv = C.CKR_GENERAL_ERROR
	}
}

// ckrv converts an error of package pkcs11 to a CK_RV.
func ckrv(err error) C.CK_RV {
	if err == nil {
		return C.CKR_OK
	}
	var rv pkcs11.RV
	if errors.As(err, &rv) {
		return C.CK_RV(rv)
	}
	return C.CKR_FUNCTION_FAILED
}

// bytesOf views C memory as a byte slice for the duration of the call.
func bytesOf(p unsafe.Pointer, n C.CK_ULONG) []byte {
	if p == nil || n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(p), n)
}

// secret copies a PIN from C memory; the caller clears it.
func secret(p C.CK_UTF8CHAR_PTR, n C.CK_ULONG) []byte {
	if n > maxPIN {
		n = maxPIN + 1 // long enough to be rejected, not read in full
	}
	b := C.GoBytes(unsafe.Pointer(p), C.int(n))
	if b == nil {
		b = []byte{} // a PIN of length 0, not the protected authentication path
	}
	return b
}

// text copies a blank-padded Go field into a C character array.
func text[T ~uint8](dst []T, src []byte) {
	for i := range dst {
		dst[i] = T(src[i])
	}
}

func version(v pkcs11.Version) C.CK_VERSION {
	return C.CK_VERSION{major: C.CK_BYTE(v.Major), minor: C.CK_BYTE(v.Minor)}
}

//export goInitialize
func goInitialize() (rv C.CK_RV) {
	defer guard(&rv, "C_Initialize")
	lib.mu.Lock()
	defer lib.mu.Unlock()
	if lib.m != nil {
		return C.CKR_CRYPTOKI_ALREADY_INITIALIZED
	}
	log := slog.New(slog.DiscardHandler)
	if path := os.Getenv("CIE_PKCS11_LOG"); path != "" {
		// Bounded and rotated: CIE_PKCS11_LOG_MAX_KB, CIE_PKCS11_LOG_KEEP.
		opts, optErr := rotlog.FromEnv("CIE_PKCS11_LOG", os.Getenv)
		if f, err := rotlog.Open(path, opts); err == nil {
			lib.logFile = f
			log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug})).With("pid", os.Getpid())
			if optErr != nil {
				log.Warn("pkcs11: log options", "err", optErr)
			}
		}
	}
	var cache *certcache.Cache
	if dir, err := certcache.DefaultDir(); err == nil {
		cache = certcache.New(dir)
	} else {
		log.Warn("pkcs11: no certificate cache", "err", err)
	}
	src := newPCSCSource(log)
	cfg := pkcs11.Config{Source: src, Cache: cache, Logger: log, LibraryVersion: libraryVersion}
	if d := findDialog(log); d != nil {
		cfg.PIN = d
	}
	m, err := pkcs11.New(cfg)
	if err != nil {
		log.Warn("pkcs11: not initialised", "err", err)
		src.Close()
		if lib.logFile != nil {
			lib.logFile.Close()
			lib.logFile = nil
		}
		return ckrv(err)
	}
	lib.m, lib.src, lib.log = m, src, log
	log.Debug("pkcs11: initialised")
	return C.CKR_OK
}

//export goFinalize
func goFinalize() (rv C.CK_RV) {
	defer guard(&rv, "C_Finalize")
	lib.mu.Lock()
	m, src, f, log := lib.m, lib.src, lib.logFile, lib.log
	lib.m, lib.src, lib.logFile, lib.log = nil, nil, nil, nil
	lib.mu.Unlock()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	err := m.Close()
	src.Close()
	if log != nil {
		log.Debug("pkcs11: finalised")
	}
	if f != nil {
		f.Close()
	}
	return ckrv(err)
}

//export goGetInfo
func goGetInfo(p C.CK_INFO_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetInfo")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	in, err := m.Info()
	if err != nil {
		return ckrv(err)
	}
	p.cryptokiVersion = version(in.CryptokiVersion)
	text(p.manufacturerID[:], in.ManufacturerID[:])
	C.cie_set_info_flags(p, C.CK_FLAGS(in.Flags))
	text(p.libraryDescription[:], in.LibraryDescription[:])
	p.libraryVersion = version(in.LibraryVersion)
	return C.CKR_OK
}

// putList implements the two-call protocol for a list of CK_ULONGs.
func putList[T ~uint](list []T, p *C.CK_ULONG, pulCount C.CK_ULONG_PTR) C.CK_RV {
	n := C.CK_ULONG(len(list))
	if p == nil {
		*pulCount = n
		return C.CKR_OK
	}
	if *pulCount < n {
		*pulCount = n
		return C.CKR_BUFFER_TOO_SMALL
	}
	out := unsafe.Slice(p, len(list))
	for i, v := range list {
		out[i] = C.CK_ULONG(v)
	}
	*pulCount = n
	return C.CKR_OK
}

//export goGetSlotList
func goGetSlotList(tokenPresent C.CK_BBOOL, pSlotList C.CK_SLOT_ID_PTR, pulCount C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetSlotList")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	ids, err := m.SlotList(tokenPresent != C.CK_FALSE)
	if err != nil {
		return ckrv(err)
	}
	return putList(ids, (*C.CK_ULONG)(pSlotList), pulCount)
}

//export goGetSlotInfo
func goGetSlotInfo(slot C.CK_SLOT_ID, p C.CK_SLOT_INFO_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetSlotInfo")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	in, err := m.SlotInfo(pkcs11.SlotID(slot))
	if err != nil {
		return ckrv(err)
	}
	text(p.slotDescription[:], in.SlotDescription[:])
	text(p.manufacturerID[:], in.ManufacturerID[:])
	p.flags = C.CK_FLAGS(in.Flags)
	p.hardwareVersion = version(in.HardwareVersion)
	p.firmwareVersion = version(in.FirmwareVersion)
	return C.CKR_OK
}

//export goGetTokenInfo
func goGetTokenInfo(slot C.CK_SLOT_ID, p C.CK_TOKEN_INFO_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetTokenInfo")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	in, err := m.TokenInfo(pkcs11.SlotID(slot))
	if err != nil {
		return ckrv(err)
	}
	text(p.label[:], in.Label[:])
	text(p.manufacturerID[:], in.ManufacturerID[:])
	text(p.model[:], in.Model[:])
	text(p.serialNumber[:], in.SerialNumber[:])
	p.flags = C.CK_FLAGS(in.Flags)
	p.ulMaxSessionCount = C.CK_ULONG(in.MaxSessionCount)
	p.ulSessionCount = C.CK_ULONG(in.SessionCount)
	p.ulMaxRwSessionCount = C.CK_ULONG(in.MaxRwSessionCount)
	p.ulRwSessionCount = C.CK_ULONG(in.RwSessionCount)
	p.ulMaxPinLen = C.CK_ULONG(in.MaxPinLen)
	p.ulMinPinLen = C.CK_ULONG(in.MinPinLen)
	p.ulTotalPublicMemory = C.CK_ULONG(in.TotalPublicMemory)
	p.ulFreePublicMemory = C.CK_ULONG(in.FreePublicMemory)
	p.ulTotalPrivateMemory = C.CK_ULONG(in.TotalPrivateMemory)
	p.ulFreePrivateMemory = C.CK_ULONG(in.FreePrivateMemory)
	p.hardwareVersion = version(in.HardwareVersion)
	p.firmwareVersion = version(in.FirmwareVersion)
	text(p.utcTime[:], in.UTCTime[:])
	return C.CKR_OK
}

//export goGetMechanismList
func goGetMechanismList(slot C.CK_SLOT_ID, p C.CK_MECHANISM_TYPE_PTR, pulCount C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetMechanismList")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	list, err := m.MechanismList(pkcs11.SlotID(slot))
	if err != nil {
		return ckrv(err)
	}
	return putList(list, (*C.CK_ULONG)(p), pulCount)
}

//export goGetMechanismInfo
func goGetMechanismInfo(slot C.CK_SLOT_ID, typ C.CK_MECHANISM_TYPE, p C.CK_MECHANISM_INFO_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetMechanismInfo")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	in, err := m.MechanismInfo(pkcs11.SlotID(slot), pkcs11.MechanismType(typ))
	if err != nil {
		return ckrv(err)
	}
	p.ulMinKeySize = C.CK_ULONG(in.MinKeySize)
	p.ulMaxKeySize = C.CK_ULONG(in.MaxKeySize)
	p.flags = C.CK_FLAGS(in.Flags)
	return C.CKR_OK
}

//export goWaitForSlotEvent
func goWaitForSlotEvent(flags C.CK_FLAGS, pSlot C.CK_SLOT_ID_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_WaitForSlotEvent")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	id, err := m.WaitForSlotEvent(flags&C.CKF_DONT_BLOCK != 0)
	if err != nil {
		return ckrv(err)
	}
	*pSlot = C.CK_SLOT_ID(id)
	return C.CKR_OK
}

//export goOpenSession
func goOpenSession(slot C.CK_SLOT_ID, flags C.CK_FLAGS, ph C.CK_SESSION_HANDLE_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_OpenSession")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	h, err := m.OpenSession(pkcs11.SlotID(slot), pkcs11.Flags(flags))
	if err != nil {
		return ckrv(err)
	}
	*ph = C.CK_SESSION_HANDLE(h)
	return C.CKR_OK
}

//export goCloseSession
func goCloseSession(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard(&rv, "C_CloseSession")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.CloseSession(pkcs11.SessionHandle(h)))
}

//export goCloseAllSessions
func goCloseAllSessions(slot C.CK_SLOT_ID) (rv C.CK_RV) {
	defer guard(&rv, "C_CloseAllSessions")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.CloseAllSessions(pkcs11.SlotID(slot)))
}

//export goGetSessionInfo
func goGetSessionInfo(h C.CK_SESSION_HANDLE, p C.CK_SESSION_INFO_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetSessionInfo")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	in, err := m.SessionInfo(pkcs11.SessionHandle(h))
	if err != nil {
		return ckrv(err)
	}
	p.slotID = C.CK_SLOT_ID(in.SlotID)
	p.state = C.CK_STATE(in.State)
	p.flags = C.CK_FLAGS(in.Flags)
	p.ulDeviceError = C.CK_ULONG(in.DeviceError)
	return C.CKR_OK
}

//export goLogin
func goLogin(h C.CK_SESSION_HANDLE, user C.CK_USER_TYPE, pPin C.CK_UTF8CHAR_PTR, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_Login")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	if pPin == nil {
		// Protected authentication path: the module's dialog asks the PIN.
		return ckrv(m.Login(pkcs11.SessionHandle(h), pkcs11.UserType(user), nil))
	}
	pin := secret(pPin, n)
	defer clear(pin)
	return ckrv(m.Login(pkcs11.SessionHandle(h), pkcs11.UserType(user), pin))
}

//export goLogout
func goLogout(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard(&rv, "C_Logout")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.Logout(pkcs11.SessionHandle(h)))
}

//export goInitPIN
func goInitPIN(h C.CK_SESSION_HANDLE, pPin C.CK_UTF8CHAR_PTR, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_InitPIN")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	pin := secret(pPin, n)
	defer clear(pin)
	return ckrv(m.InitPIN(pkcs11.SessionHandle(h), pin))
}

//export goSetPIN
func goSetPIN(h C.CK_SESSION_HANDLE, pOld C.CK_UTF8CHAR_PTR, nOld C.CK_ULONG, pNew C.CK_UTF8CHAR_PTR, nNew C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_SetPIN")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	oldPIN, newPIN := secret(pOld, nOld), secret(pNew, nNew)
	defer clear(oldPIN)
	defer clear(newPIN)
	return ckrv(m.SetPIN(pkcs11.SessionHandle(h), oldPIN, newPIN))
}

//export goGetObjectSize
func goGetObjectSize(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pulSize C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_GetObjectSize")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	n, err := m.ObjectSize(pkcs11.SessionHandle(h), pkcs11.ObjectHandle(obj))
	if err != nil {
		return ckrv(err)
	}
	*pulSize = C.CK_ULONG(n)
	return C.CKR_OK
}

//export goGetAttributeValue
func goGetAttributeValue(h C.CK_SESSION_HANDLE, obj C.CK_OBJECT_HANDLE, pTemplate C.CK_ATTRIBUTE_PTR, count C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_GetAttributeValue")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	if count > maxValue {
		return C.CKR_ARGUMENTS_BAD
	}
	attrs := unsafe.Slice(pTemplate, count)
	tmpl := make([]pkcs11.TemplateEntry, len(attrs))
	for i, a := range attrs {
		tmpl[i].Type = pkcs11.AttributeType(a._type)
		if v := C.cie_attribute_value(&attrs[i]); v == nil {
			tmpl[i].SizeOnly = true
		} else {
			// A buffer longer than any value is as good as its first maxValue bytes.
			tmpl[i].Buffer = unsafe.Slice((*byte)(v), min(a.ulValueLen, maxValue))
		}
	}
	err := m.GetAttributeValue(pkcs11.SessionHandle(h), pkcs11.ObjectHandle(obj), tmpl)
	switch rv := ckrv(err); rv {
	case C.CKR_OK, C.CKR_ATTRIBUTE_SENSITIVE, C.CKR_ATTRIBUTE_TYPE_INVALID, C.CKR_BUFFER_TOO_SMALL:
		// The template was processed: every entry has its answer.
		for i := range attrs {
			attrs[i].ulValueLen = C.CK_ULONG(tmpl[i].Len)
		}
		return rv
	default:
		return rv
	}
}

// goAttributes copies a search template from C memory.
func goAttributes(p C.CK_ATTRIBUTE_PTR, count C.CK_ULONG) ([]pkcs11.Attribute, bool) {
	if count > maxValue {
		return nil, false
	}
	attrs := unsafe.Slice(p, count)
	out := make([]pkcs11.Attribute, len(attrs))
	for i, a := range attrs {
		v := C.cie_attribute_value(&attrs[i])
		if a.ulValueLen > maxValue || (v == nil && a.ulValueLen != 0) {
			return nil, false
		}
		out[i] = pkcs11.Attribute{Type: pkcs11.AttributeType(a._type), Value: C.GoBytes(v, C.int(a.ulValueLen))}
	}
	return out, true
}

//export goFindObjectsInit
func goFindObjectsInit(h C.CK_SESSION_HANDLE, pTemplate C.CK_ATTRIBUTE_PTR, count C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_FindObjectsInit")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	tmpl, ok := goAttributes(pTemplate, count)
	if !ok {
		return C.CKR_ARGUMENTS_BAD
	}
	return ckrv(m.FindObjectsInit(pkcs11.SessionHandle(h), tmpl))
}

//export goFindObjects
func goFindObjects(h C.CK_SESSION_HANDLE, p C.CK_OBJECT_HANDLE_PTR, max C.CK_ULONG, pulCount C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_FindObjects")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	found, err := m.FindObjects(pkcs11.SessionHandle(h), int(min(max, maxValue)))
	if err != nil {
		return ckrv(err)
	}
	out := unsafe.Slice(p, len(found))
	for i, o := range found {
		out[i] = C.CK_OBJECT_HANDLE(o)
	}
	*pulCount = C.CK_ULONG(len(found))
	return C.CKR_OK
}

//export goFindObjectsFinal
func goFindObjectsFinal(h C.CK_SESSION_HANDLE) (rv C.CK_RV) {
	defer guard(&rv, "C_FindObjectsFinal")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.FindObjectsFinal(pkcs11.SessionHandle(h)))
}

//export goSignInit
func goSignInit(h C.CK_SESSION_HANDLE, pMech C.CK_MECHANISM_PTR, key C.CK_OBJECT_HANDLE) (rv C.CK_RV) {
	defer guard(&rv, "C_SignInit")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	if pMech.ulParameterLen > maxValue {
		return C.CKR_MECHANISM_PARAM_INVALID
	}
	mech := pkcs11.Mechanism{Type: pkcs11.MechanismType(pMech.mechanism)}
	if pMech.ulParameterLen > 0 {
		mech.Parameter = C.GoBytes(C.cie_mechanism_parameter(pMech), C.int(pMech.ulParameterLen))
	}
	return ckrv(m.SignInit(pkcs11.SessionHandle(h), mech, pkcs11.ObjectHandle(key)))
}

// signature hands a signature back with the two-call protocol: n is the
// length, already written to out when err is nil.
func signature(n int, err error, pulLen C.CK_ULONG_PTR) C.CK_RV {
	var code pkcs11.RV
	if err == nil || errors.As(err, &code) && code == pkcs11.CKR_BUFFER_TOO_SMALL {
		*pulLen = C.CK_ULONG(n)
	}
	return ckrv(err)
}

// outBuffer views the caller's signature buffer; nil asks for the length.
func outBuffer(p C.CK_BYTE_PTR, pulLen C.CK_ULONG_PTR) ([]byte, bool) {
	if p == nil {
		return nil, true
	}
	return bytesOf(unsafe.Pointer(p), min(*pulLen, maxValue)), false
}

//export goSign
func goSign(h C.CK_SESSION_HANDLE, pData C.CK_BYTE_PTR, n C.CK_ULONG, pSig C.CK_BYTE_PTR, pulLen C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_Sign")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	out, sizeOnly := outBuffer(pSig, pulLen)
	written, err := m.Sign(pkcs11.SessionHandle(h), bytesOf(unsafe.Pointer(pData), n), out, sizeOnly)
	return signature(written, err, pulLen)
}

//export goSignUpdate
func goSignUpdate(h C.CK_SESSION_HANDLE, pPart C.CK_BYTE_PTR, n C.CK_ULONG) (rv C.CK_RV) {
	defer guard(&rv, "C_SignUpdate")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.SignUpdate(pkcs11.SessionHandle(h), bytesOf(unsafe.Pointer(pPart), n)))
}

//export goSignFinal
func goSignFinal(h C.CK_SESSION_HANDLE, pSig C.CK_BYTE_PTR, pulLen C.CK_ULONG_PTR) (rv C.CK_RV) {
	defer guard(&rv, "C_SignFinal")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	out, sizeOnly := outBuffer(pSig, pulLen)
	written, err := m.SignFinal(pkcs11.SessionHandle(h), out, sizeOnly)
	return signature(written, err, pulLen)
}

//export goSessionCancel
func goSessionCancel(h C.CK_SESSION_HANDLE, flags C.CK_FLAGS) (rv C.CK_RV) {
	defer guard(&rv, "C_SessionCancel")
	m := module()
	if m == nil {
		return C.CKR_CRYPTOKI_NOT_INITIALIZED
	}
	return ckrv(m.SessionCancel(pkcs11.SessionHandle(h), pkcs11.Flags(flags)))
}
