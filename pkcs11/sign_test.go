package pkcs11_test

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"sync"
	"testing"

	"github.com/ciedesktop/cie-desktop/cie"
	"github.com/ciedesktop/cie-desktop/internal/ciesim"
	"github.com/ciedesktop/cie-desktop/pkcs11"
)

// signEnv is a logged-in session with the private key's handle.
func signEnv(t *testing.T) (*env, *ciesim.Card, pkcs11.SessionHandle, pkcs11.ObjectHandle) {
	t.Helper()
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	h := e.open(e.m)
	login(t, e.m, h)
	return e, card, h, find(t, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]
}

func TestMechanisms(t *testing.T) {
	e := newEnv(t, newCard(t, ciesim.Config{}))
	list, err := e.m.MechanismList(1)
	if err != nil {
		t.Fatal(err)
	}
	want := []pkcs11.MechanismType{pkcs11.CKM_RSA_PKCS, pkcs11.CKM_SHA1_RSA_PKCS, pkcs11.CKM_SHA224_RSA_PKCS,
		pkcs11.CKM_SHA256_RSA_PKCS, pkcs11.CKM_SHA384_RSA_PKCS, pkcs11.CKM_SHA512_RSA_PKCS}
	if fmt.Sprint(list) != fmt.Sprint(want) {
		t.Fatalf("mechanisms %v, want %v", list, want)
	}
	for _, m := range list {
		in, err := e.m.MechanismInfo(1, m)
		if err != nil {
			t.Fatal(err)
		}
		if in.MinKeySize != 2048 || in.MaxKeySize != 2048 || in.Flags != pkcs11.CKF_HW|pkcs11.CKF_SIGN {
			t.Errorf("%v: %+v, want 2048..2048 HW|SIGN", m, in)
		}
	}
	for _, m := range []pkcs11.MechanismType{pkcs11.CKM_RSA_PKCS_PSS, pkcs11.CKM_SHA256_RSA_PKCS_PSS, pkcs11.CKM_RSA_X_509, pkcs11.CKM_MD5_RSA_PKCS} {
		_, err := e.m.MechanismInfo(1, m)
		wantRV(t, err, pkcs11.CKR_MECHANISM_INVALID)
	}
	_, err = e.m.MechanismList(2)
	wantRV(t, err, pkcs11.CKR_TOKEN_NOT_PRESENT)
}

// TestSignatureVerifies signs with every mechanism, in one part and in
// several, and checks the signature the way a relying party does: against
// the certificate's key with the standard DigestInfo of the hash.
func TestSignatureVerifies(t *testing.T) {
	e, card, h, key := signEnv(t)
	pub := certOf(card).PublicKey.(*rsa.PublicKey)
	msg := []byte("Entra con CIE: a TLS CertificateVerify or a document to sign")
	for _, tc := range []struct {
		mech pkcs11.MechanismType
		hash crypto.Hash
	}{
		{pkcs11.CKM_SHA1_RSA_PKCS, crypto.SHA1},
		{pkcs11.CKM_SHA224_RSA_PKCS, crypto.SHA224},
		{pkcs11.CKM_SHA256_RSA_PKCS, crypto.SHA256},
		{pkcs11.CKM_SHA384_RSA_PKCS, crypto.SHA384},
		{pkcs11.CKM_SHA512_RSA_PKCS, crypto.SHA512},
	} {
		hh := tc.hash.New()
		hh.Write(msg)
		digest := hh.Sum(nil)
		t.Run(tc.mech.String(), func(t *testing.T) {
			if err := e.m.SignInit(h, pkcs11.Mechanism{Type: tc.mech}, key); err != nil {
				t.Fatal(err)
			}
			sig := make([]byte, 256)
			n, err := e.m.Sign(h, msg, sig, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := rsa.VerifyPKCS1v15(pub, tc.hash, digest, sig[:n]); err != nil {
				t.Fatalf("single-part signature does not verify: %v", err)
			}
			if err := e.m.SignInit(h, pkcs11.Mechanism{Type: tc.mech}, key); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(msg); i += 7 {
				if err := e.m.SignUpdate(h, msg[i:min(i+7, len(msg))]); err != nil {
					t.Fatal(err)
				}
			}
			n, err = e.m.SignFinal(h, sig, false)
			if err != nil {
				t.Fatal(err)
			}
			if err := rsa.VerifyPKCS1v15(pub, tc.hash, digest, sig[:n]); err != nil {
				t.Fatalf("multi-part signature does not verify: %v", err)
			}
		})
	}
	t.Run("CKM_RSA_PKCS with the caller's DigestInfo", func(t *testing.T) {
		digest := sha256.Sum256(msg)
		di, _ := cie.DigestInfo(crypto.SHA256, digest[:])
		if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key); err != nil {
			t.Fatal(err)
		}
		sig := make([]byte, 300)
		n, err := e.m.Sign(h, di, sig, false)
		if err != nil {
			t.Fatal(err)
		}
		if n != 256 {
			t.Fatalf("signature of %d bytes", n)
		}
		if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig[:n]); err != nil {
			t.Fatal(err)
		}
		// Raw data in parts, up to k-11 bytes (TLS 1.0 MD5+SHA-1 style).
		raw := make([]byte, 36)
		if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key); err != nil {
			t.Fatal(err)
		}
		e.m.SignUpdate(h, raw[:20])
		e.m.SignUpdate(h, raw[20:])
		n, err = e.m.SignFinal(h, sig, false)
		if err != nil {
			t.Fatal(err)
		}
		if err := rsa.VerifyPKCS1v15(pub, 0, raw, sig[:n]); err != nil {
			t.Fatal(err)
		}
	})
}

