package ciesim

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// sha256DigestInfo is the DER prefix of a SHA-256 DigestInfo (RFC 8017 §9.2).
var sha256DigestInfo = []byte{0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20}

func cieFamilies() []family {
	var out []family
	for _, f := range families {
		if !f.foreign {
			out = append(out, f)
		}
	}
	return out
}

// TestFamilyFlow runs the whole protocol for every family, as a host reading
// the spec would: selection, files, both DH templates, DAPP with the
// published keys, PIN, certificate and signature.
func TestFamilyFlow(t *testing.T) {
	for _, fam := range cieFamilies() {
		t.Run(fam.id, func(t *testing.T) {
			c := newTestCard(t, fam.id)
			h := newHost(t, c)
			if !bytes.Equal(c.ATR(), fam.atr) {
				t.Errorf("ATR % X, want % X", c.ATR(), fam.atr)
			}
			h.selectApps(fam.selectIAS)
			if len(h.snICC) != 12 {
				t.Fatalf("SN.ICC is %d bytes", len(h.snICC))
			}
			// EF.ATR holds the vendor string of §1.3.
			if fam.selectIAS {
				h.plainOK(cmdSelectIAS)
			} else {
				h.plainOK(cmdSelectMF)
			}
			if got, want := classifyEFATR(h.readPlain(fidATR)), efATRType(fam.id); got != want {
				t.Errorf("EF.ATR classified as %q, want %q", got, want)
			}
			h.plainOK(cmdSelectCIE)
			ids := string(h.readPlain(fidIDServizi))
			if ids != idServiziOf(h.snICC) || ids != c.Holder().IDServizi {
				t.Errorf("ID_Servizi %q, hex(SN.ICC[5:11]) %q, holder %q", ids, idServiziOf(h.snICC), c.Holder().IDServizi)
			}
			h.readChipKey()

			// The other family's DH template is refused, the right one works.
			if sw := h.dhParams(!fam.combinedDH); sw == apdu.SWOK {
				t.Fatalf("DH with the wrong template (combined=%v) answered 9000", !fam.combinedDH)
			}
			if sw := h.dhParams(fam.combinedDH); sw != apdu.SWOK {
				t.Fatalf("DH with the family's template: %04X", uint16(sw))
			}
			if len(h.p) != 256 || len(h.q) != 32 || len(h.g) != 256 {
				t.Errorf("|g|,|p|,|q| = %d,%d,%d; want 256,256,32", len(h.g), len(h.p), len(h.q))
			}
			h.caKey()
			if h.caN.BitLen() != 2048 {
				t.Errorf("CA modulus of %d bits", h.caN.BitLen())
			}
			h.dh()
			if sw := h.dappCert(pubIFDCAD); sw != apdu.SWOK {
				t.Fatalf("PSO VERIFY CERTIFICATE: %04X", uint16(sw))
			}
			if sw := h.extAuth(false); sw != apdu.SWOK {
				t.Fatalf("EXTERNAL AUTHENTICATE: %04X", uint16(sw))
			}
			h.intAuth()

			// After DAPP: Seriale readable, the certificate needs the PIN.
			ser, sw := h.readSecure(fidSeriale)
			if sw != apdu.SWOK || string(ser[:9]) != c.Holder().CardNumber {
				t.Errorf("EF.Seriale: %q %04X", ser, uint16(sw))
			}
			if _, sw := h.readSecure(fidCertCIE); sw != apdu.SWSecurityStatus {
				t.Errorf("EF.CertCIE before PIN: %04X, want 6982", uint16(sw))
			}
			if sw := h.verifySW(0x81, DefaultPIN); sw != apdu.SWOK {
				t.Fatalf("VERIFY PIN: %04X", uint16(sw))
			}
			certFile, sw := h.readSecure(fidCertCIE)
			if sw != apdu.SWOK {
				t.Fatalf("EF.CertCIE after PIN: %04X", uint16(sw))
			}
			outer, _, err := tlv.ParseOne(certFile)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := x509.ParseCertificate(outer.Raw)
			if err != nil {
				t.Fatalf("EF.CertCIE: %v", err)
			}
			if err := cert.CheckSignatureFrom(c.State().CACert); err != nil {
				t.Errorf("certificate not issued by the test CA: %v", err)
			}

			// Key 0x81 signs a DigestInfo under SM; the signature verifies
			// with the certificate read from the card.
			digest := sha256.Sum256([]byte("firma di prova"))
			h.secureSW(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x80, 0x01, 0x02, 0x84, 0x01, 0x81}}, apdu.SWOK)
			sig := h.secureSW(apdu.Command{INS: 0x88, Data: concat(sha256DigestInfo, digest[:])}, apdu.SWOK)
			if err := rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig); err != nil {
				t.Errorf("key 81 signature does not verify with the certificate: %v", err)
			}
		})
	}
}

