package ciesim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// recConn records the size of every Write, to check the one-write rule.
type recConn struct {
	*net.TCPConn
	mu     sync.Mutex
	writes [][]byte
}

func (c *recConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, append([]byte(nil), b...))
	c.mu.Unlock()
	return c.TCPConn.Write(b)
}

// fakeVPCD is the vpcd side: it accepts the card's connection and speaks
// the framing of testbench.md §1.5.
type fakeVPCD struct {
	t  *testing.T
	ln net.Listener
}

func (f *fakeVPCD) accept(timeout time.Duration) net.Conn {
	f.t.Helper()
	f.ln.(*net.TCPListener).SetDeadline(time.Now().Add(timeout))
	c, err := f.ln.Accept()
	if err != nil {
		f.t.Fatalf("accepting the card: %v", err)
	}
	return c
}

func send(t *testing.T, c net.Conn, payload []byte) {
	t.Helper()
	// vpcd 0.8 sends the header and the body separately.
	var hdr [2]byte
	binary.BigEndian.PutUint16(hdr[:], uint16(len(payload)))
	if _, err := c.Write(hdr[:]); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(payload); err != nil {
		t.Fatal(err)
	}
}

func recv(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		t.Fatalf("reading reply header: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	return b
}

// expectClosed checks that the card closed the connection without a reply.
func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if n, err := c.Read(b[:]); !errors.Is(err, io.EOF) {
		t.Fatalf("connection still open: read %d bytes, %v", n, err)
	}
}

func TestVPCD(t *testing.T) {
	card := newTestCard(t, "gemalto")
	// Reserve an address, then free it: the card must wait and retry.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	v := NewVPCD(card, addr, nil)
	var mu sync.Mutex
	var conns []*recConn
	v.dial = func(ctx context.Context, a string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", a)
		if err != nil {
			return nil, err
		}
		rc := &recConn{TCPConn: c.(*net.TCPConn)}
		mu.Lock()
		conns = append(conns, rc)
		mu.Unlock()
		return rc, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()

	time.Sleep(150 * time.Millisecond) // a few refused dials
	if ln, err = net.Listen("tcp", addr); err != nil {
		t.Fatalf("re-listening on %s: %v", addr, err)
	}
	defer ln.Close()
	f := &fakeVPCD{t: t, ln: ln}
	c := f.accept(5 * time.Second)

	// Control bytes: power on and reset get no reply; get ATR does.
	send(t, c, []byte{vpcdPowerOn})
	send(t, c, []byte{vpcdGetATR})
	if got := recv(t, c); !bytes.Equal(got, card.ATR()) {
		t.Fatalf("ATR % X", got)
	}
	// APDUs.
	send(t, c, []byte{0x00, 0xA4, 0x04, 0x0C, 0x06, 0xA0, 0x00, 0x00, 0x00, 0x00, 0x39})
	if got := recv(t, c); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("SELECT CIE: % X", got)
	}
	send(t, c, []byte{0x00, 0xB0, 0x81, 0x00, 0x0C})
	if got := recv(t, c); len(got) != 14 || string(got[:12]) != card.Holder().IDServizi {
		t.Fatalf("READ ID_Servizi: % X", got)
	}
	// Reset: the selection is lost, so the SFI read fails now.
	send(t, c, []byte{vpcdReset})
	send(t, c, []byte{0x00, 0xB0, 0x81, 0x00, 0x0C})
	if got := recv(t, c); !bytes.Equal(got, []byte{0x6A, 0x82}) {
		t.Fatalf("READ after reset: % X", got)
	}
	send(t, c, []byte{vpcdPowerOff})
	send(t, c, []byte{vpcdGetATR})
	recv(t, c)

	// Every frame went out in one write: header and payload together.
	mu.Lock()
	for _, w := range conns[0].writes {
		if len(w) < 2 || int(binary.BigEndian.Uint16(w)) != len(w)-2 {
			t.Errorf("write of % X is not one whole frame", w)
		}
	}
	if len(conns[0].writes) != 5 {
		t.Errorf("%d writes for 5 replies", len(conns[0].writes))
	}
	mu.Unlock()

	// Remove: connection closed, no reconnection until Insert.
	v.Remove()
	expectClosed(t, c)
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(300 * time.Millisecond))
	if extra, err := ln.Accept(); err == nil {
		extra.Close()
		t.Fatal("card reconnected while removed")
	}
	v.Insert()
	c = f.accept(5 * time.Second)

	// FaultMute: no answer, the card leaves the reader.
	card.Inject(FaultMute)
	send(t, c, []byte{0x00, 0xA4, 0x00, 0x00})
	expectClosed(t, c)
	if v.Inserted() {
		t.Fatal("muted card still inserted")
	}
	v.Insert()
	c = f.accept(5 * time.Second)
	send(t, c, []byte{0x00, 0xA4, 0x00, 0x00})
	if got := recv(t, c); !bytes.Equal(got, []byte{0x90, 0x00}) {
		t.Fatalf("after re-insertion: % X", got)
	}

	// vpcd going away: the card reconnects by itself.
	c.Close()
	c = f.accept(5 * time.Second)
	send(t, c, []byte{vpcdGetATR})
	recv(t, c)

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

