package sm

import (
	"crypto/cipher"
	"crypto/des"
	"crypto/sha256"
	"errors"
	"fmt"
)

// BlockSize is the DES block size that padding, encryption and the MAC use.
const BlockSize = des.BlockSize

// KeySize is the size of a 2-key 3DES key (K1 ‖ K2).
const KeySize = 16

// Pad applies ISO/IEC 9797-1 padding method 2 with block size 8 (§5.1): it
// appends 80 and then 00 up to a multiple of 8. It always adds at least one
// byte, a whole block when b is already aligned. The result is a new slice.
func Pad(b []byte) []byte {
	n := len(b) + BlockSize - len(b)%BlockSize
	out := make([]byte, n)
	copy(out, b)
	out[len(b)] = 0x80
	return out
}

// errPadding is wrapped in the error Unpad returns.
var errPadding = errors.New("invalid ISO/IEC 9797-1 method 2 padding")

// Unpad removes ISO/IEC 9797-1 method 2 padding: trailing 00 bytes and the
// 80 before them, which must lie in the last block. The result aliases b.
func Unpad(b []byte) ([]byte, error) {
	for i := len(b) - 1; i >= 0 && i >= len(b)-BlockSize; i-- {
		switch b[i] {
		case 0x00:
			continue
		case 0x80:
			return b[:i], nil
		}
		break
	}
	return nil, fmt.Errorf("unpadding %d bytes: %w", len(b), errPadding)
}

// newTripleDES returns 2-key 3DES-EDE (K1, K2, K1) for a 16-byte key.
func newTripleDES(key []byte) (cipher.Block, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("3DES key of %d bytes, want %d", len(key), KeySize)
	}
	var k [24]byte
	defer clear(k[:])
	copy(k[:16], key)
	copy(k[16:], key[:8])
	return des.NewTripleDESCipher(k[:])
}

// EncryptCBC encrypts b, whose length must be a multiple of 8 (pad it first
// with Pad), with 2-key 3DES-EDE in CBC mode and a zero IV (§5.1).
func EncryptCBC(key, b []byte) ([]byte, error) {
	return cryptCBC(key, b, true)
}

// DecryptCBC decrypts b, whose length must be a multiple of 8, with 2-key
// 3DES-EDE in CBC mode and a zero IV (§5.1). It does not remove padding.
func DecryptCBC(key, b []byte) ([]byte, error) {
	return cryptCBC(key, b, false)
}

func cryptCBC(key, b []byte, encrypt bool) ([]byte, error) {
	if len(b)%BlockSize != 0 {
		return nil, fmt.Errorf("3DES-CBC over %d bytes: not a multiple of %d", len(b), BlockSize)
	}
	blk, err := newTripleDES(key)
	if err != nil {
		return nil, err
	}
	var iv [BlockSize]byte
	out := make([]byte, len(b))
	if encrypt {
		cipher.NewCBCEncrypter(blk, iv[:]).CryptBlocks(out, b)
	} else {
		cipher.NewCBCDecrypter(blk, iv[:]).CryptBlocks(out, b)
	}
	return out, nil
}

// RetailMAC computes ISO/IEC 9797-1 MAC algorithm 3 with DES (§5.1): CBC-DES
// with K1 = key[0:8] and a zero IV over all blocks, then DES-decrypt with
// K2 = key[8:16] and DES-encrypt with K1. It returns the full 8 bytes.
// paddedData must already be padded (see Pad). It panics if key is not 16
// bytes or paddedData is not a non-empty multiple of 8: both are programming
// errors, never card input.
func RetailMAC(key, paddedData []byte) []byte {
	if len(key) != KeySize {
		panic(fmt.Sprintf("sm: retail MAC key of %d bytes", len(key)))
	}
	if len(paddedData) == 0 || len(paddedData)%BlockSize != 0 {
		panic(fmt.Sprintf("sm: retail MAC over %d bytes: pad the input first", len(paddedData)))
	}
	k1, err := des.NewCipher(key[:8])
	if err != nil {
		panic(err) // unreachable: the length is checked above
	}
	k2, err := des.NewCipher(key[8:16])
	if err != nil {
		panic(err)
	}
	var h [BlockSize]byte
	for i := 0; i < len(paddedData); i += BlockSize {
		for j := range h {
			h[j] ^= paddedData[i+j]
		}
		k1.Encrypt(h[:], h[:])
	}
	k2.Decrypt(h[:], h[:])
	k1.Encrypt(h[:], h[:])
	return h[:]
}

// DeriveKeys derives the secure messaging keys from the DH shared secret z
// (§4.6): K_ENC = SHA-256(z ‖ 00000001)[0:16], K_MAC = SHA-256(z ‖ 00000002)[0:16].
// z must be the I2OSP'd secret, as long as p.
func DeriveKeys(z []byte) (kEnc, kMAC []byte) {
	return kdf(z, 1), kdf(z, 2)
}

func kdf(z []byte, counter byte) []byte {
	h := sha256.New()
	h.Write(z)
	h.Write([]byte{0, 0, 0, counter})
	sum := h.Sum(nil)
	defer clear(sum)
	k := make([]byte, KeySize)
	copy(k, sum)
	return k
}