// efATRType gives the §1.3 type a family's EF.ATR must be classified as.
func efATRType(id string) string {
	switch id {
	case "actalis", "actalis2023", "actalis-b946":
		return "Actalis"
	case "stm", "stm2", "stm3":
		return "ST"
	case "gemalto":
		return "Gemalto"
	case "gemalto2":
		return "Gemalto2"
	}
	return "NXP" // nxp, bit4id*
}

// classifyEFATR is the pagoPA procedure of §1.3: the first string found.
func classifyEFATR(b []byte) string {
	for _, m := range []struct {
		name string
		mark []byte
	}{{"Actalis", efATRActalisMark}, {"ST", efATRSTMark}, {"NXP", efATRNXPMark}, {"Gemalto2", efATRGemalto2}, {"Gemalto", efATRGemaltoMark}} {
		if bytes.Contains(b, m.mark) {
			return m.name
		}
	}
	return ""
}

func TestATRChecksums(t *testing.T) {
	for _, f := range families {
		var x byte
		for _, b := range f.atr[1:] {
			x ^= b
		}
		if x != 0 || int(f.atr[1]&0x0F) != len(f.atr)-5 {
			t.Errorf("%s: ATR % X: TCK xor %02X, %d historical bytes declared", f.id, f.atr, x, f.atr[1]&0x0F)
		}
	}
}

func TestATROverride(t *testing.T) {
	zero := mustHexSpaced("3B 8F 80 01 00 00 00 00 00 00 00 00 00 00 00 FF 82 90 00 E3")
	c := newTestCard(t, "nxp", func(cfg *Config) { cfg.ATR = zero })
	if !bytes.Equal(c.ATR(), zero) {
		t.Fatalf("ATR % X", c.ATR())
	}
	h := newHost(t, c)
	h.selectApps(false) // still an NXP card behind the zeroed ATR
	if got := classifyEFATR(func() []byte { h.plainOK(cmdSelectMF); return h.readPlain(fidATR) }()); got != "NXP" {
		t.Errorf("EF.ATR classified as %q", got)
	}
}

func TestForeignCard(t *testing.T) {
	c := newTestCard(t, "foreign")
	h := newHost(t, c)
	for _, cmd := range []apdu.Command{cmdSelectIAS, cmdSelectMF, cmdSelectCIE, selectEF(fidSNICC)} {
		if r := h.plain(cmd); r.SW != apdu.SWFileNotFound {
			t.Errorf("%v: %04X, want 6A82", cmd, uint16(r.SW))
		}
	}
	if r := h.plain(apdu.Command{INS: 0xB0, Ne: 16}); r.SW != apdu.SWINSNotSupported {
		t.Errorf("READ BINARY: %04X", uint16(r.SW))
	}
}

