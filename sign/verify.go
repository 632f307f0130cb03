package sign

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// VerifyOptions configure verification.
type VerifyOptions struct {
	// Roots are the trust anchors. Nil: none, and every signature is at
	// best "untrusted: no trust anchor" — never "valid".
	Roots *x509.CertPool
	// Intermediates are extra CA certificates to build chains with, besides
	// those embedded in the file.
	Intermediates []*x509.Certificate
	// Online allows asking the OCSP responder named in the certificate.
	// Offline, the revocation is reported as not checked.
	Online bool
	// HTTPClient makes the OCSP requests; nil: a client with a 15 s timeout.
	HTTPClient *http.Client
	// Now is the validation time; nil: time.Now.
	Now func() time.Time
}

func (o *VerifyOptions) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// verifier checks the SignerInfos of one SignedData.
type verifier struct {
	opts  *VerifyOptions
	certs []*x509.Certificate
}

func newVerifier(opts *VerifyOptions, sd *signedData) *verifier {
	v := &verifier{opts: opts}
	for _, raw := range sd.certs {
		if c, err := x509.ParseCertificate(raw); err == nil {
			v.certs = append(v.certs, c)
		}
	}
	return v
}

// findCert returns the certificate named by the SignerInfo's sid.
func (v *verifier) findCert(si *signerInfo) *x509.Certificate {
	for _, c := range v.certs {
		if si.serial != nil && c.SerialNumber.Cmp(si.serial) == 0 && bytes.Equal(c.RawIssuer, si.issuer) {
			return c
		}
		if si.ski != nil && bytes.Equal(c.SubjectKeyId, si.ski) {
			return c
		}
	}
	return nil
}

// signer verifies one SignerInfo. sums are the digests of what it signs
// (the content, or the counter-signed signature value); contentType is
// the eContentType, nil for a counter-signature.
func (v *verifier) signer(ctx context.Context, si *signerInfo, id string, sums map[crypto.Hash][]byte, contentType asn1.ObjectIdentifier) *Signature {
	s := &Signature{
		ID:                 id,
		Chain:              notChecked("no certificate"),
		Revocation:         notChecked("no certificate"),
		SigningCertificate: notChecked(""),
	}
	defer s.decide()
	h, known := hashForOID(si.digestAlg)
	s.DigestAlgorithm = si.digestAlg.String()
	if known {
		s.DigestAlgorithm = h.String()
	}
	cert := v.findCert(si)
	if cert == nil {
		s.Integrity = failed("the signer's certificate is not in the file")
		return s
	}
	s.Certificate = cert
	s.Signer = IdentityOf(cert)
	switch {
	case !known:
		s.Integrity = failed("unsupported digest algorithm " + si.digestAlg.String())
	case h == crypto.SHA1:
		s.Integrity = failed("SHA-1 digest: not accepted for signatures")
	default:
		s.Integrity = v.integrity(si, cert, h, sums[h], contentType)
	}
	s.SigningCertificate = essCheck(si, cert)
	if t, found, err := signingTime(si); err != nil {
		s.Warnings = append(s.Warnings, "malformed signing-time attribute")
	} else if found {
		s.SigningTime = &t
		s.SigningTimeSource = "signing-time attribute (the signer's clock; no time-stamp proves it)"
	}
	var chain []*x509.Certificate
	s.Chain, chain = v.chain(cert, s.SigningTime)
	s.Revocation = v.revocation(ctx, cert, chain)
	if cert.KeyUsage&x509.KeyUsageContentCommitment == 0 {
		s.Warnings = append(s.Warnings, "the certificate's key usage lacks non-repudiation: it is not meant for signatures with legal value")
	}
	for i, raw := range counterSignatures(si) {
		cid := id + "." + strconv.Itoa(i+1)
		csi, err := parseSignerInfo(raw)
		if err != nil {
			s.Countersignatures = append(s.Countersignatures, &Signature{ID: cid, Verdict: VerdictInvalid,
				Reason: "invalid: malformed counter-signature", Integrity: failed("malformed counter-signature")})
			continue
		}
		sums := map[crypto.Hash][]byte{}
		if ch, ok := hashForOID(csi.digestAlg); ok && ch.Available() {
			d := ch.New()
			d.Write(si.signature)
			sums[ch] = d.Sum(nil)
		}
		s.Countersignatures = append(s.Countersignatures, v.signer(ctx, csi, cid, sums, nil))
	}
	return s
}

