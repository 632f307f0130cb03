package cie

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"

	"filippo.io/bigmod"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// GET DATA templates (§3.3), sent in plain as 00 CB 3F FF Lc <data>, no Le.
var (
	getDataDHCombined = []byte{0x4D, 0x08, 0x70, 0x06, 0xBF, 0xA1, 0x01, 0x02, 0xA3, 0x80}
	getDataDHG        = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x97, 0x00}
	getDataDHP        = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x98, 0x00}
	getDataDHQ        = []byte{0x4D, 0x0A, 0x70, 0x08, 0xBF, 0xA1, 0x01, 0x04, 0xA3, 0x02, 0x99, 0x00}
	getDataICCPublic  = []byte{0x4D, 0x04, 0xA6, 0x02, 0x91, 0x00}
	getDataIFDCAKey   = []byte{0x4D, 0x09, 0x70, 0x07, 0xBF, 0xA0, 0x04, 0x03, 0x7F, 0x49, 0x80}
)

// Data object tags of the GET DATA answers and of MSE SET (§3.3, §4).
const (
	tagSDOTemplate tlv.Tag = 0x70
	tagDHParams    tlv.Tag = 0xBFA101 // SDO DH parameters, reference 1
	tagCAKeySDO    tlv.Tag = 0xBFA004 // SDO RSA public key, reference 4 (key 0x84)
	tagDHValues    tlv.Tag = 0xA3
	tagDHG         tlv.Tag = 0x97
	tagDHP         tlv.Tag = 0x98
	tagDHQ         tlv.Tag = 0x99
	tagKAT         tlv.Tag = 0xA6 // key agreement template
	tagDHPublic    tlv.Tag = 0x91
	tagPublicKey   tlv.Tag = 0x7F49
	tagModulus     tlv.Tag = 0x81
	tagExponent    tlv.Tag = 0x82
	tagCHR         tlv.Tag = 0x5F20
	tagCHA         tlv.Tag = 0x5F4C

	p1GetData, p2GetData = 0x3F, 0xFF
	p1MSESetComputeKAT   = 0x41 // MSE SET for internal operations (§4, §8)
	p2MSEKAT             = 0xA6
)

// mseSetDHPrefix is the MSE SET KAT data before DO91 (§4 step 3):
// algorithm 9B, key/parameter reference 81.
var mseSetDHPrefix = []byte{0x80, 0x01, 0x9B, 0x83, 0x01, 0x81}

// dhGroup is the card's DH domain. g, p and q keep the bytes the card sent,
// because DAPP hashes them as received (§6.3).
type dhGroup struct {
	g, p, q []byte
	pMod    *bigmod.Modulus
	qMod    *bigmod.Modulus
	qMinus3 *bigmod.Modulus // bound of the exponent draw
	pBig    *big.Int
}

// newDHGroup checks the domain: p odd, 1024–4096 bits; 5 ≤ q < p; 1 < g < p−1.
func newDHGroup(g, p, q []byte) (*dhGroup, error) {
	pb, qb, gb := new(big.Int).SetBytes(p), new(big.Int).SetBytes(q), new(big.Int).SetBytes(g)
	one := big.NewInt(1)
	switch {
	case pb.Bit(0) == 0 || pb.BitLen() < 1024 || pb.BitLen() > 4096:
		return nil, fmt.Errorf("DH p of %d bits is not an odd modulus of 1024 to 4096 bits: %w", pb.BitLen(), tlv.ErrMalformed)
	case qb.Cmp(big.NewInt(5)) < 0 || qb.Cmp(pb) >= 0:
		return nil, fmt.Errorf("DH q out of range: %w", tlv.ErrMalformed)
	case gb.Cmp(one) <= 0 || gb.Cmp(new(big.Int).Sub(pb, one)) >= 0:
		return nil, fmt.Errorf("DH g out of range: %w", tlv.ErrMalformed)
	}
	pMod, err := bigmod.NewModulus(pb.Bytes())
	if err != nil {
		return nil, fmt.Errorf("DH p: %w", err)
	}
	qMod, err := bigmod.NewModulus(qb.Bytes())
	if err != nil {
		return nil, fmt.Errorf("DH q: %w", err)
	}
	qMinus3, err := bigmod.NewModulus(new(big.Int).Sub(qb, big.NewInt(3)).Bytes())
	if err != nil {
		return nil, fmt.Errorf("DH q: %w", err)
	}
	return &dhGroup{g: g, p: p, q: q, pMod: pMod, qMod: qMod, qMinus3: qMinus3, pBig: pb}, nil
}

