package cie

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"math/big"
	"slices"

	"filippo.io/bigmod"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// DAPP constants (§6.2, §6.3).
const (
	cpi             = 0x8A // certificate profile identifier
	isoHeader       = 0x6A // ISO/IEC 9796-2 header of a partially recovered message
	isoTrailer      = 0xBC // trailer: SHA-256 implied
	p1MSESetVerify  = 0x81 // MSE SET for external operations (§6.3 steps 1, 3)
	p1MSESetCompute = 0x41 // MSE SET for internal operations (§6.3 step 6)
	p2MSEDST        = 0xB6
	p2MSEAT         = 0xA4
	p2PSOVerifyCert = 0xAE
	challengeSize   = 8
	keyChipAuth     = 0x82
	algChipAuth     = 0x9B

	tagCVCertificate tlv.Tag = 0x7F21
	tagSignature     tlv.Tag = 0x5F37
	tagRemainder     tlv.Tag = 0x5F38
	tagCAR           tlv.Tag = 0x42
)

// cvOID is the OID field of the CV certificate body: 1.2.162.14890.2.4.1 ‖
// 04 (SHA-256 selector), §6.2.
var cvOID = []byte{0x2A, 0x81, 0x22, 0xF4, 0x2A, 0x02, 0x04, 0x01, 0x04}

// DAPP command data (§6.3).
var (
	mseSetDSTCAKey = []byte{0x80, 0x01, 0x41, 0x83, 0x01, 0x84}               // step 1: verify with key 84
	mseSetATChip   = []byte{0x84, 0x01, keyChipAuth, 0x80, 0x01, algChipAuth} // step 6: key 82, alg 9B
	chrIFD         = append([]byte{0x00, 0x00, 0x00, 0x00}, snIFD...)         // CHR of the IFD key
	mseSetATIFD    = append([]byte{0x83, byte(len(chrIFD))}, chrIFD...)       // step 3
)

// caKey is the card's IFD-CA key 0x84 (GET DATA BF A0 04, §3.3).
type caKey struct {
	n, e []byte // n and e without leading zeros
	car  []byte // CHR[4:], the CA reference the CV certificate names
	aid  []byte // CHA[:6]
}

// parseCAKey parses 70 { BF A0 04 { 7F 49 { 81 n, 82 e, 5F20 CHR, 5F4C CHA } } }.
// The DOs are found by tag. n must have at least 1024 bits, start above 6A
// and be at most 34 bytes longer than the CV certificate body (297 bytes
// with an 8-byte CAR), so that the body is partly recovered.
func parseCAKey(answer []byte) (*caKey, error) {
	list, err := tlv.ParseAll(answer)
	if err != nil {
		return nil, err
	}
	for _, tag := range []tlv.Tag{tagSDOTemplate, tagCAKeySDO, tagPublicKey} {
		do, ok := tlv.Find(list, tag)
		if !ok {
			return nil, fmt.Errorf("IFD-CA key: no DO %v: %w", tag, tlv.ErrMalformed)
		}
		if list, err = do.Children(); err != nil {
			return nil, err
		}
	}
	get := func(tag tlv.Tag) ([]byte, error) {
		do, ok := tlv.Find(list, tag)
		if !ok {
			return nil, fmt.Errorf("IFD-CA key: no DO %v: %w", tag, tlv.ErrMalformed)
		}
		return do.Value, nil
	}
	var k caKey
	var chr, cha []byte
	if k.n, err = get(tagModulus); err != nil {
		return nil, err
	}
	if k.e, err = get(tagExponent); err != nil {
		return nil, err
	}
	if chr, err = get(tagCHR); err != nil {
		return nil, err
	}
	if cha, err = get(tagCHA); err != nil {
		return nil, err
	}
	k.n, k.e = bytes.Clone(trimZeros(k.n)), bytes.Clone(trimZeros(k.e))
	switch {
	case len(chr) <= 4 || len(chr) > 16:
		return nil, fmt.Errorf("IFD-CA key: CHR of %d bytes: %w", len(chr), tlv.ErrMalformed)
	case len(cha) < 6:
		return nil, fmt.Errorf("IFD-CA key: CHA of %d bytes: %w", len(cha), tlv.ErrMalformed)
	case new(big.Int).SetBytes(k.n).BitLen() < 1024 || len(k.n) < 128 || k.n[len(k.n)-1]&1 == 0:
		return nil, fmt.Errorf("IFD-CA key: modulus of %d bytes: %w", len(k.n), tlv.ErrMalformed)
	case len(k.e) == 0 || k.e[0] == 0 || len(k.e) > len(k.n):
		return nil, fmt.Errorf("IFD-CA key: bad exponent: %w", tlv.ErrMalformed)
	}
	k.car = bytes.Clone(chr[4:])
	k.aid = bytes.Clone(cha[:6])
	if len(k.n)-34 > len(cvBody(&k)) {
		return nil, fmt.Errorf("IFD-CA key: modulus of %d bytes is too long for the CV certificate: %w", len(k.n), tlv.ErrMalformed)
	}
	if k.n[0] <= isoHeader {
		// M = 6A … has the length of n and must be smaller than n.
		return nil, fmt.Errorf("IFD-CA key: modulus starts with %02X: %w", k.n[0], tlv.ErrMalformed)
	}
	return &k, nil
}

