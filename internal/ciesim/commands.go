package ciesim

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"math/big"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// Constants of key 0x84 as the card reports it (GET DATA BF A0 04): the
// CHR is 4 zero bytes ‖ the 8-byte CAR; the CHA is the CA's application
// (the CIE AID) ‖ a role byte. The real cards' values are not public; these
// follow the layout of cie-protocol.md §3.3 and §6.2.
var (
	ifdCACAR = []byte("ITCIE001")
	ifdCACHR = append([]byte{0, 0, 0, 0}, ifdCACAR...)
	ifdCACHA = append(append([]byte(nil), aidCIE...), 0x00)
	// oidDAPP is the CV certificate's OID field: 1.2.162.14890.2.4.1 ‖ 04
	// (the last byte selects SHA-256), §6.2.
	oidDAPPPrefix = []byte{0x2A, 0x81, 0x22, 0xF4, 0x2A, 0x02, 0x04, 0x01}
)

const (
	cpiCV       = 0x8A // certificate profile identifier of the IFD CV certificate
	hashSHA256  = 0x04
	sigHeader   = 0x6A // ISO/IEC 9796-2 partial recovery header
	sigTrailer  = 0xBC
	algDH       = 0x9B
	algCertVer  = 0x41
	algPKCS1    = 0x02
	keyPIN      = 0x81 // also the holder key and the DH parameter reference
	keyPUK      = 0x82
	keyChip     = 0x82
	keyServizi  = 0x83
	keyIFDCA    = 0x84
	challengeSz = 8
	refDataLen  = 8
)

// Templates of GET DATA (§3.3), matched byte for byte.
var (
	tmplDHAll  = []byte{0x4D, 0x08, 0x70, 0x06, 0xBF, 0xA1, 0x01, 0x02, 0xA3, 0x80}
	tmplDHG    = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x97, 0x00}
	tmplDHP    = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x98, 0x00}
	tmplDHQ    = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x99, 0x00}
	tmplYICC   = []byte{0x4D, 0x04, 0xA6, 0x02, 0x91, 0x00}
	tmplCAKey  = []byte{0x4D, 0x09, 0x70, 0x07, 0xBF, 0xA0, 0x04, 0x03, 0x7F, 0x49, 0x80}
	tagDHG     = tlv.Tag(0x97)
	tagDHP     = tlv.Tag(0x98)
	tagDHQ     = tlv.Tag(0x99)
	tagDHY     = tlv.Tag(0x91)
	tagAlg     = tlv.Tag(0x80)
	tagKeyRef  = tlv.Tag(0x83)
	tagPrivKey = tlv.Tag(0x84)
)

// i2osp encodes x big-endian on exactly n bytes (x < 256^n is guaranteed by
// the callers: every x is reduced modulo an n-byte modulus).
func i2osp(x *big.Int, n int) []byte {
	b := make([]byte, n)
	x.FillBytes(b)
	return b
}

// dhEncodings returns g, p, q as the card stores and answers them (p and q
// minimal, g left-padded to |p|) — the same bytes enter the DAPP hashes.
func (c *Card) dhEncodings() (g, p, q []byte) {
	p = c.st.DH.P.Bytes()
	return i2osp(c.st.DH.G, len(p)), p, c.st.DH.Q.Bytes()
}

// ---- SELECT (§2) ----

func (c *Card) cmdSelect(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P2 != 0x00 && cmd.P2 != 0x04 && cmd.P2 != 0x0C {
		return nil, apdu.SWIncorrectP1P2
	}
	switch cmd.P1 {
	case 0x04: // by DF name
		switch {
		case bytes.Equal(cmd.Data, aidIAS) && c.fam.selectIAS:
			c.selectApp(x, dfRoot)
		case bytes.Equal(cmd.Data, aidCIE):
			c.selectApp(x, dfCIE)
		case len(cmd.Data) == 0:
			return nil, apdu.SWWrongLength
		default:
			return nil, apdu.SWFileNotFound
		}
		if cmd.P2 == 0x0C {
			return nil, apdu.SWOK
		}
		return tlv.Encode(0x6F, tlv.Encode(0x84, cmd.Data)), apdu.SWOK
	case 0x00: // MF, or a file by FID
		if len(cmd.Data) == 0 || bytes.Equal(cmd.Data, []byte{0x3F, 0x00}) {
			c.selectApp(x, dfRoot)
			if cmd.P2 != 0x04 { // 00 A4 00 00 (§2) and P2=0C answer no data
				return nil, apdu.SWOK
			}
			return fcp(fidMF, 0, true), apdu.SWOK
		}
		return c.selectEF(cmd)
	case 0x02: // EF under the current DF
		return c.selectEF(cmd)
	}
	return nil, apdu.SWIncorrectP1P2
}