func TestPINCounters(t *testing.T) {
	c := newTestCard(t, "nxp")
	h := newHost(t, c)
	h.open()
	// Status query: 63C3, no try spent.
	for range 2 {
		if data := h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, 0x63C3); len(data) != 0 {
			t.Fatal("status query returned data")
		}
	}
	// Wrong length or non-digits: no try spent.
	if r, err := h.secure(verifyCmd(0x81, "1234")); err != nil || r.SW != apdu.SWWrongLength {
		t.Errorf("short PIN: %v %04X", err, uint16(r.SW))
	}
	if r, err := h.secure(verifyCmd(0x81, "1234567a")); err != nil || r.SW != apdu.SWWrongData {
		t.Errorf("non-digit PIN: %v %04X", err, uint16(r.SW))
	}
	for i, want := range []apdu.StatusWord{0x63C2, 0x63C1, apdu.SWAuthMethodBlocked} {
		if sw := h.verifySW(0x81, "00000000"); sw != want {
			t.Fatalf("wrong PIN #%d: %04X, want %04X", i+1, uint16(sw), uint16(want))
		}
	}
	if sw := h.verifySW(0x81, DefaultPIN); sw != apdu.SWAuthMethodBlocked {
		t.Fatalf("right PIN when blocked: %04X", uint16(sw))
	}
	h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, apdu.SWAuthMethodBlocked)
	if pin, puk := c.Tries(); pin != 0 || puk != 10 {
		t.Fatalf("tries %d/%d", pin, puk)
	}
	// RESET RETRY COUNTER needs the PUK.
	h.secureSW(apdu.Command{INS: 0x2C, P1: 0x02, P2: 0x81, Data: []byte("13572468")}, apdu.SWSecurityStatus)
	if sw := h.verifySW(0x82, "11111111"); sw != 0x63C9 {
		t.Fatalf("wrong PUK: %04X", uint16(sw))
	}
	if sw := h.verifySW(0x82, DefaultPUK); sw != apdu.SWOK {
		t.Fatalf("PUK: %04X", uint16(sw))
	}
	h.secureSW(apdu.Command{INS: 0x2C, P1: 0x02, P2: 0x81, Data: []byte("1357246")}, apdu.SWWrongLength)
	h.secureSW(apdu.Command{INS: 0x2C, P1: 0x02, P2: 0x81, Data: []byte("13572468")}, apdu.SWOK)
	if pin, puk := c.Tries(); pin != 3 || puk != 10 {
		t.Fatalf("tries after unblock %d/%d", pin, puk)
	}
	if sw := h.verifySW(0x81, DefaultPIN); sw != 0x63C2 {
		t.Fatalf("old PIN after unblock: %04X", uint16(sw))
	}
	h.secureSW(apdu.Command{INS: 0x2C, P1: 0x03, P2: 0x81}, apdu.SWOK)
	if sw := h.verifySW(0x81, "13572468"); sw != apdu.SWOK {
		t.Fatalf("new PIN: %04X", uint16(sw))
	}
	h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, apdu.SWOK) // verified

	// CHANGE REFERENCE DATA checks the old PIN itself and counts a try.
	h.secureSW(apdu.Command{INS: 0x24, P2: 0x81, Data: []byte("0000000024681357")}, 0x63C2)
	h.secureSW(apdu.Command{INS: 0x24, P2: 0x81, Data: []byte("1357246824681357")}, apdu.SWOK)
	h.secureSW(apdu.Command{INS: 0x24, P2: 0x81, Data: []byte("24681357")}, apdu.SWWrongLength)
	if pin, _ := c.Tries(); pin != 3 {
		t.Fatalf("PIN tries after change: %d", pin)
	}
	if sw := h.verifySW(0x81, "24681357"); sw != apdu.SWOK {
		t.Fatalf("changed PIN: %04X", uint16(sw))
	}
	// A reset loses the verification but not the counters or the PIN.
	c.Reset()
	h = newHost(t, c)
	h.open()
	h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, 0x63C3)
	if sw := h.verifySW(0x81, "24681357"); sw != apdu.SWOK {
		t.Fatalf("changed PIN after reset: %04X", uint16(sw))
	}
}

func TestPINNeedsDAPP(t *testing.T) {
	c := newTestCard(t, "gemalto")
	h := newHost(t, c)
	h.selectApps(true)
	// Plain VERIFY is refused without spending a try.
	if r := h.plain(verifyCmd(0x81, "00000000")); r.SW != apdu.SWSecurityStatus {
		t.Fatalf("plain VERIFY: %04X", uint16(r.SW))
	}
	// Under SM but before DAPP: refused too.
	h.dhParams(true)
	h.caKey()
	h.dh()
	if sw := h.verifySW(0x81, "00000000"); sw != apdu.SWSecurityStatus {
		t.Fatalf("VERIFY before DAPP: %04X", uint16(sw))
	}
	if _, sw := h.readSecure(fidSeriale); sw != apdu.SWSecurityStatus {
		t.Fatalf("EF.Seriale before DAPP: %04X", uint16(sw))
	}
	if pin, _ := c.Tries(); pin != 3 {
		t.Fatalf("PIN tries %d", pin)
	}
	// Plain reads of 1002/1003 are refused.
	h.plainOK(cmdSelectCIE)
	h.plainOK(selectEF(fidSeriale))
	if r := h.plain(apdu.Command{INS: 0xB0, Ne: 9}); r.SW != apdu.SWSecurityStatus {
		t.Fatalf("plain EF.Seriale: %04X", uint16(r.SW))
	}
}

