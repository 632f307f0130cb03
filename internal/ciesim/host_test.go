package ciesim

// A minimal scripted host, written from cie-protocol.md §2–§8 with the
// apdu, tlv and sm primitives only (never package cie), that drives the
// simulated card in the tests.

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"math/big"
	mrand "math/rand/v2"
	"sync"
	"testing"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
	"github.com/ciedesktop/cie-desktop/tlv"
)

var (
	testStateOnce sync.Once
	testStateVal  *State
	testStateErr  error
)

// loadTestState loads testdata/sim once per test binary.
func loadTestState(t testing.TB) *State {
	t.Helper()
	testStateOnce.Do(func() { testStateVal, testStateErr = TestState() })
	if testStateErr != nil {
		t.Fatalf("TestState: %v", testStateErr)
	}
	return testStateVal
}

// newTestCard returns a card of the family on the committed state with a
// seeded random source.
func newTestCard(t testing.TB, fam string, mod ...func(*Config)) *Card {
	t.Helper()
	cfg := Config{Family: fam, State: loadTestState(t), Rand: mrand.NewChaCha8([32]byte{1, 2, 3})}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%q): %v", fam, err)
	}
	return c
}

// Published keys (Appendix A) as numbers.
var (
	pubIFDN    = new(big.Int).SetBytes(mustHex(ifdModulusHex))
	pubIFDD    = new(big.Int).SetBytes(mustHex(ifdPrivExpHex))
	pubIFDCAD  = new(big.Int).SetBytes(mustHex(ifdCAPrivExpHex))
	hostSnIFD  = []byte{0x20, 0, 0, 0, 0, 0, 0, 0x01}
	oidDAPPSHA = []byte{0x2A, 0x81, 0x22, 0xF4, 0x2A, 0x02, 0x04, 0x01, 0x04}
)

type host struct {
	t    testing.TB
	card *Card
	raw  apdu.Transport // GET RESPONSE resolved
	rnd  *mrand.ChaCha8

	g, p, q    []byte // as received
	caN, caE   *big.Int
	caCHR      []byte
	caCHA      []byte
	yIFD, yICC []byte
	sess       *sm.Session
	smt        *sm.Transport
	rndICC     []byte
	snICC      []byte
	chipKey    *rsa.PublicKey
}

func newHost(t testing.TB, c *Card) *host {
	return &host{t: t, card: c, raw: apdu.NewGetResponse(c), rnd: mrand.NewChaCha8([32]byte{9})}
}

func (h *host) random(n int) []byte {
	b := make([]byte, n)
	h.rnd.Read(b)
	return b
}

// plain exchanges a plain command (61xx resolved).
func (h *host) plain(c apdu.Command) apdu.Response {
	h.t.Helper()
	r, err := apdu.Exchange(context.Background(), h.raw, c)
	if err != nil {
		h.t.Fatalf("%v: %v", c, err)
	}
	return r
}

// plainOK exchanges a plain command and requires 9000.
func (h *host) plainOK(c apdu.Command) []byte {
	h.t.Helper()
	r := h.plain(c)
	if r.SW != apdu.SWOK {
		h.t.Fatalf("%v: SW %04X, want 9000", c, uint16(r.SW))
	}
	return r.Data
}

// secure exchanges a command under SM; errors are returned.
func (h *host) secure(c apdu.Command) (apdu.Response, error) {
	h.t.Helper()
	return apdu.Exchange(context.Background(), h.smt, c)
}

// secureSW exchanges under SM and requires the status word want.
func (h *host) secureSW(c apdu.Command, want apdu.StatusWord) []byte {
	h.t.Helper()
	r, err := h.secure(c)
	if err != nil {
		h.t.Fatalf("%v under SM: %v", c, err)
	}
	if r.SW != want {
		h.t.Fatalf("%v under SM: SW %04X, want %04X", c, uint16(r.SW), uint16(want))
	}
	return r.Data
}

func selectEF(fid uint16) apdu.Command {
	return apdu.Command{CLA: 0, INS: 0xA4, P1: 0x02, P2: 0x0C, Data: []byte{byte(fid >> 8), byte(fid)}}
}

var (
	cmdSelectIAS = apdu.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: aidIAS}
	cmdSelectMF  = apdu.Command{INS: 0xA4}
	cmdSelectCIE = apdu.Command{INS: 0xA4, P1: 0x04, P2: 0x0C, Data: aidCIE}
)