// cvBody builds the CV certificate body B of §6.2.
func cvBody(ca *caKey) []byte {
	b := make([]byte, 0, 1+len(ca.car)+len(chrIFD)+7+len(cvOID)+len(ifdModulus)+len(ifdPublicExponent))
	b = append(b, cpi)
	b = append(b, ca.car...)
	b = append(b, chrIFD...)
	b = append(b, ca.aid...)
	b = append(b, 0x01)
	b = append(b, cvOID...)
	b = append(b, ifdModulus...)
	return append(b, ifdPublicExponent...)
}

// rsaPrivate computes m^d mod n (raw RSA with a private exponent, constant
// time), I2OSP'd to |n|.
func rsaPrivate(n, d, m []byte) ([]byte, error) {
	mod, err := bigmod.NewModulus(n)
	if err != nil {
		return nil, err
	}
	x, err := bigmod.NewNat().SetBytes(m, mod)
	if err != nil {
		return nil, err
	}
	return bigmod.NewNat().Exp(x, d, mod).Bytes(mod), nil
}

// rsaPublic computes s^e mod n (public operation), I2OSP'd to len(n).
func rsaPublic(n, e, s []byte) ([]byte, error) {
	nb := new(big.Int).SetBytes(n)
	sb := new(big.Int).SetBytes(s)
	if sb.Cmp(nb) >= 0 {
		return nil, errors.New("RSA input not smaller than the modulus")
	}
	v := new(big.Int).Exp(sb, new(big.Int).SetBytes(e), nb)
	return v.FillBytes(make([]byte, len(n))), nil
}

// cvCertificate signs the CV certificate of §6.2 with the published IFD-CA
// exponent, checks it with the card's CA public exponent (as the reference
// does; a mismatch means the card's key 84 is not the published one) and
// returns 7F21 { 5F37 S, 5F38 R, 42 CAR }.
func cvCertificate(ca *caKey) ([]byte, error) {
	b := cvBody(ca)
	k := len(ca.n)
	h := sha256.Sum256(b)
	m := make([]byte, 0, k)
	m = append(m, isoHeader)
	m = append(m, b[:k-34]...)
	m = append(m, h[:]...)
	m = append(m, isoTrailer)
	s, err := rsaPrivate(ca.n, caPrivateExponent, m)
	if err != nil {
		return nil, fmt.Errorf("signing the CV certificate: %w", err)
	}
	back, err := rsaPublic(ca.n, ca.e, s)
	if err != nil || !bytes.Equal(back, m) {
		return nil, errors.New("signing the CV certificate: the card's IFD-CA key does not match the published private exponent")
	}
	return tlv.Encode(tagCVCertificate,
		tlv.Encode(tagSignature, s),
		tlv.Encode(tagRemainder, b[k-34:]),
		tlv.Encode(tagCAR, ca.car)), nil
}

// ifdSignature builds SIG_IFD of §6.3 step 5:
// (6A ‖ PRND ‖ SHA-256(PRND ‖ Y_IFD ‖ snIFD ‖ RND.ICC ‖ Y_ICC ‖ g ‖ p ‖ q) ‖ BC)^d mod n.
func ifdSignature(r io.Reader, grp *dhGroup, dh dhResult, rndICC []byte) ([]byte, error) {
	k := len(ifdModulus)
	prnd := make([]byte, k-34)
	if _, err := io.ReadFull(r, prnd); err != nil {
		return nil, fmt.Errorf("drawing PRND: %w", err)
	}
	h := sha256.New()
	for _, part := range [][]byte{prnd, dh.yIFD, snIFD, rndICC, dh.yICC, grp.g, grp.p, grp.q} {
		h.Write(part)
	}
	m := make([]byte, 0, k)
	m = append(m, isoHeader)
	m = append(m, prnd...)
	m = h.Sum(m)
	m = append(m, isoTrailer)
	return rsaPrivate(ifdModulus, ifdPrivateExponent, m)
}