func TestSignLengthProtocol(t *testing.T) {
	e, card, h, key := signEnv(t)
	pub := certOf(card).PublicKey.(*rsa.PublicKey)
	msg := []byte("hello")
	if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
		t.Fatal(err)
	}
	before := apdus(card)
	n, err := e.m.Sign(h, msg, nil, true)
	if err != nil || n != 256 {
		t.Fatalf("size query: %d %v", n, err)
	}
	n, err = e.m.Sign(h, msg, make([]byte, 100), false)
	wantRV(t, err, pkcs11.CKR_BUFFER_TOO_SMALL)
	if n != 256 {
		t.Fatalf("short buffer reports %d", n)
	}
	if apdus(card) != before {
		t.Fatal("the length queries reached the card")
	}
	sig := make([]byte, 256)
	if _, err := e.m.Sign(h, msg, sig, false); err != nil {
		t.Fatalf("the operation did not survive the length queries: %v", err)
	}
	d := sha256.Sum256(msg)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Fatal("signature after length queries does not verify (was the message hashed twice?)")
	}
	_, err = e.m.Sign(h, msg, sig, false)
	wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)

	// Multi-part: SignFinal's size query keeps the operation too.
	e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key)
	e.m.SignUpdate(h, msg)
	if n, err := e.m.SignFinal(h, nil, true); err != nil || n != 256 {
		t.Fatalf("SignFinal size query: %d %v", n, err)
	}
	if _, err := e.m.SignFinal(h, sig, false); err != nil {
		t.Fatal(err)
	}
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
		t.Fatal(err)
	}
}

func TestSignErrors(t *testing.T) {
	e, card, h, key := signEnv(t)
	sig := make([]byte, 256)
	t.Run("input too long for CKM_RSA_PKCS", func(t *testing.T) {
		e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key)
		_, err := e.m.Sign(h, make([]byte, 246), sig, false)
		wantRV(t, err, pkcs11.CKR_DATA_LEN_RANGE)
		e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key)
		_, err = e.m.Sign(h, nil, sig, false)
		wantRV(t, err, pkcs11.CKR_DATA_LEN_RANGE)
		e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key)
		e.m.SignUpdate(h, make([]byte, 200))
		wantRV(t, e.m.SignUpdate(h, make([]byte, 46)), pkcs11.CKR_DATA_LEN_RANGE)
		_, err = e.m.SignFinal(h, sig, false)
		wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
		// 245 bytes is the maximum and works.
		e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS}, key)
		if _, err := e.m.Sign(h, make([]byte, 245), sig, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("mechanisms and keys", func(t *testing.T) {
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_RSA_PKCS_PSS}, key), pkcs11.CKR_MECHANISM_INVALID)
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS, Parameter: []byte{1}}, key), pkcs11.CKR_MECHANISM_PARAM_INVALID)
		pubKey := find(t, e.m, h, classAttr(pkcs11.CKO_PUBLIC_KEY))[0]
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, pubKey), pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED)
		certObj := find(t, e.m, h, classAttr(pkcs11.CKO_CERTIFICATE))[0]
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, certObj), pkcs11.CKR_KEY_HANDLE_INVALID)
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, 9999), pkcs11.CKR_KEY_HANDLE_INVALID)
		if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
			t.Fatal(err)
		}
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key), pkcs11.CKR_OPERATION_ACTIVE)
		e.m.SignUpdate(h, []byte("x"))
		_, err := e.m.Sign(h, []byte("y"), sig, false)
		wantRV(t, err, pkcs11.CKR_OPERATION_ACTIVE)
		if err := e.m.SessionCancel(h, pkcs11.CKF_SIGN); err != nil {
			t.Fatal(err)
		}
		_, err = e.m.SignFinal(h, sig, false)
		wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	})
	t.Run("not logged in", func(t *testing.T) {
		// C_Logout by the application ends the signatures it started.
		if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
			t.Fatal(err)
		}
		wantRV(t, e.m.Logout(h), pkcs11.CKR_OK)
		_, err := e.m.Sign(h, []byte("x"), sig, false)
		wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
		wantRV(t, e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key), pkcs11.CKR_USER_NOT_LOGGED_IN)
		_, err = e.m.Sign(h, []byte("x"), sig, false)
		wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
	})
	_ = card
}