// dhValues walks 70 { BF A1 01 { A3 { … } } } and returns A3's children.
func dhValues(answer []byte) ([]tlv.TLV, error) {
	list, err := tlv.ParseAll(answer)
	if err != nil {
		return nil, err
	}
	path := []tlv.Tag{tagSDOTemplate, tagDHParams, tagDHValues}
	for _, tag := range path {
		do, ok := tlv.Find(list, tag)
		if !ok {
			return nil, fmt.Errorf("DH parameters: no DO %v: %w", tag, tlv.ErrMalformed)
		}
		if list, err = do.Children(); err != nil {
			return nil, err
		}
	}
	return list, nil
}

// parseDHCombined parses the answer to the combined template: the children
// of A3 are g, p, q in this order (§3.3; tags 97, 98, 99 are used when
// present).
func parseDHCombined(answer []byte) (*dhGroup, error) {
	vals, err := dhValues(answer)
	if err != nil {
		return nil, err
	}
	g, okG := tlv.Find(vals, tagDHG)
	p, okP := tlv.Find(vals, tagDHP)
	q, okQ := tlv.Find(vals, tagDHQ)
	if !okG || !okP || !okQ {
		if len(vals) != 3 {
			return nil, fmt.Errorf("DH parameters: %d values in A3, want g, p, q: %w", len(vals), tlv.ErrMalformed)
		}
		g, p, q = vals[0], vals[1], vals[2]
	}
	return newDHGroup(g.Value, p.Value, q.Value)
}

// parseDHValue parses the answer to one separate template.
func parseDHValue(answer []byte, tag tlv.Tag) ([]byte, error) {
	vals, err := dhValues(answer)
	if err != nil {
		return nil, err
	}
	v, ok := tlv.Find(vals, tag)
	if !ok || len(v.Value) == 0 {
		return nil, fmt.Errorf("DH parameters: no value %v: %w", tag, tlv.ErrMalformed)
	}
	return v.Value, nil
}

// getData sends GET DATA in plain (no Le; the card answers 61xx).
func (c *Card) getData(ctx context.Context, data []byte) ([]byte, error) {
	r, err := c.plain(ctx, apdu.Command{INS: insGetData, P1: p1GetData, P2: p2GetData, Data: data})
	if err != nil {
		return nil, fmt.Errorf("GET DATA: %w", err)
	}
	if err := checkSW(r, "GET DATA"); err != nil {
		return nil, err
	}
	return r.Data, nil
}

// dhParams returns the DH domain, fetched once per Card with the family's
// template and, if that fails, the other one (architecture.md "DH group").
func (c *Card) dhParams(ctx context.Context) (*dhGroup, error) {
	if c.group != nil {
		return c.group, nil
	}
	first := c.family.DH
	if c.dhStyle != 0 {
		first = c.dhStyle
	}
	styles := []DHStyle{first, DHSeparate}
	if first == DHSeparate {
		styles[1] = DHCombined
	}
	var errs []error
	for _, style := range styles {
		grp, err := c.fetchDH(ctx, style)
		if err == nil {
			c.group, c.dhStyle = grp, style
			return grp, nil
		}
		if !isStatus(err) && !errors.Is(err, tlv.ErrMalformed) {
			return nil, err // transport failure: do not try the other style
		}
		c.log.DebugContext(ctx, "cie: DH parameters template failed", "style", style, "err", err)
		errs = append(errs, fmt.Errorf("%v template: %w", style, err))
	}
	return nil, fmt.Errorf("reading DH parameters: %w", errors.Join(errs...))
}

func (c *Card) fetchDH(ctx context.Context, style DHStyle) (*dhGroup, error) {
	if style == DHCombined {
		ans, err := c.getData(ctx, getDataDHCombined)
		if err != nil {
			return nil, err
		}
		return parseDHCombined(ans)
	}
	var vals [3][]byte
	for i, req := range []struct {
		data []byte
		tag  tlv.Tag
	}{{getDataDHG, tagDHG}, {getDataDHP, tagDHP}, {getDataDHQ, tagDHQ}} {
		ans, err := c.getData(ctx, req.data)
		if err != nil {
			return nil, err
		}
		if vals[i], err = parseDHValue(ans, req.tag); err != nil {
			return nil, err
		}
	}
	return newDHGroup(vals[0], vals[1], vals[2])
}

// dhExponent draws the private exponent uniformly in [2, q−2] (§13 item 3)
// by rejection sampling, and returns it as len(q)-byte big-endian.
func (grp *dhGroup) dhExponent(r io.Reader) ([]byte, error) {
	bound := grp.qMinus3 // u uniform in [0, q−4], x = u + 2
	n := bound.Size()
	bits := bound.BitLen()
	buf := make([]byte, n)
	defer clear(buf)
	u := bigmod.NewNat()
	for range 256 {
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, fmt.Errorf("drawing DH exponent: %w", err)
		}
		if extra := 8*n - bits; extra > 0 {
			buf[0] &= 0xFF >> extra
		}
		if _, err := u.SetBytes(buf, bound); err != nil {
			continue // ≥ q−3: draw again
		}
		x, err := bigmod.NewNat().SetBytes(buf, grp.qMod)
		if err != nil {
			return nil, fmt.Errorf("drawing DH exponent: %w", err)
		}
		two := bigmod.NewNat().SetUint(2).ExpandFor(grp.qMod)
		out := x.Add(two, grp.qMod).Bytes(grp.qMod)
		return out, nil
	}
	return nil, errors.New("drawing DH exponent: the random source keeps failing the range test")
}

