package pkcs11

import (
	"context"
	"errors"
	"slices"

	"github.com/ciedesktop/cie-desktop/cie"
)

// session is an open session on a token. Its fields are guarded by the
// slot's mutex.
type session struct {
	handle SessionHandle
	slot   *slot
	tok    *token
	rw     bool
	find   *findOp
	sign   *signOp
}

// findOp is an active C_FindObjects search: the matches, found at Init.
type findOp struct {
	handles []ObjectHandle
}

// state returns the session state (CK_STATE).
func (ss *session) state() State {
	switch ss.tok.login {
	case loggedUser:
		if ss.rw {
			return CKS_RW_USER_FUNCTIONS
		}
		return CKS_RO_USER_FUNCTIONS
	case loggedSO:
		return CKS_RW_SO_FUNCTIONS
	}
	if ss.rw {
		return CKS_RW_PUBLIC_SESSION
	}
	return CKS_RO_PUBLIC_SESSION
}

// OpenSession opens a session on the slot's token (C_OpenSession); flags
// must include CKF_SERIAL_SESSION. Notification callbacks are not used.
func (m *Module) OpenSession(id SlotID, flags Flags) (SessionHandle, error) {
	if err := m.check(); err != nil {
		return 0, err
	}
	if flags&CKF_SERIAL_SESSION == 0 {
		return 0, CKR_SESSION_PARALLEL_NOT_SUPPORTED
	}
	s, err := m.slot(id)
	if err != nil {
		return 0, err
	}
	m.refresh(m.ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.token(m.ctx)
	if err != nil {
		return 0, err
	}
	rw := flags&CKF_RW_SESSION != 0
	if !rw && t.login == loggedSO {
		return 0, CKR_SESSION_READ_WRITE_SO_EXISTS
	}
	ss := &session{handle: SessionHandle(m.nextSession.Add(1)), slot: s, tok: t, rw: rw}
	if t.sessions == nil {
		t.sessions = map[SessionHandle]*session{}
	}
	t.sessions[ss.handle] = ss
	m.sessMu.Lock()
	m.sessions[ss.handle] = ss
	m.sessMu.Unlock()
	return ss.handle, nil
}

func (m *Module) forget(h SessionHandle) {
	m.sessMu.Lock()
	delete(m.sessions, h)
	m.sessMu.Unlock()
}

// closeLocked ends a session; the last session of a token logs out
// (PKCS#11 base §5.6). The slot's mutex is held.
func (m *Module) closeLocked(ss *session) {
	t := ss.tok
	delete(t.sessions, ss.handle)
	m.forget(ss.handle)
	if len(t.sessions) == 0 && !t.removed {
		t.logout()
	}
}

// CloseSession closes a session (C_CloseSession). Closing a session whose
// card was removed succeeds.
func (m *Module) CloseSession(h SessionHandle) error {
	if err := m.check(); err != nil {
		return err
	}
	m.sessMu.Lock()
	ss := m.sessions[h]
	m.sessMu.Unlock()
	if ss == nil {
		return CKR_SESSION_HANDLE_INVALID
	}
	ss.slot.mu.Lock()
	defer ss.slot.mu.Unlock()
	m.closeLocked(ss)
	return nil
}

// CloseAllSessions closes every session of the slot (C_CloseAllSessions).
func (m *Module) CloseAllSessions(id SlotID) error {
	if err := m.check(); err != nil {
		return err
	}
	s, err := m.slot(id)
	if err != nil {
		return err
	}
	m.sessMu.Lock()
	var mine []*session
	for _, ss := range m.sessions {
		if ss.slot == s {
			mine = append(mine, ss)
		}
	}
	m.sessMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range mine {
		m.closeLocked(ss)
	}
	return nil
}

// withSession runs fn with the session's slot locked. With refresh, the
// readers' state is read first, so that a card removed since the last call
// is noticed. A session whose card left answers CKR_DEVICE_REMOVED once
// and is then closed.
func (m *Module) withSession(h SessionHandle, refresh bool, fn func(*session, *token) error) error {
	if err := m.check(); err != nil {
		return err
	}
	m.sessMu.Lock()
	ss := m.sessions[h]
	m.sessMu.Unlock()
	if ss == nil {
		return CKR_SESSION_HANDLE_INVALID
	}
	if refresh {
		m.refresh(m.ctx)
	}
	ss.slot.mu.Lock()
	defer ss.slot.mu.Unlock()
	if err := m.check(); err != nil {
		return err // C_Finalize ran meanwhile: it dropped the token
	}
	if ss.tok.removed {
		m.forget(h)
		return CKR_DEVICE_REMOVED
	}
	err := fn(ss, ss.tok)
	if cerr := m.check(); cerr != nil && err != nil {
		return cerr
	}
	if ss.tok.removed {
		m.forget(h)
		return CKR_DEVICE_REMOVED
	}
	return err
}

// SessionInfo returns CK_SESSION_INFO (C_GetSessionInfo).
func (m *Module) SessionInfo(h SessionHandle) (SessionInfo, error) {
	var in SessionInfo
	err := m.withSession(h, true, func(ss *session, t *token) error {
		in.SlotID = ss.slot.id
		in.State = ss.state()
		in.Flags = CKF_SERIAL_SESSION
		if ss.rw {
			in.Flags |= CKF_RW_SESSION
		}
		return nil
	})
	return in, err
}

// checkPIN checks the format of a PIN or PUK before the card sees it: 8
// ASCII digits (§7). A wrong length is CKR_PIN_LEN_RANGE, other characters
// CKR_PIN_INVALID; no try is spent on either.
func checkPIN(pin []byte) error {
	if len(pin) != pinLen {
		return CKR_PIN_LEN_RANGE
	}
	if cie.ValidatePIN(pin) != nil {
		return CKR_PIN_INVALID
	}
	return nil
}

// checkNewPIN adds the rules for a PIN chosen by the holder (not one digit
// repeated, not a run of consecutive digits).
func checkNewPIN(pin []byte) error {
	if err := checkPIN(pin); err != nil {
		return err
	}
	if cie.ValidateNewPIN(pin) != nil {
		return CKR_PIN_INVALID
	}
	return nil
}

// pinFail maps the error of a PIN command, updating the counter the
// token flags show.
func (t *token) pinFail(c *counter, err error, what string) error {
	var pe *cie.PINError
	if errors.As(err, &pe) {
		if pe.Remaining < 0 {
			c.known = false
		} else {
			c.set(pe.Remaining, pe.Blocked)
		}
		t.persist(false)
		t.slot.m.log.Info("pkcs11: "+what, "slot", t.slot.id, "err", err)
		if pe.Blocked {
			return CKR_PIN_LOCKED
		}
		return CKR_PIN_INCORRECT
	}
	return t.fail(err, what)
}

// fail maps a card error to its RV: a removed card drops the token
// (CKR_DEVICE_REMOVED), a lost PIN verification logs out
// (CKR_USER_NOT_LOGGED_IN), a PIN format the card refused is
// CKR_PIN_INVALID, anything else the card or reader did is
// CKR_DEVICE_ERROR.
func (t *token) fail(err error, what string) error {
	if cerr := t.slot.m.check(); cerr != nil {
		return cerr // the card work failed because C_Finalize closed it
	}
	var rv RV
	if errors.As(err, &rv) {
		return rv
	}
	t.slot.m.log.Info("pkcs11: "+what, "slot", t.slot.id, "err", err)
	switch {
	case removed(err):
		t.slot.dropToken("card removed")
		return CKR_DEVICE_REMOVED
	case isCardChanged(err):
		return t.cardChanged()
	case errors.Is(err, cie.ErrPINRequired):
		t.loseLogin()
		return CKR_USER_NOT_LOGGED_IN
	case errors.Is(err, cie.ErrInvalidPIN):
		return CKR_PIN_INVALID
	case errors.Is(err, context.Canceled):
		return CKR_FUNCTION_CANCELED
	}
	return CKR_DEVICE_ERROR
}

// Login logs the user in with the PIN (CKU_USER), or the security officer
// with the PUK (CKU_SO) (C_Login). The PIN's format is checked first. On
// the first user login of a card whose certificate is not cached, the
// certificate is read and cached, and the objects appear. The PIN is not
// kept; the PUK is kept in memory while the SO is logged in, for
// C_InitPIN.
//
// A nil pin is the protected authentication path (C_Login with a NULL
// PIN): with a PINPrompter the module's dialog asks the user PIN (see
// authenticate); without one it is CKR_ARGUMENTS_BAD. The dialog asks only
// the PIN: the PUK is always an argument (CKR_FUNCTION_NOT_SUPPORTED).
func (m *Module) Login(h SessionHandle, user UserType, pin []byte) error {
	if pin == nil {
		switch {
		case m.cfg.PIN == nil:
			return CKR_ARGUMENTS_BAD
		case user == CKU_SO:
			return CKR_FUNCTION_NOT_SUPPORTED
		case user != CKU_USER:
			return m.Login(h, user, []byte{}) // the same answers as with a PIN
		}
		m.log.Debug("pkcs11: C_Login without a PIN (protected authentication path)", "session", h)
		return m.authenticate(h, true)
	}
	return m.withSession(h, true, func(ss *session, t *token) error {
		want := loggedUser
		switch user {
		case CKU_USER:
		case CKU_SO:
			want = loggedSO
		case CKU_CONTEXT_SPECIFIC:
			return CKR_OPERATION_NOT_INITIALIZED // no key needs it (CKA_ALWAYS_AUTHENTICATE false)
		default:
			return CKR_USER_TYPE_INVALID
		}
		switch t.login {
		case want:
			return CKR_USER_ALREADY_LOGGED_IN
		case loggedOut:
		default:
			return CKR_USER_ANOTHER_ALREADY_LOGGED_IN
		}
		if want == loggedSO {
			for _, o := range t.sessions {
				if !o.rw {
					return CKR_SESSION_READ_ONLY_EXISTS
				}
			}
		}
		if err := checkPIN(pin); err != nil {
			return err
		}
		if want == loggedSO {
			if err := t.card.VerifyPUK(m.ctx, pin); err != nil {
				return t.pinFail(&t.puk, err, "verifying the PUK")
			}
			t.puk.ok()
			t.login = loggedSO
			t.soPUK = slices.Clone(pin)
			t.persist(false)
			return nil
		}
		return t.loginUser(m.ctx, pin)
	})
}

// loginUser verifies the user PIN, whose format was checked, and logs the
// user in; the certificate is read and cached if it is not known yet. The
// slot's mutex is held.
func (t *token) loginUser(ctx context.Context, pin []byte) error {
	if err := t.card.VerifyPIN(ctx, pin); err != nil {
		return t.pinFail(&t.pin, err, "verifying the PIN")
	}
	t.pin.ok()
	t.login = loggedUser
	if t.cert == nil {
		cert, err := t.card.Certificate(ctx)
		if err != nil {
			t.logout()
			return t.fail(err, "reading the certificate")
		}
		t.setCert(cert)
		t.storeCached(ctx)
		return nil
	}
	t.persist(true) // the counters, a record removed (unpaired) meanwhile, the first record of a legacy entry
	return nil
}

// Logout logs out (C_Logout): the card's secure-messaging session, and
// with it the PIN verification, is dropped.
func (m *Module) Logout(h SessionHandle) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		if t.login == loggedOut {
			return CKR_USER_NOT_LOGGED_IN
		}
		t.logout()
		return nil
	})
}

