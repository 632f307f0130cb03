package cie

import (
	"bytes"
	"testing"
)

// BenchmarkDHHost measures the host's share of the key agreement: the
// exponent draw, Y_IFD = g^x and Z = Y_ICC^x (2048-bit p, 256-bit q).
func BenchmarkDHHost(b *testing.B) {
	grp := testGroup(b)
	r := detRand(1)
	x0, _ := grp.dhExponent(r)
	yICC, _ := grp.dhPublic(x0)
	b.ResetTimer()
	for b.Loop() {
		x, err := grp.dhExponent(r)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := grp.dhPublic(x); err != nil {
			b.Fatal(err)
		}
		if _, err := grp.dhShared(yICC, x); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDAPPHost measures the host's share of the device
// authentication: signing the CV certificate (once per Card in practice),
// the EXTERNAL AUTHENTICATE signature and the chip check.
func BenchmarkDAPPHost(b *testing.B) {
	st := testState(b)
	grp := testGroup(b)
	ca := &caKey{n: st.IFDCA.N.Bytes(), e: st.IFDCA.E.Bytes(), car: []byte("ITCAR001"), aid: aidCIE}
	chip := &rsaFile{key: &st.ChipKey.PublicKey}
	sn := mustHex("000102030405060708090A0B")
	rnd := mustHex("1122334455667788")
	dh := dhResult{yIFD: bytes.Repeat([]byte{1}, 256), yICC: bytes.Repeat([]byte{2}, 256)}
	answer := chipAnswer(b, sn[4:12], rnd, grp, dh)
	r := detRand(2)
	b.ResetTimer()
	for b.Loop() {
		if _, err := cvCertificate(ca); err != nil {
			b.Fatal(err)
		}
		if _, err := ifdSignature(r, grp, dh, rnd); err != nil {
			b.Fatal(err)
		}
		if err := checkChip(chip, sn, answer, rnd, grp, dh); err != nil {
			b.Fatal(err)
		}
	}
}