// selectApp makes df current and ends the SM session and the security
// status (architecture.md "Selection"). Under SM the answer is still
// protected with the old session.
func (c *Card) selectApp(x *exchange, df dfID) {
	c.df, c.ef = df, nil
	if x.sm {
		x.endSession = true
		return
	}
	c.endSession()
}

func (c *Card) selectEF(cmd apdu.Command) ([]byte, apdu.StatusWord) {
	if len(cmd.Data) != 2 {
		return nil, apdu.SWWrongLength
	}
	fid := uint16(cmd.Data[0])<<8 | uint16(cmd.Data[1])
	f, ok := c.files[c.df][fid]
	if !ok {
		return nil, apdu.SWFileNotFound
	}
	c.ef = f
	if cmd.P2 == 0x0C {
		return nil, apdu.SWOK
	}
	return fcp(fid, len(f.data), false), apdu.SWOK
}

// fcp is a minimal FCP template: 62 { 80 size, 82 descriptor, 83 FID }.
func fcp(fid uint16, size int, df bool) []byte {
	desc := byte(0x01) // transparent EF
	if df {
		desc = 0x38
	}
	return tlv.Encode(0x62,
		tlv.Encode(0x80, []byte{byte(size >> 8), byte(size)}),
		tlv.Encode(0x82, []byte{desc}),
		tlv.Encode(0x83, []byte{byte(fid >> 8), byte(fid)}))
}

// ---- READ BINARY (§3.4) ----

func (c *Card) cmdReadBinary(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if len(cmd.Data) != 0 {
		return nil, apdu.SWWrongLength
	}
	f := c.ef
	var off int
	if cmd.P1&0x80 != 0 { // short EF identifier in P1, offset in P2
		if cmd.P1&0x60 != 0 {
			return nil, apdu.SWIncorrectP1P2
		}
		sfi := cmd.P1 & 0x1F
		f = nil
		for _, cand := range c.files[c.df] {
			if cand.sfi != 0 && cand.sfi == sfi {
				f = cand
			}
		}
		if f == nil {
			return nil, apdu.SWFileNotFound
		}
		c.ef = f
		off = int(cmd.P2)
	} else {
		if f == nil {
			return nil, apdu.SWCommandNotAllowed
		}
		off = int(cmd.P1)<<8 | int(cmd.P2)
	}
	if !c.allowed(f.acc, x) {
		return nil, apdu.SWSecurityStatus
	}
	if cmd.Ne == 0 {
		return nil, apdu.SWWrongLength
	}
	if off >= len(f.data) {
		return nil, apdu.SWWrongP1P2 // 6B00: offset beyond the end
	}
	n := min(cmd.Ne, len(f.data)-off)
	out := append([]byte(nil), f.data[off:off+n]...)
	if n < cmd.Ne {
		return out, apdu.SWEndOfFile
	}
	return out, apdu.SWOK
}

func (c *Card) allowed(acc access, x *exchange) bool {
	switch acc {
	case accSM:
		return x.sm && c.s.dapp
	case accPIN:
		return x.sm && c.s.dapp && c.s.pinOK
	}
	return true
}

// ---- GET DATA (§3.3) ----

