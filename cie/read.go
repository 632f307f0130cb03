package cie

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// Certificate reads the holder's certificate (EF.CertCIE, 1003) under
// secure messaging (§3.1). The card only releases it after the PIN was
// verified in the current session: without VerifyPIN it returns
// ErrPINRequired and sends nothing.
func (c *Card) Certificate(ctx context.Context) (*x509.Certificate, error) {
	var cert *x509.Certificate
	err := c.run(ctx, "reading the certificate", true, func(ctx context.Context, _ *operation) error {
		der, err := c.readCertificate(ctx)
		if err != nil {
			return err
		}
		if cert, err = x509.ParseCertificate(der); err != nil {
			return fmt.Errorf("parsing EF.CertCIE: %w", err)
		}
		return nil
	})
	return cert, err
}

// readCertificate returns EF.CertCIE trimmed to its DER length.
func (c *Card) readCertificate(ctx context.Context) ([]byte, error) {
	if !c.pinOK {
		return nil, ErrPINRequired
	}
	if err := c.ensureSM(ctx); err != nil {
		return nil, err
	}
	if !c.pinOK { // the session was re-established: the PIN is gone
		return nil, ErrPINRequired
	}
	der, err := c.readEF(ctx, fidCertCIE, readDER)
	return der, c.securityStatus(err)
}

// securityStatus maps the card's 6982 (security status not satisfied) to
// ErrPINRequired and forgets the PIN verification.
func (c *Card) securityStatus(err error) error {
	if err != nil && errors.Is(err, apdu.SWSecurityStatus) {
		c.pinOK = false
		return fmt.Errorf("%w (%w)", ErrPINRequired, err)
	}
	return err
}

// DocumentNumber reads the card (document) number, the first 9 bytes of
// EF.Seriale (1002), under secure messaging, e.g. "CA00000AA". The file
// needs no PIN on the cards the architecture describes; a card that answers
// 6982 gives ErrPINRequired.
func (c *Card) DocumentNumber(ctx context.Context) (string, error) {
	var s string
	err := c.run(ctx, "reading the document number", true, func(ctx context.Context, _ *operation) error {
		b, err := c.readSeriale(ctx)
		if err == nil {
			s = strings.TrimRight(string(b), "\x00 \xff")
		}
		return err
	})
	return s, err
}

func (c *Card) readSeriale(ctx context.Context) ([]byte, error) {
	if err := c.ensureSM(ctx); err != nil {
		return nil, err
	}
	b, err := c.readEF(ctx, fidSeriale, serialeSize)
	return b, c.securityStatus(err)
}
