package ciesim

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"sort"
)

// Identifiers of applications and files (cie-protocol.md §2, §3.1).
var (
	aidIAS = []byte{0xA0, 0x00, 0x00, 0x00, 0x30, 0x80, 0x00, 0x00, 0x00, 0x09, 0x81, 0x60, 0x01}
	aidCIE = []byte{0xA0, 0x00, 0x00, 0x00, 0x00, 0x39}
)

const (
	fidMF          = 0x3F00
	fidSNICC       = 0xD003
	fidDH          = 0xD004
	fidATR         = 0x2F01
	fidIDServizi   = 0x1001
	fidSeriale     = 0x1002
	fidCertCIE     = 0x1003
	fidIntKpub     = 0x1004
	fidServiziKpub = 0x1005
	fidSOD         = 0x1006
)

// dfID names the two dedicated files of the card: the root (MF, also the
// IAS application) and DF_CIE.
type dfID int

const (
	dfRoot dfID = iota
	dfCIE
)

// access is the read condition of an elementary file.
type access int

const (
	accFree access = iota // plain or SM, no condition
	accSM                 // SM after device authentication (EF.Seriale)
	accPIN                // SM after device authentication and PIN (EF.CertCIE)
)

// file is one transparent elementary file.
type file struct {
	fid  uint16
	sfi  byte // 0 = none
	df   dfID
	acc  access
	data []byte
}

// padFile appends zero bytes after a DER object, as the card files hold it
// (§3.1: "padded after the DER end"): at least one byte, up to a multiple of
// 256.
func padFile(b []byte) []byte {
	n := (len(b)/256 + 1) * 256
	out := make([]byte, n)
	copy(out, b)
	return out
}

// dhDomainDER encodes EF.DH as X9.42 DomainParameters SEQUENCE { p, g, q }.
func dhDomainDER(g DHGroup) ([]byte, error) {
	return asn1.Marshal(struct{ P, G, Q *big.Int }{g.P, g.G, g.Q})
}

// buildFiles builds the file system of §3.1 and the SOD of §3.2 from the
// card's state and holder.
func buildFiles(f *family, st *State, h Holder, snicc [12]byte, cert *x509.Certificate) (map[dfID]map[uint16]*file, error) {
	dh, err := dhDomainDER(st.DH)
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding EF.DH: %w", err)
	}
	seriale := make([]byte, 16)
	copy(seriale, h.CardNumber)
	intKpub := x509.MarshalPKCS1PublicKey(&st.ChipKey.PublicKey)        // SEQUENCE { n, e }
	serviziKpub := x509.MarshalPKCS1PublicKey(&st.ServiziKey.PublicKey) // SEQUENCE { n, e }
	sod, err := buildSOD(st, []dgHash{
		{0xA1, []byte(h.IDServizi)},
		{0xA2, seriale[:9]},
		{0xA3, cert.Raw},
		{0xA4, intKpub},
		{0xA5, serviziKpub},
		{0x1B, dh},
	})
	if err != nil {
		return nil, err
	}
	all := []*file{
		{fid: fidSNICC, df: dfRoot, data: append([]byte(nil), snicc[:]...)},
		{fid: fidDH, sfi: 0x1B, df: dfRoot, data: padFile(dh)},
		{fid: fidATR, sfi: 0x1D, df: dfRoot, data: append([]byte(nil), f.efATR...)},
		{fid: fidIDServizi, sfi: 0x01, df: dfCIE, data: []byte(h.IDServizi)},
		{fid: fidSeriale, df: dfCIE, acc: accSM, data: seriale},
		{fid: fidCertCIE, df: dfCIE, acc: accPIN, data: padFile(cert.Raw)},
		{fid: fidIntKpub, sfi: 0x04, df: dfCIE, data: padFile(intKpub)},
		{fid: fidServiziKpub, sfi: 0x05, df: dfCIE, data: padFile(serviziKpub)},
		{fid: fidSOD, sfi: 0x06, df: dfCIE, data: padFile(sod)},
	}
	out := map[dfID]map[uint16]*file{dfRoot: {}, dfCIE: {}}
	for _, fl := range all {
		out[fl.df][fl.fid] = fl
	}
	return out, nil
}

// Object identifiers of the SOD (§3.2, RFC 5652, ICAO 9303-10).
var (
	oidSignedData     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidLDSSecurityObj = asn1.ObjectIdentifier{2, 23, 136, 1, 1, 1}
	oidSHA256         = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA256WithRSA  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidContentType    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
)

// dgHash is one entry of the LDS security object: the reference's "DG"
// number and the data it hashes.
type dgHash struct {
	number int
	data   []byte
}

