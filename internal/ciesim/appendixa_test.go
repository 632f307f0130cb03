package ciesim

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	mrand "math/rand/v2"
	"testing"
)

// TestAppendixAConstants checks the three published constants against the
// SHA-256 values printed in cie-protocol.md Appendix A.
func TestAppendixAConstants(t *testing.T) {
	for _, c := range []struct {
		name, hexValue, sum string
	}{
		{"IFD modulus (defModule)", ifdModulusHex, "47a94894e991d2123f4523774ce7950eada53b53984385050db0567be791be65"},
		{"IFD private exponent (defPrivExp)", ifdPrivExpHex, "b90dda3054804479af44b5e8e82f063363b1e8450fc00252abe839d5eaa1b087"},
		{"IFD-CA private exponent (ExtAuth_PrivExp)", ifdCAPrivExpHex, "34360f30fc6c138b9289b5650ea432b6a5f88c0dfca08455a56e3e658bc96fd2"},
	} {
		b := mustHex(c.hexValue)
		got := sha256.Sum256(b)
		if len(b) != 256 || hex.EncodeToString(got[:]) != c.sum {
			t.Errorf("%s: %d bytes, SHA-256 %x, want 256 bytes %s", c.name, len(b), got, c.sum)
		}
	}
}

// roundTrip checks (m^e)^d ≡ m (mod n) for random m.
func roundTrip(t *testing.T, name string, n, e, d *big.Int) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(1, 2))
	for i := range 4 {
		mb := make([]byte, len(n.Bytes()))
		for j := range mb {
			mb[j] = byte(r.Uint32())
		}
		m := new(big.Int).Mod(new(big.Int).SetBytes(mb), n)
		if new(big.Int).Exp(new(big.Int).Exp(m, e, n), d, n).Cmp(m) != 0 {
			t.Fatalf("%s: (m^e)^d != m for sample %d", name, i)
		}
	}
}

// TestPublishedIFDKeyPair: the published IFD pair is a working RSA pair
// with e = 65537 (Appendix A).
func TestPublishedIFDKeyPair(t *testing.T) {
	roundTrip(t, "IFD", pubIFDN, big.NewInt(65537), pubIFDD)
}

// TestIFDCAKey: the committed card's key 0x84 has a 2048-bit modulus with
// the top bit set, its private exponent is the published one, and the
// published exponent inverts e.
func TestIFDCAKey(t *testing.T) {
	k := loadTestState(t).IFDCA
	if k.N.BitLen() != 2048 {
		t.Errorf("n has %d bits", k.N.BitLen())
	}
	if k.D.Cmp(pubIFDCAD) != 0 {
		t.Error("d is not the published IFD-CA exponent")
	}
	if new(big.Int).Mul(k.P1, k.P2).Cmp(k.N) != 0 {
		t.Error("n != p1·p2")
	}
	roundTrip(t, "IFD-CA", k.N, k.E, pubIFDCAD)
	roundTrip(t, "IFD-CA (sign, then verify)", k.N, pubIFDCAD, k.E)
}