// readFile reads the selected EF to its end (6282/6B00) in chunks of n,
// through send. Any other status word stops it and is returned.
func (h *host) readFile(send func(apdu.Command) (apdu.Response, error), n int) ([]byte, apdu.StatusWord) {
	h.t.Helper()
	var out []byte
	for {
		off := len(out)
		r, err := send(apdu.Command{INS: 0xB0, P1: byte(off >> 8), P2: byte(off), Ne: n})
		if err != nil {
			h.t.Fatalf("READ BINARY at %d: %v", off, err)
		}
		switch r.SW {
		case apdu.SWOK:
			if len(r.Data) == 0 {
				h.t.Fatalf("READ BINARY at %d: 9000 without data", off)
			}
			out = append(out, r.Data...)
		case apdu.SWEndOfFile:
			return append(out, r.Data...), apdu.SWOK
		case apdu.SWWrongP1P2:
			return out, apdu.SWOK
		default:
			return out, r.SW
		}
	}
}

func (h *host) readPlain(fid uint16) []byte {
	h.t.Helper()
	h.plainOK(selectEF(fid))
	b, sw := h.readFile(func(c apdu.Command) (apdu.Response, error) {
		return apdu.Exchange(context.Background(), h.raw, c)
	}, 256)
	if sw != apdu.SWOK {
		h.t.Fatalf("reading %04X: SW %04X", fid, uint16(sw))
	}
	return b
}

// readSecure selects and reads an EF under SM in chunks of 0xE7.
func (h *host) readSecure(fid uint16) ([]byte, apdu.StatusWord) {
	h.t.Helper()
	h.secureSW(selectEF(fid), apdu.SWOK)
	return h.readFile(h.secure, sm.ChunkSize)
}

// selectApps selects the root application as the family allows, reads SN.ICC, then selects DF_CIE.
func (h *host) selectApps(selectIAS bool) {
	h.t.Helper()
	r := h.plain(cmdSelectIAS)
	if selectIAS {
		if r.SW != apdu.SWOK {
			h.t.Fatalf("SELECT IAS: %04X, want 9000", uint16(r.SW))
		}
	} else {
		if r.SW != apdu.SWFileNotFound {
			h.t.Fatalf("SELECT IAS: %04X, want 6A82", uint16(r.SW))
		}
		h.plainOK(cmdSelectMF)
	}
	h.snICC = h.readPlain(fidSNICC)
	h.plainOK(cmdSelectCIE)
}

// dhParams fetches g, p, q with the combined template or the separate ones.
func (h *host) dhParams(combined bool) apdu.StatusWord {
	h.t.Helper()
	getData := func(d []byte) apdu.Response {
		return h.plain(apdu.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: d})
	}
	// dig follows 70 → BF A1 01 → A3 and returns A3's children.
	dig := func(b []byte) []tlv.TLV {
		h.t.Helper()
		t70, _, err := tlv.ParseOne(b)
		if err != nil || t70.Tag != 0x70 {
			h.t.Fatalf("DH answer %X: %v", b, err)
		}
		kids, _ := t70.Children()
		bf, ok := tlv.Find(kids, 0xBFA101)
		if !ok {
			h.t.Fatalf("DH answer without BF A1 01")
		}
		kids, _ = bf.Children()
		a3, ok := tlv.Find(kids, 0xA3)
		if !ok {
			h.t.Fatalf("DH answer without A3")
		}
		kids, err = a3.Children()
		if err != nil {
			h.t.Fatal(err)
		}
		return kids
	}
	if combined {
		r := getData(tmplDHAll)
		if r.SW != apdu.SWOK {
			return r.SW
		}
		kids := dig(r.Data)
		if len(kids) != 3 {
			h.t.Fatalf("combined DH answer has %d children", len(kids))
		}
		h.g, h.p, h.q = kids[0].Value, kids[1].Value, kids[2].Value
		return apdu.SWOK
	}
	for _, x := range []struct {
		tmpl []byte
		tag  tlv.Tag
		dst  *[]byte
	}{{tmplDHG, 0x97, &h.g}, {tmplDHP, 0x98, &h.p}, {tmplDHQ, 0x99, &h.q}} {
		r := getData(x.tmpl)
		if r.SW != apdu.SWOK {
			return r.SW
		}
		kids := dig(r.Data)
		v, ok := tlv.Find(kids, x.tag)
		if !ok {
			h.t.Fatalf("DH answer without %v", x.tag)
		}
		*x.dst = v.Value
	}
	return apdu.SWOK
}

