package pkcs11_test

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// Fuzz targets for the caller's input at the Go layer of the module: the
// search templates of C_FindObjectsInit and the mechanisms (type and
// parameter bytes) of C_SignInit, on a module with a logged-in session
// over a simulated card. The C layer (cmd/cie-pkcs11) copies C arrays into
// these Go values; whatever they hold, the answers must be exact.

// fuzzAttrTypes are the attribute types the fuzzer picks from; a byte past
// the list picks a raw CK_ULONG (vendor and unknown types).
var fuzzAttrTypes = []pkcs11.AttributeType{
	pkcs11.CKA_CLASS, pkcs11.CKA_TOKEN, pkcs11.CKA_PRIVATE, pkcs11.CKA_LABEL, pkcs11.CKA_ID,
	pkcs11.CKA_KEY_TYPE, pkcs11.CKA_MODULUS, pkcs11.CKA_PUBLIC_EXPONENT, pkcs11.CKA_SUBJECT,
	pkcs11.CKA_ISSUER, pkcs11.CKA_SERIAL_NUMBER, pkcs11.CKA_VALUE, pkcs11.CKA_CERTIFICATE_TYPE,
	pkcs11.CKA_SIGN, pkcs11.CKA_SENSITIVE, pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_MODULUS_BITS,
}

// loggedIn is a module, a logged-in session and the three objects.
type loggedIn struct {
	m       *pkcs11.Module
	h       pkcs11.SessionHandle
	objects []pkcs11.ObjectHandle
	key     pkcs11.ObjectHandle // the private key
	pub     *rsa.PublicKey
}

func newLoggedIn(f *testing.F) *loggedIn {
	card := newCard(f, ciesim.Config{})
	e := newEnv(f, card)
	h := e.open(e.m)
	login(f, e.m, h)
	l := &loggedIn{m: e.m, h: h, objects: find(f, e.m, h), pub: certOf(card).PublicKey.(*rsa.PublicKey)}
	if len(l.objects) != 3 {
		f.Fatalf("%d objects after login, want 3", len(l.objects))
	}
	keys := find(f, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))
	if len(keys) != 1 {
		f.Fatalf("%d private keys", len(keys))
	}
	l.key = keys[0]
	return l
}

// value reads an attribute; ok is false when the object has none (or it
// is sensitive).
func (l *loggedIn) value(o pkcs11.ObjectHandle, typ pkcs11.AttributeType) ([]byte, bool) {
	q := []pkcs11.TemplateEntry{{Type: typ, SizeOnly: true}}
	if l.m.GetAttributeValue(l.h, o, q) != nil {
		return nil, false
	}
	buf := make([]byte, q[0].Len)
	q = []pkcs11.TemplateEntry{{Type: typ, Buffer: buf}}
	if l.m.GetAttributeValue(l.h, o, q) != nil {
		return nil, false
	}
	return buf[:q[0].Len], true
}

