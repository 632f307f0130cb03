package cie

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"time"

	// Register the hash implementations the SOD may name.
	_ "crypto/sha1"
	_ "crypto/sha256"
	_ "crypto/sha512"
)

// Object identifiers of the SOD (§3.2; RFC 5652, RFC 8017, ICAO 9303-10).
var (
	oidSignedData        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidLDSSecurityObject = asn1.ObjectIdentifier{2, 23, 136, 1, 1, 1}
	oidContentType       = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidRSAEncryption     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	oidRSASSAPSS         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 10}
	oidMGF1              = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 8}

	hashOIDs = []struct {
		oid  asn1.ObjectIdentifier
		hash crypto.Hash
	}{
		{asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}, crypto.SHA1},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 4}, crypto.SHA224},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}, crypto.SHA256},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 2}, crypto.SHA384},
		{asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 3}, crypto.SHA512},
	}
	rsaPKCS1OIDs = []struct {
		oid  asn1.ObjectIdentifier
		hash crypto.Hash
	}{
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 5}, crypto.SHA1},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 14}, crypto.SHA224},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 11}, crypto.SHA256},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 12}, crypto.SHA384},
		{asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 13}, crypto.SHA512},
	}
)

// errSOD is wrapped by every SOD parsing error.
var errSOD = errors.New("malformed SOD")

func hashByOID(oid asn1.ObjectIdentifier) (crypto.Hash, bool) {
	for _, h := range hashOIDs {
		if h.oid.Equal(oid) {
			return h.hash, true
		}
	}
	return 0, false
}

// ASN.1 shapes of the CMS SignedData and the LDS security object.
type (
	contentInfo struct {
		ContentType asn1.ObjectIdentifier
		Content     asn1.RawValue `asn1:"explicit,tag:0"`
	}
	signedData struct {
		Version          int
		DigestAlgorithms []pkix.AlgorithmIdentifier `asn1:"set"`
		EncapContentInfo encapContentInfo
		Certificates     asn1.RawValue `asn1:"optional,tag:0"`
		CRLs             asn1.RawValue `asn1:"optional,tag:1"`
		SignerInfos      []signerInfo  `asn1:"set"`
	}
	encapContentInfo struct {
		EContentType asn1.ObjectIdentifier
		EContent     []byte `asn1:"explicit,tag:0"`
	}
	signerInfo struct {
		Version            int
		SID                asn1.RawValue
		DigestAlgorithm    pkix.AlgorithmIdentifier
		SignedAttrs        asn1.RawValue `asn1:"optional,tag:0"`
		SignatureAlgorithm pkix.AlgorithmIdentifier
		Signature          []byte
		UnsignedAttrs      asn1.RawValue `asn1:"optional,tag:1"`
	}
	attribute struct {
		Type   asn1.ObjectIdentifier
		Values []asn1.RawValue `asn1:"set"`
	}
	issuerAndSerial struct {
		Issuer asn1.RawValue
		Serial *big.Int
	}
	ldsSecurityObject struct {
		Version       int
		HashAlgorithm pkix.AlgorithmIdentifier
		Hashes        []dataGroupHash
		VersionInfo   asn1.RawValue `asn1:"optional"`
	}
	dataGroupHash struct {
		Number int
		Hash   []byte
	}
	pssParams struct {
		Hash       pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:0"`
		MGF        pkix.AlgorithmIdentifier `asn1:"explicit,optional,tag:1"`
		SaltLength int                      `asn1:"explicit,optional,default:20,tag:2"`
		Trailer    int                      `asn1:"explicit,optional,default:1,tag:3"`
	}
)