// counterSignatures returns the SignerInfos in the countersignature
// attributes of si.
func counterSignatures(si *signerInfo) [][]byte {
	var out [][]byte
	for _, a := range si.unsigned {
		if a.oid.Equal(oidCountersignature) {
			out = append(out, a.values...)
		}
	}
	return out
}

// decide sets the verdict and its reason from the findings.
func (s *Signature) decide() {
	switch {
	case s.Integrity.State != StateOK:
		s.Verdict, s.Reason = VerdictInvalid, "invalid: "+s.Integrity.Detail
	case s.SigningCertificate.State == StateFailed:
		s.Verdict, s.Reason = VerdictInvalid, "invalid: signing certificate attribute "+s.SigningCertificate.Detail
	case s.Revocation.State == StateFailed:
		s.Verdict, s.Reason = VerdictInvalid, "invalid: "+s.Revocation.Detail
	case s.Chain.State != StateOK:
		s.Verdict, s.Reason = VerdictUntrusted, "untrusted: "+s.Chain.Detail
	case s.Revocation.State == StateUnknown:
		s.Verdict, s.Reason = VerdictIndeterminate, "indeterminate: revocation "+s.Revocation.Detail
	default:
		s.Verdict, s.Reason = VerdictValid, "valid"
		if s.Revocation.State == StateNotChecked {
			s.Reason = "valid; revocation not checked"
		}
	}
}

// integrity checks the signed attributes and the signature.
func (v *verifier) integrity(si *signerInfo, cert *x509.Certificate, h crypto.Hash, digest []byte, contentType asn1.ObjectIdentifier) Finding {
	if digest == nil {
		return failed("the signed data could not be hashed")
	}
	if si.signedAttrs == nil {
		if err := checkSignature(cert.PublicKey, si, h, digest); err != nil {
			return failed(err.Error())
		}
		return ok("signature over the content verified (no signed attributes)")
	}
	ct, hasCT := findAttr(si.attrs, oidContentType)
	switch {
	case contentType == nil && hasCT:
		return failed("a counter-signature must not carry a content-type attribute")
	case contentType != nil:
		var got asn1.ObjectIdentifier
		if !hasCT || len(ct) != 1 || unmarshalExact(ct[0], &got) != nil {
			return failed("missing or malformed content-type attribute")
		}
		if !got.Equal(contentType) {
			return failed("the content-type attribute differs from the content's type")
		}
	}
	md, err := messageDigest(si)
	if err != nil {
		return failed(err.Error())
	}
	if !bytes.Equal(md, digest) {
		if contentType == nil {
			return failed("the counter-signed signature was changed (message digest differs)")
		}
		return failed("the signed data was changed (message digest differs)")
	}
	// The signature covers the DER SET OF the attributes (RFC 5652 §5.4):
	// the [0] element as found in the file with the SET tag.
	signed := append([]byte{0x31}, si.signedAttrs[1:]...)
	d := h.New()
	d.Write(signed)
	if err := checkSignature(cert.PublicKey, si, h, d.Sum(nil)); err != nil {
		return failed(err.Error())
	}
	return ok("the signature matches the data and the certificate")
}

