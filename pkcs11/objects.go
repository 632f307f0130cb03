package pkcs11

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"math/big"
	"time"
)

// Object labels. NSS names a certificate "<token label>:<object label>".
const (
	objectLabel = "CIE Authentication"
	rsaBits     = 2048
)

// object is one token object: its attributes, encoded as the C API returns
// them.
type object struct {
	handle  ObjectHandle
	class   ObjectClass
	private bool // CKA_PRIVATE: visible only to a logged-in user
	attrs   map[AttributeType][]byte
	// sensitive attributes exist but are never revealed
	// (CKR_ATTRIBUTE_SENSITIVE rather than CKR_ATTRIBUTE_TYPE_INVALID).
	sensitive map[AttributeType]bool
}

// Encodings of attribute values (PKCS#11 base §2.x): CK_BBOOL is one byte,
// CK_ULONG a native-endian unsigned long, CK_DATE eight ASCII digits.
func boolAttr(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

func ulongAttr(v uint) []byte {
	b := make([]byte, ulongSize)
	if ulongSize == 8 {
		binary.NativeEndian.PutUint64(b, uint64(v))
	} else {
		binary.NativeEndian.PutUint32(b, uint32(v))
	}
	return b
}

func ulongsAttr(vs ...uint) []byte {
	var out []byte
	for _, v := range vs {
		out = append(out, ulongAttr(v)...)
	}
	return out
}

func dateAttr(t time.Time) []byte { return []byte(t.UTC().Format("20060102")) }

// modulusBits returns the size of the certificate's RSA key, 0 if it is
// not RSA.
func modulusBits(cert *x509.Certificate) int {
	if k, ok := cert.PublicKey.(*rsa.PublicKey); ok {
		return k.N.BitLen()
	}
	return 0
}

// buildObjects returns the certificate, public-key and private-key
// objects of the holder certificate, sharing one CKA_ID: the SHA-1 of the
// modulus (stable across cards and sessions, and what OpenSC and others
// use for RSA keys). With signOnDemand the private key is a public object
// (CKA_PRIVATE false): applications find it without logging in and the
// module asks the PIN when it signs.
func buildObjects(cert *x509.Certificate, next func() ObjectHandle, signOnDemand bool) ([]*object, error) {
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("the certificate key is not RSA")
	}
	modulus := pub.N.Bytes()
	exponent := big.NewInt(int64(pub.E)).Bytes()
	id := sha1.Sum(modulus)
	serial, err := asn1.Marshal(cert.SerialNumber)
	if err != nil {
		return nil, err
	}
	check := sha1.Sum(cert.Raw)
	allowed := make([]uint, len(mechanisms))
	for i, m := range mechanisms {
		allowed[i] = uint(m.typ)
	}

	common := func(class ObjectClass, private bool) map[AttributeType][]byte {
		return map[AttributeType][]byte{
			CKA_CLASS:       ulongAttr(uint(class)),
			CKA_TOKEN:       boolAttr(true),
			CKA_PRIVATE:     boolAttr(private),
			CKA_MODIFIABLE:  boolAttr(false),
			CKA_COPYABLE:    boolAttr(false),
			CKA_DESTROYABLE: boolAttr(false),
			CKA_LABEL:       []byte(objectLabel),
			CKA_ID:          id[:],
		}
	}
	key := func(class ObjectClass, private bool) map[AttributeType][]byte {
		a := common(class, private)
		a[CKA_KEY_TYPE] = ulongAttr(uint(CKK_RSA))
		a[CKA_START_DATE] = []byte{} // empty: the key has no validity of its own
		a[CKA_END_DATE] = []byte{}
		a[CKA_DERIVE] = boolAttr(false)
		a[CKA_LOCAL] = boolAttr(false) // unknown where the issuer generated it
		a[CKA_KEY_GEN_MECHANISM] = ulongAttr(UnavailableInformation)
		a[CKA_ALLOWED_MECHANISMS] = ulongsAttr(allowed...)
		a[CKA_SUBJECT] = cert.RawSubject
		a[CKA_PUBLIC_KEY_INFO] = cert.RawSubjectPublicKeyInfo
		a[CKA_MODULUS] = modulus
		a[CKA_PUBLIC_EXPONENT] = exponent
		return a
	}

	c := common(CKO_CERTIFICATE, false)
	c[CKA_CERTIFICATE_TYPE] = ulongAttr(uint(CKC_X_509))
	c[CKA_TRUSTED] = boolAttr(false)
	c[CKA_CERTIFICATE_CATEGORY] = ulongAttr(1) // token user
	c[CKA_CHECK_VALUE] = check[:3]
	c[CKA_START_DATE] = dateAttr(cert.NotBefore)
	c[CKA_END_DATE] = dateAttr(cert.NotAfter)
	c[CKA_PUBLIC_KEY_INFO] = cert.RawSubjectPublicKeyInfo
	c[CKA_SUBJECT] = cert.RawSubject
	c[CKA_ISSUER] = cert.RawIssuer
	c[CKA_SERIAL_NUMBER] = serial
	c[CKA_VALUE] = cert.Raw
	c[CKA_URL] = []byte{}
	c[CKA_HASH_OF_SUBJECT_PUBLIC_KEY] = []byte{}
	c[CKA_HASH_OF_ISSUER_PUBLIC_KEY] = []byte{}
	c[CKA_JAVA_MIDP_SECURITY_DOMAIN] = ulongAttr(0)

	p := key(CKO_PUBLIC_KEY, false)
	p[CKA_ENCRYPT] = boolAttr(false)
	p[CKA_VERIFY] = boolAttr(false) // the module signs only; verify on the host
	p[CKA_VERIFY_RECOVER] = boolAttr(false)
	p[CKA_WRAP] = boolAttr(false)
	p[CKA_TRUSTED] = boolAttr(false)
	p[CKA_MODULUS_BITS] = ulongAttr(uint(pub.N.BitLen()))

	k := key(CKO_PRIVATE_KEY, !signOnDemand)
	k[CKA_SENSITIVE] = boolAttr(true)
	k[CKA_DECRYPT] = boolAttr(false)
	k[CKA_SIGN] = boolAttr(true)
	k[CKA_SIGN_RECOVER] = boolAttr(false)
	k[CKA_UNWRAP] = boolAttr(false)
	k[CKA_EXTRACTABLE] = boolAttr(false)
	k[CKA_ALWAYS_SENSITIVE] = boolAttr(true)
	k[CKA_NEVER_EXTRACTABLE] = boolAttr(true)
	k[CKA_WRAP_WITH_TRUSTED] = boolAttr(false)
	k[CKA_ALWAYS_AUTHENTICATE] = boolAttr(false)

	return []*object{
		{handle: next(), class: CKO_CERTIFICATE, attrs: c},
		{handle: next(), class: CKO_PUBLIC_KEY, attrs: p},
		{handle: next(), class: CKO_PRIVATE_KEY, private: !signOnDemand, attrs: k, sensitive: map[AttributeType]bool{
			CKA_PRIVATE_EXPONENT: true, CKA_PRIME_1: true, CKA_PRIME_2: true,
			CKA_EXPONENT_1: true, CKA_EXPONENT_2: true, CKA_COEFFICIENT: true,
		}},
	}, nil
}