// SOD is a parsed EF.SOD (§3.2): a CMS SignedData (version 3) over an LDS
// security object that lists a hash per "data group" (here: per card file).
type SOD struct {
	Raw []byte // the DER of the ContentInfo
	// HashAlgorithm hashes the data groups (SHA-256 or SHA-512).
	HashAlgorithm crypto.Hash
	// LDSVersion is the LDSSecurityObject version (0 with SHA-256, 1 in the
	// ICAO 9303 7th edition flavour).
	LDSVersion int
	// DataGroupHashes maps the data group number (0xA1 … 0xA5, 0x1B) to its hash.
	DataGroupHashes map[int][]byte
	// Signer is the Document Signer certificate embedded in the SOD.
	Signer *x509.Certificate
	// SignatureAlgorithm names the signature: "sha256WithRSAEncryption",
	// "RSASSA-PSS/SHA-512", …
	SignatureAlgorithm string

	eContent     []byte
	signedAttrs  []byte // DER with the SET tag, the signed message
	digestHash   crypto.Hash
	messageDig   []byte
	signature    []byte
	sigHash      crypto.Hash
	pss          *rsa.PSSOptions
	contentTypeA asn1.ObjectIdentifier
}

// ParseSOD parses EF.SOD content: a CMS ContentInfo, optionally inside the
// ICAO application tag 77, possibly followed by padding. It checks the
// structure (SignedData version 3, eContentType 2.23.136.1.1.1, signed
// attributes with contentType and messageDigest, an embedded signer
// certificate) but not the signature: see VerifySignature. It is hand
// written over encoding/asn1 and fuzzed.
func ParseSOD(b []byte) (*SOD, error) {
	s, err := parseSOD(b)
	if err != nil {
		return nil, fmt.Errorf("cie: parsing SOD: %w", err)
	}
	return s, nil
}

func parseSOD(b []byte) (*SOD, error) {
	if len(b) > 0 && b[0] == 0x77 { // ICAO EF.SOD wrapper
		var wrap asn1.RawValue
		if _, err := asn1.Unmarshal(b, &wrap); err != nil {
			return nil, fmt.Errorf("%w: %w", errSOD, err)
		}
		b = wrap.Bytes
	}
	var ci contentInfo
	rest, err := asn1.Unmarshal(b, &ci)
	if err != nil {
		return nil, fmt.Errorf("%w: ContentInfo: %w", errSOD, err)
	}
	s := &SOD{Raw: slices.Clone(b[:len(b)-len(rest)])}
	if !ci.ContentType.Equal(oidSignedData) {
		return nil, fmt.Errorf("%w: content type %v is not SignedData", errSOD, ci.ContentType)
	}
	var sd signedData
	if _, err := asn1.Unmarshal(ci.Content.Bytes, &sd); err != nil {
		return nil, fmt.Errorf("%w: SignedData: %w", errSOD, err)
	}
	if sd.Version != 3 {
		return nil, fmt.Errorf("%w: SignedData version %d, want 3", errSOD, sd.Version)
	}
	if !sd.EncapContentInfo.EContentType.Equal(oidLDSSecurityObject) {
		return nil, fmt.Errorf("%w: eContentType %v is not the LDS security object", errSOD, sd.EncapContentInfo.EContentType)
	}
	s.eContent = sd.EncapContentInfo.EContent
	var lds ldsSecurityObject
	if _, err := asn1.Unmarshal(s.eContent, &lds); err != nil {
		return nil, fmt.Errorf("%w: LDSSecurityObject: %w", errSOD, err)
	}
	var ok bool
	if s.HashAlgorithm, ok = hashByOID(lds.HashAlgorithm.Algorithm); !ok {
		return nil, fmt.Errorf("%w: unknown data group hash algorithm %v", errSOD, lds.HashAlgorithm.Algorithm)
	}
	s.LDSVersion = lds.Version
	s.DataGroupHashes = make(map[int][]byte, len(lds.Hashes))
	for _, dg := range lds.Hashes {
		if _, dup := s.DataGroupHashes[dg.Number]; dup {
			return nil, fmt.Errorf("%w: data group %X listed twice", errSOD, dg.Number)
		}
		s.DataGroupHashes[dg.Number] = dg.Hash
	}
	if len(sd.SignerInfos) != 1 {
		return nil, fmt.Errorf("%w: %d signer infos, want 1", errSOD, len(sd.SignerInfos))
	}
	si := sd.SignerInfos[0]
	if s.digestHash, ok = hashByOID(si.DigestAlgorithm.Algorithm); !ok {
		return nil, fmt.Errorf("%w: unknown digest algorithm %v", errSOD, si.DigestAlgorithm.Algorithm)
	}
	if err := s.parseSignedAttrs(si.SignedAttrs); err != nil {
		return nil, err
	}
	if err := s.parseSignatureAlgorithm(si.SignatureAlgorithm); err != nil {
		return nil, err
	}
	s.signature = si.Signature
	if s.Signer, err = pickSigner(sd.Certificates, si.SID); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *SOD) parseSignedAttrs(raw asn1.RawValue) error {
	if len(raw.FullBytes) == 0 {
		return fmt.Errorf("%w: no signed attributes", errSOD)
	}
	// The signature covers the attributes with an explicit SET OF tag
	// (RFC 5652 §5.4), not the [0] IMPLICIT one they are stored with.
	s.signedAttrs = slices.Clone(raw.FullBytes)
	s.signedAttrs[0] = 0x31
	rest := raw.Bytes
	for len(rest) > 0 {
		var a attribute
		var err error
		if rest, err = asn1.Unmarshal(rest, &a); err != nil {
			return fmt.Errorf("%w: signed attribute: %w", errSOD, err)
		}
		if len(a.Values) != 1 {
			continue
		}
		switch {
		case a.Type.Equal(oidContentType):
			if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &s.contentTypeA); err != nil {
				return fmt.Errorf("%w: contentType attribute: %w", errSOD, err)
			}
		case a.Type.Equal(oidMessageDigest):
			if _, err := asn1.Unmarshal(a.Values[0].FullBytes, &s.messageDig); err != nil {
				return fmt.Errorf("%w: messageDigest attribute: %w", errSOD, err)
			}
		}
	}
	if s.contentTypeA == nil || s.messageDig == nil {
		return fmt.Errorf("%w: signed attributes lack contentType or messageDigest", errSOD)
	}
	return nil
}