func (c *Card) cmdGetData(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0x3F || cmd.P2 != 0xFF {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		return nil, apdu.SWWrongLength
	}
	if cmd.Data[0] != 0x4D {
		return nil, apdu.SWWrongData
	}
	if c.df != dfCIE {
		return nil, apdu.SWReferencedDataNotFound
	}
	g, p, q := c.dhEncodings()
	dhAnswer := func(dos ...[]byte) []byte {
		return tlv.Encode(0x70, tlv.Encode(0xBFA101, tlv.Encode(0xA3, dos...)))
	}
	d := cmd.Data
	switch {
	case bytes.Equal(d, tmplDHAll):
		if !c.fam.combinedDH {
			return nil, apdu.SWReferencedDataNotFound
		}
		return dhAnswer(tlv.Encode(tagDHG, g), tlv.Encode(tagDHP, p), tlv.Encode(tagDHQ, q)), apdu.SWOK
	case bytes.Equal(d, tmplDHG), bytes.Equal(d, tmplDHP), bytes.Equal(d, tmplDHQ):
		if c.fam.combinedDH {
			return nil, apdu.SWReferencedDataNotFound
		}
		switch d[len(d)-2] {
		case 0x97:
			return dhAnswer(tlv.Encode(tagDHG, g)), apdu.SWOK
		case 0x98:
			return dhAnswer(tlv.Encode(tagDHP, p)), apdu.SWOK
		default:
			return dhAnswer(tlv.Encode(tagDHQ, q)), apdu.SWOK
		}
	case bytes.Equal(d, tmplYICC):
		if c.s.dh == nil || x.sm {
			return nil, apdu.SWConditionsNotSatisfied
		}
		c.startSession()
		return tlv.Encode(0xA6, tlv.Encode(tagDHY, c.s.dh.yICC)), apdu.SWOK
	case bytes.Equal(d, tmplCAKey):
		k := c.st.IFDCA
		return tlv.Encode(0x70, tlv.Encode(0xBFA004, tlv.Encode(0x7F49,
			tlv.Encode(0x81, i2osp(k.N, (k.N.BitLen()+7)/8)),
			tlv.Encode(0x82, k.E.Bytes()),
			tlv.Encode(0x5F20, ifdCACHR),
			tlv.Encode(0x5F4C, ifdCACHA)))), apdu.SWOK
	}
	return nil, apdu.SWReferencedDataNotFound
}

// startSession derives the SM keys from the DH exchange (§4 steps 5–7):
// Z = Y_IFD^x mod p on |p| bytes, K_ENC/K_MAC by the KDF, SSC = 1. SM is
// active from the next command on.
func (c *Card) startSession() {
	dh := c.s.dh
	p := c.st.DH.P
	y := new(big.Int).SetBytes(dh.yIFD)
	z := i2osp(new(big.Int).Exp(y, dh.x, p), len(p.Bytes()))
	kEnc, kMAC := sm.DeriveKeys(z)
	clear(z)
	if c.s.sm != nil {
		c.s.sm.Close()
	}
	c.s = secEnv{dh: dh, sm: sm.NewSession(kEnc, kMAC, [8]byte{7: 1})}
	clear(kEnc)
	clear(kMAC)
}

// ---- MSE SET (§4, §6.3, §8) ----

// parseDOs parses the data field of MSE SET into its simple DOs; a
// duplicate tag or bad encoding yields ok = false.
func parseDOs(b []byte) (map[tlv.Tag][]byte, bool) {
	list, err := tlv.ParseAll(b)
	if err != nil {
		return nil, false
	}
	out := map[tlv.Tag][]byte{}
	for _, d := range list {
		if _, dup := out[d.Tag]; dup {
			return nil, false
		}
		out[d.Tag] = d.Value
	}
	return out, true
}

func oneByte(m map[tlv.Tag][]byte, t tlv.Tag) (byte, bool) {
	v, ok := m[t]
	if !ok || len(v) != 1 {
		return 0, false
	}
	return v[0], true
}

