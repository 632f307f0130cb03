package pkcs11

import (
	"crypto"
	"crypto/rsa"
	"hash"

	_ "crypto/sha1" // registers the hashes of the mechanisms
	_ "crypto/sha256"
	_ "crypto/sha512"

	"github.com/ciedesktop/cie-desktop/cie"
)

// mechanism is a signature mechanism of the card's key 0x81. The card
// pads with PKCS#1 v1.5 type 1 over what it is given (§8): the caller's
// DigestInfo for CKM_RSA_PKCS, the DigestInfo of the hash computed here
// for the others. No PSS and no raw RSA: the card does neither.
type mechanism struct {
	typ  MechanismType
	hash crypto.Hash // 0 for CKM_RSA_PKCS
}

var mechanisms = []mechanism{
	{CKM_RSA_PKCS, 0},
	{CKM_SHA1_RSA_PKCS, crypto.SHA1},
	{CKM_SHA224_RSA_PKCS, crypto.SHA224},
	{CKM_SHA256_RSA_PKCS, crypto.SHA256},
	{CKM_SHA384_RSA_PKCS, crypto.SHA384},
	{CKM_SHA512_RSA_PKCS, crypto.SHA512},
}

func mechanismByType(t MechanismType) *mechanism {
	for i := range mechanisms {
		if mechanisms[i].typ == t {
			return &mechanisms[i]
		}
	}
	return nil
}

// signOp is an active signature operation.
type signOp struct {
	mech  *mechanism
	key   *rsa.PublicKey
	h     hash.Hash // hashing mechanisms
	data  []byte    // CKM_RSA_PKCS: the input collected so far
	multi bool      // C_SignUpdate was called
}

// size is the signature length, the modulus length k.
func (op *signOp) size() int { return (op.key.N.BitLen() + 7) / 8 }

// maxInput is k − 11, the longest input PKCS#1 v1.5 type-1 padding takes.
func (op *signOp) maxInput() int { return op.size() - 11 }

// SignInit starts a signature with the private key (C_SignInit). The user
// must be logged in, unless the module has its own PIN dialog (sign on
// demand): the PIN is then asked at C_Sign.
func (m *Module) SignInit(h SessionHandle, mech Mechanism, key ObjectHandle) error {
	return m.withSession(h, true, func(ss *session, t *token) error {
		if ss.sign != nil {
			return CKR_OPERATION_ACTIVE
		}
		mc := mechanismByType(mech.Type)
		if mc == nil {
			return CKR_MECHANISM_INVALID
		}
		if len(mech.Parameter) != 0 {
			return CKR_MECHANISM_PARAM_INVALID
		}
		if t.login != loggedUser && m.cfg.PIN == nil {
			return CKR_USER_NOT_LOGGED_IN
		}
		o := t.object(key)
		switch {
		case o == nil || o.class == CKO_CERTIFICATE:
			return CKR_KEY_HANDLE_INVALID
		case o.class != CKO_PRIVATE_KEY:
			return CKR_KEY_FUNCTION_NOT_PERMITTED
		}
		pub, ok := t.cert.PublicKey.(*rsa.PublicKey)
		if !ok {
			return CKR_KEY_TYPE_INCONSISTENT
		}
		op := &signOp{mech: mc, key: pub}
		if mc.hash != 0 {
			op.h = mc.hash.New()
		}
		ss.sign = op
		return nil
	})
}

// Sign signs data in one part (C_Sign). With sizeOnly, or when out is
// shorter than the signature, it returns the signature length (with
// CKR_BUFFER_TOO_SMALL for a short out) and the operation stays active;
// otherwise the operation ends.
func (m *Module) Sign(h SessionHandle, data, out []byte, sizeOnly bool) (int, error) {
	if err := m.signOnDemand(h, data, false, len(out), sizeOnly); err != nil {
		return 0, err
	}
	var n int
	err := m.withSession(h, false, func(ss *session, t *token) error {
		op := ss.sign
		if op == nil {
			return CKR_OPERATION_NOT_INITIALIZED
		}
		if op.multi {
			return CKR_OPERATION_ACTIVE // a multi-part signature ends with C_SignFinal
		}
		var in []byte
		if op.h != nil {
			op.h.Write(data)
		} else {
			in = data
		}
		var err error
		n, err = m.finish(ss, t, op, in, out, sizeOnly)
		if op.h != nil && ss.sign == op {
			op.h.Reset() // the length query keeps the operation: hash again next time
		}
		return err
	})
	return n, err
}