// checkChip verifies the answer to INTERNAL AUTHENTICATE with key 82 (§6.3
// "Chip check"): SN.ICC[4:12] ‖ SIG_ICC, with V = SIG_ICC^e mod n =
// 6A ‖ PRND2 ‖ SHA-256(PRND2 ‖ Y_ICC ‖ SN.ICC ‖ rndIFD ‖ Y_IFD ‖ g ‖ p ‖ q) ‖ BC.
func checkChip(chip *rsaFile, snICC []byte, answer, rndIFD []byte, grp *dhGroup, dh dhResult) error {
	n := chip.key.N.Bytes()
	e := big.NewInt(int64(chip.key.E)).Bytes()
	if len(answer) != 8+len(n) {
		return fmt.Errorf("%w: answer of %d bytes, want %d", ErrChipAuthentication, len(answer), 8+len(n))
	}
	sn, sig := answer[:8], answer[8:]
	if len(snICC) >= 12 && !bytes.Equal(sn, snICC[4:12]) {
		return fmt.Errorf("%w: the chip answered with another serial number", ErrChipAuthentication)
	}
	v, err := rsaPublic(n, e, sig)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrChipAuthentication, err)
	}
	if len(v) < 34 || v[0] != isoHeader || v[len(v)-1] != isoTrailer {
		return fmt.Errorf("%w: the signature does not recover a 6A…BC message", ErrChipAuthentication)
	}
	prnd2, hICC := v[1:len(v)-33], v[len(v)-33:len(v)-1]
	h := sha256.New()
	for _, part := range [][]byte{prnd2, dh.yICC, sn, rndIFD, dh.yIFD, grp.g, grp.p, grp.q} {
		h.Write(part)
	}
	if subtle.ConstantTimeCompare(h.Sum(nil), hICC) != 1 {
		return fmt.Errorf("%w: the signature does not cover this key agreement", ErrChipAuthentication)
	}
	return nil
}

// caKeyObject returns the IFD-CA key and its signed CV certificate, fetched
// and built once per Card.
func (c *Card) caKeyObject(ctx context.Context) (*caKey, []byte, error) {
	if c.ca != nil && c.cvCert == nil { // from a Profile: sign it now
		cert, err := cvCertificate(c.ca)
		if err != nil {
			return nil, nil, err
		}
		c.cvCert = cert
	}
	if c.ca != nil {
		return c.ca, c.cvCert, nil
	}
	ans, err := c.getData(ctx, getDataIFDCAKey)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the IFD-CA key: %w", err)
	}
	ca, err := parseCAKey(ans)
	if err != nil {
		return nil, nil, fmt.Errorf("reading the IFD-CA key: %w", err)
	}
	cert, err := cvCertificate(ca)
	if err != nil {
		return nil, nil, err
	}
	c.ca, c.cvCert, c.caRaw = ca, cert, ans
	return ca, cert, nil
}