func (c *Card) cmdMSESet(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	p1p2 := uint16(cmd.P1)<<8 | uint16(cmd.P2)
	if p1p2 != 0x41A6 && p1p2 != 0x81B6 && p1p2 != 0x81A4 && p1p2 != 0x41A4 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		return nil, apdu.SWWrongLength
	}
	if c.df != dfCIE {
		return nil, apdu.SWReferencedDataNotFound
	}
	dos, ok := parseDOs(cmd.Data)
	if !ok {
		return nil, apdu.SWWrongData
	}
	switch p1p2 {
	case 0x41A6:
		return c.mseDH(x, dos)
	case 0x81B6: // DST for PSO VERIFY CERTIFICATE: 80 01 41 83 01 84
		if !x.sm {
			return nil, apdu.SWSecurityStatus
		}
		if alg, ok := oneByte(dos, tagAlg); !ok || alg != algCertVer {
			return nil, apdu.SWWrongData
		}
		if ref, ok := oneByte(dos, tagKeyRef); !ok || ref != keyIFDCA {
			return nil, apdu.SWReferencedDataNotFound
		}
		c.s.dstCA = true
		return nil, apdu.SWOK
	case 0x81A4: // AT for EXTERNAL AUTHENTICATE: 83 0C <CHR>
		if !x.sm {
			return nil, apdu.SWSecurityStatus
		}
		chr, ok := dos[tagKeyRef]
		if !ok || c.s.ifd == nil || !bytes.Equal(chr, c.s.ifd.chr) {
			return nil, apdu.SWReferencedDataNotFound
		}
		c.s.atIFD = true
		return nil, apdu.SWOK
	}
	// 0x41A4: AT for INTERNAL AUTHENTICATE: 84 01 <key> 80 01 <alg>
	key, ok1 := oneByte(dos, tagPrivKey)
	alg, ok2 := oneByte(dos, tagAlg)
	if !ok1 || !ok2 {
		return nil, apdu.SWWrongData
	}
	switch key {
	case keyChip:
		if alg != algDH {
			return nil, apdu.SWWrongData
		}
	case keyPIN, keyServizi:
		if alg != algPKCS1 {
			return nil, apdu.SWWrongData
		}
	default:
		return nil, apdu.SWReferencedDataNotFound
	}
	c.s.intKey = key
	return nil, apdu.SWOK
}

// mseDH is MSE SET 41 A6 (§4 step 3): 80 01 9B 83 01 81 91 <Y_IFD>. It
// ends any SM session, draws x in [2, q−2] and computes Y_ICC = g^x mod p.
func (c *Card) mseDH(x *exchange, dos map[tlv.Tag][]byte) ([]byte, apdu.StatusWord) {
	if x.sm {
		return nil, apdu.SWConditionsNotSatisfied // DH is plain (§4)
	}
	if alg, ok := oneByte(dos, tagAlg); !ok || alg != algDH {
		return nil, apdu.SWWrongData
	}
	if ref, ok := oneByte(dos, tagKeyRef); !ok || ref != keyPIN {
		return nil, apdu.SWReferencedDataNotFound
	}
	grp := c.st.DH
	yRaw, ok := dos[tagDHY]
	if !ok || len(yRaw) == 0 || len(yRaw) > len(grp.P.Bytes()) {
		return nil, apdu.SWWrongData
	}
	y := new(big.Int).SetBytes(yRaw)
	pm1 := new(big.Int).Sub(grp.P, big.NewInt(1))
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(pm1) >= 0 || new(big.Int).Exp(y, grp.Q, grp.P).Cmp(big.NewInt(1)) != 0 {
		return nil, apdu.SWWrongData // not an element of the order-q subgroup
	}
	c.endSession()
	xPriv, err := randRange(c.rand, grp.Q)
	if err != nil {
		return nil, apdu.SWNoPreciseDiagnosis
	}
	c.s.dh = &dhState{
		x:    xPriv,
		yIFD: append([]byte(nil), yRaw...),
		yICC: i2osp(new(big.Int).Exp(grp.G, xPriv, grp.P), len(grp.P.Bytes())),
	}
	return nil, apdu.SWOK
}

// randRange draws uniformly from [2, q−2].
func randRange(r io.Reader, q *big.Int) (*big.Int, error) {
	n, err := rand.Int(r, new(big.Int).Sub(q, big.NewInt(3)))
	if err != nil {
		return nil, err
	}
	return n.Add(n, big.NewInt(2)), nil
}

// ---- PSO VERIFY CERTIFICATE (§6.2, §6.3 step 2) ----

func (c *Card) cmdVerifyCertificate(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0x00 || cmd.P2 != 0xAE {
		return nil, apdu.SWIncorrectP1P2
	}
	if !x.sm {
		return nil, apdu.SWSecurityStatus
	}
	if !c.s.dstCA {
		return nil, apdu.SWConditionsNotSatisfied
	}
	c.s.ifd, c.s.atIFD = nil, false
	k, ok := c.verifyCV(cmd.Data)
	if !ok {
		return nil, apdu.SWWrongData
	}
	c.s.ifd = k
	return nil, apdu.SWOK
}

