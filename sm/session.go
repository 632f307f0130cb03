// Package sm owns ISO/IEC 7816-4 secure messaging as the CIE uses it
// (cie-protocol.md §5, IAS-ECC style): 2-key 3DES-CBC with a zero IV, the
// retail MAC, the 8-byte send sequence counter, the key derivation from the
// DH secret (§4.6), both directions of protection (host: ProtectCommand /
// UnprotectResponse; card: UnprotectCommand / ProtectResponse) and
// Transport, the decorator that protects every command sent through it.
//
// Layer order: sm.Transport sits on an apdu.NewGetResponse transport, so
// 61xx / 6Cxx are resolved below secure messaging, on the protected bytes.
package sm

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/ciedesktop/cie-desktop/apdu"
	"github.com/ciedesktop/cie-desktop/tlv"
)

// Errors of secure messaging. Every error that ends the session says so in
// its doc comment; the session then answers ErrSessionClosed until the
// caller establishes a new one (DH + device authentication).
var (
	// ErrMAC: the MAC of a protected response (host) or command (card) does
	// not verify. The session is closed. A card answers 6988.
	ErrMAC = errors.New("secure messaging MAC mismatch")
	// ErrMalformed: a protected message has missing, unexpected, duplicate or
	// badly encoded data objects, or bad padding. The session is closed. A
	// card answers 6987 (objects missing) or 6988.
	ErrMalformed = errors.New("malformed secure messaging data objects")
	// ErrBareStatus: the card answered a protected command with a status
	// word and no data objects (§5.2). The session is closed; the error also
	// wraps the status word's error (apdu.StatusWord.Err), so errors.Is /
	// errors.As against apdu status words and *apdu.PINError still work.
	ErrBareStatus = errors.New("bare status word in secure messaging")
	// ErrSessionClosed: the session was closed by Close or by an earlier
	// error.
	ErrSessionClosed = errors.New("secure messaging session closed")
)

// Data object tags of secure messaging (ISO/IEC 7816-4 §10.4).
const (
	tagCryptogramOdd   tlv.Tag = 0x85 // cryptogram, no padding-content indicator (odd INS)
	tagCryptogram      tlv.Tag = 0x87 // padding-content indicator ‖ cryptogram
	tagLe              tlv.Tag = 0x97
	tagStatus          tlv.Tag = 0x99
	tagMAC             tlv.Tag = 0x8E
	paddingIndicator           = 0x01 // ISO/IEC 9797-1 method 2 padding
	claSM                      = 0x0C // CLA bits: SM, header authenticated
	macSize                    = 8
	protectedCommandNe         = apdu.MaxShortNe // Le 00 on every protected command (§5.3 step 7)
)

// Session is one secure messaging session: K_ENC, K_MAC and the send
// sequence counter. Its secrets are in unexported fields behind a pointer;
// String, GoString and LogValue print "[redacted]". A Session is safe for
// concurrent use, but the SSC makes every exchange depend on the previous
// one, so callers serialise whole exchanges (Transport does).
type Session struct {
	st *state
}

type state struct {
	mu     sync.Mutex
	kEnc   [KeySize]byte
	kMAC   [KeySize]byte
	ssc    [8]byte
	closed bool
}

// NewSession returns a session with copies of the keys (the caller may zero
// its own) and the SSC start value (…01 after DH, §4 step 7). It panics if a
// key is not 16 bytes: keys come from DeriveKeys, never from card input.
func NewSession(kEnc, kMAC []byte, ssc [8]byte) *Session {
	if len(kEnc) != KeySize || len(kMAC) != KeySize {
		panic(fmt.Sprintf("sm: session keys of %d and %d bytes, want %d", len(kEnc), len(kMAC), KeySize))
	}
	st := &state{ssc: ssc}
	copy(st.kEnc[:], kEnc)
	copy(st.kMAC[:], kMAC)
	return &Session{st: st}
}

// String returns "[redacted]".
func (Session) String() string { return "[redacted]" }

// GoString returns "[redacted]".
func (Session) GoString() string { return "[redacted]" }

// LogValue returns "[redacted]" for log/slog.
func (Session) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// SetSSC sets the send sequence counter (after device authentication, §6:
// RND.ICC[4:8] ‖ rndIFD[4:8]). Keys are unchanged.
func (s *Session) SetSSC(ssc [8]byte) {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.ssc = ssc
}

