package pkcs11_test

import (
	"testing"

	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// TestPINFormatCheckedBeforeTheCard: a PIN of the wrong length or with
// non-digits never reaches the card, so no try is spent.
func TestPINFormatCheckedBeforeTheCard(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	before := apdus(card)
	for _, tc := range []struct {
		pin  string
		want pkcs11.RV
	}{
		{"1234", pkcs11.CKR_PIN_LEN_RANGE}, // the reference's "last 4 digits"
		{"123456789", pkcs11.CKR_PIN_LEN_RANGE},
		{"", pkcs11.CKR_PIN_LEN_RANGE},
		{"1234567a", pkcs11.CKR_PIN_INVALID},
		{"1234 678", pkcs11.CKR_PIN_INVALID},
	} {
		wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte(tc.pin)), tc.want)
		wantRV(t, e.m.Login(h, pkcs11.CKU_SO, []byte(tc.pin)), tc.want)
	}
	if n := apdus(card) - before; n != 0 {
		t.Errorf("malformed PINs sent %d APDUs", n)
	}
	if pin, puk := card.Tries(); pin != 3 || puk != 10 {
		t.Fatalf("tries %d/%d", pin, puk)
	}
	ti, _ := e.m.TokenInfo(1)
	if ti.Flags&pkcs11.CKF_USER_PIN_COUNT_LOW != 0 {
		t.Error("COUNT_LOW after malformed PINs")
	}
	wantRV(t, e.m.Login(h, pkcs11.CKU_CONTEXT_SPECIFIC, []byte(goodPIN)), pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	wantRV(t, e.m.Logout(h), pkcs11.CKR_USER_NOT_LOGGED_IN)
}

func TestWrongPINThenRight(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte("11223344")), pkcs11.CKR_PIN_INCORRECT)
	if pin, _ := card.Tries(); pin != 2 {
		t.Fatalf("tries %d after one wrong PIN", pin)
	}
	login(t, e.m, h)
	ti, _ := e.m.TokenInfo(1)
	if ti.Flags&(pkcs11.CKF_USER_PIN_COUNT_LOW|pkcs11.CKF_USER_PIN_FINAL_TRY) != 0 {
		t.Errorf("flags %#x after a successful login", ti.Flags)
	}
}

func TestSetPIN(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	ro, _ := e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
	wantRV(t, e.m.SetPIN(ro, []byte(goodPIN), []byte("24681357")), pkcs11.CKR_SESSION_READ_ONLY)
	h := e.open(e.m)
	before := apdus(card)
	wantRV(t, e.m.SetPIN(h, []byte(goodPIN), []byte("11111111")), pkcs11.CKR_PIN_INVALID)
	wantRV(t, e.m.SetPIN(h, []byte(goodPIN), []byte("12345678")), pkcs11.CKR_PIN_INVALID)
	wantRV(t, e.m.SetPIN(h, []byte(goodPIN), []byte("1357")), pkcs11.CKR_PIN_LEN_RANGE)
	wantRV(t, e.m.SetPIN(h, []byte("123"), []byte("24681357")), pkcs11.CKR_PIN_LEN_RANGE)
	if apdus(card) != before {
		t.Fatal("invalid PINs reached the card")
	}
	// Not logged in: the card checks the old PIN itself.
	wantRV(t, e.m.SetPIN(h, []byte("00000000"), []byte("24681357")), pkcs11.CKR_PIN_INCORRECT)
	if pin, _ := card.Tries(); pin != 2 {
		t.Fatalf("a wrong old PIN did not count: %d tries", pin)
	}
	if err := e.m.SetPIN(h, []byte(goodPIN), []byte("24681357")); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_PIN_INCORRECT)
	if err := e.m.Login(h, pkcs11.CKU_USER, []byte("24681357")); err != nil {
		t.Fatalf("login with the new PIN: %v", err)
	}
	// Logged in, again.
	if err := e.m.SetPIN(h, []byte("24681357"), []byte("97531864")); err != nil {
		t.Fatal(err)
	}
}

// TestUnblockWithPUK: three wrong PINs lock it; the SO logs in with the
// PUK and C_InitPIN sets a new PIN, which then works.
func TestUnblockWithPUK(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	for range 3 {
		e.m.Login(h, pkcs11.CKU_USER, []byte("99999999"))
	}
	wantRV(t, e.m.Login(h, pkcs11.CKU_USER, []byte(goodPIN)), pkcs11.CKR_PIN_LOCKED)
	wantRV(t, e.m.InitPIN(h, []byte("24681357")), pkcs11.CKR_USER_NOT_LOGGED_IN)

	wantRV(t, e.m.Login(h, pkcs11.CKU_SO, []byte("00000000")), pkcs11.CKR_PIN_INCORRECT)
	if _, puk := card.Tries(); puk != 9 {
		t.Fatalf("PUK tries %d", puk)
	}
	ti, _ := e.m.TokenInfo(1)
	if ti.Flags&pkcs11.CKF_SO_PIN_COUNT_LOW == 0 {
		t.Errorf("no SO_PIN_COUNT_LOW after a wrong PUK: %#x", ti.Flags)
	}
	if err := e.m.Login(h, pkcs11.CKU_SO, []byte(goodPUK)); err != nil {
		t.Fatal(err)
	}
	wantRV(t, e.m.InitPIN(h, []byte("1234")), pkcs11.CKR_PIN_LEN_RANGE)
	wantRV(t, e.m.InitPIN(h, []byte("22222222")), pkcs11.CKR_PIN_INVALID)
	wantRV(t, e.m.SetPIN(h, []byte(goodPUK), []byte("13572468")), pkcs11.CKR_FUNCTION_NOT_SUPPORTED)
	if err := e.m.InitPIN(h, []byte("24681357")); err != nil {
		t.Fatal(err)
	}
	ti, _ = e.m.TokenInfo(1)
	if ti.Flags&(pkcs11.CKF_USER_PIN_LOCKED|pkcs11.CKF_SO_PIN_COUNT_LOW) != 0 {
		t.Errorf("flags %#x after unblocking", ti.Flags)
	}
	if err := e.m.Logout(h); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Login(h, pkcs11.CKU_USER, []byte("24681357")); err != nil {
		t.Fatalf("login with the new PIN: %v", err)
	}
	if pin, puk := card.Tries(); pin != 3 || puk != 10 {
		t.Fatalf("tries %d/%d", pin, puk)
	}
}