// secureOK sends cmd under SM and requires 9000.
func (c *Card) secureOK(ctx context.Context, cmd apdu.Command, what string) ([]byte, error) {
	r, err := c.secure(ctx, cmd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if err := checkSW(r, what); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// dapp runs the device authentication of §6.3 on the fresh SM session and
// resets the SSC to RND.ICC[4:8] ‖ rndIFD[4:8].
func (c *Card) dapp(ctx context.Context, grp *dhGroup, dh dhResult, cvCert []byte, chip *rsaFile) error {
	if _, err := c.secureOK(ctx, apdu.Command{INS: insMSESet, P1: p1MSESetVerify, P2: p2MSEDST, Data: mseSetDSTCAKey, Ne: 256}, "MSE SET DST"); err != nil {
		return err
	}
	if _, err := c.secureOK(ctx, apdu.Command{INS: insPSOVerifyCertificate, P2: p2PSOVerifyCert, Data: cvCert}, "PSO VERIFY CERTIFICATE"); err != nil {
		return fmt.Errorf("the card refused the host certificate: %w", err)
	}
	if _, err := c.secureOK(ctx, apdu.Command{INS: insMSESet, P1: p1MSESetVerify, P2: p2MSEAT, Data: mseSetATIFD}, "MSE SET AT"); err != nil {
		return err
	}
	rndICC, err := c.secureOK(ctx, apdu.Command{INS: insGetChallenge, Ne: challengeSize}, "GET CHALLENGE")
	if err != nil {
		return err
	}
	if len(rndICC) != challengeSize {
		return fmt.Errorf("GET CHALLENGE: %d bytes: %w", len(rndICC), apdu.ErrMalformed)
	}
	sig, err := ifdSignature(c.rand, grp, dh, rndICC)
	if err != nil {
		return err
	}
	if _, err := c.secureOK(ctx, apdu.Command{INS: insExternalAuthenticate, Data: append(bytes.Clone(snIFD), sig...)}, "EXTERNAL AUTHENTICATE"); err != nil {
		return fmt.Errorf("the card refused the host authentication: %w", err)
	}
	if _, err := c.secureOK(ctx, apdu.Command{INS: insMSESet, P1: p1MSESetCompute, P2: p2MSEAT, Data: mseSetATChip}, "MSE SET AT"); err != nil {
		return err
	}
	c.seKey = keyChipAuth
	rndIFD := make([]byte, challengeSize)
	if _, err := io.ReadFull(c.rand, rndIFD); err != nil {
		return fmt.Errorf("drawing rndIFD: %w", err)
	}
	ans, err := c.secureOK(ctx, apdu.Command{INS: insInternalAuthenticate, Data: rndIFD}, "INTERNAL AUTHENTICATE")
	if err != nil {
		return err
	}
	if err := checkChip(chip, c.snICC, ans, rndIFD, grp, dh); err != nil {
		return err
	}
	var ssc [8]byte
	copy(ssc[:4], rndICC[4:8])
	copy(ssc[4:], rndIFD[4:8])
	c.smt.Session().SetSSC(ssc)
	return nil
}

// ensureSM establishes secure messaging if there is no session: DF_CIE,
// DH parameters, IFD-CA key and chip key (all cached per Card), DH (§4) and
// DAPP (§6).
//
// On a Card of OpenProfile whose card has not proven its identity yet, a
// handshake that fails because of the card's answers identifies the card
// (confirm): another card is ErrCardChanged; a card with the same serial
// number but another chip key than the profile's is ErrCardChanged too (a
// card's profile never changes, and EF.SN.ICC can be copied); the same card
// runs the handshake once more with its public data read afresh. A successful DAPP
// proves the identity: the chip signed with the profile's chip key and
// answered with the profile's serial number.
func (c *Card) ensureSM(ctx context.Context) error {
	if c.smt != nil {
		return nil
	}
	err := c.handshake(ctx)
	if err == nil || !c.presumed || !profileMismatch(err) {
		if err == nil {
			c.presumed = false
		}
		return err
	}
	c.log.DebugContext(ctx, "cie: handshake with the profile's data failed, identifying the card", "err", err)
	var recorded []byte
	if c.chip != nil {
		recorded = slices.Clone(c.chip.der)
	}
	if err := c.confirm(ctx); err != nil {
		return err
	}
	// The same serial number, but EF.SN.ICC is readable by anyone: a card
	// that copies it must not get the PIN. A real card's profile never
	// changes, so its chip key read afresh is the recorded one; another key
	// means another chip, and nothing more is sent to it.
	c.dropPublicData()
	chip, err := c.chipKeyFile(ctx)
	if err != nil {
		return err
	}
	if !bytes.Equal(chip.der, recorded) {
		c.log.InfoContext(ctx, "cie: the card repeats the profile's serial number with another chip key")
		return fmt.Errorf("%w: %w", ErrCardChanged, errChipKeyChanged)
	}
	return c.handshake(ctx)
}

// errChipKeyChanged is the cause of the ErrCardChanged of a card that
// answers with the recorded EF.SN.ICC but not with the recorded chip key.
var errChipKeyChanged = errors.New("the card repeats the recorded serial number but has another chip key")

// handshake runs ensureSM's steps once.
func (c *Card) handshake(ctx context.Context) error {
	if err := c.inCIE(ctx); err != nil {
		return err
	}
	grp, err := c.dhParams(ctx)
	if err != nil {
		return err
	}
	_, cvCert, err := c.caKeyObject(ctx)
	if err != nil {
		return err
	}
	chip, err := c.chipKeyFile(ctx)
	if err != nil {
		return err
	}
	c.log.DebugContext(ctx, "cie: establishing secure messaging")
	dh, err := c.keyAgreement(ctx, grp)
	if err != nil {
		return fmt.Errorf("DH key agreement: %w", err)
	}
	if err := c.dapp(ctx, grp, dh, cvCert, chip); err != nil {
		c.dropSession("device authentication failed")
		return fmt.Errorf("device authentication: %w", err)
	}
	c.pinOK = false
	return nil
}

// Prepare reads, in plain and once per Card, the public data the secure
// messaging handshake needs: the DH group, the IFD-CA key (and signs the
// host's CV certificate for it) and the chip key EF.Int.Kpub. Calling it
// ahead of time (e.g. when a PKCS#11 session opens) keeps the later
// VerifyPIN to DH + DAPP + VERIFY (+ SELECT CIE when the card was used
// since): 17–18 APDUs on the simulator, 21–22 with the first signature,
// within the PKCS#11 budget of 22. It is optional and never ends a live
// session; without it the first VerifyPIN fetches the same data.
func (c *Card) Prepare(ctx context.Context) error {
	return c.run(ctx, "preparing the handshake", true, func(ctx context.Context, _ *operation) error {
		if c.smt != nil {
			return nil
		}
		if err := c.inCIE(ctx); err != nil {
			return err
		}
		if _, err := c.dhParams(ctx); err != nil {
			return err
		}
		if _, _, err := c.caKeyObject(ctx); err != nil {
			return err
		}
		_, err := c.chipKeyFile(ctx)
		return err
	})
}