func (s *SOD) parseSignatureAlgorithm(alg pkix.AlgorithmIdentifier) error {
	switch {
	case alg.Algorithm.Equal(oidRSAEncryption):
		s.sigHash = s.digestHash
		s.SignatureAlgorithm = "rsaEncryption/" + s.digestHash.String()
		return nil
	case alg.Algorithm.Equal(oidRSASSAPSS):
		p := pssParams{SaltLength: 20, Trailer: 1}
		if len(alg.Parameters.FullBytes) > 0 {
			if _, err := asn1.Unmarshal(alg.Parameters.FullBytes, &p); err != nil {
				return fmt.Errorf("%w: RSASSA-PSS parameters: %w", errSOD, err)
			}
		}
		h := crypto.SHA1
		if len(p.Hash.Algorithm) > 0 {
			var ok bool
			if h, ok = hashByOID(p.Hash.Algorithm); !ok {
				return fmt.Errorf("%w: unknown PSS hash %v", errSOD, p.Hash.Algorithm)
			}
		}
		if len(p.MGF.Algorithm) > 0 {
			var mgfHash pkix.AlgorithmIdentifier
			if !p.MGF.Algorithm.Equal(oidMGF1) {
				return fmt.Errorf("%w: PSS mask generation %v is not MGF1", errSOD, p.MGF.Algorithm)
			}
			if _, err := asn1.Unmarshal(p.MGF.Parameters.FullBytes, &mgfHash); err != nil {
				return fmt.Errorf("%w: MGF1 parameters: %w", errSOD, err)
			}
			if mh, ok := hashByOID(mgfHash.Algorithm); !ok || mh != h {
				return fmt.Errorf("%w: MGF1 hash differs from the PSS hash", errSOD)
			}
		} else if h != crypto.SHA1 {
			return fmt.Errorf("%w: MGF1 with SHA-1 and a %v PSS hash", errSOD, h)
		}
		if p.Trailer != 1 || p.SaltLength < 0 || p.SaltLength > 1024 {
			return fmt.Errorf("%w: unsupported PSS trailer or salt length", errSOD)
		}
		s.sigHash = h
		s.pss = &rsa.PSSOptions{SaltLength: p.SaltLength, Hash: h}
		s.SignatureAlgorithm = "RSASSA-PSS/" + h.String()
		return nil
	}
	for _, a := range rsaPKCS1OIDs {
		if a.oid.Equal(alg.Algorithm) {
			s.sigHash = a.hash
			s.SignatureAlgorithm = a.hash.String() + "WithRSAEncryption"
			return nil
		}
	}
	return fmt.Errorf("%w: unsupported signature algorithm %v", errSOD, alg.Algorithm)
}