// checkSignature verifies si's signature over digest with the algorithm it
// names.
func checkSignature(pub crypto.PublicKey, si *signerInfo, h crypto.Hash, digest []byte) error {
	alg := si.sigAlg
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		switch {
		case alg.Equal(oidRSAEncryption),
			alg.Equal(oidSHA256WithRSA) && h == crypto.SHA256,
			alg.Equal(oidSHA384WithRSA) && h == crypto.SHA384,
			alg.Equal(oidSHA512WithRSA) && h == crypto.SHA512:
			if rsa.VerifyPKCS1v15(pub, h, digest, si.signature) != nil {
				return errors.New("the signature does not verify: the signed attributes or the signature were changed")
			}
			return nil
		case alg.Equal(oidRSAPSS):
			salt, ph, err := pssParams(si.sigParams)
			if err != nil || ph != h {
				return errors.New("unsupported RSASSA-PSS parameters")
			}
			if rsa.VerifyPSS(pub, h, digest, si.signature, &rsa.PSSOptions{SaltLength: salt}) != nil {
				return errors.New("the signature does not verify: the signed attributes or the signature were changed")
			}
			return nil
		}
	case *ecdsa.PublicKey:
		if alg.Equal(oidECPublicKey) || alg.Equal(oidECDSAWithSHA256) && h == crypto.SHA256 ||
			alg.Equal(oidECDSAWithSHA384) && h == crypto.SHA384 || alg.Equal(oidECDSAWithSHA512) && h == crypto.SHA512 {
			if !ecdsa.VerifyASN1(pub, digest, si.signature) {
				return errors.New("the signature does not verify: the signed attributes or the signature were changed")
			}
			return nil
		}
	}
	return fmt.Errorf("unsupported signature algorithm %v for this key", alg)
}

var (
	oidRSAPSS = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}
)

// pssParams reads RSASSA-PSS-params (RFC 4055 §3.1): the hash and salt
// length (defaults SHA-1 and 20; MGF1 with the same hash required).
func pssParams(der []byte) (salt int, h crypto.Hash, err error) {
	bad := errors.New("bad RSASSA-PSS parameters")
	salt, h = 20, crypto.SHA1
	s := cryptobyte.String(der)
	var seq cryptobyte.String
	if !s.ReadASN1(&seq, cbasn1.SEQUENCE) {
		return 0, 0, bad
	}
	var el cryptobyte.String
	var present bool
	if !seq.ReadOptionalASN1(&el, &present, cbasn1.Tag(0).ContextSpecific().Constructed()) {
		return 0, 0, bad
	}
	if present {
		oid, _, err := readAlgorithm(&el)
		if err != nil {
			return 0, 0, bad
		}
		var ok bool
		if h, ok = hashForOID(oid); !ok {
			return 0, 0, bad
		}
	}
	if !seq.ReadOptionalASN1(&el, &present, cbasn1.Tag(1).ContextSpecific().Constructed()) {
		return 0, 0, bad
	}
	if present {
		oid, params, err := readAlgorithm(&el)
		if err != nil || !oid.Equal(oidMGF1) {
			return 0, 0, bad
		}
		p := cryptobyte.String(params)
		mh, _, err := readAlgorithm(&p)
		if err != nil {
			return 0, 0, bad
		}
		if m, ok := hashForOID(mh); !ok || m != h {
			return 0, 0, bad
		}
	}
	if !seq.ReadOptionalASN1(&el, &present, cbasn1.Tag(2).ContextSpecific().Constructed()) {
		return 0, 0, bad
	}
	if present {
		var n int64
		if !el.ReadASN1Int64WithTag(&n, cbasn1.INTEGER) || n < 0 || n > 1024 {
			return 0, 0, bad
		}
		salt = int(n)
	}
	return salt, h, nil
}