// FuzzFindObjectsTemplate: any template is accepted, the search returns
// exactly the objects whose attributes equal every entry (checked against
// C_GetAttributeValue), in pieces of any size, and the session is usable
// afterwards.
func FuzzFindObjectsTemplate(f *testing.F) {
	l := newLoggedIn(f)
	class := make([]byte, 8)
	binary.NativeEndian.PutUint64(class, uint64(pkcs11.CKO_PRIVATE_KEY))
	f.Add([]byte{}, byte(1))
	f.Add(append([]byte{0, 8}, class...), byte(2))
	f.Add([]byte{4, 0x80, 12, 0x80 | 4, 0xC0}, byte(3))                   // CKA_ID of an object, then its CKA_VALUE
	f.Add([]byte{3, 18, 'C', 'I', 'E', ' ', 'A', 'u', 't', 'h'}, byte(0)) // a label prefix: matches nothing
	f.Add([]byte{200, 3, 1, 2, 3, 15, 0x80}, byte(7))                     // an unknown type; CKA_PRIVATE_EXPONENT
	f.Fuzz(func(t *testing.T, in []byte, chunk byte) {
		// Entries: type byte, then a length byte whose top bit takes the
		// value from object (len&0x03) — so that matches happen — and
		// 0x40 cuts it by one byte; otherwise len&0x3F bytes follow.
		var tmpl []pkcs11.Attribute
		for len(in) >= 2 && len(tmpl) < 8 {
			var typ pkcs11.AttributeType
			if int(in[0]) < len(fuzzAttrTypes) {
				typ = fuzzAttrTypes[in[0]]
			} else {
				typ = pkcs11.AttributeType(uint(in[0]) << 24)
			}
			n := in[1]
			in = in[2:]
			var v []byte
			if n&0x80 != 0 {
				v, _ = l.value(l.objects[int(n&0x03)%len(l.objects)], typ)
				if n&0x40 != 0 && len(v) > 0 {
					v = v[:len(v)-1]
				}
			} else {
				k := min(int(n&0x3F), len(in))
				v, in = in[:k], in[k:]
			}
			tmpl = append(tmpl, pkcs11.Attribute{Type: typ, Value: bytes.Clone(v)})
		}
		if err := l.m.FindObjectsInit(l.h, tmpl); err != nil {
			t.Fatalf("FindObjectsInit(%v): %v", tmpl, err)
		}
		var got []pkcs11.ObjectHandle
		for range 10 {
			part, err := l.m.FindObjects(l.h, int(chunk%4)+1)
			if err != nil {
				t.Fatalf("FindObjects: %v", err)
			}
			if len(part) == 0 {
				break
			}
			got = append(got, part...)
		}
		if err := l.m.FindObjectsFinal(l.h); err != nil {
			t.Fatalf("FindObjectsFinal: %v", err)
		}
		for _, o := range l.objects {
			match := true
			for _, a := range tmpl {
				if v, ok := l.value(o, a.Type); !ok || !bytes.Equal(v, a.Value) {
					match = false
					break
				}
			}
			if match != slices.Contains(got, o) {
				t.Fatalf("object %d: matches the template %v: %v, found: %v", o, tmpl, match, slices.Contains(got, o))
			}
		}
		if len(got) != len(slices.Compact(slices.Sorted(slices.Values(got)))) {
			t.Fatalf("an object was returned twice: %v", got)
		}
	})
}