// verifyCV checks an IFD CV certificate 7F21 { 5F37 S, 5F38 R, 42 CAR }
// against key 0x84: M = S^e mod n must be 6A ‖ B[:k−34] ‖ SHA-256(B) ‖ BC
// with B = B[:k−34] ‖ R; B = 8A ‖ CAR ‖ CHR ‖ CHA ‖ OID ‖ n ‖ e.
func (c *Card) verifyCV(cert []byte) (*ifdKey, bool) {
	outer, rest, err := tlv.ParseOne(cert)
	if err != nil || len(rest) != 0 || outer.Tag != 0x7F21 {
		return nil, false
	}
	kids, err := outer.Children()
	if err != nil {
		return nil, false
	}
	sDO, ok1 := tlv.Find(kids, 0x5F37)
	rDO, ok2 := tlv.Find(kids, 0x5F38)
	carDO, ok3 := tlv.Find(kids, 0x42)
	if !ok1 || !ok2 || !ok3 || !bytes.Equal(carDO.Value, ifdCACAR) {
		return nil, false
	}
	ca := c.st.IFDCA
	k := (ca.N.BitLen() + 7) / 8
	s := new(big.Int).SetBytes(sDO.Value)
	if len(sDO.Value) != k || s.Cmp(ca.N) >= 0 {
		return nil, false
	}
	m := i2osp(new(big.Int).Exp(s, ca.E, ca.N), k)
	if m[0] != sigHeader || m[k-1] != sigTrailer {
		return nil, false
	}
	body := append(append([]byte(nil), m[1:k-33]...), rDO.Value...)
	sum := sha256.Sum256(body)
	if !bytes.Equal(sum[:], m[k-33:k-1]) {
		return nil, false
	}
	// Parse B with the lengths the card knows: CAR 8, CHR 12, CHA 7, OID 9,
	// then the modulus and a 4-byte exponent.
	const (
		offCAR = 1
		offCHR = offCAR + 8
		offCHA = offCHR + 12
		offOID = offCHA + 7
		offN   = offOID + 9
	)
	if len(body) < offN+64+4 || body[0] != cpiCV || !bytes.Equal(body[offCAR:offCHR], ifdCACAR) {
		return nil, false
	}
	if !bytes.Equal(body[offCHA:offCHA+6], ifdCACHA[:6]) {
		return nil, false
	}
	if !bytes.Equal(body[offOID:offOID+8], oidDAPPPrefix) || body[offOID+8] != hashSHA256 {
		return nil, false
	}
	nb := body[offN : len(body)-4]
	n := new(big.Int).SetBytes(nb)
	e := new(big.Int).SetBytes(body[len(body)-4:])
	if n.BitLen() < 1024 || e.Sign() == 0 {
		return nil, false
	}
	return &ifdKey{chr: append([]byte(nil), body[offCHR:offCHA]...), n: n, e: e, k: (n.BitLen() + 7) / 8}, true
}

// ---- GET CHALLENGE, EXTERNAL / INTERNAL AUTHENTICATE (§6.3, §8) ----

func (c *Card) cmdGetChallenge(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) != 0 || cmd.Ne != challengeSz {
		return nil, apdu.SWWrongLength
	}
	rnd := make([]byte, challengeSz)
	if _, err := io.ReadFull(c.rand, rnd); err != nil {
		return nil, apdu.SWNoPreciseDiagnosis
	}
	c.s.rndICC, c.s.chUsed = rnd, false
	return append([]byte(nil), rnd...), apdu.SWOK
}

// dappHash is SHA-256 of parts ‖ g ‖ p ‖ q: PRND, the DH values and the identities in the order of
// §6.3, with the bytes as sent and received.
func (c *Card) dappHash(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	g, p, q := c.dhEncodings()
	h.Write(g)
	h.Write(p)
	h.Write(q)
	return h.Sum(nil)
}