// SSC returns the current send sequence counter, the value used by the last
// protected message.
func (s *Session) SSC() [8]byte {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.ssc
}

// Closed reports whether the session was closed by Close or by an error.
func (s *Session) Closed() bool {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	return s.st.closed
}

// Close zeroes the keys and the SSC; every later call returns
// ErrSessionClosed. Closing twice is harmless.
func (s *Session) Close() {
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	s.st.close()
}

func (st *state) close() {
	clear(st.kEnc[:])
	clear(st.kMAC[:])
	clear(st.ssc[:])
	st.closed = true
}

// incrementSSC adds 1 to the big-endian SSC, wrapping from all FF to 0.
func incrementSSC(ssc *[8]byte) {
	for i := len(ssc) - 1; i >= 0; i-- {
		ssc[i]++
		if ssc[i] != 0 {
			return
		}
	}
}

// lock takes the session lock and checks that it is open. On success the
// caller must unlock.
func (s *Session) lock(op string) error {
	s.st.mu.Lock()
	if s.st.closed {
		s.st.mu.Unlock()
		return fmt.Errorf("sm: %s: %w", op, ErrSessionClosed)
	}
	return nil
}

// fail closes the session and wraps err.
func (st *state) fail(op string, err error) error {
	st.close()
	return fmt.Errorf("sm: %s: %w", op, err)
}

// malformed builds an error that wraps ErrMalformed (and cause, if any).
func malformed(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), ErrMalformed)
}

// mac computes the retail MAC over pad(SSC ‖ prefix ‖ dos).
func (st *state) mac(prefix, dos []byte) []byte {
	in := make([]byte, 0, len(st.ssc)+len(prefix)+len(dos)+BlockSize)
	in = append(in, st.ssc[:]...)
	in = append(in, prefix...)
	in = append(in, dos...)
	return RetailMAC(st.kMAC[:], Pad(in))
}

// encryptDO returns DO87 (01 ‖ cryptogram) or, if odd, DO85 (cryptogram).
func (st *state) encryptDO(data []byte, odd bool) ([]byte, error) {
	p := Pad(data)
	defer clear(p)
	c, err := EncryptCBC(st.kEnc[:], p)
	if err != nil {
		return nil, err
	}
	if odd {
		return tlv.Encode(tagCryptogramOdd, c), nil
	}
	return tlv.Encode(tagCryptogram, []byte{paddingIndicator}, c), nil
}

// decryptDO decrypts the value of DO87 or DO85 and removes the padding.
func (st *state) decryptDO(do tlv.TLV) ([]byte, error) {
	c := do.Value
	if do.Tag == tagCryptogram {
		if len(c) == 0 || c[0] != paddingIndicator {
			return nil, malformed("DO87 without padding indicator 01")
		}
		c = c[1:]
	}
	if len(c) == 0 || len(c)%BlockSize != 0 {
		return nil, malformed("cryptogram of %d bytes", len(c))
	}
	p, err := DecryptCBC(st.kEnc[:], c)
	if err != nil {
		return nil, malformed("decrypting: %v", err)
	}
	d, err := Unpad(p)
	if err != nil {
		clear(p)
		return nil, malformed("decrypting: %v", err)
	}
	return d, nil
}

// header returns pad(CLA' INS P1 P2), the header part of a command MAC input.
func header(c apdu.Command) []byte {
	return Pad([]byte{c.CLA, c.INS, c.P1, c.P2})
}

