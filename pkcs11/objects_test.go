package pkcs11_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"encoding/asn1"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

func boolean(b bool) []byte {
	if b {
		return []byte{1}
	}
	return []byte{0}
}

// TestFirstLoginPairsTheCard follows an unpaired card: nothing to show
// before the PIN, the three objects after it, and from then on — in any
// process — the certificate and its public key without a PIN.
func TestFirstLoginPairsTheCard(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	cert := certOf(card)
	e := newEnv(t, card)
	h := e.open(e.m)
	if objs := find(t, e.m, h); len(objs) != 0 {
		t.Fatalf("an unpaired card shows %d objects before login", len(objs))
	}
	login(t, e.m, h)
	objs := find(t, e.m, h)
	if len(objs) != 3 {
		t.Fatalf("%d objects after login, want certificate, public key, private key", len(objs))
	}
	ti, _ := e.m.TokenInfo(1)
	if got, want := text(ti.Label[:]), "MARIO ROSSI"; got != want {
		t.Errorf("label after login %q, want the holder %q", got, want)
	}

	// The cache holds the card's record, 0600 in a 0700 directory, no PIN
	// digit.
	entries, err := os.ReadDir(e.cache.Dir())
	if err != nil || len(entries) != 1 || !strings.HasSuffix(entries[0].Name(), ".card") {
		t.Fatalf("cache directory: %v %v", entries, err)
	}
	path := filepath.Join(e.cache.Dir(), entries[0].Name())
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(path)
	if bytes.Contains(raw, []byte(goodPIN)) || bytes.Contains(raw, []byte(goodPIN[:4])) && bytes.Contains(raw, []byte(goodPIN[4:])) {
		t.Error("the cache file contains PIN digits")
	}
	if st, _ := os.Stat(e.cache.Dir()); st.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v", st.Mode().Perm())
	}

	// After logout the private key hides, the rest stays.
	if err := e.m.Logout(h); err != nil {
		t.Fatal(err)
	}
	if objs := find(t, e.m, h); len(objs) != 2 {
		t.Fatalf("%d objects after logout, want certificate and public key", len(objs))
	}

	// Another process, same card: certificate and public key at once.
	card.ResetStats()
	other := e.module(pkcs11.Config{})
	h2 := e.open(other)
	certs := find(t, other, h2, classAttr(pkcs11.CKO_CERTIFICATE))
	pubs := find(t, other, h2, classAttr(pkcs11.CKO_PUBLIC_KEY))
	privs := find(t, other, h2, classAttr(pkcs11.CKO_PRIVATE_KEY))
	if len(certs) != 1 || len(pubs) != 1 || len(privs) != 0 {
		t.Fatalf("paired card before login: %d certificates, %d public keys, %d private keys", len(certs), len(pubs), len(privs))
	}
	if !bytes.Equal(attr(t, other, h2, certs[0], pkcs11.CKA_VALUE), cert.Raw) {
		t.Fatal("the cached certificate differs from the card's")
	}
	if !bytes.Equal(attr(t, other, h2, certs[0], pkcs11.CKA_ID), attr(t, other, h2, pubs[0], pkcs11.CKA_ID)) {
		t.Fatal("certificate and public key have different CKA_ID")
	}
	if pin, _ := card.Tries(); pin != 3 {
		t.Fatalf("PIN tries %d", pin)
	}
	ti2, _ := other.TokenInfo(1)
	if got := text(ti2.Label[:]); got != "MARIO ROSSI" {
		t.Errorf("label of a paired card %q", got)
	}
	if n := apdus(card); n != 0 {
		t.Errorf("insertion of a paired card: %d APDUs, want 0 (presented from its record)", n)
	}
	// The login on the paired card reads nothing again: SELECT CIE, DH,
	// DAPP and VERIFY only.
	card.ResetStats()
	login(t, other, h2)
	if n := apdus(card); n != 18 {
		t.Errorf("login on a paired card sent %d APDUs, want 18 (SELECT CIE, DH 5, DAPP 11, VERIFY)", n)
	}
}

func TestCorruptCacheIsIgnoredAndRewritten(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	entries, _ := os.ReadDir(e.cache.Dir())
	path := filepath.Join(e.cache.Dir(), entries[0].Name())
	good, _ := os.ReadFile(path)
	bad := bytes.Clone(good)
	bad[40] ^= 0xFF
	if err := os.WriteFile(path, bad, 0o600); err != nil {
		t.Fatal(err)
	}

	m2 := e.module(pkcs11.Config{})
	h2 := e.open(m2)
	if objs := find(t, m2, h2); len(objs) != 0 {
		t.Fatalf("a corrupt cache entry produced %d objects", len(objs))
	}
	login(t, m2, h2)
	if objs := find(t, m2, h2); len(objs) != 3 {
		t.Fatalf("%d objects after login", len(objs))
	}
	m3 := e.module(pkcs11.Config{})
	h3 := e.open(m3)
	if objs := find(t, m3, h3); len(objs) != 2 {
		t.Fatalf("the entry was not rewritten: %d public objects in a new module", len(objs))
	}
}

