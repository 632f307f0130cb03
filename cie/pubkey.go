package cie

import (
	"context"
	"crypto"
	"crypto/rsa"
	"fmt"
	"math/big"
	"slices"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/tlv"
)

const (
	tagSequence tlv.Tag = 0x30
	tagInteger  tlv.Tag = 0x02
	keyServizi          = 0x83
	keySign             = 0x81
	algRSAPKCS1         = 0x02
)

// parseRSAPublicKeyFile parses EF.Int.Kpub / EF.Servizi_Int.Kpub (§3.1):
// SEQUENCE { INTEGER n, INTEGER e } followed by padding. Leading zero bytes
// of n and e are stripped (cards may not encode them minimally, which
// encoding/asn1 would reject). It returns the DER trimmed to its length.
func parseRSAPublicKeyFile(b []byte) (*rsaFile, error) {
	seq, _, err := tlv.ParseOne(b)
	if err != nil {
		return nil, fmt.Errorf("parsing RSA public key: %w", err)
	}
	if seq.Tag != tagSequence {
		return nil, fmt.Errorf("parsing RSA public key: tag %v, want 30: %w", seq.Tag, tlv.ErrMalformed)
	}
	kids, err := seq.Children()
	if err != nil {
		return nil, fmt.Errorf("parsing RSA public key: %w", err)
	}
	if len(kids) != 2 || kids[0].Tag != tagInteger || kids[1].Tag != tagInteger {
		return nil, fmt.Errorf("parsing RSA public key: want SEQUENCE { INTEGER, INTEGER }: %w", tlv.ErrMalformed)
	}
	n := trimZeros(kids[0].Value)
	e := trimZeros(kids[1].Value)
	nb := new(big.Int).SetBytes(n)
	eb := new(big.Int).SetBytes(e)
	switch {
	case nb.BitLen() < 1024 || nb.BitLen() > 4096 || nb.Bit(0) == 0:
		return nil, fmt.Errorf("parsing RSA public key: modulus of %d bits: %w", nb.BitLen(), tlv.ErrMalformed)
	case !eb.IsInt64() || eb.Int64() < 3 || eb.Int64() > 1<<31-1 || eb.Bit(0) == 0:
		return nil, fmt.Errorf("parsing RSA public key: unsupported exponent: %w", tlv.ErrMalformed)
	}
	return &rsaFile{der: slices.Clone(seq.Raw), key: &rsa.PublicKey{N: nb, E: int(eb.Int64())}}, nil
}

// keyFile reads and caches an EF holding an RSA public key.
func (c *Card) keyFile(ctx context.Context, fid uint16, sfi byte, cache **rsaFile) (*rsaFile, error) {
	if *cache != nil {
		return *cache, nil
	}
	if err := c.inCIE(ctx); err != nil {
		return nil, err
	}
	b, err := c.readEFShort(ctx, fid, sfi, readDER)
	if err != nil {
		return nil, err
	}
	f, err := parseRSAPublicKeyFile(b)
	if err != nil {
		return nil, fmt.Errorf("EF %04X: %w", fid, err)
	}
	*cache = f
	return f, nil
}

func (c *Card) chipKeyFile(ctx context.Context) (*rsaFile, error) {
	return c.keyFile(ctx, fidIntKpub, sfiIntKpub, &c.chip)
}

func (c *Card) serviziKeyFile(ctx context.Context) (*rsaFile, error) {
	return c.keyFile(ctx, fidServiziKpb, sfiServizi, &c.servizi)
}

// ChipPublicKey returns the public part of the chip authentication key 0x82
// (EF.Int.Kpub, 1004), used by DAPP. It is read once per Card.
func (c *Card) ChipPublicKey(ctx context.Context) (*rsa.PublicKey, error) {
	var k *rsa.PublicKey
	err := c.run(ctx, "reading the chip public key", true, func(ctx context.Context, _ *operation) error {
		if err := c.confirm(ctx); err != nil {
			return err
		}
		f, err := c.chipKeyFile(ctx)
		if err == nil {
			k = copyKey(f.key)
		}
		return err
	})
	return k, err
}