// caKey fetches key 0x84.
func (h *host) caKey() {
	h.t.Helper()
	b := h.plainOK(apdu.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: tmplCAKey})
	t70, _, err := tlv.ParseOne(b)
	if err != nil {
		h.t.Fatal(err)
	}
	kids, _ := t70.Children()
	bf, _ := tlv.Find(kids, 0xBFA004)
	kids, _ = bf.Children()
	k, ok := tlv.Find(kids, 0x7F49)
	if !ok {
		h.t.Fatalf("CA key answer %X without 7F49", b)
	}
	kids, _ = k.Children()
	get := func(tag tlv.Tag) []byte {
		v, ok := tlv.Find(kids, tag)
		if !ok {
			h.t.Fatalf("CA key without %v", tag)
		}
		return v.Value
	}
	h.caN, h.caE = new(big.Int).SetBytes(get(0x81)), new(big.Int).SetBytes(get(0x82))
	h.caCHR, h.caCHA = get(0x5F20), get(0x5F4C)
}

// dh runs §4 and starts the host's SM session.
func (h *host) dh() {
	h.t.Helper()
	p := new(big.Int).SetBytes(h.p)
	q := new(big.Int).SetBytes(h.q)
	x := new(big.Int).SetBytes(h.random(len(h.q)))
	x.Mod(x, new(big.Int).Sub(q, big.NewInt(3))).Add(x, big.NewInt(2))
	h.yIFD = i2osp(new(big.Int).Exp(new(big.Int).SetBytes(h.g), x, p), len(h.p))
	data := concat([]byte{0x80, 0x01, 0x9B, 0x83, 0x01, 0x81}, tlv.Encode(0x91, h.yIFD))
	pieces := apdu.Chain(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA6, Data: data}, 255)
	if len(pieces) != 2 || len(pieces[0].Data) != 255 || len(pieces[1].Data) != 11 {
		h.t.Fatalf("DH MSE SET chained as %d pieces", len(pieces))
	}
	for _, pc := range pieces {
		h.plainOK(pc)
	}
	b := h.plainOK(apdu.Command{INS: 0xCB, P1: 0x3F, P2: 0xFF, Data: tmplYICC})
	a6, _, err := tlv.ParseOne(b)
	if err != nil || a6.Tag != 0xA6 {
		h.t.Fatalf("Y_ICC answer %X", b)
	}
	kids, _ := a6.Children()
	y, ok := tlv.Find(kids, 0x91)
	if !ok {
		h.t.Fatal("Y_ICC answer without 91")
	}
	h.yICC = y.Value
	z := i2osp(new(big.Int).Exp(new(big.Int).SetBytes(h.yICC), x, p), len(h.p))
	kEnc, kMAC := sm.DeriveKeys(z)
	h.sess = sm.NewSession(kEnc, kMAC, [8]byte{7: 1})
	h.smt = sm.NewTransport(h.raw, h.sess)
}

// cvCert builds the IFD CV certificate of §6.2, signed with caD.
func (h *host) cvCert(caD *big.Int) []byte {
	car := h.caCHR[4:]
	b := concat([]byte{0x8A}, car, []byte{0, 0, 0, 0}, hostSnIFD, h.caCHA[:6], []byte{0x01}, oidDAPPSHA,
		i2osp(pubIFDN, 256), []byte{0x00, 0x01, 0x00, 0x01})
	k := len(i2osp(h.caN, (h.caN.BitLen()+7)/8))
	sum := sha256.Sum256(b)
	m := concat([]byte{0x6A}, b[:k-34], sum[:], []byte{0xBC})
	s := i2osp(new(big.Int).Exp(new(big.Int).SetBytes(m), caD, h.caN), k)
	if caD.Cmp(pubIFDCAD) == 0 && new(big.Int).Exp(new(big.Int).SetBytes(s), h.caE, h.caN).Cmp(new(big.Int).SetBytes(m)) != 0 {
		h.t.Fatal("host: S^e != M with the card's CA key")
	}
	return tlv.Encode(0x7F21, tlv.Encode(0x5F37, s), tlv.Encode(0x5F38, b[k-34:]), tlv.Encode(0x42, car))
}

// dappCert runs §6.3 steps 1–2 with the certificate signed by caD and
// returns the status word of PSO VERIFY CERTIFICATE.
func (h *host) dappCert(caD *big.Int) apdu.StatusWord {
	h.t.Helper()
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x81, P2: 0xB6, Data: []byte{0x80, 0x01, 0x41, 0x83, 0x01, 0x84}, Ne: 256}, apdu.SWOK)
	r, err := h.secure(apdu.Command{INS: 0x2A, P1: 0x00, P2: 0xAE, Data: h.cvCert(caD)})
	if err != nil {
		h.t.Fatalf("PSO VERIFY CERTIFICATE: %v", err)
	}
	return r.SW
}

