package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	_ "crypto/sha1" // hashes of files signed by others
	_ "crypto/sha256"
	_ "crypto/sha512"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of RFC 5652 (CMS), RFC 5035 (ESS), RFC 5754 and RFC 8017.
var (
	oidData                 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidSignedData           = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidContentType          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSigningTime          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
	oidCountersignature     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 6}
	oidSigningCertificate   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 12}
	oidSigningCertificateV2 = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}

	oidSHA1   = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	oidSHA256 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	oidSHA384 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}
	oidSHA512 = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}

	oidRSAEncryption   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidSHA1WithRSA     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}
	oidSHA256WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}
	oidSHA384WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}
	oidSHA512WithRSA   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}
	oidECDSAWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 2}
	oidECDSAWithSHA384 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 3}
	oidECDSAWithSHA512 = asn1.ObjectIdentifier{1, 2, 840, 10045, 4, 3, 4}
	oidECPublicKey     = asn1.ObjectIdentifier{1, 2, 840, 10045, 2, 1}
)

// hashOIDs maps the digest algorithms this package computes.
var hashOIDs = []struct {
	oid asn1.ObjectIdentifier
	h   crypto.Hash
}{
	{oidSHA256, crypto.SHA256},
	{oidSHA384, crypto.SHA384},
	{oidSHA512, crypto.SHA512},
	{oidSHA1, crypto.SHA1},
}

func hashForOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, e := range hashOIDs {
		if e.oid.Equal(oid) {
			return e.h, true
		}
	}
	return 0, false
}

func oidForHash(h crypto.Hash) (asn1.ObjectIdentifier, bool) {
	for _, e := range hashOIDs {
		if e.h == h {
			return e.oid, true
		}
	}
	return nil, false
}

// ErrUnsupportedKey: the signer's key is neither RSA nor ECDSA.
var ErrUnsupportedKey = errors.New("sign: unsupported key type (RSA or ECDSA only)")

// contextSigner is a crypto.Signer that can be cancelled, such as
// *cie.Signer (the card asks for seconds per signature).
type contextSigner interface {
	SignContext(ctx context.Context, rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error)
}

// digestAlgorithmID is the DER AlgorithmIdentifier of h with absent
// parameters (RFC 5754 §2).
func digestAlgorithmID(h crypto.Hash) []byte {
	oid, ok := oidForHash(h)
	if !ok {
		panic("sign: no OID for " + h.String())
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(oid) })
	return b.BytesOrPanic()
}

// signatureAlgorithmID is the DER AlgorithmIdentifier of the signature made
// by pub over a hash h: sha256WithRSAEncryption with NULL parameters (RFC
// 4055 §5, what the CIE SDK writes) or ecdsa-with-SHA256 (RFC 5758 §3.2).
func signatureAlgorithmID(pub crypto.PublicKey, h crypto.Hash) ([]byte, error) {
	var oid asn1.ObjectIdentifier
	null := false
	switch pub.(type) {
	case *rsa.PublicKey:
		null = true
		switch h {
		case crypto.SHA256:
			oid = oidSHA256WithRSA
		case crypto.SHA384:
			oid = oidSHA384WithRSA
		case crypto.SHA512:
			oid = oidSHA512WithRSA
		}
	case *ecdsa.PublicKey:
		switch h {
		case crypto.SHA256:
			oid = oidECDSAWithSHA256
		case crypto.SHA384:
			oid = oidECDSAWithSHA384
		case crypto.SHA512:
			oid = oidECDSAWithSHA512
		}
	default:
		return nil, ErrUnsupportedKey
	}
	if oid == nil {
		return nil, fmt.Errorf("sign: unsupported hash %v", h)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		if null {
			b.AddASN1NULL()
		}
	})
	return b.Bytes()
}

// rsaSignatureLen is the exact length of an RSA signature by pub (I2OSP to
// the modulus length), or 0 when pub is not RSA and the length is only known
// after signing.
func rsaSignatureLen(pub crypto.PublicKey) int {
	if k, ok := pub.(*rsa.PublicKey); ok {
		return k.Size()
	}
	return 0
}

// setOf encodes elems as a DER SET OF with the given tag: the encodings are
// sorted (X.690 §11.6) and duplicates dropped.
func setOf(tag cbasn1.Tag, elems [][]byte) []byte {
	sorted := slices.Clone(elems)
	slices.SortFunc(sorted, bytes.Compare)
	sorted = slices.CompactFunc(sorted, bytes.Equal)
	var b cryptobyte.Builder
	b.AddASN1(tag, func(b *cryptobyte.Builder) {
		for _, e := range sorted {
			b.AddBytes(e)
		}
	})
	return b.BytesOrPanic()
}

