package pkcs11

import (
	"context"
	"errors"
)

// PINPrompter asks the card holder for the PIN on the module's behalf: the
// module's own dialog, for applications that have no PIN dialog of their
// own (browsers). cmd/cie-pkcs11 runs a pinentry program behind it. See
// "Sign on demand" in the package documentation.
type PINPrompter interface {
	// PromptPIN shows the PIN dialog and returns what the user typed; the
	// module clears it after use. It returns ErrPINCancelled when the user
	// cancelled or the dialog timed out. It is called with no lock held,
	// one dialog per slot at a time.
	PromptPIN(ctx context.Context, r PINRequest) ([]byte, error)
	// PINLocked tells the holder that the PIN is blocked, so that a
	// failed login is not a mystery. Its errors are the prompter's to log.
	PINLocked(ctx context.Context, r PINRequest)
}

// ErrPINCancelled is returned by a PINPrompter when the user cancelled the
// dialog or it timed out. The module answers CKR_FUNCTION_CANCELED.
var ErrPINCancelled = errors.New("pkcs11: PIN entry cancelled")

// PINRetry says why the PIN is asked.
type PINRetry int

// PIN retry reasons.
const (
	// PINFirstTry: no entry yet for this operation.
	PINFirstTry PINRetry = iota
	// PINWrong: the card refused the previous entry and spent a try;
	// TriesLeft has the new count.
	PINWrong
	// PINMalformed: the previous entry was not 8 digits; it was not sent
	// to the card and no try was spent.
	PINMalformed
)

// PINRequest is what the dialog shows.
type PINRequest struct {
	Slot   SlotID
	Label  string // the token label: the holder's name once the certificate is known, else "CIE <serial>"
	Holder string // the holder's name from the certificate; empty before it is known
	Serial string // the token serial number (ID_Servizi)
	// TriesLeft is the PIN's tries left as the card last said; -1 when
	// unknown.
	TriesLeft int
	Retry     PINRetry
}

// errAgain asks authenticate for another dialog.
var errAgain = errors.New("pkcs11: ask the PIN again")

// maxMalformed bounds the malformed entries in a row: a broken dialog
// program that answers at once with nothing must not loop forever.
const maxMalformed = 5

// authenticate logs the user in with a PIN the module asks for itself
// (PINPrompter): at C_Sign without a login, and at C_Login with a NULL PIN
// (explicit). Each entry is verified once; a wrong one is never resent:
// the next dialog says it was wrong and how many tries remain, until the
// user types the right PIN, cancels (CKR_FUNCTION_CANCELED) or the PIN is
// blocked (CKR_PIN_LOCKED, after a message). An entry that is not 8 digits
// is not sent to the card. The slot's lock is released while the dialog is
// open, so other calls on the token go on; the slot's ask lock keeps one
// dialog per card at a time.
func (m *Module) authenticate(h SessionHandle, explicit bool) error {
	var s *slot
	if err := m.withSession(h, false, func(ss *session, t *token) error { s = ss.slot; return nil }); err != nil {
		return err
	}
	s.ask.Lock()
	defer s.ask.Unlock()

	retry := PINFirstTry
	malformed := 0
	for {
		var req PINRequest
		var locked bool
		err := m.withSession(h, true, func(ss *session, t *token) error {
			switch t.login {
			case loggedUser:
				if explicit && retry == PINFirstTry {
					return CKR_USER_ALREADY_LOGGED_IN
				}
				return errDone // logged in meanwhile (another dialog of this card)
			case loggedSO:
				return CKR_USER_ANOTHER_ALREADY_LOGGED_IN
			}
			if retry == PINFirstTry {
				// The counter may have changed since the card was opened
				// (another application): ask the card, without spending a try.
				if st, err := t.card.PINStatus(m.ctx); err == nil {
					if !st.Verified {
						t.pin.set(st.Remaining, st.Blocked)
					}
				} else if removed(err) || isCardChanged(err) {
					return t.fail(err, "reading the PIN counter")
				} else {
					m.log.Info("pkcs11: reading the PIN counter", "slot", s.id, "err", err)
				}
			}
			req = PINRequest{Slot: s.id, Label: t.label(), Serial: t.serial(), TriesLeft: -1, Retry: retry}
			if t.cert != nil {
				req.Holder = t.label()
			}
			if t.pin.known {
				req.TriesLeft = t.pin.remaining
			}
			locked = t.pin.known && t.pin.blocked
			return nil
		})
		if errors.Is(err, errDone) {
			return nil
		}
		if err != nil {
			return err
		}
		if locked {
			req.TriesLeft = 0
			m.cfg.PIN.PINLocked(m.ctx, req)
			return CKR_PIN_LOCKED
		}

		pin, err := m.cfg.PIN.PromptPIN(m.ctx, req)
		switch {
		case errors.Is(err, ErrPINCancelled):
			m.log.Info("pkcs11: PIN dialog cancelled", "slot", s.id)
			return CKR_FUNCTION_CANCELED
		case err != nil:
			clear(pin)
			m.log.Warn("pkcs11: PIN dialog failed", "slot", s.id, "err", err)
			if m.ctx.Err() != nil {
				return CKR_CRYPTOKI_NOT_INITIALIZED
			}
			return CKR_FUNCTION_FAILED
		}
		err = m.withSession(h, true, func(ss *session, t *token) error {
			defer clear(pin)
			if t.login == loggedUser {
				return errDone
			}
			if t.login == loggedSO {
				return CKR_USER_ANOTHER_ALREADY_LOGGED_IN
			}
			if checkPIN(pin) != nil {
				retry = PINMalformed
				return errAgain
			}
			return t.loginUser(m.ctx, pin)
		})
		switch {
		case err == nil, errors.Is(err, errDone):
			return nil
		case errors.Is(err, errAgain):
			if malformed++; malformed >= maxMalformed {
				m.log.Info("pkcs11: too many malformed PIN entries", "slot", s.id)
				return CKR_PIN_INVALID
			}
			continue
		case errors.Is(err, CKR_PIN_INCORRECT):
			retry = PINWrong
			continue
		case errors.Is(err, CKR_PIN_LOCKED):
			req.TriesLeft, req.Retry = 0, PINWrong
			m.cfg.PIN.PINLocked(m.ctx, req)
		}
		return err
	}
}

// errDone ends authenticate: the user is logged in.
var errDone = errors.New("pkcs11: logged in")

// signOnDemand asks the PIN before a signature when the module has a
// dialog and the user is not logged in. It does nothing for a length
// query, a short buffer or an input the signature would refuse anyway,
// so that no dialog opens for a call that cannot sign. A failed or
// cancelled dialog ends the signature operation.
func (m *Module) signOnDemand(h SessionHandle, data []byte, final bool, outLen int, sizeOnly bool) error {
	if m.cfg.PIN == nil || sizeOnly {
		return nil
	}
	need := false
	err := m.withSession(h, false, func(ss *session, t *token) error {
		op := ss.sign
		if op == nil || t.login == loggedUser || outLen < op.size() || (!final && op.multi) {
			return nil
		}
		in := data
		if final {
			in = op.data
		}
		need = op.h != nil || (len(in) > 0 && len(in) <= op.maxInput())
		return nil
	})
	if err != nil || !need {
		return err
	}
	m.log.Debug("pkcs11: the signature needs the PIN", "session", h)
	if err := m.authenticate(h, false); err != nil {
		_ = m.withSession(h, false, func(ss *session, t *token) error { ss.sign = nil; return nil })
		return err
	}
	return nil
}
