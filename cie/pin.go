package cie

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/sm"
)

// Instructions and parameters of the PIN commands (§7).
const (
	insVerify              = 0x20
	insChangeReferenceData = 0x24
	insResetRetryCounter   = 0x2C
	p1ResetWithNewPIN      = 0x02 // RESET RETRY COUNTER: new reference data in the command
	pinLength              = 8
)

// ValidatePIN checks that pin is exactly 8 ASCII digits, the format of the
// CIE PIN and PUK (§7). The functions that send a PIN call it before
// touching the card; the error wraps ErrInvalidPIN.
func ValidatePIN(pin []byte) error {
	if err := validateDigits(PIN, pin); err != nil {
		return fmt.Errorf("cie: %w", err)
	}
	return nil
}

// ValidateNewPIN checks a PIN chosen by the holder with the rules of the
// official GUI (§7): exactly 8 ASCII digits, not all equal ("11111111"),
// not an ascending or descending run of consecutive digits ("12345678",
// "87654321"). The error wraps ErrInvalidPIN.
func ValidateNewPIN(pin []byte) error {
	if err := validateNewPIN(pin); err != nil {
		return fmt.Errorf("cie: %w", err)
	}
	return nil
}

func validateDigits(ref PINRef, pin []byte) error {
	if len(pin) != pinLength {
		return fmt.Errorf("%w: the %v must be exactly %d digits, got %d characters", ErrInvalidPIN, ref, pinLength, len(pin))
	}
	for _, c := range pin {
		if c < '0' || c > '9' {
			return fmt.Errorf("%w: the %v must contain digits only", ErrInvalidPIN, ref)
		}
	}
	return nil
}

func validateNewPIN(pin []byte) error {
	if err := validateDigits(PIN, pin); err != nil {
		return err
	}
	equal, up, down := true, true, true
	for i := 1; i < len(pin); i++ {
		equal = equal && pin[i] == pin[0]
		up = up && pin[i] == pin[i-1]+1
		down = down && pin[i] == pin[i-1]-1
	}
	switch {
	case equal:
		return fmt.Errorf("%w: the new PIN must not repeat one digit", ErrInvalidPIN)
	case up || down:
		return fmt.Errorf("%w: the new PIN must not be a run of consecutive digits", ErrInvalidPIN)
	}
	return nil
}

// PINStatus is the state of the PIN or PUK as the card reports it.
type PINStatus struct {
	// Remaining is the number of tries left. When Verified, the card gives
	// no counter; a successful verification resets it, so Remaining is the
	// full count (3 for the PIN, 10 for the PUK).
	Remaining int
	Blocked   bool // no try left
	Verified  bool // verified in the current secure-messaging session
}

// PINStatus reports the PIN state with a VERIFY without data (§7), under
// secure messaging (DH and DAPP run first if needed). It never spends a
// try, so it is retried like a read after a card reset.
func (c *Card) PINStatus(ctx context.Context) (PINStatus, error) {
	return c.refStatus(ctx, PIN)
}

// PUKStatus is PINStatus for the PUK.
func (c *Card) PUKStatus(ctx context.Context) (PINStatus, error) {
	return c.refStatus(ctx, PUK)
}

func (c *Card) refStatus(ctx context.Context, ref PINRef) (PINStatus, error) {
	var st PINStatus
	err := c.run(ctx, "reading "+ref.String()+" status", true, func(ctx context.Context, op *operation) error {
		if err := c.ensureSM(ctx); err != nil {
			return err
		}
		r, err := c.secure(ctx, apdu.Command{INS: insVerify, P2: byte(ref)})
		sw := r.SW
		if err != nil && !bareStatus(err) {
			return err
		}
		switch {
		case sw == apdu.SWOK && err == nil:
			st = PINStatus{Remaining: ref.maxTries(), Verified: true}
			if ref == PIN {
				c.pinOK = true
			}
			return nil
		case sw == apdu.SWOK:
			return err // unauthenticated 9000: do not believe it
		}
		var pe *PINError
		if perr := pinError(ref, sw); errors.As(perr, &pe) {
			st = PINStatus{Remaining: max(pe.Remaining, 0), Blocked: pe.Blocked}
			if ref == PIN {
				c.pinOK = false
			}
			return nil
		}
		if err != nil {
			return err
		}
		return fmt.Errorf("reading %v status: %w", ref, sw)
	})
	return st, err
}

// VerifyPIN verifies the holder's PIN (VERIFY 00 20 00 81, §7) under secure
// messaging, which it establishes first if needed. The PIN is checked with
// ValidatePIN before anything is sent. A wrong PIN returns a *PINError with
// the tries left; the command is never retried.
func (c *Card) VerifyPIN(ctx context.Context, pin []byte) error {
	return c.verify(ctx, PIN, pin)
}

