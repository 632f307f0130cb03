package cie

import (
	"context"
	"testing"
)

// TestAPDUBudget pins the number of APDUs of the PKCS#11 flows (the
// PKCS#11 issue: C_Login + first C_Sign ≤ 22, each further C_Sign ≤ 3).
// The first handshake of a Card also fetches the DH group, the IFD-CA key
// and EF.Int.Kpub; Prepare does that ahead of C_Login.
func TestAPDUBudget(t *testing.T) {
	for _, tc := range []struct {
		family                  string
		open, prepare, firstPIN int
	}{
		// SELECT IAS, D003 (2), SELECT CIE, 1001 (1: READ BINARY by SFI).
		// Prepare: GET DATA combined (4: ~560 bytes through 61xx), CA key
		// (4: its public exponent is 2048-bit), 1004 (2 READ, the first by SFI).
		{"gemalto", 5, 10, 27},
		// SELECT MF; three separate DH templates (3 + 3 + 2).
		{"nxp", 5, 14, 31},
	} {
		t.Run(tc.family, func(t *testing.T) {
			ctx := context.Background()
			for _, prepared := range []bool{false, true} {
				sim := newSim(t, tc.family, nil)
				c := openSim(t, sim, nil)
				if n := sim.Stats().APDUs; n != tc.open {
					t.Errorf("Open: %d APDUs, want %d", n, tc.open)
				}
				if prepared {
					sim.ResetStats()
					if err := c.Prepare(ctx); err != nil {
						t.Fatal(err)
					}
					if n := sim.Stats().APDUs; n != tc.prepare {
						t.Errorf("Prepare: %d APDUs, want %d", n, tc.prepare)
					}
				}
				sim.ResetStats()
				if err := c.VerifyPIN(ctx, testPIN); err != nil {
					t.Fatal(err)
				}
				if _, err := c.SignDigestInfo(ctx, []byte("digest info")); err != nil {
					t.Fatal(err)
				}
				login := sim.Stats().APDUs
				want := tc.firstPIN + 4
				if prepared {
					want = 17 + 4 // MSE SET KAT (2), Y_ICC (3), DAPP (11), VERIFY; MSE SET + INTERNAL AUTHENTICATE (3)
				}
				if login != want {
					t.Errorf("prepared %v: VerifyPIN + first sign: %d APDUs, want %d", prepared, login, want)
				}
				if prepared && login > 22 {
					t.Errorf("VerifyPIN + first sign after Prepare: %d APDUs, over the budget of 22", login)
				}
				for range 3 {
					sim.ResetStats()
					if _, err := c.SignDigestInfo(ctx, []byte("digest info")); err != nil {
						t.Fatal(err)
					}
					if n := sim.Stats().APDUs; n > 3 {
						t.Errorf("further sign: %d APDUs, over the budget of 3", n)
					}
				}
				// A new login after Logout reuses the cached public data.
				c.Logout()
				sim.ResetStats()
				if err := c.VerifyPIN(ctx, testPIN); err != nil {
					t.Fatal(err)
				}
				if n := sim.Stats().APDUs; n != 18 {
					t.Errorf("VerifyPIN after Logout: %d APDUs, want 18 (SELECT CIE + handshake + VERIFY)", n)
				}
			}
		})
	}
}