// essCheck verifies the ESS signing-certificate-v2 (or v1) attribute: its
// first ESSCertID must hash to the signer's certificate, and its issuer
// and serial, when present, must name it (RFC 5035 §5.4, EN 319 122-1
// §5.2.2). OpenSSL 3.0 and the common Go libraries do not check this.
func essCheck(si *signerInfo, cert *x509.Certificate) Finding {
	if vals, found := findAttr(si.attrs, oidSigningCertificateV2); found {
		return essCertID(vals, cert, true)
	}
	if vals, found := findAttr(si.attrs, oidSigningCertificate); found {
		return essCertID(vals, cert, false)
	}
	return failed("missing: the signer's certificate is not protected by the signature (not CAdES-BES)")
}

func essCertID(vals [][]byte, cert *x509.Certificate, v2 bool) Finding {
	if len(vals) != 1 {
		return failed("malformed")
	}
	s := cryptobyte.String(vals[0])
	var sc, certs, id cryptobyte.String
	if !s.ReadASN1(&sc, cbasn1.SEQUENCE) || !sc.ReadASN1(&certs, cbasn1.SEQUENCE) || !certs.ReadASN1(&id, cbasn1.SEQUENCE) {
		return failed("malformed")
	}
	h := crypto.SHA1
	if v2 {
		h = crypto.SHA256
		if id.PeekASN1Tag(cbasn1.SEQUENCE) {
			oid, _, err := readAlgorithm(&id)
			if err != nil {
				return failed("malformed hash algorithm")
			}
			var known bool
			if h, known = hashForOID(oid); !known {
				return failed("unsupported hash algorithm " + oid.String())
			}
		}
	}
	var certHash cryptobyte.String
	if !id.ReadASN1(&certHash, cbasn1.OCTET_STRING) {
		return failed("malformed certificate hash")
	}
	d := h.New()
	d.Write(cert.Raw)
	if !bytes.Equal(certHash, d.Sum(nil)) {
		return failed("does not match the signer's certificate: the certificate was substituted")
	}
	if !id.Empty() {
		var is, names cryptobyte.String
		serial := new(big.Int)
		if !id.ReadASN1(&is, cbasn1.SEQUENCE) || !is.ReadASN1(&names, cbasn1.SEQUENCE) || !is.ReadASN1Integer(serial) {
			return failed("malformed issuer and serial")
		}
		if serial.Cmp(cert.SerialNumber) != 0 {
			return failed("names another serial number than the signer's certificate")
		}
		matched := false
		for !names.Empty() {
			var gn cryptobyte.String
			var tag cbasn1.Tag
			if !names.ReadAnyASN1(&gn, &tag) {
				return failed("malformed issuer name")
			}
			if tag == cbasn1.Tag(4).ContextSpecific().Constructed() && bytes.Equal(gn, cert.RawIssuer) {
				matched = true
			}
		}
		if !matched {
			return failed("names another issuer than the signer's certificate")
		}
	}
	name := "signing-certificate-v2"
	if !v2 {
		name = "signing-certificate"
	}
	return ok(fmt.Sprintf("%s matches the signer's certificate (%v)", name, h))
}

// signingTime returns the signing-time attribute.
func signingTime(si *signerInfo) (time.Time, bool, error) {
	vals, found := findAttr(si.attrs, oidSigningTime)
	if !found {
		return time.Time{}, false, nil
	}
	if len(vals) != 1 {
		return time.Time{}, true, ErrMalformed
	}
	s := cryptobyte.String(vals[0])
	var t time.Time
	switch {
	case s.PeekASN1Tag(cbasn1.UTCTime):
		if !s.ReadASN1UTCTime(&t) {
			return t, true, ErrMalformed
		}
	case s.PeekASN1Tag(cbasn1.GeneralizedTime):
		if !s.ReadASN1GeneralizedTime(&t) {
			return t, true, ErrMalformed
		}
	default:
		return t, true, ErrMalformed
	}
	return t, true, nil
}