// VerifyPUK verifies the PUK (VERIFY 00 20 00 82), like VerifyPIN.
func (c *Card) VerifyPUK(ctx context.Context, puk []byte) error {
	return c.verify(ctx, PUK, puk)
}

func (c *Card) verify(ctx context.Context, ref PINRef, secret []byte) error {
	if err := validateDigits(ref, secret); err != nil {
		return fmt.Errorf("cie: verifying %v: %w", ref, err)
	}
	return c.run(ctx, "verifying "+ref.String(), false, func(ctx context.Context, op *operation) error {
		if err := c.ensureSM(ctx); err != nil {
			return err
		}
		return c.verifyLocked(ctx, op, ref, secret)
	})
}

// verifyLocked sends VERIFY with data; the operation is committed (never
// retried) from here on.
func (c *Card) verifyLocked(ctx context.Context, op *operation, ref PINRef, secret []byte) error {
	op.commit()
	r, err := c.secure(ctx, apdu.Command{INS: insVerify, P2: byte(ref), Data: secret})
	return c.pinAnswer(ref, r.SW, err, func() {
		if ref == PIN {
			c.pinOK = true
		}
	})
}

// pinAnswer maps the answer of a PIN command: success runs ok, PIN status
// words become *PINError / ErrInvalidPIN (also when they came bare), other
// failures are returned as they are.
func (c *Card) pinAnswer(ref PINRef, sw apdu.StatusWord, err error, ok func()) error {
	if err != nil && !bareStatus(err) {
		return err
	}
	if perr := pinError(ref, sw); perr != nil {
		if ref == PIN {
			c.pinOK = false
		}
		return perr
	}
	if err != nil {
		return err
	}
	if sw != apdu.SWOK {
		return sw
	}
	ok()
	return nil
}

// ChangePIN replaces the PIN with CHANGE REFERENCE DATA 00 24 00 81
// old‖new (§7); the card checks the old PIN itself (a wrong one spends a
// try and returns a *PINError), so no VERIFY is sent. newPIN must pass
// ValidateNewPIN. Never retried. It does not count as a verification for
// this package: call VerifyPIN before reading the certificate or signing.
func (c *Card) ChangePIN(ctx context.Context, oldPIN, newPIN []byte) error {
	if err := validateDigits(PIN, oldPIN); err != nil {
		return fmt.Errorf("cie: changing PIN: %w", err)
	}
	if err := validateNewPIN(newPIN); err != nil {
		return fmt.Errorf("cie: changing PIN: %w", err)
	}
	return c.run(ctx, "changing PIN", false, func(ctx context.Context, op *operation) error {
		if err := c.ensureSM(ctx); err != nil {
			return err
		}
		data := make([]byte, 0, 2*pinLength)
		data = append(append(data, oldPIN...), newPIN...)
		defer clear(data)
		op.commit()
		r, err := c.secure(ctx, apdu.Command{INS: insChangeReferenceData, P2: byte(PIN), Data: data})
		return c.pinAnswer(PIN, r.SW, err, func() {})
	})
}

// UnblockPIN verifies the PUK, then sets newPIN with RESET RETRY COUNTER
// 00 2C 02 81 (§7), which also resets the PIN try counter. newPIN must pass
// ValidateNewPIN. A wrong PUK returns a *PINError for the PUK. Never retried.
func (c *Card) UnblockPIN(ctx context.Context, puk, newPIN []byte) error {
	if err := validateDigits(PUK, puk); err != nil {
		return fmt.Errorf("cie: unblocking PIN: %w", err)
	}
	if err := validateNewPIN(newPIN); err != nil {
		return fmt.Errorf("cie: unblocking PIN: %w", err)
	}
	return c.run(ctx, "unblocking PIN", false, func(ctx context.Context, op *operation) error {
		if err := c.ensureSM(ctx); err != nil {
			return err
		}
		if err := c.verifyLocked(ctx, op, PUK, puk); err != nil {
			return err
		}
		r, err := c.secure(ctx, apdu.Command{INS: insResetRetryCounter, P1: p1ResetWithNewPIN, P2: byte(PIN), Data: newPIN})
		c.pinOK = false
		if err := c.pinAnswer(PIN, r.SW, err, func() {}); err != nil {
			return fmt.Errorf("resetting the PIN: %w", err)
		}
		return nil
	})
}

// bareStatus reports whether err is secure messaging's bare status word.
func bareStatus(err error) bool { return errors.Is(err, sm.ErrBareStatus) }