// pickSigner returns the certificate named by sid (issuer and serial
// number, or subject key identifier), or the only certificate.
func pickSigner(raw asn1.RawValue, sid asn1.RawValue) (*x509.Certificate, error) {
	if len(raw.Bytes) == 0 {
		return nil, fmt.Errorf("%w: no Document Signer certificate embedded", errSOD)
	}
	certs, err := x509.ParseCertificates(raw.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: embedded certificate: %w", errSOD, err)
	}
	var ias issuerAndSerial
	if sid.Class == asn1.ClassUniversal && sid.Tag == asn1.TagSequence {
		if _, err := asn1.Unmarshal(sid.FullBytes, &ias); err == nil {
			for _, c := range certs {
				if bytes.Equal(c.RawIssuer, ias.Issuer.FullBytes) && c.SerialNumber.Cmp(ias.Serial) == 0 {
					return c, nil
				}
			}
		}
	} else if sid.Class == asn1.ClassContextSpecific && sid.Tag == 0 {
		for _, c := range certs {
			if bytes.Equal(c.SubjectKeyId, sid.Bytes) {
				return c, nil
			}
		}
	}
	if len(certs) == 1 {
		return certs[0], nil
	}
	return nil, fmt.Errorf("%w: the signer identifier names none of %d certificates", errSOD, len(certs))
}

// VerifySignature checks the signed attributes (contentType is the LDS
// security object, messageDigest is the digest of the content) and the
// RSA signature with the embedded Document Signer certificate. It does not
// validate that certificate against a CSCA.
func (s *SOD) VerifySignature() error {
	if err := s.verifySignature(); err != nil {
		return fmt.Errorf("cie: verifying SOD signature: %w", err)
	}
	return nil
}

func (s *SOD) verifySignature() error {
	if !s.contentTypeA.Equal(oidLDSSecurityObject) {
		return errors.New("the contentType attribute is not the LDS security object")
	}
	h := s.digestHash.New()
	h.Write(s.eContent)
	if subtle.ConstantTimeCompare(h.Sum(nil), s.messageDig) != 1 {
		return errors.New("the messageDigest attribute does not match the content")
	}
	pub, ok := s.Signer.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("the Document Signer key is %T, not RSA", s.Signer.PublicKey)
	}
	h = s.sigHash.New()
	h.Write(s.signedAttrs)
	digest := h.Sum(nil)
	var err error
	if s.pss != nil {
		err = rsa.VerifyPSS(pub, s.sigHash, digest, s.signature, s.pss)
	} else {
		err = rsa.VerifyPKCS1v15(pub, s.sigHash, digest, s.signature)
	}
	if err != nil {
		return fmt.Errorf("the Document Signer signature does not verify: %w", err)
	}
	return nil
}

// DGStatus is the outcome of one data group hash check.
type DGStatus int

const (
	// DGMatch: the file read from the card hashes to the SOD's value.
	DGMatch DGStatus = iota + 1
	// DGMismatch: the file read hashes to another value.
	DGMismatch
	// DGMissing: the SOD lists no hash for this file.
	DGMissing
	// DGNotRead: the file could not be read (e.g. EF.CertCIE without the
	// PIN) or is unknown to this package; nothing was compared.
	DGNotRead
)