func (c *Card) cmdExternalAuthenticate(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if !x.sm || c.s.dh == nil {
		return nil, apdu.SWSecurityStatus
	}
	ifd := c.s.ifd
	if !c.s.atIFD || ifd == nil || c.s.rndICC == nil || c.s.chUsed {
		return nil, apdu.SWConditionsNotSatisfied
	}
	if len(cmd.Data) != 8+ifd.k {
		return nil, apdu.SWWrongLength
	}
	c.s.chUsed = true // one challenge, one try
	sn, sig := cmd.Data[:8], cmd.Data[8:]
	s := new(big.Int).SetBytes(sig)
	if !bytes.Equal(sn, ifd.chr[4:]) || s.Cmp(ifd.n) >= 0 {
		return nil, apdu.SWVerificationFailed
	}
	v := i2osp(new(big.Int).Exp(s, ifd.e, ifd.n), ifd.k)
	k := ifd.k
	if v[0] != sigHeader || v[k-1] != sigTrailer {
		return nil, apdu.SWVerificationFailed
	}
	dh := c.s.dh
	h := c.dappHash(v[1:k-33], dh.yIFD, sn, c.s.rndICC, dh.yICC)
	if subtle.ConstantTimeCompare(h, v[k-33:k-1]) != 1 {
		return nil, apdu.SWVerificationFailed
	}
	c.s.extOK = true
	return nil, apdu.SWOK
}

func (c *Card) cmdInternalAuthenticate(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0 || cmd.P2 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if len(cmd.Data) == 0 {
		return nil, apdu.SWWrongLength
	}
	switch c.s.intKey {
	case keyChip:
		return c.chipAuthenticate(x)
	case keyPIN:
		if !x.sm || !c.s.dapp || !c.s.pinOK {
			return nil, apdu.SWSecurityStatus
		}
		return signPKCS1(c.st.HolderKey, cmd.Data)
	case keyServizi:
		return signPKCS1(c.st.ServiziKey, cmd.Data)
	}
	return nil, apdu.SWConditionsNotSatisfied
}

// signPKCS1 applies PKCS#1 v1.5 type-1 padding to data (a DigestInfo or any
// message up to k−11 bytes) and signs it (§8).
func signPKCS1(key *rsa.PrivateKey, data []byte) ([]byte, apdu.StatusWord) {
	if len(data) > key.Size()-11 {
		return nil, apdu.SWWrongLength
	}
	sig, err := rsa.SignPKCS1v15(nil, key, crypto.Hash(0), data)
	if err != nil {
		return nil, apdu.SWNoPreciseDiagnosis
	}
	return sig, apdu.SWOK
}

// chipAuthenticate is INTERNAL AUTHENTICATE with key 0x82 (§6.3 step 7):
// answer SN.ICC[4:12] ‖ (6A ‖ PRND2 ‖ SHA-256(PRND2 ‖ Y_ICC ‖ SN ‖ rndIFD ‖
// Y_IFD ‖ g ‖ p ‖ q) ‖ BC)^d mod n; afterwards SSC = RND.ICC[4:8] ‖
// rndIFD[4:8] and device authentication is complete.
func (c *Card) chipAuthenticate(x *exchange) ([]byte, apdu.StatusWord) {
	if !x.sm || c.s.dh == nil {
		return nil, apdu.SWSecurityStatus
	}
	if !c.s.extOK {
		return nil, apdu.SWConditionsNotSatisfied
	}
	rndIFD := x.cmd.Data
	if len(rndIFD) != challengeSz {
		return nil, apdu.SWWrongLength
	}
	key := c.st.ChipKey
	k := key.Size()
	prnd := make([]byte, k-34)
	if _, err := io.ReadFull(c.rand, prnd); err != nil {
		return nil, apdu.SWNoPreciseDiagnosis
	}
	sn := c.snicc[4:12]
	dh := c.s.dh
	h := c.dappHash(prnd, dh.yICC, sn, rndIFD, dh.yIFD)
	m := make([]byte, 0, k)
	m = append(m, sigHeader)
	m = append(m, prnd...)
	m = append(m, h...)
	m = append(m, sigTrailer)
	sig := i2osp(new(big.Int).Exp(new(big.Int).SetBytes(m), key.D, key.N), k)
	var ssc [8]byte
	copy(ssc[:4], c.s.rndICC[4:8])
	copy(ssc[4:], rndIFD[4:8])
	session := c.s.sm
	x.after = func() {
		session.SetSSC(ssc)
		c.s.dapp = true
	}
	return append(append([]byte(nil), sn...), sig...), apdu.SWOK
}