func TestDAPPRefusals(t *testing.T) {
	c := newTestCard(t, "stm")
	h := newHost(t, c)
	h.selectApps(true)
	h.readChipKey()
	h.dhParams(false)
	h.caKey()
	h.dh()
	// A CV certificate signed with another exponent is refused.
	if sw := h.dappCert(new(big.Int).Add(pubIFDCAD, big.NewInt(2))); sw != apdu.SWWrongData {
		t.Fatalf("CV certificate with a wrong signature: %04X, want 6A80", uint16(sw))
	}
	// Without a verified certificate the IFD key cannot be selected.
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x81, P2: 0xA4, Data: concat([]byte{0x83, 0x0C, 0, 0, 0, 0}, hostSnIFD)}, apdu.SWReferencedDataNotFound)
	// The right certificate, then a spoiled EXTERNAL AUTHENTICATE signature.
	if sw := h.dappCert(pubIFDCAD); sw != apdu.SWOK {
		t.Fatalf("PSO VERIFY CERTIFICATE: %04X", uint16(sw))
	}
	if sw := h.extAuth(true); sw != apdu.SWVerificationFailed {
		t.Fatalf("spoiled EXTERNAL AUTHENTICATE: %04X, want 6300", uint16(sw))
	}
	// INTERNAL AUTHENTICATE with key 82 needs the host authenticated.
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x84, 0x01, 0x82, 0x80, 0x01, 0x9B}}, apdu.SWOK)
	h.secureSW(apdu.Command{INS: 0x88, Data: h.random(8)}, apdu.SWConditionsNotSatisfied)
	// A good EXTERNAL AUTHENTICATE completes it.
	if sw := h.extAuth(false); sw != apdu.SWOK {
		t.Fatalf("EXTERNAL AUTHENTICATE: %04X", uint16(sw))
	}
	h.intAuth()
	h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, 0x63C3)
}

func TestSecureMessagingFaults(t *testing.T) {
	c := newTestCard(t, "gemalto")
	h := newHost(t, c)
	h.open()

	// FaultBadMAC: the host sees a MAC error.
	c.Inject(FaultBadMAC)
	if _, err := h.secure(verifyCmd(0x81, DefaultPIN)); !errors.Is(err, sm.ErrMAC) {
		t.Fatalf("with FaultBadMAC: %v, want ErrMAC", err)
	}
	// The card's session goes on; the host's is closed. Reopen.
	h = newHost(t, c)
	h.open()

	// A command with a bad MAC: bare 6988, and the session is over.
	pc, err := h.sess.ProtectCommand(verifyCmd(0x81, DefaultPIN))
	if err != nil {
		t.Fatal(err)
	}
	pc.Data[len(pc.Data)-1] ^= 0xFF
	r := h.plain(pc)
	if r.SW != apdu.SWSMDataObjectsIncorrect || len(r.Data) != 0 {
		t.Fatalf("bad command MAC: % X %04X, want bare 6988", r.Data, uint16(r.SW))
	}
	pc, _ = h.sess.ProtectCommand(apdu.Command{INS: 0x20, P2: 0x81})
	if r := h.plain(pc); r.SW != apdu.SWSMDataObjectsIncorrect {
		t.Fatalf("after a bad MAC: %04X, want 6988 (no session)", uint16(r.SW))
	}
	if pin, _ := c.Tries(); pin != 3 {
		t.Fatalf("PIN tries %d", pin)
	}

	// FaultSW: a bare status word, the session ends on both sides.
	h = newHost(t, c)
	h.open()
	c.Inject(FaultSW(0x6F00))
	if _, err := h.secure(verifyCmd(0x81, DefaultPIN)); !errors.Is(err, sm.ErrBareStatus) || !errors.Is(err, apdu.SWNoPreciseDiagnosis) {
		t.Fatalf("FaultSW: %v", err)
	}

	// FaultReset: the session is gone.
	h = newHost(t, c)
	h.open()
	c.Inject(FaultReset)
	if _, err := h.secure(verifyCmd(0x81, DefaultPIN)); !errors.Is(err, sm.ErrBareStatus) {
		t.Fatalf("after FaultReset: %v", err)
	}

	// FaultMute: no answer, the card is removed (and power-cycled).
	c.Inject(FaultMute)
	if _, err := c.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00}); !errors.Is(err, apdu.ErrCardRemoved) {
		t.Fatalf("FaultMute: %v", err)
	}
	if b, err := c.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00}); err != nil || !bytes.Equal(b, []byte{0x90, 0x00}) {
		t.Fatalf("after FaultMute: % X %v", b, err)
	}
}