// extAuth runs §6.3 steps 3–5; spoil makes the signature wrong.
func (h *host) extAuth(spoil bool) apdu.StatusWord {
	h.t.Helper()
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x81, P2: 0xA4, Data: concat([]byte{0x83, 0x0C, 0, 0, 0, 0}, hostSnIFD)}, apdu.SWOK)
	h.rndICC = h.secureSW(apdu.Command{INS: 0x84, Ne: 8}, apdu.SWOK)
	if len(h.rndICC) != 8 {
		h.t.Fatalf("GET CHALLENGE: %d bytes", len(h.rndICC))
	}
	k := 256
	prnd := h.random(k - 34)
	hs := sha256.New()
	for _, p := range [][]byte{prnd, h.yIFD, hostSnIFD, h.rndICC, h.yICC, h.g, h.p, h.q} {
		hs.Write(p)
	}
	m := concat([]byte{0x6A}, prnd, hs.Sum(nil), []byte{0xBC})
	if spoil {
		m[1] ^= 1
	}
	sig := i2osp(new(big.Int).Exp(new(big.Int).SetBytes(m), pubIFDD, pubIFDN), k)
	r, err := h.secure(apdu.Command{INS: 0x82, Data: concat(hostSnIFD, sig)})
	if err != nil {
		h.t.Fatalf("EXTERNAL AUTHENTICATE: %v", err)
	}
	return r.SW
}

// intAuth runs §6.3 steps 6–7, checks the chip's signature and resets the SSC.
func (h *host) intAuth() {
	h.t.Helper()
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x84, 0x01, 0x82, 0x80, 0x01, 0x9B}}, apdu.SWOK)
	rndIFD := h.random(8)
	resp := h.secureSW(apdu.Command{INS: 0x88, Data: rndIFD}, apdu.SWOK)
	if len(resp) != 8+256 {
		h.t.Fatalf("INTERNAL AUTHENTICATE: %d bytes", len(resp))
	}
	sn, sig := resp[:8], resp[8:]
	if !bytes.Equal(sn, h.snICC[4:12]) {
		h.t.Fatalf("INTERNAL AUTHENTICATE: SN %X, want SN.ICC[4:12] %X", sn, h.snICC[4:12])
	}
	k := h.chipKey.Size()
	v := i2osp(new(big.Int).Exp(new(big.Int).SetBytes(sig), big.NewInt(int64(h.chipKey.E)), h.chipKey.N), k)
	if v[0] != 0x6A || v[k-1] != 0xBC {
		h.t.Fatalf("chip signature recovers %X…%X", v[0], v[k-1])
	}
	hs := sha256.New()
	for _, p := range [][]byte{v[1 : k-33], h.yICC, sn, rndIFD, h.yIFD, h.g, h.p, h.q} {
		hs.Write(p)
	}
	if !bytes.Equal(hs.Sum(nil), v[k-33:k-1]) {
		h.t.Fatal("chip signature hash mismatch")
	}
	var ssc [8]byte
	copy(ssc[:4], h.rndICC[4:8])
	copy(ssc[4:], rndIFD[4:8])
	h.sess.SetSSC(ssc)
}

// readChipKey reads EF.Int.Kpub (1004) in plain.
func (h *host) readChipKey() {
	h.t.Helper()
	b := h.readPlain(fidIntKpub)
	seq, _, err := tlv.ParseOne(b)
	if err != nil {
		h.t.Fatalf("EF 1004: %v", err)
	}
	if h.chipKey, err = x509.ParsePKCS1PublicKey(seq.Raw); err != nil {
		h.t.Fatalf("EF 1004: %v", err)
	}
}

// open runs the whole handshake: selection, DH, DAPP.
func (h *host) open() {
	h.t.Helper()
	h.selectApps(h.card.fam.selectIAS)
	h.readChipKey()
	if sw := h.dhParams(h.card.fam.combinedDH); sw != apdu.SWOK {
		h.t.Fatalf("DH parameters: %04X", uint16(sw))
	}
	h.caKey()
	h.dh()
	if sw := h.dappCert(pubIFDCAD); sw != apdu.SWOK {
		h.t.Fatalf("PSO VERIFY CERTIFICATE: %04X", uint16(sw))
	}
	if sw := h.extAuth(false); sw != apdu.SWOK {
		h.t.Fatalf("EXTERNAL AUTHENTICATE: %04X", uint16(sw))
	}
	h.intAuth()
}

func verifyCmd(ref byte, pin string) apdu.Command {
	return apdu.Command{INS: 0x20, P2: ref, Data: []byte(pin)}
}

// verifySW sends VERIFY under SM and returns its status word, accepting
// the PIN errors as answers.
func (h *host) verifySW(ref byte, pin string) apdu.StatusWord {
	h.t.Helper()
	r, err := h.secure(verifyCmd(ref, pin))
	if err != nil {
		h.t.Fatalf("VERIFY: %v", err)
	}
	return r.SW
}

func idServiziOf(sn []byte) string { return hex.EncodeToString(sn[5:11]) }