// InitPIN sets a new PIN and unblocks it (C_InitPIN), as the SO: VERIFY
// PUK then RESET RETRY COUNTER (cie.Card.UnblockPIN).
func (m *Module) InitPIN(h SessionHandle, pin []byte) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		if t.login != loggedSO {
			return CKR_USER_NOT_LOGGED_IN
		}
		if err := checkNewPIN(pin); err != nil {
			return err
		}
		if err := t.card.UnblockPIN(m.ctx, t.soPUK, pin); err != nil {
			var pe *cie.PINError
			if errors.As(err, &pe) && pe.Ref == cie.PUK {
				return t.pinFail(&t.puk, err, "unblocking the PIN")
			}
			return t.pinFail(&t.pin, err, "unblocking the PIN")
		}
		t.pin.ok()
		t.persist(false)
		return nil
	})
}

// SetPIN changes the user PIN (C_SetPIN) with CHANGE REFERENCE DATA; the
// card checks the old PIN (a wrong one spends a try). It works logged in
// or not, in a read/write session. The PUK cannot be changed.
func (m *Module) SetPIN(h SessionHandle, oldPIN, newPIN []byte) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		if !ss.rw {
			return CKR_SESSION_READ_ONLY
		}
		if t.login == loggedSO {
			return CKR_FUNCTION_NOT_SUPPORTED
		}
		if err := checkPIN(oldPIN); err != nil {
			return err
		}
		if err := checkNewPIN(newPIN); err != nil {
			return err
		}
		if err := t.card.ChangePIN(m.ctx, oldPIN, newPIN); err != nil {
			return t.pinFail(&t.pin, err, "changing the PIN")
		}
		t.pin.ok()
		t.persist(false)
		return nil
	})
}

