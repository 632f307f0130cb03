package ciesim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/ciedesktop/cie-desktop/apdu"
)

// DefaultVPCDAddr is where vsmartcard's vpcd listens for its first reader.
const DefaultVPCDAddr = "127.0.0.1:35963"

// vpcd control messages (one payload byte, testbench.md §1.5).
const (
	vpcdPowerOff = 0x00
	vpcdPowerOn  = 0x01
	vpcdReset    = 0x02
	vpcdGetATR   = 0x04
)

// Reconnection backoff while vpcd is not listening.
const (
	backoffMin = 50 * time.Millisecond
	backoffMax = 2 * time.Second
)

// VPCD connects a Card to vsmartcard's vpcd as a virtual card: one TCP
// connection is one inserted card. Frames are a big-endian uint16 length
// and the payload, both ways; a one-byte payload from vpcd is a control
// message (00 power off, 01 power on, 02 reset, 04 get ATR), anything
// longer a command APDU. Every frame is written with one write, and
// TCP_QUICKACK is set after each length header is read, so that Debian's
// vpcd 0.8 (header and body in two sends) does not cost a 40 ms delayed
// ACK per message (testbench.md §1.5).
type VPCD struct {
	card *Card
	addr string
	log  *slog.Logger
	dial func(ctx context.Context, addr string) (net.Conn, error)

	mu       sync.Mutex
	conn     net.Conn
	removed  bool
	inserted chan struct{} // closed and replaced by Insert
}

// NewVPCD returns a client that will connect card to the vpcd at addr
// (DefaultVPCDAddr if empty) when Run is called. logger may be nil.
func NewVPCD(card *Card, addr string, logger *slog.Logger) *VPCD {
	if addr == "" {
		addr = DefaultVPCDAddr
	}
	return &VPCD{
		card: card, addr: addr, log: logger,
		dial: func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", addr)
		},
		inserted: make(chan struct{}),
	}
}

// Remove takes the card out of the reader: the connection is closed and no
// new one is made until Insert.
func (v *VPCD) Remove() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.removed = true
	if v.conn != nil {
		v.conn.Close()
	}
}

// Insert puts a removed card back: Run connects again at once.
func (v *VPCD) Insert() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.removed {
		return
	}
	v.removed = false
	close(v.inserted)
	v.inserted = make(chan struct{})
}

// Inserted reports whether the card is in the reader (not removed). It
// says nothing about whether vpcd is reachable.
func (v *VPCD) Inserted() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.removed
}

// Run connects to vpcd, serves it, and reconnects with backoff when vpcd
// is not listening or drops the connection, until ctx ends (then it returns
// nil). While removed it waits for Insert.
func (v *VPCD) Run(ctx context.Context) error {
	backoff := backoffMin
	for {
		v.mu.Lock()
		removed, wait := v.removed, v.inserted
		v.mu.Unlock()
		if removed {
			select {
			case <-ctx.Done():
				return nil
			case <-wait:
				continue
			}
		}
		conn, err := v.dial(ctx, v.addr)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			v.logf("vpcd not reachable, retrying", "addr", v.addr, "in", backoff, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, backoffMax)
			continue
		}
		backoff = backoffMin
		v.logf("connected to vpcd", "addr", v.addr)
		err = v.serve(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		v.logf("vpcd connection closed", "err", err)
		v.card.Reset() // a card out of the reader loses power
	}
}

// serve handles one connection until it fails, the card is removed, or ctx
// ends.
func (v *VPCD) serve(ctx context.Context, conn net.Conn) error {
	v.mu.Lock()
	if v.removed {
		v.mu.Unlock()
		conn.Close()
		return errors.New("card removed")
	}
	v.conn = conn
	v.mu.Unlock()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer func() {
		stop()
		conn.Close()
		v.mu.Lock()
		if v.conn == conn {
			v.conn = nil
		}
		v.mu.Unlock()
	}()
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(conn, hdr[:]); err != nil {
			return fmt.Errorf("reading frame header: %w", err)
		}
		quickAck(conn)
		payload := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(conn, payload); err != nil {
			return fmt.Errorf("reading frame: %w", err)
		}
		reply, err := v.handle(ctx, payload)
		if err != nil {
			return err
		}
		if reply == nil {
			continue
		}
		if err := writeFrame(conn, reply); err != nil {
			return err
		}
	}
}

// handle answers one payload from vpcd; nil means no reply.
func (v *VPCD) handle(ctx context.Context, payload []byte) ([]byte, error) {
	switch len(payload) {
	case 0:
		return nil, nil
	case 1:
		switch payload[0] {
		case vpcdPowerOff, vpcdPowerOn, vpcdReset:
			v.card.Reset()
			return nil, nil
		case vpcdGetATR:
			return v.card.ATR(), nil
		}
		v.logf("unknown vpcd control byte", "byte", fmt.Sprintf("%02X", payload[0]))
		return nil, nil
	}
	resp, err := v.card.Transmit(ctx, payload)
	if errors.Is(err, apdu.ErrCardRemoved) {
		v.Remove() // FaultMute: no answer, the card leaves the reader
		return nil, err
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// writeFrame writes length ‖ payload with a single write, so that the frame
// leaves in one segment.
func writeFrame(w io.Writer, payload []byte) error {
	if len(payload) > 0xFFFF {
		return fmt.Errorf("writing frame: %d bytes exceed 65535", len(payload))
	}
	buf := make([]byte, 2+len(payload))
	binary.BigEndian.PutUint16(buf, uint16(len(payload)))
	copy(buf[2:], payload)
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("writing frame: %w", err)
	}
	return nil
}

func (v *VPCD) logf(msg string, args ...any) {
	if v.log != nil {
		v.log.Info(msg, args...)
	}
}
