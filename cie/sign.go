package cie

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"slices"
)

// maxSignInput is the longest DigestInfo key 81 signs: k − 11 for RSA-2048.
const maxSignInput = 245

// ErrPSSNotSupported: the card signs PKCS#1 v1.5 only (§8, open question 6).
var ErrPSSNotSupported = errors.New("RSA-PSS is not supported by the card (PKCS#1 v1.5 only)")

// SignDigestInfo signs digestInfo (a DER DigestInfo, or any data of at most
// 245 bytes) with the holder's key 0x81: MSE SET 00 22 41 A4 80 01 02 84 01
// 81, then INTERNAL AUTHENTICATE; the card applies PKCS#1 v1.5 type-1
// padding (§8). The PIN must have been verified in the current session
// (else ErrPINRequired). A signature is never retried.
func (c *Card) SignDigestInfo(ctx context.Context, digestInfo []byte) ([]byte, error) {
	if len(digestInfo) == 0 || len(digestInfo) > maxSignInput {
		return nil, fmt.Errorf("cie: signing: input of %d bytes, want 1 to %d", len(digestInfo), maxSignInput)
	}
	var sig []byte
	err := c.run(ctx, "signing", false, func(ctx context.Context, op *operation) error {
		if !c.pinOK {
			return ErrPINRequired
		}
		if err := c.ensureSM(ctx); err != nil {
			return err
		}
		if !c.pinOK {
			return ErrPINRequired
		}
		// MSE SET signs nothing and may be repeated: when it fails because
		// another application ended the session, the operation is not yet
		// committed and its retry reports ErrPINRequired (the PIN
		// verification went with the session) instead of the broken
		// channel's status word.
		if c.seKey != keySign {
			if err := c.mseSetKey(ctx, keySign); err != nil {
				return c.securityStatus(err)
			}
		}
		op.commit()
		var err error
		sig, err = c.internalAuthenticate(ctx, keySign, digestInfo)
		return c.securityStatus(err)
	})
	return sig, err
}

// Signer is the card's key 0x81 as a crypto.Signer (PKCS#1 v1.5), for
// crypto/tls, CMS or SSH code. Its public key comes from the certificate
// given to (*Card).Signer; the PIN must be verified before signing.
type Signer struct {
	card *Card
	cert *x509.Certificate
}

// Signer returns a crypto.Signer for key 0x81 whose Public is cert's key
// (normally the result of Certificate).
func (c *Card) Signer(cert *x509.Certificate) *Signer {
	return &Signer{card: c, cert: cert}
}

// Public returns the certificate's public key.
func (s *Signer) Public() crypto.PublicKey { return s.cert.PublicKey }

// Sign signs digest with context.Background(); see SignContext.
func (s *Signer) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	return s.SignContext(context.Background(), rand, digest, opts)
}

// digestInfoPrefixes are the DER DigestInfo headers of RFC 8017 §9.2 note 1.
var digestInfoPrefixes = map[crypto.Hash][]byte{
	crypto.SHA1:   {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14},
	crypto.SHA224: {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04, 0x05, 0x00, 0x04, 0x1c},
	crypto.SHA256: {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20},
	crypto.SHA384: {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05, 0x00, 0x04, 0x30},
	crypto.SHA512: {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05, 0x00, 0x04, 0x40},
}

// DigestInfo returns the DER DigestInfo of digest for h (SHA-1, SHA-224,
// SHA-256, SHA-384, SHA-512), the input of SignDigestInfo.
func DigestInfo(h crypto.Hash, digest []byte) ([]byte, error) {
	prefix, ok := digestInfoPrefixes[h]
	if !ok {
		return nil, fmt.Errorf("cie: building DigestInfo: unsupported hash %v", h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("cie: building DigestInfo: %d-byte digest for %v, want %d", len(digest), h, h.Size())
	}
	return append(slices.Clone(prefix), digest...), nil
}

// SignContext signs digest with PKCS#1 v1.5: the DigestInfo for
// opts.HashFunc() is built here (SHA-1/224/256/384/512) and signed by the
// card; with hash 0 digest is signed as is (TLS 1.0/1.1 MD5+SHA-1). RSA-PSS
// options give ErrPSSNotSupported. rand is ignored: the card pads.
func (s *Signer) SignContext(ctx context.Context, _ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := opts.(*rsa.PSSOptions); ok {
		return nil, fmt.Errorf("cie: signing: %w", ErrPSSNotSupported)
	}
	in := digest
	if h := opts.HashFunc(); h != 0 {
		var err error
		if in, err = DigestInfo(h, digest); err != nil {
			return nil, err
		}
	}
	return s.card.SignDigestInfo(ctx, in)
}