type dataGroupHash struct {
	Number int
	Hash   []byte
}

type ldsSecurityObject struct {
	Version       int
	HashAlgorithm pkix.AlgorithmIdentifier
	Hashes        []dataGroupHash
}

type encapContentInfo struct {
	EContentType asn1.ObjectIdentifier
	EContent     []byte `asn1:"explicit,tag:0"`
}

type issuerAndSerialNumber struct {
	Issuer asn1.RawValue
	Serial *big.Int
}

type signerInfo struct {
	Version            int
	SID                issuerAndSerialNumber
	DigestAlgorithm    pkix.AlgorithmIdentifier
	SignedAttrs        asn1.RawValue // [0] IMPLICIT SET OF Attribute
	SignatureAlgorithm pkix.AlgorithmIdentifier
	Signature          []byte
}

type signedData struct {
	Version          int
	DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
	EncapContentInfo encapContentInfo
	Certificates     asn1.RawValue // [0] IMPLICIT SET OF Certificate
	SignerInfos      []signerInfo  `asn1:"set"`
}

type contentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT
}

type attribute struct {
	Type   asn1.ObjectIdentifier
	Values []asn1.RawValue `asn1:"set"`
}

// buildSOD builds EF.SOD as architecture.md fixes it: CMS SignedData v3,
// eContentType 2.23.136.1.1.1, LDSSecurityObject v0 with SHA-256 hashes of
// the given data groups, signed attributes contentType + messageDigest,
// sha256WithRSAEncryption by the Document Signer, whose certificate is
// embedded.
func buildSOD(st *State, dgs []dgHash) ([]byte, error) {
	sha256Alg := pkix.AlgorithmIdentifier{Algorithm: oidSHA256, Parameters: asn1.NullRawValue}
	lds := ldsSecurityObject{HashAlgorithm: sha256Alg}
	for _, dg := range dgs {
		sum := sha256.Sum256(dg.data)
		lds.Hashes = append(lds.Hashes, dataGroupHash{Number: dg.number, Hash: sum[:]})
	}
	econtent, err := asn1.Marshal(lds)
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding LDS security object: %w", err)
	}
	digest := sha256.Sum256(econtent)
	ctValue, err := asn1.Marshal(oidLDSSecurityObj)
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding SOD: %w", err)
	}
	mdValue, err := asn1.Marshal(digest[:])
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding SOD: %w", err)
	}
	var attrs [][]byte
	for _, a := range []attribute{
		{Type: oidContentType, Values: []asn1.RawValue{{FullBytes: ctValue}}},
		{Type: oidMessageDigest, Values: []asn1.RawValue{{FullBytes: mdValue}}},
	} {
		b, err := asn1.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("ciesim: encoding SOD attribute: %w", err)
		}
		attrs = append(attrs, b)
	}
	// DER: the elements of a SET OF are sorted by their encodings.
	sort.Slice(attrs, func(i, j int) bool { return bytes.Compare(attrs[i], attrs[j]) < 0 })
	attrContent := bytes.Join(attrs, nil)
	// The signature covers the attributes with the universal SET tag (RFC 5652 §5.4).
	signedAttrsSET, err := asn1.Marshal(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: attrContent})
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding SOD: %w", err)
	}
	h := sha256.Sum256(signedAttrsSET)
	sig, err := rsa.SignPKCS1v15(nil, st.DSKey, crypto.SHA256, h[:])
	if err != nil {
		return nil, fmt.Errorf("ciesim: signing SOD: %w", err)
	}
	sd := signedData{
		Version:          3,
		DigestAlgorithms: []pkix.AlgorithmIdentifier{sha256Alg},
		EncapContentInfo: encapContentInfo{EContentType: oidLDSSecurityObj, EContent: econtent},
		Certificates:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: st.DSCert.Raw},
		SignerInfos: []signerInfo{{
			Version:            1,
			SID:                issuerAndSerialNumber{Issuer: asn1.RawValue{FullBytes: st.DSCert.RawIssuer}, Serial: st.DSCert.SerialNumber},
			DigestAlgorithm:    sha256Alg,
			SignedAttrs:        asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: attrContent},
			SignatureAlgorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA256WithRSA, Parameters: asn1.NullRawValue},
			Signature:          sig,
		}},
	}
	sdDER, err := asn1.Marshal(sd)
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding SignedData: %w", err)
	}
	out, err := asn1.Marshal(contentInfo{
		ContentType: oidSignedData,
		Content:     asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: sdDER},
	})
	if err != nil {
		return nil, fmt.Errorf("ciesim: encoding SOD: %w", err)
	}
	return out, nil
}