func TestObjectAttributes(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	cert := certOf(card)
	pub := cert.PublicKey.(*rsa.PublicKey)
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	c := find(t, e.m, h, classAttr(pkcs11.CKO_CERTIFICATE))[0]
	p := find(t, e.m, h, classAttr(pkcs11.CKO_PUBLIC_KEY))[0]
	k := find(t, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]

	serial, _ := asn1.Marshal(cert.SerialNumber)
	id := sha1.Sum(pub.N.Bytes())
	for _, tc := range []struct {
		name string
		obj  pkcs11.ObjectHandle
		typ  pkcs11.AttributeType
		want []byte
	}{
		{"cert value", c, pkcs11.CKA_VALUE, cert.Raw},
		{"cert subject", c, pkcs11.CKA_SUBJECT, cert.RawSubject},
		{"cert issuer", c, pkcs11.CKA_ISSUER, cert.RawIssuer},
		{"cert serial (DER INTEGER)", c, pkcs11.CKA_SERIAL_NUMBER, serial},
		{"cert type", c, pkcs11.CKA_CERTIFICATE_TYPE, ulong(uint(pkcs11.CKC_X_509))},
		{"cert id", c, pkcs11.CKA_ID, id[:]},
		{"cert label", c, pkcs11.CKA_LABEL, []byte("CIE Authentication")},
		{"cert token", c, pkcs11.CKA_TOKEN, boolean(true)},
		{"cert private", c, pkcs11.CKA_PRIVATE, boolean(false)},
		{"cert start", c, pkcs11.CKA_START_DATE, []byte(cert.NotBefore.UTC().Format("20060102"))},
		{"cert end", c, pkcs11.CKA_END_DATE, []byte(cert.NotAfter.UTC().Format("20060102"))},
		{"pub id", p, pkcs11.CKA_ID, id[:]},
		{"pub key type", p, pkcs11.CKA_KEY_TYPE, ulong(uint(pkcs11.CKK_RSA))},
		{"pub modulus", p, pkcs11.CKA_MODULUS, pub.N.Bytes()},
		{"pub exponent", p, pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()},
		{"pub bits", p, pkcs11.CKA_MODULUS_BITS, ulong(2048)},
		{"pub private", p, pkcs11.CKA_PRIVATE, boolean(false)},
		{"pub subject", p, pkcs11.CKA_SUBJECT, cert.RawSubject},
		{"priv id", k, pkcs11.CKA_ID, id[:]},
		{"priv private", k, pkcs11.CKA_PRIVATE, boolean(true)},
		{"priv sign", k, pkcs11.CKA_SIGN, boolean(true)},
		{"priv sensitive", k, pkcs11.CKA_SENSITIVE, boolean(true)},
		{"priv extractable", k, pkcs11.CKA_EXTRACTABLE, boolean(false)},
		{"priv always authenticate", k, pkcs11.CKA_ALWAYS_AUTHENTICATE, boolean(false)},
		{"priv decrypt", k, pkcs11.CKA_DECRYPT, boolean(false)},
		{"priv sign recover", k, pkcs11.CKA_SIGN_RECOVER, boolean(false)},
		{"priv key type", k, pkcs11.CKA_KEY_TYPE, ulong(uint(pkcs11.CKK_RSA))},
		{"priv modulus", k, pkcs11.CKA_MODULUS, pub.N.Bytes()},
		{"priv exponent", k, pkcs11.CKA_PUBLIC_EXPONENT, big.NewInt(int64(pub.E)).Bytes()},
		{"priv subject", k, pkcs11.CKA_SUBJECT, cert.RawSubject},
	} {
		if got := attr(t, e.m, h, tc.obj, tc.typ); !bytes.Equal(got, tc.want) {
			t.Errorf("%s: %x, want %x", tc.name, got, tc.want)
		}
	}
}

