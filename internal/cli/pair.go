package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
)

// openCache opens the certificate cache the PKCS#11 module uses.
func openCache() (*certcache.Cache, error) {
	dir, err := certcache.DefaultDir()
	if err != nil {
		return nil, fmt.Errorf("finding the certificate cache: %w", err)
	}
	return certcache.New(dir), nil
}

// pair reads the certificate with the PIN and stores the card's record
// (certificate and public data), so that browsers see it without a PIN
// from then on. The cache never holds PIN digits.
func (a *app) pair(ctx context.Context, args []string) error {
	if err := a.subFlags("pair", args, nil); err != nil {
		return err
	}
	cache, err := openCache()
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	if err := a.verifyPIN(ctx, s); err != nil {
		return err
	}
	cert, err := s.card.Certificate(ctx)
	if err != nil {
		return err
	}
	// The card's record (certcache package doc): no key derivation, and
	// the PKCS#11 module presents the card from it without any APDU.
	if err := cache.StoreCard(s.card, cert); err != nil {
		return err
	}
	if err := cache.SetReader(s.reader, s.card.PAN(), s.card.ATR()); err != nil {
		a.log.Debug("recording the reader's card", "err", err)
	}
	h := cie.HolderFromCertificate(cert)
	fmt.Fprintf(a.env.Stdout, "Card of %s %s paired: browsers now list its certificate without asking the PIN.\n", h.GivenName, h.Surname)
	fmt.Fprintf(a.env.Stdout, "Only the certificate and the card's public data are stored, never the PIN.\n")
	return nil
}

// unpair removes the card's cached certificate.
func (a *app) unpair(ctx context.Context, args []string) error {
	if err := a.subFlags("unpair", args, nil); err != nil {
		return err
	}
	cache, err := openCache()
	if err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	switch err := cache.Remove(s.card.PAN()); {
	case errors.Is(err, certcache.ErrNotFound):
		fmt.Fprintln(a.env.Stdout, "This card was not paired on this computer: nothing to remove.")
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintln(a.env.Stdout, "Card unpaired: its certificate was removed from this computer.")
	return nil
}

// cachedCertificate returns the card's certificate from the cache, or nil
// when the card is not paired or the entry does not open with this card's key.
func cachedCertificate(ctx context.Context, c *cie.Card) *x509.Certificate {
	cache, err := openCache()
	if err != nil || !cache.Has(c.PAN()) {
		return nil
	}
	key, err := certcache.KeyFor(ctx, c)
	if err != nil {
		return nil
	}
	defer key.Close()
	cert, err := cache.Load(c.PAN(), key)
	if err != nil {
		return nil
	}
	return cert
}
