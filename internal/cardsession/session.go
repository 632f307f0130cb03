package cardsession

import (
	"fmt"
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