// visible returns the objects the session may see: public ones, and
// private ones when the user is logged in.
func (t *token) visible() []*object {
	var out []*object
	for _, o := range t.objects {
		if !o.private || t.login == loggedUser {
			out = append(out, o)
		}
	}
	return out
}

// object returns the visible object with handle h.
func (t *token) object(h ObjectHandle) *object {
	for _, o := range t.visible() {
		if o.handle == h {
			return o
		}
	}
	return nil
}

// FindObjectsInit starts a search for the objects matching tmpl
// (C_FindObjectsInit).
func (m *Module) FindObjectsInit(h SessionHandle, tmpl []Attribute) error {
	return m.withSession(h, true, func(ss *session, t *token) error {
		if ss.find != nil {
			return CKR_OPERATION_ACTIVE
		}
		op := &findOp{handles: []ObjectHandle{}}
		for _, o := range t.visible() {
			if o.matches(tmpl) {
				op.handles = append(op.handles, o.handle)
			}
		}
		ss.find = op
		return nil
	})
}

// FindObjects returns up to max further matches (C_FindObjects).
func (m *Module) FindObjects(h SessionHandle, max int) ([]ObjectHandle, error) {
	var out []ObjectHandle
	err := m.withSession(h, false, func(ss *session, t *token) error {
		if ss.find == nil {
			return CKR_OPERATION_NOT_INITIALIZED
		}
		n := min(max, len(ss.find.handles))
		out = slices.Clone(ss.find.handles[:n])
		ss.find.handles = ss.find.handles[n:]
		return nil
	})
	return out, err
}

