package apdu

import (
	"errors"
	"fmt"
)

// Limits of the encodings (ISO/IEC 7816-4 §5.1).
const (
	MaxShortNc    = 255
	MaxShortNe    = 256
	MaxExtendedNc = 65535
	MaxExtendedNe = 65536
)

// ErrMalformed is wrapped by every parsing error of this package.
var ErrMalformed = errors.New("malformed APDU")

// Command is a command APDU. Ne is the maximum number of response bytes
// expected (0 = no Le field, 256 = short Le 00, 65536 = extended Le 0000);
// it is never the encoded Le byte.
type Command struct {
	CLA, INS, P1, P2 byte
	Data             []byte
	Ne               int
}

// Case returns the ISO case (1–4) of the command.
func (c Command) Case() int {
	switch {
	case len(c.Data) == 0 && c.Ne == 0:
		return 1
	case len(c.Data) == 0:
		return 2
	case c.Ne == 0:
		return 3
	default:
		return 4
	}
}

// Extended reports whether the command needs the extended length encoding.
func (c Command) Extended() bool {
	return len(c.Data) > MaxShortNc || c.Ne > MaxShortNe
}

// Bytes encodes the command, choosing the short form whenever both Nc and Ne
// fit it.
func (c Command) Bytes() ([]byte, error) {
	nc := len(c.Data)
	if nc > MaxExtendedNc {
		return nil, fmt.Errorf("encoding APDU: Nc %d exceeds %d", nc, MaxExtendedNc)
	}
	if c.Ne < 0 || c.Ne > MaxExtendedNe {
		return nil, fmt.Errorf("encoding APDU: Ne %d out of range 0..%d", c.Ne, MaxExtendedNe)
	}
	out := make([]byte, 4, 4+3+nc+3)
	out[0], out[1], out[2], out[3] = c.CLA, c.INS, c.P1, c.P2
	if !c.Extended() {
		if nc > 0 {
			out = append(out, byte(nc))
			out = append(out, c.Data...)
		}
		if c.Ne > 0 {
			out = append(out, byte(c.Ne)) // 256 encodes as 00
		}
		return out, nil
	}
	if nc > 0 {
		out = append(out, 0, byte(nc>>8), byte(nc))
		out = append(out, c.Data...)
	}
	if c.Ne > 0 {
		if nc == 0 {
			out = append(out, 0)
		}
		out = append(out, byte(c.Ne>>8), byte(c.Ne)) // 65536 encodes as 00 00
	}
	return out, nil
}

// String prints the header, Nc and Ne only: command data may hold a PIN.
func (c Command) String() string {
	return fmt.Sprintf("%02X %02X %02X %02X Nc=%d Ne=%d", c.CLA, c.INS, c.P1, c.P2, len(c.Data), c.Ne)
}

// ParseCommand decodes a command APDU in any of the seven encodings of
// ISO/IEC 7816-4 §5.1. Data aliases b.
func ParseCommand(b []byte) (Command, error) {
	if len(b) < 4 {
		return Command{}, fmt.Errorf("parsing command: %d bytes: %w", len(b), ErrMalformed)
	}
	c := Command{CLA: b[0], INS: b[1], P1: b[2], P2: b[3]}
	body := b[4:]
	switch {
	case len(body) == 0: // case 1
		return c, nil
	case len(body) == 1: // case 2S
		c.Ne = shortNe(body[0])
		return c, nil
	case body[0] != 0: // short form with Lc
		nc := int(body[0])
		switch len(body) {
		case 1 + nc: // 3S
			c.Data = body[1:]
			return c, nil
		case 2 + nc: // 4S
			c.Data = body[1 : 1+nc]
			c.Ne = shortNe(body[1+nc])
			return c, nil
		}
		return Command{}, fmt.Errorf("parsing command: Lc %d with %d body bytes: %w", nc, len(body), ErrMalformed)
	case len(body) == 3: // case 2E: 00 Le1 Le2
		c.Ne = extendedNe(body[1], body[2])
		return c, nil
	case len(body) > 3:
		nc := int(body[1])<<8 | int(body[2])
		if nc == 0 {
			return Command{}, fmt.Errorf("parsing command: extended Lc 0: %w", ErrMalformed)
		}
		switch len(body) {
		case 3 + nc: // 3E
			c.Data = body[3:]
			return c, nil
		case 5 + nc: // 4E
			c.Data = body[3 : 3+nc]
			c.Ne = extendedNe(body[3+nc], body[4+nc])
			return c, nil
		}
		return Command{}, fmt.Errorf("parsing command: extended Lc %d with %d body bytes: %w", nc, len(body), ErrMalformed)
	}
	return Command{}, fmt.Errorf("parsing command: %d body bytes: %w", len(body), ErrMalformed)
}

func shortNe(le byte) int {
	if le == 0 {
		return MaxShortNe
	}
	return int(le)
}

func extendedNe(hi, lo byte) int {
	n := int(hi)<<8 | int(lo)
	if n == 0 {
		return MaxExtendedNe
	}
	return n
}