// FuzzSignInitMechanism: C_SignInit takes exactly the six mechanisms with
// no parameter and the private key; anything else is refused with the RV
// that says why and leaves no operation behind; an accepted one signs what
// the certificate's key verifies, or refuses input too long for the key.
func FuzzSignInitMechanism(f *testing.F) {
	l := newLoggedIn(f)
	for _, m := range []pkcs11.MechanismType{pkcs11.CKM_RSA_PKCS, pkcs11.CKM_SHA256_RSA_PKCS, pkcs11.CKM_SHA1_RSA_PKCS, pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKM_SHA256_RSA_PKCS_PSS, pkcs11.CKM_RSA_X_509} {
		f.Add(uint64(m), []byte{}, []byte("dati da firmare"), byte(0))
	}
	// A PSS parameter block (hash, MGF, salt length) on a mechanism that takes none.
	f.Add(uint64(pkcs11.CKM_SHA256_RSA_PKCS), []byte{0x50, 2, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0, 0, 0, 0, 0, 0}, []byte("x"), byte(0))
	f.Add(uint64(pkcs11.CKM_RSA_PKCS), []byte{}, bytes.Repeat([]byte{0x30}, 246), byte(0)) // k−10 bytes: too long
	f.Add(uint64(pkcs11.CKM_SHA512_RSA_PKCS), []byte{}, []byte("y"), byte(1))              // the certificate, not the key
	f.Add(uint64(0x80000000|1), []byte{1}, []byte{}, byte(2))                              // a vendor mechanism
	hashes := map[pkcs11.MechanismType]crypto.Hash{
		pkcs11.CKM_RSA_PKCS: 0, pkcs11.CKM_SHA1_RSA_PKCS: crypto.SHA1, pkcs11.CKM_SHA224_RSA_PKCS: crypto.SHA224,
		pkcs11.CKM_SHA256_RSA_PKCS: crypto.SHA256, pkcs11.CKM_SHA384_RSA_PKCS: crypto.SHA384, pkcs11.CKM_SHA512_RSA_PKCS: crypto.SHA512,
	}
	f.Fuzz(func(t *testing.T, mt uint64, param, data []byte, keyChoice byte) {
		mech := pkcs11.MechanismType(uint(mt))
		// The private key, the certificate, the public key, or no object.
		var key pkcs11.ObjectHandle
		switch others := slices.DeleteFunc(slices.Clone(l.objects), func(o pkcs11.ObjectHandle) bool { return o == l.key }); keyChoice % 4 {
		case 0:
			key = l.key
		case 1, 2:
			key = others[keyChoice%4-1]
		default:
			key = pkcs11.ObjectHandle(uint(keyChoice) * 7919)
		}
		h, supported := hashes[mech]
		err := l.m.SignInit(l.h, pkcs11.Mechanism{Type: mech, Parameter: param}, key)
		var rv pkcs11.RV
		switch {
		case err == nil:
			if !supported || len(param) != 0 || key != l.key {
				t.Fatalf("SignInit(%v, %d parameter bytes, key %d) accepted", mech, len(param), key)
			}
		case !errors.As(err, &rv):
			t.Fatalf("SignInit: %v is not an RV", err)
		case !supported && rv != pkcs11.CKR_MECHANISM_INVALID:
			t.Fatalf("SignInit(%v): %v, want CKR_MECHANISM_INVALID", mech, rv)
		case supported && len(param) != 0 && rv != pkcs11.CKR_MECHANISM_PARAM_INVALID:
			t.Fatalf("SignInit(%v, %d parameter bytes): %v, want CKR_MECHANISM_PARAM_INVALID", mech, len(param), rv)
		case supported && len(param) == 0 && rv != pkcs11.CKR_KEY_HANDLE_INVALID && rv != pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED:
			t.Fatalf("SignInit(%v, object %d): %v, want a key error", mech, key, rv)
		}
		if err != nil {
			// Nothing was started.
			if _, err := l.m.Sign(l.h, data, make([]byte, 256), false); !errors.Is(err, pkcs11.CKR_OPERATION_NOT_INITIALIZED) {
				t.Fatalf("Sign after a refused SignInit: %v, want CKR_OPERATION_NOT_INITIALIZED", err)
			}
			return
		}
		sig := make([]byte, 256)
		n, err := l.m.Sign(l.h, data, sig, false)
		if h == 0 && (len(data) == 0 || len(data) > 245) {
			if !errors.Is(err, pkcs11.CKR_DATA_LEN_RANGE) {
				t.Fatalf("Sign of %d bytes with CKM_RSA_PKCS: %v, want CKR_DATA_LEN_RANGE", len(data), err)
			}
			return
		}
		if err != nil || n != 256 {
			t.Fatalf("Sign(%v, %d bytes): %d, %v", mech, len(data), n, err)
		}
		digest := data
		switch h {
		case crypto.SHA1:
			d := sha1.Sum(data)
			digest = d[:]
		case crypto.SHA224:
			d := sha256.Sum224(data)
			digest = d[:]
		case crypto.SHA256:
			d := sha256.Sum256(data)
			digest = d[:]
		case crypto.SHA384:
			d := sha512.Sum384(data)
			digest = d[:]
		case crypto.SHA512:
			d := sha512.Sum512(data)
			digest = d[:]
		}
		if err := rsa.VerifyPKCS1v15(l.pub, h, digest, sig); err != nil {
			t.Fatalf("the %v signature does not verify: %v", mech, err)
		}
	})
}