func TestWriteFrame(t *testing.T) {
	var b bytes.Buffer
	if err := writeFrame(&b, []byte{1, 2, 3}); err != nil || !bytes.Equal(b.Bytes(), []byte{0, 3, 1, 2, 3}) {
		t.Fatalf("frame % X, %v", b.Bytes(), err)
	}
	if err := writeFrame(&b, make([]byte, 65536)); err == nil {
		t.Fatal("65536-byte frame accepted")
	}
}

func TestControl(t *testing.T) {
	card := newTestCard(t, "nxp")
	v := NewVPCD(card, "127.0.0.1:1", nil)
	ctl := &Control{Card: card, VPCD: v}
	card.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00})
	for _, tc := range []struct{ req, want string }{
		{"stats", "apdus=1 sent=2 received=4"},
		{"stats reset", "ok"},
		{"stats", "apdus=0 sent=0 received=0"},
		{"pin-tries", "pin=3 puk=10"},
		{"latency 1ms", "ok"},
		{"latency soon", `error: latency "soon": want a duration such as 20ms`},
		{"sw 6F00", "ok"},
		{"sw 6F", `error: status word "6F": want 4 hex digits`},
		{"badmac", "ok"},
		{"reset", "ok"},
		{"remove", "ok"},
		{"insert", "ok"},
		{"frobnicate", `error: unknown request "frobnicate"`},
		{"stats now", `error: bad arguments for "stats"`},
		{"", "error: empty request"},
	} {
		if got, quit := ctl.Handle(tc.req); got != tc.want || quit {
			t.Errorf("%q → %q (quit %v), want %q", tc.req, got, quit, tc.want)
		}
	}
	// The armed SW fault answers the next APDU.
	if b, _ := card.Transmit(context.Background(), []byte{0x00, 0xA4, 0x00, 0x00}); !bytes.Equal(b, []byte{0x6F, 0x00}) {
		t.Errorf("after \"sw 6F00\": % X", b)
	}
	if got, _ := (&Control{Card: card}).Handle("remove"); got != "error: not connected to vpcd" {
		t.Errorf("remove without vpcd: %q", got)
	}

	// Over a unix socket, "quit" ends Serve and calls onQuit.
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	quit := make(chan struct{})
	served := make(chan error, 1)
	go func() { served <- ctl.Serve(context.Background(), ln, func() { close(quit) }) }()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rd := bufio.NewReader(conn)
	for _, tc := range []struct{ req, want string }{{"pin-tries", "pin=3 puk=10"}, {"quit", "ok"}} {
		if _, err := conn.Write([]byte(tc.req + "\n")); err != nil {
			t.Fatal(err)
		}
		line, err := rd.ReadString('\n')
		if err != nil || line != tc.want+"\n" {
			t.Fatalf("%q → %q %v", tc.req, line, err)
		}
	}
	select {
	case <-quit:
	case <-time.After(5 * time.Second):
		t.Fatal("quit did not call onQuit")
	}
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
