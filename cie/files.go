package cie

import (
	"context"
	"errors"
	"fmt"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// errShortFile: the card ended a file before the length it announced.
var errShortFile = errors.New("file shorter than its content announces")

// selectEF selects an elementary file of the current application by FID
// (00 A4 02 0C 02 FID, §2), under SM when a session is up.
func (c *Card) selectEF(ctx context.Context, fid uint16) error {
	what := fmt.Sprintf("selecting EF %04X", fid)
	r, err := c.exchange(ctx, apdu.Command{INS: insSelect, P1: p1SelectEF, P2: p2SelectNoResponse, Data: []byte{byte(fid >> 8), byte(fid)}})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return checkSW(r, what)
}

// Sizes for readEF.
const (
	readDER   = 0  // a BER-TLV file, read by its outer length
	readToEOF = -1 // a file read until the card says it ends (EF.ATR)
	maxEFATR  = 1024
)

// readEF selects fid and reads it (§3.4). size > 0 reads exactly size bytes;
// readDER reads a BER-TLV file by its outer length (the files are padded
// after their content); readToEOF reads until 6282 / 6B00 (at most 1 KiB).
// Chunks are 256 bytes (Le 00) in plain and 0xE7 under SM; when the length
// is known the last READ BINARY asks for exactly what is left.
func (c *Card) readEF(ctx context.Context, fid uint16, size int) ([]byte, error) {
	if err := c.selectEF(ctx, fid); err != nil {
		return nil, err
	}
	return c.readCurrent(ctx, fid, 0, size)
}

// readEFShort reads fid like readEF, but the first READ BINARY names the
// file by its short EF identifier (P1 = 80 | sfi, offset 0 in P2, §3.1:
// what NIS readers send to real cards), which selects it as it reads and
// saves the SELECT; the next chunks use plain offsets in the file the SFI
// selected (ISO/IEC 7816-4 §7.2.2). A card that refuses the short form
// with a status word gets readEF. Under secure messaging readEF is used
// from the start: a refusal there could end the session (and the PIN
// verification with it).
func (c *Card) readEFShort(ctx context.Context, fid uint16, sfi byte, size int) ([]byte, error) {
	if c.smt != nil {
		return c.readEF(ctx, fid, size)
	}
	b, err := c.readCurrent(ctx, fid, sfi, size)
	if errors.Is(err, errNoSFI) {
		c.log.DebugContext(ctx, "cie: short EF identifier refused, selecting by FID", "fid", fmt.Sprintf("%04X", fid), "err", err)
		return c.readEF(ctx, fid, size)
	}
	return b, err
}

// errNoSFI: the card refused a READ BINARY by short EF identifier.
var errNoSFI = errors.New("READ BINARY by short EF identifier refused")

// readCurrent reads the current EF, or with sfi ≠ 0 the EF it names (see
// readEFShort), with readEF's sizes and chunks.
func (c *Card) readCurrent(ctx context.Context, fid uint16, sfi byte, size int) ([]byte, error) {
	total := max(size, 0) // 0: not known yet
	if size == readToEOF {
		total = maxEFATR
	}
	var out []byte
	for len(out) < total || total == 0 {
		off := len(out)
		if off > maxFileOffset {
			return nil, fmt.Errorf("reading EF %04X: offset %d beyond READ BINARY's range", fid, off)
		}
		ne := c.chunk()
		if total > 0 {
			ne = min(ne, total-off)
		}
		cmd := apdu.Command{INS: insReadBinary, P1: byte(off >> 8), P2: byte(off), Ne: ne}
		if off == 0 && sfi != 0 {
			cmd.P1, cmd.P2 = p1ReadBinarySFI|sfi, 0
		}
		r, err := c.exchange(ctx, cmd)
		if err != nil {
			if off == 0 && sfi != 0 && isStatus(err) && !recoverable(err) {
				return nil, fmt.Errorf("%w: %w", errNoSFI, err)
			}
			return nil, fmt.Errorf("reading EF %04X at %d: %w", fid, off, err)
		}
		if off == 0 && sfi != 0 && r.SW != apdu.SWOK {
			return nil, fmt.Errorf("%w: %w", errNoSFI, r.SW)
		}
		eof := false
		switch r.SW {
		case apdu.SWOK:
		case apdu.SWEndOfFile:
			eof = true
		case apdu.SWWrongP1P2: // offset at or beyond the end
			eof = true
			if len(r.Data) > 0 {
				return nil, fmt.Errorf("reading EF %04X at %d: data with %v: %w", fid, off, r.SW, apdu.ErrMalformed)
			}
		default:
			return nil, fmt.Errorf("reading EF %04X at %d: %w", fid, off, r.SW)
		}
		if len(r.Data) > ne {
			return nil, fmt.Errorf("reading EF %04X at %d: %d bytes for Le %d: %w", fid, off, len(r.Data), ne, apdu.ErrMalformed)
		}
		out = append(out, r.Data...)
		if size == readDER && total == 0 {
			n, err := berTotalLength(out)
			switch {
			case err == nil:
				total = n
			case !errors.Is(err, errNeedMore):
				return nil, fmt.Errorf("reading EF %04X: %w", fid, err)
			}
		}
		if size == readToEOF && (eof || len(r.Data) == 0) {
			return out, nil
		}
		if eof || len(r.Data) == 0 {
			if total > 0 && len(out) >= total {
				break
			}
			return nil, fmt.Errorf("reading EF %04X: %d of %d bytes: %w", fid, len(out), total, errShortFile)
		}
	}
	if size == readToEOF {
		return nil, fmt.Errorf("reading EF %04X: more than %d bytes", fid, maxEFATR)
	}
	return out[:total], nil
}

var errNeedMore = errors.New("truncated header")

// berTotalLength returns the length of the BER-TLV data object at the start
// of b (tag, length and value), from its header only. Lengths use the
// definite forms of tlv (xx, 81 xx … 84 xx xx xx xx).
func berTotalLength(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, errNeedMore
	}
	i := 1
	if b[0]&0x1F == 0x1F { // multi-byte tag
		for {
			if i >= len(b) {
				return 0, errNeedMore
			}
			if i > 3 {
				return 0, fmt.Errorf("tag longer than 4 bytes: %w", apdu.ErrMalformed)
			}
			more := b[i]&0x80 != 0
			i++
			if !more {
				break
			}
		}
	}
	if b[0] == 0x00 || b[0] == 0xFF {
		return 0, fmt.Errorf("no data object: %w", apdu.ErrMalformed)
	}
	if i >= len(b) {
		return 0, errNeedMore
	}
	l := int(b[i])
	i++
	if l > 0x80 {
		n := l & 0x7F
		if n > 4 {
			return 0, fmt.Errorf("length of %d bytes: %w", n, apdu.ErrMalformed)
		}
		if i+n > len(b) {
			return 0, errNeedMore
		}
		l = 0
		for _, x := range b[i : i+n] {
			l = l<<8 | int(x)
		}
		i += n
	} else if l == 0x80 {
		return 0, fmt.Errorf("indefinite length: %w", apdu.ErrMalformed)
	}
	if l > maxFileOffset+plainChunk {
		return 0, fmt.Errorf("data object of %d bytes: %w", l, apdu.ErrMalformed)
	}
	return i + l, nil
}