// chain verifies the certificate against the trust anchors at the
// validation time.
func (v *verifier) chain(cert *x509.Certificate, claimed *time.Time) (Finding, []*x509.Certificate) {
	if v.opts.Roots == nil {
		return notChecked("no trust anchor (give the CA certificates to trust)"), nil
	}
	inter := x509.NewCertPool()
	for _, c := range append(append([]*x509.Certificate{}, v.certs...), v.opts.Intermediates...) {
		inter.AddCert(c)
	}
	now := v.opts.now()
	chains, err := cert.Verify(x509.VerifyOptions{
		Roots:         v.opts.Roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired && now.After(cert.NotAfter) {
			msg := fmt.Sprintf("the certificate expired on %s", cert.NotAfter.Format(time.DateOnly))
			if claimed != nil && !claimed.After(cert.NotAfter) {
				msg += fmt.Sprintf("; the claimed signing time %s is not proven by a time-stamp", claimed.Format(time.DateTime))
			}
			return failed(msg), nil
		}
		var unk x509.UnknownAuthorityError
		if errors.As(err, &unk) {
			return failed("the certificate does not chain to a trust anchor"), nil
		}
		return failed(err.Error()), nil
	}
	c := chains[0]
	return ok("chains to " + c[len(c)-1].Subject.String()), c
}

// unmarshalExact is asn1.Unmarshal refusing trailing data.
func unmarshalExact(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return ErrMalformed
	}
	return nil
}

// VerifyCAdES verifies every signature of a .p7m or .p7s read from r (DER,
// BER or Base64, as Italian files come). data is the original file of a
// detached .p7s and must be nil for a .p7m. The content is hashed as it
// streams by. When the content of a .p7m is itself a signed file, its
// signatures are verified too and reported in Nested.
func VerifyCAdES(ctx context.Context, r io.Reader, data io.Reader, opts VerifyOptions) (*Report, error) {
	in, err := cmsInput(r)
	if err != nil {
		return nil, err
	}
	var mh multiHash
	var nest *sniffer
	var nested *Report
	sd, err := readSignedData(in, func(sd *signedData) (io.Writer, error) {
		mh = newMultiHash(signerHashes(sd)...)
		nest = newSniffer(io.Discard, func(inner io.Reader) error {
			rep, err := VerifyCAdES(ctx, inner, nil, opts)
			nested = rep
			return err
		})
		return io.MultiWriter(mh, nest), nil
	})
	if err != nil {
		if nest != nil {
			nest.abort(err)
		}
		return nil, fmt.Errorf("sign: reading the signed file: %w", err)
	}
	rep := &Report{Format: FormatCAdESAttached, ContentSize: sd.contentLen}
	if nest != nil {
		if err := nest.Close(); err != nil {
			rep.NestedError = "the content looks like a signed file but cannot be verified: " + err.Error()
		}
		rep.Nested = nested
	}
	switch {
	case !sd.attached && data == nil:
		return nil, errors.New("sign: the signature is detached (.p7s): give the original file too")
	case sd.attached && data != nil:
		return nil, errors.New("sign: the signed file contains its content (.p7m): do not give the original file")
	case !sd.attached:
		rep.Format = FormatCAdESDetached
		mh = newMultiHash(signerHashes(sd)...)
		if rep.ContentSize, err = copyContent(ctx, mh, data, -1, nil); err != nil {
			return nil, err
		}
	}
	if len(sd.signers) == 0 {
		return nil, errors.New("sign: the file has no signature")
	}
	v := newVerifier(&opts, sd)
	sums := mh.sums()
	for i, si := range sd.signers {
		rep.Signatures = append(rep.Signatures, v.signer(ctx, si, strconv.Itoa(i+1), sums, sd.eContentType))
	}
	return rep, nil
}