// ProtectCommand (host) wraps a plain command (§5.3): SSC += 1; CLA' =
// CLA | 0C (the chaining bit is kept); data → DO87 (even INS) or DO85 (odd
// INS); DO97 with the Le byte Ne & FF if Ne > 0; DO8E over pad(SSC ‖
// pad(header) ‖ DOs). The result always has Ne = 256 (Le 00). Ne above 256
// is refused, because DO97 carries one byte.
func (s *Session) ProtectCommand(c apdu.Command) (apdu.Command, error) {
	const op = "protecting command"
	if err := s.lock(op); err != nil {
		return apdu.Command{}, err
	}
	st := s.st
	defer st.mu.Unlock()
	if c.Ne < 0 || c.Ne > apdu.MaxShortNe {
		return apdu.Command{}, fmt.Errorf("sm: %s %v: Ne above %d cannot be protected", op, c, apdu.MaxShortNe)
	}
	incrementSSC(&st.ssc)
	out := apdu.Command{CLA: c.CLA | claSM, INS: c.INS, P1: c.P1, P2: c.P2, Ne: protectedCommandNe}
	var dos []byte
	if len(c.Data) > 0 {
		do, err := st.encryptDO(c.Data, c.INS&1 == 1)
		if err != nil {
			return apdu.Command{}, fmt.Errorf("sm: %s %v: %w", op, c, err)
		}
		dos = append(dos, do...)
	}
	if c.Ne > 0 {
		dos = append(dos, byte(tagLe), 1, byte(c.Ne))
	}
	m := st.mac(header(out), dos)
	out.Data = append(dos, tlv.Encode(tagMAC, m)...)
	return out, nil
}

// UnprotectResponse (host) checks and decrypts a protected response (§5.4).
// A response with an empty data field is a bare status word: it is returned
// as is with an error wrapping ErrBareStatus and the status word's error, and
// the session is closed. Otherwise SSC += 1, the data objects (DO87 or DO85,
// DO99, DO8E last) are parsed, the MAC over pad(SSC ‖ DOs before 8E) is
// compared in constant time (ErrMAC), and the result carries the plaintext
// and the status word of DO99; the outer status word is ignored. Any error
// closes the session.
func (s *Session) UnprotectResponse(r apdu.Response) (apdu.Response, error) {
	const op = "unprotecting response"
	if err := s.lock(op); err != nil {
		return apdu.Response{}, err
	}
	st := s.st
	defer st.mu.Unlock()
	if len(r.Data) == 0 {
		st.close()
		if err := r.SW.Err(); err != nil {
			return apdu.Response{SW: r.SW}, fmt.Errorf("sm: %s: %w: %w", op, ErrBareStatus, err)
		}
		return apdu.Response{SW: r.SW}, fmt.Errorf("sm: %s: %w %v", op, ErrBareStatus, r.SW)
	}
	incrementSSC(&st.ssc)
	var crypt, status *tlv.TLV
	dos, mac, err := splitMAC(r.Data, func(do tlv.TLV) error {
		switch do.Tag {
		case tagCryptogram, tagCryptogramOdd:
			if crypt != nil {
				return malformed("second cryptogram DO %v", do.Tag)
			}
			crypt = &do
		case tagStatus:
			if status != nil {
				return malformed("second DO99")
			}
			if len(do.Value) != 2 {
				return malformed("DO99 of %d bytes", len(do.Value))
			}
			status = &do
		default:
			return malformed("unexpected DO %v in response", do.Tag)
		}
		return nil
	})
	if err != nil {
		return apdu.Response{}, st.fail(op, err)
	}
	if status == nil {
		return apdu.Response{}, st.fail(op, malformed("DO99 missing"))
	}
	if subtle.ConstantTimeCompare(st.mac(nil, dos), mac) != 1 {
		return apdu.Response{}, st.fail(op, ErrMAC)
	}
	out := apdu.Response{SW: apdu.StatusWord(uint16(status.Value[0])<<8 | uint16(status.Value[1]))}
	if crypt != nil {
		if out.Data, err = st.decryptDO(*crypt); err != nil {
			return apdu.Response{}, st.fail(op, err)
		}
	}
	return out, nil
}

// splitMAC parses the data objects of b, passing every one before DO8E to
// check, and returns the bytes they span and the MAC value. DO8E must be
// present, last, and 8 bytes long.
func splitMAC(b []byte, check func(tlv.TLV) error) (dos, mac []byte, err error) {
	rest := b
	for len(rest) > 0 {
		do, next, err := tlv.ParseOne(rest)
		if err != nil {
			return nil, nil, fmt.Errorf("parsing data objects: %w: %w", ErrMalformed, err)
		}
		if do.Tag == tagMAC {
			if len(next) != 0 {
				return nil, nil, malformed("%d bytes after DO8E", len(next))
			}
			if len(do.Value) != macSize {
				return nil, nil, malformed("DO8E of %d bytes", len(do.Value))
			}
			return b[:len(b)-len(do.Raw)], do.Value, nil
		}
		if err := check(do); err != nil {
			return nil, nil, err
		}
		rest = next
	}
	return nil, nil, malformed("DO8E missing")
}

