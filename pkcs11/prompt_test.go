package pkcs11_test

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// cancel is the scripted answer that cancels the dialog.
const cancel = "<cancel>"

// scripted is a PINPrompter that answers from a list (then cancels) and
// records what each dialog was asked to show.
type scripted struct {
	mu      sync.Mutex
	answers []string
	asked   []pkcs11.PINRequest
	locked  []pkcs11.PINRequest
	during  func() // runs inside the dialog, to check what the module allows meanwhile
	err     error  // a broken dialog program
}

func (s *scripted) PromptPIN(ctx context.Context, r pkcs11.PINRequest) ([]byte, error) {
	s.mu.Lock()
	s.asked = append(s.asked, r)
	during := s.during
	s.mu.Unlock()
	if during != nil {
		during()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return nil, s.err
	}
	if len(s.answers) == 0 || s.answers[0] == cancel {
		return nil, pkcs11.ErrPINCancelled
	}
	a := s.answers[0]
	s.answers = s.answers[1:]
	return []byte(a), nil
}

func (s *scripted) PINLocked(ctx context.Context, r pkcs11.PINRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.locked = append(s.locked, r)
}

func (s *scripted) requests() []pkcs11.PINRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pkcs11.PINRequest(nil), s.asked...)
}

// onDemand is a paired card (certificate cached by a first login in
// "another process") and a Module with the scripted dialog, with a public
// session open on it.
func onDemand(t *testing.T, cfg ciesim.Config, answers ...string) (*env, *ciesim.Card, *scripted, *pkcs11.Module, pkcs11.SessionHandle) {
	t.Helper()
	card := newCard(t, cfg)
	e := newEnv(t, card)
	pairing := e.module(pkcs11.Config{})
	ph := e.open(pairing)
	login(t, pairing, ph)
	pairing.Close()
	p := &scripted{answers: answers}
	m := e.module(pkcs11.Config{PIN: p})
	return e, card, p, m, e.open(m)
}

// signOnce runs C_SignInit + C_Sign with SHA256-RSA-PKCS on the private
// key found without a login.
func signOnce(t *testing.T, m *pkcs11.Module, h pkcs11.SessionHandle, msg string) ([]byte, error) {
	t.Helper()
	keys := find(t, m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))
	if len(keys) != 1 {
		t.Fatalf("%d private keys visible without a login, want 1", len(keys))
	}
	if err := m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, keys[0]); err != nil {
		t.Fatalf("SignInit without a login: %v", err)
	}
	sig := make([]byte, 256)
	n, err := m.Sign(h, []byte(msg), sig, false)
	return sig[:n], err
}

func verify(t *testing.T, card *ciesim.Card, msg string, sig []byte) {
	t.Helper()
	d := sha256.Sum256([]byte(msg))
	if err := rsa.VerifyPKCS1v15(certOf(card).PublicKey.(*rsa.PublicKey), crypto.SHA256, d[:], sig); err != nil {
		t.Fatalf("the signature does not verify: %v", err)
	}
}

// TestSignOnDemand: what a browser does. It finds certificate, public key
// and private key without logging in and signs; the module asks the PIN
// once, through its dialog, and later signatures need none.
func TestSignOnDemand(t *testing.T) {
	_, card, p, m, h := onDemand(t, ciesim.Config{}, goodPIN)
	ti, err := m.TokenInfo(1)
	if err != nil {
		t.Fatal(err)
	}
	// No LOGIN_REQUIRED: NSS must not log in just to list certificates.
	if ti.Flags&pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH == 0 || ti.Flags&pkcs11.CKF_LOGIN_REQUIRED != 0 {
		t.Fatalf("token flags %#x: want PROTECTED_AUTHENTICATION_PATH without LOGIN_REQUIRED", ti.Flags)
	}
	keys := find(t, m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))
	if len(keys) != 1 || attr(t, m, h, keys[0], pkcs11.CKA_PRIVATE)[0] != 0 {
		t.Fatal("the private key is not a public object")
	}
	if len(find(t, m, h)) != 3 {
		t.Fatal("certificate, public key and private key are not all visible")
	}
	// A length query opens no dialog.
	if err := m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, keys[0]); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Sign(h, []byte("x"), nil, true); err != nil || n != 256 {
		t.Fatalf("length query: %d %v", n, err)
	}
	if _, err := m.Sign(h, []byte("x"), make([]byte, 10), false); !errors.Is(err, pkcs11.CKR_BUFFER_TOO_SMALL) {
		t.Fatalf("short buffer: %v", err)
	}
	if len(p.requests()) != 0 {
		t.Fatal("a dialog for a call that could not sign")
	}
	m.SessionCancel(h, pkcs11.CKF_SIGN)

	sig, err := signOnce(t, m, h, "first")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, card, "first", sig)
	asked := p.requests()
	if len(asked) != 1 {
		t.Fatalf("%d dialogs, want 1", len(asked))
	}
	if r := asked[0]; r.Label != "MARIO ROSSI" || r.TriesLeft != 3 || r.Retry != pkcs11.PINFirstTry || r.Slot != 1 || r.Serial == "" {
		t.Fatalf("dialog %+v", r)
	}
	before := apdus(card)
	sig, err = signOnce(t, m, h, "second")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, card, "second", sig)
	if len(p.requests()) != 1 {
		t.Fatal("the PIN was asked again for the second signature")
	}
	if n := apdus(card) - before; n > 3 {
		t.Errorf("a further signature cost %d APDUs", n)
	}
	if in, _ := m.SessionInfo(h); in.State != pkcs11.CKS_RW_USER_FUNCTIONS {
		t.Errorf("session state %v after the dialog", in.State)
	}
}