// TestSelectEndsSession: an application SELECT ends SM and the security status.
func TestSelectEndsSession(t *testing.T) {
	c := newTestCard(t, "actalis")
	h := newHost(t, c)
	h.open()
	if sw := h.verifySW(0x81, DefaultPIN); sw != apdu.SWOK {
		t.Fatal(sw)
	}
	h.plainOK(cmdSelectCIE)
	pc, _ := h.sess.ProtectCommand(apdu.Command{INS: 0x20, P2: 0x81})
	if r := h.plain(pc); r.SW != apdu.SWSMDataObjectsIncorrect {
		t.Fatalf("SM after SELECT: %04X", uint16(r.SW))
	}
	h = newHost(t, c)
	h.open()
	h.secureSW(apdu.Command{INS: 0x20, P2: 0x81}, 0x63C3) // no longer verified
}

// TestResponseDelivery checks 61xx / GET RESPONSE and READ BINARY ends
// on the raw card, without the GetResponse decorator.
func TestResponseDelivery(t *testing.T) {
	c := newTestCard(t, "gemalto")
	tx := func(hexCmd string) []byte {
		t.Helper()
		b, err := c.Transmit(context.Background(), mustHexSpaced(hexCmd))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	sw := func(b []byte) uint16 { return uint16(b[len(b)-2])<<8 | uint16(b[len(b)-1]) }
	if r := tx("00 A4 04 0C 06 A0 00 00 00 00 39"); sw(r) != 0x9000 {
		t.Fatalf("SELECT CIE: % X", r)
	}
	// Combined DH GET DATA without Le: 61 xx, then chunks.
	r := tx("00 CB 3F FF 0A 4D 08 70 06 BF A1 01 02 A3 80")
	if sw(r)>>8 != 0x61 || len(r) != 2 || r[1] != 0x00 {
		t.Fatalf("GET DATA: % X, want 61 00", r)
	}
	var all []byte
	for sw(r)>>8 == 0x61 {
		r = tx("00 C0 00 00 " + hexByte(r[1]))
		all = append(all, r[:len(r)-2]...)
	}
	if sw(r) != 0x9000 {
		t.Fatalf("last GET RESPONSE: %04X", sw(r))
	}
	g, p, q := c.dhEncodings()
	want := tlv.Encode(0x70, tlv.Encode(0xBFA101, tlv.Encode(0xA3, tlv.Encode(0x97, g), tlv.Encode(0x98, p), tlv.Encode(0x99, q))))
	if !bytes.Equal(all, want) {
		t.Fatalf("collected %d bytes, want %d", len(all), len(want))
	}
	// GET RESPONSE with nothing pending.
	if r := tx("00 C0 00 00 00"); sw(r) != 0x6985 {
		t.Errorf("GET RESPONSE with nothing pending: % X", r)
	}
	// SELECT EF with P2=04 and no Le: FCP via 61xx.
	if r := tx("00 A4 02 04 02 10 01"); sw(r)>>8 != 0x61 {
		t.Errorf("SELECT EF P2=04: % X", r)
	} else if r2 := tx("00 C0 00 00 " + hexByte(r[1])); sw(r2) != 0x9000 || r2[0] != 0x62 {
		t.Errorf("FCP: % X", r2)
	}
	// READ BINARY: short file → 6282; offset at the end → 6B00; no Le → 6700.
	if r := tx("00 B0 00 00 00"); sw(r) != 0x6282 || len(r) != 14 {
		t.Errorf("READ BINARY 1001 Le 00: % X", r)
	}
	if r := tx("00 B0 00 04 04"); sw(r) != 0x9000 || len(r) != 6 {
		t.Errorf("READ BINARY 1001 at 4: % X", r)
	}
	if r := tx("00 B0 00 0C 01"); sw(r) != 0x6B00 {
		t.Errorf("READ BINARY at end: % X", r)
	}
	if r := tx("00 B0 00 00"); sw(r) != 0x6700 {
		t.Errorf("READ BINARY without Le: % X", r)
	}
	// READ BINARY by SFI 1 (ID_Servizi).
	if r := tx("00 B0 81 00 0C"); sw(r) != 0x9000 || string(r[:12]) != c.Holder().IDServizi {
		t.Errorf("READ BINARY SFI 1: % X", r)
	}
	// Key 0x83 in plain: 256-byte signature via 61 00 with Ne 0.
	if r := tx("00 22 41 A4 06 80 01 02 84 01 83"); sw(r) != 0x9000 {
		t.Fatalf("MSE SET 83: % X", r)
	}
	msg := []byte(c.Holder().IDServizi)
	r = tx("00 88 00 00 0C " + spacedHex(msg))
	if sw(r) != 0x6100 {
		t.Fatalf("INTERNAL AUTHENTICATE 83: % X, want 61 00", r)
	}
	r = tx("00 C0 00 00 00")
	if sw(r) != 0x9000 || len(r) != 258 {
		t.Fatalf("GET RESPONSE: %d bytes %04X", len(r), sw(r))
	}
	if err := rsa.VerifyPKCS1v15(&c.State().ServiziKey.PublicKey, crypto.Hash(0), msg, r[:256]); err != nil {
		t.Errorf("key 83 signature: %v", err)
	}
}

func hexByte(b byte) string { return spacedHex([]byte{b}) }

func spacedHex(b []byte) string {
	const digits = "0123456789ABCDEF"
	out := make([]byte, 0, 3*len(b))
	for i, x := range b {
		if i > 0 {
			out = append(out, ' ')
		}
		out = append(out, digits[x>>4], digits[x&15])
	}
	return string(out)
}

// TestSignatureUnderSMDelivery: a 256-byte signature under SM is protected
// whole (> 256 bytes) and delivered through 61xx.
func TestSignatureUnderSMDelivery(t *testing.T) {
	c := newTestCard(t, "bit4id")
	h := newHost(t, c)
	h.open()
	h.verifySW(0x81, DefaultPIN)
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x80, 0x01, 0x02, 0x84, 0x01, 0x81}}, apdu.SWOK)
	pc, err := h.sess.ProtectCommand(apdu.Command{INS: 0x88, Data: concat(sha256DigestInfo, make([]byte, 32))})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pc.Bytes()
	raw, err := c.Transmit(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, []byte{0x61, 0x00}) {
		t.Fatalf("protected signature answer % X, want 61 00", raw)
	}
	raw, _ = c.Transmit(context.Background(), []byte{0x00, 0xC0, 0x00, 0x00, 0x00})
	if len(raw) != 258 || raw[256] != 0x61 {
		t.Fatalf("first chunk: %d bytes, SW % X", len(raw), raw[len(raw)-2:])
	}
	rest, _ := c.Transmit(context.Background(), []byte{0x00, 0xC0, 0x00, 0x00, raw[257]})
	resp, err := apdu.ParseResponse(append(raw[:256:256], rest...))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := h.sess.UnprotectResponse(resp)
	if err != nil || plain.SW != apdu.SWOK || len(plain.Data) != 256 {
		t.Fatalf("unprotected: %v %04X %d bytes", err, uint16(plain.SW), len(plain.Data))
	}
}