// attribute encodes Attribute ::= SEQUENCE { attrType, attrValues SET OF }
// with one value (DER).
func attribute(oid asn1.ObjectIdentifier, value []byte) []byte {
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(oid)
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { b.AddBytes(value) })
	})
	return b.BytesOrPanic()
}

// encodeTime is signingTime's Time: UTCTime from 1950 to 2049, else
// GeneralizedTime (RFC 5652 §11.3), in UTC with whole seconds.
func encodeTime(t time.Time) ([]byte, error) {
	t = t.UTC().Truncate(time.Second)
	if t.Year() >= 1950 && t.Year() < 2050 {
		return asn1.MarshalWithParams(t, "utc")
	}
	return asn1.MarshalWithParams(t, "generalized")
}

// signingCertificateV2 encodes the ESS attribute value (RFC 5035 §3):
// SigningCertificateV2 { certs { ESSCertIDv2 { [hashAlgorithm,] certHash,
// issuerSerial { GeneralNames { directoryName issuer }, serial } } } }.
// hashAlgorithm is omitted for SHA-256, its DEFAULT, as DER requires.
func signingCertificateV2(cert *x509.Certificate, h crypto.Hash) []byte {
	d := h.New()
	d.Write(cert.Raw)
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SigningCertificateV2
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certs
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ESSCertIDv2
				if h != crypto.SHA256 {
					b.AddBytes(digestAlgorithmID(h))
				}
				b.AddASN1OctetString(d.Sum(nil))
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerSerial
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // GeneralNames
						b.AddASN1(cbasn1.Tag(4).ContextSpecific().Constructed(), func(b *cryptobyte.Builder) {
							b.AddBytes(cert.RawIssuer)
						})
					})
					b.AddASN1BigInt(cert.SerialNumber)
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// attrSpec lists the signed attributes of one SignerInfo.
type attrSpec struct {
	contentType asn1.ObjectIdentifier // nil for a counter-signature (RFC 5652 §11.4)
	digest      []byte                // message-digest value
	signingTime time.Time             // zero: no signing-time (PAdES B-B)
	cert        *x509.Certificate     // for signing-certificate-v2
	hash        crypto.Hash
}

// signedAttributes returns the DER Attributes of s, one per element.
func signedAttributes(s attrSpec) ([][]byte, error) {
	var attrs [][]byte
	if s.contentType != nil {
		v, err := asn1.Marshal(s.contentType)
		if err != nil {
			return nil, err
		}
		attrs = append(attrs, attribute(oidContentType, v))
	}
	v, err := asn1.Marshal(s.digest)
	if err != nil {
		return nil, err
	}
	attrs = append(attrs, attribute(oidMessageDigest, v))
	if !s.signingTime.IsZero() {
		v, err := encodeTime(s.signingTime)
		if err != nil {
			return nil, fmt.Errorf("encoding the signing time: %w", err)
		}
		attrs = append(attrs, attribute(oidSigningTime, v))
	}
	attrs = append(attrs, attribute(oidSigningCertificateV2, signingCertificateV2(s.cert, s.hash)))
	return attrs, nil
}

// signerKey is what one signature needs: the signer, its certificate and
// the source of randomness (ECDSA only; the card pads RSA itself).
type signerKey struct {
	signer crypto.Signer
	cert   *x509.Certificate
	rand   io.Reader
	hash   crypto.Hash
}

// signDigest has the signer sign digest (PKCS#1 v1.5 for RSA) and checks the
// result against the certificate's key, so that a card holding another key,
// or a corrupted answer, never produces a file that fails later. RSA
// signatures are left-padded to the modulus length.
func (k signerKey) signDigest(ctx context.Context, digest []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var sig []byte
	var err error
	if cs, ok := k.signer.(contextSigner); ok {
		sig, err = cs.SignContext(ctx, k.rand, digest, k.hash)
	} else {
		sig, err = k.signer.Sign(k.rand, digest, k.hash)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	switch pub := k.cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if len(sig) > pub.Size() {
			return nil, fmt.Errorf("signing: %d-byte RSA signature for a %d-byte key", len(sig), pub.Size())
		}
		if len(sig) < pub.Size() {
			sig = append(make([]byte, pub.Size()-len(sig)), sig...)
		}
		if err := rsa.VerifyPKCS1v15(pub, k.hash, digest, sig); err != nil {
			return nil, errors.New("signing: the signature does not match the certificate's public key (is it the right card?)")
		}
	case *ecdsa.PublicKey:
		if !ecdsa.VerifyASN1(pub, digest, sig) {
			return nil, errors.New("signing: the signature does not match the certificate's public key")
		}
	default:
		return nil, ErrUnsupportedKey
	}
	return sig, nil
}