// TestSignOnDemandWrongPIN: a wrong PIN spends one try and is never
// resent; the next dialog says it was wrong and shows the new count.
func TestSignOnDemandWrongPIN(t *testing.T) {
	t.Run("then right", func(t *testing.T) {
		_, card, p, m, h := onDemand(t, ciesim.Config{}, "11112222", goodPIN)
		sig, err := signOnce(t, m, h, "msg")
		if err != nil {
			t.Fatal(err)
		}
		verify(t, card, "msg", sig)
		asked := p.requests()
		if len(asked) != 2 || asked[1].Retry != pkcs11.PINWrong || asked[1].TriesLeft != 2 {
			t.Fatalf("dialogs %+v", asked)
		}
		if pin, _ := card.Tries(); pin != 3 {
			t.Fatalf("%d tries after the right PIN", pin)
		}
	})
	t.Run("then cancel", func(t *testing.T) {
		_, card, p, m, h := onDemand(t, ciesim.Config{}, "11112222", cancel)
		_, err := signOnce(t, m, h, "msg")
		wantRV(t, err, pkcs11.CKR_FUNCTION_CANCELED)
		if pin, _ := card.Tries(); pin != 2 {
			t.Fatalf("%d tries left, want 2 (one wrong entry, never resent)", pin)
		}
		if asked := p.requests(); len(asked) != 2 || asked[1].TriesLeft != 2 {
			t.Fatalf("dialogs %+v", asked)
		}
		_, err = m.Sign(h, []byte("x"), make([]byte, 256), false)
		wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED) // the cancelled signature ended
		ti, _ := m.TokenInfo(1)
		if ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW == 0 {
			t.Fatalf("flags %#x: no COUNT_LOW after a wrong PIN", ti.Flags)
		}
	})
	t.Run("malformed entries are not sent", func(t *testing.T) {
		_, card, p, m, h := onDemand(t, ciesim.Config{}, "1234", "1234567a", goodPIN)
		if _, err := signOnce(t, m, h, "msg"); err != nil {
			t.Fatal(err)
		}
		asked := p.requests()
		if len(asked) != 3 || asked[1].Retry != pkcs11.PINMalformed || asked[2].Retry != pkcs11.PINMalformed || asked[2].TriesLeft != 3 {
			t.Fatalf("dialogs %+v", asked)
		}
		if pin, _ := card.Tries(); pin != 3 {
			t.Fatalf("%d tries", pin)
		}
	})
	t.Run("last try, then blocked", func(t *testing.T) {
		_, card, p, m, h := onDemand(t, ciesim.Config{}, "11112222", "11112222", "11112222")
		_, err := signOnce(t, m, h, "msg")
		wantRV(t, err, pkcs11.CKR_PIN_LOCKED)
		asked := p.requests()
		if len(asked) != 3 || asked[0].TriesLeft != 3 || asked[1].TriesLeft != 2 || asked[2].TriesLeft != 1 {
			t.Fatalf("dialogs %+v", asked)
		}
		if len(p.locked) != 1 {
			t.Fatalf("the blocked PIN was told %d times", len(p.locked))
		}
		if pin, _ := card.Tries(); pin != 0 {
			t.Fatalf("%d tries", pin)
		}
		// Blocked: no PIN dialog any more, only the message.
		_, err = signOnce(t, m, h, "msg")
		wantRV(t, err, pkcs11.CKR_PIN_LOCKED)
		if len(p.requests()) != 3 || len(p.locked) != 2 {
			t.Fatalf("%d dialogs, %d messages", len(p.requests()), len(p.locked))
		}
	})
}

// TestDialogShowsTheCardsCounter: another application spent a try since
// the module opened the card; the dialog shows the card's count.
func TestDialogShowsTheCardsCounter(t *testing.T) {
	e, _, p, m, h := onDemand(t, ciesim.Config{}, goodPIN)
	if _, err := m.TokenInfo(1); err != nil { // the module opens the card: 3 tries
		t.Fatal(err)
	}
	other := e.module(pkcs11.Config{})
	wantRV(t, other.Login(e.open(other), pkcs11.CKU_USER, []byte("11112222")), pkcs11.CKR_PIN_INCORRECT)
	other.Close()
	if _, err := signOnce(t, m, h, "msg"); err != nil {
		t.Fatal(err)
	}
	if asked := p.requests(); asked[0].TriesLeft != 2 {
		t.Fatalf("the dialog showed %d tries, the card had 2", asked[0].TriesLeft)
	}
}

