//go:build linux

package testbench

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Control messages from vpcd to the card: a 1-byte payload (vpcd.h).
const (
	vpcdPowerOff = 0x00 // no reply
	vpcdPowerOn  = 0x01 // no reply
	vpcdReset    = 0x02 // no reply
	vpcdGetATR   = 0x04 // reply: the ATR
)

// vpcdCard is what serveVPCD needs from a card.
type vpcdCard interface {
	atr() []byte
	reset()
	apdu(cmd []byte) []byte
}

// serveVPCD speaks the vpcd protocol (testbench.md §1.5) on conn until it
// closes: every message in either direction is a big-endian uint16 length
// and the payload; a 1-byte payload from vpcd is a control message, a
// longer one a command APDU answered with the response APDU. Closing conn
// removes the card. A clean close by either side returns nil.
func serveVPCD(conn *net.TCPConn, card vpcdCard) error {
	r := bufio.NewReader(conn)
	var hdr [2]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return closedOK(err)
		}
		quickAck(conn)
		n := int(binary.BigEndian.Uint16(hdr[:]))
		msg := make([]byte, n)
		if _, err := io.ReadFull(r, msg); err != nil {
			return closedOK(err)
		}
		var reply []byte
		switch {
		case n == 1 && msg[0] == vpcdGetATR:
			reply = card.atr()
		case n == 1 && msg[0] == vpcdReset:
			card.reset()
			continue
		case n == 1: // power on/off, and codes this card does not know
			continue
		case n == 0:
			continue
		default:
			reply = card.apdu(msg)
		}
		if len(reply) > 0xFFFF {
			return fmt.Errorf("vpcd: reply of %d bytes does not fit the length field", len(reply))
		}
		// Length and payload in one write: two writes would meet vpcd's
		// delayed ACK (the Nagle trap of testbench.md §1.5).
		out := make([]byte, 2+len(reply))
		binary.BigEndian.PutUint16(out, uint16(len(reply)))
		copy(out[2:], reply)
		if _, err := conn.Write(out); err != nil {
			return closedOK(err)
		}
	}
}

func closedOK(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// serveControl answers one text line per request line on every connection
// accepted from ln, until ln is closed.
func serveControl(ln net.Listener, answer func(req string) string) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			sc := bufio.NewScanner(conn)
			for sc.Scan() {
				if _, err := io.WriteString(conn, answer(strings.TrimSpace(sc.Text()))+"\n"); err != nil {
					return
				}
			}
		}()
	}
}