// modExp computes base^x mod p with the secret exponent x in constant time
// (filippo.io/bigmod), I2OSP'd to |p| (§13 item 2). base must be < p.
func (grp *dhGroup) modExp(base, x []byte) ([]byte, error) {
	b, err := bigmod.NewNat().SetBytes(base, grp.pMod)
	if err != nil {
		return nil, err
	}
	return bigmod.NewNat().Exp(b, x, grp.pMod).Bytes(grp.pMod), nil
}

// dhPublic returns Y_IFD = g^x mod p.
func (grp *dhGroup) dhPublic(x []byte) ([]byte, error) {
	return grp.modExp(trimZeros(grp.g), x)
}

// dhShared checks 1 < Y_ICC < p−1 and returns Z = Y_ICC^x mod p.
func (grp *dhGroup) dhShared(yICC, x []byte) ([]byte, error) {
	y := new(big.Int).SetBytes(yICC)
	if y.Cmp(big.NewInt(1)) <= 0 || y.Cmp(new(big.Int).Sub(grp.pBig, big.NewInt(1))) >= 0 {
		return nil, errors.New("the card's DH public value is out of range")
	}
	return grp.modExp(y.Bytes(), x)
}

// parseICCPublic parses A6 { 91 Y_ICC }.
func parseICCPublic(answer []byte) ([]byte, error) {
	list, err := tlv.ParseAll(answer)
	if err != nil {
		return nil, err
	}
	kat, ok := tlv.Find(list, tagKAT)
	if !ok {
		return nil, fmt.Errorf("no DO A6: %w", tlv.ErrMalformed)
	}
	kids, err := kat.Children()
	if err != nil {
		return nil, err
	}
	y, ok := tlv.Find(kids, tagDHPublic)
	if !ok || len(y.Value) == 0 {
		return nil, fmt.Errorf("no DO 91: %w", tlv.ErrMalformed)
	}
	return y.Value, nil
}

// dhResult is what DAPP needs of the key agreement.
type dhResult struct {
	yIFD, yICC []byte
}

// keyAgreement runs §4: MSE SET KAT with Y_IFD (plain chaining), GET DATA
// Y_ICC, Z, the session keys, SSC = 1, and installs the SM transport.
func (c *Card) keyAgreement(ctx context.Context, grp *dhGroup) (dhResult, error) {
	c.seKey = 0 // a new DH clears the security environment
	x, err := grp.dhExponent(c.rand)
	if err != nil {
		return dhResult{}, err
	}
	defer clear(x)
	yIFD, err := grp.dhPublic(x)
	if err != nil {
		return dhResult{}, fmt.Errorf("computing Y_IFD: %w", err)
	}
	data := append(append([]byte(nil), mseSetDHPrefix...), tlv.Encode(tagDHPublic, yIFD)...)
	for _, piece := range apdu.Chain(apdu.Command{INS: insMSESet, P1: p1MSESetComputeKAT, P2: p2MSEKAT, Data: data}, plainChainSize) {
		r, err := c.plain(ctx, piece)
		if err != nil {
			return dhResult{}, fmt.Errorf("MSE SET KAT: %w", err)
		}
		if err := checkSW(r, "MSE SET KAT"); err != nil {
			return dhResult{}, err
		}
	}
	ans, err := c.getData(ctx, getDataICCPublic)
	if err != nil {
		return dhResult{}, fmt.Errorf("reading the card's DH public value: %w", err)
	}
	yICC, err := parseICCPublic(ans)
	if err != nil {
		return dhResult{}, fmt.Errorf("reading the card's DH public value: %w", err)
	}
	z, err := grp.dhShared(yICC, x)
	if err != nil {
		return dhResult{}, err
	}
	kEnc, kMAC := sm.DeriveKeys(z)
	clear(z)
	s := sm.NewSession(kEnc, kMAC, [8]byte{7: 1})
	clear(kEnc)
	clear(kMAC)
	c.smt = sm.NewTransport(c.gr, s)
	return dhResult{yIFD: yIFD, yICC: yICC}, nil
}

// trimZeros strips leading zero bytes (keeping one byte for zero).
func trimZeros(b []byte) []byte {
	for len(b) > 1 && b[0] == 0 {
		b = b[1:]
	}
	return b
}