// TestDialogDoesNotBlockTheToken: while the dialog is open, other calls on
// the token (a browser polls C_GetTokenInfo) are answered.
func TestDialogDoesNotBlockTheToken(t *testing.T) {
	_, _, p, m, h := onDemand(t, ciesim.Config{}, goodPIN)
	other, err := m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	p.during = func() {
		go func() {
			_, err := m.TokenInfo(1)
			if err == nil {
				_, err = m.SlotList(true)
			}
			if err == nil {
				_ = find(t, m, other, classAttr(pkcs11.CKO_CERTIFICATE))
			}
			answered <- err
		}()
		select {
		case err := <-answered:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Error("C_GetTokenInfo blocked while the dialog was open")
		}
	}
	if _, err := signOnce(t, m, h, "msg"); err != nil {
		t.Fatal(err)
	}
}

// TestOneDialogForConcurrentSignatures: two sessions sign at once (a
// browser opening two connections); the user is asked once.
func TestOneDialogForConcurrentSignatures(t *testing.T) {
	_, card, p, m, h := onDemand(t, ciesim.Config{}, goodPIN, goodPIN)
	h2 := func() pkcs11.SessionHandle {
		s, err := m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}()
	var wg sync.WaitGroup
	for i, s := range []pkcs11.SessionHandle{h, h2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			msg := []string{"one", "two"}[i]
			sig, err := signOnce(t, m, s, msg)
			if err != nil {
				t.Error(err)
				return
			}
			verify(t, card, msg, sig)
		}()
	}
	wg.Wait()
	if n := len(p.requests()); n != 1 {
		t.Fatalf("%d dialogs for two simultaneous signatures", n)
	}
}

func TestLoginWithTheDialog(t *testing.T) {
	_, card, p, m, h := onDemand(t, ciesim.Config{}, goodPIN)
	wantRV(t, m.Login(h, pkcs11.CKU_SO, nil), pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
	if err := m.Login(h, pkcs11.CKU_USER, nil); err != nil { // C_Login(NULL): protected authentication path
		t.Fatal(err)
	}
	wantRV(t, m.Login(h, pkcs11.CKU_USER, nil), pkcs11.CKR_USER_ALREADY_LOGGED_IN)
	if len(p.requests()) != 1 {
		t.Fatalf("%d dialogs", len(p.requests()))
	}
	sig, err := signOnce(t, m, h, "msg")
	if err != nil {
		t.Fatal(err)
	}
	verify(t, card, "msg", sig)
	if len(p.requests()) != 1 {
		t.Fatal("asked again after C_Login")
	}
	// C_Login with the PIN, as pkcs11-tool and OpenSSL do, opens no dialog.
	if err := m.Logout(h); err != nil {
		t.Fatal(err)
	}
	login(t, m, h)
	if len(p.requests()) != 1 {
		t.Fatal("C_Login with a PIN opened the dialog")
	}
}

func TestLoginNullPINWithoutDialog(t *testing.T) {
	e := newEnv(t, newCard(t, ciesim.Config{}))
	h := e.open(e.m)
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, nil), pkcs11.CKR_ARGUMENTS_BAD)
	ti, _ := e.m.TokenInfo(1)
	if ti.Flags&pkcs11.CKF_PROTECTED_AUTHENTICATION_PATH != 0 || ti.Flags&pkcs11.CKF_LOGIN_REQUIRED == 0 {
		t.Fatalf("flags %#x without a dialog: want LOGIN_REQUIRED, no PROTECTED_AUTHENTICATION_PATH", ti.Flags)
	}
}

// TestEmptyAnswersEnd: a dialog program that answers at once with an
// empty entry, again and again, ends the signature instead of looping.
func TestEmptyAnswersEnd(t *testing.T) {
	_, card, p, m, h := onDemand(t, ciesim.Config{}, "", "", "", "", "", "", "", "")
	_, err := signOnce(t, m, h, "msg")
	wantRV(t, err, pkcs11.CKR_PIN_INVALID)
	if n := len(p.requests()); n != 5 {
		t.Fatalf("%d dialogs, want 5", n)
	}
	if pin, _ := card.Tries(); pin != 3 {
		t.Fatalf("%d tries", pin)
	}
}

func TestBrokenDialog(t *testing.T) {
	_, card, p, m, h := onDemand(t, ciesim.Config{})
	p.err = errors.New("pinentry: no display")
	_, err := signOnce(t, m, h, "msg")
	wantRV(t, err, pkcs11.CKR_FUNCTION_FAILED)
	if pin, _ := card.Tries(); pin != 3 {
		t.Fatalf("%d tries", pin)
	}
}

// TestCardRemovedDuringDialog: the PIN typed for a card that left is not
// sent anywhere.
func TestCardRemovedDuringDialog(t *testing.T) {
	e, card, p, m, h := onDemand(t, ciesim.Config{}, goodPIN)
	p.during = func() { e.src.Remove(reader1) }
	_, err := signOnce(t, m, h, "msg")
	wantRV(t, err, pkcs11.CKR_DEVICE_REMOVED)
	if pin, _ := card.Tries(); pin != 3 {
		t.Fatalf("%d tries", pin)
	}
}
