package apdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// data returns n bytes 00 01 02 … (mod 256).
func data(n int) []byte {
	d := make([]byte, n)
	for i := range d {
		d[i] = byte(i)
	}
	return d
}

func TestCommandRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		nc, ne int
		cse    int
		ext    bool
		lc, le string // encoded length fields around the data
	}{
		{"case 1", 0, 0, 1, false, "", ""},
		{"case 2S Ne 1", 0, 1, 2, false, "", "01"},
		{"case 2S Ne 255", 0, 255, 2, false, "", "ff"},
		{"case 2S Ne 256", 0, 256, 2, false, "", "00"},
		{"case 2E Ne 257", 0, 257, 2, true, "", "000101"},
		{"case 2E Ne 65535", 0, 65535, 2, true, "", "00ffff"},
		{"case 2E Ne 65536", 0, 65536, 2, true, "", "000000"},
		{"case 3S Nc 1", 1, 0, 3, false, "01", ""},
		{"case 3S Nc 255", 255, 0, 3, false, "ff", ""},
		{"case 3E Nc 256", 256, 0, 3, true, "000100", ""},
		{"case 3E Nc 65535", 65535, 0, 3, true, "00ffff", ""},
		{"case 4S Nc 1 Ne 1", 1, 1, 4, false, "01", "01"},
		{"case 4S Nc 255 Ne 256", 255, 256, 4, false, "ff", "00"},
		{"case 4S Nc 1 Ne 255", 1, 255, 4, false, "01", "ff"},
		{"case 4E Nc 256 Ne 1", 256, 1, 4, true, "000100", "0001"},
		{"case 4E Nc 256 Ne 256", 256, 256, 4, true, "000100", "0100"},
		{"case 4E Nc 1 Ne 257", 1, 257, 4, true, "000001", "0101"},
		{"case 4E Nc 255 Ne 65535", 255, 65535, 4, true, "0000ff", "ffff"},
		{"case 4E Nc 65535 Ne 65536", 65535, 65536, 4, true, "00ffff", "0000"},
		{"case 4E Nc 1 Ne 65536", 1, 65536, 4, true, "000001", "0000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Command{CLA: 0x0C, INS: 0xB0, P1: 0x12, P2: 0x34, Ne: tc.ne}
			if tc.nc > 0 {
				c.Data = data(tc.nc)
			}
			if c.Case() != tc.cse || c.Extended() != tc.ext {
				t.Errorf("Case %d Extended %v, want %d %v", c.Case(), c.Extended(), tc.cse, tc.ext)
			}
			want := append(append(unhex(t, "0cb01234"+tc.lc), c.Data...), unhex(t, tc.le)...)
			got, err := c.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("Bytes() = %x…(%d bytes), want %x…(%d bytes)", got[:min(len(got), 12)], len(got), want[:min(len(want), 12)], len(want))
			}
			back, err := ParseCommand(got)
			if err != nil {
				t.Fatal(err)
			}
			if back.CLA != c.CLA || back.INS != c.INS || back.P1 != c.P1 || back.P2 != c.P2 || back.Ne != c.Ne || !bytes.Equal(back.Data, c.Data) || len(back.Data) != tc.nc {
				t.Errorf("ParseCommand = %v, want %v", back, c)
			}
		})
	}
}

func TestCommandBytesRejects(t *testing.T) {
	for _, c := range []Command{
		{Data: data(65536)},
		{Data: data(1), Ne: 65537},
		{Ne: 65537},
		{Ne: -1},
	} {
		if b, err := c.Bytes(); err == nil {
			t.Errorf("%v: Bytes() = %d bytes, want an error", c, len(b))
		}
	}
}

func TestParseCommandRejects(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"3 bytes", "00a400"},
		{"short Lc longer than body", "00a40000 05 0102"},
		{"short Lc shorter than body", "00a40000 01 010203"},
		{"2-byte body starting 00", "00a40000 0001"},
		{"extended Lc 0", "00a40000 000000 01"},
		{"extended Lc longer than body", "00a40000 000005 0102"},
		{"extended Lc with 1-byte Le", "00a40000 000001 01 00"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c, err := ParseCommand(unhex(t, tc.in)); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, %v; want ErrMalformed", c, err)
			}
		})
	}
}

func TestCommandStringHidesData(t *testing.T) {
	c := Command{CLA: 0x00, INS: 0x20, P1: 0x00, P2: 0x81, Data: []byte("12345678")}
	if s := c.String(); strings.Contains(s, "3132") || strings.Contains(s, "1234") || s != "00 20 00 81 Nc=8 Ne=0" {
		t.Errorf("String() = %q", s)
	}
}