// signedAttrsTag is the [0] IMPLICIT tag of signedAttrs in SignerInfo.
var (
	signedAttrsTag   = cbasn1.Tag(0).ContextSpecific().Constructed()
	unsignedAttrsTag = cbasn1.Tag(1).ContextSpecific().Constructed()
)

// signerInfo builds and signs one SignerInfo (RFC 5652 §5.3), version 1
// with IssuerAndSerialNumber; unsigned is the DER of the unsignedAttrs
// element or nil.
func (k signerKey) signerInfo(ctx context.Context, spec attrSpec, unsigned []byte) ([]byte, error) {
	attrs, err := signedAttributes(spec)
	if err != nil {
		return nil, err
	}
	set := setOf(cbasn1.SET, attrs) // the signature covers the SET OF encoding
	d := k.hash.New()
	d.Write(set)
	sig, err := k.signDigest(ctx, d.Sum(nil))
	if err != nil {
		return nil, err
	}
	return k.encodeSignerInfo(set, sig, unsigned)
}

// encodeSignerInfo assembles a SignerInfo from the DER SET of signed
// attributes and the signature.
func (k signerKey) encodeSignerInfo(attrSet, sig, unsigned []byte) ([]byte, error) {
	sigAlg, err := signatureAlgorithmID(k.cert.PublicKey, k.hash)
	if err != nil {
		return nil, err
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(1)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // IssuerAndSerialNumber
			b.AddBytes(k.cert.RawIssuer)
			b.AddASN1BigInt(k.cert.SerialNumber)
		})
		b.AddBytes(digestAlgorithmID(k.hash))
		b.AddASN1(signedAttrsTag, func(b *cryptobyte.Builder) { b.AddBytes(attrSet[headerLen(attrSet):]) })
		b.AddBytes(sigAlg)
		b.AddASN1OctetString(sig)
		if unsigned != nil {
			b.AddBytes(unsigned)
		}
	})
	return b.Bytes()
}

// signerInfoLen is the length of the SignerInfo that signerInfo will
// produce, known before signing when the signature length is fixed (RSA).
func (k signerKey) signerInfoLen(spec attrSpec) (int, error) {
	n := rsaSignatureLen(k.cert.PublicKey)
	if n == 0 {
		return 0, nil
	}
	spec.digest = make([]byte, k.hash.Size())
	attrs, err := signedAttributes(spec)
	if err != nil {
		return 0, err
	}
	si, err := k.encodeSignerInfo(setOf(cbasn1.SET, attrs), make([]byte, n), nil)
	return len(si), err
}

// headerLen is the length of the tag and length octets of the DER element
// at the start of b (single-byte tags).
func headerLen(b []byte) int {
	if len(b) < 2 || b[1] < 0x80 {
		return 2
	}
	return 2 + int(b[1]&0x7F)
}

// appendHeader appends a DER tag (one byte) and definite length.
func appendHeader(dst []byte, tag byte, n int64) []byte {
	dst = append(dst, tag)
	if n < 0x80 {
		return append(dst, byte(n))
	}
	var l [8]byte
	i := len(l)
	for v := n; v > 0; v >>= 8 {
		i--
		l[i] = byte(v)
	}
	dst = append(dst, 0x80|byte(len(l)-i))
	return append(dst, l[i:]...)
}

