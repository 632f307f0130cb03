package cie

import (
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"testing"
)

// TestAppendixAKeys checks the embedded keys against the SHA-256 values
// published in cie-protocol.md Appendix A.
func TestAppendixAKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		key  []byte
		want string
	}{
		{"defModule", ifdModulus, "47a94894e991d2123f4523774ce7950eada53b53984385050db0567be791be65"},
		{"defPrivExp", ifdPrivateExponent, "b90dda3054804479af44b5e8e82f063363b1e8450fc00252abe839d5eaa1b087"},
		{"ExtAuth_PrivExp", caPrivateExponent, "34360f30fc6c138b9289b5650ea432b6a5f88c0dfca08455a56e3e658bc96fd2"},
	} {
		sum := sha256.Sum256(tc.key)
		if got := hex.EncodeToString(sum[:]); got != tc.want || len(tc.key) != 256 {
			t.Errorf("%s: %d bytes, SHA-256 %s, want 256 bytes, %s", tc.name, len(tc.key), got, tc.want)
		}
	}
}

// TestIFDKeyPair checks (m^e)^d ≡ m mod n for the IFD pair, as Appendix A says.
func TestIFDKeyPair(t *testing.T) {
	n := new(big.Int).SetBytes(ifdModulus)
	d := new(big.Int).SetBytes(ifdPrivateExponent)
	e := new(big.Int).SetBytes(ifdPublicExponent)
	m := new(big.Int).SetBytes([]byte("a message to round-trip through the IFD key"))
	c := new(big.Int).Exp(m, e, n)
	if got := new(big.Int).Exp(c, d, n); got.Cmp(m) != 0 {
		t.Fatalf("IFD key pair does not round-trip")
	}
}