func TestKey81NeedsPIN(t *testing.T) {
	c := newTestCard(t, "stm3")
	h := newHost(t, c)
	h.open()
	h.secureSW(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x80, 0x01, 0x02, 0x84, 0x01, 0x81}}, apdu.SWOK)
	h.secureSW(apdu.Command{INS: 0x88, Data: concat(sha256DigestInfo, make([]byte, 32))}, apdu.SWSecurityStatus)
	// Plain INTERNAL AUTHENTICATE with key 81: refused as well.
	h2 := newHost(t, newTestCard(t, "stm3"))
	h2.selectApps(true)
	h2.plainOK(apdu.Command{INS: 0x22, P1: 0x41, P2: 0xA4, Data: []byte{0x80, 0x01, 0x02, 0x84, 0x01, 0x81}})
	if r := h2.plain(apdu.Command{INS: 0x88, Data: make([]byte, 51)}); r.SW != apdu.SWSecurityStatus {
		t.Fatalf("plain key 81: %04X", uint16(r.SW))
	}
}

func TestErrors(t *testing.T) {
	c := newTestCard(t, "gemalto")
	for _, tc := range []struct {
		name string
		cmd  string
		sw   apdu.StatusWord
	}{
		{"unknown INS", "00 12 00 00", apdu.SWINSNotSupported},
		{"proprietary CLA", "80 A4 00 00", apdu.SWCLANotSupported},
		{"logical channel", "01 A4 00 00", apdu.SWCLANotSupported},
		{"SM without session", "0C B0 00 00 00", apdu.SWSMDataObjectsIncorrect},
		{"malformed APDU", "00 A4 04 0C 05 A0", apdu.SWWrongLength},
		{"short APDU", "00 A4", apdu.SWWrongLength},
		{"SELECT bad P1", "00 A4 07 0C 02 10 01", apdu.SWIncorrectP1P2},
		{"SELECT bad P2", "00 A4 04 0F 06 A0 00 00 00 00 39", apdu.SWIncorrectP1P2},
		{"SELECT unknown AID", "00 A4 04 0C 03 A0 00 01", apdu.SWFileNotFound},
		{"SELECT EF not here", "00 A4 02 0C 02 10 01", apdu.SWFileNotFound},
		{"READ no EF", "00 B0 00 00 10", apdu.SWCommandNotAllowed},
		{"GET DATA bad P1P2", "00 CB 00 00 06 4D 04 A6 02 91 00", apdu.SWIncorrectP1P2},
		{"GET DATA outside DF_CIE", "00 CB 3F FF 06 4D 04 A6 02 91 00", apdu.SWReferencedDataNotFound},
		{"MSE bad P1P2", "00 22 41 B8 03 80 01 02", apdu.SWIncorrectP1P2},
		{"VERIFY bad P1", "00 20 01 81", apdu.SWIncorrectP1P2},
		{"VERIFY unknown ref", "00 20 00 85", apdu.SWReferencedDataNotFound},
		{"GET CHALLENGE Le 4", "00 84 00 00 04", apdu.SWWrongLength},
	} {
		b, err := c.Transmit(context.Background(), mustHexSpaced(tc.cmd))
		if err != nil {
			t.Fatal(err)
		}
		if got := apdu.StatusWord(uint16(b[len(b)-2])<<8 | uint16(b[len(b)-1])); got != tc.sw || len(b) != 2 {
			t.Errorf("%s: % X, want %04X", tc.name, b, uint16(tc.sw))
		}
	}
	// Inside DF_CIE.
	c.Transmit(context.Background(), mustHexSpaced("00 A4 04 0C 06 A0 00 00 00 00 39"))
	for _, tc := range []struct {
		name string
		cmd  string
		sw   apdu.StatusWord
	}{
		{"GET DATA Y_ICC before MSE", "00 CB 3F FF 06 4D 04 A6 02 91 00", apdu.SWConditionsNotSatisfied},
		{"GET DATA separate on Gemalto", "00 CB 3F FF 0C 4D 0A 70 08 BF A1 01 04 A3 02 97 00", apdu.SWReferencedDataNotFound},
		{"GET DATA unknown", "00 CB 3F FF 04 4D 02 5F 20", apdu.SWReferencedDataNotFound},
		{"MSE DH bad Y", "00 22 41 A6 0B 80 01 9B 83 01 81 91 03 00 00 01", apdu.SWWrongData},
		{"MSE AT unknown key", "00 22 41 A4 06 80 01 02 84 01 85", apdu.SWReferencedDataNotFound},
		{"MSE AT wrong algorithm", "00 22 41 A4 06 80 01 9B 84 01 81", apdu.SWWrongData},
		{"MSE DST in plain", "00 22 81 B6 06 80 01 41 83 01 84", apdu.SWSecurityStatus},
		{"PSO in plain", "00 2A 00 AE 02 7F 21", apdu.SWSecurityStatus},
		{"INTERNAL AUTH without MSE", "00 88 00 00 08 01 02 03 04 05 06 07 08", apdu.SWConditionsNotSatisfied},
		{"RESET RETRY plain", "00 2C 03 81", apdu.SWSecurityStatus},
		{"CHANGE plain", "00 24 00 81 10 31 32 33 34 35 36 37 38 31 32 33 34 35 36 37 38", apdu.SWSecurityStatus},
		{"chain mismatch start", "10 22 41 A6 03 80 01 9B", apdu.SWOK},
		{"chain mismatch", "00 2A 00 AE 02 7F 21", apdu.SWLastCommandOfChainExpct},
	} {
		b, _ := c.Transmit(context.Background(), mustHexSpaced(tc.cmd))
		if got := apdu.StatusWord(uint16(b[len(b)-2])<<8 | uint16(b[len(b)-1])); got != tc.sw {
			t.Errorf("%s: % X, want %04X", tc.name, b, uint16(tc.sw))
		}
	}
}