// UnprotectCommand (card) checks and decrypts a protected command, the
// inverse of ProtectCommand: CLA must have the SM bits 0C; SSC += 1; the data
// objects must be DO87 (even INS) or DO85 (odd INS), then DO97, then DO8E,
// each at most once; the MAC over pad(SSC ‖ pad(header) ‖ DOs) is compared in
// constant time. The result has CLA without the SM bits (the chaining bit is
// kept), the plaintext, and Ne from DO97 (00 → 256; absent → 0). Errors wrap
// ErrMalformed (answer 6987/6988) or ErrMAC (answer 6988) and close the
// session.
func (s *Session) UnprotectCommand(c apdu.Command) (apdu.Command, error) {
	const op = "unprotecting command"
	if err := s.lock(op); err != nil {
		return apdu.Command{}, err
	}
	st := s.st
	defer st.mu.Unlock()
	if c.CLA&claSM != claSM {
		return apdu.Command{}, st.fail(op, malformed("CLA %02X without secure messaging", c.CLA))
	}
	incrementSSC(&st.ssc)
	odd := c.INS&1 == 1
	var crypt, le *tlv.TLV
	dos, mac, err := splitMAC(c.Data, func(do tlv.TLV) error {
		switch {
		case do.Tag == tagCryptogram && !odd, do.Tag == tagCryptogramOdd && odd:
			if crypt != nil || le != nil {
				return malformed("DO%v out of order", do.Tag)
			}
			crypt = &do
		case do.Tag == tagLe:
			if le != nil {
				return malformed("second DO97")
			}
			if len(do.Value) != 1 && len(do.Value) != 2 {
				return malformed("DO97 of %d bytes", len(do.Value))
			}
			le = &do
		default:
			return malformed("unexpected DO %v for INS %02X", do.Tag, c.INS)
		}
		return nil
	})
	if err != nil {
		return apdu.Command{}, st.fail(op, err)
	}
	if subtle.ConstantTimeCompare(st.mac(header(c), dos), mac) != 1 {
		return apdu.Command{}, st.fail(op, ErrMAC)
	}
	out := apdu.Command{CLA: c.CLA &^ claSM, INS: c.INS, P1: c.P1, P2: c.P2}
	if crypt != nil {
		if out.Data, err = st.decryptDO(*crypt); err != nil {
			return apdu.Command{}, st.fail(op, err)
		}
	}
	if le != nil {
		if len(le.Value) == 1 {
			out.Ne = int(le.Value[0])
			if out.Ne == 0 {
				out.Ne = apdu.MaxShortNe
			}
		} else {
			out.Ne = int(le.Value[0])<<8 | int(le.Value[1])
			if out.Ne == 0 {
				out.Ne = apdu.MaxExtendedNe
			}
		}
	}
	return out, nil
}

// ProtectResponse (card) wraps a plain response, the inverse of
// UnprotectResponse: SSC += 1; data → DO87 (01 ‖ cryptogram); DO99 with the
// status word; DO8E over pad(SSC ‖ DOs). The outer status word equals the
// inner one. Deliver the result through 61xx if it exceeds the command's Ne.
func (s *Session) ProtectResponse(r apdu.Response) (apdu.Response, error) {
	const op = "protecting response"
	if err := s.lock(op); err != nil {
		return apdu.Response{}, err
	}
	st := s.st
	defer st.mu.Unlock()
	incrementSSC(&st.ssc)
	var dos []byte
	if len(r.Data) > 0 {
		do, err := st.encryptDO(r.Data, false)
		if err != nil {
			return apdu.Response{}, fmt.Errorf("sm: %s: %w", op, err)
		}
		dos = append(dos, do...)
	}
	dos = append(dos, byte(tagStatus), 2, r.SW.SW1(), r.SW.SW2())
	m := st.mac(nil, dos)
	return apdu.Response{Data: append(dos, tlv.Encode(tagMAC, m)...), SW: r.SW}, nil
}