// ---- PIN and PUK (§7) ----

// refData returns the reference data, tries left and verified flag of P2.
func (c *Card) refData(p2 byte) (ref *[]byte, left *int, maxTries int, ok *bool, found bool) {
	switch p2 {
	case keyPIN:
		return &c.pin, &c.pinLeft, c.pinMax, &c.s.pinOK, true
	case keyPUK:
		return &c.puk, &c.pukLeft, c.pukMax, &c.s.pukOK, true
	}
	return nil, nil, 0, nil, false
}

// triesSW is 63Cx, or 6983 when no try is left.
func triesSW(left int) apdu.StatusWord {
	if left <= 0 {
		return apdu.SWAuthMethodBlocked
	}
	return apdu.StatusWord(0x63C0 | uint16(left))
}

// checkRef compares candidate with the reference data, spending a try on a
// mismatch and restoring the counter on a match.
func checkRef(ref []byte, left *int, maxTries int, verified *bool, candidate []byte) apdu.StatusWord {
	if *left <= 0 {
		return apdu.SWAuthMethodBlocked
	}
	if subtle.ConstantTimeCompare(ref, candidate) == 1 {
		*left = maxTries
		*verified = true
		return apdu.SWOK
	}
	*left--
	*verified = false
	return triesSW(*left)
}

// refCommandAllowed: PIN commands only under SM after device
// authentication (architecture.md "PIN/PUK").
func (c *Card) refCommandAllowed(x *exchange) bool { return x.sm && c.s.dapp }

func (c *Card) cmdVerify(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	ref, left, maxTries, verified, found := c.refData(cmd.P2)
	if !found {
		return nil, apdu.SWReferencedDataNotFound
	}
	if !c.refCommandAllowed(x) {
		return nil, apdu.SWSecurityStatus
	}
	if len(cmd.Data) == 0 { // status query, no try spent
		if *verified {
			return nil, apdu.SWOK
		}
		return nil, triesSW(*left)
	}
	if len(cmd.Data) != refDataLen {
		return nil, apdu.SWWrongLength
	}
	if !allDigits(cmd.Data) {
		return nil, apdu.SWWrongData
	}
	return nil, checkRef(*ref, left, maxTries, verified, cmd.Data)
}

func (c *Card) cmdChangeReferenceData(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0 {
		return nil, apdu.SWIncorrectP1P2
	}
	if cmd.P2 != keyPIN {
		return nil, apdu.SWReferencedDataNotFound
	}
	if !c.refCommandAllowed(x) {
		return nil, apdu.SWSecurityStatus
	}
	if len(cmd.Data) != 2*refDataLen {
		return nil, apdu.SWWrongLength
	}
	if !allDigits(cmd.Data) {
		return nil, apdu.SWWrongData
	}
	sw := checkRef(c.pin, &c.pinLeft, c.pinMax, &c.s.pinOK, cmd.Data[:refDataLen])
	if sw != apdu.SWOK {
		return nil, sw
	}
	clear(c.pin)
	c.pin = append([]byte(nil), cmd.Data[refDataLen:]...)
	return nil, apdu.SWOK
}

func (c *Card) cmdResetRetryCounter(x *exchange) ([]byte, apdu.StatusWord) {
	cmd := x.cmd
	if cmd.P1 != 0x02 && cmd.P1 != 0x03 {
		return nil, apdu.SWIncorrectP1P2
	}
	if cmd.P2 != keyPIN {
		return nil, apdu.SWReferencedDataNotFound
	}
	if !c.refCommandAllowed(x) || !c.s.pukOK {
		return nil, apdu.SWSecurityStatus
	}
	if cmd.P1 == 0x03 {
		if len(cmd.Data) != 0 {
			return nil, apdu.SWWrongLength
		}
		c.pinLeft = c.pinMax
		return nil, apdu.SWOK
	}
	if len(cmd.Data) != refDataLen {
		return nil, apdu.SWWrongLength
	}
	if !allDigits(cmd.Data) {
		return nil, apdu.SWWrongData
	}
	clear(c.pin)
	c.pin = append([]byte(nil), cmd.Data...)
	c.pinLeft = c.pinMax
	return nil, apdu.SWOK
}