// wrap encodes a DER element of tag around the concatenation of parts.
func wrap(tag byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := appendHeader(make([]byte, 0, n+10), tag, int64(n))
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func mustMarshal(v any) []byte {
	b, err := asn1.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// sdParts are the fields of a SignedData other than its content, each as
// the DER of its elements.
type sdParts struct {
	version      int
	digestAlgs   [][]byte // AlgorithmIdentifier
	eContentType asn1.ObjectIdentifier
	certs        [][]byte // CertificateChoices
	crls         [][]byte // RevocationInfoChoice
	signerInfos  [][]byte // SignerInfo
}

// trailer encodes certificates, crls and signerInfos: the part of the
// SignedData that follows the content. These sets keep their order (the
// signer's certificate first, the signatures in the order they were added,
// as the CIE SDK and OpenSSL do) rather than the DER sort order: CMS is
// BER, only the signed attributes must be DER (RFC 5652 §5.4), and a
// stable order keeps "signature 1" the same signature after a new one is
// added. Duplicate certificates are dropped.
func (p *sdParts) trailer() []byte {
	var out []byte
	if len(p.certs) > 0 {
		out = append(out, orderedSet(0xA0, dedupe(p.certs))...)
	}
	if len(p.crls) > 0 {
		out = append(out, orderedSet(0xA1, dedupe(p.crls))...)
	}
	return append(out, orderedSet(0x31, p.signerInfos)...)
}

// orderedSet encodes a SET OF in the given order.
func orderedSet(tag byte, elems [][]byte) []byte { return wrap(tag, elems...) }

// dedupe drops repeated elements, keeping the first of each.
func dedupe(elems [][]byte) [][]byte {
	var out [][]byte
	for _, e := range elems {
		if !slices.ContainsFunc(out, func(o []byte) bool { return bytes.Equal(o, e) }) {
			out = append(out, e)
		}
	}
	return out
}

// prefix encodes everything that precedes the content octets. With
// contentLen < 0 the content is absent (detached). trailerLen is the length
// of trailer(); with trailerLen < 0 the three outer lengths are indefinite
// (BER) and closeIndefinite must follow the trailer.
func (p *sdParts) prefix(contentLen int64, trailerLen int64) []byte {
	version := mustMarshal(p.version)
	algs := orderedSet(0x31, dedupe(p.digestAlgs))
	ctype := mustMarshal(p.eContentType)
	var encap []byte
	if contentLen < 0 {
		encap = wrap(0x30, ctype)
	} else {
		octetHdr := appendHeader(nil, 0x04, contentLen)
		eContentHdr := appendHeader(nil, 0xA0, int64(len(octetHdr))+contentLen)
		encapLen := int64(len(ctype)+len(eContentHdr)+len(octetHdr)) + contentLen
		encap = appendHeader(nil, 0x30, encapLen)
		encap = append(encap, ctype...)
		encap = append(encap, eContentHdr...)
		encap = append(encap, octetHdr...)
	}
	body := slices.Concat(version, algs, encap)
	sdOID := mustMarshal(oidSignedData)
	if trailerLen < 0 {
		return slices.Concat([]byte{0x30, 0x80}, sdOID, []byte{0xA0, 0x80, 0x30, 0x80}, body)
	}
	content := max(contentLen, 0)
	sdLen := int64(len(body)) + content + trailerLen
	sdHdr := appendHeader(nil, 0x30, sdLen)
	explicitHdr := appendHeader(nil, 0xA0, int64(len(sdHdr))+sdLen)
	ciHdr := appendHeader(nil, 0x30, int64(len(sdOID)+len(explicitHdr)+len(sdHdr))+sdLen)
	return slices.Concat(ciHdr, sdOID, explicitHdr, sdHdr, body)
}

// closeIndefinite ends the three indefinite lengths opened by prefix.
var closeIndefinite = []byte{0, 0, 0, 0, 0, 0}

// encodeDetached returns a whole ContentInfo without content.
func (p *sdParts) encodeDetached() []byte {
	t := p.trailer()
	return append(p.prefix(-1, int64(len(t))), t...)
}

// sdVersion is the SignedData version of RFC 5652 §5.1 for our cases:
// 3 when the content is not id-data or a SignerInfo is version 3, else 1.
func sdVersion(eContentType asn1.ObjectIdentifier, signerVersions []int) int {
	v := 1
	if !eContentType.Equal(oidData) {
		v = 3
	}
	for _, sv := range signerVersions {
		if sv == 3 {
			v = 3
		}
	}
	return v
}

// certsDER returns the raw certificates of a chain.
func certsDER(chain []*x509.Certificate) [][]byte {
	out := make([][]byte, 0, len(chain))
	for _, c := range chain {
		out = append(out, c.Raw)
	}
	return out
}

// serialString prints a certificate serial number in hex, as viewers do.
func serialString(n *big.Int) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("%X", n)
}