func TestStatsAndLatency(t *testing.T) {
	c := newTestCard(t, "gemalto", func(cfg *Config) { cfg.Latency = 30 * time.Millisecond })
	start := time.Now()
	b, err := c.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00})
	if err != nil || time.Since(start) < 30*time.Millisecond {
		t.Fatalf("latency not applied: %v after %v", err, time.Since(start))
	}
	if s := c.Stats(); s != (Stats{APDUs: 1, BytesIn: 4, BytesOut: len(b)}) {
		t.Fatalf("stats %+v", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	c.SetLatency(time.Second)
	if _, err := c.Transmit(ctx, []byte{0x00, 0xA4, 0x00, 0x00}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("latency ignores ctx: %v", err)
	}
	c.ResetStats()
	if s := c.Stats(); s != (Stats{}) {
		t.Fatalf("stats after reset %+v", s)
	}
}

func TestHolderOverride(t *testing.T) {
	st := loadTestState(t)
	hol := Holder{GivenName: "GIULIA", Surname: "BIANCHI", FiscalCode: "BNCGLI85M41F205X", CardNumber: "CA12345BC", IDServizi: "123456789012"}
	c := newTestCard(t, "nxp", func(cfg *Config) { cfg.Holder = hol })
	if c.Holder() != hol {
		t.Fatalf("holder %+v", c.Holder())
	}
	sn := c.SNICC()
	if idServiziOf(sn[:]) != hol.IDServizi {
		t.Fatalf("SN.ICC % X does not carry ID_Servizi", sn)
	}
	cert := c.Certificate()
	subj, _ := HolderSubject(hol)
	if !bytes.Equal(cert.RawSubject, subj) || cert.CheckSignatureFrom(st.CACert) != nil {
		t.Fatalf("certificate subject %s", cert.Subject)
	}
	var rdns pkix.RDNSequence
	if _, err := asn1.Unmarshal(cert.RawSubject, &rdns); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		oid asn1.ObjectIdentifier
		v   string
	}{{oidCountry, "IT"}, {oidSurname, "BIANCHI"}, {oidGivenName, "GIULIA"}, {oidSerialNumber, "TINIT-BNCGLI85M41F205X"}, {oidCommonName, "BNCGLI85M41F205X/123456789012"}}
	if len(rdns) != len(want) {
		t.Fatalf("subject has %d RDNs", len(rdns))
	}
	for i, w := range want {
		if len(rdns[i]) != 1 || !rdns[i][0].Type.Equal(w.oid) || rdns[i][0].Value != w.v {
			t.Errorf("subject RDN %d = %v, want %v=%s", i, rdns[i], w.oid, w.v)
		}
	}
	if cert.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment || len(cert.ExtKeyUsage) != 1 || cert.ExtKeyUsage[0] != x509.ExtKeyUsageClientAuth {
		t.Errorf("key usage %v, ext %v", cert.KeyUsage, cert.ExtKeyUsage)
	}
	// Re-issuing is deterministic.
	c2 := newTestCard(t, "gemalto", func(cfg *Config) { cfg.Holder = hol })
	if !bytes.Equal(c2.Certificate().Raw, cert.Raw) {
		t.Error("holder certificate not reproducible")
	}
	if _, err := New(Config{State: st, Holder: Holder{IDServizi: "12345"}}); err == nil {
		t.Error("5-digit ID_Servizi accepted")
	}
	if _, err := New(Config{State: st, PIN: []byte("1234")}); err == nil {
		t.Error("4-digit PIN accepted")
	}
	if _, err := New(Config{State: st, Family: "cns"}); err == nil {
		t.Error("unknown family accepted")
	}
}