// matches reports whether every attribute of tmpl equals the object's.
func (o *object) matches(tmpl []Attribute) bool {
	for _, a := range tmpl {
		v, ok := o.attrs[a.Type]
		if !ok || !bytes.Equal(v, a.Value) {
			return false
		}
	}
	return true
}

// fill answers a C_GetAttributeValue template (PKCS#11 base §5.7): each
// entry gets its value and length, or UnavailableInformation with the
// reason; the call's result is CKR_OK when every entry was answered, else
// one of CKR_ATTRIBUTE_SENSITIVE, CKR_ATTRIBUTE_TYPE_INVALID,
// CKR_BUFFER_TOO_SMALL — all entries are processed either way.
func (o *object) fill(tmpl []TemplateEntry) error {
	var sensitive, invalid, small bool
	for i := range tmpl {
		e := &tmpl[i]
		v, ok := o.attrs[e.Type]
		switch {
		case o.sensitive[e.Type]:
			e.Len, sensitive = UnavailableInformation, true
		case !ok:
			e.Len, invalid = UnavailableInformation, true
		case e.SizeOnly:
			e.Len = uint(len(v))
		case len(e.Buffer) < len(v):
			e.Len, small = UnavailableInformation, true
		default:
			e.Len = uint(copy(e.Buffer, v))
		}
	}
	switch {
	case sensitive:
		return CKR_ATTRIBUTE_SENSITIVE
	case invalid:
		return CKR_ATTRIBUTE_TYPE_INVALID
	case small:
		return CKR_BUFFER_TOO_SMALL
	}
	return nil
}