// SignUpdate adds a part to a multi-part signature (C_SignUpdate).
func (m *Module) SignUpdate(h SessionHandle, part []byte) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		op := ss.sign
		if op == nil {
			return CKR_OPERATION_NOT_INITIALIZED
		}
		op.multi = true
		if op.h != nil {
			op.h.Write(part)
			return nil
		}
		if len(op.data)+len(part) > op.maxInput() {
			ss.sign = nil
			return CKR_DATA_LEN_RANGE
		}
		op.data = append(op.data, part...)
		return nil
	})
}

// SignFinal ends a multi-part signature (C_SignFinal); sizeOnly and a
// short out behave as in Sign.
func (m *Module) SignFinal(h SessionHandle, out []byte, sizeOnly bool) (int, error) {
	if err := m.signOnDemand(h, nil, true, len(out), sizeOnly); err != nil {
		return 0, err
	}
	var n int
	err := m.withSession(h, false, func(ss *session, t *token) error {
		op := ss.sign
		if op == nil {
			return CKR_OPERATION_NOT_INITIALIZED
		}
		var err error
		n, err = m.finish(ss, t, op, op.data, out, sizeOnly)
		return err
	})
	return n, err
}

// finish computes the card's input and signs it. raw is the input of
// CKM_RSA_PKCS; hashing mechanisms take the digest from op.h.
func (m *Module) finish(ss *session, t *token, op *signOp, raw, out []byte, sizeOnly bool) (int, error) {
	in := raw
	if op.h != nil {
		var err error
		if in, err = cie.DigestInfo(op.mech.hash, op.h.Sum(nil)); err != nil {
			ss.sign = nil
			return 0, CKR_FUNCTION_FAILED
		}
	} else if len(in) == 0 || len(in) > op.maxInput() {
		ss.sign = nil
		return 0, CKR_DATA_LEN_RANGE
	}
	k := op.size()
	if sizeOnly {
		return k, nil
	}
	if len(out) < k {
		return k, CKR_BUFFER_TOO_SMALL
	}
	ss.sign = nil
	if t.login != loggedUser {
		return 0, CKR_USER_NOT_LOGGED_IN // logged out since C_SignInit, or the dialog was not shown
	}
	sig, err := t.card.SignDigestInfo(m.ctx, in)
	if err != nil {
		return 0, t.signFail(err)
	}
	// The card's answer must verify with the certificate: this catches a
	// wrong cached certificate and a faulty card before the caller uses
	// the signature.
	if len(sig) != k || rsa.VerifyPKCS1v15(op.key, 0, in, sig) != nil {
		m.log.Warn("pkcs11: the card's signature does not verify with its certificate", "slot", t.slot.id)
		return 0, CKR_DEVICE_ERROR
	}
	return copy(out, sig), nil
}

// signFail maps a failed signature. When the failure broke the secure
// channel (another application reset the card or ran its own handshake,
// a MAC error), the PIN verification went with it: the module asks the
// card, with a VERIFY without data that spends no try, and reports
// CKR_USER_NOT_LOGGED_IN so that the application logs in again. The PIN is
// never resent by the module.
func (t *token) signFail(err error) error {
	rv := t.fail(err, "signing")
	if rv != CKR_DEVICE_ERROR || t.login != loggedUser {
		return rv
	}
	st, serr := t.card.PINStatus(t.slot.m.ctx)
	switch {
	case serr == nil && st.Verified:
		return CKR_DEVICE_ERROR // the card refused this signature; the login stands
	case serr == nil:
		t.pin.set(st.Remaining, st.Blocked)
		t.loseLogin()
		return CKR_USER_NOT_LOGGED_IN
	}
	t.loseLogin() // state unknown: log out rather than sign without the holder's consent
	return t.fail(serr, "reading the PIN status after a failed signature")
}