// Extract writes the content of the attached .p7m read from r (DER, BER or
// Base64) to w, unwrapping nested .p7m levels, and returns how many levels
// it removed. It does not verify the signatures: use VerifyCAdES.
func Extract(ctx context.Context, w io.Writer, r io.Reader) (int, error) {
	in, err := cmsInput(readerFunc(func(b []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(b)
	}))
	if err != nil {
		return 0, err
	}
	var nest *sniffer
	inner := 0
	sd, err := readSignedData(in, func(*signedData) (io.Writer, error) {
		nest = newSniffer(w, func(r io.Reader) error {
			n, err := Extract(ctx, w, r)
			inner = n
			return err
		})
		return nest, nil
	})
	if err != nil {
		if nest != nil {
			nest.abort(err)
		}
		return 0, fmt.Errorf("sign: reading the signed file: %w", err)
	}
	if !sd.attached {
		return 0, errors.New("sign: the signature is detached (.p7s): it does not contain the file")
	}
	if err := nest.Close(); err != nil {
		return 0, fmt.Errorf("sign: extracting the signed file inside: %w", err)
	}
	return 1 + inner, nil
}

// sniffer looks at the first bytes of a content: when they start a
// SignedData (DER or Base64), it pipes the content to nested, run in its
// own goroutine; otherwise it passes the content to plain.
type sniffer struct {
	plain  io.Writer
	nested func(io.Reader) error
	head   []byte
	dst    io.Writer
	pw     *io.PipeWriter
	done   chan error
}

// sniffLen is enough bytes to recognise a SignedData's ContentInfo start,
// even in Base64 with PEM armour.
const sniffLen = 80

func newSniffer(plain io.Writer, nested func(io.Reader) error) *sniffer {
	return &sniffer{plain: plain, nested: nested}
}

func (s *sniffer) Write(p []byte) (int, error) {
	if s.dst == nil {
		need := min(sniffLen-len(s.head), len(p))
		s.head = append(s.head, p[:need]...)
		if len(s.head) < sniffLen {
			return len(p), nil
		}
		if err := s.decide(); err != nil {
			return 0, err
		}
		if _, err := s.dst.Write(p[need:]); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return s.dst.Write(p)
}

func (s *sniffer) decide() error {
	s.dst = s.plain
	if looksSignedData(s.head) {
		pr, pw := io.Pipe()
		s.pw, s.dst, s.done = pw, pw, make(chan error, 1)
		go func() {
			err := s.nested(pr)
			// Drain, so that the outer reading never blocks on a failed inner one.
			_, _ = io.Copy(io.Discard, pr)
			s.done <- err
		}()
	}
	_, err := s.dst.Write(s.head)
	return err
}

// Close flushes a short content and waits for the nested reading.
func (s *sniffer) Close() error {
	if s.dst == nil {
		if err := s.decide(); err != nil {
			return err
		}
	}
	if s.pw == nil {
		return nil
	}
	s.pw.Close()
	return <-s.done
}

// abort ends a nested reading after the outer one failed.
func (s *sniffer) abort(err error) {
	if s.pw != nil {
		s.pw.CloseWithError(err)
		<-s.done
	}
}

// LooksSigned reports whether b, the first bytes of a file (80 or more),
// starts a CMS signed file (.p7m/.p7s): DER, BER or Base64 with or without
// PEM armour. It decides on content, not on the file name.
func LooksSigned(b []byte) bool { return looksSignedData(b) }

// looksSignedData reports whether b starts a ContentInfo of type
// id-signedData, in DER/BER or Base64 (optionally PEM-armoured).
func looksSignedData(b []byte) bool {
	prefix := mustMarshal(oidSignedData)
	if len(b) > 0 && b[0] != 0x30 {
		in, err := cmsInput(bytes.NewReader(b))
		if err != nil {
			return false
		}
		dec := make([]byte, 24)
		n, _ := io.ReadFull(in, dec)
		b = dec[:n]
	}
	if len(b) < 2 || b[0] != 0x30 {
		return false
	}
	off := 2
	if b[1] > 0x80 {
		off += int(b[1] & 0x7F)
	}
	return len(b) >= off+len(prefix) && bytes.Equal(b[off:off+len(prefix)], prefix)
}