// FindObjectsFinal ends the search (C_FindObjectsFinal).
func (m *Module) FindObjectsFinal(h SessionHandle) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		if ss.find == nil {
			return CKR_OPERATION_NOT_INITIALIZED
		}
		ss.find = nil
		return nil
	})
}

// GetAttributeValue answers a template for an object
// (C_GetAttributeValue), with the two-call size protocol: see
// TemplateEntry.
func (m *Module) GetAttributeValue(h SessionHandle, obj ObjectHandle, tmpl []TemplateEntry) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		o := t.object(obj)
		if o == nil {
			return CKR_OBJECT_HANDLE_INVALID
		}
		return o.fill(tmpl)
	})
}

// ObjectSize checks the object handle (C_GetObjectSize); the size is not
// meaningful for objects on a card, so it is UnavailableInformation.
func (m *Module) ObjectSize(h SessionHandle, obj ObjectHandle) (uint, error) {
	err := m.withSession(h, false, func(ss *session, t *token) error {
		if t.object(obj) == nil {
			return CKR_OBJECT_HANDLE_INVALID
		}
		return nil
	})
	return UnavailableInformation, err
}

// SessionCancel ends the session's active operations named by flags
// (CKF_SIGN, CKF_FIND_OBJECTS) (C_SessionCancel, PKCS#11 3.0).
func (m *Module) SessionCancel(h SessionHandle, flags Flags) error {
	return m.withSession(h, false, func(ss *session, t *token) error {
		if flags&CKF_SIGN != 0 {
			ss.sign = nil
		}
		if flags&CKF_FIND_OBJECTS != 0 {
			ss.find = nil
		}
		return nil
	})
}