// TestFurtherSignaturesReuseTheSession checks the cost the issue sets: the
// secure-messaging session of the login serves every later signature: the
// first costs MSE SET, INTERNAL AUTHENTICATE and the GET RESPONSEs of the
// protected answer (4), each further one at most 3.
func TestFurtherSignaturesReuseTheSession(t *testing.T) {
	e, card, h, key := signEnv(t)
	sig := make([]byte, 256)
	for i := range 5 {
		card.ResetStats()
		if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
			t.Fatal(err)
		}
		if _, err := e.m.Sign(h, []byte{byte(i)}, sig, false); err != nil {
			t.Fatal(err)
		}
		limit := 3
		if i == 0 {
			limit = 4
		}
		if n := apdus(card); n > limit {
			t.Fatalf("signature %d cost %d APDUs, want at most %d", i+1, n, limit)
		}
	}
}

// TestExternalResetAsksForLoginAgain: another application reset the card
// (or re-ran the handshake), so the PIN verification is gone. The module
// must not resend the PIN: it reports CKR_USER_NOT_LOGGED_IN without
// spending a try, and a new login works.
func TestExternalResetAsksForLoginAgain(t *testing.T) {
	for _, fault := range []ciesim.Fault{ciesim.FaultReset, ciesim.FaultBadMAC} {
		t.Run(fault.String(), func(t *testing.T) {
			e, card, h, key := signEnv(t)
			sig := make([]byte, 256)
			// A second session of the application started a signature
			// too, before the card lost the login.
			other, err := e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
			if err != nil {
				t.Fatal(err)
			}
			if err := e.m.SignInit(other, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
				t.Fatal(err)
			}
			card.Inject(fault)
			if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
				t.Fatal(err)
			}
			_, err = e.m.Sign(h, []byte("x"), sig, false)
			wantRV(t, err, pkcs11.CKR_USER_NOT_LOGGED_IN)
			// The other session's operation says why it cannot sign (the
			// cue to log in again), not that it was never started; and
			// that ends it.
			apdusBefore := apdus(card)
			_, err = e.m.Sign(other, []byte("y"), sig, false)
			wantRV(t, err, pkcs11.CKR_USER_NOT_LOGGED_IN)
			_, err = e.m.Sign(other, []byte("y"), sig, false)
			wantRV(t, err, pkcs11.CKR_OPERATION_NOT_INITIALIZED)
			if n := apdus(card) - apdusBefore; n != 0 {
				t.Fatalf("the other session's signature sent %d APDUs while logged out", n)
			}
			in, _ := e.m.SessionInfo(h)
			if in.State != pkcs11.CKS_RW_PUBLIC_SESSION {
				t.Fatalf("state %v, want logged out", in.State)
			}
			if pin, _ := card.Tries(); pin != 3 {
				t.Fatalf("a PIN try was spent: %d left", pin)
			}
			login(t, e.m, h)
			key = find(t, e.m, h, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]
			if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
				t.Fatal(err)
			}
			if _, err := e.m.Sign(h, []byte("x"), sig, false); err != nil {
				t.Fatalf("after logging in again: %v", err)
			}
		})
	}
}

func TestConcurrentSignatures(t *testing.T) {
	card := newCard(t, ciesim.Config{})
	e := newEnv(t, card)
	pub := certOf(card).PublicKey.(*rsa.PublicKey)
	first := e.open(e.m)
	login(t, e.m, first)
	key := find(t, e.m, first, classAttr(pkcs11.CKO_PRIVATE_KEY))[0]
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := e.m.OpenSession(1, pkcs11.CKF_SERIAL_SESSION)
			if err != nil {
				errs <- err
				return
			}
			defer e.m.CloseSession(h)
			for i := range 5 {
				msg := []byte(fmt.Sprintf("worker %d message %d", w, i))
				if err := e.m.SignInit(h, pkcs11.Mechanism{Type: pkcs11.CKM_SHA256_RSA_PKCS}, key); err != nil {
					errs <- err
					return
				}
				sig := make([]byte, 256)
				if _, err := e.m.Sign(h, msg, sig, false); err != nil {
					errs <- err
					return
				}
				d := sha256.Sum256(msg)
				if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, d[:], sig); err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				if _, err := e.m.TokenInfo(1); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
