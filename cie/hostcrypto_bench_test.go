package cie

import (
	"bytes"
	"testing"

	"github.com/ciedesktop/cie-desktop/sm"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// BenchmarkHostCrypto splits the host's computations of one card session
// (DH key agreement §4, session keys §4.6, device authentication §6) into
// their steps, with benchstat-friendly names (op=…); op=handshake is all
// of them as one session does them. The card's own work is not included.
//
//	go test -run '^$' -bench HostCrypto -count 10 ./cie | tee new.txt; benchstat old.txt new.txt
func BenchmarkHostCrypto(b *testing.B) {
	st := testState(b)
	grp := testGroup(b)
	r := detRand(3)
	x, err := grp.dhExponent(r)
	if err != nil {
		b.Fatal(err)
	}
	yIFD, err := grp.dhPublic(x)
	if err != nil {
		b.Fatal(err)
	}
	xICC, _ := grp.dhExponent(r)
	yICC, _ := grp.dhPublic(xICC)
	z, err := grp.dhShared(yICC, x)
	if err != nil {
		b.Fatal(err)
	}
	ca := &caKey{n: st.IFDCA.N.Bytes(), e: st.IFDCA.E.Bytes(), car: []byte("ITCAR001"), aid: aidCIE}
	chip := &rsaFile{key: &st.ChipKey.PublicKey}
	sn := mustHex("000102030405060708090A0B")
	rnd := mustHex("1122334455667788")
	dh := dhResult{yIFD: yIFD, yICC: yICC}
	answer := chipAnswer(b, sn[4:12], rnd, grp, dh)

	run := func(name string, f func() error) {
		b.Run("op="+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := f(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	run("dh-exponent", func() error { _, err := grp.dhExponent(r); return err })
	run("dh-public", func() error { _, err := grp.dhPublic(x); return err })
	run("dh-shared", func() error { _, err := grp.dhShared(yICC, x); return err })
	run("session-keys", func() error {
		kEnc, kMAC := sm.DeriveKeys(z)
		clear(kEnc)
		clear(kMAC)
		return nil
	})
	run("cv-certificate", func() error { _, err := cvCertificate(ca); return err })
	run("ifd-signature", func() error { _, err := ifdSignature(r, grp, dh, rnd); return err })
	run("chip-check", func() error { return checkChip(chip, sn, answer, rnd, grp, dh) })
	run("handshake", func() error {
		x, err := grp.dhExponent(r)
		if err != nil {
			return err
		}
		if _, err := grp.dhPublic(x); err != nil {
			return err
		}
		z, err := grp.dhShared(yICC, x)
		if err != nil {
			return err
		}
		kEnc, kMAC := sm.DeriveKeys(z)
		clear(kEnc)
		clear(kMAC)
		if _, err := cvCertificate(ca); err != nil {
			return err
		}
		if _, err := ifdSignature(r, grp, dh, rnd); err != nil {
			return err
		}
		return checkChip(chip, sn, answer, rnd, grp, dh)
	})
}

// BenchmarkParseAnswer measures the parsing of the card's answers that
// the handshake reads (GET DATA of the DH group, Y_ICC and the IFD-CA key)
// with the values of the simulator's state.
func BenchmarkParseAnswer(b *testing.B) {
	st := testState(b)
	grp := testGroup(b)
	dhGroupAnswer := tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues,
		tlv.Encode(tagDHG, grp.g), tlv.Encode(tagDHP, grp.p), tlv.Encode(tagDHQ, grp.q))))
	iccAnswer := tlv.Encode(tagKAT, tlv.Encode(tagDHPublic, bytes.Repeat([]byte{0x5A}, len(grp.p))))
	caAnswer := tlv.Encode(tagSDOTemplate, tlv.Encode(tagCAKeySDO, tlv.Encode(tagPublicKey,
		tlv.Encode(tagModulus, st.IFDCA.N.Bytes()), tlv.Encode(tagExponent, st.IFDCA.E.Bytes()),
		tlv.Encode(tagCHR, append(make([]byte, 4), "ITCAR001"...)), tlv.Encode(tagCHA, append(bytes.Clone(aidCIE[:6]), 0x01)))))

	cases := []struct {
		name   string
		answer []byte
		parse  func([]byte) error
	}{
		{"dh-group", dhGroupAnswer, func(a []byte) error { _, err := parseDHCombined(a); return err }},
		{"icc-public", iccAnswer, func(a []byte) error { _, err := parseICCPublic(a); return err }},
		{"ca-key", caAnswer, func(a []byte) error { _, err := parseCAKey(a); return err }},
	}
	for _, c := range cases {
		b.Run("answer="+c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.answer)))
			b.ReportAllocs()
			for b.Loop() {
				if err := c.parse(c.answer); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
