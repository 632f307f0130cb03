package cie

import (
	"bytes"
	"testing"

	"github.com/ciedesktop/cie-desktop/tlv"
)

// Fuzz targets for every parser of card input. Seeds are well-formed
// answers built from the simulator's test state.

func FuzzParseCAKey(f *testing.F) {
	st := testState(f)
	f.Add(tlv.Encode(tagSDOTemplate, tlv.Encode(tagCAKeySDO, tlv.Encode(tagPublicKey,
		tlv.Encode(tagModulus, st.IFDCA.N.Bytes()), tlv.Encode(tagExponent, st.IFDCA.E.Bytes()),
		tlv.Encode(tagCHR, mustHex("000000004954434130303031")), tlv.Encode(tagCHA, mustHex("A0000000003904"))))))
	f.Add([]byte{0x70, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		ca, err := parseCAKey(b)
		if err != nil {
			return
		}
		if len(ca.aid) != 6 || len(ca.n) < 128 || ca.n[0] <= isoHeader || len(ca.n)-34 > len(cvBody(ca)) {
			t.Fatalf("accepted a CA key the CV certificate cannot use: n %d bytes", len(ca.n))
		}
		cvBody(ca) // must not panic
	})
}

func FuzzParseDHParams(f *testing.F) {
	grp := testGroup(f)
	f.Add(tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues,
		tlv.Encode(tagDHG, grp.g), tlv.Encode(tagDHP, grp.p), tlv.Encode(tagDHQ, grp.q)))))
	f.Add(tlv.Encode(tagSDOTemplate, tlv.Encode(tagDHParams, tlv.Encode(tagDHValues, tlv.Encode(tagDHP, grp.p)))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if g, err := parseDHCombined(b); err == nil {
			if g.pMod.Size() == 0 || g.qMinus3 == nil {
				t.Fatal("incomplete group accepted")
			}
		}
		for _, tag := range []tlv.Tag{tagDHG, tagDHP, tagDHQ} {
			if v, err := parseDHValue(b, tag); err == nil && len(v) == 0 {
				t.Fatal("empty value accepted")
			}
		}
	})
}

func FuzzParseICCPublic(f *testing.F) {
	f.Add(tlv.Encode(tagKAT, tlv.Encode(tagDHPublic, bytes.Repeat([]byte{7}, 256))))
	f.Fuzz(func(t *testing.T, b []byte) {
		if y, err := parseICCPublic(b); err == nil && len(y) == 0 {
			t.Fatal("empty Y_ICC accepted")
		}
	})
}

func FuzzParseRSAPublicKeyFile(f *testing.F) {
	st := testState(f)
	f.Add(append(tlv.Encode(tagSequence, tlv.Encode(tagInteger, append([]byte{0}, st.ChipKey.N.Bytes()...)), tlv.Encode(tagInteger, []byte{1, 0, 1})), 0, 0, 0))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := parseRSAPublicKeyFile(b)
		if err != nil {
			return
		}
		if k.key.N.BitLen() < 1024 || k.key.E < 3 || !bytes.HasPrefix(b, k.der) {
			t.Fatal("accepted a bad key")
		}
	})
}

func FuzzParseSOD(f *testing.F) {
	f.Add(buildSOD(f, false, map[int][]byte{0xA1: []byte("123456789012")}))
	f.Add(buildSOD(f, true, map[int][]byte{0xA1: []byte("123456789012"), 0x1B: {1}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSOD(b)
		if err != nil {
			return
		}
		_ = s.VerifySignature() // must not panic
		checkSOD(s, []sodFile{{number: 0xA1, data: []byte("x")}}, testNow)
	})
}

func FuzzBERTotalLength(f *testing.F) {
	for _, s := range []string{"3082010A", "7F2182015D", "5F3781FF", "308400000010", "3080"} {
		f.Add(mustHex(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := berTotalLength(b)
		if err == nil && (n < 2 || n > maxFileOffset+plainChunk+6) {
			t.Fatalf("length %d", n)
		}
	})
}

func FuzzFamilyMatching(f *testing.F) {
	for _, fam := range families {
		f.Add(fam.ATR)
	}
	f.Add(efATRSignatures[0].content)
	f.Fuzz(func(t *testing.T, b []byte) {
		if fam, ok := FamilyByATR(b); ok && len(b) != len(fam.ATR) {
			t.Fatal("matched an ATR of another length")
		}
		familyByEFATR(b)
	})
}