// String returns "match", "MISMATCH", "missing from the SOD" or "not read".
func (s DGStatus) String() string {
	switch s {
	case DGMatch:
		return "match"
	case DGMismatch:
		return "MISMATCH"
	case DGMissing:
		return "missing from the SOD"
	case DGNotRead:
		return "not read"
	}
	return fmt.Sprintf("DGStatus(%d)", int(s))
}

// DataGroupCheck is the check of one file against its SOD hash.
type DataGroupCheck struct {
	Number   int    // SOD data group number: 0xA1 … 0xA5, 0x1B
	File     string // e.g. "EF.ID_Servizi (1001)"
	Status   DGStatus
	Expected []byte // the hash in the SOD (nil when missing)
	Actual   []byte // the hash of the file read (nil when not read)
	Reason   string // why the file was not read
}

// SODReport is the outcome of VerifySOD.
type SODReport struct {
	SOD *SOD
	// SignatureValid: the signed attributes and the Document Signer
	// signature verify; SignatureError says why not.
	SignatureValid bool
	SignatureError string
	// DSCertificateValidNow: CheckedAt falls within the Document Signer
	// certificate's validity period.
	DSCertificateValidNow bool
	// CSCAValidated is always false: the Document Signer certificate was not
	// validated against a CSCA (no Italian CSCA is configured), so the
	// report proves consistency, not authenticity.
	CSCAValidated bool
	Note          string
	DataGroups    []DataGroupCheck
	CheckedAt     time.Time
}

// OK reports whether the signature verifies and no data group is missing or
// mismatched (files not read do not count).
func (r *SODReport) OK() bool {
	if !r.SignatureValid {
		return false
	}
	for _, dg := range r.DataGroups {
		if dg.Status == DGMismatch || dg.Status == DGMissing {
			return false
		}
	}
	return true
}

// sodFile names a data group of §3.2 and the data hashed for it.
type sodFile struct {
	number int
	name   string
	data   []byte
	reason string // non-empty: not read
}

// checkSOD builds the report of s against the files read.
func checkSOD(s *SOD, files []sodFile, now time.Time) *SODReport {
	r := &SODReport{
		SOD:           s,
		CSCAValidated: false,
		Note:          "the Document Signer certificate was not validated against a CSCA (no trust anchor)",
		CheckedAt:     now,
	}
	if err := s.verifySignature(); err != nil {
		r.SignatureError = err.Error()
	} else {
		r.SignatureValid = true
	}
	r.DSCertificateValidNow = !now.Before(s.Signer.NotBefore) && !now.After(s.Signer.NotAfter)
	known := map[int]bool{}
	for _, f := range files {
		known[f.number] = true
		dg := DataGroupCheck{Number: f.number, File: f.name, Expected: s.DataGroupHashes[f.number]}
		switch {
		case dg.Expected == nil:
			dg.Status = DGMissing
		case f.reason != "":
			dg.Status, dg.Reason = DGNotRead, f.reason
		default:
			h := s.HashAlgorithm.New()
			h.Write(f.data)
			dg.Actual = h.Sum(nil)
			dg.Status = DGMismatch
			if subtle.ConstantTimeCompare(dg.Actual, dg.Expected) == 1 {
				dg.Status = DGMatch
			}
		}
		r.DataGroups = append(r.DataGroups, dg)
	}
	extra := []int{}
	for n := range s.DataGroupHashes {
		if !known[n] {
			extra = append(extra, n)
		}
	}
	slices.Sort(extra)
	for _, n := range extra {
		r.DataGroups = append(r.DataGroups, DataGroupCheck{Number: n, File: "unknown data group", Status: DGNotRead,
			Expected: s.DataGroupHashes[n], Reason: "no file of this package is hashed under this number"})
	}
	return r
}

// ReadSOD reads EF.SOD (1006), trimmed to its DER length.
func (c *Card) ReadSOD(ctx context.Context) ([]byte, error) {
	var b []byte
	err := c.run(ctx, "reading the SOD", true, func(ctx context.Context, _ *operation) error {
		var err error
		b, err = c.readSOD(ctx)
		return err
	})
	return b, err
}

