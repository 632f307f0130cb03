package ciesim

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"testing"

	"github.com/ciedesktop/cie-desktop/tlv"
)

// node is a generic DER node for the CMS check below, which walks the SOD
// without the builder's types.
type node struct {
	raw asn1.RawValue
}

func parseNode(t *testing.T, b []byte) (node, []byte) {
	t.Helper()
	var rv asn1.RawValue
	rest, err := asn1.Unmarshal(b, &rv)
	if err != nil {
		t.Fatalf("parsing DER: %v", err)
	}
	return node{rv}, rest
}

func (n node) children(t *testing.T) []node {
	t.Helper()
	var out []node
	b := n.raw.Bytes
	for len(b) > 0 {
		var c node
		c, b = parseNode(t, b)
		out = append(out, c)
	}
	return out
}

func (n node) oid(t *testing.T) asn1.ObjectIdentifier {
	t.Helper()
	var o asn1.ObjectIdentifier
	if _, err := asn1.Unmarshal(n.raw.FullBytes, &o); err != nil {
		t.Fatalf("not an OID: %v", err)
	}
	return o
}

func (n node) integer(t *testing.T) int {
	t.Helper()
	var i int
	if _, err := asn1.Unmarshal(n.raw.FullBytes, &i); err != nil {
		t.Fatalf("not an INTEGER: %v", err)
	}
	return i
}

// checkCMS is a generic check of a CMS SignedData with one signer that
// uses signed attributes: it returns the eContent after verifying the
// messageDigest and the RSA signature with the embedded certificate.
func checkCMS(t *testing.T, der []byte) (eContentType asn1.ObjectIdentifier, eContent []byte, signer *x509.Certificate) {
	t.Helper()
	ci, rest := parseNode(t, der)
	if len(rest) != 0 {
		t.Fatalf("%d bytes after ContentInfo", len(rest))
	}
	cik := ci.children(t)
	if !cik[0].oid(t).Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}) {
		t.Fatalf("content type %v", cik[0].oid(t))
	}
	sd := cik[1].children(t)[0].children(t) // [0] EXPLICIT SignedData
	if v := sd[0].integer(t); v != 3 {
		t.Errorf("SignedData version %d", v)
	}
	encap := sd[2].children(t)
	eContentType = encap[0].oid(t)
	var octets []byte
	if _, err := asn1.Unmarshal(encap[1].raw.Bytes, &octets); err != nil {
		t.Fatalf("eContent: %v", err)
	}
	eContent = octets
	var err error
	certs := sd[3]
	if certs.raw.Class != asn1.ClassContextSpecific || certs.raw.Tag != 0 {
		t.Fatalf("no certificates [0]")
	}
	if signer, err = x509.ParseCertificate(certs.children(t)[0].raw.FullBytes); err != nil {
		t.Fatalf("embedded certificate: %v", err)
	}
	signers := sd[len(sd)-1].children(t)
	if len(signers) != 1 {
		t.Fatalf("%d signers", len(signers))
	}
	si := signers[0].children(t)
	sid := si[1].children(t)
	if !bytes.Equal(sid[0].raw.FullBytes, signer.RawIssuer) {
		t.Error("signer issuer does not name the embedded certificate's issuer")
	}
	attrs := si[3]
	if attrs.raw.Class != asn1.ClassContextSpecific || attrs.raw.Tag != 0 {
		t.Fatal("no signed attributes")
	}
	var sawType, sawDigest bool
	for _, a := range attrs.children(t) {
		ak := a.children(t)
		val := ak[1].children(t)[0]
		switch {
		case ak[0].oid(t).Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}):
			sawType = val.oid(t).Equal(eContentType)
		case ak[0].oid(t).Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}):
			sum := sha256.Sum256(eContent)
			sawDigest = bytes.Equal(val.raw.Bytes, sum[:])
		}
	}
	if !sawType || !sawDigest {
		t.Errorf("contentType ok %v, messageDigest ok %v", sawType, sawDigest)
	}
	if alg := si[4].children(t)[0].oid(t); !alg.Equal(asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}) {
		t.Errorf("signature algorithm %v", alg)
	}
	// The signature covers the attributes re-tagged as a universal SET.
	set := append([]byte(nil), attrs.raw.FullBytes...)
	set[0] = 0x31
	h := sha256.Sum256(set)
	if err := rsa.VerifyPKCS1v15(signer.PublicKey.(*rsa.PublicKey), crypto.SHA256, h[:], si[5].raw.Bytes); err != nil {
		t.Errorf("SOD signature: %v", err)
	}
	return eContentType, eContent, signer
}

// TestSOD reads EF.SOD from the card, checks the CMS and compares every
// data group hash with the card's files.
func TestSOD(t *testing.T) {
	c := newTestCard(t, "gemalto2")
	st := c.State()
	sodFile := c.files[dfCIE][fidSOD].data
	outer, _, err := tlv.ParseOne(sodFile)
	if err != nil {
		t.Fatal(err)
	}
	typ, content, signer := checkCMS(t, outer.Raw)
	if !typ.Equal(asn1.ObjectIdentifier{2, 23, 136, 1, 1, 1}) {
		t.Errorf("eContentType %v", typ)
	}
	if !bytes.Equal(signer.Raw, st.DSCert.Raw) || signer.CheckSignatureFrom(st.CACert) != nil {
		t.Error("SOD not signed by the Document Signer of the test CA")
	}
	var lds struct {
		Version int
		Alg     struct{ Algorithm asn1.ObjectIdentifier }
		Hashes  []struct {
			Number int
			Hash   []byte
		}
	}
	if _, err := asn1.Unmarshal(content, &lds); err != nil {
		t.Fatalf("LDSSecurityObject: %v", err)
	}
	if lds.Version != 0 || !lds.Alg.Algorithm.Equal(asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}) {
		t.Errorf("LDS version %d, algorithm %v", lds.Version, lds.Alg.Algorithm)
	}
	der := func(fid uint16, df dfID) []byte {
		f := c.files[df][fid].data
		o, _, err := tlv.ParseOne(f)
		if err != nil {
			t.Fatalf("file %04X: %v", fid, err)
		}
		return o.Raw
	}
	want := map[int][]byte{
		0xA1: c.files[dfCIE][fidIDServizi].data[:12],
		0xA2: c.files[dfCIE][fidSeriale].data[:9],
		0xA3: der(fidCertCIE, dfCIE),
		0xA4: der(fidIntKpub, dfCIE),
		0xA5: der(fidServiziKpub, dfCIE),
		0x1B: der(fidDH, dfRoot),
	}
	if len(lds.Hashes) != len(want) {
		t.Errorf("%d data group hashes, want %d", len(lds.Hashes), len(want))
	}
	for _, dg := range lds.Hashes {
		sum := sha256.Sum256(want[dg.Number])
		if !bytes.Equal(dg.Hash, sum[:]) {
			t.Errorf("DG %02X hash mismatch", dg.Number)
		}
	}
}