func TestParseResponse(t *testing.T) {
	for _, tc := range []struct {
		in, data string
		sw       StatusWord
	}{
		{"9000", "", SWOK},
		{"6a82", "", SWFileNotFound},
		{"0102 6282", "0102", SWEndOfFile},
		{"3082010a0282010100 9000", "3082010a0282010100", SWOK},
	} {
		in := unhex(t, tc.in)
		r, err := ParseResponse(in)
		if err != nil {
			t.Fatal(err)
		}
		if hex.EncodeToString(r.Data) != tc.data || r.SW != tc.sw {
			t.Errorf("ParseResponse(%s) = %x %v", tc.in, r.Data, r.SW)
		}
		if !bytes.Equal(r.Bytes(), in) {
			t.Errorf("Bytes() = %x, want %x", r.Bytes(), in)
		}
		if (r.Err() == nil) != (tc.sw == SWOK) {
			t.Errorf("%s: Err() = %v", tc.in, r.Err())
		}
	}
	for _, bad := range []string{"", "90"} {
		if _, err := ParseResponse(unhex(t, bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("ParseResponse(%q): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestStatusWordErr(t *testing.T) {
	for _, tc := range []struct {
		sw       StatusWord
		text     string
		pin      *PINError // nil: not a PIN error
		is       []error   // errors.Is must hold
		isNot    []error
		noErrors bool
	}{
		{sw: 0x9000, text: "SW 9000: success", noErrors: true},
		{sw: 0x63C2, text: "SW 63C2: verification failed, 2 tries left", pin: &PINError{Remaining: 2, SW: 0x63C2}, is: []error{StatusWord(0x63C2)}, isNot: []error{SWAuthMethodBlocked}},
		{sw: 0x63C1, text: "SW 63C1: verification failed, 1 tries left", pin: &PINError{Remaining: 1, SW: 0x63C1}},
		{sw: 0x63C0, text: "SW 63C0: verification failed, 0 tries left", pin: &PINError{Remaining: 0, Blocked: true, SW: 0x63C0}, is: []error{SWAuthMethodBlocked, StatusWord(0x63C0)}},
		{sw: 0x6983, text: "SW 6983: authentication method blocked", pin: &PINError{Remaining: 0, Blocked: true, SW: 0x6983}, is: []error{SWAuthMethodBlocked}},
		{sw: 0x6A82, text: "SW 6A82: file or application not found", is: []error{SWFileNotFound}, isNot: []error{SWAuthMethodBlocked, SWWrongData}},
		{sw: 0x6982, text: "SW 6982: security status not satisfied", is: []error{SWSecurityStatus}},
		{sw: 0x6300, text: "SW 6300: verification failed", is: []error{SWVerificationFailed}},
		{sw: 0x6988, text: "SW 6988: incorrect secure messaging data objects", is: []error{SWSMDataObjectsIncorrect}},
		{sw: 0x6110, text: "SW 6110: 16 more response bytes available"},
		{sw: 0x6C08, text: "SW 6C08: wrong Le, 8 bytes available"},
		{sw: 0x6F12, text: "SW 6F12"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			if got := tc.sw.Error(); got != tc.text {
				t.Errorf("Error() = %q, want %q", got, tc.text)
			}
			err := tc.sw.Err()
			if tc.noErrors {
				if err != nil {
					t.Errorf("Err() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Err() = nil")
			}
			var pe *PINError
			if isPIN := errors.As(err, &pe); isPIN != (tc.pin != nil) {
				t.Fatalf("errors.As PINError = %v, want %v", isPIN, tc.pin != nil)
			}
			if tc.pin != nil && *pe != *tc.pin {
				t.Errorf("PINError = %+v, want %+v", *pe, *tc.pin)
			}
			for _, target := range tc.is {
				if !errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = false", err, target)
				}
			}
			for _, target := range tc.isNot {
				if errors.Is(err, target) {
					t.Errorf("errors.Is(%v, %v) = true", err, target)
				}
			}
		})
	}
	if got := (&PINError{Remaining: 2}).Error(); got != "verification failed: 2 tries left" {
		t.Errorf("PINError.Error() = %q", got)
	}
	if got := (&PINError{Blocked: true}).Error(); got != "verification refused: blocked" {
		t.Errorf("PINError.Error() = %q", got)
	}
}
