package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"

	"github.com/ciedesktop/cie-desktop/certcache"
	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/cardsession"
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
	if _, err := openCache(); err != nil {
		return err
	}
	s, err := a.open(ctx)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := a.verifyPIN(ctx, s); err != nil {
		return err
	}
	// The card's record (certcache package doc): no key derivation, and
	// the PKCS#11 module presents the card from it without any APDU.
	cert, err := s.Pair(ctx)
	if err != nil {
		return err
	}
	h := cie.HolderFromCertificate(cert)
	fmt.Fprintf(a.env.Stdout, "Card of %s %s paired: browsers now list its certificate without asking the PIN.\n", h.GivenName, h.Surname)
	fmt.Fprintf(a.env.Stdout, "Only the certificate and the card's public data are stored, never the PIN.\n")
	return nil
}

// unpair removes what the cache holds of the card: its record and any
// encrypted certificate entry. The card is identified the full way (its
// record is not used: it is what goes), which reads the PAN in 6 APDUs.
func (a *app) unpair(ctx context.Context, args []string) error {
	if err := a.subFlags("unpair", args, nil); err != nil {
		return err
	}
	cache, err := openCache()
	if err != nil {
		return err
	}
	s, err := cardsession.OpenWith(ctx, a.reader, &cardsession.Options{Logger: a.log, IdentifyOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	switch err := cache.Remove(s.Card.PAN()); {
	case errors.Is(err, certcache.ErrNotFound):
		fmt.Fprintln(a.env.Stdout, "This card was not paired on this computer: nothing to remove.")
		return nil
	case err != nil:
		return err
	}
	fmt.Fprintln(a.env.Stdout, "Card unpaired: its certificate was removed from this computer.")
	return nil
}

// pairedCertificate returns the card's certificate when the card is paired
// on this computer: the one of its record (the session's handshake proved
// the card is the record's), else an older encrypted entry, which the card
// opens with its key (certcache.KeyFor); nil when the card is not paired.
func (a *app) pairedCertificate(ctx context.Context, s *cardsession.Session) *x509.Certificate {
	if cert := s.CachedCertificate(); cert != nil {
		return cert
	}
	cache, err := openCache()
	if err != nil || !cache.HasEntry(s.Card.PAN()) {
		return nil
	}
	key, err := certcache.KeyFor(ctx, s.Card)
	if err != nil {
		a.log.Debug("deriving the certificate cache key", "err", err)
		return nil
	}
	defer key.Close()
	cert, err := cache.Load(s.Card.PAN(), key)
	if err != nil {
		a.log.Debug("reading the certificate cache", "err", err)
		return nil
	}
	return cert
}