func TestGetAttributeValueProtocol(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	c := find(t, e.m, h, classAttr(pkcs11.CKO_CERTIFICATE))[0]
	k := find(t, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]
	der := certOf(card).Raw

	// Sizes first.
	q := []pkcs11.TemplateEntry{{Type: pkcs11.CKA_VALUE, SizeOnly: true}, {Type: pkcs11.CKA_LABEL, SizeOnly: true}}
	wantRV(t, e.m.GetAttributeValue(h, c, q), pkcs11.CKR_OK)
	if q[0].Len != uint(len(der)) || q[1].Len != 18 {
		t.Fatalf("sizes %d %d", q[0].Len, q[1].Len)
	}

	// One short buffer: that entry fails, the others are still filled.
	label := make([]byte, 64)
	q = []pkcs11.TemplateEntry{
		{Type: pkcs11.CKA_VALUE, Buffer: make([]byte, 10)},
		{Type: pkcs11.CKA_LABEL, Buffer: label},
	}
	wantRV(t, e.m.GetAttributeValue(h, c, q), pkcs11.CKR_BUFFER_TOO_SMALL)
	if q[0].Len != pkcs11.UnavailableInformation {
		t.Errorf("short buffer length %d, want CK_UNAVAILABLE_INFORMATION", q[0].Len)
	}
	if string(label[:q[1].Len]) != "CIE Authentication" {
		t.Errorf("label not filled next to a short buffer: %q", label[:q[1].Len])
	}

	// Unknown attribute.
	q = []pkcs11.TemplateEntry{{Type: pkcs11.CKA_MODULUS, SizeOnly: true}, {Type: pkcs11.CKA_ID, SizeOnly: true}}
	wantRV(t, e.m.GetAttributeValue(h, c, q), pkcs11.CKR_ATTRIBUTE_TYPE_INVALID)
	if q[0].Len != pkcs11.UnavailableInformation || q[1].Len != 20 {
		t.Errorf("lengths %d %d", q[0].Len, q[1].Len)
	}

	// Sensitive attributes of the private key.
	for _, typ := range []pkcs11.AttributeType{pkcs11.CKA_PRIVATE_EXPONENT, pkcs11.CKA_PRIME_1, pkcs11.CKA_PRIME_2, pkcs11.CKA_EXPONENT_1, pkcs11.CKA_EXPONENT_2, pkcs11.CKA_COEFFICIENT} {
		q = []pkcs11.TemplateEntry{{Type: typ, Buffer: make([]byte, 512)}, {Type: pkcs11.CKA_SIGN, Buffer: make([]byte, 1)}}
		wantRV(t, e.m.GetAttributeValue(h, k, q), pkcs11.CKR_ATTRIBUTE_SENSITIVE)
		if q[0].Len != pkcs11.UnavailableInformation || q[1].Len != 1 || q[1].Buffer[0] != 1 {
			t.Errorf("%v: lengths %d %d", typ, q[0].Len, q[1].Len)
		}
	}

	// Private objects are invalid handles once logged out.
	e.m.Logout(h)
	wantRV(t, e.m.GetAttributeValue(h, k, []pkcs11.TemplateEntry{{Type: pkcs11.CKA_SIGN, SizeOnly: true}}), pkcs11.CKR_OBJECT_HANDLE_INVALID)
	wantRV(t, e.m.GetAttributeValue(h, 12345, []pkcs11.TemplateEntry{{Type: pkcs11.CKA_SIGN, SizeOnly: true}}), pkcs11.CKR_OBJECT_HANDLE_INVALID)
}

func TestFindObjectsTemplates(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	pub := certOf(card).PublicKey.(*rsa.PublicKey)
	id := sha1.Sum(pub.N.Bytes())
	idAttr := pkcs11.Attribute{Type: pkcs11.CKA_ID, Value: id[:]}

	if got := find(t, e.m, h, idAttr); len(got) != 3 {
		t.Errorf("by CKA_ID: %d objects, want 3", len(got))
	}
	if got := find(t, e.m, h, idAttr, classAttr(pkcs11.CKO_PUBLIC_KEY)); len(got) != 1 {
		t.Errorf("by CKA_ID and class: %d objects", len(got))
	}
	if got := find(t, e.m, h, pkcs11.Attribute{Type: pkcs11.CKA_LABEL, Value: []byte("other")}); len(got) != 0 {
		t.Errorf("wrong label matched %d objects", len(got))
	}
	if got := find(t, e.m, h, pkcs11.Attribute{Type: pkcs11.CKA_SIGN, Value: boolean(true)}); len(got) != 1 {
		t.Errorf("CKA_SIGN true: %d objects", len(got))
	}
	if got := find(t, e.m, h, pkcs11.Attribute{Type: pkcs11.CKA_VALUE, Value: certOf(card).Raw}); len(got) != 1 {
		t.Errorf("by certificate value: %d objects", len(got))
	}
	// An attribute no object has matches nothing.
	if got := find(t, e.m, h, pkcs11.Attribute{Type: pkcs11.CKA_APPLICATION, Value: []byte("x")}); len(got) != 0 {
		t.Errorf("unknown attribute matched %d objects", len(got))
	}
	all := find(t, e.m, h)
	if slices.Contains(all, 0) {
		t.Error("handle 0 (CK_INVALID_HANDLE) returned")
	}

	if err := e.m.FindObjectsInit(h, nil); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.FindObjectsInit(h, nil), pkcs11.CKR_OPERATION_ACTIVE)
	one, _ := e.m.FindObjects(h, 1)
	if len(one) != 1 {
		t.Fatalf("FindObjects(1) returned %d", len(one))
	}
	e.m.FindObjectsFinal(h)
	_, err := e.m.FindObjects(h, 1)
	wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	wantRV(t, e.m.FindObjectsFinal(h), pkcs11.CKR_OPERATION_NOT_INITIALIZED)
}