// ServiziPublicKey returns the public part of the "servizi" key 0x83
// (EF.Servizi_Int.Kpub, 1005). It is read once per Card.
func (c *Card) ServiziPublicKey(ctx context.Context) (*rsa.PublicKey, error) {
	var k *rsa.PublicKey
	err := c.run(ctx, "reading the servizi public key", true, func(ctx context.Context, _ *operation) error {
		if err := c.confirm(ctx); err != nil {
			return err
		}
		f, err := c.serviziKeyFile(ctx)
		if err == nil {
			k = copyKey(f.key)
		}
		return err
	})
	return k, err
}

func copyKey(k *rsa.PublicKey) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).Set(k.N), E: k.E}
}

// AuthenticateServizi asks the card to sign challenge with the servizi key
// 0x83 (MSE SET 00 22 41 A4 80 01 02 84 01 83, then INTERNAL AUTHENTICATE,
// §8) and verifies the PKCS#1 v1.5 answer with EF.Servizi_Int.Kpub, proving
// the card is genuine. No PIN is needed; the commands go under SM when a
// session is up, in plain otherwise. It returns the signature; a signature
// that does not verify gives ErrChipAuthentication.
func (c *Card) AuthenticateServizi(ctx context.Context, challenge []byte) ([]byte, error) {
	if len(challenge) == 0 || len(challenge) > servizi83MaxChallengeLen {
		return nil, fmt.Errorf("cie: authenticating the card: challenge of %d bytes, want 1 to %d", len(challenge), servizi83MaxChallengeLen)
	}
	var sig []byte
	err := c.run(ctx, "authenticating the card", true, func(ctx context.Context, _ *operation) error {
		if err := c.confirm(ctx); err != nil {
			return err
		}
		f, err := c.serviziKeyFile(ctx)
		if err != nil {
			return err
		}
		if sig, err = c.internalAuthenticate(ctx, keyServizi, challenge); err != nil {
			return err
		}
		if err := rsa.VerifyPKCS1v15(f.key, crypto.Hash(0), challenge, sig); err != nil {
			return fmt.Errorf("%w: the servizi key signature does not verify", ErrChipAuthentication)
		}
		return nil
	})
	return sig, err
}

// internalAuthenticate selects key (MSE SET 41 A4 80 01 02 84 01 key) and
// sends INTERNAL AUTHENTICATE with data (no Le; the answer arrives by
// GET RESPONSE), §8. The MSE SET is skipped when key is already selected in
// this session (a further signature then costs INTERNAL AUTHENTICATE and
// its GET RESPONSEs only); should the card refuse INTERNAL AUTHENTICATE
// with 6985 or 6A88 (no key selected, nothing signed), the selection is
// sent and INTERNAL AUTHENTICATE once more.
func (c *Card) internalAuthenticate(ctx context.Context, key byte, data []byte) ([]byte, error) {
	skipped := c.seKey == key
	if !skipped {
		if err := c.mseSetKey(ctx, key); err != nil {
			return nil, err
		}
	}
	r, err := c.exchange(ctx, apdu.Command{INS: insInternalAuthenticate, Data: data})
	if err == nil && skipped && (r.SW == apdu.SWConditionsNotSatisfied || r.SW == apdu.SWReferencedDataNotFound) {
		c.log.DebugContext(ctx, "cie: the card lost the key selection; selecting again", "sw", r.SW)
		if err := c.mseSetKey(ctx, key); err != nil {
			return nil, err
		}
		r, err = c.exchange(ctx, apdu.Command{INS: insInternalAuthenticate, Data: data})
	}
	if err != nil {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: %w", err)
	}
	if err := checkSW(r, "INTERNAL AUTHENTICATE"); err != nil {
		return nil, err
	}
	if len(r.Data) == 0 {
		return nil, fmt.Errorf("INTERNAL AUTHENTICATE: empty answer: %w", apdu.ErrMalformed)
	}
	return r.Data, nil
}

// mseSetKey selects key for INTERNAL AUTHENTICATE with PKCS#1 v1.5 (§8).
func (c *Card) mseSetKey(ctx context.Context, key byte) error {
	c.seKey = 0
	mse := apdu.Command{INS: insMSESet, P1: p1MSESetCompute, P2: p2MSEAT, Data: []byte{0x80, 0x01, algRSAPKCS1, 0x84, 0x01, key}}
	r, err := c.exchange(ctx, mse)
	if err != nil {
		return fmt.Errorf("MSE SET: %w", err)
	}
	if err := checkSW(r, "MSE SET"); err != nil {
		return err
	}
	c.seKey = key
	return nil
}
