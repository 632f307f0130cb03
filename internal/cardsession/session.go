package cardsession

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/pcsc"
)

// NoCardError reports that no card is on the chosen reader (Reader set) or
// on any reader (Reader empty).
type NoCardError struct {
	Reader string
}

// Error returns "no card in the reader "X": put your CIE on it" or
// "no CIE found: put your card on the reader".
func (e *NoCardError) Error() string {
	if e.Reader == "" {
		return "no CIE found: put your card on the reader"
	}
	return fmt.Sprintf("no card in the reader %q: put your CIE on it", e.Reader)
}

// ReaderMatchError reports a reader request (a name, part of a name or an
// index) that matches no reader or several.
type ReaderMatchError struct {
	Want    string   // what was asked for
	Matches []string // the readers it matches (none or several)
	Readers []string // all the readers
}

// Error lists the readers the request matches, or all of them.
func (e *ReaderMatchError) Error() string {
	if len(e.Matches) == 0 {
		return fmt.Sprintf("no reader matches %q; readers: %s", e.Want, strings.Join(e.Readers, ", "))
	}
	return fmt.Sprintf("%q matches several readers: %s", e.Want, strings.Join(e.Matches, ", "))
}

// NamedReader resolves a reader request against names: an index into
// names ("0", "1"), an exact name, or a case-insensitive part of exactly
// one name.
func NamedReader(want string, names []string) (string, error) {
	if i, err := strconv.Atoi(want); err == nil && i >= 0 && i < len(names) {
		return names[i], nil
	}
	var match []string
	for _, n := range names {
		if n == want {
			return n, nil
		}
		if strings.Contains(strings.ToLower(n), strings.ToLower(want)) {
			match = append(match, n)
		}
	}
	if len(match) == 1 {
		return match[0], nil
	}
	return "", &ReaderMatchError{Want: want, Matches: match, Readers: slices.Clone(names)}
}

// ChooseReader picks the reader to use among the readers' states: the one
// named by want (see NamedReader) when want is not empty, else the only
// reader with a card, else the first with a CIE by its ATR, else the first
// with a card. It fails with *NoCardError when the chosen reader (or every
// reader) is empty, with pcsc.ErrNoReaders when states is empty, and with
// *ReaderMatchError when want matches no reader or several.
func ChooseReader(states []pcsc.ReaderStatus, want string) (pcsc.ReaderStatus, error) {
	if len(states) == 0 {
		return pcsc.ReaderStatus{}, pcsc.ErrNoReaders
	}
	if want != "" {
		names := make([]string, len(states))
		for i, s := range states {
			names[i] = s.Name
		}
		name, err := NamedReader(want, names)
		if err != nil {
			return pcsc.ReaderStatus{}, err
		}
		st := states[slices.Index(names, name)]
		if !st.Present {
			return st, &NoCardError{Reader: name}
		}
		return st, nil
	}
	var withCard []pcsc.ReaderStatus
	for _, s := range states {
		if s.Present && !s.Mute {
			withCard = append(withCard, s)
		}
	}
	switch len(withCard) {
	case 0:
		if len(states) == 1 {
			return states[0], &NoCardError{Reader: states[0].Name}
		}
		return pcsc.ReaderStatus{}, &NoCardError{}
	case 1:
		return withCard[0], nil
	}
	for _, s := range withCard {
		if _, ok := cie.FamilyByATR(s.ATR); ok {
			return s, nil
		}
	}
	return withCard[0], nil
}

// Session is a CIE opened on a PC/SC reader. Close releases it; the
// connection is shared, so other applications (a browser's PKCS#11
// module) can use the card meanwhile.
type Session struct {
	// Reader is the PC/SC name of the reader.
	Reader string
	// Card is the opened CIE.
	Card *cie.Card

	pc   *pcsc.Context
	conn *pcsc.Card
}

// Close closes the card, the connection and the PC/SC context. It is safe
// to call more than once.
func (s *Session) Close() error {
	var errs []error
	if s.Card != nil {
		errs = append(errs, s.Card.Close())
		s.Card = nil
	}
	if s.conn != nil {
		errs = append(errs, s.conn.Close())
		s.conn = nil
	}
	if s.pc != nil {
		errs = append(errs, s.pc.Release())
		s.pc = nil
	}
	return errors.Join(errs...)
}

// Open connects to the PC/SC service, chooses the reader with
// ChooseReader(want) and opens the CIE on it with cie.Open. logger may be
// nil. The caller closes the Session.
func Open(ctx context.Context, want string, logger *slog.Logger) (*Session, error) {
	pc, err := pcsc.Establish()
	if err != nil {
		return nil, err
	}
	s := &Session{pc: pc}
	names, err := pc.Readers()
	if err != nil {
		s.Close()
		return nil, err
	}
	states := make([]pcsc.ReaderStatus, 0, len(names))
	for _, n := range names {
		st, err := pc.Status(ctx, n)
		if err != nil {
			st = pcsc.ReaderStatus{Name: n}
		}
		states = append(states, st)
	}
	chosen, err := ChooseReader(states, want)
	if err != nil {
		s.Close()
		return nil, err
	}
	s.Reader = chosen.Name
	if logger != nil {
		logger.Debug("connecting", "reader", s.Reader)
	}
	s.conn, err = pc.Connect(ctx, s.Reader)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("connecting to %q: %w", s.Reader, err)
	}
	atr, err := s.conn.ATR()
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("reading the ATR: %w", err)
	}
	s.Card, err = cie.Open(ctx, s.conn, atr, &cie.Options{Logger: logger})
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}