func (c *Card) readSOD(ctx context.Context) ([]byte, error) {
	if err := c.confirm(ctx); err != nil {
		return nil, err
	}
	if err := c.inCIE(ctx); err != nil {
		return nil, err
	}
	return c.readEF(ctx, fidSOD, readDER)
}

// readEFDH reads EF.DH (D004) from the IAS root, once per Card. Selecting
// the root ends the SM session (and the PIN verification).
func (c *Card) readEFDH(ctx context.Context) ([]byte, error) {
	if c.efDH != nil {
		return c.efDH, nil
	}
	if err := c.selectRoot(ctx); err != nil {
		return nil, err
	}
	b, err := c.readEF(ctx, fidDH, readDER)
	if err != nil {
		return nil, err
	}
	c.efDH = b
	return b, nil
}

// VerifySOD reads EF.SOD and the files it covers (§3.2), verifies the
// Document Signer signature with the certificate embedded in the SOD and
// compares every data group hash (SHA-256 and SHA-512/PSS flavours). The
// Document Signer certificate is not validated against a CSCA; the report
// says so. EF.CertCIE (A3) is only checked when the PIN is verified; EF.DH
// lives in the IAS root, so reading it (once per Card) ends the SM session:
// with the PIN verified it is read last, and the PIN must be verified again
// afterwards. The error wraps ErrSODInvalid when the report is not OK.
func (c *Card) VerifySOD(ctx context.Context) (*SODReport, error) {
	var rep *SODReport
	err := c.run(ctx, "verifying the SOD", true, func(ctx context.Context, _ *operation) error {
		if c.presumed {
			// Check the card's own files, not a profile's copies.
			if err := c.confirm(ctx); err != nil {
				return err
			}
			c.dropPublicData()
		}
		var dh []byte
		var err error
		if c.efDH == nil && !c.pinOK {
			if dh, err = c.readEFDH(ctx); err != nil {
				return fmt.Errorf("reading EF.DH: %w", err)
			}
		}
		raw, err := c.readSOD(ctx)
		if err != nil {
			return err
		}
		s, err := parseSOD(raw)
		if err != nil {
			return fmt.Errorf("parsing EF.SOD: %w", err)
		}
		chip, err := c.chipKeyFile(ctx)
		if err != nil {
			return err
		}
		servizi, err := c.serviziKeyFile(ctx)
		if err != nil {
			return err
		}
		files := []sodFile{
			{number: 0xA1, name: "EF.ID_Servizi (1001)", data: c.idServizi},
			{number: 0xA2, name: "EF.Seriale (1002)"},
			{number: 0xA3, name: "EF.CertCIE (1003)"},
			{number: 0xA4, name: "EF.Int.Kpub (1004)", data: chip.der},
			{number: 0xA5, name: "EF.Servizi_Int.Kpub (1005)", data: servizi.der},
			{number: 0x1B, name: "EF.DH (D004)"},
		}
		if files[1].data, err = c.readSeriale(ctx); err != nil {
			if !errors.Is(err, ErrPINRequired) {
				return err
			}
			files[1].reason = "the card requires the PIN"
		}
		if c.pinOK {
			if files[2].data, err = c.readCertificate(ctx); err != nil {
				if !errors.Is(err, ErrPINRequired) {
					return err
				}
				files[2].reason = "the PIN is not verified"
			}
		} else {
			files[2].reason = "the PIN is not verified"
		}
		if dh == nil {
			if dh, err = c.readEFDH(ctx); err != nil {
				return fmt.Errorf("reading EF.DH: %w", err)
			}
		}
		files[5].data = dh
		rep = checkSOD(s, files, c.now())
		return nil
	})
	if err != nil {
		return nil, err
	}
	if !rep.OK() {
		return rep, fmt.Errorf("cie: verifying the SOD: %w", ErrSODInvalid)
	}
	return rep, nil
}
